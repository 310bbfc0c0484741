//! Records kept in the store. Secrets appear only as hashes.

use serde::{Deserialize, Serialize};

use crate::oauth::register::ClientMetadata;

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
}

/// An authorization request waiting for sign-in and consent; any process can continue it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRequest {
    pub id: String,
    /// Ties the sign-in and consent forms to this request (CSRF).
    pub csrf: String,
    pub request: crate::oauth::authorize::ValidRequest,
    /// Seconds since the epoch; checked against the app clock as well as the store's TTL.
    #[serde(default)]
    pub expires_at: u64,
}

/// A signed-in person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub username: String,
    pub auth_time: u64,
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
    pub issued_at: u64,
    pub expires_at: u64,
}

/// A person's remembered approval of a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    pub scopes: Vec<String>,
    pub resource: Option<String>,
    /// Seconds since the epoch; checked against the app clock as well as the store's TTL.
    #[serde(default)]
    pub expires_at: u64,
}
