//! Resource indicators (RFC 8707 §2) and how they are compared (docs/behaviour.md §9).

use url::Url;

/// The comparable form of a resource: an absolute URI without fragment, scheme and host
/// lower-cased and an empty path made `/` (the `url` crate does both). `None` when invalid.
pub fn normalize(resource: &str) -> Option<String> {
    if resource.contains('#') {
        return None;
    }
    let url = Url::parse(resource).ok()?;
    if url.cannot_be_a_base() || url.host().is_none() {
        return None;
    }
    Some(url.to_string())
}

/// Decides whether this server issues tokens for `resource`. With an empty allow-list any
/// absolute https URI is accepted, and http on a loopback host (local MCP servers).
pub fn is_served(normalized: &str, allowed: &[String]) -> bool {
    if allowed.is_empty() {
        return match Url::parse(normalized) {
            Ok(u) if u.scheme() == "https" => true,
            Ok(u) if u.scheme() == "http" => crate::oauth::redirect_uri::is_loopback_host(&u),
            _ => false,
        };
    }
    allowed
        .iter()
        .filter_map(|a| normalize(a))
        .any(|a| a == normalized)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_path_and_case_are_normalised() {
        assert_eq!(
            normalize("HTTPS://MCP.Example.COM").as_deref(),
            Some("https://mcp.example.com/")
        );
        assert_eq!(
            normalize("https://mcp.example.com/mcp").as_deref(),
            Some("https://mcp.example.com/mcp")
        );
        assert_eq!(normalize("https://x/#frag"), None);
        assert_eq!(normalize("/relative"), None);
        assert_eq!(normalize("urn:example:thing"), None);
    }

    #[test]
    fn allow_list_compares_normalised_forms() {
        let allowed = vec!["https://MCP.example.com".to_owned()];

        assert!(is_served("https://mcp.example.com/", &allowed));
        assert!(!is_served("https://other.example.com/", &allowed));
        assert!(is_served("http://127.0.0.1:3000/mcp", &[]));
        assert!(!is_served("http://example.com/mcp", &[]));
    }
}
