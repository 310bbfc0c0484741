//! Redirect URIs: which may be registered (RFC 7591 §2, RFC 8252 §7, OAuth 2.1 §2.3.1) and
//! how an authorization request's URI is matched against them (exact, plus RFC 8252 §7.3).

use url::{Host, Url};

/// Longest redirect URI accepted, in bytes.
pub const MAX_LEN: usize = 2000;

/// What kind of client a redirect URI implies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriKind {
    /// https on a non-loopback host: fine for web and native clients.
    Web,
    /// http(s) on a loopback host, or a private-use scheme: native clients only.
    Native,
}

/// Whether the URL's host is `localhost`, `127.0.0.0/8` or `[::1]`.
pub fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Checks a redirect URI offered at registration. `Err` carries the sentence for
/// `invalid_redirect_uri`; `Ok` says whether it is a web or a native URI.
pub fn validate_for_registration(raw: &str) -> Result<UriKind, String> {
    if raw.len() > MAX_LEN {
        return Err(format!("a redirect URI is longer than {MAX_LEN} bytes"));
    }
    if raw
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
    {
        return Err(format!(
            "redirect URI {raw:?} contains spaces, control characters or backslashes"
        ));
    }
    if raw.contains('#') {
        return Err(format!("redirect URI {raw:?} must not contain a fragment"));
    }
    let url =
        Url::parse(raw).map_err(|_| format!("redirect URI {raw:?} is not an absolute URI"))?;
    if !url.username().is_empty() || url.password().is_some() || has_raw_userinfo(raw) {
        return Err(format!(
            "redirect URI {raw:?} must not contain user information"
        ));
    }
    let scheme = url.scheme();
    if matches!(
        scheme,
        "javascript" | "data" | "file" | "vbscript" | "blob" | "about" | "ftp" | "ws" | "wss"
    ) {
        return Err(format!("redirect URI scheme {scheme:?} is not allowed"));
    }
    match scheme {
        "https" if url.host().is_none() => Err(format!("redirect URI {raw:?} has no host")),
        "https" if is_loopback_host(&url) => Ok(UriKind::Native),
        "https" => Ok(UriKind::Web),
        "http" if is_loopback_host(&url) => Ok(UriKind::Native),
        "http" => Err(format!(
            "redirect URI {raw:?} uses http on a host that is not loopback; use https, or http://127.0.0.1, http://[::1] or http://localhost"
        )),
        // RFC 8252 §7.1 private-use schemes (cursor://…, com.example.app:/cb).
        _ if url.cannot_be_a_base() && !raw[scheme.len() + 1..].starts_with('/') => Err(format!(
            "redirect URI {raw:?} is not a usable callback (a private-use scheme needs a path, e.g. com.example.app:/callback)"
        )),
        _ => Ok(UriKind::Native),
    }
}

/// `user@host` can hide in a string the URL parser rewrote; look at the raw authority too.
fn has_raw_userinfo(raw: &str) -> bool {
    raw.split_once("://")
        .map(|(_, rest)| rest.split(['/', '?']).next().unwrap_or("").contains('@'))
        .unwrap_or(false)
}

/// Finds the registered URI that `requested` matches: exact string equality, or — for a
/// registered `http://127.0.0.1`, `http://[::1]` or `http://localhost` URI — the same string
/// apart from the port (RFC 8252 §7.3).
pub fn find_match<'a>(requested: &str, registered: &'a [String]) -> Option<&'a str> {
    if let Some(exact) = registered.iter().find(|r| r.as_str() == requested) {
        return Some(exact);
    }
    let req = loopback_parts(requested)?;
    registered
        .iter()
        .find(|r| loopback_parts(r).is_some_and(|reg| reg == req))
        .map(String::as_str)
}

/// The port-less identity of an `http` loopback URI — its host and the rest of the string,
/// both as written — or `None` when the rule does not apply.
///
/// The comparison is textual, not on parsed URLs: the URL parser lower-cases, strips tabs and
/// newlines, resolves dot segments and rewrites `127.1` as `127.0.0.1`, and a match must never
/// depend on such rewriting (RFC 6749 §3.1.2.3 compares strings; RFC 8252 §7.3 only frees the
/// port). The one equivalence allowed is an empty path and `/` (RFC 3986 §6.2.3).
fn loopback_parts(raw: &str) -> Option<(&str, String)> {
    let rest = raw.strip_prefix("http://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let host = match authority.rsplit_once(':') {
        Some((host, port))
            if (1..=5).contains(&port.len())
                && port.bytes().all(|b| b.is_ascii_digit())
                && (!host.contains(':') || host.ends_with(']')) =>
        {
            host
        }
        _ => authority,
    };
    if host.is_empty()
        || raw
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || matches!(c, '\\' | '#' | '@'))
    {
        return None;
    }
    let url = Url::parse(raw).ok()?;
    // RFC 8252 §7.3 and docs/behaviour.md §4: the rule is for these three hosts, as written.
    let named = matches!(host, "127.0.0.1" | "[::1]" | "localhost");
    if !named || url.scheme() != "http" || url.host_str() != Some(host) {
        return None;
    }
    let tail = if tail.is_empty() || tail.starts_with('?') {
        format!("/{tail}")
    } else {
        tail.to_owned()
    };
    Some((host, tail))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regs(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn loopback_registrations_match_any_port_with_same_host_and_path() {
        let registered = regs(&[
            "http://localhost/callback",
            "http://127.0.0.1:3334/oauth/callback",
            "http://[::1]/cb",
        ]);

        assert_eq!(
            find_match("http://localhost:49152/callback", &registered),
            Some("http://localhost/callback")
        );
        assert_eq!(
            find_match("http://127.0.0.1:5000/oauth/callback", &registered),
            Some("http://127.0.0.1:3334/oauth/callback")
        );
        assert_eq!(
            find_match("http://[::1]:8000/cb", &registered),
            Some("http://[::1]/cb")
        );
        assert_eq!(
            find_match("http://127.0.0.1:5000/callback", &registered),
            None,
            "host must be equal"
        );
        assert_eq!(
            find_match("http://localhost:5000/callback/", &registered),
            None,
            "path must be equal"
        );
        assert_eq!(
            find_match("http://localhost:5000/x/../callback", &registered),
            None
        );
        assert_eq!(
            find_match("http://localhost:5000/callback?x=1", &registered),
            None
        );
    }

    #[test]
    fn loopback_rule_frees_the_port_and_nothing_else() {
        let registered = regs(&[
            "http://127.0.0.1/cb",
            "http://[::1]/cb",
            "http://localhost",
            "http://127.0.0.2/cb",
        ]);

        assert_eq!(
            find_match("http://localhost:8080/", &registered),
            Some("http://localhost"),
            "an empty path is /"
        );
        for rewritten in [
            "HTTP://127.0.0.1:9/cb",
            "http://127.1:9/cb",
            "http://2130706433:9/cb",
            "http://127.0.0.1:9/c\tb",
            "http://127.0.0.1:9/c\nb",
            "http://127.0.0.1:/cb",
            "http://127.0.0.1:99999/cb",
            "http://[0:0:0:0:0:0:0:1]:9/cb",
            "http://LOCALHOST:9/",
            "http://127.0.0.2:9/cb",
            "http://127.0.0.1:9/cb/%2e%2e/cb",
            "http://127.0.0.1:9/x/../cb",
            "http://127.0.0.1:9\\@evil.example/cb",
        ] {
            assert_eq!(find_match(rewritten, &registered), None, "{rewritten:?}");
        }
    }

    #[test]
    fn other_uris_match_only_exactly() {
        let registered = regs(&[
            "https://app.example.com/cb",
            "cursor://anysphere.cursor-mcp/oauth/callback",
        ]);

        assert!(find_match("https://app.example.com/cb", &registered).is_some());
        assert!(find_match("https://app.example.com:443/cb", &registered).is_none());
        assert!(find_match("https://APP.example.com/cb", &registered).is_none());
        assert!(find_match("https://app.example.com/cb?x", &registered).is_none());
        assert!(find_match("cursor://anysphere.cursor-mcp/oauth/callback", &registered).is_some());
    }

    #[test]
    fn registration_refuses_dangerous_uris() {
        for bad in [
            "javascript:alert(1)",
            "data:text/html,hi",
            "file:///etc/passwd",
            "vbscript:msgbox",
            "blob:https://a.example/x",
            "http://example.com/cb",
            "https://user:pw@example.com/cb",
            "https://example.com/cb#frag",
            "/relative/cb",
            "//evil.example/cb",
            "https:\\\\evil.example\\cb",
            "https://example.com/a b",
        ] {
            assert!(
                validate_for_registration(bad).is_err(),
                "{bad} must be refused"
            );
        }
    }

    #[test]
    fn registration_accepts_real_client_uris() {
        for (uri, kind) in [
            ("https://claude.ai/api/mcp/auth_callback", UriKind::Web),
            ("http://localhost:6274/oauth/callback", UriKind::Native),
            ("http://127.0.0.1/", UriKind::Native),
            ("http://[::1]/oauth_callback", UriKind::Native),
            (
                "cursor://anysphere.cursor-mcp/oauth/callback",
                UriKind::Native,
            ),
            ("claude://claude.ai/mcp-auth-callback/sdk", UriKind::Native),
            ("com.example.app:/oauth2redirect", UriKind::Native),
        ] {
            assert_eq!(validate_for_registration(uri), Ok(kind), "{uri}");
        }
    }
}
