//! Checking a bearer access token presented to a resource (the gate, docs/behaviour.md §13):
//! is it one of ours, and is it in force? Opaque tokens only: looked up in the store, so a
//! revoked token is refused at once.

use super::{Ctx, Problem, tokens};
use crate::records::{self, TokenKind};
use crate::store::Backend;

/// Why a bearer token is refused (RFC 6750 §3.1 `invalid_token`, each with its sentence).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not a token this server issued (or one it has forgotten).
    Unknown,
    /// Not shaped like any token this server issues.
    Malformed,
    /// A signed token whose signature does not verify.
    BadSignature,
    Expired,
    /// Revoked: by its client, by the person (the account page), or with its client.
    Revoked,
}

impl Refusal {
    /// A human sentence, sent as `error_description`.
    pub fn description(self) -> &'static str {
        match self {
            Refusal::Unknown => "The access token is not known to this server.",
            Refusal::Malformed => "The access token is malformed.",
            Refusal::BadSignature => "The access token's signature is not valid.",
            Refusal::Expired => "The access token has expired.",
            Refusal::Revoked => "The access token has been revoked.",
        }
    }
}

/// Opaque tokens are 256-bit random values in base64url: 43 characters.
fn well_formed(bearer: &str) -> bool {
    (16..=512).contains(&bearer.len())
        && bearer.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'+' | b'/' | b'=')
        })
}

/// Checks a bearer access token: `Ok(Ok(record))` when in force.
pub async fn verify(
    ctx: &Ctx<'_>,
    bearer: &str,
) -> Result<Result<records::Token, Refusal>, Problem> {
    if !well_formed(bearer) {
        return Ok(Err(Refusal::Malformed));
    }
    // A token revoked on its own is deleted from the store, so it reads as unknown; one
    // revoked with its family, its grant or its client is still there and reads as revoked.
    let Some(token) = ctx.store.token(TokenKind::Access, bearer).await? else {
        return Ok(Err(Refusal::Unknown));
    };
    if token.expires_at <= ctx.now {
        return Ok(Err(Refusal::Expired));
    }
    if !tokens::active(ctx, &token).await? {
        return Ok(Err(Refusal::Revoked));
    }
    Ok(Ok(token))
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_token_shaped_values_are_looked_up() {
        assert!(super::well_formed(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        ));
        assert!(!super::well_formed("short"));
        assert!(!super::well_formed("has space in the middle of it, oh no"));
        assert!(!super::well_formed(&"a".repeat(600)));
    }
}
