//! Client metadata validation for dynamic registration (RFC 7591 §2, §3.2.2; RFC 7592 §2.2),
//! with the leniency real MCP clients need (docs/behaviour.md §9).

use serde::Deserialize;

use super::errors::{ErrorCode, OAuthError};
use super::redirect_uri::{self, UriKind};
use super::scope;
use crate::records::{
    AuthMethod, ClientMetadata, GRANT_AUTHORIZATION_CODE, GRANT_CLIENT_CREDENTIALS,
    GRANT_REFRESH_TOKEN,
};

/// Which form field an error belongs to, so the HTML form can show it in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    ClientName,
    RedirectUris,
    ClientType,
    Scope,
    Other,
}

/// A refused registration: the RFC error and the field it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterError {
    pub error: OAuthError,
    pub field: Field,
}

impl RegisterError {
    /// An `invalid_client_metadata` refusal about `field`.
    pub fn metadata(field: Field, description: impl Into<String>) -> Self {
        Self {
            error: OAuthError::new(ErrorCode::InvalidClientMetadata, description),
            field,
        }
    }
    fn redirect(description: impl Into<String>) -> Self {
        Self {
            error: OAuthError::new(ErrorCode::InvalidRedirectUri, description),
            field: Field::RedirectUris,
        }
    }
}

/// Client metadata as sent. Unknown members are ignored (RFC 7591 §2); a known member of the
/// wrong JSON type is an `invalid_client_metadata` error.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct MetadataInput {
    pub redirect_uris: Option<Vec<String>>,
    pub token_endpoint_auth_method: Option<String>,
    pub grant_types: Option<Vec<String>>,
    pub response_types: Option<Vec<String>>,
    pub application_type: Option<String>,
    pub client_name: Option<String>,
    pub client_uri: Option<String>,
    pub logo_uri: Option<String>,
    pub tos_uri: Option<String>,
    pub policy_uri: Option<String>,
    pub scope: Option<String>,
    pub contacts: Option<Vec<String>>,
    pub software_id: Option<String>,
    pub software_version: Option<String>,
}

const MAX_REDIRECT_URIS: usize = 32;
const MAX_TEXT: usize = 256;
const MAX_URI: usize = 2000;
const MAX_CONTACTS: usize = 16;
const MAX_SCOPE: usize = 2000;

/// Unicode format characters (general category Cf): bidirectional overrides and isolates,
/// zero-width characters, tags. Shown on a consent page they can make a name read as another
/// (`\u{202E}` turns "evil.example/moc.elgoog" around), so no name may contain them.
pub fn is_format_control(c: char) -> bool {
    matches!(c as u32,
        0x00AD | 0x0600..=0x0605 | 0x061C | 0x06DD | 0x070F | 0x0890..=0x0891 | 0x08E2
        | 0x180E | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F
        | 0xFEFF | 0xFFF9..=0xFFFB | 0x110BD | 0x110CD | 0x13430..=0x1343F
        | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F)
}

/// Parses a JSON registration body; malformed JSON is `invalid_client_metadata`, never a 500.
pub fn parse_json(body: &[u8]) -> Result<MetadataInput, RegisterError> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        RegisterError::metadata(
            Field::Other,
            format!("the request body is not valid JSON ({e})"),
        )
    })?;
    if !value.is_object() {
        return Err(RegisterError::metadata(
            Field::Other,
            "the request body must be a JSON object",
        ));
    }
    serde_json::from_value(value).map_err(|e| {
        RegisterError::metadata(
            Field::Other,
            format!("a client metadata member has the wrong type ({e})"),
        )
    })
}

/// Validates and normalises client metadata. `supported_scopes` narrows `scope` (§9).
pub fn validate(
    input: MetadataInput,
    supported_scopes: &[String],
) -> Result<ClientMetadata, RegisterError> {
    let auth_method = match input.token_endpoint_auth_method.as_deref() {
        None | Some("client_secret_basic") => AuthMethod::ClientSecretBasic,
        Some("client_secret_post") => AuthMethod::ClientSecretPost,
        Some("none") => AuthMethod::None,
        Some(other) => {
            return Err(RegisterError::metadata(
                Field::ClientType,
                format!(
                    "token_endpoint_auth_method {other:?} is not supported; use none, client_secret_basic or client_secret_post"
                ),
            ));
        }
    };

    // Unknown grant types (e.g. the device-code URN) are dropped, not refused (§9).
    let requested_grants = input
        .grant_types
        .unwrap_or_else(|| vec![GRANT_AUTHORIZATION_CODE.into(), GRANT_REFRESH_TOKEN.into()]);
    let mut grant_types: Vec<String> = Vec::new();
    for g in [
        GRANT_AUTHORIZATION_CODE,
        GRANT_REFRESH_TOKEN,
        GRANT_CLIENT_CREDENTIALS,
    ] {
        let public_cc = g == GRANT_CLIENT_CREDENTIALS && auth_method == AuthMethod::None;
        if requested_grants.iter().any(|r| r == g) && !public_cc {
            grant_types.push(g.to_owned());
        }
    }
    let has_code = grant_types.iter().any(|g| g == GRANT_AUTHORIZATION_CODE);
    if !has_code && !grant_types.iter().any(|g| g == GRANT_CLIENT_CREDENTIALS) {
        return Err(RegisterError::metadata(
            Field::Other,
            "no usable grant type: register authorization_code (public or confidential) or client_credentials (confidential)",
        ));
    }

    let response_types = match input.response_types {
        None if has_code => vec!["code".to_owned()],
        None => Vec::new(),
        Some(list) => {
            if let Some(bad) = list.iter().find(|r| r.as_str() != "code") {
                return Err(RegisterError::metadata(
                    Field::Other,
                    format!("response type {bad:?} is not supported; only \"code\" is"),
                ));
            }
            if has_code && list.is_empty() {
                vec!["code".to_owned()]
            } else {
                let mut l = list;
                l.dedup();
                l
            }
        }
    };

    let redirect_uris = input.redirect_uris.unwrap_or_default();
    if has_code && redirect_uris.is_empty() {
        return Err(RegisterError::redirect(
            "redirect_uris is required and must list at least one URI",
        ));
    }
    if redirect_uris.len() > MAX_REDIRECT_URIS {
        return Err(RegisterError::redirect(format!(
            "at most {MAX_REDIRECT_URIS} redirect URIs may be registered"
        )));
    }
    let mut any_native = false;
    for uri in &redirect_uris {
        match redirect_uri::validate_for_registration(uri) {
            Ok(UriKind::Native) => any_native = true,
            Ok(UriKind::Web) => {}
            Err(msg) => return Err(RegisterError::redirect(msg)),
        }
    }
    // OpenID DCR application_type; a web declaration with native URIs becomes native (§9).
    let application_type = match input.application_type.as_deref() {
        None | Some("native") => "native",
        Some("web") if any_native => "native",
        Some("web") => "web",
        Some(other) => {
            return Err(RegisterError::metadata(
                Field::ClientType,
                format!("application_type {other:?} is not supported; use native or web"),
            ));
        }
    };

    let text = |name: &str,
                value: Option<String>,
                field: Field|
     -> Result<Option<String>, RegisterError> {
        match value {
            Some(v) if v.chars().count() > MAX_TEXT => Err(RegisterError::metadata(
                field,
                format!("{name} is longer than {MAX_TEXT} characters"),
            )),
            Some(v) if v.chars().any(|c| c.is_control() || is_format_control(c)) => {
                Err(RegisterError::metadata(
                    field,
                    format!(
                        "{name} must not contain control or invisible formatting characters (such as right-to-left overrides)"
                    ),
                ))
            }
            Some(v) if v.trim().is_empty() => Ok(None),
            other => Ok(other),
        }
    };
    let web_uri = |name: &str, value: Option<String>| -> Result<Option<String>, RegisterError> {
        let Some(v) = value.filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        let ok = v.len() <= MAX_URI
            && url::Url::parse(&v).is_ok_and(|u| {
                u.scheme() == "https"
                    || (u.scheme() == "http" && redirect_uri::is_loopback_host(&u))
            });
        if ok {
            Ok(Some(v))
        } else {
            Err(RegisterError::metadata(
                Field::Other,
                format!("{name} must be an https URL of at most {MAX_URI} bytes"),
            ))
        }
    };

    let scope = match input.scope {
        Some(s) if s.len() > MAX_SCOPE => {
            return Err(RegisterError::metadata(
                Field::Scope,
                format!("scope is longer than {MAX_SCOPE} bytes"),
            ));
        }
        Some(s) => {
            Some(scope::join(&scope::narrow(&s, supported_scopes))).filter(|s| !s.is_empty())
        }
        None => None,
    };

    let contacts = input.contacts.unwrap_or_default();
    if contacts.len() > MAX_CONTACTS || contacts.iter().any(|c| c.len() > MAX_TEXT) {
        return Err(RegisterError::metadata(
            Field::Other,
            format!(
                "contacts may list at most {MAX_CONTACTS} addresses of at most {MAX_TEXT} bytes"
            ),
        ));
    }

    Ok(ClientMetadata {
        redirect_uris,
        token_endpoint_auth_method: auth_method,
        grant_types,
        response_types,
        application_type: application_type.to_owned(),
        client_name: text("client_name", input.client_name, Field::ClientName)?,
        client_uri: web_uri("client_uri", input.client_uri)?,
        logo_uri: web_uri("logo_uri", input.logo_uri)?,
        tos_uri: web_uri("tos_uri", input.tos_uri)?,
        policy_uri: web_uri("policy_uri", input.policy_uri)?,
        scope,
        contacts,
        software_id: text("software_id", input.software_id, Field::Other)?,
        software_version: text("software_version", input.software_version, Field::Other)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn supported() -> Vec<String> {
        vec!["mcp".into(), "offline_access".into()]
    }

    fn input(json: &str) -> MetadataInput {
        parse_json(json.as_bytes()).unwrap_or_else(|e| panic!("{e:?}"))
    }

    #[test]
    fn defaults_follow_rfc7591() {
        let m = validate(
            input(r#"{"redirect_uris":["https://app.example/cb"]}"#),
            &supported(),
        )
        .unwrap();

        assert_eq!(m.grant_types, vec!["authorization_code", "refresh_token"]);
        assert_eq!(m.response_types, vec!["code"]);
        assert_eq!(m.token_endpoint_auth_method, AuthMethod::ClientSecretBasic);
        assert_eq!(m.application_type, "native");
    }

    #[test]
    fn device_code_grant_is_dropped_and_web_with_loopback_becomes_native() {
        let m = validate(
            input(r#"{"redirect_uris":["http://localhost/"],"application_type":"web","token_endpoint_auth_method":"none",
                      "grant_types":["authorization_code","refresh_token","urn:ietf:params:oauth:grant-type:device_code"]}"#),
            &supported(),
        )
        .unwrap();

        assert_eq!(m.grant_types, vec!["authorization_code", "refresh_token"]);
        assert_eq!(m.application_type, "native");
    }

    #[test]
    fn unsupported_scopes_are_dropped_and_empty_scope_is_absent() {
        let narrowed = validate(
            input(r#"{"redirect_uris":["http://localhost/"],"scope":"openid mcp"}"#),
            &supported(),
        )
        .unwrap();
        let empty = validate(
            input(r#"{"redirect_uris":["http://localhost/"],"scope":""}"#),
            &supported(),
        )
        .unwrap();

        assert_eq!(narrowed.scope.as_deref(), Some("mcp"));
        assert_eq!(empty.scope, None);
    }

    #[test]
    fn refusals_carry_the_rfc_code() {
        let cases = [
            (r#"{}"#, ErrorCode::InvalidRedirectUri),
            (r#"{"redirect_uris":[]}"#, ErrorCode::InvalidRedirectUri),
            (
                r#"{"redirect_uris":["javascript:alert(1)"]}"#,
                ErrorCode::InvalidRedirectUri,
            ),
            (
                r#"{"redirect_uris":["http://localhost/"],"response_types":["token"]}"#,
                ErrorCode::InvalidClientMetadata,
            ),
            (
                r#"{"redirect_uris":["http://localhost/"],"token_endpoint_auth_method":"private_key_jwt"}"#,
                ErrorCode::InvalidClientMetadata,
            ),
            (
                r#"{"redirect_uris":["http://localhost/"],"grant_types":["implicit"]}"#,
                ErrorCode::InvalidClientMetadata,
            ),
            (
                r#"{"redirect_uris":["http://localhost/"],"grant_types":["client_credentials"],"token_endpoint_auth_method":"none"}"#,
                ErrorCode::InvalidClientMetadata,
            ),
            (
                r#"{"redirect_uris":["http://localhost/"],"application_type":"desktop"}"#,
                ErrorCode::InvalidClientMetadata,
            ),
        ];
        for (json, code) in cases {
            assert_eq!(
                validate(input(json), &supported()).unwrap_err().error.code,
                code,
                "{json}"
            );
        }
        assert_eq!(
            parse_json(b"{not json").unwrap_err().error.code,
            ErrorCode::InvalidClientMetadata
        );
        assert_eq!(
            parse_json(br#"{"redirect_uris":"x"}"#)
                .unwrap_err()
                .error
                .code,
            ErrorCode::InvalidClientMetadata
        );
        assert_eq!(
            parse_json(b"[1]").unwrap_err().error.code,
            ErrorCode::InvalidClientMetadata
        );
    }
}
