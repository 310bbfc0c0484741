//! The records Doorman keeps: plain data shared by the protocol rules, the store and the flows.
//! A leaf: it imports nothing from the crate. Secrets never appear here in clear, only hashed.

use serde::{Deserialize, Serialize};

pub const GRANT_AUTHORIZATION_CODE: &str = "authorization_code";
pub const GRANT_REFRESH_TOKEN: &str = "refresh_token";
pub const GRANT_CLIENT_CREDENTIALS: &str = "client_credentials";

/// Token endpoint authentication methods Doorman supports (RFC 7591 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    None,
    ClientSecretBasic,
    ClientSecretPost,
}

/// Client metadata as stored and echoed (RFC 7591 §2), after validation and normalisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientMetadata {
    pub redirect_uris: Vec<String>,
    pub token_endpoint_auth_method: AuthMethod,
    pub grant_types: Vec<String>,
    pub response_types: Vec<String>,
    pub application_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tos_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_version: Option<String>,
}

impl ClientMetadata {
    pub fn is_confidential(&self) -> bool {
        self.token_endpoint_auth_method != AuthMethod::None
    }
    pub fn has_grant(&self, grant: &str) -> bool {
        self.grant_types.iter().any(|g| g == grant)
    }
}

/// Who made a registration. Anyone may register a client (RFC 7591), so a self-registered
/// client is trusted with nothing the operator did not grant to everyone (docs/behaviour.md
/// §11).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegisteredBy {
    /// Open registration: the client registered itself.
    #[default]
    Client,
    /// The operator: `doorman clients register`, or registration with the initial access token.
    Operator,
    /// Nobody: the client_id is the URL of a Client ID Metadata Document, which anyone can
    /// publish (docs/behaviour.md §12). Trusted like a self-registered client.
    Document,
}

/// A resource server (an MCP server) the operator declared: it may introspect tokens.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceServer {
    /// The resources (RFC 8707) it serves, normalised; empty = any.
    #[serde(default)]
    pub resources: Vec<String>,
}

/// A registered client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Client {
    pub client_id: String,
    /// SHA-256 of the client secret; `None` for public clients.
    pub secret_hash: Option<String>,
    /// SHA-256 of the RFC 7592 registration access token.
    pub registration_token_hash: String,
    pub metadata: ClientMetadata,
    /// Seconds since the Unix epoch.
    pub issued_at: u64,
    /// When the registration lapses (seconds since the epoch); 0 = never.
    pub expires_at: u64,
    #[serde(default)]
    pub registered_by: RegisteredBy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_server: Option<ResourceServer>,
    /// Whether a code was ever issued to it; until then it lapses after
    /// `registration.unused_ttl`.
    #[serde(default)]
    pub used: bool,
    /// When it was last used (a code issued or a token refreshed), noted at most once a day;
    /// a self-registered client idle for `registration.idle_ttl` lapses. 0 = never noted.
    #[serde(default)]
    pub last_used: u64,
}

impl Client {
    /// Whether the registration is still in force at `now`.
    pub fn is_current(&self, now: u64) -> bool {
        self.expires_at == 0 || self.expires_at > now
    }

    /// Whether the operator made this registration.
    pub fn by_operator(&self) -> bool {
        self.registered_by == RegisteredBy::Operator
    }

    /// The name shown to people.
    pub fn display_name(&self) -> &str {
        self.metadata
            .client_name
            .as_deref()
            .unwrap_or("An unnamed application")
    }
}

/// A Client ID Metadata Document as fetched, kept in the shared store so that every process
/// sees the same copy (docs/behaviour.md §12). Validated again whenever it is used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedDocument {
    /// The document, as served (at most 5 KiB).
    pub body: String,
    /// Seconds since the epoch, by the app clock.
    pub fetched_at: u64,
    /// Until then it is used without fetching it again.
    pub fresh_until: u64,
    /// Until then it is still used when fetching it again fails (stale-if-error).
    pub stale_until: u64,
}

/// An authorization request that passed every check before sign-in (docs/behaviour.md §4
/// steps 1–4): what the code will be bound to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthRequest {
    pub client_id: String,
    pub redirect_uri: String,
    /// Whether `redirect_uri` was sent (then it must be sent again at /token).
    pub redirect_uri_sent: bool,
    pub state: Option<String>,
    pub code_challenge: String,
    pub scopes: Vec<String>,
    pub resource: Option<String>,
}

/// A sign-in in progress: an authorization request waiting for sign-in and consent, or a
/// sign-in to the account page; any process can continue it.
/// Stored under the hash of its id, which only the person's browser knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRequest {
    /// Ties the sign-in and consent forms to this request (CSRF).
    pub csrf: String,
    /// SHA-256 of the browser cookie of the browser that started it: only that browser may
    /// sign in or decide (login CSRF).
    pub browser: String,
    /// Wrong passwords so far; at `login.max_failures` the request is gone.
    #[serde(default)]
    pub failures: u32,
    /// The authorization request the sign-in continues; none for a sign-in to the account page.
    pub request: Option<AuthRequest>,
    /// Seconds since the epoch; checked against the app clock as well as the store's TTL.
    pub expires_at: u64,
}

/// A signed-in person. Stored under the hash of the session id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The subject: a password user's name, `dev`, or `{provider}:{subject}` after an upstream
    /// sign-in (docs/behaviour.md §14).
    pub username: String,
    pub auth_time: u64,
    /// Who the identity provider said this is, after an upstream sign-in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<Upstream>,
}

/// Who signed in through an identity provider, as the provider described them; kept on the
/// session, the code and every token issued from it, so introspection (and the operator's
/// listings) can tell who it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upstream {
    /// The provider's `id` from the settings.
    pub provider: String,
    /// The person's name, as the provider gave it (`name_claim`; GitHub: name, else login).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The e-mail address, as the provider gave it (`email_claim`; GitHub: the primary
    /// verified address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

impl Upstream {
    /// The name people read: the name, else the e-mail address.
    pub fn display_name(&self) -> Option<&str> {
        self.name.as_deref().or(self.email.as_deref())
    }
}

/// An upstream sign-in in progress (docs/behaviour.md §14): what the callback needs to finish
/// it. Stored under the hash of the `state` sent to the provider, single use, bound to the
/// browser that started it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamLogin {
    /// The pending authorization request it signs in for.
    pub request_id: String,
    /// The provider's `id`.
    pub provider: String,
    /// The PKCE verifier (RFC 7636) of the request to the provider.
    pub verifier: String,
    /// The OpenID Connect `nonce` the ID token must carry.
    pub nonce: String,
    /// SHA-256 of the browser's round-trip cookie.
    pub browser: String,
    /// Seconds since the epoch; checked against the app clock as well as the store's TTL.
    pub expires_at: u64,
}

/// An authorization code (stored under the hash of the code), single-use, ≤ 5 minutes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthCode {
    pub client_id: String,
    pub redirect_uri: String,
    pub redirect_uri_sent: bool,
    pub code_challenge: String,
    pub scopes: Vec<String>,
    pub resource: Option<String>,
    pub username: String,
    pub expires_at: u64,
    /// The token family this code starts (so a replay can revoke it).
    pub family_id: String,
    /// The grant it was issued under.
    #[serde(default)]
    pub grant_id: Option<String>,
    /// Who signed in, after an upstream sign-in; handed on to the tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<Upstream>,
}

/// Everything issued from one grant: a replayed code or a reused refresh token revokes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Family {
    pub client_id: String,
    pub revoked: bool,
}

/// An access or refresh token (stored under the hash of the token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    pub client_id: String,
    /// The resource owner's username, or the client_id for client_credentials.
    pub subject: String,
    pub scopes: Vec<String>,
    pub resource: Option<String>,
    pub family_id: Option<String>,
    /// The person's grant it was issued under (none for client_credentials).
    #[serde(default)]
    pub grant_id: Option<String>,
    pub issued_at: u64,
    pub expires_at: u64,
    /// Who signed in, after an upstream sign-in (its provider and name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<Upstream>,
}

/// Which kind of token a value was issued as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
}

/// What a person approved for one client: the scopes, the resource, and whether the approval
/// is remembered (for the exact redirect URI approved: RFC 8252 §8.6, a native client's
/// identity cannot be proven). Every code and token issued under it names its `id`; revoking
/// the grant (the account page) removes it, which ends them all at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Random; a grant revoked and approved again is a new grant.
    pub id: String,
    pub client_id: String,
    /// Every scope approved so far (a step-up adds to them).
    pub scopes: Vec<String>,
    pub resource: Option<String>,
    /// The redirect URI of the remembered approval.
    pub redirect_uri: String,
    /// Until when the approval is remembered (seconds since the epoch); 0 = ask every time.
    pub remember_until: u64,
    pub first_use: u64,
    pub last_use: u64,
    /// When the grant is forgotten unless used again (the longest a token of it can live).
    pub expires_at: u64,
}

/// The JWS algorithm access tokens are signed with (RFC 7518 §3.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Algorithm {
    /// ECDSA with P-256 and SHA-256: small keys and signatures, cheap to sign.
    #[default]
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, for resource servers that only know RSA.
    RS256,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Self::ES256 => "ES256",
            Self::RS256 => "RS256",
        }
    }
}

/// A key that signs access tokens (docs/behaviour.md §13), kept in the store so that every
/// process signs with the same keys. The private key is stored in clear: the store is as
/// trusted as the process (docs/security.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKey {
    /// The RFC 7638 thumbprint of its public key.
    pub kid: String,
    pub alg: Algorithm,
    /// The private key, PKCS#8 PEM.
    pub pem: String,
    /// When it was made (seconds since the epoch).
    pub created_at: u64,
    /// From when it signs; published in the JWKS from the moment it is stored, so verifiers
    /// know it before the first token it signs.
    pub signs_from: u64,
}

/// Every signing key the store holds, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySet {
    pub keys: Vec<SigningKey>,
}
