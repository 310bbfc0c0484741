//! The gate (docs/behaviour.md §13.2): RFC 9728 metadata, RFC 6750 challenges, per-tool
//! scopes, and the streaming proxy to a real upstream, with its faults.

use std::io::{Read, Write};
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::flow::{self, field};
use crate::gate_support::{Upstream, gate_app, token_for};
use crate::support::{CHROME_ACCEPT, TestApp, free_port, header, json as read_json, text};

const TOOLS_LIST: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
const CALL_RM: &str =
    r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"rm","arguments":{}}}"#;
const CALL_ECHO: &str =
    r#"{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"echo","arguments":{}}}"#;

fn resource(app: &TestApp) -> String {
    format!("{}/mcp", app.base)
}

fn metadata_url(app: &TestApp) -> String {
    format!("{}/.well-known/oauth-protected-resource/mcp", app.base)
}

/// POSTs a JSON-RPC body to the gate with `token` (if any) and extra headers.
async fn post(
    app: &TestApp,
    token: Option<&str>,
    body: &'static str,
    headers: &[(&str, &str)],
) -> awc::ClientResponse<
    impl futures_util::Stream<Item = Result<actix_web::web::Bytes, awc::error::PayloadError>> + use<>,
> {
    let mut req = app
        .post("/mcp")
        .insert_header(("content-type", "application/json"))
        .insert_header(("accept", "application/json, text/event-stream"));
    if let Some(t) = token {
        req = req.insert_header(("authorization", format!("Bearer {t}")));
    }
    for (n, v) in headers {
        req = req.insert_header((*n, *v));
    }
    req.send_body(body).await.expect("send")
}

#[actix_web::test]
async fn the_route_has_rfc_9728_metadata_naming_doorman() {
    let up = Upstream::start().await;
    let app = gate_app(&up.url, "", &[]).await;

    let mut res = app
        .get("/.well-known/oauth-protected-resource/mcp")
        .send()
        .await
        .unwrap();

    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "access-control-allow-origin"), "*");
    let doc = read_json(&mut res).await;
    assert_eq!(doc["resource"], resource(&app));
    assert_eq!(doc["authorization_servers"], json!([app.issuer]));
    assert_eq!(doc["scopes_supported"], json!(["mcp", "admin"]));
    assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
    assert_eq!(doc["resource_name"], "Test tools");
}

#[actix_web::test]
async fn no_token_is_a_bare_401_challenge_naming_the_metadata_and_scope() {
    let up = Upstream::start().await;
    let app = gate_app(&up.url, "", &[]).await;

    let res = post(&app, None, TOOLS_LIST, &[]).await;

    assert_eq!(res.status(), 401);
    assert_eq!(
        header(&res, "www-authenticate"),
        format!(
            "Bearer resource_metadata=\"{}\", scope=\"mcp\"",
            metadata_url(&app)
        )
    );
    assert_eq!(
        up.shared.requests.load(Ordering::SeqCst),
        0,
        "nothing passed"
    );
}

#[actix_web::test]
async fn bad_tokens_are_401_invalid_token_each_with_its_reason() {
    let up = Upstream::start().await;
    let app = gate_app(&up.url, "", &[]).await;
    let (_, other) = token_for(&app, "http://127.0.0.1:1/elsewhere", "mcp").await;
    let (client, good) = token_for(&app, &resource(&app), "mcp").await;
    let (_, expiring) = token_for(&app, &resource(&app), "mcp").await;

    let garbage = post(&app, Some("garbage token"), TOOLS_LIST, &[]).await;
    let unknown = post(&app, Some(&"A".repeat(43)), TOOLS_LIST, &[]).await;
    let wrong_audience = post(&app, Some(field(&other, "access_token")), TOOLS_LIST, &[]).await;
    let before = post(&app, Some(field(&good, "access_token")), TOOLS_LIST, &[]).await;
    flow::revoke(&app, &client, field(&good, "refresh_token"), None).await;
    let revoked = post(&app, Some(field(&good, "access_token")), TOOLS_LIST, &[]).await;
    app.clock.advance(3601);
    let expired = post(
        &app,
        Some(field(&expiring, "access_token")),
        TOOLS_LIST,
        &[],
    )
    .await;

    assert_eq!(before.status(), 200, "the token worked before");
    for (res, why) in [
        (garbage, "malformed"),
        (unknown, "not one this server issued"),
        (wrong_audience, "not issued for this resource"),
        (revoked, "revoked"),
        (expired, "expired"),
    ] {
        assert_eq!(res.status(), 401, "{why}");
        let challenge = header(&res, "www-authenticate");
        assert!(
            challenge.starts_with(&format!(
                "Bearer resource_metadata=\"{}\", scope=\"mcp\", error=\"invalid_token\", error_description=\"",
                metadata_url(&app)
            )),
            "{challenge}"
        );
        assert!(challenge.contains(why), "{why}: {challenge}");
    }
    assert_eq!(
        up.shared.requests.load(Ordering::SeqCst),
        1,
        "only the good call passed"
    );
}

#[actix_web::test]
async fn a_tool_needing_more_scope_is_403_naming_every_scope_then_the_step_up_passes() {
    let up = Upstream::start().await;
    let app = gate_app(&up.url, "", &[]).await;
    let (_, narrow) = token_for(&app, &resource(&app), "mcp").await;
    let narrow = field(&narrow, "access_token").to_owned();

    let from_body = post(&app, Some(&narrow), CALL_RM, &[]).await;
    let from_headers = post(
        &app,
        Some(&narrow),
        CALL_RM,
        &[("mcp-method", "tools/call"), ("mcp-name", "rm")],
    )
    .await;
    let other_tool = post(&app, Some(&narrow), CALL_ECHO, &[]).await;
    let (_, wide) = token_for(&app, &resource(&app), "mcp admin").await;
    let stepped_up = post(&app, Some(field(&wide, "access_token")), CALL_RM, &[]).await;

    for res in [&from_body, &from_headers] {
        assert_eq!(res.status(), 403);
        let challenge = header(res, "www-authenticate");
        assert!(
            challenge.contains("scope=\"mcp admin\", error=\"insufficient_scope\""),
            "{challenge}"
        );
    }
    assert_eq!(other_tool.status(), 200, "echo needs only mcp");
    assert_eq!(stepped_up.status(), 200);
}

#[actix_web::test]
async fn headers_that_disagree_with_the_body_are_refused() {
    let up = Upstream::start().await;
    let app = gate_app(&up.url, "", &[]).await;
    let (_, narrow) = token_for(&app, &resource(&app), "mcp").await;

    let mut res = post(
        &app,
        Some(field(&narrow, "access_token")),
        CALL_RM,
        &[("mcp-method", "tools/call"), ("mcp-name", "echo")],
    )
    .await;

    assert_eq!(res.status(), 400);
    let body = read_json(&mut res).await;
    assert_eq!(body["id"], 9, "{body}");
    assert_eq!(body["error"]["code"], -32000);
}

#[actix_web::test]
async fn the_upstream_gets_the_identity_not_the_credentials() {
    let up = Upstream::start().await;
    let app = gate_app(&up.url, "", &[]).await;
    let (client, tokens) = token_for(&app, &resource(&app), "mcp").await;

    let mut res = app
        .post("/mcp?x=1")
        .insert_header(("content-type", "application/json"))
        .insert_header((
            "authorization",
            format!("Bearer {}", field(&tokens, "access_token")),
        ))
        .insert_header(("cookie", "doorman_session=mine"))
        .insert_header(("x-doorman-subject", "forged"))
        .insert_header(("mcp-session-id", "s-123"))
        .insert_header(("mcp-protocol-version", "2025-11-25"))
        .send_body(TOOLS_LIST)
        .await
        .unwrap();

    assert_eq!(res.status(), 200);
    assert!(
        res.headers().get("set-cookie").is_none(),
        "upstream cookies are dropped"
    );
    assert_eq!(header(&res, "mcp-session-id"), "s-123");
    let echo = read_json(&mut res).await;
    let seen = &echo["result"]["headers"];
    assert_eq!(echo["result"]["query"], "x=1");
    assert!(seen.get("authorization").is_none(), "{seen}");
    assert!(seen.get("cookie").is_none(), "{seen}");
    assert_eq!(seen["x-doorman-subject"], "dev");
    assert_eq!(seen["x-doorman-client-id"], client.id.as_str());
    assert_eq!(seen["x-doorman-scopes"], "mcp");
    assert_eq!(seen["mcp-session-id"], "s-123");
    assert_eq!(seen["mcp-protocol-version"], "2025-11-25");
    assert_eq!(seen["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen["x-forwarded-host"], app.addr.to_string());
}

#[actix_web::test]
async fn sse_is_streamed_event_by_event() {
    let up = Upstream::start().await;
    let app = gate_app(&up.url, "", &[]).await;
    let (_, tokens) = token_for(&app, &resource(&app), "mcp").await;

    let mut res = post(
        &app,
        Some(field(&tokens, "access_token")),
        TOOLS_LIST,
        &[("x-test", "step")],
    )
    .await;

    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "content-type"), "text/event-stream");
    let mut seen = String::new();
    for n in 0..3 {
        // The upstream sends event n+1 only after the test has read event n.
        while !seen.contains(&format!("\"progress\":{n}")) {
            let chunk = actix_web::rt::time::timeout(Duration::from_secs(5), res.next())
                .await
                .unwrap_or_else(|_| panic!("event {n} did not arrive alone: {seen:?}"))
                .expect("stream open")
                .expect("chunk");
            seen.push_str(std::str::from_utf8(&chunk).unwrap());
        }
        assert!(!seen.contains(&format!("\"progress\":{}", n + 1)));
        up.shared.step.add_permits(1);
    }
}

#[actix_web::test]
async fn get_streams_and_delete_ends_a_session_passing_its_id() {
    let up = Upstream::start().await;
    let app = gate_app(&up.url, "", &[]).await;
    let (_, tokens) = token_for(&app, &resource(&app), "mcp").await;
    let bearer = format!("Bearer {}", field(&tokens, "access_token"));

    let mut get = app
        .get("/mcp")
        .insert_header(("accept", "text/event-stream"))
        .insert_header(("authorization", bearer.as_str()))
        .insert_header(("mcp-session-id", "s-9"))
        .send()
        .await
        .unwrap();
    let delete = app
        .client()
        .delete(app.url("/mcp"))
        .insert_header(("authorization", bearer.as_str()))
        .insert_header(("mcp-session-id", "s-9"))
        .send()
        .await
        .unwrap();

    assert_eq!(get.status(), 200);
    assert_eq!(header(&get, "mcp-session-id"), "s-9");
    let body = text(&mut get).await;
    assert!(body.starts_with("event: message\ndata: {"), "{body}");
    assert!(body.contains("\"method\":\"GET\""), "{body}");
    assert_eq!(delete.status(), 204);
    assert_eq!(header(&delete, "x-deleted-session"), "s-9");
}

#[actix_web::test]
async fn a_browser_gets_the_page_and_an_api_client_the_bare_challenge() {
    let up = Upstream::start().await;
    let app = gate_app(&up.url, "", &[]).await;

    let mut page = app
        .get("/mcp")
        .insert_header(("accept", CHROME_ACCEPT))
        .send()
        .await
        .unwrap();
    let mut bare = app
        .get("/mcp")
        .insert_header(("accept", "text/event-stream"))
        .send()
        .await
        .unwrap();

    assert_eq!(page.status(), 401);
    assert_eq!(
        header(&page, "www-authenticate"),
        header(&bare, "www-authenticate")
    );
    assert!(header(&page, "content-security-policy").contains("default-src 'none'"));
    let html = text(&mut page).await;
    assert!(html.contains("Test tools is an MCP server"), "{html}");
    assert!(html.contains(&resource(&app)), "the URL to paste");
    assert!(html.contains(&app.issuer), "the authorization server");
    assert!(!html.contains("<script"), "no script");
    assert_eq!(bare.status(), 401);
    assert_eq!(text(&mut bare).await, "", "the bare challenge");
}

#[actix_web::test]
async fn an_upstream_that_is_down_is_502_json_rpc_with_the_request_id() {
    let down = format!("http://127.0.0.1:{}/mcp", free_port());
    let app = gate_app(&down, "", &[]).await;
    let (_, tokens) = token_for(&app, &resource(&app), "mcp").await;

    let started = std::time::Instant::now();
    let mut res = post(&app, Some(field(&tokens, "access_token")), CALL_ECHO, &[]).await;

    assert_eq!(res.status(), 502);
    let body = read_json(&mut res).await;
    assert_eq!(body["jsonrpc"], "2.0");
    assert_eq!(
        body["id"], 8,
        "echoed from the body read for per-tool scopes"
    );
    assert_eq!(body["error"]["code"], -32000);
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[actix_web::test]
async fn a_slow_upstream_is_504_after_the_first_byte_timeout() {
    let up = Upstream::start().await;
    let app = gate_app(&up.url, "", &[]).await;
    let (_, tokens) = token_for(&app, &resource(&app), "mcp").await;

    let started = std::time::Instant::now();
    let mut res = post(
        &app,
        Some(field(&tokens, "access_token")),
        TOOLS_LIST,
        &[("x-test", "slow")],
    )
    .await;

    assert_eq!(res.status(), 504);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let body: Value = read_json(&mut res).await;
    assert_eq!(body["error"]["code"], -32000);
}

/// Sends `request` on a raw connection and reads until the server closes it (at most 5 s).
async fn raw_exchange(addr: std::net::SocketAddr, request: String) -> String {
    actix_web::rt::task::spawn_blocking(move || {
        let mut sock = std::net::TcpStream::connect(addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        sock.write_all(request.as_bytes()).unwrap();
        let mut got = Vec::new();
        sock.read_to_end(&mut got)
            .expect("the connection is closed, not left hanging");
        String::from_utf8_lossy(&got).into_owned()
    })
    .await
    .unwrap()
}

fn raw_post(app: &TestApp, token: &str, test: &str, body: &str) -> String {
    format!(
        "POST /mcp HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nX-Test: {test}\r\nContent-Length: {}\r\n\r\n{body}",
        app.addr,
        body.len()
    )
}

#[actix_web::test]
async fn an_upstream_killed_mid_stream_breaks_the_client_stream_off() {
    let up = Upstream::start().await;
    let app = gate_app(&up.url, "", &[]).await;
    let (_, tokens) = token_for(&app, &resource(&app), "mcp").await;

    let got = raw_exchange(
        app.addr,
        raw_post(&app, field(&tokens, "access_token"), "die", TOOLS_LIST),
    )
    .await;

    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(got.contains("transfer-encoding: chunked"), "{got}");
    assert!(got.contains("{\"first\":true}"), "{got}");
    assert!(
        !got.ends_with("0\r\n\r\n"),
        "no final chunk: the client can tell the stream broke: {got:?}"
    );
}

#[actix_web::test]
async fn a_client_that_leaves_mid_stream_closes_the_upstream_connection() {
    let up = Upstream::start().await;
    let app = gate_app(&up.url, "", &[]).await;
    let (_, tokens) = token_for(&app, &resource(&app), "mcp").await;
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nX-Test: tick\r\nContent-Length: {}\r\n\r\n{TOOLS_LIST}",
        app.addr,
        field(&tokens, "access_token"),
        TOOLS_LIST.len()
    );
    let addr = app.addr;

    let got = actix_web::rt::task::spawn_blocking(move || {
        let mut sock = std::net::TcpStream::connect(addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        sock.write_all(request.as_bytes()).unwrap();
        let mut buf = vec![0u8; 4096];
        let mut got = String::new();
        while !got.contains("tick\":2") {
            let n = sock.read(&mut buf).unwrap();
            got.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        got
    })
    .await
    .unwrap();
    let during = up.shared.open.load(Ordering::SeqCst);
    let after = up.wait_open(0).await;

    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert_eq!(during, 1, "one upstream connection while streaming");
    assert_eq!(
        after, 0,
        "the upstream connection is closed when the client leaves"
    );
}

#[actix_web::test]
async fn an_oversized_body_is_413_and_never_reaches_the_upstream() {
    let up = Upstream::start().await;
    let app = gate_app(&up.url, "", &[("gate.body_limit", "1000")]).await;
    let (_, tokens) = token_for(&app, &resource(&app), "mcp").await;
    let big = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"pad\":\"{}\"}}",
        "x".repeat(5000)
    );

    let res = app
        .post("/mcp")
        .insert_header(("content-type", "application/json"))
        .insert_header((
            "authorization",
            format!("Bearer {}", field(&tokens, "access_token")),
        ))
        .send_body(big)
        .await
        .unwrap();

    assert_eq!(res.status(), 413);
    assert_eq!(up.shared.requests.load(Ordering::SeqCst), 0);
}

#[actix_web::test]
async fn a_streamed_body_over_the_limit_is_413() {
    let up = Upstream::start().await;
    // No per-tool scopes, so a body of unknown length is streamed up, not read first.
    let toml = format!(
        "[[gate.routes]]\npath = \"/mcp\"\nupstream = \"{}\"\n",
        up.url
    );
    let app = TestApp::with_settings(crate::support::settings_with_file(
        &toml,
        &[("login.mode", "dev"), ("gate.body_limit", "1000")],
    ))
    .await;
    let (_, tokens) = token_for(&app, &resource(&app), "mcp").await;
    let chunks = futures_util::stream::iter(
        (0..10).map(|_| Ok::<_, std::io::Error>(actix_web::web::Bytes::from(vec![b'x'; 500]))),
    );

    let res = app
        .post("/mcp")
        .insert_header(("content-type", "application/json"))
        .insert_header((
            "authorization",
            format!("Bearer {}", field(&tokens, "access_token")),
        ))
        .send_stream(chunks)
        .await
        .unwrap();

    assert_eq!(res.status(), 413);
}

#[actix_web::test]
async fn an_upstream_server_stopped_mid_stream_ends_the_client_stream() {
    let up = Upstream::start().await;
    let app = gate_app(&up.url, "", &[]).await;
    let (_, tokens) = token_for(&app, &resource(&app), "mcp").await;

    let mut res = post(
        &app,
        Some(field(&tokens, "access_token")),
        TOOLS_LIST,
        &[("x-test", "tick")],
    )
    .await;
    let first = res.next().await.expect("first event").expect("chunk");
    up.kill().await;
    let ended = actix_web::rt::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(_)) = res.next().await {}
    })
    .await;

    assert!(std::str::from_utf8(&first).unwrap().contains("tick"));
    assert!(
        ended.is_ok(),
        "the client's stream ends with the upstream's, never hangs"
    );
}

/// Loads `toml` as a settings file; the error line when it is refused.
fn settings_error(toml: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gate.toml");
    std::fs::write(&path, toml).unwrap();
    match doorman::settings::Settings::load(Some(&path), Some(Default::default())) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn gate_settings_are_checked_with_one_line_naming_the_key() {
    let route = |extra: &str| {
        format!(
            "[[gate.routes]]\npath = \"/mcp\"\nupstream = \"http://127.0.0.1:3001/mcp\"\n{extra}"
        )
    };

    assert_eq!(settings_error(&route("")), "", "three lines are enough");
    for (toml, expected) in [
        (
            "[[gate.routes]]\npath = \"mcp\"\nupstream = \"http://x/mcp\"\n".to_owned(),
            "key `gate.routes[0].path`",
        ),
        (
            "[[gate.routes]]\npath = \"/token\"\nupstream = \"http://x/mcp\"\n".to_owned(),
            "key `gate.routes[0].path`: \"/token\" is one of Doorman's own paths",
        ),
        (
            "[[gate.routes]]\npath = \"/mcp\"\nupstream = \"ftp://x/mcp\"\n".to_owned(),
            "key `gate.routes[0].upstream`",
        ),
        (
            format!("{}{}", route(""), route("")),
            "key `gate.routes[1].path`: \"/mcp\" is used by two routes",
        ),
        (route("scopes = [\"admin\"]"), "key `gate.routes[0].scopes`"),
        (
            route("[gate.routes.tools]\nrm = [\"root\"]"),
            "key `gate.routes[0].tools`: \"root\" is not in scopes.supported",
        ),
        (
            route("resource = \"not a uri\""),
            "key `gate.routes[0].resource`",
        ),
        (route("colour = \"red\""), "unknown field `colour`"),
        (
            format!("{}[gate.headers]\nsubject = \"Authorization\"\n", route("")),
            "key `gate.headers.subject`",
        ),
    ] {
        let error = settings_error(&toml);
        assert!(
            error.starts_with("settings: ") && error.contains(expected) && !error.contains('\n'),
            "{toml}\n→ {error}"
        );
    }
}

#[actix_web::test]
async fn past_max_connections_a_request_waits_then_gets_503_and_an_idle_stream_left_frees_its_place()
 {
    let up = Upstream::start().await;
    let app = gate_app(
        &up.url,
        "",
        &[
            ("gate.max_connections", "1"),
            ("gate.connect_timeout_ms", "300"),
            ("gate.sse_keepalive_ms", "200"),
        ],
    )
    .await;
    let (_, tokens) = token_for(&app, &resource(&app), "mcp").await;
    let token = field(&tokens, "access_token").to_owned();

    // A raw connection, so that closing it is certain; the upstream stream then sits idle.
    let addr = app.addr;
    let request = raw_post(&app, &token, "step", TOOLS_LIST);
    let (opened, first) = actix_web::rt::task::spawn_blocking(move || {
        let mut sock = std::net::TcpStream::connect(addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        sock.write_all(request.as_bytes()).unwrap();
        let mut buf = vec![0u8; 4096];
        let n = sock.read(&mut buf).unwrap();
        (sock, String::from_utf8_lossy(&buf[..n]).into_owned())
    })
    .await
    .unwrap();
    let mut waited = post(&app, Some(&token), TOOLS_LIST, &[]).await;
    drop(opened);
    let mut after = None;
    for _ in 0..50 {
        let res = post(&app, Some(&token), TOOLS_LIST, &[]).await;
        if res.status() == 200 {
            after = Some(res.status());
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }

    assert!(first.contains("progress"), "{first}");
    assert_eq!(waited.status(), 503);
    assert_eq!(header(&waited, "retry-after"), "1");
    assert_eq!(read_json(&mut waited).await["error"]["code"], -32000);
    assert_eq!(
        after.map(|s| s.as_u16()),
        Some(200),
        "the permit comes back when the stream ends"
    );
}
