//! Scope rules (RFC 6749 §3.3) with the real-client leniency of docs/behaviour.md §9.

/// RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
pub fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

/// Splits a space-delimited scope string; an empty string is "no scope" (§9).
pub fn split(scope: &str) -> Vec<&str> {
    scope.split(' ').filter(|s| !s.is_empty()).collect()
}

/// Keeps the requested scopes that the server supports, in request order, without duplicates.
/// Unknown scopes are dropped, not refused (§9).
pub fn narrow(requested: &str, supported: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in split(requested) {
        if supported.iter().any(|x| x == s) && !out.iter().any(|x| x == s) {
            out.push(s.to_owned());
        }
    }
    out
}

/// Joins scopes into the wire form.
pub fn join(scopes: &[String]) -> String {
    scopes.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_scopes_are_dropped_and_order_kept() {
        let supported = vec!["mcp".to_owned(), "offline_access".to_owned()];

        assert_eq!(
            narrow("openid mcp  offline_access mcp", &supported),
            vec!["mcp", "offline_access"]
        );
        assert!(narrow("", &supported).is_empty());
    }

    #[test]
    fn scope_tokens_exclude_space_quote_and_backslash() {
        assert!(is_scope_token("mcp:tools.read"));
        assert!(!is_scope_token("a b"));
        assert!(!is_scope_token("a\"b"));
        assert!(!is_scope_token("a\\b"));
        assert!(!is_scope_token(""));
    }
}
