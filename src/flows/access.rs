//! Checking a bearer access token of either format (docs/behaviour.md §13), for the gate and
//! anything else that serves resources: RFC 6750 §3.1 `invalid_token` material.
//!
//! Every token, JWT or opaque, has its record in the store under the hash of the whole token,
//! written when it was issued and removed when it is revoked. Finding the record therefore
//! proves the token is ours, whatever its format, and the signature of a JWT is checked only
//! when there is no record, to say why the token is refused. So a token in force costs one
//! store read and the checks of `tokens::active` (no signature check, nothing to cache), and a
//! revoked token is refused at once.

use super::{Ctx, Problem, tokens};
use crate::oauth::jwt::{self, JwtError};
use crate::records::{self, TokenKind};
use crate::store::Backend;

/// Why a bearer token is refused (RFC 6750 error_description material).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Unknown,
    Malformed,
    BadSignature,
    Expired,
    Revoked,
}

impl Refusal {
    /// A sentence for `error_description` (RFC 6750 §3).
    pub fn description(self) -> &'static str {
        match self {
            Self::Unknown => "The access token is not one this server issued, or it has expired.",
            Self::Malformed => "The access token is malformed.",
            Self::BadSignature => "The access token's signature does not verify.",
            Self::Expired => "The access token has expired.",
            Self::Revoked => "The access token has been revoked.",
        }
    }
}

/// Checks a bearer access token of either format: Ok(Ok(record)) when in force.
pub async fn verify(
    ctx: &Ctx<'_>,
    bearer: &str,
) -> Result<Result<records::Token, Refusal>, Problem> {
    if bearer.is_empty() || bearer.len() > 8192 || !bearer.bytes().all(is_token68) {
        return Ok(Err(Refusal::Malformed));
    }
    if let Some(record) = ctx.store.token(TokenKind::Access, bearer).await? {
        return Ok(if record.expires_at <= ctx.now {
            Err(Refusal::Expired)
        } else if tokens::active(ctx, &record).await? {
            Ok(record)
        } else {
            Err(Refusal::Revoked)
        });
    }
    if !jwt::looks_like_jwt(bearer) {
        return Ok(Err(Refusal::Unknown));
    }
    // No record: say why, from the token itself.
    let kid = match jwt::kid(bearer) {
        Ok(kid) => kid,
        Err(_) => return Ok(Err(Refusal::Malformed)),
    };
    let Some(key) = ctx.signing.find(ctx, &kid).await? else {
        return Ok(Err(Refusal::Unknown));
    };
    Ok(Err(
        match jwt::verify(bearer, &key.pair, &ctx.endpoints.issuer) {
            Ok(claims) if claims.exp <= ctx.now => Refusal::Expired,
            // Ours, in date, and its record is gone: revoked.
            Ok(_) => Refusal::Revoked,
            Err(JwtError::BadSignature) => Refusal::BadSignature,
            Err(JwtError::UnknownKey | JwtError::OtherIssuer) => Refusal::Unknown,
            Err(JwtError::Malformed) => Refusal::Malformed,
        },
    ))
}

/// RFC 6750 §2.1 `b64token` characters.
fn is_token68(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
}

#[cfg(test)]
mod tests {
    use super::Refusal;

    #[test]
    fn every_refusal_has_a_sentence() {
        for r in [
            Refusal::Unknown,
            Refusal::Malformed,
            Refusal::BadSignature,
            Refusal::Expired,
            Refusal::Revoked,
        ] {
            assert!(r.description().ends_with('.'), "{r:?}");
        }
    }
}
