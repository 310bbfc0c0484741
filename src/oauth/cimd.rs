//! Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document,
//! docs/behaviour.md §12): which client_ids are document URLs, which addresses a document may
//! never be fetched from, the rules a fetched document must follow, why one failed, and how
//! long one stays fresh. Pure: the flows fetch (`flows::cimd`); settings and time are
//! parameters.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use url::{Host, Url};

use super::register::{self, MetadataInput};
use crate::records::{ClientMetadata, GRANT_AUTHORIZATION_CODE};

/// Largest document read, in bytes (servers in the field use about 5 KiB).
pub const MAX_DOCUMENT: usize = 5 * 1024;
/// Longest client_id URL accepted, in bytes.
pub const MAX_URL: usize = 2000;
/// Most redirect URIs a document may list (as for a registration).
const MAX_REDIRECT_URIS: usize = 32;

/// Why a client's metadata document could not be used: the `cimd_error` code of the
/// unregistered-client answer and one sentence naming what failed (docs/behaviour.md §12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The client_id looks like a document URL but breaks a rule of the draft's §3.
    InvalidUrl { why: String },
    /// `cimd.allow_domains` does not admit the host.
    DomainNotAllowed { host: String },
    /// The host name did not resolve.
    NameResolution { host: String },
    /// The host is (or resolves to) an address a server must never fetch from (SSRF).
    RefusedAddress {
        host: String,
        address: IpAddr,
        range: String,
    },
    /// No complete answer within `cimd.timeout_ms`.
    Timeout { millis: u64 },
    /// No connection could be made (refused, reset, TLS failure …).
    Connection { host: String, why: String },
    /// Anything but `200`; a redirect is not followed.
    HttpStatus {
        status: u16,
        location: Option<String>,
    },
    /// Larger than `MAX_DOCUMENT`.
    TooLarge,
    /// Not a JSON object; `content_type` as served.
    NotJson { content_type: Option<String> },
    /// Its `client_id` is not the URL it was fetched from.
    ClientIdMismatch { found: String },
    /// A required member is absent.
    MissingMember { member: &'static str },
    /// A member a document must not have (a secret, a shared-secret method).
    ForbiddenField { member: &'static str, why: String },
    /// A member of the wrong type or an unacceptable value.
    InvalidMetadata { why: String },
    /// The authorization request's `redirect_uri` is not among the document's.
    RedirectUriNotListed {
        requested: String,
        listed: Vec<String>,
    },
}

impl Failure {
    /// The machine-readable `cimd_error` code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidUrl { .. } => "invalid_client_id",
            Self::DomainNotAllowed { .. } => "domain_not_allowed",
            Self::NameResolution { .. } => "name_resolution",
            Self::RefusedAddress { .. } => "refused_address",
            Self::Timeout { .. } => "timeout",
            Self::Connection { .. } => "connection",
            Self::HttpStatus { .. } => "http_status",
            Self::TooLarge => "too_large",
            Self::NotJson { .. } => "not_json",
            Self::ClientIdMismatch { .. } => "client_id_mismatch",
            Self::MissingMember { .. } => "missing_member",
            Self::ForbiddenField { .. } => "forbidden_field",
            Self::InvalidMetadata { .. } => "invalid_metadata",
            Self::RedirectUriNotListed { .. } => "redirect_uri_not_listed",
        }
    }

    /// Whether trying again later may help (the document's host was unreachable or answered
    /// an error), as opposed to a document that is wrong until its publisher fixes it.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::NameResolution { .. } | Self::Timeout { .. } | Self::Connection { .. } => true,
            Self::HttpStatus { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

/// One sentence (without the final period) naming what failed, for people and for logs.
impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidUrl { why } => {
                write!(
                    f,
                    "the client_id is not a usable metadata document URL: {why}"
                )
            }
            Self::DomainNotAllowed { host } => write!(
                f,
                "this server accepts metadata documents only from the domains its operator allows, and {host} is not one of them"
            ),
            Self::NameResolution { host } => {
                write!(f, "the host name {host} could not be resolved")
            }
            Self::RefusedAddress {
                host,
                address,
                range,
            } => write!(
                f,
                "{host} is at {address}, a {range} address, which this server never fetches from"
            ),
            Self::Timeout { millis } => write!(
                f,
                "the document did not arrive within {} seconds",
                millis.div_ceil(1000)
            ),
            Self::Connection { host, why } => {
                write!(f, "no connection to {host} could be made ({why})")
            }
            Self::HttpStatus {
                status,
                location: Some(to),
            } => write!(
                f,
                "the document URL answered HTTP {status} with a redirect to {to:?}, and redirects are not followed"
            ),
            Self::HttpStatus {
                status,
                location: None,
            } => write!(f, "the document URL answered HTTP {status} instead of 200"),
            Self::TooLarge => write!(f, "the document is larger than {} KiB", MAX_DOCUMENT / 1024),
            Self::NotJson {
                content_type: Some(t),
            } => write!(
                f,
                "the document is not a JSON object (it was served as {t:?})"
            ),
            Self::NotJson { content_type: None } => {
                write!(f, "the document is not a JSON object")
            }
            Self::ClientIdMismatch { found } => write!(
                f,
                "the document's client_id {found} is not the URL it was fetched from"
            ),
            Self::MissingMember { member } => {
                write!(f, "the document has no {member} member, which is required")
            }
            Self::ForbiddenField { member, why } => write!(
                f,
                "the document has a {member} member, which a metadata document must not have ({why})"
            ),
            Self::InvalidMetadata { why } => write!(f, "the document is not acceptable: {why}"),
            Self::RedirectUriNotListed { requested, listed } => write!(
                f,
                "the redirect_uri {requested:?} is not listed in the document, which lists {}",
                listed
                    .iter()
                    .map(|u| format!("{u:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// A client_id that names a metadata document, checked against the draft's URL rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentUrl {
    /// What is fetched.
    pub url: Url,
    /// The host, lower-case, IPv6 without brackets (as `normalize_host` gives it).
    pub host: String,
    /// The host when it is an IP literal: checked without resolving anything.
    pub ip: Option<IpAddr>,
}

/// Whether a client_id is meant as a metadata document URL: it starts with `https://` (or
/// `http://`). Registered client_ids are random base64url and never do.
pub fn is_document_url(client_id: &str) -> bool {
    let lower = |p: &str| {
        client_id
            .get(..p.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(p))
    };
    lower("https://") || lower("http://")
}

/// The draft's §3 rules for a client identifier URL: https (http only for the hosts in
/// `allow_http_hosts`), a host, a path other than `/`, no userinfo, no fragment, no `.` or
/// `..` segments. A query is allowed (the draft discourages it).
pub fn document_url(client_id: &str, allow_http_hosts: &[String]) -> Result<DocumentUrl, Failure> {
    let invalid = |why: &str| {
        Err(Failure::InvalidUrl {
            why: why.to_owned(),
        })
    };
    if client_id.len() > MAX_URL {
        return invalid(&format!("it is longer than {MAX_URL} bytes"));
    }
    if client_id
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
    {
        return invalid("it contains spaces, control characters or backslashes");
    }
    if client_id.contains('#') {
        return invalid("it has a fragment");
    }
    let Ok(url) = Url::parse(client_id) else {
        return invalid("it is not a valid URL");
    };
    let Some(host) = url.host_str().and_then(normalize_host) else {
        return invalid("it has no host");
    };
    let authority = client_id
        .split_once("://")
        .map_or("", |(_, rest)| rest.split(['/', '?']).next().unwrap_or(""));
    if authority.contains('@') || !url.username().is_empty() || url.password().is_some() {
        return invalid("it contains user information");
    }
    match url.scheme() {
        "https" => {}
        "http" if allow_http_hosts.iter().any(|h| same_host(h, &host)) => {}
        _ => return invalid("it does not use https"),
    }
    let raw_path = client_id
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
        .unwrap_or("");
    let raw_path = raw_path.split('?').next().unwrap_or("");
    if raw_path.split('/').any(is_dot_segment) {
        return invalid("its path has a . or .. segment");
    }
    if url.path().is_empty() || url.path() == "/" {
        return invalid(
            "it has no path (a document URL looks like https://example.com/client.json)",
        );
    }
    let ip = match url.host() {
        Some(Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
        Some(Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
        _ => None,
    };
    Ok(DocumentUrl { url, host, ip })
}

fn is_dot_segment(segment: &str) -> bool {
    let s = segment.to_ascii_lowercase().replace("%2e", ".");
    s == "." || s == ".."
}

/// A host as the settings and the checks compare it: lower-case, an IPv6 address without
/// brackets; `None` when it is neither a DNS name nor an IP address.
pub fn normalize_host(host: &str) -> Option<String> {
    let h = host.trim().to_ascii_lowercase();
    let bare = h
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(&h);
    if bare.parse::<IpAddr>().is_ok() {
        return Some(bare.to_owned());
    }
    let ok = !bare.is_empty()
        && bare.len() <= 253
        && bare.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    ok.then(|| bare.to_owned())
}

/// Whether two hosts are the same once normalised.
pub fn same_host(a: &str, b: &str) -> bool {
    match (normalize_host(a), normalize_host(b)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// `cimd.allow_domains`: empty admits every host; a domain admits itself and its subdomains.
pub fn domain_allowed(host: &str, allow_domains: &[String]) -> bool {
    allow_domains.is_empty()
        || allow_domains
            .iter()
            .filter_map(|d| normalize_host(d))
            .any(|d| {
                host == d
                    || host
                        .strip_suffix(d.as_str())
                        .is_some_and(|rest| rest.ends_with('.'))
            })
}

/// The host of a document client_id, as a page names it (`claude.ai`), or `None` when the
/// client_id is not a URL.
pub fn display_host(client_id: &str) -> Option<String> {
    let url = Url::parse(client_id).ok()?;
    let host = url.host_str()?;
    Some(match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    })
}

/// Why an address must never be fetched from, or `None` for a public unicast address. The
/// ranges are those of the IANA special-purpose registries (RFC 6890 and its updates) that are
/// not globally reachable, plus multicast and everything outside IPv6 global unicast.
pub fn refused_range(ip: IpAddr) -> Option<String> {
    match ip {
        IpAddr::V4(v4) => v4_range(v4).map(str::to_owned),
        IpAddr::V6(v6) => v6_range(v6),
    }
}

fn v4_range(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, d] = ip.octets();
    Some(match (a, b, c, d) {
        (0, 0, 0, 0) => "unspecified (0.0.0.0)",
        (0, ..) => "\"this network\" (0.0.0.0/8)",
        (10, ..) => "private (10.0.0.0/8)",
        (100, 64..=127, ..) => "shared, carrier-grade NAT (100.64.0.0/10)",
        (127, ..) => "loopback (127.0.0.0/8)",
        (169, 254, ..) => "link-local (169.254.0.0/16)",
        (172, 16..=31, ..) => "private (172.16.0.0/12)",
        (192, 0, 0, _) => "IETF protocol assignment (192.0.0.0/24)",
        (192, 0, 2, _) => "documentation (192.0.2.0/24)",
        (192, 88, 99, _) => "6to4 relay anycast (192.88.99.0/24)",
        (192, 168, ..) => "private (192.168.0.0/16)",
        (198, 18..=19, ..) => "benchmarking (198.18.0.0/15)",
        (198, 51, 100, _) => "documentation (198.51.100.0/24)",
        (203, 0, 113, _) => "documentation (203.0.113.0/24)",
        (224..=239, ..) => "multicast (224.0.0.0/4)",
        (255, 255, 255, 255) => "broadcast (255.255.255.255)",
        (240..=255, ..) => "reserved (240.0.0.0/4)",
        _ => return None,
    })
}

fn v6_range(ip: Ipv6Addr) -> Option<String> {
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    let within = |via: &str, v4: Ipv4Addr| v4_range(v4).map(|r| format!("{via} form of a {r}"));
    let fixed = |r: &str| Some(r.to_owned());
    match s {
        [0, 0, 0, 0, 0, 0, 0, 0] => fixed("unspecified (::)"),
        [0, 0, 0, 0, 0, 0, 0, 1] => fixed("loopback (::1)"),
        [0, 0, 0, 0, 0, 0xffff, ..] => fixed("IPv4-mapped IPv6 (::ffff:0:0/96)"),
        [0, 0, 0, 0, 0, 0, ..] => fixed("IPv4-compatible IPv6 (::/96, deprecated)"),
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => within("NAT64 (64:ff9b::/96)", embedded(hi, lo)),
        [0x64, 0xff9b, 1, ..] => fixed("local-use NAT64 (64:ff9b:1::/48)"),
        [0x100, 0, 0, 0, ..] => fixed("discard-only (100::/64)"),
        [0x2001, 0, ..] => fixed("Teredo (2001::/32)"),
        [0x2001, 2, 0, ..] => fixed("benchmarking (2001:2::/48)"),
        [0x2001, 0x10..=0x2f, ..] => fixed("ORCHID (2001:10::/28, 2001:20::/28)"),
        [0x2001, 0xdb8, ..] => fixed("documentation (2001:db8::/32)"),
        [0x2002, hi, lo, ..] => within("6to4 (2002::/16)", embedded(hi, lo)),
        [0x3fff, 0..=0x0fff, ..] => fixed("documentation (3fff::/20)"),
        [0xfc00..=0xfdff, ..] => fixed("unique local, private (fc00::/7)"),
        [0xfe80..=0xfebf, ..] => fixed("link-local (fe80::/10)"),
        [0xfec0..=0xfeff, ..] => fixed("site-local (fec0::/10, deprecated)"),
        [0xff00..=0xffff, ..] => fixed("multicast (ff00::/8)"),
        [first, ..] if first & 0xe000 != 0x2000 => {
            fixed("reserved (outside global unicast 2000::/3)")
        }
        _ => None,
    }
}

/// How long a fetched document stays fresh, in seconds: `s-maxage` (a shared cache's own,
/// RFC 9111 §5.2.2.10) or `max-age` from its `Cache-Control`, 0 for `no-store` or `no-cache`,
/// then bounded to `min..=max` (no directive: `min`).
pub fn lifetime(cache_control: Option<&str>, min: u64, max: u64) -> u64 {
    let mut max_age = None;
    let mut s_maxage = None;
    let mut uncached = false;
    for directive in cache_control.unwrap_or("").split(',') {
        let (name, value) = match directive.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
            None => (directive.trim(), None),
        };
        let seconds = value.and_then(|v| v.parse::<u64>().ok());
        match name.to_ascii_lowercase().as_str() {
            "no-store" | "no-cache" => uncached = true,
            "max-age" => max_age = seconds.or(max_age),
            "s-maxage" => s_maxage = seconds.or(s_maxage),
            _ => {}
        }
    }
    let secs = if uncached {
        0
    } else {
        s_maxage.or(max_age).unwrap_or(0)
    };
    secs.clamp(min, max.max(min))
}

/// The `client_id` a pinned document is served for: a document has to name its own URL.
pub fn pinned_key(body: &[u8]) -> Result<String, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("not a JSON document ({e})"))?;
    match value.get("client_id").and_then(Value::as_str) {
        Some(id) if is_document_url(id) => Ok(id.to_owned()),
        _ => Err("has no client_id member holding its https URL".into()),
    }
}

/// Reads a member as `T`, or says what it should have been.
fn member<T: DeserializeOwned>(
    doc: &Map<String, Value>,
    name: &str,
    expected: &str,
) -> Result<Option<T>, Failure> {
    match doc.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            serde_json::from_value(v.clone())
                .map(Some)
                .map_err(|_| Failure::InvalidMetadata {
                    why: format!("{name} must be {expected}"),
                })
        }
    }
}

/// Validates a fetched document for the client_id it was fetched for, into the metadata a
/// client is served with (docs/behaviour.md §12). Liberal where real clients need it: unknown
/// members are ignored, `grant_types` is narrowed to what Doorman supports, and a document
/// naming `private_key_jwt` (with its keys) is served as a public client with PKCE, since
/// Doorman does not verify RFC 7523 client assertions.
pub fn validate_document(
    body: &[u8],
    client_id: &str,
    supported_scopes: &[String],
) -> Result<ClientMetadata, Failure> {
    if body.len() > MAX_DOCUMENT {
        return Err(Failure::TooLarge);
    }
    let Ok(Value::Object(doc)) = serde_json::from_slice::<Value>(body) else {
        return Err(Failure::NotJson { content_type: None });
    };
    match doc.get("client_id") {
        None | Some(Value::Null) => {
            return Err(Failure::MissingMember {
                member: "client_id",
            });
        }
        Some(Value::String(id)) if id == client_id => {}
        Some(other) => {
            return Err(Failure::ClientIdMismatch {
                found: other.to_string(),
            });
        }
    }
    for secret in ["client_secret", "client_secret_expires_at"] {
        if doc.contains_key(secret) {
            return Err(Failure::ForbiddenField {
                member: secret,
                why: "a metadata document is public, so it cannot hold a shared secret".into(),
            });
        }
    }
    let method: Option<String> = member(&doc, "token_endpoint_auth_method", "a string")?;
    match method.as_deref() {
        None | Some("none") => {}
        Some("private_key_jwt") => {
            if !doc.contains_key("jwks") && !doc.contains_key("jwks_uri") {
                return Err(Failure::MissingMember { member: "jwks_uri" });
            }
        }
        Some(m @ ("client_secret_basic" | "client_secret_post" | "client_secret_jwt")) => {
            return Err(Failure::ForbiddenField {
                member: "token_endpoint_auth_method",
                why: format!("{m} is a shared-secret method"),
            });
        }
        Some(other) => {
            return Err(Failure::InvalidMetadata {
                why: format!(
                    "token_endpoint_auth_method {other:?} is not supported; use none or private_key_jwt"
                ),
            });
        }
    }
    let redirect_uris: Option<Vec<String>> = member(&doc, "redirect_uris", "a list of strings")?;
    match &redirect_uris {
        None => {
            return Err(Failure::MissingMember {
                member: "redirect_uris",
            });
        }
        Some(uris) if uris.is_empty() => {
            return Err(Failure::MissingMember {
                member: "redirect_uris",
            });
        }
        Some(uris) if uris.len() > MAX_REDIRECT_URIS => {
            return Err(Failure::InvalidMetadata {
                why: format!("redirect_uris lists more than {MAX_REDIRECT_URIS} URIs"),
            });
        }
        Some(_) => {}
    }
    let grant_types: Option<Vec<String>> = member(&doc, "grant_types", "a list of strings")?;
    // A request, narrowed to what Doorman supports; the authorization code grant must be in it.
    if grant_types
        .as_ref()
        .is_some_and(|g| !g.iter().any(|g| g == GRANT_AUTHORIZATION_CODE))
    {
        return Err(Failure::InvalidMetadata {
            why: "grant_types does not include authorization_code".into(),
        });
    }
    let text = |name| member::<String>(&doc, name, "a string");
    let input = MetadataInput {
        redirect_uris,
        // Public with PKCE, whatever assertion method the document names.
        token_endpoint_auth_method: Some("none".into()),
        grant_types,
        response_types: member(&doc, "response_types", "a list of strings")?,
        application_type: text("application_type")?,
        client_name: text("client_name")?,
        client_uri: text("client_uri")?,
        logo_uri: text("logo_uri")?,
        tos_uri: text("tos_uri")?,
        policy_uri: text("policy_uri")?,
        scope: text("scope")?,
        contacts: member(&doc, "contacts", "a list of strings")?,
        software_id: text("software_id")?,
        software_version: text("software_version")?,
    };
    let metadata =
        register::validate(input, supported_scopes).map_err(|e| Failure::InvalidMetadata {
            why: e.error.description,
        })?;
    Ok(metadata)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(ip: &str) -> Option<String> {
        refused_range(ip.parse().unwrap())
    }

    fn assert_refused(ip: &str, range: &str) {
        let got = refused(ip).unwrap_or_else(|| panic!("{ip} must be refused"));
        assert!(got.contains(range), "{ip}: {got:?} should name {range:?}");
    }

    #[test]
    fn every_refused_ipv4_range_is_named() {
        for (ip, range) in [
            ("0.0.0.0", "unspecified"),
            ("0.1.2.3", "this network"),
            ("10.0.0.1", "private"),
            ("10.255.255.255", "private"),
            ("100.64.0.1", "carrier-grade NAT"),
            ("100.127.255.254", "carrier-grade NAT"),
            ("127.0.0.1", "loopback"),
            ("127.0.0.2", "loopback"),
            ("127.255.255.255", "loopback"),
            ("169.254.169.254", "link-local"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.0.0.8", "IETF protocol assignment"),
            ("192.0.2.1", "documentation"),
            ("192.88.99.1", "6to4 relay"),
            ("192.168.1.1", "private"),
            ("198.18.0.1", "benchmarking"),
            ("198.19.255.255", "benchmarking"),
            ("198.51.100.7", "documentation"),
            ("203.0.113.9", "documentation"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.250", "multicast"),
            ("240.0.0.1", "reserved"),
            ("255.255.255.255", "broadcast"),
        ] {
            assert_refused(ip, range);
        }
    }

    #[test]
    fn public_ipv4_addresses_next_to_refused_ranges_are_allowed() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "169.253.255.255",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.0",
            "192.0.3.0",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "203.0.112.255",
            "223.255.255.255",
        ] {
            assert_eq!(refused(ip), None, "{ip} is public");
        }
    }

    #[test]
    fn every_refused_ipv6_range_is_named() {
        for (ip, range) in [
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("::ffff:127.0.0.1", "IPv4-mapped"),
            ("::ffff:10.0.0.1", "IPv4-mapped"),
            ("::ffff:8.8.8.8", "IPv4-mapped"),
            ("::127.0.0.1", "IPv4-compatible"),
            ("64:ff9b::7f00:1", "NAT64 (64:ff9b::/96) form of a loopback"),
            ("64:ff9b::a9fe:a9fe", "link-local"),
            ("64:ff9b:1::1", "local-use NAT64"),
            ("100::1", "discard-only"),
            ("2001::1", "Teredo"),
            ("2001:2::1", "benchmarking"),
            ("2001:10::1", "ORCHID"),
            ("2001:20::1", "ORCHID"),
            ("2001:db8::1", "documentation"),
            ("2002:7f00:1::1", "6to4 (2002::/16) form of a loopback"),
            ("2002:c0a8:101::1", "private"),
            ("3fff::1", "documentation"),
            ("fc00::1", "unique local"),
            ("fd12:3456::1", "unique local"),
            ("fe80::1", "link-local"),
            ("febf::1", "link-local"),
            ("fec0::1", "site-local"),
            ("ff02::1", "multicast"),
            ("ff0e::1", "multicast"),
            ("4000::1", "outside global unicast"),
            ("1::1", "outside global unicast"),
        ] {
            assert_refused(ip, range);
        }
    }

    #[test]
    fn public_ipv6_addresses_are_allowed() {
        for ip in [
            "2606:4700::1111",
            "2a00:1450:4001::1",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "2001:4860::1",
            "3fff:1000::1",
        ] {
            assert_eq!(refused(ip), None, "{ip} is public");
        }
    }

    #[test]
    fn document_urls_follow_the_draft() {
        let ok = |id: &str| document_url(id, &[]).unwrap_or_else(|e| panic!("{id}: {e}"));
        let bad = |id: &str, http: &[String]| match document_url(id, http) {
            Err(Failure::InvalidUrl { why }) => why,
            other => panic!("{id} should be refused: {other:?}"),
        };

        let d = ok("https://claude.ai/oauth/claude-code-client-metadata");
        assert_eq!(d.host, "claude.ai");
        assert_eq!(d.ip, None);
        assert_eq!(
            ok("https://Example.COM:8443/c.json?v=2").host,
            "example.com"
        );
        assert_eq!(
            ok("https://[::1]/c.json").ip,
            Some("::1".parse().unwrap()),
            "an IP literal is checked without resolving"
        );
        assert_eq!(
            ok("https://127.0.0.2/c").ip,
            Some("127.0.0.2".parse().unwrap())
        );
        assert!(bad("https://example.com", &[]).contains("no path"));
        assert!(bad("https://example.com/", &[]).contains("no path"));
        assert!(bad("https://example.com/a/../c.json", &[]).contains(".."));
        assert!(bad("https://example.com/a/%2E%2e/c.json", &[]).contains(".."));
        assert!(bad("https://example.com/./c.json", &[]).contains("."));
        assert!(bad("https://example.com/c.json#x", &[]).contains("fragment"));
        assert!(bad("https://user@example.com/c.json", &[]).contains("user"));
        assert!(bad("https://u:p@example.com/c.json", &[]).contains("user"));
        assert!(bad("https://exa mple.com/c.json", &[]).contains("spaces"));
        assert!(bad("http://example.com/c.json", &[]).contains("https"));
        assert!(bad("http://127.0.0.1:9/c.json", &[]).contains("https"));
        let local = vec!["127.0.0.1".to_owned()];
        assert!(document_url("http://127.0.0.1:9/c.json", &local).is_ok());
        assert!(bad("http://localhost:9/c.json", &local).contains("https"));
        assert!(bad(&format!("https://example.com/{}", "a".repeat(2000)), &[]).contains("longer"));
    }

    #[test]
    fn only_http_urls_are_taken_for_documents() {
        assert!(is_document_url("https://claude.ai/x"));
        assert!(is_document_url("HTTPS://claude.ai/x"));
        assert!(is_document_url("http://127.0.0.1/x"));
        assert!(!is_document_url("Zq3-random_base64url"));
        assert!(!is_document_url("https:"));
        assert!(!is_document_url("urn:x"));
    }

    #[test]
    fn allowed_domains_admit_their_subdomains_only() {
        let allowed = vec!["claude.ai".to_owned(), "VSCode.dev".to_owned()];

        assert!(domain_allowed("claude.ai", &allowed));
        assert!(domain_allowed("api.claude.ai", &allowed));
        assert!(domain_allowed("vscode.dev", &allowed));
        assert!(!domain_allowed("evilclaude.ai", &allowed));
        assert!(!domain_allowed("claude.ai.evil.example", &allowed));
        assert!(domain_allowed("anything.example", &[]));
    }

    #[test]
    fn freshness_honours_cache_control_within_bounds() {
        assert_eq!(lifetime(Some("public, max-age=3600"), 300, 86400), 3600);
        assert_eq!(lifetime(Some("max-age=10"), 300, 86400), 300);
        assert_eq!(lifetime(Some("max-age=9999999"), 300, 86400), 86400);
        assert_eq!(lifetime(Some("max-age=600, s-maxage=1200"), 0, 86400), 1200);
        assert_eq!(lifetime(Some("no-store"), 300, 86400), 300);
        assert_eq!(lifetime(Some("no-cache, max-age=999"), 60, 86400), 60);
        assert_eq!(lifetime(Some("MAX-AGE=\"700\""), 60, 86400), 700);
        assert_eq!(lifetime(Some("max-age=nope"), 60, 86400), 60);
        assert_eq!(lifetime(None, 300, 86400), 300);
    }

    const ID: &str = "https://app.example/client.json";

    fn doc(extra: Value) -> Vec<u8> {
        let mut d = serde_json::json!({
            "client_id": ID,
            "client_name": "App",
            "redirect_uris": ["https://app.example/cb"],
        });
        if let (Some(d), Value::Object(extra)) = (d.as_object_mut(), extra) {
            for (k, v) in extra {
                if v.is_null() {
                    d.remove(&k);
                } else {
                    d.insert(k, v);
                }
            }
        }
        serde_json::to_vec(&d).unwrap()
    }

    fn check(extra: Value) -> Result<ClientMetadata, Failure> {
        validate_document(&doc(extra), ID, &["mcp".into(), "offline_access".into()])
    }

    #[test]
    fn a_minimal_document_is_a_public_client_with_the_default_grants() {
        let m = check(serde_json::json!({})).unwrap();

        assert_eq!(
            m.token_endpoint_auth_method,
            crate::records::AuthMethod::None
        );
        assert_eq!(m.grant_types, vec!["authorization_code", "refresh_token"]);
        assert_eq!(m.redirect_uris, vec!["https://app.example/cb"]);
    }

    #[test]
    fn documents_are_read_liberally() {
        let m = check(serde_json::json!({
            "grant_types": ["authorization_code", "refresh_token",
                "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "urn:ietf:params:oauth:grant-type:device_code", "client_credentials"],
            "token_endpoint_auth_methods_supported": ["none", "private_key_jwt"],
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks_uri": "https://app.example/jwks.json",
            "something_new": {"x": 1},
            "scope": "mcp admin",
        }))
        .unwrap();

        assert_eq!(m.grant_types, vec!["authorization_code", "refresh_token"]);
        assert_eq!(
            m.token_endpoint_auth_method,
            crate::records::AuthMethod::None,
            "served as a public client with PKCE"
        );
        assert_eq!(m.scope.as_deref(), Some("mcp"));
    }

    #[test]
    fn each_broken_rule_is_named() {
        let failure = |extra: Value| check(extra).unwrap_err();

        assert_eq!(
            failure(serde_json::json!({"client_id": null})),
            Failure::MissingMember {
                member: "client_id"
            }
        );
        assert_eq!(
            failure(serde_json::json!({"client_id": "https://app.example/client.json/"})).code(),
            "client_id_mismatch"
        );
        assert_eq!(
            failure(serde_json::json!({"redirect_uris": null})),
            Failure::MissingMember {
                member: "redirect_uris"
            }
        );
        assert_eq!(
            failure(serde_json::json!({"redirect_uris": []})).code(),
            "missing_member"
        );
        assert_eq!(
            failure(serde_json::json!({"client_secret": "s"})).code(),
            "forbidden_field"
        );
        assert_eq!(
            failure(serde_json::json!({"client_secret_expires_at": 0})).code(),
            "forbidden_field"
        );
        let shared =
            failure(serde_json::json!({"token_endpoint_auth_method": "client_secret_basic"}));
        assert_eq!(shared.code(), "forbidden_field");
        assert!(
            shared.to_string().contains("client_secret_basic"),
            "{shared}"
        );
        assert_eq!(
            failure(serde_json::json!({"token_endpoint_auth_method": "private_key_jwt"})),
            Failure::MissingMember { member: "jwks_uri" }
        );
        let wrong_type = failure(serde_json::json!({"redirect_uris": "https://app.example/cb"}));
        assert_eq!(wrong_type.code(), "invalid_metadata");
        assert!(
            wrong_type
                .to_string()
                .contains("redirect_uris must be a list"),
            "{wrong_type}"
        );
        assert!(
            failure(serde_json::json!({"redirect_uris": ["http://app.example/cb"]}))
                .to_string()
                .contains("not loopback")
        );
        assert_eq!(
            failure(serde_json::json!({"grant_types": ["client_credentials"]})).code(),
            "invalid_metadata"
        );
        assert_eq!(
            failure(serde_json::json!({"client_name": "evil\u{202e}name"})).code(),
            "invalid_metadata"
        );
        assert_eq!(
            validate_document(b"<!DOCTYPE html><p>challenge</p>", ID, &[]),
            Err(Failure::NotJson { content_type: None })
        );
        assert_eq!(
            validate_document(b"[1,2]", ID, &[]),
            Err(Failure::NotJson { content_type: None })
        );
        assert_eq!(
            validate_document(&vec![b' '; MAX_DOCUMENT + 1], ID, &[]),
            Err(Failure::TooLarge)
        );
    }

    #[test]
    fn every_failure_has_a_code_and_a_sentence_naming_what_failed() {
        let cases = [
            (
                Failure::RefusedAddress {
                    host: "localhost".into(),
                    address: "127.0.0.1".parse().unwrap(),
                    range: "loopback (127.0.0.0/8)".into(),
                },
                "refused_address",
                "127.0.0.1",
            ),
            (
                Failure::HttpStatus {
                    status: 302,
                    location: Some("https://x.example/".into()),
                },
                "http_status",
                "redirects are not followed",
            ),
            (Failure::Timeout { millis: 5000 }, "timeout", "5 seconds"),
            (
                Failure::MissingMember {
                    member: "client_id",
                },
                "missing_member",
                "client_id",
            ),
            (
                Failure::RedirectUriNotListed {
                    requested: "https://evil.example/cb".into(),
                    listed: vec!["https://app.example/cb".into()],
                },
                "redirect_uri_not_listed",
                "https://app.example/cb",
            ),
        ];
        for (failure, code, named) in cases {
            assert_eq!(failure.code(), code);
            assert!(failure.to_string().contains(named), "{failure}");
        }
        assert!(Failure::Timeout { millis: 1 }.is_transient());
        assert!(!Failure::TooLarge.is_transient());
    }

    #[test]
    fn pinned_documents_are_keyed_by_their_client_id() {
        assert_eq!(
            pinned_key(br#"{"client_id":"https://claude.ai/x","redirect_uris":[]}"#),
            Ok("https://claude.ai/x".to_owned())
        );
        assert!(pinned_key(br#"{"client_name":"mcpc"}"#).is_err());
        assert!(pinned_key(b"nope").is_err());
    }

    #[test]
    fn hosts_are_compared_normalised() {
        assert_eq!(normalize_host("[::1]").as_deref(), Some("::1"));
        assert_eq!(normalize_host("LocalHost").as_deref(), Some("localhost"));
        assert_eq!(normalize_host("a b"), None);
        assert_eq!(normalize_host(""), None);
        assert!(same_host("127.0.0.1", "127.0.0.1"));
        assert!(!same_host("127.0.0.1", "127.0.0.2"));
        assert_eq!(
            display_host("https://claude.ai/oauth/x").as_deref(),
            Some("claude.ai")
        );
        assert_eq!(
            display_host("http://127.0.0.1:8080/c.json").as_deref(),
            Some("127.0.0.1:8080")
        );
    }
}
