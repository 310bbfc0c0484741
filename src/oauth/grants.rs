//! Token endpoint rules (RFC 6749 §3.2.1, §4.1.3, §6; OAuth 2.1 §4.1.3, §4.3; RFC 8707 §2.2):
//! client authentication and the checks of each grant. No I/O; time is a parameter.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::errors::{ErrorCode, OAuthError};
use super::params::Params;
use super::{pkce, resource, scope};
use crate::records::{AuthCode, AuthMethod, Client, Token};
use crate::secret;

/// How the client presented itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub client_id: String,
    pub secret: Option<String>,
    /// Whether HTTP Basic was used (a 401 then carries `WWW-Authenticate: Basic`).
    pub basic: bool,
}

/// A client authentication failure: `401 invalid_client` (or `400 invalid_request`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFailure {
    pub error: OAuthError,
    pub basic: bool,
}

fn invalid_client(description: &str, basic: bool) -> AuthFailure {
    AuthFailure {
        error: OAuthError::new(ErrorCode::InvalidClient, description),
        basic,
    }
}

/// Reads the client's credentials from `Authorization: Basic` or the body, never both
/// (RFC 6749 §2.3.1). Basic's id and secret are form-urlencoded before base64.
pub fn credentials(
    authorization: Option<&str>,
    params: &Params<'_>,
) -> Result<Credentials, AuthFailure> {
    let body_id = params.get("client_id");
    let body_secret = params.get("client_secret");
    if let Some(value) = authorization {
        let Some((scheme, encoded)) = value.split_once(' ') else {
            return Err(invalid_client(
                "The Authorization header is malformed.",
                true,
            ));
        };
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(invalid_client(
                "Use HTTP Basic or client_secret_post to authenticate the client.",
                true,
            ));
        }
        if body_secret.is_some() {
            return Err(AuthFailure {
                error: OAuthError::new(
                    ErrorCode::InvalidRequest,
                    "Use only one client authentication method, not Basic and client_secret together.",
                ),
                basic: true,
            });
        }
        let decoded = STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| invalid_client("The Basic credentials are not valid base64.", true))?;
        let (id, secret) = decoded
            .split_once(':')
            .ok_or_else(|| invalid_client("The Basic credentials have no ':' separator.", true))?;
        let id = form_decode(id);
        if body_id.is_some_and(|b| b != id) {
            return Err(invalid_client(
                "The client_id in the body differs from the Basic credentials.",
                true,
            ));
        }
        return Ok(Credentials {
            client_id: id,
            secret: Some(form_decode(secret)),
            basic: true,
        });
    }
    match body_id {
        Some(id) => Ok(Credentials {
            client_id: id.to_owned(),
            secret: body_secret.map(str::to_owned),
            basic: false,
        }),
        None => Err(invalid_client(
            "The client is not identified: send client_id (public clients) or authenticate.",
            false,
        )),
    }
}

fn form_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Checks credentials against the stored client. A confidential client may use Basic or the
/// body whatever it registered (docs/behaviour.md §9); a public client never has a secret.
pub fn authenticate(
    creds: &Credentials,
    client: Option<&Client>,
    now: u64,
) -> Result<(), AuthFailure> {
    let Some(client) = client.filter(|c| c.is_current(now)) else {
        return Err(invalid_client(
            "The client is not registered with this server (or its registration expired).",
            creds.basic,
        ));
    };
    match (&client.secret_hash, &creds.secret) {
        (Some(hash), Some(s)) if secret::verify(s, hash) => Ok(()),
        (Some(_), Some(_)) => Err(invalid_client("The client secret is wrong.", creds.basic)),
        (Some(_), None) => Err(invalid_client(
            "This client is confidential: authenticate with its client secret.",
            creds.basic,
        )),
        (None, None) if client.metadata.token_endpoint_auth_method == AuthMethod::None => Ok(()),
        (None, _) => Err(invalid_client(
            "This public client has no secret; send only its client_id.",
            creds.basic,
        )),
    }
}

fn grant_error(code: ErrorCode, description: impl Into<String>) -> OAuthError {
    OAuthError::new(code, description)
}

/// RFC 6749 §4.1.3 and RFC 7636 §4.6: the checks of a redeemed authorization code.
pub fn check_code(
    code: &AuthCode,
    client_id: &str,
    params: &Params<'_>,
    now: u64,
) -> Result<(), OAuthError> {
    if code.client_id != client_id {
        return Err(grant_error(
            ErrorCode::InvalidGrant,
            "The code was issued to another client.",
        ));
    }
    if code.expires_at <= now {
        return Err(grant_error(
            ErrorCode::InvalidGrant,
            "The code has expired.",
        ));
    }
    match params.get("redirect_uri") {
        Some(r) if r != code.redirect_uri => {
            return Err(grant_error(
                ErrorCode::InvalidGrant,
                "The redirect_uri differs from the one used at the authorization endpoint.",
            ));
        }
        None if code.redirect_uri_sent => {
            return Err(grant_error(
                ErrorCode::InvalidRequest,
                "The redirect_uri is required because it was sent at the authorization endpoint.",
            ));
        }
        _ => {}
    }
    let Some(verifier) = params.get("code_verifier") else {
        return Err(grant_error(
            ErrorCode::InvalidRequest,
            "The code_verifier is required (PKCE).",
        ));
    };
    if !pkce::verify_s256(verifier, &code.code_challenge) {
        return Err(grant_error(
            ErrorCode::InvalidGrant,
            "The code_verifier does not match the code_challenge.",
        ));
    }
    check_resource(params, code.resource.as_deref())
}

/// RFC 8707 §2.2: a `resource` at the token endpoint must be the one the grant is bound to.
pub fn check_resource(params: &Params, bound: Option<&str>) -> Result<(), OAuthError> {
    let bound = bound.and_then(resource::normalize);
    for r in params.all("resource") {
        let normalized = resource::normalize(r);
        if normalized.is_none() || normalized != bound {
            return Err(grant_error(
                ErrorCode::InvalidTarget,
                format!("The resource {r:?} is not the one this grant was issued for."),
            ));
        }
    }
    Ok(())
}

/// The scopes for a refreshed access token: the same or narrower, never wider (RFC 6749 §6).
pub fn refresh_scopes(granted: &[String], params: &Params<'_>) -> Result<Vec<String>, OAuthError> {
    let Some(requested) = params.get("scope") else {
        return Ok(granted.to_vec());
    };
    let mut out = Vec::new();
    for s in scope::split(requested) {
        if !granted.iter().any(|g| g == s) {
            return Err(grant_error(
                ErrorCode::InvalidScope,
                format!("The scope {s:?} was not granted; a refresh may only narrow the scope."),
            ));
        }
        if !out.iter().any(|o: &String| o == s) {
            out.push(s.to_owned());
        }
    }
    Ok(out)
}

/// The checks of a refresh token that was found (and taken) in the store.
pub fn check_refresh(token: &Token, client_id: &str, now: u64) -> Result<(), OAuthError> {
    if token.client_id != client_id {
        return Err(grant_error(
            ErrorCode::InvalidGrant,
            "The refresh token was issued to another client.",
        ));
    }
    if token.expires_at <= now {
        return Err(grant_error(
            ErrorCode::InvalidGrant,
            "The refresh token has expired.",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(now: u64) -> AuthCode {
        AuthCode {
            client_id: "c".into(),
            redirect_uri: "http://localhost:5000/cb".into(),
            redirect_uri_sent: true,
            code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
            scopes: vec!["mcp".into()],
            resource: Some("https://mcp.example.com/".into()),
            username: "alice".into(),
            expires_at: now + 300,
            family_id: "f".into(),
            grant_id: None,
            upstream: None,
        }
    }

    const OK: &str = "redirect_uri=http://localhost:5000/cb&code_verifier=dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

    #[test]
    fn code_checks_client_expiry_redirect_verifier_and_resource() {
        let c = code(1000);

        assert_eq!(
            check_code(&c, "c", &Params::parse(OK.as_bytes()), 1000),
            Ok(())
        );
        assert_eq!(
            check_code(&c, "other", &Params::parse(OK.as_bytes()), 1000)
                .unwrap_err()
                .code,
            ErrorCode::InvalidGrant
        );
        assert_eq!(
            check_code(&c, "c", &Params::parse(OK.as_bytes()), 1300)
                .unwrap_err()
                .code,
            ErrorCode::InvalidGrant
        );
        let wrong_verifier = OK.replace("dBj", "xBj");
        assert_eq!(
            check_code(&c, "c", &Params::parse(wrong_verifier.as_bytes()), 1000)
                .unwrap_err()
                .code,
            ErrorCode::InvalidGrant
        );
        let no_redirect = "code_verifier=dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_eq!(
            check_code(&c, "c", &Params::parse(no_redirect.as_bytes()), 1000)
                .unwrap_err()
                .code,
            ErrorCode::InvalidRequest
        );
        let other_resource = format!("{OK}&resource=https://other.example.com/");
        assert_eq!(
            check_code(&c, "c", &Params::parse(other_resource.as_bytes()), 1000)
                .unwrap_err()
                .code,
            ErrorCode::InvalidTarget
        );
        let same_resource = format!("{OK}&resource=HTTPS://MCP.example.com");
        assert_eq!(
            check_code(&c, "c", &Params::parse(same_resource.as_bytes()), 1000),
            Ok(())
        );
    }

    #[test]
    fn refresh_may_narrow_but_not_widen() {
        let granted = vec!["mcp".to_owned(), "offline_access".to_owned()];

        assert_eq!(
            refresh_scopes(&granted, &Params::parse(b"scope=mcp")).unwrap(),
            vec!["mcp"]
        );
        assert_eq!(
            refresh_scopes(&granted, &Params::parse(b"")).unwrap(),
            granted
        );
        assert_eq!(
            refresh_scopes(&granted, &Params::parse(b"scope=mcp%20admin"))
                .unwrap_err()
                .code,
            ErrorCode::InvalidScope
        );
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let header = format!("Basic {}", STANDARD.encode("my%3Aid:s%2Bcret"));

        let creds = credentials(Some(&header), &Params::parse(b"")).unwrap();
        assert_eq!(
            creds,
            Credentials {
                client_id: "my:id".into(),
                secret: Some("s+cret".into()),
                basic: true
            }
        );
        assert!(credentials(Some(&header), &Params::parse(b"client_secret=x")).is_err());
        assert!(credentials(None, &Params::parse(b"")).is_err());
    }
}
