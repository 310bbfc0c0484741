//! The RFC 8414 metadata document and every URL derived from `issuer`. All hint URLs anywhere in
//! Doorman come from here, so they cannot disagree. Built once at start-up.

use serde_json::json;
use url::Url;

use crate::settings::Settings;

/// Public URLs of this server, derived from the issuer.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub issuer: String,
    /// The issuer's origin (`https://auth.example.com`), which its pages' forms come from.
    pub origin: String,
    /// `__Host-` on an https issuer without a path (the cookies are then Secure, Path=/ and
    /// bound to this host, RFC 6265bis §4.1.3.2), otherwise nothing.
    pub cookie_prefix: &'static str,
    /// The issuer's path ("" or e.g. "/auth"); routes are mounted under it.
    pub base_path: String,
    pub authorization: String,
    pub token: String,
    /// `None` when registration is disabled.
    pub registration: Option<String>,
    pub revocation: String,
    pub introspection: String,
    /// The public keys that verify JWT access tokens (RFC 8414 §2 `jwks_uri`).
    pub jwks: String,
    /// RFC 8414 §3.1: `/.well-known/oauth-authorization-server` inserted before the path.
    pub metadata: String,
    pub documentation: String,
}

/// The metadata document, serialised once.
#[derive(Debug, Clone)]
pub struct Metadata {
    pub endpoints: Endpoints,
    pub json: bytes::Bytes,
}

pub const WELL_KNOWN: &str = "/.well-known/oauth-authorization-server";
pub const OPENID_WELL_KNOWN: &str = "/.well-known/openid-configuration";
pub const PROJECT_DOCS: &str = "https://github.com/doorman-oauth/doorman#readme";

impl Metadata {
    pub fn build(settings: &Settings) -> Self {
        let issuer = settings.issuer.clone();
        let (origin, base_path) = match Url::parse(&issuer) {
            Ok(u) => {
                let origin = u.origin().ascii_serialization();
                let path = u.path().trim_end_matches('/').to_owned();
                (origin, path)
            }
            Err(_) => (issuer.clone(), String::new()),
        };
        let at = |p: &str| format!("{issuer}{p}");
        let documentation = if settings.branding.documentation.is_empty() {
            PROJECT_DOCS.to_owned()
        } else {
            settings.branding.documentation.clone()
        };
        let endpoints = Endpoints {
            authorization: at("/authorize"),
            token: at("/token"),
            registration: settings.registration.enabled.then(|| at("/register")),
            revocation: at("/revoke"),
            introspection: at("/introspect"),
            jwks: at("/jwks.json"),
            metadata: format!("{origin}{WELL_KNOWN}{base_path}"),
            documentation,
            cookie_prefix: if issuer.starts_with("https://") && base_path.is_empty() {
                "__Host-"
            } else {
                ""
            },
            origin,
            issuer,
            base_path,
        };
        let mut doc = json!({
            "issuer": endpoints.issuer,
            "authorization_endpoint": endpoints.authorization,
            "token_endpoint": endpoints.token,
            "revocation_endpoint": endpoints.revocation,
            "introspection_endpoint": endpoints.introspection,
            "jwks_uri": endpoints.jwks,
            "scopes_supported": settings.scopes.supported,
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "authorization_response_iss_parameter_supported": true,
            // docs/behaviour.md §12; Claude uses a document only when this is true and
            // `none` is among the token endpoint's methods.
            "client_id_metadata_document_supported": settings.cimd.enabled,
            "service_documentation": endpoints.documentation,
        });
        if let (Some(reg), Some(obj)) = (&endpoints.registration, doc.as_object_mut()) {
            obj.insert("registration_endpoint".into(), json!(reg));
        }
        let json = bytes::Bytes::from(serde_json::to_vec_pretty(&doc).unwrap_or_default());
        Self { endpoints, json }
    }
}
