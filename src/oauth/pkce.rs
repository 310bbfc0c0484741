//! PKCE (RFC 7636), S256 only as OAuth 2.1 requires.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// RFC 7636 §4.1/§4.2: 43–128 characters of the unreserved set.
pub fn is_valid_challenge_or_verifier(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// RFC 7636 §4.2: the S256 challenge of a verifier, BASE64URL(SHA256(ASCII(code_verifier))).
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// RFC 7636 §4.6: BASE64URL(SHA256(ASCII(code_verifier))) == code_challenge.
pub fn verify_s256(verifier: &str, challenge: &str) -> bool {
    if !is_valid_challenge_or_verifier(verifier) {
        return false;
    }
    s256(verifier).as_bytes().ct_eq(challenge.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b_example_verifies() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

        assert!(verify_s256(verifier, challenge));
        assert!(!verify_s256(challenge, challenge));
    }

    #[test]
    fn challenge_length_and_alphabet_are_checked() {
        assert!(!is_valid_challenge_or_verifier(&"a".repeat(42)));
        assert!(is_valid_challenge_or_verifier(&"a".repeat(43)));
        assert!(is_valid_challenge_or_verifier(&"a".repeat(128)));
        assert!(!is_valid_challenge_or_verifier(&"a".repeat(129)));
        assert!(!is_valid_challenge_or_verifier(&format!(
            "{}+",
            "a".repeat(43)
        )));
    }
}
