//! Dynamic registration (docs/behaviour.md §6, §5.5): the JSON API, its refusals and limits, RFC 7592
//! management, and the HTML form, over a real socket.
#![allow(clippy::expect_used, clippy::unwrap_used)] // in tests, a failed expectation is a failed test

use serde_json::{Value, json};
use url::Url;

use crate::support::{CHALLENGE, CHROME_ACCEPT, TestApp, header, json, text};

const FORM: &str = "application/x-www-form-urlencoded";

/// Form fields with owned values.
type Fields = Vec<(&'static str, String)>;

/// Undoes the escaping of sailfish's `<%= %>`.
fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#039;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The (unescaped) `value` of the input named `name`.
fn input_value(page: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" ");
    let at = page.find(&marker)?;
    let rest = &page[at..];
    let start = rest.find("value=\"")? + "value=\"".len();
    let end = rest[start..].find('"')?;
    Some(unescape(&rest[start..start + end]))
}

/// The text between `open` and the next `<`.
fn element_text(page: &str, open: &str) -> Option<String> {
    let start = page.find(open)? + open.len();
    let end = page[start..].find('<')?;
    Some(unescape(&page[start..start + end]))
}

/// The value of the cookie `name` set by a response.
fn set_cookie<S>(res: &awc::ClientResponse<S>, name: &str) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find_map(|pair| pair.strip_prefix(&format!("{name}=")).map(str::to_owned))
}

fn form_body(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// A POST /register with a raw body and content type.
async fn post_raw(
    app: &TestApp,
    content_type: Option<&str>,
    body: impl Into<String>,
) -> (u16, String, Value) {
    let mut req = app.post("/register");
    if let Some(ct) = content_type {
        req = req.insert_header(("content-type", ct));
    }
    let mut res = req.send_body(body.into()).await.expect("POST /register");
    let cache = header(&res, "cache-control");
    let doc = json(&mut res).await;
    (res.status().as_u16(), cache, doc)
}

/// The unregistered-client page for a failed authorization, as a browser gets it: the CSRF
/// cookie, the hidden fields, and the original query.
struct FailedAuthorization {
    cookie: String,
    csrf: String,
    retry: String,
    query: String,
}

async fn failed_authorization(app: &TestApp) -> FailedAuthorization {
    let query = form_body(&[
        ("client_id", "forgotten-client"),
        ("response_type", "code"),
        ("redirect_uri", "http://127.0.0.1:5555/callback"),
        ("state", "st&a=te é"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
        ("scope", "mcp"),
    ]);
    let mut res = app
        .get(&format!("/authorize?{query}"))
        .insert_header(("accept", CHROME_ACCEPT))
        .send()
        .await
        .expect("GET");
    let page = text(&mut res).await;
    assert_eq!(res.status(), 400);
    FailedAuthorization {
        cookie: set_cookie(&res, "doorman_csrf").expect("doorman_csrf cookie"),
        csrf: input_value(&page, "csrf_token").expect("csrf_token field"),
        retry: input_value(&page, "retry").expect("retry field"),
        query,
    }
}

async fn post_form(
    app: &TestApp,
    cookie: Option<&str>,
    fields: &[(&str, &str)],
) -> (u16, awc::http::header::HeaderMap, String) {
    let mut req = app
        .post("/register")
        .insert_header(("content-type", FORM))
        .insert_header(("accept", CHROME_ACCEPT));
    if let Some(c) = cookie {
        req = req.insert_header(("cookie", format!("doorman_csrf={c}")));
    }
    let mut res = req.send_body(form_body(fields)).await.expect("POST form");
    let page = text(&mut res).await;
    (res.status().as_u16(), res.headers().clone(), page)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

#[actix_web::test]
async fn registration_returns_201_with_identifiers_and_defaults() {
    let app = TestApp::spawn().await;

    let mut res = app
        .post("/register")
        .send_json(&json!({"redirect_uris": ["https://app.example.com/cb"]}))
        .await
        .expect("POST");
    let doc = json(&mut res).await;

    assert_eq!(res.status(), 201, "{doc}");
    assert_eq!(header(&res, "cache-control"), "no-store");
    assert!(header(&res, "content-type").starts_with("application/json"));
    let client_id = doc["client_id"].as_str().expect("client_id");
    assert!(client_id.len() >= 22, "at least 128 bits: {client_id}");
    assert!(
        client_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{client_id}"
    );
    let issued = doc["client_id_issued_at"]
        .as_u64()
        .expect("client_id_issued_at");
    assert!(issued.abs_diff(now()) < 60, "issued_at is now: {issued}");
    assert!(
        doc["registration_access_token"]
            .as_str()
            .is_some_and(|t| t.len() >= 32),
        "{doc}"
    );
    assert_eq!(
        doc["registration_client_uri"],
        format!("{}/register/{client_id}", app.issuer).as_str()
    );
    assert_eq!(doc["redirect_uris"], json!(["https://app.example.com/cb"]));
    assert_eq!(
        doc["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(doc["response_types"], json!(["code"]));
    assert_eq!(doc["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(doc["application_type"], "native");
    assert!(
        doc["client_secret"].as_str().is_some_and(|s| s.len() >= 32),
        "confidential by default: {doc}"
    );
    assert_eq!(doc["client_secret_expires_at"], 0);
}

#[actix_web::test]
async fn public_client_gets_no_secret() {
    let app = TestApp::spawn().await;

    let doc = app
        .register(
            json!({"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"}),
        )
        .await;

    assert_eq!(doc["token_endpoint_auth_method"], "none");
    assert!(doc.get("client_secret").is_none(), "{doc}");
    assert!(doc["registration_access_token"].is_string());
}

#[actix_web::test]
async fn client_secret_post_client_gets_a_secret() {
    let app = TestApp::spawn().await;

    let doc = app.register(json!({"redirect_uris": ["https://app.example.com/cb"], "token_endpoint_auth_method": "client_secret_post"})).await;

    assert_eq!(doc["token_endpoint_auth_method"], "client_secret_post");
    assert!(doc["client_secret"].is_string(), "{doc}");
    assert_eq!(doc["client_secret_expires_at"], 0);
}

#[actix_web::test]
async fn every_registration_gets_its_own_identifiers() {
    let app = TestApp::spawn().await;
    let body = json!({"redirect_uris": ["https://app.example.com/cb"]});

    let a = app.register(body.clone()).await;
    let b = app.register(body).await;

    for key in ["client_id", "client_secret", "registration_access_token"] {
        assert_ne!(a[key], b[key], "{key}");
    }
}

#[actix_web::test]
async fn metadata_is_stored_and_echoed() {
    let app = TestApp::spawn().await;

    let doc = app
        .register(json!({
            "redirect_uris": ["https://app.example.com/cb", "cursor://anysphere.cursor-mcp/oauth/callback", "com.example.app:/oauth2redirect", "http://[::1]/cb"],
            "client_name": "Example <App>",
            "client_uri": "https://app.example.com",
            "logo_uri": "https://app.example.com/logo.png",
            "contacts": ["ops@app.example.com"],
            "software_id": "4NRB1-0XZABZI9E6-5SM3R",
            "software_version": "2.1",
            "scope": "mcp offline_access",
            "token_endpoint_auth_method": "none",
        }))
        .await;

    assert_eq!(doc["client_name"], "Example <App>");
    assert_eq!(doc["client_uri"], "https://app.example.com");
    assert_eq!(doc["logo_uri"], "https://app.example.com/logo.png");
    assert_eq!(doc["contacts"], json!(["ops@app.example.com"]));
    assert_eq!(doc["software_id"], "4NRB1-0XZABZI9E6-5SM3R");
    assert_eq!(doc["software_version"], "2.1");
    assert_eq!(doc["scope"], "mcp offline_access");
    assert_eq!(doc["redirect_uris"].as_array().map(Vec::len), Some(4));
}

#[actix_web::test]
async fn refusals_carry_the_rfc_code_with_400_and_no_store() {
    let app = TestApp::spawn().await;
    let long_name = "n".repeat(300);
    let ok = r#"{"redirect_uris":["https://app.example.com/cb"]}"#;
    let uri = |u: &str| json!({"redirect_uris": [u]}).to_string();
    let cases: Vec<(&str, Option<&str>, String, &str)> = vec![
        ("malformed JSON", Some("application/json"), "{\"redirect_uris\": [".into(), "invalid_client_metadata"),
        ("not an object", Some("application/json"), "[1, 2]".into(), "invalid_client_metadata"),
        ("wrong member type", Some("application/json"), r#"{"redirect_uris":"https://app.example.com/cb"}"#.into(), "invalid_client_metadata"),
        ("text/plain", Some("text/plain"), ok.into(), "invalid_client_metadata"),
        ("application/xml", Some("application/xml"), ok.into(), "invalid_client_metadata"),
        ("no content type", None, ok.into(), "invalid_client_metadata"),
        ("no redirect_uris", Some("application/json"), "{}".into(), "invalid_redirect_uri"),
        ("empty redirect_uris", Some("application/json"), r#"{"redirect_uris":[]}"#.into(), "invalid_redirect_uri"),
        ("relative", Some("application/json"), uri("/callback"), "invalid_redirect_uri"),
        ("scheme-relative", Some("application/json"), uri("//app.example.com/cb"), "invalid_redirect_uri"),
        ("fragment", Some("application/json"), uri("https://app.example.com/cb#frag"), "invalid_redirect_uri"),
        ("userinfo", Some("application/json"), uri("https://user:pw@app.example.com/cb"), "invalid_redirect_uri"),
        ("user only", Some("application/json"), uri("https://user@app.example.com/cb"), "invalid_redirect_uri"),
        ("javascript:", Some("application/json"), uri("javascript:alert(1)"), "invalid_redirect_uri"),
        ("JavaScript: in capitals", Some("application/json"), uri("JavaScript:alert(1)"), "invalid_redirect_uri"),
        ("data:", Some("application/json"), uri("data:text/html,<script>alert(1)</script>"), "invalid_redirect_uri"),
        ("file:", Some("application/json"), uri("file:///etc/passwd"), "invalid_redirect_uri"),
        ("vbscript:", Some("application/json"), uri("vbscript:msgbox(1)"), "invalid_redirect_uri"),
        ("blob:", Some("application/json"), uri("blob:https://app.example.com/0f6c8e2a"), "invalid_redirect_uri"),
        ("http to a non-loopback host", Some("application/json"), uri("http://app.example.com/cb"), "invalid_redirect_uri"),
        ("http to a localhost look-alike", Some("application/json"), uri("http://localhost.example.com/cb"), "invalid_redirect_uri"),
        ("http to a loopback look-alike", Some("application/json"), uri("http://127.0.0.1.nip.io/cb"), "invalid_redirect_uri"),
        ("one bad among good", Some("application/json"), json!({"redirect_uris": ["https://app.example.com/cb", "http://evil.example/cb"]}).to_string(), "invalid_redirect_uri"),
        ("response type token", Some("application/json"), json!({"redirect_uris": ["https://app.example.com/cb"], "response_types": ["code", "token"]}).to_string(), "invalid_client_metadata"),
        ("auth method private_key_jwt", Some("application/json"), json!({"redirect_uris": ["https://app.example.com/cb"], "token_endpoint_auth_method": "private_key_jwt"}).to_string(), "invalid_client_metadata"),
        ("implicit only", Some("application/json"), json!({"redirect_uris": ["https://app.example.com/cb"], "grant_types": ["implicit"]}).to_string(), "invalid_client_metadata"),
        ("device code only", Some("application/json"), json!({"redirect_uris": ["https://app.example.com/cb"], "grant_types": ["urn:ietf:params:oauth:grant-type:device_code"]}).to_string(), "invalid_client_metadata"),
        ("public client_credentials", Some("application/json"), json!({"redirect_uris": ["https://app.example.com/cb"], "grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"}).to_string(), "invalid_client_metadata"),
        ("oversized client_name", Some("application/json"), json!({"redirect_uris": ["https://app.example.com/cb"], "client_name": long_name}).to_string(), "invalid_client_metadata"),
        ("http client_uri", Some("application/json"), json!({"redirect_uris": ["https://app.example.com/cb"], "client_uri": "http://app.example.com"}).to_string(), "invalid_client_metadata"),
    ];

    for (name, content_type, body, code) in cases {
        let (status, cache, doc) = post_raw(&app, content_type, body).await;

        assert_eq!(status, 400, "{name}: {doc}");
        assert_eq!(cache, "no-store", "{name}");
        assert_eq!(doc["error"], code, "{name}: {doc}");
        assert!(
            doc["error_description"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "{name}"
        );
    }
}

#[actix_web::test]
async fn unknown_members_are_ignored() {
    let app = TestApp::spawn().await;

    let doc = app
        .register(json!({
            "redirect_uris": ["https://app.example.com/cb"],
            "jwks": {"keys": []},
            "x_vendor_extension": {"nested": [1, 2, 3]},
            "post_logout_redirect_uris": ["https://app.example.com/bye"],
        }))
        .await;

    assert!(doc["client_id"].is_string());
    assert!(doc.get("x_vendor_extension").is_none(), "{doc}");
}

#[actix_web::test]
async fn unsupported_scopes_and_extra_grants_are_dropped_not_refused() {
    let app = TestApp::spawn().await;

    let narrowed = app
        .register(json!({
            "redirect_uris": ["https://app.example.com/cb"],
            "scope": "openid mcp profile",
            "grant_types": ["authorization_code", "urn:ietf:params:oauth:grant-type:device_code", "refresh_token"],
        }))
        .await;
    let empty = app
        .register(json!({"redirect_uris": ["https://app.example.com/cb"], "scope": ""}))
        .await;
    let nothing_supported = app
        .register(json!({"redirect_uris": ["https://app.example.com/cb"], "scope": "openid email"}))
        .await;

    assert_eq!(narrowed["scope"], "mcp");
    assert_eq!(
        narrowed["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    assert!(
        empty.get("scope").is_none(),
        "scope \"\" is absent: {empty}"
    );
    assert!(
        nothing_supported.get("scope").is_none(),
        "{nothing_supported}"
    );
}

#[actix_web::test]
async fn application_type_web_is_kept_for_web_uris_and_corrected_for_native_ones() {
    let app = TestApp::spawn().await;

    let web = app
        .register(
            json!({"redirect_uris": ["https://app.example.com/cb"], "application_type": "web"}),
        )
        .await;
    let loopback = app.register(json!({"redirect_uris": ["http://localhost:6274/oauth/callback"], "application_type": "web"})).await;
    let custom = app.register(json!({"redirect_uris": ["cursor://anysphere.cursor-mcp/oauth/callback"], "application_type": "web"})).await;

    assert_eq!(web["application_type"], "web");
    assert_eq!(loopback["application_type"], "native");
    assert_eq!(custom["application_type"], "native");
}

#[actix_web::test]
async fn body_over_64_kib_is_refused_with_413() {
    let app = TestApp::spawn().await;
    let big =
        json!({"redirect_uris": ["https://app.example.com/cb"], "padding": "x".repeat(70 * 1024)});
    let just_under =
        json!({"redirect_uris": ["https://app.example.com/cb"], "padding": "x".repeat(60 * 1024)});

    let mut res = app.post("/register").send_json(&big).await.expect("POST");
    let doc = json(&mut res).await;
    let under = app
        .post("/register")
        .send_json(&just_under)
        .await
        .expect("POST");

    assert_eq!(res.status(), 413, "{doc}");
    assert!(doc["error"].is_string(), "{doc}");
    assert_eq!(under.status(), 201, "60 KiB is within the limit");
}

#[actix_web::test]
async fn registration_is_rate_limited_per_client_ip() {
    let app = TestApp::with(&[
        ("rate_limit.enabled", "true"),
        ("rate_limit.register_burst", "2"),
        ("rate_limit.register_period_ms", "60000"),
    ])
    .await;
    let body = json!({"redirect_uris": ["https://app.example.com/cb"]});

    let first = app.post("/register").send_json(&body).await.expect("POST");
    let second = app.post("/register").send_json(&body).await.expect("POST");
    let mut third = app.post("/register").send_json(&body).await.expect("POST");
    let doc = json(&mut third).await;

    assert_eq!(first.status(), 201);
    assert_eq!(second.status(), 201);
    assert_eq!(third.status(), 429);
    let retry_after: u64 = header(&third, "retry-after")
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert!(doc["error"].is_string(), "{doc}");
}

#[actix_web::test]
async fn rate_limit_is_shared_by_the_issuer_path_and_the_origin_root() {
    let app = TestApp::with(&[
        ("issuer_path", "/auth"),
        ("rate_limit.enabled", "true"),
        ("rate_limit.register_burst", "2"),
        ("rate_limit.register_period_ms", "60000"),
    ])
    .await;
    let body = json!({"redirect_uris": ["https://app.example.com/cb"]});

    let first = app
        .post("/auth/register")
        .send_json(&body)
        .await
        .expect("POST");
    let second = app
        .post("/auth/register")
        .send_json(&body)
        .await
        .expect("POST");
    let third = app.post("/register").send_json(&body).await.expect("POST");

    assert_eq!(first.status(), 201);
    assert_eq!(second.status(), 201);
    assert_eq!(
        third.status(),
        429,
        "one limit per client IP, whichever URL it uses"
    );
}

#[actix_web::test]
async fn rate_limit_is_shared_by_every_worker() {
    let app = TestApp::with(&[
        ("server.workers", "2"),
        ("rate_limit.enabled", "true"),
        ("rate_limit.register_burst", "2"),
        ("rate_limit.register_period_ms", "60000"),
    ])
    .await;
    let body = json!({"redirect_uris": ["https://app.example.com/cb"]});
    let mut statuses = Vec::new();

    // A new client (and so a new connection) per request, so the requests reach both workers.
    for _ in 0..4 {
        let res = app.post("/register").send_json(&body).await.expect("POST");
        statuses.push(res.status().as_u16());
    }

    assert_eq!(statuses, vec![201, 201, 429, 429]);
}

#[actix_web::test]
async fn initial_access_token_is_required_when_configured() {
    let app = TestApp::with(&[("registration.initial_access_token", "let-me-in-0123456789")]).await;
    let body = json!({"redirect_uris": ["https://app.example.com/cb"]});

    let missing = app.post("/register").send_json(&body).await.expect("POST");
    let wrong = app
        .post("/register")
        .insert_header(("authorization", "Bearer let-me-in-wrong"))
        .send_json(&body)
        .await
        .expect("POST");
    let mut right = app
        .post("/register")
        .insert_header(("authorization", "Bearer let-me-in-0123456789"))
        .send_json(&body)
        .await
        .expect("POST");
    let doc = json(&mut right).await;

    assert_eq!(missing.status(), 401);
    assert!(
        header(&missing, "www-authenticate").starts_with("Bearer"),
        "RFC 6750 challenge"
    );
    assert_eq!(wrong.status(), 401);
    assert_eq!(right.status(), 201, "{doc}");
}

#[actix_web::test]
async fn disabled_registration_refuses_new_clients() {
    let app = TestApp::with(&[("registration.enabled", "false")]).await;

    let mut res = app
        .post("/register")
        .send_json(&json!({"redirect_uris": ["https://app.example.com/cb"]}))
        .await
        .expect("POST");
    let doc = json(&mut res).await;
    let mut form = app
        .post("/register")
        .insert_header(("content-type", FORM))
        .insert_header(("accept", CHROME_ACCEPT))
        .send_body(form_body(&[(
            "redirect_uris",
            "https://app.example.com/cb",
        )]))
        .await
        .expect("POST form");
    let page = text(&mut form).await;

    assert!(res.status().is_client_error(), "{}", res.status());
    assert!(
        doc["error"].is_string() && doc.get("client_id").is_none(),
        "{doc}"
    );
    assert!(form.status().is_client_error(), "{}", form.status());
    assert!(!page.contains("client-id\">"), "no client was created");
}

#[actix_web::test]
async fn registration_endpoint_is_callable_cross_origin() {
    let app = TestApp::spawn().await;

    let res = app
        .post("/register")
        .insert_header(("origin", "http://localhost:6274"))
        .send_json(&json!({"redirect_uris": ["http://localhost:6274/oauth/callback"], "token_endpoint_auth_method": "none"}))
        .await
        .expect("POST");
    let preflight = app
        .client()
        .request(awc::http::Method::OPTIONS, app.url("/register"))
        .insert_header(("origin", "http://localhost:6274"))
        .insert_header(("access-control-request-method", "POST"))
        .insert_header(("access-control-request-headers", "content-type"))
        .send()
        .await
        .expect("OPTIONS");

    assert_eq!(res.status(), 201);
    assert_eq!(header(&res, "access-control-allow-origin"), "*");
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(header(&preflight, "access-control-allow-origin"), "*");
    assert!(header(&preflight, "access-control-allow-methods").contains("POST"));
    assert!(
        header(&preflight, "access-control-allow-headers")
            .to_ascii_lowercase()
            .contains("content-type")
    );
}

#[actix_web::test]
async fn registration_access_token_reads_updates_and_deletes_the_client() {
    let app = TestApp::spawn().await;
    let created = app.register(json!({"redirect_uris": ["http://127.0.0.1/old"], "client_name": "Before", "token_endpoint_auth_method": "none"})).await;
    let client_id = created["client_id"].as_str().expect("client_id");
    let uri = created["registration_client_uri"]
        .as_str()
        .expect("registration_client_uri");
    let bearer = format!(
        "Bearer {}",
        created["registration_access_token"]
            .as_str()
            .expect("token")
    );
    let client = app.client();
    let authorize = |redirect: &str| {
        app.get(&format!(
            "/authorize?{}",
            form_body(&[
                ("client_id", client_id),
                ("redirect_uri", redirect),
                ("response_type", "token")
            ])
        ))
        .send()
    };

    // Every answer carries a new registration access token (RFC 7592 §3); the next request
    // uses it.
    let next = |doc: &serde_json::Value| {
        format!(
            "Bearer {}",
            doc["registration_access_token"]
                .as_str()
                .expect("a new token")
        )
    };
    let mut read = client
        .get(uri)
        .insert_header(("authorization", bearer.as_str()))
        .send()
        .await
        .expect("GET");
    let read_doc = json(&mut read).await;
    let mut updated = client
        .put(uri)
        .insert_header(("authorization", next(&read_doc)))
        .send_json(&json!({"client_id": client_id, "redirect_uris": ["http://127.0.0.1/new"], "client_name": "After", "token_endpoint_auth_method": "none"}))
        .await
        .expect("PUT");
    let updated_doc = json(&mut updated).await;
    let mut reread = client
        .get(uri)
        .insert_header(("authorization", next(&updated_doc)))
        .send()
        .await
        .expect("GET");
    let reread_doc = json(&mut reread).await;
    let new_redirect = authorize("http://127.0.0.1:4000/new").await.expect("GET");
    let old_redirect = authorize("http://127.0.0.1:4000/old").await.expect("GET");
    let last = next(&reread_doc);
    let deleted = client
        .delete(uri)
        .insert_header(("authorization", last.as_str()))
        .send()
        .await
        .expect("DELETE");
    let after_delete = client
        .get(uri)
        .insert_header(("authorization", last.as_str()))
        .send()
        .await
        .expect("GET");
    let mut authorize_after = app
        .get(&format!(
            "/authorize?client_id={client_id}&response_type=code"
        ))
        .send()
        .await
        .expect("GET");
    let authorize_doc = json(&mut authorize_after).await;

    assert_eq!(read.status(), 200, "{read_doc}");
    assert_eq!(header(&read, "cache-control"), "no-store");
    assert_eq!(read_doc["client_id"], client_id);
    assert_eq!(read_doc["client_name"], "Before");
    assert_eq!(read_doc["redirect_uris"], json!(["http://127.0.0.1/old"]));
    assert_eq!(read_doc["registration_client_uri"], uri);
    assert_eq!(updated.status(), 200, "{updated_doc}");
    assert_eq!(updated_doc["client_name"], "After");
    assert_eq!(reread_doc["client_name"], "After");
    assert_eq!(reread_doc["redirect_uris"], json!(["http://127.0.0.1/new"]));
    assert_eq!(
        new_redirect.status(),
        302,
        "the new redirect URI is in force"
    );
    assert_eq!(old_redirect.status(), 400, "the old one is gone");
    assert_eq!(deleted.status(), 204);
    assert_eq!(
        after_delete.status(),
        401,
        "a deleted client's token is worthless"
    );
    assert_eq!(authorize_after.status(), 400);
    assert_eq!(authorize_doc["error"], "invalid_client");
    assert_eq!(authorize_doc["reason"], "unknown");
}

#[actix_web::test]
async fn management_requires_the_clients_own_registration_token() {
    let app = TestApp::spawn().await;
    let a = app
        .register(json!({"redirect_uris": ["http://127.0.0.1/a-cb"]}))
        .await;
    let b = app
        .register(json!({"redirect_uris": ["https://b.example.com/cb"]}))
        .await;
    let uri = a["registration_client_uri"].as_str().expect("uri");
    let b_token = format!(
        "Bearer {}",
        b["registration_access_token"].as_str().expect("token")
    );
    let a_secret = format!("Bearer {}", a["client_secret"].as_str().expect("secret"));
    let client = app.client();

    let none = client.get(uri).send().await.expect("GET");
    let wrong = client
        .get(uri)
        .insert_header(("authorization", "Bearer not-a-token"))
        .send()
        .await
        .expect("GET");
    let other = client
        .get(uri)
        .insert_header(("authorization", b_token.as_str()))
        .send()
        .await
        .expect("GET");
    let secret_instead = client
        .get(uri)
        .insert_header(("authorization", a_secret.as_str()))
        .send()
        .await
        .expect("GET");
    let put_other = client
        .put(uri)
        .insert_header(("authorization", b_token.as_str()))
        .send_json(
            &json!({"client_id": a["client_id"], "redirect_uris": ["https://evil.example/cb"]}),
        )
        .await
        .expect("PUT");
    let delete_other = client
        .delete(uri)
        .insert_header(("authorization", b_token.as_str()))
        .send()
        .await
        .expect("DELETE");
    let unknown = client
        .get(app.url("/register/no-such-client"))
        .insert_header(("authorization", b_token.as_str()))
        .send()
        .await
        .expect("GET");
    let still_there = app
        .get(&format!(
            "/authorize?client_id={}&response_type=token",
            a["client_id"].as_str().expect("id")
        ))
        .send()
        .await
        .expect("GET");

    for (name, res) in [
        ("no token", &none),
        ("wrong", &wrong),
        ("other client's", &other),
        ("client secret", &secret_instead),
        ("PUT", &put_other),
        ("DELETE", &delete_other),
        ("unknown client", &unknown),
    ] {
        assert_eq!(res.status(), 401, "{name}");
        assert!(
            header(res, "www-authenticate").starts_with("Bearer"),
            "{name}"
        );
    }
    assert_eq!(
        still_there.status(),
        302,
        "neither PUT nor DELETE with the wrong token changed the client"
    );
    assert!(header(&still_there, "location").starts_with("http://127.0.0.1/a-cb?"));
}

#[actix_web::test]
async fn update_must_name_the_same_client_and_is_validated() {
    let app = TestApp::spawn().await;
    let created = app
        .register(json!({"redirect_uris": ["https://app.example.com/cb"]}))
        .await;
    let uri = created["registration_client_uri"].as_str().expect("uri");
    let bearer = format!(
        "Bearer {}",
        created["registration_access_token"]
            .as_str()
            .expect("token")
    );
    let client = app.client();

    let mut other_id = client
        .put(uri)
        .insert_header(("authorization", bearer.as_str()))
        .send_json(
            &json!({"client_id": "someone-else", "redirect_uris": ["https://app.example.com/cb"]}),
        )
        .await
        .expect("PUT");
    let other_doc = json(&mut other_id).await;
    let mut bad_uri = client
        .put(uri)
        .insert_header(("authorization", bearer.as_str()))
        .send_json(
            &json!({"client_id": created["client_id"], "redirect_uris": ["javascript:alert(1)"]}),
        )
        .await
        .expect("PUT");
    let bad_doc = json(&mut bad_uri).await;

    assert_eq!(other_id.status(), 400);
    assert_eq!(other_doc["error"], "invalid_client_metadata");
    assert_eq!(bad_uri.status(), 400);
    assert_eq!(bad_doc["error"], "invalid_redirect_uri");
}

#[actix_web::test]
async fn form_registration_shows_the_client_id_and_a_retry_link() {
    let app = TestApp::spawn().await;
    let failed = failed_authorization(&app).await;

    let (status, headers, page) = post_form(
        &app,
        Some(&failed.cookie),
        &[
            ("client_name", "My <Tool>"),
            (
                "redirect_uris",
                "http://127.0.0.1/callback\r\nhttps://app.example.com/cb",
            ),
            ("client_type", "public"),
            ("scope", "mcp"),
            ("csrf_token", &failed.csrf),
            ("retry", &failed.retry),
        ],
    )
    .await;

    assert_eq!(status, 201, "{page}");
    assert!(
        headers.get("content-security-policy").is_some(),
        "an HTML page with its headers"
    );
    assert!(page.contains("My &lt;Tool&gt;"), "the name, escaped");
    let client_id =
        element_text(&page, "<code class=\"client-id\">").expect("client_id on the page");
    assert!(client_id.len() >= 22, "{client_id}");
    assert!(
        !page.contains("Client secret"),
        "a public client gets no secret"
    );
    let marker = "class=\"button primary\" href=\"";
    let start = page.find(marker).expect("retry link") + marker.len();
    let link = unescape(&page[start..start + page[start..].find('"').expect("end of href")]);
    let link = Url::parse(&link).expect("absolute retry link");
    assert_eq!(
        link.as_str().split('?').next(),
        Some(format!("{}/authorize", app.issuer).as_str())
    );
    let mut retried: Vec<(String, String)> = link.query_pairs().into_owned().collect();
    let mut original: Vec<(String, String)> = url::form_urlencoded::parse(failed.query.as_bytes())
        .into_owned()
        .collect();
    original.retain(|(k, _)| k != "client_id");
    original.push(("client_id".into(), client_id.clone()));
    retried.sort();
    original.sort();
    assert_eq!(
        retried, original,
        "the failed authorization with the new client_id"
    );

    let retry = app
        .client()
        .get(link.as_str())
        .send()
        .await
        .expect("GET retry link");
    assert_ne!(
        retry.status(),
        400,
        "the retried authorization finds the new client"
    );
    assert!(
        !header(&retry, "location").contains("error="),
        "{}",
        header(&retry, "location")
    );
}

#[actix_web::test]
async fn form_registration_of_a_confidential_client_shows_the_secret_once() {
    let app = TestApp::spawn().await;
    let failed = failed_authorization(&app).await;

    let (status, _, page) = post_form(
        &app,
        Some(&failed.cookie),
        &[
            ("client_name", "Server app"),
            ("redirect_uris", "https://app.example.com/cb"),
            ("client_type", "confidential"),
            ("scope", ""),
            ("csrf_token", &failed.csrf),
        ],
    )
    .await;

    assert_eq!(status, 201, "{page}");
    assert!(page.contains("Client secret"), "{page}");
    let secret = element_text(&page, "<code class=\"secret\">").expect("secret shown");
    assert!(secret.len() >= 32, "{secret}");
    assert!(
        !page.contains("Retry the sign-in"),
        "no retry link without a failed authorization"
    );
}

#[actix_web::test]
async fn form_error_shows_the_form_again_with_the_message_and_the_values() {
    let app = TestApp::spawn().await;
    let failed = failed_authorization(&app).await;

    let (status, headers, page) = post_form(
        &app,
        Some(&failed.cookie),
        &[
            ("client_name", "Kept <name>"),
            ("redirect_uris", "http://evil.example/callback"),
            ("client_type", "confidential"),
            ("scope", "mcp"),
            ("csrf_token", &failed.csrf),
            ("retry", &failed.retry),
        ],
    )
    .await;

    assert_eq!(status, 400);
    assert!(headers.get("content-security-policy").is_some());
    assert!(page.contains("<form"), "the form again");
    assert!(
        page.contains("id=\"redirect_uris_error\""),
        "the message next to the field"
    );
    assert!(
        page.contains("http on a host that is not loopback"),
        "the message says what is wrong"
    );
    assert!(
        page.contains("value=\"Kept &lt;name&gt;\""),
        "client_name kept, escaped"
    );
    assert!(
        page.contains(">http://evil.example/callback</textarea>"),
        "redirect URIs kept"
    );
    assert!(
        page.contains("value=\"confidential\" checked"),
        "client type kept"
    );
    assert_eq!(
        input_value(&page, "retry").as_deref(),
        Some(failed.retry.as_str()),
        "the retry survives the error"
    );
    let csrf = input_value(&page, "csrf_token").expect("a new CSRF token");
    let header_cookie = headers
        .get_all("set-cookie")
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("doorman_csrf="))
        .expect("a new CSRF cookie");
    assert!(
        header_cookie.starts_with(&format!("doorman_csrf={csrf};")),
        "cookie and field agree"
    );
}

#[actix_web::test]
async fn form_without_a_valid_csrf_token_is_refused_with_403() {
    let app = TestApp::spawn().await;
    let failed = failed_authorization(&app).await;
    let fields = |csrf: &str| -> Fields {
        vec![
            ("client_name", "Kept".into()),
            ("redirect_uris", "https://app.example.com/cb".into()),
            ("client_type", "public".into()),
            ("csrf_token", csrf.into()),
        ]
    };
    let mut no_field = fields(&failed.csrf);
    no_field.pop();
    let cases: Vec<(&str, Option<String>, Fields)> = vec![
        ("no cookie", None, fields(&failed.csrf)),
        ("wrong cookie", Some("forged".into()), fields(&failed.csrf)),
        ("no field", Some(failed.cookie.clone()), no_field),
        ("wrong field", Some(failed.cookie.clone()), fields("forged")),
    ];

    for (name, cookie, fields) in cases {
        let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, _, page) = post_form(&app, cookie.as_deref(), &pairs).await;

        assert_eq!(status, 403, "{name}");
        assert!(page.contains("<form"), "{name}: the form again");
        assert!(page.contains("value=\"Kept\""), "{name}: values kept");
        assert!(!page.contains("client-id\">"), "{name}: no client created");
    }
}

#[actix_web::test]
async fn register_page_in_a_browser_shows_the_form() {
    let app = TestApp::spawn().await;

    let mut res = app
        .get("/register")
        .insert_header(("accept", CHROME_ACCEPT))
        .send()
        .await
        .expect("GET");
    let cookie = set_cookie(&res, "doorman_csrf");
    let page = text(&mut res).await;

    assert_eq!(res.status(), 200);
    assert!(page.contains("<form"));
    assert_eq!(
        cookie,
        input_value(&page, "csrf_token"),
        "cookie and field carry the same token"
    );
    assert!(header(&res, "content-security-policy").contains("form-action 'self'"));
}

#[actix_web::test]
async fn form_needs_the_initial_access_token_when_configured() {
    let app = TestApp::with(&[("registration.initial_access_token", "let-me-in-0123456789")]).await;
    let failed = failed_authorization(&app).await;
    let base = [
        ("redirect_uris", "https://app.example.com/cb"),
        ("client_type", "public"),
        ("csrf_token", failed.csrf.as_str()),
    ];

    let (without, _, page) = post_form(&app, Some(&failed.cookie), &base).await;
    let mut with = base.to_vec();
    with.push(("initial_access_token", "let-me-in-0123456789"));
    let (status, _, _) = post_form(&app, Some(&failed.cookie), &with).await;

    assert_eq!(without, 401);
    assert!(
        page.contains("name=\"initial_access_token\""),
        "the form asks for it"
    );
    assert_eq!(status, 201);
}

#[actix_web::test]
async fn json_content_type_with_parameters_is_accepted() {
    let app = TestApp::spawn().await;

    let res = app
        .post("/register")
        .insert_header(("content-type", "Application/JSON; charset=utf-8"))
        .send_body(r#"{"redirect_uris":["https://app.example.com/cb"]}"#)
        .await
        .expect("POST");

    assert_eq!(res.status(), 201);
}

#[actix_web::test]
async fn rate_limited_answer_is_readable_cross_origin() {
    let app = TestApp::with(&[
        ("rate_limit.enabled", "true"),
        ("rate_limit.register_burst", "1"),
        ("rate_limit.register_period_ms", "60000"),
    ])
    .await;
    let body = json!({"redirect_uris": ["http://localhost:6274/oauth/callback"], "token_endpoint_auth_method": "none"});

    let first = app
        .post("/register")
        .insert_header(("origin", "http://localhost:6274"))
        .send_json(&body)
        .await
        .expect("POST");
    let limited = app
        .post("/register")
        .insert_header(("origin", "http://localhost:6274"))
        .send_json(&body)
        .await
        .expect("POST");

    assert_eq!(first.status(), 201);
    assert_eq!(limited.status(), 429);
    assert_eq!(
        header(&limited, "access-control-allow-origin"),
        "*",
        "a browser client must be able to read the 429"
    );
    assert!(header(&limited, "access-control-expose-headers").contains("Retry-After"));
}

#[actix_web::test]
async fn update_to_confidential_returns_a_new_secret_once_and_reads_never_do() {
    let app = TestApp::spawn().await;
    let created = app.register(json!({"redirect_uris": ["https://app.example.com/cb"], "token_endpoint_auth_method": "none"})).await;
    let uri = created["registration_client_uri"].as_str().expect("uri");
    let bearer = format!(
        "Bearer {}",
        created["registration_access_token"]
            .as_str()
            .expect("token")
    );
    let client = app.client();

    let mut updated = client
        .put(uri)
        .insert_header(("authorization", bearer.as_str()))
        .send_json(&json!({"client_id": created["client_id"], "redirect_uris": ["https://app.example.com/cb"], "token_endpoint_auth_method": "client_secret_basic"}))
        .await
        .expect("PUT");
    let updated_doc = json(&mut updated).await;
    let renewed = format!(
        "Bearer {}",
        updated_doc["registration_access_token"]
            .as_str()
            .expect("a new registration access token")
    );
    let mut read = client
        .get(uri)
        .insert_header(("authorization", renewed.as_str()))
        .send()
        .await
        .expect("GET");
    let read_doc = json(&mut read).await;

    assert_eq!(updated.status(), 200, "{updated_doc}");
    assert!(
        updated_doc["client_secret"]
            .as_str()
            .is_some_and(|s| s.len() >= 32),
        "{updated_doc}"
    );
    assert_eq!(read.status(), 200);
    assert_eq!(
        read_doc["token_endpoint_auth_method"],
        "client_secret_basic"
    );
    assert!(
        read_doc.get("client_secret").is_none(),
        "secrets are kept hashed, never returned again: {read_doc}"
    );
}
