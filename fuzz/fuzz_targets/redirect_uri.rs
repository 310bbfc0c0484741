//! The redirect-URI rules on arbitrary text. The first line is the requested URI, the other
//! lines are registered URIs. Checks: nothing panics; a registered URI is never `javascript:`,
//! `data:`, `file:`, `vbscript:`, `blob:`, userinfo, a fragment or `http` off loopback; a match
//! is the exact string or the same string apart from the port of an `http` loopback URI, and
//! its redirect goes to the registered scheme, host and path.
#![no_main]

use doorman::oauth::authorize::redirect_url;
use doorman::oauth::redirect_uri::{find_match, is_loopback_host, validate_for_registration};
use libfuzzer_sys::fuzz_target;

/// An `http` loopback URI with its `:port` cut out (empty path as `/`), written independently
/// of the implementation.
fn loopback_identity(uri: &str) -> Option<String> {
    let rest = uri.strip_prefix("http://")?;
    let (authority, tail) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
    let host = ["127.0.0.1", "localhost", "[::1]"]
        .into_iter()
        .find(|h| authority.starts_with(h))?;
    let port = &authority[host.len()..];
    let port_ok = port.is_empty()
        || port.strip_prefix(':').is_some_and(|p| {
            !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok()
        });
    if !port_ok {
        return None;
    }
    let tail = if tail.is_empty() || tail.starts_with('?') {
        format!("/{tail}")
    } else {
        tail.to_owned()
    };
    Some(format!("{host}{tail}"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let requested = lines.next().unwrap_or("");
    let registered: Vec<String> = lines
        .filter(|l| validate_for_registration(l).is_ok())
        .map(str::to_owned)
        .collect();

    if validate_for_registration(requested).is_ok() {
        let url = url::Url::parse(requested).expect("accepted URIs are absolute");
        assert!(!matches!(
            url.scheme(),
            "javascript" | "data" | "file" | "vbscript" | "blob"
        ));
        assert!(url.username().is_empty() && url.password().is_none());
        assert!(url.fragment().is_none());
        assert!(url.scheme() != "http" || is_loopback_host(&url));
    }

    let Some(found) = find_match(requested, &registered) else {
        return;
    };
    if found == requested {
        return;
    }
    let (a, b) = (loopback_identity(requested), loopback_identity(found));
    assert!(
        a.is_some() && a == b,
        "{requested:?} matched {found:?} without being equal apart from the port"
    );
    let location = redirect_url(requested, &[("code", "c")], Some("s"), "https://as")
        .expect("a matched URI can be redirected to");
    let to = url::Url::parse(&location).expect("location");
    let reg = url::Url::parse(found).expect("registered");
    assert_eq!(
        (to.scheme(), to.host_str(), to.path()),
        (reg.scheme(), reg.host_str(), reg.path())
    );
});
