//! The use cases, one file per family: clients (register, read, update, delete), authorization
//! (validate, sign in, consent, issue a code), tokens (exchange, refresh, client credentials,
//! revoke, introspect), sessions and the upstream sign-in at identity providers. They take parsed input and return typed outcomes; they
//! know nothing of actix or HTTP. Handlers call one flow and hand its outcome to a renderer.

pub mod access;
pub mod account;
pub mod authorization;
pub mod cimd;
pub mod clients;
pub mod gate;
pub mod grants;
pub mod guard;
pub mod keys;
pub mod sessions;
pub mod tokens;
pub mod upstream;

use crate::metadata::Endpoints;
use crate::oauth::errors::{ErrorCode, OAuthError};
use crate::settings::Settings;
use crate::store::{Store, StoreError};

/// Seconds a client should wait before retrying after a storage outage.
pub const RETRY_AFTER_SECS: u64 = 5;

/// What every flow works with: the settings, the store, the server's URLs, its keys, the
/// document fetcher, and the time of the request by the app clock.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    pub settings: &'a Settings,
    pub store: &'a Store,
    pub endpoints: &'a Endpoints,
    pub keys: &'a sessions::ServerKeys,
    pub guard: &'a guard::SignInGuard,
    /// The metadata document fetcher (docs/behaviour.md §12).
    pub documents: &'a cimd::Documents,
    /// The identity providers' clients and caches (docs/behaviour.md §14).
    pub upstream: &'a upstream::Providers,
    /// The keys that sign JWT access tokens (docs/behaviour.md §13).
    pub signing: &'a keys::TokenKeys,
    pub now: u64,
}

/// The server's rules for the scopes and resource of a grant, from the settings.
pub fn target_policy(s: &Settings) -> crate::oauth::target::Policy<'_> {
    crate::oauth::target::Policy {
        supported_scopes: &s.scopes.supported,
        default_scopes: &s.scopes.default,
        allowed_resources: &s.resources.allowed,
        require_resource: s.resources.require,
        default_resource: Some(s.resources.default.as_str()).filter(|d| !d.is_empty()),
    }
}

/// What the authorization flows need to know of a browser's request besides its parameters:
/// its address (for rate limits), its cookies, and where a form was sent from.
#[derive(Debug, Clone, Copy, Default)]
pub struct Browser<'a> {
    pub address: Option<std::net::IpAddr>,
    /// The `Cookie` header.
    pub cookies: Option<&'a str>,
    /// The `Origin` header.
    pub origin: Option<&'a str>,
    /// The `Sec-Fetch-Site` header.
    pub fetch_site: Option<&'a str>,
    /// The prefix of this server's cookie names (`Endpoints::cookie_prefix`).
    pub cookie_prefix: &'static str,
}

impl<'a> Browser<'a> {
    /// Whether a form POST came from one of this server's own pages (`issuer_origin`, e.g.
    /// `https://auth.example.com`): `Sec-Fetch-Site: same-origin` where the browser sends it;
    /// otherwise no `Origin` naming another site. Our pages send no referrer, so their own
    /// forms may arrive with `Origin: null`, which is therefore not refused; the browser
    /// binding of a sign-in (a SameSite=Strict cookie) covers that case.
    pub fn form_is_ours(&self, issuer_origin: &str) -> bool {
        match (self.fetch_site, self.origin) {
            (Some(site), _) => site.eq_ignore_ascii_case("same-origin"),
            (None, Some(origin)) => origin == "null" || origin.eq_ignore_ascii_case(issuer_origin),
            (None, None) => true,
        }
    }

    /// The value of this server's cookie `name` (with the server's prefix).
    pub fn cookie(&self, name: &str) -> Option<&'a str> {
        self.cookies?.split(';').find_map(|pair| {
            let (n, v) = pair.trim().split_once('=')?;
            (n.strip_prefix(self.cookie_prefix)? == name).then(|| v.trim_matches('"'))
        })
    }
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
    /// An identity provider answered with something unusable (docs/behaviour.md §14).
    Upstream,
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
    fn forms_from_other_sites_are_told_apart() {
        let ours = "https://as.example";
        let browser = |fetch_site, origin| super::Browser {
            fetch_site,
            origin,
            ..Default::default()
        };

        assert!(browser(Some("same-origin"), Some("null")).form_is_ours(ours));
        assert!(!browser(Some("cross-site"), Some(ours)).form_is_ours(ours));
        assert!(!browser(Some("same-site"), None).form_is_ours(ours));
        assert!(browser(None, Some("https://AS.example")).form_is_ours(ours));
        assert!(browser(None, Some("null")).form_is_ours(ours));
        assert!(!browser(None, Some("https://evil.example")).form_is_ours(ours));
        assert!(browser(None, None).form_is_ours(ours));
    }

    #[test]
    fn a_cookie_is_found_by_its_exact_name_and_prefix() {
        let header = "a=1; doorman_session=x.y;doorman_csrf=\"q\"; doorman_session2=z; __Host-b=2";
        let plain = super::Browser {
            cookies: Some(header),
            ..Default::default()
        };
        let host = super::Browser {
            cookie_prefix: "__Host-",
            ..plain
        };

        assert_eq!(plain.cookie("doorman_session"), Some("x.y"));
        assert_eq!(plain.cookie("doorman_csrf"), Some("q"));
        assert_eq!(plain.cookie("doorman"), None);
        assert_eq!(plain.cookie("b"), None, "not without its prefix");
        assert_eq!(host.cookie("b"), Some("2"));
        assert_eq!(
            host.cookie("a"),
            None,
            "a prefixed server reads only prefixed cookies"
        );
        assert_eq!(super::Browser::default().cookie("a"), None);
    }
}
