//! Property tests over the parsers that see hostile input first (issue 6 part 3): the
//! query/form parser, the redirect-URI rules, the registration validator and the Accept guard.
//! Each test counts and prints the inputs it tried (`cargo test --test it props:: -- --nocapture`).

use std::collections::HashSet;

use actix_web::http::header::HeaderValue;
use actix_web::test::TestRequest;
use doorman::http::negotiate::prefers_html;
use doorman::oauth::authorize::redirect_url;
use doorman::oauth::errors::ErrorCode;
use doorman::oauth::params::Params;
use doorman::oauth::redirect_uri::{UriKind, find_match, validate_for_registration};
use doorman::oauth::register;
use doorman::records::{self, AuthMethod};
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Value};

// --- the runner -------------------------------------------------------------------------------

/// Runs `property` over `cases` generated inputs (plus shrinking on failure), prints how many
/// inputs it tried, and fails with the smallest failing input.
fn check<S, F>(name: &str, cases: u32, strategy: S, property: F) -> usize
where
    S: Strategy,
    S::Value: std::fmt::Debug,
    F: Fn(S::Value) -> Result<(), TestCaseError>,
{
    let tried = std::cell::Cell::new(0usize);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&strategy, |value| {
        tried.set(tried.get() + 1);
        property(value)
    });
    println!("props::{name}: {} inputs tried", tried.get());
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
    tried.get()
}

// --- Params::parse ----------------------------------------------------------------------------

/// Bytes that mean something to the form grammar, mixed with anything at all.
fn form_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        4 => any::<u8>(),
        1 => select(b"&=%+;#?".to_vec()),
        1 => select(b"0123456789abcdefABCDEF".to_vec()),
        1 => select(vec![0x00, 0x0d, 0x0a, 0x80, 0xc3, 0xe2, 0xf0, 0xfe, 0xff]),
    ];
    proptest::collection::vec(byte, 0..2048)
}

/// Keys and values as a client might send them, including the characters that need escaping.
fn form_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-z_]{0,8}",
        "[a-z&=+%#; \\r\\n\\x00é😀]{0,16}",
    ]
}

#[test]
fn params_parse_never_panics_on_arbitrary_bytes() {
    check("params_parse_never_panics", 2000, form_bytes(), |bytes| {
        let p = Params::parse(&bytes);
        let first = p.first_repeated().map(str::to_owned);
        for (k, _) in p.pairs() {
            let _ = (p.get(k), p.all(k), p.is_repeated(k));
        }
        if let Some(name) = first {
            prop_assert!(p.is_repeated(&name));
            prop_assert_ne!(name.as_str(), "resource");
        }
        Ok(())
    });
}

/// `Params::parse` splits and decodes by itself, by `form_urlencoded`'s rules: on any bytes at
/// all it must give exactly the library's pairs.
#[test]
fn params_parse_any_bytes_as_form_urlencoded_does() {
    let bytes = proptest::collection::vec(
        proptest::prop_oneof![
            proptest::sample::select(b"&=%+aZ09Fc3-_.~ ".to_vec()),
            proptest::num::u8::ANY,
        ],
        0..200,
    );
    check("params_parse_any_bytes", 10_000, bytes, |bytes| {
        let ours: Vec<(String, String)> = Params::parse(&bytes)
            .pairs()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let library: Vec<(String, String)> = url::form_urlencoded::parse(&bytes)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();

        prop_assert_eq!(ours, library, "input {:?}", String::from_utf8_lossy(&bytes));
        Ok(())
    });
}

#[test]
fn params_round_trip_pairs_encoded_by_form_urlencoded() {
    let pairs = proptest::collection::vec((form_text(), form_text()), 0..16);
    check("params_round_trip", 1000, pairs, |pairs| {
        let encoded = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&pairs)
            .finish();

        let parsed = Params::parse(encoded.as_bytes());

        let owned: Vec<(String, String)> = parsed
            .pairs()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        prop_assert_eq!(owned, pairs.clone(), "encoded as {:?}", encoded);
        for (k, v) in &pairs {
            let first = pairs.iter().find(|(k2, v2)| k2 == k && !v2.is_empty());
            prop_assert_eq!(parsed.get(k), first.map(|(_, v2)| v2.as_str()));
            if !v.is_empty() {
                prop_assert!(parsed.all(k).contains(&v.as_str()));
            }
        }
        Ok(())
    });
}

#[test]
fn params_detect_every_duplicate_except_resource() {
    let input = (
        proptest::collection::hash_set("[a-z_]{1,10}", 1..12),
        any::<Index>(),
        any::<Index>(),
        any::<bool>(),
        proptest::collection::vec(form_text(), 13),
    );
    check(
        "params_detect_duplicates",
        1000,
        input,
        |(names, which, position, duplicate, values)| {
            let names: Vec<String> = names.into_iter().filter(|n| n != "resource").collect();
            prop_assume!(!names.is_empty());
            let mut pairs: Vec<(String, String)> =
                names.iter().cloned().zip(values.iter().cloned()).collect();
            let dup = which.get(&names).clone();
            if duplicate {
                let at = position.index(pairs.len() + 1);
                pairs.insert(at, (dup.clone(), values[12].clone()));
            }
            // `resource` may repeat (RFC 8707 §2), so it never counts.
            pairs.push(("resource".into(), "https://a.example/".into()));
            pairs.push(("resource".into(), "https://b.example/".into()));
            let encoded = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&pairs)
                .finish();

            let p = Params::parse(encoded.as_bytes());

            if duplicate {
                prop_assert_eq!(p.first_repeated(), Some(dup.as_str()));
                prop_assert!(p.is_repeated(&dup));
            } else {
                prop_assert_eq!(p.first_repeated(), None);
            }
            prop_assert!(p.is_repeated("resource"));
            Ok(())
        },
    );
}

// --- redirect URIs: matching ------------------------------------------------------------------

/// What clients really register (docs/behaviour.md §9).
const REGISTERED: &[&str] = &[
    "https://app.example.com/cb",
    "https://app.example.com/cb?tenant=1",
    "http://127.0.0.1/cb",
    "http://127.0.0.1:3334/oauth/callback",
    "http://localhost/callback",
    "http://localhost:6274/oauth/callback",
    "http://[::1]/cb",
    "http://127.0.0.1",
    "http://127.0.0.2/cb",
    "cursor://anysphere.cursor-mcp/oauth/callback",
    "com.example.app:/oauth2redirect",
];

/// Whole-string replacements an attacker tries instead of editing a registered URI.
const ATTACKS: &[&str] = &[
    "//evil.example/cb",
    "https://evil.example/cb",
    "https:\\\\evil.example\\cb",
    "https://app.example.com@evil.example/cb",
    "https://app.example.com%40evil.example/cb",
    "https://evil.example#@app.example.com/cb",
    "https://evil.example\\@app.example.com/cb",
    "javascript:alert(document.domain)//https://app.example.com/cb",
    "data:text/html,<script>alert(1)</script>",
    "http://127.0.0.1.evil.example/cb",
    "http://localhost.evil.example/callback",
    "http://127.0.0.1:9/cb/%2e%2e/evil",
    "http://127.0.0.1:9/cb/../evil",
    "http://127.0.0.1:9/cb%2F..%2Fevil",
    "http://127.0.0.1:9%2F@evil.example/cb",
    "https://xn--pp-8kc.example.com/cb",
    "https://аpp.example.com/cb",
    "",
];

/// One edit of a URI, as open-redirect attempts and sloppy clients make them.
#[derive(Debug, Clone)]
enum Edit {
    UpperScheme,
    UpperHost,
    Port(u16),
    EmptyPort,
    UserinfoBefore,
    UserinfoAfter,
    Backslashes,
    DotSegments(&'static str),
    PercentEncode(Index),
    TrailingDot,
    CyrillicA,
    Punycode,
    Query(&'static str),
    Fragment,
    Insert(Index, char),
    TrailingSlash,
    HostSuffix,
    OtherLoopback(&'static str),
    SwapScheme,
    Replace(&'static str),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        Just(Edit::UpperScheme),
        Just(Edit::UpperHost),
        any::<u16>().prop_map(Edit::Port),
        Just(Edit::EmptyPort),
        Just(Edit::UserinfoBefore),
        Just(Edit::UserinfoAfter),
        Just(Edit::Backslashes),
        select(vec![
            "/%2e%2e/evil",
            "/../evil",
            "/%2E%2E%2Fevil",
            "%2F..%2Fevil",
            "/./",
            "/%2e/",
            "%2f",
            "/%2F"
        ])
        .prop_map(Edit::DotSegments),
        any::<Index>().prop_map(Edit::PercentEncode),
        Just(Edit::TrailingDot),
        Just(Edit::CyrillicA),
        Just(Edit::Punycode),
        select(vec!["?x=1", "&x=1", "?", "?redirect=https://evil.example"]).prop_map(Edit::Query),
        Just(Edit::Fragment),
        (
            any::<Index>(),
            select(vec![
                ' ', '\t', '\n', '\r', '\0', '\u{a0}', '\u{200b}', '@', '\\', '#'
            ])
        )
            .prop_map(|(i, c)| Edit::Insert(i, c)),
        Just(Edit::TrailingSlash),
        Just(Edit::HostSuffix),
        select(vec![
            "127.1",
            "2130706433",
            "0x7f.0.0.1",
            "127.0.0.2",
            "[::ffff:127.0.0.1]",
            "[0:0:0:0:0:0:0:1]",
            "localhost",
            "LOCALHOST",
            "127.0.0.1"
        ])
        .prop_map(Edit::OtherLoopback),
        Just(Edit::SwapScheme),
        select(ATTACKS.to_vec()).prop_map(Edit::Replace),
    ]
}

/// Where the host of `uri` starts and ends (after `scheme://` and any userinfo), if it has one.
fn host_span(uri: &str) -> Option<(usize, usize)> {
    let start = uri.find("://")? + 3;
    let rest = &uri[start..];
    let end = rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let host_start = authority.rfind('@').map_or(0, |i| i + 1);
    let host = &authority[host_start..];
    let host_len = if host.starts_with('[') {
        host.find(']').map_or(host.len(), |i| i + 1)
    } else {
        host.rfind(':').unwrap_or(host.len())
    };
    Some((start + host_start, start + host_start + host_len))
}

fn apply(uri: &str, edit: &Edit) -> String {
    let mut s = uri.to_owned();
    let host = host_span(&s);
    match edit {
        Edit::UpperScheme => {
            if let Some(i) = s.find(':') {
                s = format!("{}{}", s[..i].to_ascii_uppercase(), &s[i..]);
            }
        }
        Edit::UpperHost => {
            if let Some((a, b)) = host {
                s = format!("{}{}{}", &s[..a], s[a..b].to_ascii_uppercase(), &s[b..]);
            }
        }
        Edit::Port(p) => {
            if let Some((_, b)) = host {
                let rest = &s[b..];
                let rest = rest
                    .strip_prefix(':')
                    .map_or(rest, |r| r.trim_start_matches(|c: char| c.is_ascii_digit()));
                s = format!("{}:{p}{rest}", &s[..b]);
            }
        }
        Edit::EmptyPort => {
            if let Some((_, b)) = host {
                s.insert(b, ':');
            }
        }
        Edit::UserinfoBefore => {
            if let Some((a, _)) = host {
                s.insert_str(a, "evil.example@");
            }
        }
        Edit::UserinfoAfter => {
            if let Some((_, b)) = host {
                s.insert_str(b, "@evil.example");
            }
        }
        Edit::Backslashes => s = s.replace('/', "\\"),
        Edit::DotSegments(d) => {
            let at = s.find('?').unwrap_or(s.len());
            s.insert_str(at, d);
        }
        Edit::PercentEncode(i) => {
            let after_scheme = s.find(':').map_or(0, |i| i + 1);
            let candidates: Vec<usize> = s
                .char_indices()
                .filter(|(j, c)| *j >= after_scheme && c.is_ascii_alphanumeric())
                .map(|(j, _)| j)
                .collect();
            if !candidates.is_empty() {
                let j = *i.get(&candidates);
                s = format!("{}%{:02X}{}", &s[..j], s.as_bytes()[j], &s[j + 1..]);
            }
        }
        Edit::TrailingDot => {
            if let Some((_, b)) = host {
                s.insert(b, '.');
            }
        }
        Edit::CyrillicA => {
            if let Some((a, b)) = host {
                let h = s[a..b].replacen('a', "а", 1);
                s = format!("{}{h}{}", &s[..a], &s[b..]);
            }
        }
        Edit::Punycode => {
            let cyr = apply(&s, &Edit::CyrillicA);
            if let Ok(u) = url::Url::parse(&cyr) {
                s = u.to_string();
            }
        }
        Edit::Query(q) => s.push_str(q),
        Edit::Fragment => s.push_str("#frag"),
        Edit::Insert(i, c) => {
            let boundaries: Vec<usize> =
                s.char_indices().map(|(j, _)| j).chain([s.len()]).collect();
            s.insert(*i.get(&boundaries), *c);
        }
        Edit::TrailingSlash => s.push('/'),
        Edit::HostSuffix => {
            if let Some((_, b)) = host {
                s.insert_str(b, ".evil.example");
            }
        }
        Edit::OtherLoopback(h) => {
            if let Some((a, b)) = host {
                s = format!("{}{h}{}", &s[..a], &s[b..]);
            }
        }
        Edit::SwapScheme => {
            s = if let Some(r) = s.strip_prefix("https:") {
                format!("http:{r}")
            } else if let Some(r) = s.strip_prefix("http:") {
                format!("https:{r}")
            } else {
                s
            };
        }
        Edit::Replace(a) => s = (*a).to_owned(),
    }
    s
}

/// The spec of the loopback rule, written independently of the implementation: an `http` URI
/// on 127.0.0.1, localhost or [::1] with its `:port` cut out, an empty path counting as `/`.
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

fn mutated_uri() -> impl Strategy<Value = (String, Vec<Edit>)> {
    (
        select(REGISTERED.to_vec()),
        proptest::collection::vec(edit(), 1..4),
    )
        .prop_map(|(base, edits)| {
            let uri = edits.iter().fold(base.to_owned(), |u, e| apply(&u, e));
            (uri, edits)
        })
}

#[test]
fn find_match_only_matches_exact_strings_or_the_loopback_port_rule() {
    let registered: Vec<String> = REGISTERED.iter().map(|s| (*s).to_owned()).collect();
    let input = prop_oneof![
        4 => mutated_uri().prop_map(|(u, _)| u),
        1 => any::<String>(),
        1 => "http://(127\\.0\\.0\\.1|localhost|\\[::1\\])(:[0-9]{0,6})?[/?#a-z%.]{0,12}",
    ];
    check(
        "find_match_exact_or_loopback_port",
        4000,
        input,
        |requested| {
            let Some(found) = find_match(&requested, &registered) else {
                return Ok(());
            };
            prop_assert!(registered.iter().any(|r| r == found));
            if requested == found {
                return Ok(());
            }
            // Only the loopback rule may match a string that differs…
            let same = loopback_identity(&requested).is_some()
                && loopback_identity(&requested) == loopback_identity(found);
            prop_assert!(
                same,
                "{requested:?} matched {found:?} without being equal apart from the port"
            );
            // …and the redirect built from it goes where the registered URI goes.
            let location = redirect_url(&requested, &[("code", "c")], Some("s"), "https://as")
                .expect("a matched URI can be redirected to");
            let (to, reg) = (
                url::Url::parse(&location).expect("location"),
                url::Url::parse(found).expect("registered"),
            );
            prop_assert_eq!(to.scheme(), reg.scheme());
            prop_assert_eq!(to.host_str(), reg.host_str());
            prop_assert_eq!(to.path(), reg.path());
            prop_assert!(to.username().is_empty() && to.password().is_none());
            prop_assert_eq!(to.fragment(), None);
            Ok(())
        },
    );
}

#[test]
fn loopback_registrations_match_every_port() {
    let loopback: Vec<&str> = REGISTERED
        .iter()
        .copied()
        .filter(|r| loopback_identity(r).is_some())
        .collect();
    let input = (select(loopback), 1u16..=u16::MAX);
    check("loopback_any_port", 1000, input, |(base, port)| {
        let registered = vec![base.to_owned()];
        let requested = apply(base, &Edit::Port(port));

        prop_assert_eq!(
            find_match(&requested, &registered),
            Some(base),
            "{}",
            requested
        );
        Ok(())
    });
}

// --- redirect URIs: registration --------------------------------------------------------------

/// URIs that must never be registered (docs/behaviour.md §6), each still dangerous after any edit of
/// `harmless_edit`.
const DANGEROUS: &[&str] = &[
    "javascript:alert(1)",
    "javascript://app.example.com/%0Aalert(1)",
    "JaVaScRiPt:alert(document.cookie)",
    "data:text/html,<script>alert(1)</script>",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "file:///etc/passwd",
    "file://localhost/etc/passwd",
    "vbscript:msgbox(1)",
    "blob:https://app.example.com/0b6c0c6e-3a45-4f5e-9f0e-1f6a1f2b3c4d",
    "blob:null/1234",
    "https://user@app.example.com/cb",
    "https://user:pw@app.example.com/cb",
    "https://:@app.example.com/cb",
    "https://app.example.com@evil.example/cb",
    "https://app.example.com%40evil.example/cb",
    "http://127.0.0.1@evil.example/cb",
    "https://app.example.com/cb#fragment",
    "https://app.example.com/cb#",
    "http://127.0.0.1/cb#x",
    "http://evil.example/cb",
    "http://app.example.com/cb",
    "http://localhost.evil.example/cb",
    "http://127.0.0.1.nip.io/cb",
    "http://[::ffff:127.0.0.1]/cb",
    "http://0.0.0.0/cb",
    "http://10.0.0.1/cb",
    "//evil.example/cb",
    "https:\\\\evil.example\\cb",
    "/relative/cb",
];

/// Edits that keep a dangerous URI dangerous: case, whitespace and control characters,
/// backslashes, and percent-encoding of letters and digits (never of `@`, `#` or `:`).
#[derive(Debug, Clone)]
enum Harmless {
    RandomCase(u64),
    Insert(Index, char),
    Surround(char),
    Backslash(Index),
    PercentEncode(Index),
}

fn harmless_edit() -> impl Strategy<Value = Harmless> {
    let ws = select(vec![
        ' ', '\t', '\n', '\r', '\0', '\u{b}', '\u{c}', '\u{a0}', '\u{3000}', '\u{7f}',
    ]);
    prop_oneof![
        any::<u64>().prop_map(Harmless::RandomCase),
        (any::<Index>(), ws.clone()).prop_map(|(i, c)| Harmless::Insert(i, c)),
        ws.prop_map(Harmless::Surround),
        any::<Index>().prop_map(Harmless::Backslash),
        any::<Index>().prop_map(Harmless::PercentEncode),
    ]
}

fn apply_harmless(uri: &str, edit: &Harmless) -> String {
    let scheme_end = uri.find(':').unwrap_or(0);
    match edit {
        // Upper-casing the scheme only: a host's case does not make it safer either, but a
        // path's case could turn `%2f` into something else.
        Harmless::RandomCase(bits) => uri
            .char_indices()
            .map(|(i, c)| {
                if i < scheme_end && bits >> (i % 64) & 1 == 1 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect(),
        Harmless::Insert(i, c) => {
            let boundaries: Vec<usize> = uri
                .char_indices()
                .map(|(j, _)| j)
                .chain([uri.len()])
                .collect();
            let mut s = uri.to_owned();
            s.insert(*i.get(&boundaries), *c);
            s
        }
        Harmless::Surround(c) => format!("{c}{uri}{c}"),
        Harmless::Backslash(i) => {
            let slashes: Vec<usize> = uri.match_indices('/').map(|(j, _)| j).collect();
            if slashes.is_empty() {
                return format!("{uri}\\");
            }
            let j = *i.get(&slashes);
            format!("{}\\{}", &uri[..j], &uri[j + 1..])
        }
        Harmless::PercentEncode(i) => {
            let candidates: Vec<usize> = uri
                .char_indices()
                .filter(|(j, c)| *j > scheme_end && c.is_ascii_alphanumeric())
                .map(|(j, _)| j)
                .collect();
            if candidates.is_empty() {
                return uri.to_owned();
            }
            let j = *i.get(&candidates);
            format!("{}%{:02X}{}", &uri[..j], uri.as_bytes()[j], &uri[j + 1..])
        }
    }
}

#[test]
fn registration_never_accepts_dangerous_redirect_uris_in_any_spelling() {
    let input = (
        select(DANGEROUS.to_vec()),
        proptest::collection::vec(harmless_edit(), 0..4),
    );
    check(
        "registration_refuses_dangerous_uris",
        4000,
        input,
        |(base, edits)| {
            let uri = edits
                .iter()
                .fold(base.to_owned(), |u, e| apply_harmless(&u, e));

            let verdict = validate_for_registration(&uri);

            prop_assert!(verdict.is_err(), "{uri:?} (from {base:?}) was accepted");
            Ok(())
        },
    );
}

#[test]
fn registration_verdicts_are_consistent_for_any_string() {
    let input = prop_oneof![
        2 => any::<String>(),
        2 => mutated_uri().prop_map(|(u, _)| u),
        1 => "[a-zA-Z][a-zA-Z0-9+.-]{0,10}:[/\\\\]{0,3}[a-z0-9@:.%\\[\\]#?/\\\\ ]{0,30}",
    ];
    check("registration_verdicts_consistent", 4000, input, |uri| {
        let Ok(kind) = validate_for_registration(&uri) else {
            return Ok(());
        };
        let url = url::Url::parse(&uri).expect("accepted URIs are absolute");
        let scheme = url.scheme();
        prop_assert!(
            !["javascript", "data", "file", "vbscript", "blob"].contains(&scheme),
            "{uri:?}"
        );
        prop_assert!(
            url.username().is_empty() && url.password().is_none(),
            "{uri:?}"
        );
        prop_assert!(url.fragment().is_none() && !uri.contains('#'), "{uri:?}");
        prop_assert!(
            !uri.contains(['\\', ' ', '\t', '\n', '\r', '\0']),
            "{uri:?}"
        );
        if scheme == "http" {
            prop_assert_eq!(kind, UriKind::Native, "{:?}", uri);
            prop_assert!(
                matches!(
                    url.host(),
                    Some(url::Host::Ipv4(ip)) if ip.is_loopback()
                ) || matches!(url.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback())
                    || url.host_str() == Some("localhost"),
                "http on a non-loopback host: {uri:?}"
            );
        }
        if kind == UriKind::Web {
            prop_assert_eq!(scheme, "https");
        }
        Ok(())
    });
}

// --- registration metadata --------------------------------------------------------------------

const MEMBERS: &[&str] = &[
    "redirect_uris",
    "token_endpoint_auth_method",
    "grant_types",
    "response_types",
    "application_type",
    "client_name",
    "client_uri",
    "logo_uri",
    "tos_uri",
    "policy_uri",
    "scope",
    "contacts",
    "software_id",
    "software_version",
    "jwks",
];

fn json_leaf() -> impl Strategy<Value = Value> {
    let words = select(vec![
        "code",
        "token",
        "none",
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
        "authorization_code",
        "refresh_token",
        "client_credentials",
        "urn:ietf:params:oauth:grant-type:device_code",
        "native",
        "web",
        "mcp offline_access openid",
        "",
        "https://app.example.com/cb",
        "http://127.0.0.1/cb",
        "javascript:alert(1)",
        "cursor://anysphere.cursor-mcp/oauth/callback",
    ]);
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        words.prop_map(|w| Value::String(w.to_owned())),
        "[ -~]{0,300}".prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::vec((select(MEMBERS.to_vec()), inner), 0..8).prop_map(
                |members| {
                    Value::Object(
                        members
                            .into_iter()
                            .map(|(k, v)| (k.to_owned(), v))
                            .collect::<Map<_, _>>(),
                    )
                }
            ),
        ]
    })
}

/// A registration body: mostly objects with the known members, any JSON as their values.
fn registration_body() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => proptest::collection::vec((select(MEMBERS.to_vec()), json_value()), 0..10)
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        1 => json_value(),
    ]
}

fn supported() -> Vec<String> {
    vec!["mcp".into(), "offline_access".into()]
}

/// Parses and validates like `POST /register`; checks what any answer must satisfy.
fn check_registration(body: &[u8]) -> Result<(), TestCaseError> {
    let result = register::parse_json(body).and_then(|i| register::validate(i, &supported()));
    match result {
        Err(e) => prop_assert!(
            matches!(
                e.error.code,
                ErrorCode::InvalidClientMetadata | ErrorCode::InvalidRedirectUri
            ),
            "{:?}",
            e
        ),
        Ok(m) => {
            prop_assert!(!m.grant_types.is_empty());
            let known = [
                records::GRANT_AUTHORIZATION_CODE,
                records::GRANT_REFRESH_TOKEN,
                records::GRANT_CLIENT_CREDENTIALS,
            ];
            let all_known = m.grant_types.iter().all(|g| known.contains(&g.as_str()));
            prop_assert!(all_known, "{:?}", m.grant_types);
            prop_assert!(m.response_types.iter().all(|r| r == "code"));
            if m.has_grant(records::GRANT_AUTHORIZATION_CODE) {
                prop_assert!(!m.redirect_uris.is_empty());
            }
            if m.token_endpoint_auth_method == AuthMethod::None {
                prop_assert!(!m.has_grant(records::GRANT_CLIENT_CREDENTIALS));
            }
            for uri in &m.redirect_uris {
                let kind = validate_for_registration(uri);
                prop_assert!(kind.is_ok(), "{uri:?} stored but invalid");
                if m.application_type == "web" {
                    prop_assert_eq!(kind, Ok(UriKind::Web));
                }
            }
            prop_assert!(["native", "web"].contains(&m.application_type.as_str()));
            if let Some(s) = &m.scope {
                prop_assert!(s.split(' ').all(|t| supported().iter().any(|x| x == t)));
            }
        }
    }
    Ok(())
}

#[test]
fn registration_never_panics_on_arbitrary_bytes() {
    let bytes = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        proptest::collection::vec(select(b"{}[]\":,0123456789.eE+-tfnul\\ ".to_vec()), 0..512),
    ];
    check("registration_bytes", 2000, bytes, |bytes| {
        check_registration(&bytes)
    });
}

#[test]
fn registration_never_panics_on_arbitrary_json() {
    check("registration_json", 3000, registration_body(), |value| {
        let body = serde_json::to_vec(&value).expect("serialize");
        check_registration(&body)
    });
}

#[test]
fn deeply_nested_json_is_invalid_client_metadata() {
    for body in [
        "[".repeat(10_000),
        "{\"a\":".repeat(10_000),
        format!("{{\"redirect_uris\":{}", "[".repeat(100_000)),
    ] {
        let e = register::parse_json(body.as_bytes()).expect_err("refused");

        assert_eq!(e.error.code, ErrorCode::InvalidClientMetadata);
    }
}

// --- the Accept guard -------------------------------------------------------------------------

/// The Accept header as actix parses it; `None` when the value cannot be a header at all.
fn html_for(value: &str) -> Option<bool> {
    let value = HeaderValue::from_str(value).ok()?;
    let req = TestRequest::default()
        .insert_header(("accept", value))
        .to_http_request();
    Some(prefers_html(req.headers()))
}

/// A media range with a quality in thousandths (`None`: no q parameter, i.e. 1).
#[derive(Debug, Clone)]
struct Range {
    range: &'static str,
    q: Option<u16>,
    upper: bool,
    param: bool,
}

impl Range {
    fn quality(&self) -> u16 {
        self.q.unwrap_or(1000)
    }

    fn render(&self, style: u8) -> String {
        let mut s = if self.upper {
            self.range.to_ascii_uppercase()
        } else {
            self.range.to_owned()
        };
        if self.param {
            s.push_str(";charset=utf-8");
        }
        if let Some(q) = self.q {
            let q = match (q, style % 3) {
                (1000, 0) => "1".to_owned(),
                (1000, 1) => "1.0".to_owned(),
                (1000, _) => "1.000".to_owned(),
                (0, 0) => "0".to_owned(),
                (q, 1) => format!("0.{q:03}"),
                (q, _) => format!("0.{q:03}").trim_end_matches('0').to_owned(),
            };
            let q = if q.ends_with('.') { format!("{q}0") } else { q };
            s.push_str(if style.is_multiple_of(2) {
                ";q="
            } else {
                "; q="
            });
            s.push_str(&q);
        }
        s
    }
}

fn range(names: Vec<&'static str>) -> impl Strategy<Value = Range> {
    (
        select(names),
        prop_oneof![Just(None), (0u16..=1000).prop_map(Some)],
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(range, q, upper, param)| Range {
            range,
            q,
            upper,
            param,
        })
}

const RANGES: &[&str] = &[
    "text/html",
    "application/json",
    "text/*",
    "application/*",
    "*/*",
    "application/xhtml+xml",
    "application/xml",
    "image/webp",
    "text/plain",
];

/// RFC 9110 §12.5.1: a type's quality is the one of the most specific range that matches it.
fn model_quality(ranges: &[Range], ty: &str) -> u16 {
    let (major, _) = ty.split_once('/').expect("type/subtype");
    let wildcard = format!("{major}/*");
    [ty, wildcard.as_str(), "*/*"]
        .iter()
        .find_map(|r| ranges.iter().find(|x| x.range == *r))
        .map_or(0, Range::quality)
}

#[test]
fn prefers_html_never_panics_on_any_header() {
    let input = prop_oneof![
        any::<String>(),
        "[a-zA-Z/*;=.,0-9 q\"\\\\+-]{0,80}",
        proptest::collection::vec(any::<u8>(), 0..200)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ];
    check("prefers_html_never_panics", 3000, input, |header| {
        let _ = html_for(&header);
        Ok(())
    });
}

#[test]
fn prefers_html_iff_html_quality_is_strictly_higher() {
    let input = (
        proptest::collection::vec(range(RANGES.to_vec()), 0..8),
        any::<u8>(),
    )
        .prop_map(|(ranges, style)| {
            // Each range at most once, so "the quality of text/html" is well defined.
            let mut seen = HashSet::new();
            let ranges: Vec<Range> = ranges
                .into_iter()
                .filter(|r| seen.insert(r.range))
                .collect();
            (ranges, style)
        });
    check("prefers_html_model", 4000, input, |(ranges, style)| {
        let header = ranges
            .iter()
            .enumerate()
            .map(|(i, r)| r.render(style.wrapping_add(i as u8)))
            .collect::<Vec<_>>()
            .join(if style.is_multiple_of(2) { "," } else { ", " });
        let expected =
            model_quality(&ranges, "text/html") > model_quality(&ranges, "application/json");

        let html = html_for(&header).expect("a valid header value");

        prop_assert_eq!(html, expected, "Accept: {}", header);
        Ok(())
    });
}

fn json_at_q1_headers(others: Vec<&'static str>) -> impl Strategy<Value = String> {
    (
        proptest::collection::vec(range(others), 0..8),
        any::<Index>(),
        select(vec![
            "application/json",
            "application/json;q=1",
            "application/json; q=1.0",
            "APPLICATION/JSON;q=1.000",
            "application/json;charset=utf-8",
        ]),
        any::<u8>(),
    )
        .prop_map(|(ranges, at, json, style)| {
            let mut items: Vec<String> = ranges.iter().map(|r| r.render(style)).collect();
            items.insert(at.index(items.len() + 1), json.to_owned());
            items.join(",")
        })
}

#[test]
fn application_json_at_q1_never_gives_html() {
    let others: Vec<&str> = RANGES
        .iter()
        .copied()
        .filter(|r| *r != "application/json")
        .collect();
    check(
        "json_q1_never_html",
        4000,
        json_at_q1_headers(others),
        |header| {
            let html = html_for(&header).expect("a valid header value");

            prop_assert!(!html, "Accept: {}", header);
            Ok(())
        },
    );
}

/// The same with `application/json` listed again at a lower quality, e.g.
/// `application/json;q=0, application/json, text/html`: among equally specific ranges the
/// highest quality counts (the first one used to decide, and the `accept` fuzz target found
/// it in about a second with `fuzz/accept.dict`).
#[test]
fn application_json_at_q1_never_gives_html_even_when_listed_twice() {
    check(
        "json_q1_listed_twice_never_html",
        4000,
        json_at_q1_headers(RANGES.to_vec()),
        |header| {
            let html = html_for(&header).expect("a valid header value");

            prop_assert!(!html, "Accept: {}", header);
            Ok(())
        },
    );
}

// --- single use and the sign-in form ----------------------------------------------------------

/// One step on a single-use record: write it live for an owner, take it as an owner, remove it.
#[derive(Debug, Clone)]
enum OnceStep {
    Put(u8),
    Take(u8),
    Remove,
}

/// Single use, as the store implements it, against a model: any sequence of writes, takes by
/// the owner or by anyone else, and removals gives the answers of a three-state machine
/// (nothing / live for an owner / taken at a time). Refresh-token races are sequences of takes.
#[test]
fn take_once_follows_its_model_in_any_sequence() {
    use doorman::store::kv::{self, Durability, Kv, Once};
    let steps = proptest::collection::vec(
        prop_oneof![
            (0u8..3).prop_map(OnceStep::Put),
            (0u8..3).prop_map(OnceStep::Take),
            Just(OnceStep::Remove),
        ],
        1..40,
    );
    check("take_once_model", 2000, steps, |steps| {
        let store = doorman::store::MemoryStore::new();
        let owner = |o: u8| format!("client-{o}");
        // The model: None, or the live owner, or (taken by, at).
        enum State {
            Empty,
            Live(u8),
            Used(u8, u64),
        }
        let mut state = State::Empty;
        for (i, step) in steps.iter().enumerate() {
            let stamp = i as u64;
            match step {
                OnceStep::Put(o) => {
                    futures_util::FutureExt::now_or_never(store.put(
                        "k",
                        &kv::live(&owner(*o), b"r"),
                        None,
                    ))
                    .expect("memory is done at once")
                    .expect("put");
                    state = State::Live(*o);
                }
                OnceStep::Remove => {
                    let _ = futures_util::FutureExt::now_or_never(store.remove("k"));
                    state = State::Empty;
                }
                OnceStep::Take(o) => {
                    let got = futures_util::FutureExt::now_or_never(store.take_once(
                        "k",
                        &owner(*o),
                        stamp,
                        std::time::Duration::from_secs(60),
                        Durability::Durable,
                    ))
                    .expect("memory is done at once")
                    .expect("take");
                    let live = |x: u8| kv::live(&owner(x), b"r");
                    let (expected, next) = match state {
                        State::Empty => (Once::Missing, State::Empty),
                        State::Live(x) if x == *o => (Once::Taken(live(x)), State::Used(x, stamp)),
                        State::Live(x) => (Once::Held(live(x)), State::Live(x)),
                        State::Used(x, at) => {
                            (Once::Used(kv::used(at, &live(x))), State::Used(x, at))
                        }
                    };
                    prop_assert_eq!(got, expected, "step {} of {:?}", i, steps);
                    state = next;
                }
            }
        }
        Ok(())
    });
}

/// Whether a form POST came from our own page, for any header values: never a panic, and
/// nothing but `Sec-Fetch-Site: same-origin` passes where the header is present.
#[test]
fn form_origin_checks_accept_only_same_origin() {
    let header = prop_oneof![
        Just(None),
        Just(Some("same-origin".to_owned())),
        Just(Some("null".to_owned())),
        Just(Some("https://as.example".to_owned())),
        any::<String>().prop_map(Some),
    ];
    check(
        "form_origin",
        4000,
        (header.clone(), header),
        |(fetch_site, origin)| {
            let browser = doorman::flows::Browser {
                fetch_site: fetch_site.as_deref(),
                origin: origin.as_deref(),
                ..Default::default()
            };

            let ours = browser.form_is_ours("https://as.example");

            if let Some(site) = &fetch_site {
                prop_assert_eq!(ours, site.eq_ignore_ascii_case("same-origin"));
            } else if let Some(o) = &origin {
                prop_assert_eq!(
                    ours,
                    o == "null" || o.eq_ignore_ascii_case("https://as.example")
                );
            } else {
                prop_assert!(ours);
            }
            Ok(())
        },
    );
}
