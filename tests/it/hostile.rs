//! The hostile-input corpus (issue 6 part 3): a table of requests, each written byte by byte to
//! a real socket, each with its documented answer, none answered with a 5xx, and no response
//! header or log line forged from request data.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{CHALLENGE, CHROME_ACCEPT, DoormanProcess, TestApp, VERIFIER};

/// The redirect URIs the victim client registered.
const WEB: &str = "https://app.example.com/cb";
const LOOPBACK: &str = "http://127.0.0.1/cb";
/// Above the 64 KiB body limit (docs/behaviour.md §6).
const OVER_LIMIT: usize = 64 * 1024 + 1;
/// What a forged header or log line would start with.
const FORGED: &str = "X-Forged";

// --- raw HTTP ---------------------------------------------------------------------------------

/// A response as read from the socket.
#[derive(Debug)]
struct Raw {
    status: u16,
    /// Names lower-cased, in order.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The query of the `Location` header, decoded.
    fn location_query(&self) -> Option<Vec<(String, String)>> {
        let url = url::Url::parse(self.header("location")?).ok()?;
        Some(url.query_pairs().into_owned().collect())
    }

    fn location_param(&self, name: &str) -> Option<String> {
        self.location_query()?
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// A hidden form field (`name="…" value="…"`) on an HTML page.
    fn field(&self, name: &str) -> String {
        let body = self.text();
        let marker = format!("name=\"{name}\" value=\"");
        let start = body
            .find(&marker)
            .unwrap_or_else(|| panic!("no field {name}: {body}"))
            + marker.len();
        let len = body[start..].find('"').expect("closing quote");
        body[start..start + len].to_owned()
    }

    /// `doorman_session=…` as a browser sends it back.
    /// Every cookie the answer sets (the session and the sign-in's browser binding), as a
    /// browser sends them back.
    fn session_cookie(&self) -> Option<String> {
        let pairs: Vec<&str> = self
            .headers
            .iter()
            .filter(|(n, _)| n == "set-cookie")
            .filter_map(|(_, v)| v.split(';').next())
            .collect();
        pairs
            .iter()
            .any(|p| p.starts_with("doorman_session="))
            .then(|| pairs.join("; "))
    }
}

/// Writes `request` to a new connection and reads the whole answer (`Connection: close`).
/// `None` when the server closed the connection without answering.
fn exchange(addr: SocketAddr, request: &[u8]) -> Option<Raw> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(20))).ok()?;
    // The server may answer (413, 431) before reading everything: a failed write is fine.
    let _ = s.write_all(request);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    parse_response(&buf)
}

fn parse_response(buf: &[u8]) -> Option<Raw> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = buf[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Some(Raw {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&data[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 || data.len() < eol + 2 + size {
            break;
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[(eol + 4 + size).min(data.len())..];
    }
    out
}

/// `GET target` with extra header lines.
fn get(target: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    request("GET", target.as_bytes(), headers, None)
}

/// `POST target` with a body of the given content type.
fn post(target: &str, content_type: &str, body: &[u8], headers: &[(&str, &str)]) -> Vec<u8> {
    let mut all = vec![("Content-Type", content_type)];
    all.extend_from_slice(headers);
    request("POST", target.as_bytes(), &all, Some(body))
}

fn form(target: &str, body: &str) -> Vec<u8> {
    post(
        target,
        "application/x-www-form-urlencoded",
        body.as_bytes(),
        &[],
    )
}

fn request(method: &str, target: &[u8], headers: &[(&str, &str)], body: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target);
    out.extend_from_slice(b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (n, v) in headers {
        out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
    }
    if let Some(b) = body {
        out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", b.len()).as_bytes());
        out.extend_from_slice(b);
    } else {
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

// --- the table --------------------------------------------------------------------------------

/// What a case must get.
#[derive(Debug, Clone)]
enum Want {
    /// Answered directly with this status and, for JSON answers, this error; never a Location.
    Direct(u16, Option<&'static str>),
    /// Redirected (302/303) to the client's registered URI with this error, and with `state`
    /// echoed byte-exact when given.
    Redirect(&'static str, Option<String>),
    /// Refused by the HTTP layer: any 4xx, never a 5xx.
    ClientError,
    /// Accepted: this status, no error.
    Fine(u16),
}

struct Case {
    name: String,
    request: Vec<u8>,
    want: Want,
}

fn case(name: impl Into<String>, request: Vec<u8>, want: Want) -> Case {
    Case {
        name: name.into(),
        request,
        want,
    }
}

/// Checks one answer against its case; the reason when it does not hold.
fn verdict(case: &Case, res: Option<&Raw>) -> Result<(), String> {
    let Some(res) = res else {
        return match case.want {
            // Refusing malformed HTTP by closing the connection is not a 5xx.
            Want::ClientError => Ok(()),
            _ => Err("no answer".into()),
        };
    };
    if res.status >= 500 {
        return Err(format!("{} {}", res.status, res.text()));
    }
    // No header forged from request data.
    for (n, v) in &res.headers {
        if n.eq_ignore_ascii_case(FORGED) || (n == "set-cookie" && v.contains("forged")) {
            return Err(format!("forged header {n}: {v}"));
        }
    }
    let error = res
        .json()
        .and_then(|j| j["error"].as_str().map(str::to_owned));
    match &case.want {
        Want::Direct(status, code) => {
            if res.status != *status {
                return Err(format!(
                    "status {} (want {status}): {}",
                    res.status,
                    res.text()
                ));
            }
            if let Some(l) = res.header("location") {
                return Err(format!("must not redirect, got Location {l}"));
            }
            if let Some(code) = code
                && error.as_deref() != Some(code)
            {
                return Err(format!("error {error:?} (want {code}): {}", res.text()));
            }
        }
        Want::Redirect(code, state) => {
            if ![302, 303].contains(&res.status) {
                return Err(format!(
                    "status {} (want a redirect): {}",
                    res.status,
                    res.text()
                ));
            }
            let location = res.header("location").unwrap_or("");
            if !(location.starts_with(WEB)
                || location.starts_with("http://127.0.0.1:")
                || location.starts_with(LOOPBACK))
            {
                return Err(format!("redirected to an unregistered URI: {location}"));
            }
            let got = res.location_param("error");
            if got.as_deref() != Some(code) {
                return Err(format!("error {got:?} (want {code}) in {location}"));
            }
            if let Some(s) = state
                && res.location_param("state").as_ref() != Some(s)
            {
                return Err(format!("state not echoed byte-exact in {location}"));
            }
        }
        Want::ClientError => {
            if !(400..500).contains(&res.status) {
                return Err(format!("status {} (want 4xx)", res.status));
            }
        }
        Want::Fine(status) => {
            if res.status != *status || error.is_some() {
                return Err(format!(
                    "status {} (want {status}): {}",
                    res.status,
                    res.text()
                ));
            }
        }
    }
    Ok(())
}

/// Sends every case in order; fails listing every case that did not get its answer.
fn run(addr: SocketAddr, cases: &[Case]) -> usize {
    let mut failures = Vec::new();
    for c in cases {
        let res = exchange(addr, &c.request);
        if let Err(why) = verdict(c, res.as_ref()) {
            failures.push(format!("{}: {why}", c.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} hostile cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    cases.len()
}

// --- a victim client and its codes ------------------------------------------------------------

struct Registered {
    id: String,
    rat: String,
}

fn register(addr: SocketAddr, metadata: Value) -> Registered {
    let body = serde_json::to_vec(&metadata).expect("json");
    let res = exchange(addr, &post("/register", "application/json", &body, &[])).expect("answer");
    assert_eq!(res.status, 201, "{}", res.text());
    let doc = res.json().expect("json");
    Registered {
        id: doc["client_id"].as_str().expect("client_id").to_owned(),
        rat: doc["registration_access_token"]
            .as_str()
            .expect("registration_access_token")
            .to_owned(),
    }
}

fn public_client(addr: SocketAddr) -> Registered {
    register(
        addr,
        json!({"client_name": "Victim", "redirect_uris": [WEB, LOOPBACK], "token_endpoint_auth_method": "none"}),
    )
}

/// A valid authorization request for `client_id`, with `redirect_uri` and `extra` appended.
fn authorize_query(client_id: &str, redirect_uri: &str, extra: &str) -> String {
    format!(
        "/authorize?response_type=code&client_id={}&redirect_uri={}&code_challenge={CHALLENGE}&code_challenge_method=S256&state=st{extra}",
        enc(client_id),
        enc(redirect_uri)
    )
}

/// Dev sign-in: the consent page, then Approve; the code.
fn code_for(addr: SocketAddr, client_id: &str) -> String {
    let page = exchange(
        addr,
        &get(
            &authorize_query(client_id, LOOPBACK, ""),
            &[("Accept", CHROME_ACCEPT)],
        ),
    )
    .expect("consent page");
    assert_eq!(page.status, 200, "{}", page.text());
    let cookie = page.session_cookie().expect("session cookie");
    let body = format!(
        "request={}&csrf_token={}&decision=approve",
        enc(&page.field("request")),
        enc(&page.field("csrf_token"))
    );
    let done = exchange(
        addr,
        &post(
            "/consent",
            "application/x-www-form-urlencoded",
            body.as_bytes(),
            &[("Cookie", &cookie)],
        ),
    )
    .expect("consent answer");
    assert_eq!(done.status, 303, "{}", done.text());
    done.location_param("code").expect("code")
}

fn exchange_code(client_id: &str, code: &str) -> Vec<u8> {
    form(
        "/token",
        &format!(
            "grant_type=authorization_code&code={}&redirect_uri={}&code_verifier={VERIFIER}&client_id={}",
            enc(code),
            enc(LOOPBACK),
            enc(client_id)
        ),
    )
}

fn refresh(client_id: &str, token: &str) -> Vec<u8> {
    form(
        "/token",
        &format!(
            "grant_type=refresh_token&refresh_token={}&client_id={}",
            enc(token),
            enc(client_id)
        ),
    )
}

// --- the corpus -------------------------------------------------------------------------------

/// Requests that need no prior state beyond the registered victim `a`.
fn static_cases(a: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    let json_ct = "application/json";

    // Bodies over the limit.
    let big_json = format!("{{\"client_name\":\"{}\"}}", "x".repeat(OVER_LIMIT));
    cases.push(case(
        "register: JSON body over 64 KiB",
        post("/register", json_ct, big_json.as_bytes(), &[]),
        Want::Direct(413, Some("invalid_client_metadata")),
    ));
    let mut chunked = Vec::new();
    chunked.extend_from_slice(b"POST /register HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
    for _ in 0..5 {
        let chunk = "x".repeat(16 * 1024);
        chunked.extend_from_slice(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes());
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    cases.push(case(
        "register: chunked body over 64 KiB",
        chunked,
        Want::Direct(413, Some("invalid_client_metadata")),
    ));
    cases.push(case(
        "register form: body over 64 KiB",
        form(
            "/register",
            &format!("client_name={}", "x".repeat(OVER_LIMIT)),
        ),
        Want::Direct(413, None),
    ));
    for path in ["/login", "/consent"] {
        cases.push(case(
            format!("{path}: form body over 64 KiB"),
            form(path, &format!("request={}", "x".repeat(OVER_LIMIT))),
            Want::Direct(413, None),
        ));
    }
    cases.push(case(
        "authorize POST: body over 64 KiB",
        form(
            "/authorize",
            &format!("client_id={}&state={}", enc(a), "x".repeat(OVER_LIMIT)),
        ),
        Want::Direct(413, Some("invalid_request")),
    ));

    // Oversized headers and query strings: whatever actix answers, a 4xx.
    for size in [16 * 1024, 70 * 1024, 300 * 1024] {
        cases.push(case(
            format!("authorize: query string of {size} bytes"),
            get(
                &format!("/authorize?client_id={}&state={}", enc(a), "s".repeat(size)),
                &[],
            ),
            Want::ClientError,
        ));
        let value = "v".repeat(size);
        cases.push(case(
            format!("token: one header of {size} bytes"),
            request("POST", b"/token", &[("X-Big", &value)], Some(b"")),
            Want::ClientError,
        ));
    }
    let many: Vec<(String, String)> = (0..200).map(|i| (format!("X-H{i}"), "v".into())).collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    cases.push(case(
        "authorize: 200 header lines",
        get(&format!("/authorize?client_id={}", enc(a)), &many),
        Want::ClientError,
    ));
    let cookie = format!("doorman_session={}", "c".repeat(100 * 1024));
    cases.push(case(
        "consent: 100 KiB cookie",
        get("/consent?request=x", &[("Cookie", &cookie)]),
        Want::ClientError,
    ));
    // A long state within the line limit is the protocol's business: over 4 KiB is refused
    // by redirect, without echoing it.
    cases.push(case(
        "authorize: state of 5 KiB",
        get(
            &authorize_query(a, WEB, &format!("&state={}", "s".repeat(5 * 1024))),
            &[],
        ),
        Want::Redirect("invalid_request", None),
    ));

    // Deeply nested JSON.
    for (name, body) in [
        ("10,000 [", "[".repeat(10_000)),
        (
            "10,000 [] closed",
            format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)),
        ),
        ("10,000 nested objects", "{\"a\":".repeat(10_000)),
        (
            "redirect_uris nested 5,000 deep",
            format!(
                "{{\"redirect_uris\":{}\"x\"{}}}",
                "[".repeat(5_000),
                "]".repeat(5_000)
            ),
        ),
    ] {
        cases.push(case(
            format!("register: {name}"),
            post("/register", json_ct, body.as_bytes(), &[]),
            Want::Direct(400, Some("invalid_client_metadata")),
        ));
    }

    // Invalid UTF-8.
    cases.push(case(
        "authorize: %FF%FE client_id",
        get("/authorize?client_id=%FF%FE&response_type=code", &[]),
        Want::Direct(400, Some("invalid_client")),
    ));
    cases.push(case(
        "authorize: %C0%AF (overlong) redirect_uri",
        get(
            &authorize_query(a, "https://app.example.com%C0%AFcb", ""),
            &[],
        ),
        Want::Direct(400, Some("invalid_request")),
    ));
    cases.push(case(
        "authorize: %FF in state is echoed, not fatal",
        get(
            &format!(
                "/authorize?response_type=token&client_id={}&redirect_uri={}&state=%FF",
                enc(a),
                enc(WEB)
            ),
            &[],
        ),
        Want::Redirect("unsupported_response_type", Some("\u{FFFD}".into())),
    ));
    cases.push(case(
        "authorize: raw 0xFF bytes in the request line",
        request(
            "GET",
            b"/authorize?client_id=\xff\xfe&state=\xc3",
            &[],
            None,
        ),
        Want::ClientError,
    ));
    cases.push(case(
        "authorize POST: invalid UTF-8 form",
        post(
            "/authorize",
            "application/x-www-form-urlencoded",
            b"client_id=\xff\xfe&response_type=code",
            &[],
        ),
        Want::Direct(400, Some("invalid_client")),
    ));
    cases.push(case(
        "token: invalid UTF-8 client_id",
        post(
            "/token",
            "application/x-www-form-urlencoded",
            b"grant_type=authorization_code&code=x&client_id=\xff\xfe",
            &[],
        ),
        Want::Direct(401, Some("invalid_client")),
    ));
    cases.push(case(
        "token: invalid UTF-8 code",
        post(
            "/token",
            "application/x-www-form-urlencoded",
            format!(
                "grant_type=authorization_code&code=%FF%FE&code_verifier={VERIFIER}&client_id={}",
                enc(a)
            )
            .as_bytes(),
            &[],
        ),
        Want::Direct(400, Some("invalid_grant")),
    ));
    cases.push(case(
        "register: invalid UTF-8 inside a JSON string",
        post(
            "/register",
            json_ct,
            b"{\"client_name\":\"\xff\xfe\",\"redirect_uris\":[\"https://app.example.com/cb\"]}",
            &[],
        ),
        Want::Direct(400, Some("invalid_client_metadata")),
    ));
    cases.push(case(
        "register: UTF-16 body",
        post("/register", json_ct, b"\xff\xfe{\x00}\x00", &[]),
        Want::Direct(400, Some("invalid_client_metadata")),
    ));

    // Duplicate parameters (RFC 6749 §3.1).
    let dup_client = format!(
        "/authorize?client_id={a}&client_id={a}&response_type=code&redirect_uri={}&code_challenge={CHALLENGE}",
        enc(WEB)
    );
    cases.push(case(
        "authorize: client_id twice",
        get(&dup_client, &[]),
        Want::Direct(400, Some("invalid_request")),
    ));
    cases.push(case(
        "authorize: client_id twice (one empty)",
        get(&format!("/authorize?client_id={a}&client_id="), &[]),
        Want::Direct(400, Some("invalid_request")),
    ));
    cases.push(case(
        "authorize: redirect_uri twice",
        get(
            &authorize_query(a, WEB, &format!("&redirect_uri={}", enc(WEB))),
            &[],
        ),
        Want::Direct(400, Some("invalid_request")),
    ));
    cases.push(case(
        "authorize: redirect_uri twice, the second an attacker's",
        get(
            &authorize_query(a, WEB, "&redirect_uri=https%3A%2F%2Fevil.example%2Fcb"),
            &[],
        ),
        Want::Direct(400, Some("invalid_request")),
    ));
    for name in [
        "response_type",
        "code_challenge",
        "code_challenge_method",
        "scope",
    ] {
        let value = if name == "code_challenge" {
            CHALLENGE
        } else if name == "scope" {
            "mcp"
        } else if name == "response_type" {
            "code"
        } else {
            "S256"
        };
        cases.push(case(
            format!("authorize: {name} twice"),
            get(
                &authorize_query(a, WEB, &format!("&{name}={value}&{name}={value}")),
                &[],
            ),
            Want::Redirect("invalid_request", None),
        ));
    }
    cases.push(case(
        "authorize: state twice",
        get(&authorize_query(a, WEB, "&state=other"), &[]),
        Want::Redirect("invalid_request", None),
    ));
    cases.push(case(
        "authorize POST: client_id twice",
        form("/authorize", &format!("client_id={a}&client_id=other")),
        Want::Direct(400, Some("invalid_request")),
    ));
    for name in [
        "grant_type",
        "code",
        "client_id",
        "code_verifier",
        "redirect_uri",
    ] {
        cases.push(case(
            format!("token: {name} twice"),
            form(
                "/token",
                &format!(
                    "grant_type=authorization_code&code=c&code_verifier={VERIFIER}&redirect_uri={}&client_id={}&{name}=again",
                    enc(LOOPBACK),
                    enc(a)
                ),
            ),
            Want::Direct(400, Some("invalid_request")),
        ));
    }

    // CR/LF in state and client_id: no header forged (the verdict checks every answer).
    let crlf_state = format!("x\r\n{FORGED}: 1\r\nSet-Cookie: forged=1");
    cases.push(case(
        "authorize: CR/LF in state of a redirected error",
        get(
            &format!(
                "/authorize?response_type=token&client_id={}&redirect_uri={}&state={}",
                enc(a),
                enc(WEB),
                enc(&crlf_state)
            ),
            &[],
        ),
        Want::Redirect("unsupported_response_type", Some(crlf_state.clone())),
    ));
    cases.push(case(
        "authorize: CR/LF in state of a direct error",
        get(
            &format!(
                "/authorize?client_id={}&redirect_uri=https%3A%2F%2Fevil.example%2F&state={}",
                enc(a),
                enc(&crlf_state)
            ),
            &[],
        ),
        Want::Direct(400, Some("invalid_request")),
    ));
    let crlf_client = format!("evil\r\n{FORGED}: 1\r\nSet-Cookie: forged=1");
    for (accept, what) in [("application/json", "JSON"), (CHROME_ACCEPT, "HTML")] {
        cases.push(case(
            format!("authorize: CR/LF in an unknown client_id ({what})"),
            get(
                &format!(
                    "/authorize?client_id={}&state={}&response_type=code&redirect_uri={}",
                    enc(&crlf_client),
                    enc(&crlf_state),
                    enc(&format!("https://x.example/\r\n{FORGED}: 1"))
                ),
                &[("Accept", accept)],
            ),
            Want::Direct(
                400,
                if what == "JSON" {
                    Some("invalid_client")
                } else {
                    None
                },
            ),
        ));
    }
    cases.push(case(
        "token: CR/LF in client_id",
        form(
            "/token",
            &format!(
                "grant_type=authorization_code&code=c&client_id={}",
                enc(&crlf_client)
            ),
        ),
        Want::Direct(401, Some("invalid_client")),
    ));
    cases.push(case(
        "register: CR/LF in client_name",
        post(
            "/register",
            json_ct,
            json!({"client_name": crlf_client, "redirect_uris": [WEB]})
                .to_string()
                .as_bytes(),
            &[],
        ),
        Want::Direct(400, Some("invalid_client_metadata")),
    ));
    cases.push(case(
        "register/{id}: CR/LF in the path",
        get(
            &format!("/register/{}", enc(&crlf_client)),
            &[("Authorization", "Bearer x")],
        ),
        Want::Direct(401, Some("invalid_token")),
    ));

    // javascript: and data: redirect URIs at registration and at authorization.
    for uri in [
        "javascript:alert(1)",
        "JAVASCRIPT:alert(document.cookie)",
        "javascript://app.example.com/%0Aalert(1)",
        " javascript:alert(1)",
        "java\tscript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
        "vbscript:msgbox(1)",
        "file:///etc/passwd",
        "blob:https://app.example.com/0b6c",
        "https://user@app.example.com/cb",
        "https://app.example.com/cb#x",
        "http://evil.example/cb",
    ] {
        cases.push(case(
            format!("register: redirect URI {uri:?}"),
            post(
                "/register",
                json_ct,
                json!({"redirect_uris": [WEB, uri]}).to_string().as_bytes(),
                &[],
            ),
            Want::Direct(400, Some("invalid_redirect_uri")),
        ));
    }
    for uri in [
        "javascript:alert(1)",
        "javascript://app.example.com/cb%0Aalert(1)",
        "data:text/html,<script>alert(1)</script>",
    ] {
        cases.push(case(
            format!("authorize: redirect_uri {uri:?}"),
            get(&authorize_query(a, uri, ""), &[]),
            Want::Direct(400, Some("invalid_request")),
        ));
    }

    // Open-redirect tricks against the registered https://app.example.com/cb and
    // http://127.0.0.1/cb: all direct 400s, never a Location.
    let punycode = url::Url::parse("https://аpp.example.com/cb")
        .expect("IDN")
        .to_string();
    let tricks = [
        "https://app.example.com@evil.example/cb",
        "https://app.example.com:443@evil.example/cb",
        "https://evil.example@app.example.com/cb",
        "https://app.example.com%40evil.example/cb",
        "https://app.example.com%2F@evil.example/cb",
        "//evil.example/cb",
        "//app.example.com/cb",
        "https:\\\\evil.example",
        "https:\\\\app.example.com\\cb",
        "https://evil.example\\@app.example.com/cb",
        "https:/app.example.com/cb",
        "https:app.example.com/cb",
        "http://127.0.0.1:9/cb/%2e%2e/evil",
        "http://127.0.0.1:9/cb/%2E%2E/evil",
        "http://127.0.0.1:9/cb/../evil",
        "http://127.0.0.1:9/cb%2F..%2Fevil",
        "http://127.0.0.1:9/cb%2f",
        "http://127.0.0.1:9%2F@evil.example/cb",
        "http://127.0.0.1:9/c%62",
        "https://app.example.com/cb/%2e%2e/evil",
        "https://app.example.com/c%62",
        "https://аpp.example.com/cb",
        &punycode,
        "https://app.example.com./cb",
        "http://127.0.0.1.:9/cb",
        "HTTPS://APP.EXAMPLE.COM/cb",
        "https://APP.example.com/cb",
        "HTTPS://app.example.com/cb",
        "HTTP://127.0.0.1:9/cb",
        "https://app.example.com:443/cb",
        "https://app.example.com:8443/cb",
        "https://app.example.com/cb?x=1",
        "https://app.example.com/cb?",
        "http://127.0.0.1:9/cb?x=1",
        "https://app.example.com/cb#frag",
        "http://127.0.0.1:9/cb#frag",
        "https://app.example.com/cb/",
        "https://app.example.com/CB",
        "http://app.example.com/cb",
        "https://127.0.0.1/cb",
        "https://app.example.com.evil.example/cb",
        "http://127.0.0.1.evil.example/cb",
        "http://localhost:9/cb",
        "http://[::1]:9/cb",
        "http://127.1:9/cb",
        "http://2130706433:9/cb",
        "http://0x7f.0.0.1:9/cb",
        "http://127.0.0.2:9/cb",
        "http://[::ffff:127.0.0.1]:9/cb",
        "http://127.0.0.1:/cb",
        "http://127.0.0.1:99999/cb",
        "http://127.0.0.1:9/c\tb",
        "http://127.0.0.1:9/c\nb",
        " https://app.example.com/cb",
        "https://app.example.com/cb ",
        "https://app.example.com/cb\r\nX-Forged: 1",
    ];
    for uri in tricks {
        cases.push(case(
            format!("authorize: open-redirect trick {uri:?}"),
            get(&authorize_query(a, uri, ""), &[]),
            Want::Direct(400, Some("invalid_request")),
        ));
    }
    // The controls: exact matches and the loopback port rule reach the consent page.
    for uri in [
        WEB,
        LOOPBACK,
        "http://127.0.0.1:49152/cb",
        "http://127.0.0.1:1/cb",
    ] {
        cases.push(case(
            format!("authorize: registered {uri}"),
            get(&authorize_query(a, uri, ""), &[("Accept", CHROME_ACCEPT)]),
            Want::Fine(200),
        ));
    }

    // PKCE plain or missing.
    let no_pkce = format!(
        "/authorize?response_type=code&client_id={}&redirect_uri={}&state=st",
        enc(a),
        enc(WEB)
    );
    cases.push(case(
        "authorize: PKCE missing",
        get(&no_pkce, &[]),
        Want::Redirect("invalid_request", Some("st".into())),
    ));
    cases.push(case(
        "authorize: PKCE method only",
        get(&format!("{no_pkce}&code_challenge_method=S256"), &[]),
        Want::Redirect("invalid_request", Some("st".into())),
    ));
    for method in ["plain", "PLAIN", "s256", "S512", ""] {
        let q = format!("{no_pkce}&code_challenge={CHALLENGE}&code_challenge_method={method}");
        let want = if method.is_empty() {
            // An empty value is absent (RFC 6749 §3.1), and absent means S256.
            Want::Fine(200)
        } else {
            Want::Redirect("invalid_request", Some("st".into()))
        };
        cases.push(case(
            format!("authorize: code_challenge_method {method:?}"),
            get(&q, &[("Accept", CHROME_ACCEPT)]),
            want,
        ));
    }
    for challenge in ["short", &"a".repeat(129), &format!("{}+", &CHALLENGE[..42])] {
        cases.push(case(
            format!("authorize: code_challenge {} chars", challenge.len()),
            get(&format!("{no_pkce}&code_challenge={}", enc(challenge)), &[]),
            Want::Redirect("invalid_request", Some("st".into())),
        ));
    }

    cases
}

/// `/token`, `/revoke` and `/introspect` answer an over-limit body with 413 (they once said
/// 400: `authenticated` mapped every body error through `error_response`).
fn oversized_token_endpoint_cases(a: &str) -> Vec<Case> {
    ["/token", "/revoke", "/introspect"]
        .into_iter()
        .map(|path| {
            case(
                format!("{path}: form body over 64 KiB"),
                form(
                    path,
                    &format!(
                        "grant_type=authorization_code&client_id={}&code={}",
                        enc(a),
                        "x".repeat(OVER_LIMIT)
                    ),
                ),
                Want::Direct(413, Some("invalid_request")),
            )
        })
        .collect()
}

/// Attacks across clients: codes, refresh tokens and registration access tokens.
fn cross_client_cases(addr: SocketAddr, a: &Registered, b: &Registered) -> Vec<Case> {
    let mut cases = Vec::new();

    let code = code_for(addr, &a.id);
    cases.push(case(
        "token: A's code redeemed by B",
        exchange_code(&b.id, &code),
        Want::Direct(400, Some("invalid_grant")),
    ));
    cases.push(case(
        "token: A's code with a wrong verifier",
        form(
            "/token",
            &format!(
                "grant_type=authorization_code&code={}&redirect_uri={}&code_verifier={}&client_id={}",
                enc(&code),
                enc(LOOPBACK),
                "x".repeat(43),
                enc(&a.id)
            ),
        ),
        Want::Direct(400, Some("invalid_grant")),
    ));

    // A second code, redeemed by A only after B tried it: B's attempt did not burn it.
    let code2 = code_for(addr, &a.id);
    let b_try = exchange(addr, &exchange_code(&b.id, &code2)).expect("answer");
    assert_eq!(b_try.status, 400, "{}", b_try.text());
    let tokens = exchange(addr, &exchange_code(&a.id, &code2)).expect("answer");
    assert_eq!(
        tokens.status,
        200,
        "A redeems its own code: {}",
        tokens.text()
    );
    let refresh_token = tokens.json().expect("json")["refresh_token"]
        .as_str()
        .expect("refresh_token")
        .to_owned();
    cases.push(case(
        "token: A's refresh token used by B",
        refresh(&b.id, &refresh_token),
        Want::Direct(400, Some("invalid_grant")),
    ));
    cases.push(case(
        "token: A's refresh token still works for A after B's attempt",
        refresh(&a.id, &refresh_token),
        Want::Fine(200),
    ));

    let bearer = format!("Bearer {}", a.rat);
    let on_b = format!("/register/{}", b.id);
    cases.push(case(
        "register/{B} GET with A's registration access token",
        get(&on_b, &[("Authorization", &bearer)]),
        Want::Direct(401, Some("invalid_token")),
    ));
    cases.push(case(
        "register/{B} PUT with A's registration access token",
        request(
            "PUT",
            on_b.as_bytes(),
            &[
                ("Authorization", &bearer),
                ("Content-Type", "application/json"),
            ],
            Some(
                json!({"client_id": b.id, "redirect_uris": ["https://evil.example/cb"]})
                    .to_string()
                    .as_bytes(),
            ),
        ),
        Want::Direct(401, Some("invalid_token")),
    ));
    cases.push(case(
        "register/{B} DELETE with A's registration access token",
        request(
            "DELETE",
            on_b.as_bytes(),
            &[("Authorization", &bearer)],
            None,
        ),
        Want::Direct(401, Some("invalid_token")),
    ));
    cases.push(case(
        "register/{B} GET with B's own token still works",
        get(&on_b, &[("Authorization", &format!("Bearer {}", b.rat))]),
        Want::Fine(200),
    ));
    cases
}

/// Sign-in and consent forms that are not what our pages send.
fn sign_in_cases(addr: SocketAddr, a: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    let page = exchange(
        addr,
        &get(
            &authorize_query(a, LOOPBACK, ""),
            &[("Accept", CHROME_ACCEPT)],
        ),
    )
    .expect("consent page");
    let request = page.field("request");
    let cookies = page.session_cookie().expect("cookies");
    let login = |body: &str, headers: &[(&str, &str)]| {
        post(
            "/login",
            "application/x-www-form-urlencoded",
            body.as_bytes(),
            headers,
        )
    };
    cases.push(case(
        "login: no fields",
        login("", &[]),
        Want::Direct(400, None),
    ));
    cases.push(case(
        "login: unknown request",
        login("request=nope&csrf_token=x&username=a&password=b", &[]),
        Want::Direct(400, None),
    ));
    cases.push(case(
        "login: CR, LF and NUL in the username",
        login(
            &format!(
                "request={}&csrf_token=x&username=a%0D%0AX-Forged:%201%00&password=b",
                enc(&request)
            ),
            &[("Cookie", &cookies)],
        ),
        Want::Direct(403, None),
    ));
    cases.push(case(
        "login: from another site",
        login(
            &format!("request={}&csrf_token=x", enc(&request)),
            &[("Cookie", &cookies), ("Sec-Fetch-Site", "cross-site")],
        ),
        Want::Direct(403, None),
    ));
    cases.push(case(
        "login: another browser (no binding cookie)",
        login(
            &format!(
                "request={}&csrf_token=x&username=a&password=b",
                enc(&request)
            ),
            &[],
        ),
        Want::Direct(403, None),
    ));
    cases.push(case(
        "login: a 60 KiB username",
        login(
            &format!(
                "request={}&csrf_token=x&username={}&password=b",
                enc(&request),
                "u".repeat(60 * 1024)
            ),
            &[("Cookie", &cookies)],
        ),
        Want::Direct(403, None),
    ));
    cases.push(case(
        "consent: the decision twice, approve and deny",
        post(
            "/consent",
            "application/x-www-form-urlencoded",
            format!(
                "request={}&csrf_token=x&decision=approve&decision=deny",
                enc(&request)
            )
            .as_bytes(),
            &[("Cookie", &cookies)],
        ),
        Want::Direct(403, None),
    ));
    cases.push(case(
        "consent: an Origin of another site",
        post(
            "/consent",
            "application/x-www-form-urlencoded",
            format!("request={}&decision=approve", enc(&request)).as_bytes(),
            &[("Cookie", &cookies), ("Origin", "https://evil.example")],
        ),
        Want::Direct(403, None),
    ));
    // A client that registered itself with a web redirect URI: its errors are not redirected.
    let web = register(
        addr,
        json!({"client_name": "Self-registered web app", "redirect_uris": [WEB], "token_endpoint_auth_method": "none"}),
    );
    for (name, extra, error) in [
        (
            "response_type=token",
            "&response_type=token",
            "unsupported_response_type",
        ),
        ("no PKCE", "&response_type=code", "invalid_request"),
    ] {
        cases.push(case(
            format!("authorize: a self-registered web client's error ({name}) is not redirected"),
            get(
                &format!("/authorize?client_id={}{extra}&state=st", enc(&web.id)),
                &[],
            ),
            Want::Direct(400, Some(error)),
        ));
    }
    cases
}

#[actix_web::test]
async fn hostile_requests_get_their_documented_answers_and_never_a_5xx() {
    // Consent is not remembered, so every valid request shows the consent page.
    let app = TestApp::with(&[("login.mode", "dev"), ("login.remember_consent_days", "0")]).await;
    let addr = app.addr;
    // The victim is the operator's client, so its web redirect URI receives error redirects.
    let victim = app
        .operator_client(doorman::admin::NewClient {
            name: "Victim".into(),
            redirect_uris: vec![WEB.into(), LOOPBACK.into()],
            ..Default::default()
        })
        .await;
    let a = Registered {
        id: victim.client.client_id,
        rat: victim.registration_access_token,
    };

    let tried = actix_web::rt::task::spawn_blocking(move || {
        let b = public_client(addr);
        let first = run(addr, &static_cases(&a.id));
        let second = run(addr, &sign_in_cases(addr, &a.id));
        first + second + run(addr, &cross_client_cases(addr, &a, &b))
    })
    .await
    .expect("corpus thread");

    println!("hostile: {tried} inputs tried over HTTP, none answered with a 5xx");
}

#[actix_web::test]
async fn oversized_bodies_at_token_revoke_and_introspect_are_413() {
    let app = TestApp::spawn().await;
    let addr = app.addr;

    let tried = actix_web::rt::task::spawn_blocking(move || {
        let a = public_client(addr);
        run(addr, &oversized_token_endpoint_cases(&a.id))
    })
    .await
    .expect("corpus thread");

    println!("hostile (token endpoints): {tried} inputs tried");
}

/// Request data with CR/LF reaches the log only escaped: every line of the real binary's log
/// is a log record, none starts with what the requests tried to forge.
#[test]
fn cr_lf_in_requests_cannot_forge_log_lines() {
    let doorman = DoormanProcess::start(&[]);
    let addr = doorman.addr;
    let forged = format!("\r\n[2026-01-01T00:00:00Z INFO  doorman] {FORGED} GET /admin 200");
    let forged_enc = enc(&forged);
    let requests = [
        get(
            &format!("/authorize?client_id={forged_enc}&state={forged_enc}"),
            &[],
        ),
        get(
            &format!("/authorize?client_id=x&redirect_uri={forged_enc}"),
            &[],
        ),
        get(
            &format!("/register/{forged_enc}"),
            &[("Authorization", "Bearer x")],
        ),
        form(
            "/token",
            &format!("grant_type=refresh_token&refresh_token={forged_enc}&client_id={forged_enc}"),
        ),
        form(
            "/authorize",
            &format!("client_id={forged_enc}&state={forged_enc}"),
        ),
        post(
            "/register",
            "application/json",
            json!({"client_name": forged, "redirect_uris": [WEB]})
                .to_string()
                .as_bytes(),
            &[],
        ),
    ];

    for r in &requests {
        let res = exchange(addr, r).expect("answer");
        assert!(res.status < 500, "{} {}", res.status, res.text());
    }

    // The request log is written after the response; give the last line a moment.
    let mut log = String::new();
    for _ in 0..100 {
        log = doorman.log_text();
        if log.matches("/register").count() >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        log.contains("/authorize"),
        "request lines are logged: {log}"
    );
    for line in log.split(['\n', '\r']).filter(|l| !l.is_empty()) {
        assert!(
            line.starts_with('['),
            "a line that is not a log record: {line:?}\n{log}"
        );
        assert!(
            !line.contains(&format!("] {FORGED}")),
            "a forged log record: {line:?}"
        );
    }
    println!("hostile: {} log-forging inputs tried", requests.len());
}

/// What `src/lib.rs` `log_line` does with a request target: `{:?}` leaves no raw CR or LF.
#[test]
fn debug_formatting_escapes_cr_and_lf() {
    for value in [
        "a\r\nb",
        "\n[2026-01-01T00:00:00Z INFO doorman] forged",
        "\r",
    ] {
        let line = format!("GET {value:?} 200");

        assert!(!line.contains(['\r', '\n']), "{line}");
    }
}
