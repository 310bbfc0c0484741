//! The rules of OpenID Connect as a relying party (docs/behaviour.md §14): which discovery
//! documents are usable (OpenID Connect Discovery 1.0 §3, §4.3), which ID tokens are genuine
//! (OpenID Connect Core 1.0 §3.1.3.7: signature against the provider's JWKS, `iss`, `aud`,
//! `azp`, `exp`, `iat`, `nonce`), and what the claims say about the person. Pure: the flow
//! fetches the documents and passes `now`.

use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};
use url::Url;

use super::identity::Identity;

/// Seconds of clock difference tolerated between the provider and Doorman.
pub const LEEWAY: u64 = 60;
/// An ID token issued longer ago than this (plus the leeway) is refused: it was minted for the
/// code exchange a moment ago.
pub const MAX_ID_TOKEN_AGE: u64 = 300;

/// The signature algorithms Doorman accepts on ID tokens: asymmetric only (never `none`, never
/// an HMAC keyed with the client secret).
pub const ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The members of a discovery document Doorman reads (OpenID Connect Discovery 1.0 §3).
#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
    #[serde(default)]
    pub response_types_supported: Vec<String>,
    #[serde(default)]
    pub id_token_signing_alg_values_supported: Vec<String>,
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    pub code_challenge_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
}

/// How Doorman authenticates at the provider's token endpoint (OpenID Connect Core §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `client_secret_basic`, the default when the provider names none.
    Basic,
    /// `client_secret_post`.
    Post,
}

/// A provider as discovery described it, once checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderMetadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    pub userinfo_endpoint: Option<String>,
    /// The algorithms both sides accept.
    pub algorithms: Vec<Algorithm>,
    pub client_auth: ClientAuth,
    /// Whether it always sends `iss` in authorization responses (RFC 9207 §3).
    pub sends_iss: bool,
}

/// Where the discovery document of `issuer` is (Discovery §4: `/.well-known/openid-configuration`
/// appended to the issuer, whose trailing slash is dropped first).
pub fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

/// An endpoint a provider may send Doorman to, or the person's browser: https, or http on a
/// loopback host when the issuer itself is one (tests, a local provider).
fn endpoint(name: &str, raw: &str, loopback_ok: bool) -> Result<String, String> {
    let url = Url::parse(raw).map_err(|_| format!("{name} {raw:?} is not an absolute URL"))?;
    let loopback = crate::oauth::redirect_uri::is_loopback_host(&url);
    match url.scheme() {
        "https" => {}
        "http" if loopback && loopback_ok => {}
        _ => return Err(format!("{name} {raw:?} does not use https")),
    }
    if url.fragment().is_some() {
        return Err(format!("{name} {raw:?} has a fragment"));
    }
    Ok(raw.to_owned())
}

/// Checks a discovery document fetched for `expected_issuer` (Discovery §4.3: its `issuer`
/// must be exactly the one it was fetched for, or anyone hosting a document could
/// impersonate another provider).
pub fn check_discovery(doc: &Discovery, expected_issuer: &str) -> Result<ProviderMetadata, String> {
    if doc.issuer != expected_issuer {
        return Err(format!(
            "the discovery document names issuer {:?}, not {expected_issuer:?}",
            doc.issuer
        ));
    }
    let loopback_ok =
        Url::parse(expected_issuer).is_ok_and(|u| crate::oauth::redirect_uri::is_loopback_host(&u));
    if !doc.response_types_supported.is_empty()
        && !doc.response_types_supported.iter().any(|t| t == "code")
    {
        return Err("the provider does not support the authorization code flow (response_types_supported lacks code)".into());
    }
    let algorithms: Vec<Algorithm> = doc
        .id_token_signing_alg_values_supported
        .iter()
        .filter_map(|a| a.parse::<Algorithm>().ok())
        .filter(|a| ALGORITHMS.contains(a))
        .collect();
    if algorithms.is_empty() {
        return Err(format!(
            "no ID token signing algorithm Doorman accepts (the provider offers {:?})",
            doc.id_token_signing_alg_values_supported
        ));
    }
    let client_auth = match &doc.token_endpoint_auth_methods_supported {
        None => ClientAuth::Basic,
        Some(m) if m.iter().any(|m| m == "client_secret_basic") => ClientAuth::Basic,
        Some(m) if m.iter().any(|m| m == "client_secret_post") => ClientAuth::Post,
        Some(m) => {
            return Err(format!(
                "the token endpoint accepts neither client_secret_basic nor client_secret_post ({m:?})"
            ));
        }
    };
    if let Some(methods) = &doc.code_challenge_methods_supported
        && !methods.iter().any(|m| m == "S256")
    {
        return Err("the provider does not support PKCE with S256".into());
    }
    Ok(ProviderMetadata {
        issuer: doc.issuer.clone(),
        authorization_endpoint: endpoint(
            "authorization_endpoint",
            &doc.authorization_endpoint,
            loopback_ok,
        )?,
        token_endpoint: endpoint("token_endpoint", &doc.token_endpoint, loopback_ok)?,
        jwks_uri: endpoint("jwks_uri", &doc.jwks_uri, loopback_ok)?,
        userinfo_endpoint: doc
            .userinfo_endpoint
            .as_deref()
            .map(|u| endpoint("userinfo_endpoint", u, loopback_ok))
            .transpose()?,
        algorithms,
        client_auth,
        sends_iss: doc.authorization_response_iss_parameter_supported,
    })
}

/// Why an ID token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdTokenError {
    /// Its `kid` is not in the key set Doorman has: fetch the key set again, then retry once.
    UnknownKey(String),
    /// Anything else, in words for the operator's log.
    Invalid(String),
}

impl std::fmt::Display for IdTokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnknownKey(kid) => write!(
                f,
                "the ID token is signed with key {kid:?}, which is not in the provider's key set"
            ),
            Self::Invalid(why) => f.write_str(why),
        }
    }
}

/// What an ID token must say (OpenID Connect Core §3.1.3.7).
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub nonce: &'a str,
    pub algorithms: &'a [Algorithm],
}

/// The key of `keys` that signed a token with this header: by `kid`, or the only key that fits
/// when the token names none.
fn signing_key<'k>(
    keys: &'k JwkSet,
    kid: Option<&str>,
    alg: Algorithm,
) -> Result<&'k Jwk, IdTokenError> {
    let fits = |k: &&Jwk| {
        !matches!(k.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature)
            && k.common
                .key_algorithm
                .is_none_or(|a| Algorithm::try_from(a).is_ok_and(|a| a == alg))
    };
    match kid {
        Some(kid) => keys
            .keys
            .iter()
            .filter(fits)
            .find(|k| k.common.key_id.as_deref() == Some(kid))
            .ok_or_else(|| IdTokenError::UnknownKey(kid.to_owned())),
        None => {
            let mut candidates = keys
                .keys
                .iter()
                .filter(fits)
                .filter(|k| DecodingKey::from_jwk(k).is_ok_and(|d| d.family() == alg.family()));
            match (candidates.next(), candidates.next()) {
                (Some(k), None) => Ok(k),
                (None, _) => Err(IdTokenError::UnknownKey(String::new())),
                (Some(_), Some(_)) => Err(IdTokenError::Invalid(
                    "the ID token names no key (kid) and the provider has several".into(),
                )),
            }
        }
    }
}

/// Verifies an ID token's signature against the provider's key set and then its claims at
/// `now`; the claims, when all is well.
pub fn verify_id_token(
    token: &str,
    keys: &JwkSet,
    expected: &Expected<'_>,
    now: u64,
) -> Result<Map<String, Value>, IdTokenError> {
    let invalid = |why: String| IdTokenError::Invalid(why);
    let header = jsonwebtoken::decode_header(token)
        .map_err(|e| invalid(format!("the ID token is not a signed JWT ({e})")))?;
    if !expected.algorithms.contains(&header.alg) {
        return Err(invalid(format!(
            "the ID token is signed with {:?}, which is not accepted",
            header.alg
        )));
    }
    let jwk = signing_key(keys, header.kid.as_deref(), header.alg)?;
    let key = DecodingKey::from_jwk(jwk)
        .map_err(|e| invalid(format!("the provider's key is unusable ({e})")))?;
    let mut validation = Validation::new(header.alg);
    // Claims are checked below against the app clock; the library checks the signature only.
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
        .map_err(|e| invalid(format!("the ID token's signature does not verify ({e})")))?;
    check_claims(&data.claims, expected, now).map_err(invalid)?;
    Ok(data.claims)
}

/// OpenID Connect Core §3.1.3.7 steps 2–11, with time as a parameter.
pub fn check_claims(
    claims: &Map<String, Value>,
    expected: &Expected<'_>,
    now: u64,
) -> Result<(), String> {
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    let number = |name: &str| claims.get(name).and_then(Value::as_u64);
    if text("iss") != Some(expected.issuer) {
        return Err(format!(
            "the ID token's iss is {:?}, not {:?}",
            claims.get("iss"),
            expected.issuer
        ));
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !audiences.contains(&expected.client_id) {
        return Err(format!(
            "the ID token is for {audiences:?}, not for this client ({:?})",
            expected.client_id
        ));
    }
    match text("azp") {
        Some(azp) if azp != expected.client_id => {
            return Err(format!("the ID token's azp is {azp:?}, not this client"));
        }
        None if audiences.len() > 1 => {
            return Err("the ID token has several audiences and no azp".into());
        }
        _ => {}
    }
    let Some(exp) = number("exp") else {
        return Err("the ID token has no exp".into());
    };
    if exp.saturating_add(LEEWAY) <= now {
        return Err(format!("the ID token expired at {exp} (now {now})"));
    }
    let Some(iat) = number("iat") else {
        return Err("the ID token has no iat".into());
    };
    if iat > now.saturating_add(LEEWAY) {
        return Err(format!(
            "the ID token was issued in the future ({iat}, now {now})"
        ));
    }
    if iat.saturating_add(MAX_ID_TOKEN_AGE + LEEWAY) < now {
        return Err(format!(
            "the ID token was issued too long ago ({iat}, now {now})"
        ));
    }
    match text("nonce") {
        Some(n) if crate::secret::equal(n, expected.nonce) => {}
        Some(_) => return Err("the ID token's nonce is not the one Doorman sent".into()),
        None => return Err("the ID token carries no nonce".into()),
    }
    if text("sub").is_none_or(str::is_empty) {
        return Err("the ID token has no sub".into());
    }
    Ok(())
}

/// Which claims hold what (the provider's settings).
#[derive(Debug, Clone, Copy)]
pub struct ClaimNames<'a> {
    pub subject: &'a str,
    pub name: &'a str,
    pub email: &'a str,
    pub groups: &'a str,
}

/// A claim as text: strings as they are, numbers written out (a numeric subject).
fn claim_text(claims: &Map<String, Value>, name: &str) -> Option<String> {
    match claims.get(name)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Whether UserInfo is worth asking (OpenID Connect Core §5.3): the ID token lacks a claim
/// Doorman reads.
pub fn needs_userinfo(
    claims: &Map<String, Value>,
    names: &ClaimNames<'_>,
    groups_wanted: bool,
) -> bool {
    [names.name, names.email]
        .iter()
        .any(|n| !claims.contains_key(*n))
        || (groups_wanted && !claims.contains_key(names.groups))
}

/// Adds UserInfo claims to the ID token's (those it lacks), after checking that UserInfo speaks
/// of the same person (OpenID Connect Core §5.3.2: its `sub` must equal the ID token's).
pub fn merge_userinfo(
    claims: &mut Map<String, Value>,
    userinfo: &Map<String, Value>,
) -> Result<(), String> {
    if userinfo.get("sub") != claims.get("sub") {
        return Err("the UserInfo response is about another subject than the ID token".into());
    }
    for (k, v) in userinfo {
        claims.entry(k.clone()).or_insert_with(|| v.clone());
    }
    Ok(())
}

/// The person the claims describe.
pub fn identity(claims: &Map<String, Value>, names: &ClaimNames<'_>) -> Result<Identity, String> {
    let subject = claim_text(claims, names.subject).ok_or_else(|| {
        format!(
            "the claims carry no {:?} (the subject claim)",
            names.subject
        )
    })?;
    let email = claim_text(claims, names.email);
    let verified = match claims.get("email_verified") {
        Some(Value::Bool(b)) => *b,
        // Some providers send the boolean as text.
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    };
    let groups = match claims.get(names.groups) {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|g| match g {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    };
    Ok(Identity {
        subject,
        username: claim_text(claims, "preferred_username"),
        name: claim_text(claims, names.name),
        verified_emails: email
            .iter()
            .filter(|_| verified)
            .map(|e| e.to_ascii_lowercase())
            .collect(),
        email,
        groups,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    const ISSUER: &str = "https://op.example";
    const NOW: u64 = 1_700_000_000;

    /// An Ed25519 key pair (RFC 8037 appendix A.1): the private key as PKCS#8 PEM, the public
    /// key as a JWK.
    const ED_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n-----END PRIVATE KEY-----\n";
    const ED_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    fn keys(kid: &str) -> JwkSet {
        serde_json::from_value(json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "x": ED_X, "kid": kid, "use": "sig", "alg": "EdDSA"}
        ]}))
        .expect("jwks")
    }

    fn claims() -> Value {
        json!({
            "iss": ISSUER, "aud": "doorman", "sub": "248289761001", "exp": NOW + 300,
            "iat": NOW - 5, "nonce": "n-0S6_WzA2Mj", "email": "Alice@Example.com",
            "email_verified": true, "name": "Alice", "groups": ["staff"]
        })
    }

    fn sign(claims: &Value, kid: Option<&str>) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = kid.map(str::to_owned);
        let key = EncodingKey::from_ed_pem(ED_PRIVATE.as_bytes()).expect("key");
        jsonwebtoken::encode(&header, claims, &key).expect("sign")
    }

    fn expected() -> Expected<'static> {
        Expected {
            issuer: ISSUER,
            client_id: "doorman",
            nonce: "n-0S6_WzA2Mj",
            algorithms: ALGORITHMS,
        }
    }

    fn with(change: impl FnOnce(&mut Map<String, Value>)) -> Map<String, Value> {
        let Value::Object(mut m) = claims() else {
            unreachable!()
        };
        change(&mut m);
        m
    }

    #[test]
    fn a_genuine_id_token_verifies_and_yields_its_claims() {
        let token = sign(&claims(), Some("k1"));

        let verified = verify_id_token(&token, &keys("k1"), &expected(), NOW);

        assert_eq!(
            verified.map(|c| c["sub"].clone()),
            Ok(json!("248289761001"))
        );
    }

    #[test]
    fn a_token_signed_with_an_unknown_key_asks_for_the_key_set_again() {
        let token = sign(&claims(), Some("rotated"));

        assert_eq!(
            verify_id_token(&token, &keys("k1"), &expected(), NOW),
            Err(IdTokenError::UnknownKey("rotated".into()))
        );
        assert!(
            verify_id_token(&sign(&claims(), None), &keys("k1"), &expected(), NOW).is_ok(),
            "no kid, one key"
        );
    }

    #[test]
    fn a_tampered_token_does_not_verify() {
        let token = sign(&claims(), Some("k1"));
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut forged = claims();
        forged["sub"] = json!("someone-else");
        parts[1] = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            forged.to_string(),
        );
        let token = parts.join(".");

        let refused = verify_id_token(&token, &keys("k1"), &expected(), NOW);

        assert!(
            matches!(&refused, Err(IdTokenError::Invalid(why)) if why.contains("signature")),
            "{refused:?}"
        );
    }

    #[test]
    fn unsigned_and_symmetric_tokens_are_refused() {
        let none = format!(
            "{}.{}.",
            base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                r#"{"alg":"none"}"#
            ),
            base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                claims().to_string()
            )
        );
        let hmac = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims(),
            &EncodingKey::from_secret(b"the client secret"),
        )
        .expect("sign");

        assert!(verify_id_token(&none, &keys("k1"), &expected(), NOW).is_err());
        assert!(verify_id_token(&hmac, &keys("k1"), &expected(), NOW).is_err());
    }

    #[test]
    fn every_claim_check_of_core_3_1_3_7() {
        let ok = |m: Map<String, Value>| check_claims(&m, &expected(), NOW);

        assert_eq!(ok(with(|_| {})), Ok(()));
        assert!(
            ok(with(|m| {
                m.insert("iss".into(), json!("https://evil.example"));
            }))
            .is_err()
        );
        assert!(
            ok(with(|m| {
                m.insert("aud".into(), json!("someone-else"));
            }))
            .is_err()
        );
        assert!(
            ok(with(|m| {
                m.insert("aud".into(), json!(["doorman", "other"]));
            }))
            .is_err(),
            "several audiences need azp"
        );
        assert!(
            ok(with(|m| {
                m.insert("aud".into(), json!(["doorman", "other"]));
                m.insert("azp".into(), json!("doorman"));
            }))
            .is_ok()
        );
        assert!(
            ok(with(|m| {
                m.insert("azp".into(), json!("other"));
            }))
            .is_err()
        );
        assert!(
            ok(with(|m| {
                m.insert("exp".into(), json!(NOW - LEEWAY));
            }))
            .is_err(),
            "expired"
        );
        assert!(
            ok(with(|m| {
                m.insert("exp".into(), json!(NOW - LEEWAY + 1));
            }))
            .is_ok(),
            "within the leeway"
        );
        assert!(
            ok(with(|m| {
                m.remove("exp");
            }))
            .is_err()
        );
        assert!(
            ok(with(|m| {
                m.insert("iat".into(), json!(NOW + LEEWAY + 1));
            }))
            .is_err(),
            "future"
        );
        assert!(
            ok(with(|m| {
                m.insert("iat".into(), json!(NOW - MAX_ID_TOKEN_AGE - LEEWAY - 1));
            }))
            .is_err(),
            "old"
        );
        assert!(
            ok(with(|m| {
                m.remove("iat");
            }))
            .is_err()
        );
        assert!(
            ok(with(|m| {
                m.insert("nonce".into(), json!("another"));
            }))
            .is_err()
        );
        assert!(
            ok(with(|m| {
                m.remove("nonce");
            }))
            .is_err()
        );
        assert!(
            ok(with(|m| {
                m.remove("sub");
            }))
            .is_err()
        );
    }

    fn doc() -> Value {
        json!({
            "issuer": ISSUER,
            "authorization_endpoint": "https://op.example/auth",
            "token_endpoint": "https://op.example/token",
            "jwks_uri": "https://op.example/jwks",
            "userinfo_endpoint": "https://op.example/me",
            "response_types_supported": ["code", "id_token"],
            "id_token_signing_alg_values_supported": ["RS256", "HS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": true
        })
    }

    fn discovered(change: impl FnOnce(&mut Value)) -> Result<ProviderMetadata, String> {
        let mut d = doc();
        change(&mut d);
        check_discovery(&serde_json::from_value(d).expect("document"), ISSUER)
    }

    #[test]
    fn a_good_discovery_document_is_read() {
        let meta = discovered(|_| {}).expect("usable");

        assert_eq!(meta.token_endpoint, "https://op.example/token");
        assert_eq!(
            meta.algorithms,
            vec![Algorithm::RS256],
            "HS256 is never accepted"
        );
        assert_eq!(meta.client_auth, ClientAuth::Post);
        assert!(meta.sends_iss);
        assert_eq!(
            discovery_url("https://tenant.auth0.com/"),
            "https://tenant.auth0.com/.well-known/openid-configuration"
        );
    }

    #[test]
    fn a_wrong_discovery_document_is_refused() {
        assert!(
            discovered(|d| d["issuer"] = json!("https://evil.example")).is_err(),
            "issuer must match"
        );
        assert!(
            discovered(|d| d["issuer"] = json!("https://op.example/")).is_err(),
            "exactly"
        );
        assert!(
            discovered(|d| d["token_endpoint"] = json!("http://op.example/token")).is_err(),
            "https"
        );
        assert!(
            discovered(|d| d["id_token_signing_alg_values_supported"] = json!(["none", "HS256"]))
                .is_err()
        );
        assert!(discovered(|d| d["response_types_supported"] = json!(["id_token"])).is_err());
        assert!(discovered(|d| d["code_challenge_methods_supported"] = json!(["plain"])).is_err());
        assert!(
            discovered(|d| d["token_endpoint_auth_methods_supported"] = json!(["private_key_jwt"]))
                .is_err()
        );
        assert!(
            serde_json::from_value::<Discovery>(json!({"issuer": ISSUER})).is_err(),
            "endpoints required"
        );
    }

    #[test]
    fn loopback_http_is_accepted_only_for_a_loopback_issuer() {
        let local = "http://127.0.0.1:9000";
        let mut d = doc();
        d["issuer"] = json!(local);
        d["token_endpoint"] = json!("http://127.0.0.1:9000/token");

        assert!(check_discovery(&serde_json::from_value(d).expect("doc"), local).is_ok());
    }

    #[test]
    fn claims_become_an_identity_with_only_verified_addresses_counted() {
        let names = ClaimNames {
            subject: "sub",
            name: "name",
            email: "email",
            groups: "groups",
        };

        let who = identity(&with(|_| {}), &names).expect("identity");
        let unverified = identity(
            &with(|m| {
                m.insert("email_verified".into(), json!("false"));
            }),
            &names,
        )
        .expect("identity");
        let numeric = identity(
            &with(|m| {
                m.insert("oid".into(), json!(42));
            }),
            &ClaimNames {
                subject: "oid",
                ..names
            },
        )
        .expect("identity");

        assert_eq!(who.subject, "248289761001");
        assert_eq!(who.verified_emails, vec!["alice@example.com"]);
        assert_eq!(who.email.as_deref(), Some("Alice@Example.com"));
        assert_eq!(who.groups, vec!["staff"]);
        assert!(unverified.verified_emails.is_empty());
        assert_eq!(numeric.subject, "42");
        assert!(
            identity(
                &with(|m| {
                    m.remove("sub");
                }),
                &names
            )
            .is_err()
        );
    }

    #[test]
    fn userinfo_fills_in_only_for_the_same_subject() {
        let mut claims = with(|m| {
            m.remove("email");
        });
        let Value::Object(other) = json!({"sub": "someone", "email": "x@y.example"}) else {
            unreachable!()
        };
        let Value::Object(same) =
            json!({"sub": "248289761001", "email": "a@example.com", "name": "Not Alice"})
        else {
            unreachable!()
        };
        let names = ClaimNames {
            subject: "sub",
            name: "name",
            email: "email",
            groups: "groups",
        };

        assert!(needs_userinfo(&claims, &names, false));
        assert!(merge_userinfo(&mut claims, &other).is_err());
        assert_eq!(merge_userinfo(&mut claims, &same), Ok(()));
        assert_eq!(claims["email"], json!("a@example.com"));
        assert_eq!(claims["name"], json!("Alice"), "the ID token's claims stay");
        assert!(!needs_userinfo(&claims, &names, true));
    }
}
