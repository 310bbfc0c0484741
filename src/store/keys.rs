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
pub fn consent(username: &str, client_id: &str) -> String {
    format!("consent:{client_id}:{}", hash(username))
}
pub fn server_secret(name: &str) -> String {
    format!("meta:{name}")
}
pub fn upstream(state: &str) -> String {
    format!("upstream:{}", hash(state))
}
