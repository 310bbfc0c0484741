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
