//! What a grant is for: its scopes (RFC 6749 §3.3) and its resource (RFC 8707 §2), with the
//! defaults and the leniency of docs/behaviour.md §9. One rule for the authorization request
//! and for the client_credentials grant.

use super::errors::{ErrorCode, OAuthError};
use super::{resource, scope};
use crate::records::{Client, ClientMetadata};

/// The server's rules for scopes and resources.
#[derive(Debug, Clone, Copy, Default)]
pub struct Policy<'a> {
    pub supported_scopes: &'a [String],
    pub default_scopes: &'a [String],
    pub allowed_resources: &'a [String],
    /// A request must name a resource (unless there is a default).
    pub require_resource: bool,
    /// The resource of a request that names none.
    pub default_resource: Option<&'a str>,
}

/// The scopes and resource a grant will carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub scopes: Vec<String>,
    /// The resource indicator as the client sent it (docs/behaviour.md §13: `aud` echoes it;
    /// it is normalised only to be compared), if any.
    pub resource: Option<String>,
}

/// The scopes a client registered (RFC 7591 §2 `scope`), which bound what it may be granted;
/// `None` when it registered none.
pub fn registered_scopes(metadata: &ClientMetadata) -> Option<Vec<String>> {
    let registered = metadata.scope.as_deref()?;
    Some(
        scope::split(registered)
            .into_iter()
            .map(str::to_owned)
            .collect(),
    )
}

/// `scopes` without those the client did not register (all of them when it registered none).
pub fn within_client(scopes: &[String], client: &Client) -> Vec<String> {
    match registered_scopes(&client.metadata) {
        Some(registered) => scopes
            .iter()
            .filter(|s| registered.contains(s))
            .cloned()
            .collect(),
        None => scopes.to_vec(),
    }
}

/// Resolves the requested `scope` and `resource` values. Unknown scopes are dropped, not
/// refused, and so are scopes outside what the client registered (`registered`, when it did);
/// `offline_access` is kept only when `offline` (the client may refresh); nothing grantable
/// and no default is `invalid_scope`. At most one resource, which this server must serve
/// (`invalid_target`); none means the single allowed resource, if there is exactly one.
pub fn resolve(
    requested_scope: Option<&str>,
    resources: &[&str],
    policy: &Policy<'_>,
    registered: Option<&[String]>,
    offline: bool,
) -> Result<Target, OAuthError> {
    let resource = resolve_resource(resources, policy)?;
    let requested = requested_scope.unwrap_or("");
    let keep =
        |s: &String| (offline || s != "offline_access") && registered.is_none_or(|r| r.contains(s));
    let mut scopes = scope::narrow(requested, policy.supported_scopes);
    scopes.retain(keep);
    if scopes.is_empty() {
        if !scope::split(requested).is_empty() && policy.default_scopes.is_empty() {
            return Err(OAuthError::new(
                ErrorCode::InvalidScope,
                format!(
                    "None of the requested scopes can be granted; this server supports: {}.",
                    policy.supported_scopes.join(" ")
                ),
            ));
        }
        scopes = policy
            .default_scopes
            .iter()
            .filter(|s| keep(s))
            .cloned()
            .collect();
    }
    Ok(Target { scopes, resource })
}

fn resolve_resource(resources: &[&str], policy: &Policy<'_>) -> Result<Option<String>, OAuthError> {
    // (normalised, as sent): the same resource sent twice in two spellings is one.
    let mut named: Vec<(String, &str)> = Vec::new();
    for r in resources {
        match resource::normalize(r) {
            Some(n) if resource::is_served(&n, policy.allowed_resources) => {
                if !named.iter().any(|(seen, _)| *seen == n) {
                    named.push((n, r));
                }
            }
            Some(_) => {
                return Err(OAuthError::new(
                    ErrorCode::InvalidTarget,
                    format!("This server does not issue tokens for the resource {r:?}."),
                ));
            }
            None => {
                return Err(OAuthError::new(
                    ErrorCode::InvalidTarget,
                    format!("The resource {r:?} is not an absolute URI without a fragment."),
                ));
            }
        }
    }
    match named.as_slice() {
        [] => match (policy.default_resource, policy.allowed_resources) {
            (Some(default), _) => Ok(Some(default.to_owned())),
            (None, _) if policy.require_resource => Err(OAuthError::new(
                ErrorCode::InvalidTarget,
                "The resource parameter (RFC 8707) is required: name the MCP server this token is for.",
            )),
            (None, [only]) => Ok(Some(only.clone())),
            (None, _) => Ok(None),
        },
        [(_, sent)] => Ok(Some((*sent).to_owned())),
        _ => Err(OAuthError::new(
            ErrorCode::InvalidTarget,
            "Only one resource may be requested per grant.",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn scopes_are_narrowed_defaulted_and_offline_access_needs_refresh() {
        let supported = strings(&["mcp", "offline_access"]);
        let default = strings(&["mcp"]);
        let policy = Policy {
            supported_scopes: &supported,
            default_scopes: &default,
            allowed_resources: &[],
            ..Default::default()
        };

        let t = resolve(Some("openid mcp offline_access"), &[], &policy, None, true).unwrap();
        assert_eq!(t.scopes, vec!["mcp", "offline_access"]);
        let t = resolve(Some("offline_access"), &[], &policy, None, false).unwrap();
        assert_eq!(t.scopes, vec!["mcp"], "dropped, then the default");
        let t = resolve(None, &[], &policy, None, true).unwrap();
        assert_eq!(t.scopes, vec!["mcp"]);
        let only_mcp = strings(&["mcp"]);
        let t = resolve(
            Some("mcp offline_access"),
            &[],
            &policy,
            Some(&only_mcp),
            true,
        )
        .unwrap();
        assert_eq!(
            t.scopes,
            vec!["mcp"],
            "bounded by the client's registered scope"
        );
        let none = Policy {
            default_scopes: &[],
            ..policy
        };
        assert_eq!(
            resolve(Some("openid"), &[], &none, None, true)
                .unwrap_err()
                .code,
            ErrorCode::InvalidScope
        );
        assert_eq!(
            resolve(Some("offline_access"), &[], &none, Some(&only_mcp), true)
                .unwrap_err()
                .code,
            ErrorCode::InvalidScope,
            "nothing the client registered"
        );
        assert!(
            resolve(Some(""), &[], &none, None, true)
                .unwrap()
                .scopes
                .is_empty()
        );
    }

    #[test]
    fn one_served_resource_or_the_single_allowed_one() {
        let only = strings(&["https://MCP.example.com"]);
        let policy = Policy {
            supported_scopes: &[],
            default_scopes: &[],
            allowed_resources: &only,
            ..Default::default()
        };

        assert_eq!(
            resolve(None, &[], &policy, None, true)
                .unwrap()
                .resource
                .as_deref(),
            Some("https://MCP.example.com"),
            "the operator's spelling"
        );
        assert_eq!(
            resolve(
                None,
                &["https://mcp.example.com/", "HTTPS://mcp.example.com"],
                &policy,
                None,
                true
            )
            .unwrap()
            .resource
            .as_deref(),
            Some("https://mcp.example.com/"),
            "the same resource twice is one"
        );
        for bad in [&["https://other.example/"][..], &["https://x/#f"]] {
            assert_eq!(
                resolve(None, bad, &policy, None, true).unwrap_err().code,
                ErrorCode::InvalidTarget,
                "{bad:?}"
            );
        }
        let any = Policy {
            allowed_resources: &[],
            ..policy
        };
        assert_eq!(
            resolve(
                None,
                &["https://a.example/", "https://b.example/"],
                &any,
                None,
                true
            )
            .unwrap_err()
            .code,
            ErrorCode::InvalidTarget,
            "two resources"
        );
    }

    #[test]
    fn the_resource_is_kept_as_sent_and_may_be_required_or_defaulted() {
        let any = Policy::default();
        let sent = |policy: &Policy<'_>, r: &[&str]| {
            resolve(None, r, policy, None, true).map(|t| t.resource)
        };

        assert_eq!(
            sent(&any, &["http://127.0.0.1:8000"]).unwrap().as_deref(),
            Some("http://127.0.0.1:8000"),
            "not normalised to .../"
        );
        assert_eq!(sent(&any, &[]).unwrap(), None);
        let required = Policy {
            require_resource: true,
            ..any
        };
        assert_eq!(
            sent(&required, &[]).unwrap_err().code,
            ErrorCode::InvalidTarget
        );
        let defaulted = Policy {
            default_resource: Some("https://mcp.example/mcp"),
            ..required
        };
        assert_eq!(
            sent(&defaulted, &[]).unwrap().as_deref(),
            Some("https://mcp.example/mcp")
        );
        assert_eq!(
            sent(&defaulted, &["https://other.example/x"])
                .unwrap()
                .as_deref(),
            Some("https://other.example/x")
        );
    }
}
