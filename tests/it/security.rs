//! The security review's findings (docs/behaviour.md §11, docs/security.md), each as the attack
//! it describes: every test here performs it and expects it to fail.
#![allow(clippy::expect_used, clippy::unwrap_used)] // in tests, a failed expectation is a failed test

use std::time::Duration;

use doorman::admin::NewClient;
use serde_json::{Value, json};

use doorman::store::Backend as _;

use crate::flow::{
    Auth, Client, PASSWORD, REDIRECT, Reply, assert_oauth_error, authorize_and_approve,
    authorize_path, call_as, client_from, decide, dev_app, enc, exchange, field, introspect,
    open_authorize, password_app, public_client, refresh, resource_server, revoke, send, send_form,
    submit_sign_in, token, tokens,
};
use crate::support::{CHALLENGE, CHROME_ACCEPT, DoormanProcess, TestApp, json};

async fn operator_client(app: &TestApp, new: NewClient) -> Client {
    let created = app.operator_client(new).await;
    Client {
        id: created.client.client_id,
        secret: created.client_secret,
    }
}

// --- 1. anonymous token minting ---------------------------------------------------------------

#[actix_web::test]
async fn open_registration_cannot_get_client_credentials() {
    let app = TestApp::spawn().await;

    let mut res = app
        .post("/register")
        .send_json(&json!({"grant_types": ["client_credentials"], "client_name": "minter"}))
        .await
        .expect("POST /register");
    let doc = json(&mut res).await;

    assert_eq!(res.status(), 400, "{doc}");
    assert_eq!(doc["error"], "invalid_client_metadata");
    assert!(
        doc["error_description"]
            .as_str()
            .unwrap()
            .contains("only for clients the operator registers"),
        "{doc}"
    );
}

#[actix_web::test]
async fn a_self_registered_client_holding_the_grant_still_gets_no_token() {
    // A record written before the rule (or while the setting allowed it): the grant alone is
    // not enough at /token.
    let app = TestApp::spawn().await;
    let client = client_from(
        &app,
        json!({"redirect_uris": [REDIRECT], "client_name": "old"}),
    )
    .await;
    let mut record = app.store.client(&client.id).await.unwrap().unwrap();
    record
        .metadata
        .grant_types
        .push("client_credentials".into());
    app.store.put_client(&record, None).await.unwrap();

    let refused = token(&app, &client, &[("grant_type", "client_credentials")]).await;

    assert_oauth_error(&refused, 400, "unauthorized_client");
}

#[actix_web::test]
async fn a_setting_may_open_client_credentials_to_self_registered_clients() {
    let app = TestApp::with(&[("registration.allow_client_credentials", "true")]).await;
    let client = client_from(
        &app,
        json!({"grant_types": ["client_credentials"], "client_name": "allowed"}),
    )
    .await;

    let minted = token(&app, &client, &[("grant_type", "client_credentials")]).await;

    assert_eq!(minted.status, 200, "{}", minted.body);
}

#[actix_web::test]
async fn the_operators_clients_use_client_credentials() {
    let app = TestApp::spawn().await;
    let server = resource_server(&app).await;

    let res = token(&app, &server, &[("grant_type", "client_credentials")]).await;

    assert_eq!(res.status, 200, "{}", res.body);
    assert!(res.json()["refresh_token"].is_null());
}

#[actix_web::test]
async fn registration_with_the_initial_access_token_is_the_operators() {
    let app =
        TestApp::with(&[("registration.initial_access_token", "operator-secret-token")]).await;

    let mut res = app
        .post("/register")
        .insert_header(("authorization", "Bearer operator-secret-token"))
        .send_json(&json!({"grant_types": ["client_credentials"], "client_name": "batch job"}))
        .await
        .expect("POST /register");
    let doc = json(&mut res).await;
    let client = Client {
        id: doc["client_id"].as_str().unwrap().to_owned(),
        secret: doc["client_secret"].as_str().map(str::to_owned),
    };
    let minted = token(&app, &client, &[("grant_type", "client_credentials")]).await;

    assert_eq!(res.status(), 201, "{doc}");
    assert_eq!(minted.status, 200, "{}", minted.body);
}

// --- 2. bounded sign-in ------------------------------------------------------------------------

/// A sign-in page for a fresh request of `client`.
async fn sign_in_page(app: &TestApp, client: &Client) -> Reply {
    let page = open_authorize(app, None, &client.id, "").await;
    assert!(page.is_sign_in_page(), "{}", page.body);
    page
}

#[actix_web::test]
async fn sign_in_is_rate_limited_per_address_with_retry_after() {
    let app = password_app(&[
        ("rate_limit.enabled", "true"),
        ("rate_limit.login_burst", "3"),
        ("rate_limit.login_user_burst", "100"),
    ])
    .await;
    let client = public_client(&app).await;
    let mut statuses = Vec::new();
    let mut last = None;

    for _ in 0..5 {
        let page = sign_in_page(&app, &client).await;
        let res = submit_sign_in(&app, &page, "wrong").await;
        statuses.push(res.status);
        last = Some(res);
    }

    let last = last.unwrap();
    assert_eq!(statuses, vec![401, 401, 401, 429, 429]);
    assert!(last.header("retry-after").parse::<u64>().unwrap() >= 1);
    assert!(
        last.body.contains("Too many sign-in attempts"),
        "a page: {}",
        last.body
    );
}

#[actix_web::test]
async fn sign_in_is_rate_limited_per_username_whatever_the_address() {
    let app = password_app(&[
        ("rate_limit.enabled", "true"),
        ("rate_limit.login_burst", "100"),
        ("rate_limit.login_user_burst", "2"),
    ])
    .await;
    let client = public_client(&app).await;
    let mut statuses = Vec::new();

    for _ in 0..3 {
        let page = sign_in_page(&app, &client).await;
        statuses.push(submit_sign_in(&app, &page, "wrong").await.status);
    }
    let page = sign_in_page(&app, &client).await;
    let even_right = submit_sign_in(&app, &page, PASSWORD).await;

    assert_eq!(statuses, vec![401, 401, 429]);
    assert_eq!(
        even_right.status, 429,
        "the username waits, right password or not"
    );
}

#[actix_web::test]
async fn a_sign_in_request_dies_after_max_failures_wrong_passwords() {
    let app = password_app(&[("login.max_failures", "3")]).await;
    let client = public_client(&app).await;
    let page = sign_in_page(&app, &client).await;

    let tries: Vec<u16> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(submit_sign_in(&app, &page, "wrong").await.status);
        }
        v
    };
    let right_too_late = submit_sign_in(&app, &page, PASSWORD).await;

    assert_eq!(
        tries,
        vec![401, 401, 403],
        "the third failure ends the request"
    );
    assert_eq!(right_too_late.status, 400, "{}", right_too_late.body);
    assert!(right_too_late.body.contains("expired or was already used"));
}

/// The resident memory of a process, in KiB: now (`VmRSS`) and its peak (`VmHWM`).
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("a memory figure")
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// 96 sign-ins at once for an unknown user, each an argon2 check of ~19 MiB: at most
/// `login.password_checks` run at once, so the process stays within tens of MB (it took 5.6 GB
/// before the checks were bounded). Rate limits are off, so the bound is what is measured.
#[actix_web::test]
async fn a_sign_in_flood_keeps_resident_memory_bounded() {
    let doorman = DoormanProcess::start(&[("login.password_checks", "2")]);
    let http = awc::Client::builder()
        .timeout(Duration::from_secs(120))
        .disable_redirects()
        .finish();
    let mut reg = http
        .post(doorman.url("/register"))
        .send_json(&json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}))
        .await
        .expect("register");
    let client_id = json(&mut reg).await["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut pages = Vec::new();
    for _ in 0..96 {
        let mut res = http
            .get(doorman.url(&authorize_path(&client_id, "")))
            .insert_header(("accept", CHROME_ACCEPT))
            .send()
            .await
            .expect("authorize");
        pages.push(crate::flow::read(&mut res).await);
    }
    let (before, _) = memory_kib(doorman.pid());

    let attempts = pages.iter().map(|page| {
        let mut req = http.post(doorman.url("/login"));
        if let Some(c) = page.cookies() {
            req = req.insert_header(("cookie", c));
        }
        let form = [
            ("request", page.field("request")),
            ("csrf_token", page.field("csrf_token")),
            ("username", "nobody".to_owned()),
            ("password", "guess".to_owned()),
        ];
        async move { req.send_form(&form).await.map(|r| r.status().as_u16()) }
    });
    let statuses = futures_util::future::join_all(attempts).await;
    let (after, peak) = memory_kib(doorman.pid());
    eprintln!(
        "sign-in flood: 96 at once; resident {before} KiB before, {after} KiB after, peak {peak} KiB"
    );

    assert!(
        statuses.iter().all(|s| matches!(s, Ok(401) | Ok(503))),
        "every attempt refused or asked to retry: {statuses:?}"
    );
    assert!(
        statuses.iter().filter(|s| matches!(s, Ok(401))).count() >= 32,
        "most were checked: {statuses:?}"
    );
    assert!(peak < 100 * 1024, "peak resident memory {peak} KiB");
}

// --- 3. no open redirect through self-registered clients ---------------------------------------

#[actix_web::test]
async fn a_self_registered_https_client_gets_an_error_page_not_a_redirect() {
    let app = TestApp::spawn().await;
    let evil = client_from(
        &app,
        json!({"redirect_uris": ["https://evil.example/landing"], "token_endpoint_auth_method": "none"}),
    )
    .await;
    let path = format!(
        "/authorize?client_id={}&response_type=token&state=x",
        evil.id
    );

    let page = send(app.get(&path).insert_header(("accept", CHROME_ACCEPT))).await;
    let api = send(app.get(&path)).await;

    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.header("location").is_empty(), "never redirected");
    assert!(
        page.body.contains("Return to evil.example"),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains("href=\"https://evil.example/landing?error=unsupported_response_type"),
        "the link carries the error: {}",
        page.body
    );
    assert_eq!(api.status, 400);
    assert!(api.header("location").is_empty());
    assert_eq!(api.json()["error"], "unsupported_response_type");
}

#[actix_web::test]
async fn native_and_operator_clients_keep_the_error_redirect() {
    let app = TestApp::spawn().await;
    let native = public_client(&app).await;
    let trusted = operator_client(
        &app,
        NewClient {
            name: "Operator's web app".into(),
            redirect_uris: vec!["https://app.example/cb".into()],
            ..Default::default()
        },
    )
    .await;

    let loopback = send(app.get(&format!(
        "/authorize?client_id={}&response_type=token",
        native.id
    )))
    .await;
    let web = send(app.get(&format!(
        "/authorize?client_id={}&response_type=token",
        trusted.id
    )))
    .await;

    assert_eq!(loopback.status, 302);
    assert!(loopback.header("location").starts_with(REDIRECT));
    assert_eq!(web.status, 302);
    assert!(
        web.header("location")
            .starts_with("https://app.example/cb?error=")
    );
}

#[actix_web::test]
async fn after_sign_in_a_deny_redirects_even_a_self_registered_https_client() {
    let app = dev_app(&[]).await;
    let web = client_from(
        &app,
        json!({"redirect_uris": ["https://app.example/cb"], "token_endpoint_auth_method": "none"}),
    )
    .await;
    let page = send(
        app.get(&format!(
            "/authorize?response_type=code&client_id={}&code_challenge={CHALLENGE}",
            web.id
        ))
        .insert_header(("accept", CHROME_ACCEPT)),
    )
    .await;

    let denied = decide(&app, page.cookies().as_deref(), &page, "deny").await;

    assert_eq!(denied.status, 303, "{}", denied.body);
    assert!(
        denied
            .header("location")
            .starts_with("https://app.example/cb?error=access_denied")
    );
}

// --- 4. remembered consent only for the exact redirect URI --------------------------------------

#[actix_web::test]
async fn remembered_consent_does_not_cover_another_loopback_port() {
    let app = password_app(&[]).await;
    let client = public_client(&app).await;
    let (_, cookie) = crate::flow::approve_in(&app, None, &client.id, "").await;
    let other_port = format!(
        "/authorize?response_type=code&client_id={}&redirect_uri={}&code_challenge={CHALLENGE}",
        client.id,
        enc("http://127.0.0.1:6666/cb")
    );

    let same = open_authorize(&app, Some(&cookie), &client.id, "").await;
    let other = send(
        app.get(&other_port)
            .insert_header(("accept", CHROME_ACCEPT))
            .insert_header(("cookie", cookie.as_str())),
    )
    .await;

    assert_eq!(same.status, 302, "the approved URI: remembered");
    assert_eq!(
        other.status, 200,
        "another port: asked again: {}",
        other.body
    );
    assert!(other.is_consent_page());
    assert!(other.header("location").is_empty());
}

// --- 5. a client's registered scope bounds what it gets ----------------------------------------

#[actix_web::test]
async fn a_clients_registered_scope_bounds_authorize_refresh_and_client_credentials() {
    let app = password_app(&[("scopes.supported", "mcp,files,offline_access")]).await;
    let client = client_from(
        &app,
        json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none", "scope": "mcp"}),
    )
    .await;
    let operator = operator_client(
        &app,
        NewClient {
            name: "batch".into(),
            resource_server: true,
            scope: Some("mcp".into()),
            ..Default::default()
        },
    )
    .await;

    let issued = tokens(&app, &client, "&scope=mcp%20files%20offline_access").await;
    let wider = refresh(
        &app,
        &client,
        field(&issued, "refresh_token"),
        Some("mcp files"),
    )
    .await;
    let cc = token(
        &app,
        &operator,
        &[("grant_type", "client_credentials"), ("scope", "mcp files")],
    )
    .await;

    assert_eq!(issued["scope"], "mcp", "{issued}");
    assert_oauth_error(&wider, 400, "invalid_scope");
    assert_eq!(cc.json()["scope"], "mcp", "{}", cc.body);
}

// --- 6. login CSRF -------------------------------------------------------------------------------

#[actix_web::test]
async fn a_sign_in_form_posted_without_the_starting_browser_is_refused() {
    // The attacker starts a request in their own browser and makes the victim's browser post
    // the form: the victim's browser has no binding cookie for it.
    let app = password_app(&[]).await;
    let client = public_client(&app).await;
    let attacker = sign_in_page(&app, &client).await;
    let form = [
        ("request", attacker.field("request")),
        ("csrf_token", attacker.field("csrf_token")),
        ("username", "alice".to_owned()),
        ("password", PASSWORD.to_owned()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let victim = send_form(app.post("/login"), &form).await;

    assert_eq!(victim.status, 403, "{}", victim.body);
    assert!(victim.session_cookie().is_none(), "no session started");
    assert!(victim.body.contains("started in another browser"));
}

#[actix_web::test]
async fn cross_site_form_posts_are_refused() {
    let app = password_app(&[]).await;
    let client = public_client(&app).await;
    let page = sign_in_page(&app, &client).await;
    let cookies = page.cookies().unwrap();
    let form = [
        ("request", page.field("request")),
        ("csrf_token", page.field("csrf_token")),
        ("username", "alice".to_owned()),
        ("password", PASSWORD.to_owned()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let cross_site = send_form(
        app.post("/login")
            .insert_header(("cookie", cookies.as_str()))
            .insert_header(("sec-fetch-site", "cross-site")),
        &form,
    )
    .await;
    let other_origin = send_form(
        app.post("/login")
            .insert_header(("cookie", cookies.as_str()))
            .insert_header(("origin", "https://evil.example")),
        &form,
    )
    .await;
    let ours = send_form(
        app.post("/login")
            .insert_header(("cookie", cookies.as_str()))
            .insert_header(("sec-fetch-site", "same-origin"))
            .insert_header(("origin", "null")),
        &form,
    )
    .await;

    assert_eq!(cross_site.status, 403, "{}", cross_site.body);
    assert_eq!(other_origin.status, 403, "{}", other_origin.body);
    assert_eq!(ours.status, 303, "our own page's form: {}", ours.body);
}

#[actix_web::test]
async fn a_consent_form_posted_cross_site_is_refused() {
    let app = dev_app(&[]).await;
    let client = public_client(&app).await;
    let page = open_authorize(&app, None, &client.id, "").await;
    let cookies = page.cookies().unwrap();

    let res = send_form(
        app.post("/consent")
            .insert_header(("cookie", cookies.as_str()))
            .insert_header(("sec-fetch-site", "cross-site")),
        &[
            ("request", &page.field("request")),
            ("csrf_token", &page.field("csrf_token")),
            ("decision", "approve"),
        ],
    )
    .await;

    assert_eq!(res.status, 403, "{}", res.body);
    assert!(res.header("location").is_empty(), "no code");
}

// --- 7. dev sign-in only on loopback -----------------------------------------------------------

#[test]
fn dev_sign_in_is_refused_on_a_public_bind_address() {
    let settings = |bind: &str| {
        let mut env = std::collections::HashMap::new();
        env.insert("DOORMAN__LOGIN__MODE".to_owned(), "dev".to_owned());
        env.insert("DOORMAN__SERVER__BIND".to_owned(), bind.to_owned());
        doorman::settings::Settings::load(None, Some(env))
    };

    let public = settings("0.0.0.0:8080").expect_err("refused");

    assert!(public.to_string().contains("login.mode"), "{public}");
    assert!(settings("127.0.0.1:8080").is_ok());
    assert!(settings("[::1]:8080").is_ok());
}

// --- 8. deleting a client revokes what it holds -------------------------------------------------

#[actix_web::test]
async fn a_deleted_clients_tokens_are_inactive_and_it_is_an_invalid_client() {
    let app = password_app(&[]).await;
    let doc = app
        .register(json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}))
        .await;
    let client = Client {
        id: doc["client_id"].as_str().unwrap().to_owned(),
        secret: None,
    };
    let server = resource_server(&app).await;
    let issued = tokens(&app, &client, "").await;

    let deleted = send(
        app.client()
            .delete(doc["registration_client_uri"].as_str().unwrap())
            .insert_header((
                "authorization",
                format!(
                    "Bearer {}",
                    doc["registration_access_token"].as_str().unwrap()
                ),
            )),
    )
    .await;
    let access = introspect(&app, &server, field(&issued, "access_token")).await;
    let refreshed = refresh(&app, &client, field(&issued, "refresh_token"), None).await;

    assert_eq!(deleted.status, 204);
    assert_eq!(access, json!({"active": false}));
    assert_oauth_error(&refreshed, 401, "invalid_client");
}

// --- 9. only the owner's replay revokes --------------------------------------------------------

#[actix_web::test]
async fn another_clients_replay_of_a_used_code_does_not_revoke_the_victims_tokens() {
    let app = password_app(&[]).await;
    let victim = public_client(&app).await;
    let attacker = public_client(&app).await;
    let server = resource_server(&app).await;
    let code = authorize_and_approve(&app, &victim.id, "").await;
    let issued = exchange(&app, &victim, &code).await.json();

    let replay = exchange(&app, &attacker, &code).await;
    let still = introspect(&app, &server, field(&issued, "access_token")).await;

    assert_oauth_error(&replay, 400, "invalid_grant");
    assert_eq!(still["active"], true, "the victim keeps its tokens");
}

#[actix_web::test]
async fn another_clients_reuse_of_a_rotated_refresh_token_does_not_revoke_the_family() {
    let app = password_app(&[("tokens.refresh_grace", "0")]).await;
    let victim = public_client(&app).await;
    let attacker = public_client(&app).await;
    let issued = tokens(&app, &victim, "").await;
    let first = field(&issued, "refresh_token").to_owned();
    let rotated = refresh(&app, &victim, &first, None).await.json();

    let replay = refresh(&app, &attacker, &first, None).await;
    let next = refresh(&app, &victim, field(&rotated, "refresh_token"), None).await;

    assert_oauth_error(&replay, 400, "invalid_grant");
    assert_eq!(next.status, 200, "the family lives: {}", next.body);
}

// --- 10. concurrent refreshes do not log the person out ------------------------------------------

#[actix_web::test]
async fn eight_parallel_refreshes_all_get_working_tokens_of_one_family() {
    let app = password_app(&[]).await;
    let client = public_client(&app).await;
    let server = resource_server(&app).await;
    let issued = tokens(&app, &client, "").await;
    let old = field(&issued, "refresh_token").to_owned();

    let answers =
        futures_util::future::join_all((0..8).map(|_| refresh(&app, &client, &old, None))).await;

    for a in &answers {
        assert_eq!(a.status, 200, "{}", a.body);
    }
    for a in &answers {
        let doc = a.json();
        let access = introspect(&app, &server, field(&doc, "access_token")).await;
        let next = refresh(&app, &client, field(&doc, "refresh_token"), None).await;
        assert_eq!(access["active"], true, "{doc}");
        assert_eq!(
            next.status, 200,
            "every new refresh token works: {}",
            next.body
        );
    }
}

#[actix_web::test]
async fn reuse_after_the_grace_period_still_revokes_the_family() {
    let app = password_app(&[("tokens.refresh_grace", "30")]).await;
    let client = public_client(&app).await;
    let issued = tokens(&app, &client, "").await;
    let old = field(&issued, "refresh_token").to_owned();
    let rotated = refresh(&app, &client, &old, None).await.json();
    let retried = refresh(&app, &client, &old, None).await;
    app.clock.advance(31);

    let late = refresh(&app, &client, &old, None).await;
    let next = refresh(&app, &client, field(&rotated, "refresh_token"), None).await;

    assert_eq!(
        retried.status, 200,
        "within the grace period: {}",
        retried.body
    );
    assert_oauth_error(&late, 400, "invalid_grant");
    assert_oauth_error(&next, 400, "invalid_grant");
}

// --- 11. introspection and metrics ------------------------------------------------------------

#[actix_web::test]
async fn a_self_registered_confidential_client_cannot_introspect() {
    let app = password_app(&[]).await;
    let client = public_client(&app).await;
    let stranger = client_from(
        &app,
        json!({"redirect_uris": [REDIRECT], "client_name": "curious"}),
    )
    .await;
    let issued = tokens(&app, &client, "").await;

    let res = call_as(
        &app,
        "/introspect",
        &stranger,
        Auth::Basic,
        &[("token", field(&issued, "access_token"))],
    )
    .await;

    assert_oauth_error(&res, 403, "unauthorized_client");
    assert!(
        !res.body.contains("alice"),
        "nothing about the token: {}",
        res.body
    );
}

#[actix_web::test]
async fn a_resource_server_sees_only_tokens_for_its_resources() {
    let app = password_app(&[]).await;
    let client = public_client(&app).await;
    let mine = operator_client(
        &app,
        NewClient {
            name: "files server".into(),
            resource_server: true,
            resources: vec!["https://files.example/mcp".into()],
            ..Default::default()
        },
    )
    .await;
    let for_mine = tokens(
        &app,
        &client,
        &format!("&resource={}", enc("https://files.example/mcp")),
    )
    .await;
    let for_other = tokens(
        &app,
        &client,
        &format!("&resource={}", enc("https://mail.example/mcp")),
    )
    .await;

    let seen = introspect(&app, &mine, field(&for_mine, "access_token")).await;
    let unseen = introspect(&app, &mine, field(&for_other, "access_token")).await;

    assert_eq!(seen["active"], true, "{seen}");
    assert_eq!(unseen, json!({"active": false}));
}

#[actix_web::test]
async fn metrics_are_not_public() {
    let closed = TestApp::spawn().await;
    let open = TestApp::with(&[("metrics.token", "scrape-token-0123456789")]).await;

    let hidden = send(closed.get("/metrics")).await;
    let anonymous = send(open.get("/metrics")).await;
    let scraper = send(
        open.get("/metrics")
            .insert_header(("authorization", "Bearer scrape-token-0123456789")),
    )
    .await;

    assert_eq!(hidden.status, 404);
    assert_eq!(anonymous.status, 401);
    assert_eq!(scraper.status, 200);
    assert!(scraper.body.contains("doorman_http_requests_total"));
}

// --- 12. names, RFC 7592 responses, revoking others' tokens -------------------------------------

#[actix_web::test]
async fn client_names_with_bidirectional_overrides_are_refused() {
    let app = TestApp::spawn().await;

    for name in ["Claude\u{202E}lmth.exe", "A\u{2066}B", "zero\u{200B}width"] {
        let mut res = app
            .post("/register")
            .send_json(&json!({"redirect_uris": [REDIRECT], "client_name": name}))
            .await
            .expect("POST");
        let doc = json(&mut res).await;

        assert_eq!(res.status(), 400, "{name:?}: {doc}");
        assert_eq!(doc["error"], "invalid_client_metadata");
    }
}

#[actix_web::test]
async fn rfc7592_reads_and_updates_return_a_new_registration_access_token() {
    let app = TestApp::spawn().await;
    let doc = app
        .register(json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}))
        .await;
    let uri = doc["registration_client_uri"].as_str().unwrap().to_owned();
    let first = doc["registration_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let read = |token: String| {
        let req = app
            .client()
            .get(&uri)
            .insert_header(("authorization", format!("Bearer {token}")));
        send(req)
    };

    let got = read(first.clone()).await;
    let second = field(&got.json(), "registration_access_token").to_owned();
    let with_old = read(first).await;
    let with_new = read(second).await;

    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(with_old.status, 401, "the old token is replaced");
    assert_eq!(with_new.status, 200);
}

#[actix_web::test]
async fn revoking_another_clients_token_is_refused_and_leaves_it_active() {
    let app = password_app(&[]).await;
    let owner = public_client(&app).await;
    let other = public_client(&app).await;
    let server = resource_server(&app).await;
    let issued = tokens(&app, &owner, "").await;

    let res = revoke(&app, &other, field(&issued, "access_token"), None).await;
    let still = introspect(&app, &server, field(&issued, "access_token")).await;

    assert_oauth_error(&res, 400, "unauthorized_client");
    assert_eq!(still["active"], true);
}

// --- 13. unbounded growth ----------------------------------------------------------------------

#[actix_web::test]
async fn a_registration_never_used_lapses_as_expired_and_a_used_one_stays() {
    let app = password_app(&[("registration.unused_ttl", "3600")]).await;
    let unused = public_client(&app).await;
    let used = public_client(&app).await;
    tokens(&app, &used, "").await;
    app.clock.advance(3601);

    let mut lapsed = app
        .get(&format!("/authorize?client_id={}", unused.id))
        .send()
        .await
        .expect("GET");
    let doc: Value = json(&mut lapsed).await;
    let kept = open_authorize(&app, None, &used.id, "").await;

    assert_eq!(lapsed.status(), 400);
    assert_eq!(doc["reason"], "expired", "{doc}");
    assert!(
        kept.is_sign_in_page(),
        "a used registration does not lapse: {}",
        kept.body
    );
}

#[actix_web::test]
async fn a_used_registration_lapses_when_idle_and_each_use_keeps_it() {
    let day = 86_400;
    let app = password_app(&[("registration.idle_ttl", "864000")]).await;
    let idle = public_client(&app).await;
    let active = public_client(&app).await;
    let idle_tokens = tokens(&app, &idle, "").await;
    let active_tokens = tokens(&app, &active, "").await;
    app.clock.advance(9 * day);
    let kept_alive = refresh(&app, &active, field(&active_tokens, "refresh_token"), None).await;
    app.clock.advance(2 * day);

    let mut lapsed = app
        .get(&format!("/authorize?client_id={}", idle.id))
        .send()
        .await
        .expect("GET");
    let doc: Value = json(&mut lapsed).await;
    let idle_refresh = refresh(&app, &idle, field(&idle_tokens, "refresh_token"), None).await;
    let active_refresh = refresh(
        &app,
        &active,
        field(&kept_alive.json(), "refresh_token"),
        None,
    )
    .await;

    assert_eq!(kept_alive.status, 200, "{}", kept_alive.body);
    assert_eq!(doc["reason"], "expired", "idle for 11 days: {doc}");
    assert_oauth_error(&idle_refresh, 401, "invalid_client");
    assert_eq!(
        active_refresh.status, 200,
        "refreshed 2 days ago: {}",
        active_refresh.body
    );
}

// --- 14. secrets in the store ------------------------------------------------------------------

#[test]
fn a_public_issuer_on_a_shared_store_needs_a_session_secret() {
    let settings = |secret: &str| {
        let mut env = std::collections::HashMap::new();
        env.insert(
            "DOORMAN__ISSUER".to_owned(),
            "https://auth.example.com".to_owned(),
        );
        env.insert("DOORMAN__STORAGE__BACKEND".to_owned(), "redis".to_owned());
        env.insert(
            "DOORMAN__LOGIN__SESSION_SECRET".to_owned(),
            secret.to_owned(),
        );
        // Where the token signing key lives must be chosen too (tests/it/jwt.rs).
        env.insert(
            "DOORMAN__TOKENS__SIGNING_KEY".to_owned(),
            "store".to_owned(),
        );
        doorman::settings::Settings::load(None, Some(env))
    };

    let missing = settings("").expect_err("refused");

    assert!(
        missing.to_string().contains("login.session_secret"),
        "{missing}"
    );
    assert!(settings("an-operator-chosen-secret-of-40-characters").is_ok());
}

#[actix_web::test]
async fn session_ids_are_stored_only_as_hashes() {
    let redis = crate::support::RedisServer::start();
    let app = TestApp::with(&[
        ("login.mode", "dev"),
        ("storage.backend", "redis"),
        ("storage.redis_url", &redis.url()),
    ])
    .await;
    let client = public_client(&app).await;
    let page = open_authorize(&app, None, &client.id, "").await;
    let cookie = page.session_cookie().expect("a session");
    let id = cookie
        .split_once('=')
        .and_then(|(_, v)| v.split_once('.'))
        .map(|(id, _)| id.to_owned())
        .expect("id.mac");

    let mut conn = redis::Client::open(redis.url())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    let keys = keys.join(" ");

    assert!(keys.contains("doorman:session:"), "{keys}");
    assert!(!keys.contains(&id), "the session id is not a key: {keys}");
    let request = page.field("request");
    assert!(
        !keys.contains(&request),
        "nor the pending request id: {keys}"
    );
}
