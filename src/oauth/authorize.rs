//! The authorization request (OAuth 2.1 §4.1.1, docs/behaviour.md §4): checks in contract
//! order, each failure a typed outcome that the renderers know how to show.

use url::Url;

use super::cimd::Failure;
use super::errors::{ErrorCode, OAuthError};
use super::params::Params;
use super::target::{self, Policy};
use super::{pkce, redirect_uri};
use crate::records::{AuthRequest, ClientMetadata, GRANT_AUTHORIZATION_CODE, GRANT_REFRESH_TOKEN};

/// Longest `state` echoed back (docs/behaviour.md §9: up to 4 KiB, byte-exact).
pub const MAX_STATE: usize = 4096;

/// Why a client is not known here; typed, never guessed from a message (docs/behaviour.md
/// §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnknownReason {
    /// Never registered, or forgotten.
    Unknown,
    /// Its registration lapsed.
    Expired,
    /// Its client_id is a metadata document URL, and the document could not be used
    /// (docs/behaviour.md §12); the failure says what failed.
    CimdFailed(Failure),
    /// This server does not register clients; the person must ask the operator.
    RegistrationDisabled,
}

impl UnknownReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Expired => "expired",
            Self::CimdFailed(_) => "cimd_failed",
            Self::RegistrationDisabled => "registration_disabled",
        }
    }
}

/// What the server knows about the client named in the request.
pub enum ClientLookup<'a> {
    Found {
        metadata: &'a ClientMetadata,
        expires_at: u64,
        /// Described by a metadata document: a redirect URI it does not list is a failure of
        /// the document's client (`cimd_failed`), told as such.
        document: bool,
    },
    NotFound,
}

/// The server's rules for this step.
pub struct Rules<'a> {
    pub registration_enabled: bool,
    pub target: Policy<'a>,
}

/// The outcome of validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Answered directly, never redirected (steps 1 and 3).
    Direct(OAuthError),
    /// The client is not known (step 2).
    Unregistered {
        client_id: String,
        reason: UnknownReason,
    },
    /// Redirected to the validated redirect URI (step 4).
    RedirectError {
        redirect_uri: String,
        error: OAuthError,
        state: Option<String>,
    },
    /// All checks passed.
    Valid(AuthRequest),
}

/// Step 1: the client_id, or the direct error.
pub fn client_id<'p>(params: &'p Params<'_>) -> Result<&'p str, OAuthError> {
    if params.is_repeated("client_id") {
        return Err(OAuthError::new(
            ErrorCode::InvalidRequest,
            "The client_id parameter was sent more than once.",
        ));
    }
    params
        .get("client_id")
        .ok_or_else(|| OAuthError::new(ErrorCode::InvalidRequest, "The request has no client_id parameter, so this server cannot tell which application is asking."))
}

/// Steps 2–4, given the lookup result of step 2 and the current time.
pub fn validate(
    params: &Params<'_>,
    client_id: &str,
    lookup: ClientLookup<'_>,
    rules: &Rules<'_>,
    now: u64,
) -> Outcome {
    // Step 2: decided before any other parameter is looked at.
    let document = matches!(lookup, ClientLookup::Found { document: true, .. });
    let metadata = match lookup {
        ClientLookup::NotFound => {
            let reason = if rules.registration_enabled {
                UnknownReason::Unknown
            } else {
                UnknownReason::RegistrationDisabled
            };
            return Outcome::Unregistered {
                client_id: client_id.to_owned(),
                reason,
            };
        }
        ClientLookup::Found { expires_at, .. } if expires_at != 0 && expires_at <= now => {
            return Outcome::Unregistered {
                client_id: client_id.to_owned(),
                reason: UnknownReason::Expired,
            };
        }
        ClientLookup::Found { metadata, .. } => metadata,
    };

    // Step 3: the redirect URI, or a direct error. Never redirect to an unvalidated URI
    // (RFC 6749 §4.1.2.1).
    if params.is_repeated("redirect_uri") {
        return Outcome::Direct(OAuthError::new(
            ErrorCode::InvalidRequest,
            "The redirect_uri parameter was sent more than once.",
        ));
    }
    let (redirect_uri, redirect_uri_sent) = match params.get("redirect_uri") {
        Some(requested) => match redirect_uri::find_match(requested, &metadata.redirect_uris) {
            Some(_) => (requested.to_owned(), true),
            None if document => {
                return Outcome::Unregistered {
                    client_id: client_id.to_owned(),
                    reason: UnknownReason::CimdFailed(Failure::RedirectUriNotListed {
                        requested: requested.to_owned(),
                        listed: metadata.redirect_uris.clone(),
                    }),
                };
            }
            None => {
                return Outcome::Direct(OAuthError::new(
                    ErrorCode::InvalidRequest,
                    format!(
                        "The redirect_uri {requested:?} is not registered for this client. It was compared with: {}.",
                        registered_list(&metadata.redirect_uris)
                    ),
                ));
            }
        },
        None => match metadata.redirect_uris.as_slice() {
            [only] => (only.clone(), false),
            _ => {
                return Outcome::Direct(OAuthError::new(
                    ErrorCode::InvalidRequest,
                    format!(
                        "The redirect_uri parameter is required because this client registered several: {}.",
                        registered_list(&metadata.redirect_uris)
                    ),
                ));
            }
        },
    };

    // Step 4: errors from here on are redirected with state and iss.
    let state = params.get("state").map(str::to_owned);
    let redirect =
        |code: ErrorCode, description: String, state: Option<String>| Outcome::RedirectError {
            redirect_uri: redirect_uri.clone(),
            error: OAuthError::new(code, description),
            state,
        };
    if state.as_ref().is_some_and(|s| s.len() > MAX_STATE) {
        return redirect(
            ErrorCode::InvalidRequest,
            format!("The state parameter is longer than {MAX_STATE} bytes."),
            None,
        );
    }
    if let Some(name) = params.first_repeated() {
        return redirect(
            ErrorCode::InvalidRequest,
            format!("The {name} parameter was sent more than once."),
            state,
        );
    }
    match params.get("response_type") {
        Some("code") => {}
        None => {
            return redirect(
                ErrorCode::InvalidRequest,
                "The response_type parameter is required; use \"code\".".into(),
                state,
            );
        }
        Some(other) => {
            return redirect(
                ErrorCode::UnsupportedResponseType,
                format!("The response_type {other:?} is not supported; only \"code\" is."),
                state,
            );
        }
    }
    if !metadata.has_grant(GRANT_AUTHORIZATION_CODE) {
        return redirect(
            ErrorCode::UnauthorizedClient,
            "This client is not registered for the authorization_code grant.".into(),
            state,
        );
    }
    let code_challenge = match params.get("code_challenge") {
        Some(c) if pkce::is_valid_challenge_or_verifier(c) => c.to_owned(),
        Some(_) => {
            return redirect(
                ErrorCode::InvalidRequest,
                "The code_challenge must be 43 to 128 characters of A-Z, a-z, 0-9, '-', '.', '_' and '~'.".into(),
                state,
            );
        }
        None => {
            return redirect(
                ErrorCode::InvalidRequest,
                "PKCE is required: send code_challenge and code_challenge_method=S256.".into(),
                state,
            );
        }
    };
    match params.get("code_challenge_method") {
        None | Some("S256") => {}
        Some(other) => {
            return redirect(
                ErrorCode::InvalidRequest,
                format!("The code_challenge_method {other:?} is not supported; use S256."),
                state,
            );
        }
    }

    let offline = metadata.has_grant(GRANT_REFRESH_TOKEN);
    let registered = target::registered_scopes(metadata);
    let target = match target::resolve(
        params.get("scope"),
        &params.all("resource"),
        &rules.target,
        registered.as_deref(),
        offline,
    ) {
        Ok(t) => t,
        Err(e) => return redirect(e.code, e.description, state),
    };

    Outcome::Valid(AuthRequest {
        client_id: client_id.to_owned(),
        redirect_uri,
        redirect_uri_sent,
        state,
        code_challenge,
        scopes: target.scopes,
        resource: target.resource,
    })
}

fn registered_list(uris: &[String]) -> String {
    uris.iter()
        .map(|u| format!("{u:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Builds the redirect for an authorization response: the validated URI plus `params`, plus
/// `state` verbatim when present and `iss` (RFC 9207). Built with `Url`, never concatenation.
pub fn redirect_url(
    redirect_uri: &str,
    params: &[(&str, &str)],
    state: Option<&str>,
    issuer: &str,
) -> Option<String> {
    let mut url = Url::parse(redirect_uri).ok()?;
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
        if let Some(s) = state {
            q.append_pair("state", s);
        }
        q.append_pair("iss", issuer);
    }
    Some(url.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::register::{self, MetadataInput};

    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn metadata(uris: &[&str]) -> ClientMetadata {
        let input = MetadataInput {
            redirect_uris: Some(uris.iter().map(|s| (*s).to_owned()).collect()),
            token_endpoint_auth_method: Some("none".into()),
            ..Default::default()
        };
        register::validate(input, &["mcp".into()]).unwrap()
    }

    fn policy<'a>(supported: &'a [String], default: &'a [String]) -> Rules<'a> {
        Rules {
            registration_enabled: true,
            target: Policy {
                supported_scopes: supported,
                default_scopes: default,
                allowed_resources: &[],
                ..Default::default()
            },
        }
    }

    fn run(query: &str, m: &ClientMetadata, expires_at: u64, now: u64) -> Outcome {
        let supported = vec!["mcp".to_owned(), "offline_access".to_owned()];
        let default = vec!["mcp".to_owned()];
        let params = Params::parse(query.as_bytes());
        let id = client_id(&params).unwrap();
        validate(
            &params,
            id,
            ClientLookup::Found {
                metadata: m,
                expires_at,
                document: false,
            },
            &policy(&supported, &default),
            now,
        )
    }

    #[test]
    fn unknown_client_is_decided_before_anything_else() {
        let params = Params::parse(b"client_id=x&response_type=token&redirect_uri=javascript:1");
        let out = validate(&params, "x", ClientLookup::NotFound, &policy(&[], &[]), 0);

        assert_eq!(
            out,
            Outcome::Unregistered {
                client_id: "x".into(),
                reason: UnknownReason::Unknown
            }
        );
    }

    #[test]
    fn lapsed_registration_is_expired() {
        let m = metadata(&["http://localhost/cb"]);

        assert!(matches!(
            run("client_id=c", &m, 100, 100),
            Outcome::Unregistered {
                reason: UnknownReason::Expired,
                ..
            }
        ));
        assert!(!matches!(
            run("client_id=c", &m, 101, 100),
            Outcome::Unregistered { .. }
        ));
    }

    #[test]
    fn bad_redirect_uri_is_direct_and_names_registered_uris() {
        let m = metadata(&["http://localhost/cb", "https://app.example/cb"]);

        let Outcome::Direct(e) = run("client_id=c&redirect_uri=https://evil.example/cb", &m, 0, 0)
        else {
            panic!()
        };
        assert!(e.description.contains("https://app.example/cb"));
        assert!(
            matches!(run("client_id=c", &m, 0, 0), Outcome::Direct(_)),
            "omitted with two registered"
        );
    }

    #[test]
    fn a_redirect_uri_a_document_does_not_list_is_a_document_failure() {
        let m = metadata(&["http://localhost/callback", "https://app.example/cb"]);
        let supported = vec!["mcp".to_owned()];
        let run_document = |query: &str| {
            let params = Params::parse(query.as_bytes());
            validate(
                &params,
                "https://app.example/client.json",
                ClientLookup::Found {
                    metadata: &m,
                    expires_at: 0,
                    document: true,
                },
                &policy(&supported, &[]),
                0,
            )
        };

        let Outcome::Unregistered {
            reason: UnknownReason::CimdFailed(f),
            ..
        } = run_document("redirect_uri=https://evil.example/cb")
        else {
            panic!("a document client's unlisted redirect URI is cimd_failed")
        };
        assert_eq!(f.code(), "redirect_uri_not_listed");
        assert!(f.to_string().contains("https://app.example/cb"), "{f}");
        assert!(
            !matches!(
                run_document("redirect_uri=http://localhost:50123/callback"),
                Outcome::Unregistered { .. } | Outcome::Direct(_)
            ),
            "loopback on any port, as for registered clients"
        );
    }

    #[test]
    fn step_four_errors_redirect_with_state() {
        let m = metadata(&["http://localhost/cb"]);
        let base = "client_id=c&redirect_uri=http://localhost:9/cb&state=s%20t";

        let cases = [
            ("&response_type=token", ErrorCode::UnsupportedResponseType),
            ("&response_type=code", ErrorCode::InvalidRequest),
            (
                &format!(
                    "&response_type=code&code_challenge={CHALLENGE}&code_challenge_method=plain"
                ),
                ErrorCode::InvalidRequest,
            ),
            (
                "&response_type=code&code_challenge=short",
                ErrorCode::InvalidRequest,
            ),
            (
                &format!("&response_type=code&code_challenge={CHALLENGE}&resource=https://x/%23f"),
                ErrorCode::InvalidTarget,
            ),
            (
                &format!(
                    "&response_type=code&code_challenge={CHALLENGE}&resource=http://example.com/"
                ),
                ErrorCode::InvalidTarget,
            ),
            (
                &format!("&response_type=code&code_challenge={CHALLENGE}&state=again"),
                ErrorCode::InvalidRequest,
            ),
        ];
        for (extra, code) in cases {
            match run(&format!("{base}{extra}"), &m, 0, 0) {
                Outcome::RedirectError {
                    error,
                    redirect_uri,
                    state,
                } => {
                    assert_eq!(error.code, code, "{extra}");
                    assert_eq!(redirect_uri, "http://localhost:9/cb");
                    if code != ErrorCode::InvalidRequest || !extra.contains("again") {
                        assert_eq!(state.as_deref(), Some("s t"));
                    }
                }
                other => panic!("{extra}: {other:?}"),
            }
        }
    }

    #[test]
    fn valid_request_narrows_scopes_and_uses_single_registered_uri() {
        let m = metadata(&["http://localhost/cb"]);

        let Outcome::Valid(v) = run(
            &format!(
                "client_id=c&response_type=code&code_challenge={CHALLENGE}&scope=openid%20mcp&resource=HTTPS://MCP.example.com"
            ),
            &m,
            0,
            0,
        ) else {
            panic!()
        };
        assert_eq!(v.redirect_uri, "http://localhost/cb");
        assert!(!v.redirect_uri_sent);
        assert_eq!(v.scopes, vec!["mcp"]);
        assert_eq!(
            v.resource.as_deref(),
            Some("HTTPS://MCP.example.com"),
            "as sent (docs/behaviour.md §13)"
        );
    }

    #[test]
    fn redirect_keeps_existing_query_and_adds_iss() {
        let url = redirect_url(
            "https://app.example/cb?x=1",
            &[("code", "abc")],
            Some("a&b=c"),
            "https://as.example",
        )
        .unwrap();

        assert_eq!(
            url,
            "https://app.example/cb?x=1&code=abc&state=a%26b%3Dc&iss=https%3A%2F%2Fas.example"
        );
    }
}
