//! The use cases, one file per family: clients (register, read, update, delete), authorization
//! (validate, sign in, consent, issue a code), tokens (exchange, refresh, client credentials,
//! revoke, introspect) and sessions. They take parsed input and return typed outcomes; they
//! know nothing of actix or HTTP. Handlers call one flow and hand its outcome to a renderer.

pub mod authorization;
pub mod clients;
pub mod sessions;
pub mod tokens;

use crate::metadata::Endpoints;
use crate::oauth::errors::{ErrorCode, OAuthError};
use crate::settings::Settings;
use crate::store::{Store, StoreError};

/// Seconds a client should wait before retrying after a storage outage.
pub const RETRY_AFTER_SECS: u64 = 5;

/// What every flow works with: the settings, the store, the server's URLs, its keys, and the
/// time of the request by the app clock.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    pub settings: &'a Settings,
    pub store: &'a Store,
    pub endpoints: &'a Endpoints,
    pub keys: &'a sessions::ServerKeys,
    pub now: u64,
}

/// The value of the cookie `name` in a `Cookie` header (RFC 6265 §5.4: `name=value` pairs
/// separated by `; `). Doorman's own cookie values are base64url, so nothing needs decoding.
pub fn cookie<'c>(header: Option<&'c str>, name: &str) -> Option<&'c str> {
    header?.split(';').find_map(|pair| {
        let (n, v) = pair.trim().split_once('=')?;
        (n == name).then(|| v.trim_matches('"'))
    })
}

/// A request that cannot be served, as a flow (or a handler reading the request) decides it:
/// the RFC error and its sentence, and what kind of failure it is. The renderers choose the
/// status and headers from `kind`; nothing below them names an HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub error: OAuthError,
    pub kind: Kind,
    /// The client the request named, when it is shown back (authorization errors).
    pub client_id: Option<String>,
    /// The request's `state`, echoed in direct authorization errors.
    pub state: Option<String>,
}

/// The kinds of failure, each answered its own way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The request is wrong (RFC 6749 §5.2).
    Request,
    /// Client authentication failed (RFC 6749 §5.2 `invalid_client`); `basic` when the client
    /// tried HTTP Basic, so the answer challenges that scheme.
    Client { basic: bool },
    /// A bearer token (initial or registration access token) is missing or wrong (RFC 6750 §3).
    Token,
    /// Not allowed: registration disabled, a form that was not sent from our page.
    Forbidden,
    /// The body is larger than allowed.
    TooLarge,
    /// Too many requests from one address; retry after so many seconds.
    TooMany { retry_after: u64 },
    /// Storage is unreachable; retry after so many seconds (docs/behaviour.md §2).
    Unavailable { retry_after: u64 },
    /// Something stored is unreadable; the operator is told in the log.
    Internal,
}

impl Problem {
    pub fn new(kind: Kind, code: ErrorCode, description: impl Into<String>) -> Self {
        Self {
            error: OAuthError::new(code, description),
            kind,
            client_id: None,
            state: None,
        }
    }

    /// A wrong request: the RFC error as it is.
    pub fn request(error: OAuthError) -> Self {
        Self {
            error,
            kind: Kind::Request,
            client_id: None,
            state: None,
        }
    }

    /// Shows the client id and `state` the request was sent with.
    pub fn about(mut self, client_id: Option<&str>, state: Option<&str>) -> Self {
        self.client_id = client_id.map(str::to_owned);
        self.state = state.map(str::to_owned);
        self
    }

    /// A body over the size limit (`limit` bytes).
    pub fn too_large(code: ErrorCode, limit: usize) -> Self {
        Self::new(
            Kind::TooLarge,
            code,
            format!("The request body is larger than {} KiB.", limit / 1024),
        )
    }

    /// A body that could not be read.
    pub fn unreadable(code: ErrorCode) -> Self {
        Self::new(Kind::Request, code, "The request body could not be read.")
    }
}

/// A storage failure as the caller sees it: retry later (never "client not registered",
/// never a backtrace), or an unreadable record. Logged here, once.
impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Self {
        log::error!("{e}");
        match e {
            StoreError::Corrupt { .. } => Problem::new(
                Kind::Internal,
                ErrorCode::ServerError,
                "A stored record could not be read; the operator has been told in the log.",
            ),
            _ => Problem::new(
                Kind::Unavailable {
                    retry_after: RETRY_AFTER_SECS,
                },
                ErrorCode::TemporarilyUnavailable,
                "The authorization server's storage is not reachable right now; please retry in a few seconds.",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_cookie_is_found_by_its_exact_name() {
        let header = Some("a=1; doorman_session=x.y;doorman_csrf=\"q\"; doorman_session2=z");

        assert_eq!(super::cookie(header, "doorman_session"), Some("x.y"));
        assert_eq!(super::cookie(header, "doorman_csrf"), Some("q"));
        assert_eq!(super::cookie(header, "doorman"), None);
        assert_eq!(super::cookie(None, "a"), None);
        assert_eq!(super::cookie(Some("broken"), "broken"), None);
    }
}
