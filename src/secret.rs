//! Random secrets, their SHA-256 hashes, and constant-time comparison. A leaf: imports nothing
//! from the crate, so every layer may use it.
//!
//! Identifiers and secrets that name a stored record (client ids, family ids, codes, refresh
//! and opaque access tokens, session and pending request ids) begin with the time they were
//! made (`ORDER_LEN` hex digits of milliseconds), then their random part: the store keeps
//! them under keys that begin with that time, so new records go to the end of the embedded
//! store's B-tree, where the last pages are already in memory and one page takes many of them,
//! instead of one page written per record at a random place (`store/keys.rs`). The time is not
//! a secret (a token's holder knows when it got it) and adds nothing to guess: the random part
//! alone is what a guess must find, 256 bits for secrets and 128 for identifiers.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Characters of the time part: milliseconds since 1970 in lowercase hex, 11 digits (enough
/// until the year 2527), so that the order of the text is the order of the times.
pub const ORDER_LEN: usize = 11;

/// Length of an `ordered_token`: the time part and 43 characters of randomness.
pub const ORDERED_TOKEN_LEN: usize = ORDER_LEN + 43;

/// Length of an `ordered_id`: the time part and 22 characters of randomness.
pub const ORDERED_ID_LEN: usize = ORDER_LEN + 22;

/// 256 bits from the operating system's CSPRNG, base64url without padding (43 characters):
/// for secrets that are compared, or stored only as a hash inside a record (client secrets,
/// registration access tokens, CSRF and binding values, PKCE verifiers).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// 128 bits, base64url (22 characters): a value compared and never stored under a key (the
/// unregistered-client page's CSRF token, made on every showing of that page).
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A secret that names a stored record (a code, a refresh or opaque access token, a session
/// or pending request id): the time part, then 256 random bits (`ORDERED_TOKEN_LEN`
/// characters).
pub fn ordered_token() -> String {
    ordered::<32>(ORDERED_TOKEN_LEN)
}

/// An identifier: the time part, then 128 random bits in base64url (33 characters). Client
/// identifiers are public, but not guessable.
pub fn ordered_id() -> String {
    ordered::<16>(ORDERED_ID_LEN)
}

/// The time part, then `N` random bytes in base64url: `len` characters in all.
fn ordered<const N: usize>(len: usize) -> String {
    let mut bytes = [0u8; N];
    rand::rng().fill_bytes(&mut bytes);
    let mut out = now_part(len);
    URL_SAFE_NO_PAD.encode_string(bytes, &mut out);
    out
}

/// The time part of an `ordered_id`, or `None` for an identifier made before ids were ordered.
pub fn order_of_id(id: &str) -> Option<&str> {
    time_part(id, ORDERED_ID_LEN)
}

fn time_part(s: &str, len: usize) -> Option<&str> {
    let part = s.get(..ORDER_LEN)?;
    (s.len() == len && part.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))).then_some(part)
}

/// The time part, in a string with room for `len` characters (one allocation per secret).
fn now_part(len: usize) -> String {
    use std::fmt::Write;
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let mut out = String::with_capacity(len);
    // Masked to the width, so that a clock past 2527 wraps instead of widening the part.
    let _ = write!(out, "{:011x}", ms & 0xfff_ffff_ffff);
    out
}

/// The time part of an `ordered_token`, or `None` for anything else (a secret made before
/// secrets were ordered, a JWT, a stranger's guess): what the store puts before the hash.
pub fn order_of(token: &str) -> Option<&str> {
    time_part(token, ORDERED_TOKEN_LEN)
}

/// The stored form of a secret: SHA-256, base64url. Secrets are never stored in clear.
pub fn hash(secret: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(secret.as_bytes()))
}

/// Whether `presented` hashes to `stored_hash`, compared in constant time.
pub fn verify(presented: &str, stored_hash: &str) -> bool {
    hash(presented)
        .as_bytes()
        .ct_eq(stored_hash.as_bytes())
        .into()
}

/// Constant-time equality of two secrets of any length.
pub fn equal(a: &str, b: &str) -> bool {
    // Hashing first makes the comparison independent of where the strings differ and of length.
    Sha256::digest(a.as_bytes())
        .ct_eq(&Sha256::digest(b.as_bytes()))
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_verify_only_against_their_hash() {
        let a = random_token();
        let b = random_token();

        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert!(verify(&a, &hash(&a)));
        assert!(!verify(&b, &hash(&a)));
        assert_ne!(hash(&a), a, "the stored form is not the secret");
        assert_eq!(order_of(&a), None, "a plain random token has no time part");
        assert_eq!(random_id().len(), 22);
        assert_eq!(order_of_id(&random_id()), None);
    }

    #[test]
    fn ordered_secrets_and_ids_begin_with_their_time_and_sort_by_it() {
        let before = now_part(ORDER_LEN);
        let first = ordered_token();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = ordered_token();
        let id = ordered_id();

        assert_eq!(first.len(), ORDERED_TOKEN_LEN);
        assert_eq!(id.len(), ORDERED_ID_LEN);
        assert_eq!(order_of_id(&id), Some(&id[..ORDER_LEN]));
        assert_eq!(order_of_id(&first), None);
        assert!(first.as_str() < second.as_str(), "{first} then {second}");
        assert!(second[..ORDER_LEN] <= id[..ORDER_LEN]);
        assert!(before.as_str() <= &first[..ORDER_LEN]);
        assert_eq!(order_of(&first), Some(&first[..ORDER_LEN]));
        // The random part is random: two tokens of the same millisecond still differ there.
        let many: std::collections::HashSet<String> = (0..1000)
            .map(|_| ordered_token()[ORDER_LEN..].to_owned())
            .collect();
        assert_eq!(many.len(), 1000);
        for c in first.chars().chain(id.chars()) {
            assert!(
                c.is_ascii_alphanumeric() || c == '-' || c == '_',
                "{c} in {first} / {id}"
            );
        }
    }

    #[test]
    fn only_an_ordered_token_has_a_time_part() {
        let t = ordered_token();
        assert_eq!(order_of(&t[1..]), None, "too short");
        assert_eq!(order_of(&format!("{t}x")), None, "too long");
        let upper = t.to_uppercase();
        assert_eq!(
            order_of(&upper).is_some(),
            upper[..ORDER_LEN] == t[..ORDER_LEN]
        );
        assert_eq!(order_of(&format!("zzzzzzzzzzz{}", &t[ORDER_LEN..])), None);
        assert_eq!(order_of("eyJhbGciOiJFUzI1NiJ9.eyJqdGkiOiJ4In0.c2ln"), None);
        assert_eq!(order_of("é"), None);
    }
}
