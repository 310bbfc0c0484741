//! Client ID Metadata Documents (docs/behaviour.md §12), against a real document server on
//! loopback (`docserver`), allowed by settings: every rule and every failure reason, the SSRF
//! guard, caching and stale-if-error by the app clock, one fetch for two processes on one
//! Redis, the documents real clients publish, and what such a client may do.

use std::time::Duration;

use serde_json::{Value, json};

use crate::docserver::{Answer, DocServer, TEST_CA};
use crate::flow::{
    self, Client, REDIRECT, Reply, approve_in, decide, dev_app, enc, exchange, field,
    open_authorize, password_app, refresh, send, sign_in,
};
use crate::support::{CHALLENGE, CHROME_ACCEPT, RedisServer, TestApp, VERIFIER};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/cimd");

/// Settings that let Doorman fetch documents from the loopback test server over http.
const LOCAL: [(&str, &str); 2] = [
    ("cimd.allow_hosts", "127.0.0.1"),
    ("cimd.allow_http_hosts", "127.0.0.1"),
];

fn local(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut all = LOCAL.to_vec();
    all.extend_from_slice(extra);
    all
}

/// A document for `url` with redirect URI `REDIRECT`, plus `extra` members (null removes one).
fn document(url: &str, extra: Value) -> Value {
    let mut doc = json!({
        "client_id": url,
        "client_name": "Document Client",
        "client_uri": "https://client.example/",
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    });
    if let (Some(d), Value::Object(extra)) = (doc.as_object_mut(), extra) {
        for (k, v) in extra {
            if v.is_null() {
                d.remove(&k);
            } else {
                d.insert(k, v);
            }
        }
    }
    doc
}

/// A real client's published document with its client_id rewritten to `url`.
fn fixture(name: &str, url: &str) -> Value {
    let text = std::fs::read_to_string(format!("{FIXTURES}/{name}")).expect("fixture");
    let mut doc: Value = serde_json::from_str(&text).expect("fixture JSON");
    if doc.get("client_id").is_some() {
        doc["client_id"] = json!(url);
    }
    doc
}

/// `GET /authorize` as an API client (JSON) for `client_id` and `redirect_uri`.
async fn authorize_json(app: &TestApp, client_id: &str, redirect_uri: &str) -> Reply {
    send(app.get(&format!(
        "/authorize?response_type=code&client_id={}&redirect_uri={}&code_challenge={CHALLENGE}&code_challenge_method=S256&state=s1",
        enc(client_id),
        enc(redirect_uri)
    )))
    .await
}

/// Asserts the `cimd_failed` JSON answer with `code`, whose description contains `named`.
fn assert_cimd_failed(res: &Reply, code: &str, named: &str) {
    assert_eq!(res.status, 400, "{}", res.body);
    let doc = res.json();
    assert_eq!(doc["error"], "invalid_client", "{doc}");
    assert_eq!(doc["reason"], "cimd_failed", "{doc}");
    assert_eq!(doc["cimd_error"], code, "{doc}");
    let description = doc["error_description"].as_str().expect("description");
    assert!(
        description.contains(named),
        "{code}: {description:?} should name {named:?}"
    );
    assert!(
        !description.to_lowercase().contains("register"),
        "never tells anyone to register: {description}"
    );
    assert!(res.header("location").is_empty(), "never redirected");
    assert_eq!(res.header("cache-control"), "no-store");
    assert!(
        res.header("link")
            .contains("rel=\"oauth-authorization-server\"")
    );
    assert_eq!(doc["state"], "s1");
}

/// The token request of a public document client, for `redirect_uri`, with `extra` fields.
async fn exchange_for(
    app: &TestApp,
    client_id: &str,
    redirect_uri: &str,
    code: &str,
    extra: &[(&str, &str)],
) -> Reply {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("code_verifier", VERIFIER),
        ("client_id", client_id),
    ];
    form.extend_from_slice(extra);
    flow::send_form(app.post("/token"), &form).await
}

// === the whole flow ========================================================================

#[actix_web::test]
async fn a_document_client_signs_in_consents_and_gets_tokens_keyed_on_its_url() {
    let server = DocServer::http().await;
    let url = server.url("/oauth/client.json");
    server.set_json("/oauth/client.json", &document(&url, json!({})));
    let app = password_app(&local(&[])).await;
    let client = Client {
        id: url.clone(),
        secret: None,
    };

    let login = open_authorize(&app, None, &url, "&scope=mcp%20offline_access").await;
    let (cookie, consent) = sign_in(&app, &login).await;
    let done = decide(&app, Some(&cookie), &consent, "approve").await;
    let code = done.location_params()["code"].clone();
    let issued = exchange(&app, &client, &code).await;
    let again = open_authorize(&app, Some(&cookie), &url, "&scope=mcp%20offline_access").await;

    assert!(login.is_sign_in_page(), "{}", login.body);
    assert!(login.body.contains("Document Client"));
    assert!(consent.is_consent_page(), "{}", consent.body);
    let host = format!("127.0.0.1:{}", server.port);
    for shown in [
        "Document Client",
        url.as_str(),
        "This application is identified by",
    ] {
        assert!(consent.body.contains(shown), "consent page lacks {shown:?}");
    }
    assert!(
        consent
            .body
            .contains(&format!("<strong class=\"host\">{host}</strong>")),
        "the client_id's host, prominently"
    );
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(issued.status, 200, "{}", issued.body);
    let tokens = issued.json();
    let refresh_token = field(&tokens, "refresh_token").to_owned();
    let refreshed = refresh(&app, &client, &refresh_token, None).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    let newer = field(&refreshed.json(), "refresh_token").to_owned();
    let revoked = flow::revoke(&app, &client, &newer, Some("refresh_token")).await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    let after = refresh(&app, &client, &newer, None).await;
    assert_eq!(
        after.json()["error"],
        "invalid_grant",
        "revoked: {}",
        after.body
    );
    assert_eq!(again.status, 302, "remembered consent: {}", again.body);
    assert!(again.location_params().contains_key("code"));
    assert_eq!(
        server.fetches("/oauth/client.json"),
        1,
        "one fetch, then the cached copy"
    );
    let seen = &server.requests()[0];
    assert_eq!(seen.accept.as_deref(), Some("application/json"));
    assert!(
        seen.user_agent
            .as_deref()
            .unwrap_or("")
            .starts_with("Doorman/")
    );
}

#[actix_web::test]
async fn metadata_advertises_documents_while_enabled_and_none_among_the_methods() {
    let on = TestApp::spawn().await;
    let off = TestApp::with(&[("cimd.enabled", "false")]).await;
    let server = DocServer::http().await;
    let url = server.url("/c.json");
    server.set_json("/c.json", &document(&url, json!({})));
    let off_local = TestApp::with(&local(&[("cimd.enabled", "false")])).await;

    let doc_on = send(on.get("/.well-known/oauth-authorization-server"))
        .await
        .json();
    let doc_off = send(off.get("/.well-known/oauth-authorization-server"))
        .await
        .json();
    let unknown = authorize_json(&off_local, &url, REDIRECT).await;

    assert_eq!(doc_on["client_id_metadata_document_supported"], true);
    assert!(
        doc_on["token_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("none"))
    );
    assert_eq!(doc_off["client_id_metadata_document_supported"], false);
    assert_eq!(unknown.json()["reason"], "unknown", "{}", unknown.body);
    assert_eq!(server.connections(), 0, "nothing is fetched while disabled");
}

// === every failure, named ==================================================================

#[actix_web::test]
async fn each_failure_of_a_fetched_document_is_named() {
    let server = DocServer::http().await;
    let app = TestApp::with(&local(&[])).await;
    let url = |path: &str| server.url(path);
    let big = format!("{{\"client_id\":\"x\",\"pad\":\"{}\"}}", "a".repeat(6000));
    server.set("/missing.json", Answer::status(404));
    server.set(
        "/moved.json",
        Answer::status(302).header("Location", &url("/elsewhere.json")),
    );
    server.set_json("/elsewhere.json", &document(&url("/moved.json"), json!({})));
    server.set("/big.json", Answer::json(big.clone()));
    server.set("/big-unsized.json", Answer::json(big).without_length());
    server.set(
        "/page.json",
        Answer::json("<!DOCTYPE html><title>Just a moment...</title>")
            .header("Content-Type", "text/html; charset=utf-8"),
    );
    let cases = [
        ("/missing.json", json!(null), "http_status", "HTTP 404"),
        (
            "/moved.json",
            json!(null),
            "http_status",
            "redirects are not followed",
        ),
        ("/big.json", json!(null), "too_large", "larger than 5 KiB"),
        (
            "/big-unsized.json",
            json!(null),
            "too_large",
            "larger than 5 KiB",
        ),
        ("/page.json", json!(null), "not_json", "text/html"),
        (
            "/mismatch.json",
            json!({"client_id": url("/mismatch.json/")}),
            "client_id_mismatch",
            "is not the URL",
        ),
        (
            "/no-uris.json",
            json!({"redirect_uris": null}),
            "missing_member",
            "redirect_uris",
        ),
        (
            "/secret.json",
            json!({"client_secret": "hunter2"}),
            "forbidden_field",
            "client_secret",
        ),
        (
            "/shared.json",
            json!({"token_endpoint_auth_method": "client_secret_post"}),
            "forbidden_field",
            "client_secret_post",
        ),
        (
            "/keyless.json",
            json!({"token_endpoint_auth_method": "private_key_jwt"}),
            "missing_member",
            "jwks_uri",
        ),
        (
            "/typed.json",
            json!({"redirect_uris": REDIRECT}),
            "invalid_metadata",
            "redirect_uris must be a list",
        ),
        (
            "/web-http.json",
            json!({"redirect_uris": ["http://app.example/cb"]}),
            "invalid_metadata",
            "http://app.example/cb",
        ),
    ];
    for (path, extra, _, _) in &cases {
        if !extra.is_null() {
            server.set_json(path, &document(&url(path), extra.clone()));
        }
    }

    for (path, _, code, named) in cases {
        let res = authorize_json(&app, &url(path), REDIRECT).await;

        assert_cimd_failed(&res, code, named);
    }
    assert_eq!(
        server.fetches("/elsewhere.json"),
        0,
        "the redirect was not followed"
    );
}

#[actix_web::test]
async fn a_redirect_uri_the_document_does_not_list_is_named_and_loopback_matches_any_port() {
    let server = DocServer::http().await;
    let url = server.url("/c.json");
    server.set_json(
        "/c.json",
        &document(
            &url,
            json!({"redirect_uris": ["http://localhost/callback", "https://app.example/cb"]}),
        ),
    );
    let app = dev_app(&local(&[])).await;

    let unlisted = authorize_json(&app, &url, "https://attacker.example/cb").await;
    let any_port = open_authorize_to(&app, &url, "http://localhost:52311/callback").await;

    assert_cimd_failed(
        &unlisted,
        "redirect_uri_not_listed",
        "https://app.example/cb",
    );
    assert!(
        unlisted.json()["error_description"]
            .as_str()
            .unwrap()
            .contains("https://attacker.example/cb")
    );
    assert!(any_port.is_consent_page(), "{}", any_port.body);
}

/// `GET /authorize` in a browser for `client_id` with another redirect URI than `REDIRECT`.
async fn open_authorize_to(app: &TestApp, client_id: &str, redirect_uri: &str) -> Reply {
    send(
        app.get(&format!(
            "/authorize?response_type=code&client_id={}&redirect_uri={}&code_challenge={CHALLENGE}&code_challenge_method=S256&state=s1",
            enc(client_id),
            enc(redirect_uri)
        ))
        .insert_header(("accept", CHROME_ACCEPT)),
    )
    .await
}

#[actix_web::test]
async fn a_document_that_does_not_arrive_in_time_is_a_timeout() {
    let server = DocServer::http().await;
    server.set("/slow.json", Answer::json("{}").stalled());
    let app = TestApp::with(&local(&[("cimd.timeout_ms", "300")])).await;

    let res = authorize_json(&app, &server.url("/slow.json"), REDIRECT).await;

    assert_cimd_failed(&res, "timeout", "did not arrive within 1 seconds");
}

#[actix_web::test]
async fn a_closed_port_is_a_connection_failure() {
    let port = crate::support::free_port();
    let app = TestApp::with(&local(&[])).await;

    let res = authorize_json(&app, &format!("http://127.0.0.1:{port}/c.json"), REDIRECT).await;

    assert_cimd_failed(&res, "connection", "no connection to 127.0.0.1");
}

// === the SSRF guard ========================================================================

#[actix_web::test]
async fn names_and_addresses_of_loopback_are_refused_before_any_connection() {
    let server = DocServer::https().await;
    let ca = TEST_CA.to_owned();
    let guarded = TestApp::with(&[
        ("cimd.allow_hosts", "127.0.0.1"),
        ("cimd.ca_file", ca.as_str()),
    ])
    .await;
    for host in ["localhost", "127.0.0.2", "[::1]"] {
        let url = server.url_on(host, "/c.json");
        server.set_json("/c.json", &document(&url, json!({})));

        let res = authorize_json(&guarded, &url, REDIRECT).await;

        let bare = host.trim_matches(['[', ']']);
        assert_cimd_failed(&res, "refused_address", "loopback");
        assert!(res.body.contains(bare), "{host}: {}", res.body);
    }
    assert_eq!(
        server.connections(),
        0,
        "refused before connecting (listening on {:?})",
        server.listening
    );

    // The same server is reachable: allowed, the name is fetched (so the count above means
    // something), and so is the allowed address.
    let allowed = TestApp::with(&[
        ("cimd.allow_hosts", "127.0.0.1,localhost"),
        ("cimd.ca_file", ca.as_str()),
    ])
    .await;
    let url = server.url_on("localhost", "/c.json");
    server.set_json("/c.json", &document(&url, json!({})));
    let res = authorize_json(&allowed, &url, REDIRECT).await;
    assert_eq!(res.status, 200, "the sign-in page: {}", res.body);
    assert!(server.connections() >= 1);
}

#[actix_web::test]
async fn documents_over_tls_need_a_trusted_certificate() {
    let server = DocServer::https().await;
    let url = server.url("/c.json");
    server.set_json("/c.json", &document(&url, json!({})));
    let ca = TEST_CA.to_owned();
    let untrusting = TestApp::with(&[("cimd.allow_hosts", "127.0.0.1")]).await;
    let trusting = dev_app(&[
        ("cimd.allow_hosts", "127.0.0.1"),
        ("cimd.ca_file", ca.as_str()),
    ])
    .await;

    let refused = authorize_json(&untrusting, &url, REDIRECT).await;
    let page = open_authorize(&trusting, None, &url, "").await;

    assert_cimd_failed(&refused, "connection", "certificate");
    assert!(page.is_consent_page(), "{}", page.body);
}

#[actix_web::test]
async fn hosts_outside_allow_domains_and_urls_breaking_the_rules_are_never_fetched() {
    let server = DocServer::http().await;
    let app = TestApp::with(&local(&[("cimd.allow_domains", "example.com")])).await;
    let open = TestApp::with(&local(&[])).await;

    let elsewhere = authorize_json(&app, &server.url("/c.json"), REDIRECT).await;
    let http = authorize_json(&open, &server.url_on("localhost", "/c.json"), REDIRECT).await;
    let no_path = authorize_json(&open, "https://client.example", REDIRECT).await;
    let dots = authorize_json(&open, "https://client.example/a/../c.json", REDIRECT).await;
    let fragment = authorize_json(&open, "https://client.example/c.json#f", REDIRECT).await;

    assert_cimd_failed(&elsewhere, "domain_not_allowed", "127.0.0.1");
    assert_cimd_failed(&http, "invalid_client_id", "https");
    assert_cimd_failed(&no_path, "invalid_client_id", "no path");
    assert_cimd_failed(&dots, "invalid_client_id", "..");
    assert_cimd_failed(&fragment, "invalid_client_id", "fragment");
    assert_eq!(server.connections(), 0);
}

// === caching ===============================================================================

#[actix_web::test]
async fn documents_are_cached_as_cache_control_says_within_the_bounds() {
    let server = DocServer::http().await;
    let app = dev_app(&local(&[
        ("cimd.cache_min", "60"),
        ("cimd.cache_max", "7200"),
    ]))
    .await;
    let hour = server.url("/hour.json");
    server.set(
        "/hour.json",
        Answer::json(document(&hour, json!({})).to_string())
            .header("Cache-Control", "public, max-age=3600"),
    );
    let plain = server.url("/plain.json");
    server.set_json("/plain.json", &document(&plain, json!({})));
    let year = server.url("/year.json");
    server.set(
        "/year.json",
        Answer::json(document(&year, json!({})).to_string())
            .header("Cache-Control", "max-age=31536000"),
    );
    let fetches = |path: &str| server.fetches(path);
    let resolve = |id: String| {
        let app = &app;
        async move {
            let res = authorize_json(app, &id, REDIRECT).await;
            assert_eq!(res.status, 200, "{}", res.body);
        }
    };

    for id in [&hour, &plain, &year] {
        resolve(id.clone()).await;
        resolve(id.clone()).await;
    }
    assert_eq!(
        (
            fetches("/hour.json"),
            fetches("/plain.json"),
            fetches("/year.json")
        ),
        (1, 1, 1)
    );

    app.clock.advance(61);
    for id in [&hour, &plain, &year] {
        resolve(id.clone()).await;
    }
    assert_eq!(
        (
            fetches("/hour.json"),
            fetches("/plain.json"),
            fetches("/year.json")
        ),
        (1, 2, 1),
        "no max-age: cache_min"
    );

    app.clock.advance(3600 - 61);
    resolve(hour.clone()).await;
    assert_eq!(fetches("/hour.json"), 2, "max-age=3600");

    app.clock.advance(7200 - 3600 + 1);
    resolve(year.clone()).await;
    assert_eq!(fetches("/year.json"), 2, "a year is cut to cache_max");
}

#[actix_web::test]
async fn a_stale_document_is_served_while_its_host_fails_for_a_bounded_time() {
    let server = DocServer::http().await;
    let url = server.url("/c.json");
    server.set_json("/c.json", &document(&url, json!({})));
    let app = dev_app(&local(&[
        ("cimd.cache_min", "300"),
        ("cimd.stale_if_error", "3600"),
    ]))
    .await;
    assert_eq!(authorize_json(&app, &url, REDIRECT).await.status, 200);
    server.set("/c.json", Answer::status(503));

    app.clock.advance(301);
    let stale = authorize_json(&app, &url, REDIRECT).await;
    let soon_after = authorize_json(&app, &url, REDIRECT).await;
    let fetched_while_stale = server.fetches("/c.json");
    app.clock.advance(3600);
    let gone = authorize_json(&app, &url, REDIRECT).await;

    assert_eq!(stale.status, 200, "the last good copy: {}", stale.body);
    assert_eq!(soon_after.status, 200, "{}", soon_after.body);
    assert_eq!(
        fetched_while_stale, 2,
        "after a failed fetch, the next try waits cache_min"
    );
    assert_eq!(server.fetches("/c.json"), 3);
    assert_cimd_failed(&gone, "http_status", "HTTP 503");
}

#[actix_web::test]
async fn a_new_copy_replaces_the_cached_one_when_it_expires() {
    let server = DocServer::http().await;
    let url = server.url("/c.json");
    server.set_json(
        "/c.json",
        &document(&url, json!({"client_name": "Old Name"})),
    );
    let app = dev_app(&local(&[("cimd.cache_min", "60")])).await;
    let first = open_authorize(&app, None, &url, "").await;
    server.set_json(
        "/c.json",
        &document(&url, json!({"client_name": "New Name"})),
    );

    let cached = open_authorize(&app, None, &url, "").await;
    app.clock.advance(61);
    let fresh = open_authorize(&app, None, &url, "").await;

    assert!(first.body.contains("Old Name"));
    assert!(cached.body.contains("Old Name"), "still fresh");
    assert!(fresh.body.contains("New Name"), "{}", fresh.body);
}

#[actix_web::test]
async fn two_processes_on_one_redis_fetch_a_document_once() {
    let redis = RedisServer::start();
    let server = DocServer::http().await;
    let redis_url = redis.url();
    let shared = local(&[
        ("storage.backend", "redis"),
        ("storage.key_prefix", "cimd-two:"),
        ("login.mode", "dev"),
    ]);
    let mut settings = shared.clone();
    settings.push(("storage.redis_url", redis_url.as_str()));
    let a = TestApp::with(&settings).await;
    let b = TestApp::with(&settings).await;

    // One after the other: the second process finds the first one's copy.
    let url = server.url("/seq.json");
    server.set_json("/seq.json", &document(&url, json!({})));
    assert_eq!(authorize_json(&a, &url, REDIRECT).await.status, 200);
    assert_eq!(authorize_json(&b, &url, REDIRECT).await.status, 200);
    assert_eq!(
        server.fetches("/seq.json"),
        1,
        "one fetch for both processes"
    );

    // At once: while the first process's fetch is held, the second one waits for its copy
    // instead of fetching too.
    let url = server.url("/race.json");
    server.set(
        "/race.json",
        Answer::json(document(&url, json!({})).to_string()).held(),
    );
    let first = authorize_json(&a, &url, REDIRECT);
    let second = async {
        server.wait_for_requests(2).await;
        let b_answer = authorize_json(&b, &url, REDIRECT);
        let watch = async {
            let more =
                tokio::time::timeout(Duration::from_millis(300), server.wait_for_requests(3)).await;
            server.release();
            more
        };
        futures_util::join!(b_answer, watch)
    };
    let (first, (second, another_fetch)) = futures_util::join!(first, second);

    assert!(another_fetch.is_err(), "the second process did not fetch");
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(second.status, 200, "{}", second.body);
    assert_eq!(server.fetches("/race.json"), 1, "{:?}", server.requests());
}

// === the documents real clients publish ====================================================

#[actix_web::test]
async fn the_documents_real_clients_publish_complete_a_flow() {
    let server = DocServer::http().await;
    let app = dev_app(&local(&[])).await;
    // (fixture, the redirect URI its client sends, the name on the consent page)
    let cases = [
        (
            "claude-ai-connectors.json",
            "https://claude.ai/api/mcp/auth_callback",
            "Claude",
        ),
        // Registered without a port; the client listens on a random one.
        (
            "claude-code.json",
            "http://localhost:53682/callback",
            "Claude Code",
        ),
        (
            "claude-code.json",
            "http://127.0.0.1:53682/callback",
            "Claude Code",
        ),
        // Names port 33418, falls back to another when it is busy.
        (
            "vscode.json",
            "http://127.0.0.1:33418/",
            "Visual Studio Code",
        ),
        (
            "vscode.json",
            "http://127.0.0.1:40123/",
            "Visual Studio Code",
        ),
        (
            "chatgpt.json",
            "https://chatgpt.com/connector_platform_oauth_redirect",
            "ChatGPT",
        ),
        (
            "chatgpt.2026-08-03.json",
            "https://chatgpt.com/connector_platform_oauth_redirect",
            "ChatGPT",
        ),
    ];

    for (name, redirect_uri, shown) in cases {
        let path = format!("/{name}");
        let url = server.url(&path);
        let mut answer = Answer::json(fixture(name, &url).to_string())
            .header("Content-Type", "application/json; charset=utf-8");
        if name == "claude-code.json" {
            answer = answer.header("Cache-Control", "public, max-age=300");
        }
        server.set(&path, answer);

        let consent = open_authorize_to(&app, &url, redirect_uri).await;
        assert!(consent.is_consent_page(), "{name}: {}", consent.body);
        assert!(consent.body.contains(shown), "{name} shows {shown}");
        let cookie = consent.cookies();
        let done = decide(&app, cookie.as_deref(), &consent, "approve").await;
        assert_eq!(done.status, 303, "{name}: {}", done.body);
        assert!(done.header("location").starts_with(redirect_uri), "{name}");
        let code = done.location_params()["code"].clone();
        // ChatGPT's document names private_key_jwt; Doorman does not verify assertions, so one
        // sent anyway changes nothing (the client is public, with PKCE).
        let assertion: &[(&str, &str)] = if name.starts_with("chatgpt") {
            &[
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", "eyJhbGciOiJSUzI1NiJ9.e30.c2ln"),
            ]
        } else {
            &[]
        };
        let tokens = exchange_for(&app, &url, redirect_uri, &code, assertion).await;

        assert_eq!(tokens.status, 200, "{name}: {}", tokens.body);
        assert!(tokens.json()["refresh_token"].is_string(), "{name}");
    }
}

#[actix_web::test]
async fn the_broken_mcpc_document_is_refused_naming_the_missing_member() {
    let server = DocServer::http().await;
    let url = server.url("/mcpc.json");
    server.set_json("/mcpc.json", &fixture("mcpc-apify.repo-copy.json", &url));
    let app = TestApp::with(&local(&[])).await;

    let json = authorize_json(&app, &url, "http://127.0.0.1:13316/callback").await;
    let page = open_authorize_to(&app, &url, "http://127.0.0.1:13316/callback").await;

    assert_cimd_failed(&json, "missing_member", "client_id");
    assert_eq!(page.status, 400);
    assert!(page.body.contains("no client_id member"), "{}", page.body);
}

#[actix_web::test]
async fn the_cimd_failed_page_names_the_host_and_offers_no_registration() {
    let server = DocServer::http().await;
    server.set("/gone.json", Answer::status(404));
    let url = server.url("/gone.json");
    let app = TestApp::with(&local(&[])).await;

    let page = open_authorize_to(&app, &url, REDIRECT).await;

    assert_eq!(page.status, 400);
    assert!(page.header("content-type").starts_with("text/html"));
    assert!(page.header("link").contains("oauth-authorization-server"));
    let host = format!("127.0.0.1:{}", server.port);
    assert!(page.body.contains(&host), "names the host: {}", page.body);
    assert!(page.body.contains("HTTP 404"), "says what failed");
    assert!(page.body.contains("<code>http_status</code>"));
    assert!(!page.body.contains("<form"), "no registration form");
    assert!(
        !page.body.to_lowercase().contains("regist"),
        "no registration step: {}",
        page.body
    );
}

#[actix_web::test]
async fn pinned_documents_are_served_without_any_fetch() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["claude-code.json", "vscode.json"] {
        std::fs::copy(format!("{FIXTURES}/{name}"), dir.path().join(name)).unwrap();
    }
    let pinned = dir.path().display().to_string();
    let app = dev_app(&[("cimd.pinned", pinned.as_str())]).await;

    let claude_code = open_authorize_to(
        &app,
        "https://claude.ai/oauth/claude-code-client-metadata",
        "http://localhost:61000/callback",
    )
    .await;
    let vscode = open_authorize_to(
        &app,
        "https://vscode.dev/oauth/client-metadata.json",
        "http://127.0.0.1:33418/",
    )
    .await;

    assert!(claude_code.is_consent_page(), "{}", claude_code.body);
    assert!(claude_code.body.contains("Claude Code"));
    assert!(
        claude_code
            .body
            .contains("<strong class=\"host\">claude.ai</strong>")
    );
    assert!(vscode.is_consent_page(), "{}", vscode.body);
}

#[test]
fn broken_cimd_settings_stop_start_up_naming_the_key() {
    let broken = tempfile::tempdir().unwrap();
    std::fs::copy(
        format!("{FIXTURES}/mcpc-apify.repo-copy.json"),
        broken.path().join("mcpc.json"),
    )
    .unwrap();
    let load = |key: &str, value: &str| {
        let mut env = std::collections::HashMap::new();
        env.insert(
            format!("DOORMAN__{}", key.replace('.', "__").to_uppercase()),
            value.to_owned(),
        );
        doorman::settings::Settings::load(None, Some(env))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    let pinned = broken.path().display().to_string();

    for (key, value) in [
        ("cimd.pinned", pinned.as_str()),
        ("cimd.pinned", "/nonexistent/folder"),
        ("cimd.ca_file", "/nonexistent/ca.pem"),
        (
            "cimd.ca_file",
            concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"),
        ),
        ("cimd.cache_min", "999999"),
        ("cimd.timeout_ms", "0"),
        ("cimd.allow_hosts", "not a host"),
    ] {
        let error = load(key, value);
        assert!(
            error.starts_with(&format!("settings: key `{key}`")),
            "{key}={value}: {error:?}"
        );
    }
}

// === trust =================================================================================

#[actix_web::test]
async fn a_document_client_is_trusted_like_a_self_registered_one() {
    let server = DocServer::http().await;
    let url = server.url("/web.json");
    server.set_json(
        "/web.json",
        &document(
            &url,
            json!({"redirect_uris": ["https://app.example/landing"],
                   "grant_types": ["authorization_code", "client_credentials"]}),
        ),
    );
    let app = dev_app(&local(&[])).await;
    let client = Client {
        id: url.clone(),
        secret: None,
    };

    let stopped = send(
        app.get(&format!(
            "/authorize?client_id={}&redirect_uri={}&response_type=token&state=s1",
            enc(&url),
            enc("https://app.example/landing")
        ))
        .insert_header(("accept", CHROME_ACCEPT)),
    )
    .await;
    let credentials = flow::token(&app, &client, &[("grant_type", "client_credentials")]).await;
    let introspection = flow::call_as(
        &app,
        "/introspect",
        &client,
        flow::Auth::Body,
        &[("token", "x")],
    )
    .await;
    let with_secret = flow::send_form(
        app.post("/token"),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", "x"),
            ("client_id", &url),
            ("client_secret", "guess"),
        ],
    )
    .await;

    assert_eq!(stopped.status, 400, "no open redirect: {}", stopped.body);
    assert!(stopped.header("location").is_empty());
    assert!(
        stopped.body.contains("Return to app.example"),
        "{}",
        stopped.body
    );
    assert_eq!(
        credentials.json()["error"],
        "unauthorized_client",
        "{}",
        credentials.body
    );
    assert_eq!(introspection.status, 401, "{}", introspection.body);
    assert_eq!(with_secret.status, 401, "{}", with_secret.body);
    assert_eq!(with_secret.json()["error"], "invalid_client");
}

#[actix_web::test]
async fn a_failing_document_refuses_the_client_at_the_token_endpoint() {
    let server = DocServer::http().await;
    let url = server.url("/c.json");
    server.set_json("/c.json", &document(&url, json!({})));
    let app = dev_app(&local(&[
        ("cimd.cache_min", "60"),
        ("cimd.stale_if_error", "0"),
    ]))
    .await;
    let (query, _) = approve_in(&app, None, &url, "").await;
    server.set("/c.json", Answer::status(410));
    app.clock.advance(61);

    let res = exchange(
        &app,
        &Client {
            id: url.clone(),
            secret: None,
        },
        &query["code"],
    )
    .await;

    assert_eq!(res.status, 401, "{}", res.body);
    assert_eq!(res.json()["error"], "invalid_client");
    assert!(res.body.contains("HTTP 410"), "{}", res.body);
}

#[actix_web::test]
async fn the_consent_page_shows_a_logo_only_from_the_documents_host() {
    let server = DocServer::http().await;
    let same = server.url("/same.json");
    server.set_json(
        "/same.json",
        &document(&same, json!({"logo_uri": server.url("/logo.png")})),
    );
    let other = server.url("/other.json");
    server.set_json(
        "/other.json",
        &document(&other, json!({"logo_uri": "https://cdn.example/logo.png"})),
    );
    let app = dev_app(&local(&[])).await;

    let with_logo = open_authorize(&app, None, &same, "").await;
    let without = open_authorize(&app, None, &other, "").await;

    assert!(
        with_logo
            .body
            .contains(&format!("src=\"{}\"", server.url("/logo.png"))),
        "{}",
        with_logo.body
    );
    assert!(
        with_logo
            .header("content-security-policy")
            .contains(&format!(
                "img-src 'self' data: http://127.0.0.1:{};",
                server.port
            ))
    );
    assert!(!without.body.contains("cdn.example"), "{}", without.body);
    assert!(
        without
            .header("content-security-policy")
            .contains("img-src 'self' data:;")
    );
}
