//! The key layout, private to the store. Secret values (codes, tokens, session and pending
//! request ids, usernames) appear in keys only as their SHA-256 hash.

use crate::records::TokenKind;
use crate::secret::hash;

pub const CLIENT: &str = "client:";

pub fn client(client_id: &str) -> String {
    // `concat` rather than `format!`: this runs on every authorization request.
    [CLIENT, client_id].concat()
}
pub fn pending(id: &str) -> String {
    format!("pending:{}", hash(id))
}
pub fn session(id: &str) -> String {
    format!("session:{}", hash(id))
}
pub fn code(code: &str) -> String {
    format!("code:{}", hash(code))
}
pub fn token(kind: TokenKind, token: &str) -> String {
    match kind {
        TokenKind::Access => format!("at:{}", hash(token)),
        TokenKind::Refresh => format!("rt:{}", hash(token)),
    }
}
pub fn family(id: &str) -> String {
    format!("family:{id}")
}
/// A person's grants: one map, a field per client.
pub fn grants(username: &str) -> String {
    format!("grants:{}", hash(username))
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
    format!("upstream:{}", hash(state))
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
