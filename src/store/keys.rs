//! The key layout, private to the store. Secret values (codes, tokens, session and pending
//! request ids, usernames) appear in keys only as their SHA-256 hash, after the time part of
//! the secret when it has one (`secret::ordered_token`; the time is not secret): records made
//! one after another get keys in that order, which the embedded store's B-tree writes as a few
//! pages at its end instead of one page per record at random places. Secrets made before they
//! had a time part keep the key they had (`prefix` + hash), so they are still found.

use crate::records::TokenKind;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::secret::{self, hash};

pub const CLIENT: &str = "client:";

pub fn client(client_id: &str) -> String {
    // `concat` rather than `format!`: this runs on every authorization request.
    [CLIENT, client_id].concat()
}
/// `prefix`, the time part of `secret` when it has one (`order`, else its own), its hash.
fn hashed_at(prefix: &str, order: Option<&str>, secret: &str) -> String {
    let order = order.or_else(|| secret::order_of(secret)).unwrap_or("");
    [prefix, order, &hash(secret)].concat()
}
fn hashed(prefix: &str, secret: &str) -> String {
    hashed_at(prefix, None, secret)
}
pub fn pending(id: &str) -> String {
    hashed("pending:", id)
}
pub fn session(id: &str) -> String {
    hashed("session:", id)
}
pub fn code(code: &str) -> String {
    hashed("code:", code)
}
pub fn token(kind: TokenKind, token: &str) -> String {
    match kind {
        TokenKind::Access => hashed_at("at:", jwt_order(token).as_deref(), token),
        TokenKind::Refresh => hashed("rt:", token),
    }
}

/// The time part of a JWT's `jti` (`secret::ordered_id`), read without checking the signature:
/// the key still ends in the hash of the whole token, so a forged `jti` only names a key that
/// holds nothing. `None` for an opaque token, or a JWT whose `jti` has no time part.
fn jwt_order(token: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Claims<'a> {
        #[serde(borrow)]
        jti: Option<std::borrow::Cow<'a, str>>,
    }
    let mut parts = token.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    // Our payloads are a few hundred bytes; a huge one is not ours.
    if parts.next().is_some() || payload.len() > 4096 {
        return None;
    }
    let json = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: Claims<'_> = serde_json::from_slice(&json).ok()?;
    secret::order_of_id(&claims.jti?).map(str::to_owned)
}
/// A token family, under its id (`secret::ordered_id`, time first).
pub fn family(id: &str) -> String {
    format!("family:{id}")
}
/// A person's grants: one map, a field per client.
pub fn grants(username: &str) -> String {
    [GRANTS, &hash(username)].concat()
}
const GRANTS: &str = "grants:";
/// The prefixes of the keys that hold maps (`Kv::map_set`); no other key holds one.
pub const MAPS: [&str; 1] = [GRANTS];
/// Whether `key` holds a map.
pub fn map(key: &str) -> bool {
    MAPS.iter().any(|p| key.starts_with(p))
}
pub fn server_secret(name: &str) -> String {
    format!("meta:{name}")
}
/// A fetched Client ID Metadata Document, under the hash of its URL (URLs are long).
pub fn document(url: &str) -> String {
    format!("cimd:{}", hash(url))
}
/// The mark of a process fetching that document, so other processes wait for its copy.
pub fn document_fetch(url: &str) -> String {
    format!("cimd-fetch:{}", hash(url))
}
/// An upstream sign-in round trip, under the hash of its `state`.
pub fn upstream(state: &str) -> String {
    hashed("upstream:", state)
}
/// The access-token signing keys, all in one record.
pub const SIGNING_KEYS: &str = "meta:signing_keys";

/// Whether `key` holds a record a crash may lose without harm: a pending request, a session, a
/// code (or the mark it leaves), a fetched metadata document. The embedded backend keeps these
/// in memory and writes them to disk in the background (`store/hot.rs`); the typed operations
/// write them with `put_volatile` and take codes with `Durability::Volatile`.
pub fn volatile(key: &str) -> bool {
    ["pending:", "session:", "code:", "cimd:"]
        .iter()
        .any(|p| key.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::{ORDER_LEN, ordered_id, ordered_token, random_token};

    /// The embedded store keeps maps in its file only, never in its memory tier.
    #[test]
    fn maps_are_never_volatile() {
        let key = grants("alice");
        assert!(map(&key));
        assert!(!volatile(&key));
        assert!(!map(&client("c")) && !map(&session("s")));
    }

    fn jwt(claims: &str) -> String {
        let b = |s: &str| URL_SAFE_NO_PAD.encode(s);
        format!(
            "{}.{}.{}",
            b(r#"{"alg":"ES256"}"#),
            b(claims),
            b("signature")
        )
    }

    #[test]
    fn an_ordered_secret_is_filed_under_its_time_then_its_hash() {
        let code = ordered_token();
        let key = super::code(&code);
        assert_eq!(key, format!("code:{}{}", &code[..ORDER_LEN], hash(&code)));
        assert!(
            !key.contains(&code[ORDER_LEN..]),
            "the random part is never in a key"
        );
        for (kind, prefix) in [(TokenKind::Access, "at:"), (TokenKind::Refresh, "rt:")] {
            let t = ordered_token();
            assert_eq!(
                token(kind, &t),
                format!("{prefix}{}{}", &t[..ORDER_LEN], hash(&t))
            );
        }
        let id = ordered_token();
        assert!(pending(&id).starts_with(&format!("pending:{}", &id[..ORDER_LEN])));
        assert!(session(&id).starts_with(&format!("session:{}", &id[..ORDER_LEN])));
        assert!(upstream(&id).starts_with(&format!("upstream:{}", &id[..ORDER_LEN])));
    }

    #[test]
    fn secrets_made_before_the_time_part_keep_the_key_they_had() {
        // What an earlier Doorman wrote: prefix and hash. A refresh token, session or code
        // issued then is still found after the upgrade.
        let old = random_token();
        assert_eq!(
            token(TokenKind::Refresh, &old),
            format!("rt:{}", hash(&old))
        );
        assert_eq!(token(TokenKind::Access, &old), format!("at:{}", hash(&old)));
        assert_eq!(session(&old), format!("session:{}", hash(&old)));
        assert_eq!(pending(&old), format!("pending:{}", hash(&old)));
        assert_eq!(code(&old), format!("code:{}", hash(&old)));
        let old_jwt = jwt(r#"{"sub":"ada","jti":"AAAAAAAAAAAAAAAAAAAAAA"}"#);
        assert_eq!(
            token(TokenKind::Access, &old_jwt),
            format!("at:{}", hash(&old_jwt))
        );
    }

    #[test]
    fn records_made_one_after_another_get_keys_in_that_order() {
        let mut keys = Vec::new();
        for _ in 0..3 {
            keys.push(token(TokenKind::Refresh, &ordered_token()));
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        let (a, b) = (ordered_id(), {
            std::thread::sleep(std::time::Duration::from_millis(2));
            ordered_id()
        });
        assert!(client(&a) < client(&b) && family(&a) < family(&b));
    }

    #[test]
    fn a_jwt_is_filed_under_the_time_of_its_jti_and_a_forged_one_finds_nothing_else() {
        let jti = ordered_id();
        let t = jwt(&format!(r#"{{"iss":"x","jti":"{jti}","exp":1}}"#));
        assert_eq!(
            token(TokenKind::Access, &t),
            format!("at:{}{}", &jti[..ORDER_LEN], hash(&t))
        );
        // Whatever the payload claims, the key ends in the hash of the whole token.
        for odd in [
            jwt(r#"{"jti":42}"#),
            jwt("not json"),
            format!(
                "a.{}.b.c",
                URL_SAFE_NO_PAD.encode(format!(r#"{{"jti":"{jti}"}}"#))
            ),
            format!(
                "a.{}!.b",
                URL_SAFE_NO_PAD.encode(format!(r#"{{"jti":"{jti}"}}"#))
            ),
            format!("a.{}.b", "A".repeat(5000)),
        ] {
            assert_eq!(
                token(TokenKind::Access, &odd),
                format!("at:{}", hash(&odd)),
                "{odd}"
            );
        }
    }
}
