//! JWT access tokens (RFC 9068): their claims, signing and verification with a key of the
//! server's key set, and the key set's public form (RFC 7517). Time is a parameter; the store
//! and the choice of key are the flows' business.

use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use crate::records::Algorithm;

/// RFC 9068 §2.1: the `typ` of an access token.
pub const TYP: &str = "at+jwt";

/// The claims of an access token (RFC 9068 §2.2, with RFC 8693 §4.3 `client_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    /// The resource as the client sent it (docs/behaviour.md §13).
    pub aud: String,
    pub client_id: String,
    pub scope: String,
    pub exp: u64,
    pub iat: u64,
    pub jti: String,
    /// The token family (the grant's chain of refreshes) it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// The identity provider the person signed in with (docs/behaviour.md §14).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp: Option<String>,
    /// The person's name as that provider gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Why a key cannot be used, worded for the operator.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("not a {alg} private key in PKCS#8 PEM ({why})")]
    Unreadable { alg: &'static str, why: String },
    #[error("cannot make a key: {0}")]
    Generate(String),
}

/// Why a token does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtError {
    /// Not a JWT, or not one of ours in shape (header, `typ`, claims).
    Malformed,
    /// Signed by a key this server does not know (or no longer publishes).
    UnknownKey,
    /// The signature does not verify, or the algorithm is not the key's.
    BadSignature,
    /// Another issuer's token.
    OtherIssuer,
}

/// A private key of the key set, ready to sign and verify.
pub struct KeyPair {
    pub kid: String,
    pub alg: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// The public key as published.
    pub jwk: Jwk,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

fn jose(alg: Algorithm) -> jsonwebtoken::Algorithm {
    match alg {
        Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
        Algorithm::RS256 => jsonwebtoken::Algorithm::RS256,
    }
}

/// jsonwebtoken's RustCrypto provider, except that ES256 signs with `ring` (already in the
/// tree through rustls), with the key parsed once per process: RustCrypto's `p256` took about
/// 200 µs a signature on this machine under load, and the library's own provider also re-read
/// the key and recomputed its public key on every signature. The documented extension point
/// (`CryptoProvider`); verification stays the library's.
static PROVIDER: std::sync::LazyLock<jsonwebtoken::crypto::CryptoProvider> =
    std::sync::LazyLock::new(|| jsonwebtoken::crypto::CryptoProvider {
        signer_factory: cached_signer,
        ..jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.clone()
    });

/// ES256 keys parsed so far, by their PKCS#8 DER (a process has a handful: one per rotation).
static ES256_KEYS: std::sync::LazyLock<
    std::sync::RwLock<std::collections::HashMap<Vec<u8>, Arc<ring::signature::EcdsaKeyPair>>>,
> = std::sync::LazyLock::new(Default::default);

struct Es256Signer(Arc<ring::signature::EcdsaKeyPair>);

impl jsonwebtoken::signature::Signer<Vec<u8>> for Es256Signer {
    fn try_sign(&self, msg: &[u8]) -> Result<Vec<u8>, jsonwebtoken::signature::Error> {
        // RFC 7518 §3.4: R || S, 64 bytes (ring's FIXED encoding).
        let rng = ring::rand::SystemRandom::new();
        self.0
            .sign(&rng, msg)
            .map(|sig| sig.as_ref().to_vec())
            .map_err(|_| jsonwebtoken::signature::Error::new())
    }
}

impl jsonwebtoken::crypto::JwtSigner for Es256Signer {
    fn algorithm(&self) -> jsonwebtoken::Algorithm {
        jsonwebtoken::Algorithm::ES256
    }
}

fn cached_signer(
    alg: &jsonwebtoken::Algorithm,
    key: &EncodingKey,
) -> jsonwebtoken::errors::Result<Box<dyn jsonwebtoken::crypto::JwtSigner>> {
    let default = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.signer_factory;
    if *alg != jsonwebtoken::Algorithm::ES256 || key.family() != jsonwebtoken::AlgorithmFamily::Ec {
        return default(alg, key);
    }
    let der = key.as_bytes();
    if let Some(k) = ES256_KEYS.read().ok().and_then(|m| m.get(der).cloned()) {
        return Ok(Box::new(Es256Signer(k)));
    }
    let rng = ring::rand::SystemRandom::new();
    let Ok(parsed) = ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        der,
        &rng,
    ) else {
        // Not a P-256 PKCS#8 key ring reads: the library's own answer.
        return default(alg, key);
    };
    let parsed = Arc::new(parsed);
    if let Ok(mut m) = ES256_KEYS.write() {
        m.insert(der.to_vec(), parsed.clone());
    }
    Ok(Box::new(Es256Signer(parsed)))
}

/// Makes `PROVIDER` jsonwebtoken's provider for this process, before anything signs or
/// verifies (the application state calls it first); if something else used the library
/// first, its default stays (slower, as correct).
pub fn install_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let provider: &'static jsonwebtoken::crypto::CryptoProvider = &PROVIDER;
        let _ = provider.install_default();
    });
}

impl KeyPair {
    /// Reads a PKCS#8 PEM private key for `alg` (PKCS#1 and SEC1 PEM are read too). Its `kid`
    /// is the RFC 7638 thumbprint of the public key, so the same key always has the same id.
    pub fn from_pem(pem: &str, alg: Algorithm) -> Result<Self, KeyError> {
        install_provider();
        let unreadable = |why: String| KeyError::Unreadable {
            alg: alg.name(),
            why,
        };
        let encoding = match alg {
            Algorithm::ES256 => EncodingKey::from_ec_pem(pem.as_bytes()),
            Algorithm::RS256 => EncodingKey::from_rsa_pem(pem.as_bytes()),
        }
        .map_err(|e| unreadable(e.to_string()))?;
        let mut jwk =
            Jwk::from_encoding_key(&encoding, jose(alg)).map_err(|e| unreadable(e.to_string()))?;
        let kid = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|e| unreadable(e.to_string()))?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        jwk.common.key_algorithm = Some(match alg {
            Algorithm::ES256 => KeyAlgorithm::ES256,
            Algorithm::RS256 => KeyAlgorithm::RS256,
        });
        let decoding = DecodingKey::from_jwk(&jwk).map_err(|e| unreadable(e.to_string()))?;
        // A key that cannot sign is found now, not at the first token request.
        let probe = Header::new(jose(alg));
        jsonwebtoken::encode(&probe, &serde_json::json!({}), &encoding)
            .map_err(|e| unreadable(e.to_string()))?;
        Ok(Self {
            kid,
            alg,
            encoding,
            decoding,
            jwk,
        })
    }

    /// Signs `claims` as an access token: `typ` at+jwt and this key's `kid` (RFC 9068 §2.1).
    pub fn sign(&self, claims: &Claims) -> Result<String, KeyError> {
        let mut header = Header::new(jose(self.alg));
        header.typ = Some(TYP.to_owned());
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .map_err(|e| KeyError::Generate(format!("signing failed: {e}")))
    }
}

/// A new private key for `alg`, as PKCS#8 PEM, from the operating system's CSPRNG.
pub fn generate(alg: Algorithm) -> Result<String, KeyError> {
    use p256::pkcs8::{EncodePrivateKey, LineEnding};
    let fail = |e: &dyn std::fmt::Display| KeyError::Generate(e.to_string());
    match alg {
        Algorithm::ES256 => {
            let key = p256::SecretKey::random(&mut rand08::rngs::OsRng);
            Ok(key
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(|e| fail(&e))?
                .to_string())
        }
        Algorithm::RS256 => {
            let key =
                rsa::RsaPrivateKey::new(&mut rand08::rngs::OsRng, 2048).map_err(|e| fail(&e))?;
            Ok(key
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(|e| fail(&e))?
                .to_string())
        }
    }
}

/// The `kid` of a token's header, when it looks like a JWT at all (three base64url parts).
/// Opaque tokens are base64url without dots, so the two formats cannot be mistaken.
pub fn looks_like_jwt(token: &str) -> bool {
    token.bytes().filter(|&b| b == b'.').count() == 2
}

/// The `kid` a token names, if it is a JWT of ours in shape (`typ` at+jwt, RFC 9068 §4).
pub fn kid(token: &str) -> Result<String, JwtError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| JwtError::Malformed)?;
    if !header.typ.as_deref().is_some_and(|t| {
        t.eq_ignore_ascii_case(TYP) || t.eq_ignore_ascii_case("application/at+jwt")
    }) {
        return Err(JwtError::Malformed);
    }
    header.kid.ok_or(JwtError::Malformed)
}

/// Verifies the signature of `token` with `key` and that `issuer` issued it; its claims. The
/// times are the caller's to check, by the app clock.
pub fn verify(token: &str, key: &KeyPair, issuer: &str) -> Result<Claims, JwtError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| JwtError::Malformed)?;
    // RFC 8725 §3.1: the key decides the algorithm, never the token.
    if header.alg != jose(key.alg) {
        return Err(JwtError::BadSignature);
    }
    let mut validation = Validation::new(jose(key.alg));
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let data = jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind;
        match e.kind() {
            ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm => JwtError::BadSignature,
            _ => JwtError::Malformed,
        }
    })?;
    if data.claims.iss != issuer {
        return Err(JwtError::OtherIssuer);
    }
    Ok(data.claims)
}

/// The public keys, as served at `jwks_uri` (RFC 7517 §5).
pub fn key_set<'a>(keys: impl IntoIterator<Item = &'a KeyPair>) -> JwkSet {
    JwkSet {
        keys: keys.into_iter().map(|k| k.jwk.clone()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            iss: "https://as.example".into(),
            sub: "alice".into(),
            aud: "https://mcp.example/mcp".into(),
            client_id: "c1".into(),
            scope: "mcp".into(),
            exp: 2000,
            iat: 1000,
            jti: "j".into(),
            family: Some("f".into()),
            idp: None,
            name: None,
        }
    }

    /// ES256 signs through ring: the generated key is one ring reads (else the library's slower
    /// signer would be used, silently), and its signatures verify with the library.
    #[test]
    fn es256_signs_with_ring() {
        let pem = generate(Algorithm::ES256).expect("generate");
        let key = KeyPair::from_pem(&pem, Algorithm::ES256).expect("read");

        let token = key.sign(&claims()).expect("sign");

        assert!(
            ES256_KEYS
                .read()
                .expect("lock")
                .contains_key(key.encoding.as_bytes()),
            "the key was parsed by ring"
        );
        assert_eq!(verify(&token, &key, "https://as.example"), Ok(claims()));
    }

    #[test]
    fn a_generated_es256_key_signs_and_verifies_and_its_kid_is_stable() {
        let pem = generate(Algorithm::ES256).expect("generate");
        let key = KeyPair::from_pem(&pem, Algorithm::ES256).expect("read");
        let again = KeyPair::from_pem(&pem, Algorithm::ES256).expect("read");
        assert_eq!(key.kid, again.kid);

        let token = key.sign(&claims()).expect("sign");

        assert!(looks_like_jwt(&token));
        assert_eq!(kid(&token), Ok(key.kid.clone()));
        assert_eq!(verify(&token, &key, "https://as.example"), Ok(claims()));
        assert_eq!(
            verify(&token, &key, "https://other.example"),
            Err(JwtError::OtherIssuer)
        );
        let other = KeyPair::from_pem(&generate(Algorithm::ES256).expect("gen"), Algorithm::ES256)
            .expect("read");
        assert_eq!(
            verify(&token, &other, "https://as.example"),
            Err(JwtError::BadSignature)
        );
        let mut tampered = token.clone();
        tampered.insert(token.find('.').expect("dot") + 3, 'A');
        assert_ne!(
            verify(&tampered, &key, "https://as.example").ok(),
            Some(claims())
        );
    }

    #[test]
    fn the_cached_es256_signer_makes_signatures_the_library_verifies() {
        let key = KeyPair::from_pem(&generate(Algorithm::ES256).expect("gen"), Algorithm::ES256)
            .expect("read");
        let es256 = jsonwebtoken::Algorithm::ES256;

        for _ in 0..2 {
            let signer = cached_signer(&es256, &key.encoding).expect("signer");
            let signature = signer.try_sign(b"header.claims").expect("sign");
            assert_eq!(signature.len(), 64, "R || S");
            let b64 = base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                &signature,
            );
            assert!(
                jsonwebtoken::crypto::verify(&b64, b"header.claims", &key.decoding, es256)
                    .expect("verify")
            );
        }
        assert!(
            ES256_KEYS
                .read()
                .expect("cache")
                .contains_key(key.encoding.as_bytes()),
            "parsed once, then kept"
        );
        let rsa = KeyPair::from_pem(
            include_str!("../../tests/fixtures/keys/rs256.pem"),
            Algorithm::RS256,
        )
        .expect("rsa");
        let rs256 = jsonwebtoken::Algorithm::RS256;
        assert!(
            cached_signer(&rs256, &rsa.encoding).is_ok(),
            "other algorithms: the library's own signer"
        );
    }

    #[test]
    fn wrong_keys_and_shapes_are_refused() {
        assert!(KeyPair::from_pem("not a key", Algorithm::ES256).is_err());
        let ec = generate(Algorithm::ES256).expect("generate");
        assert!(KeyPair::from_pem(&ec, Algorithm::RS256).is_err());
        assert!(!looks_like_jwt("opaque_token-value"));
        assert_eq!(kid("a.b.c"), Err(JwtError::Malformed));
    }
}
