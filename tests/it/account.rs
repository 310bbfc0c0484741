//! The person's side (docs/behaviour.md §15): a consent page a person can judge, and the
//! account page with every application they allowed, Revoke and Sign out.
#![allow(clippy::expect_used, clippy::unwrap_used)] // in tests, a failed expectation is a failed test

use serde_json::Value;

use crate::flow::{
    Client, PASSWORD, Reply, USER, approve_in, assert_oauth_error, decide, dev_app, exchange,
    field, introspect, jar, open_authorize, password_app, password_app_for, public_client, refresh,
    resource_server, send, send_form, sign_in,
};
use crate::support::{CHROME_ACCEPT, RedisServer, TestApp};

/// The account page as the browser with `cookie` sees it.
async fn account(app: &TestApp, cookie: &str) -> Reply {
    send(
        app.get("/account")
            .insert_header(("accept", CHROME_ACCEPT))
            .insert_header(("cookie", cookie)),
    )
    .await
}

/// Posts one of the account page's forms with its CSRF token.
async fn account_form(
    app: &TestApp,
    cookie: &str,
    page: &Reply,
    path: &str,
    extra: &[(&str, &str)],
) -> Reply {
    let csrf = page.field("csrf_token");
    let mut form = vec![("csrf_token", csrf.as_str())];
    form.extend_from_slice(extra);
    send_form(app.post(path).insert_header(("cookie", cookie)), &form).await
}

/// Posts the account page's Revoke form for `client_id`.
async fn revoke(app: &TestApp, cookie: &str, page: &Reply, client_id: &str) -> Reply {
    account_form(
        app,
        cookie,
        page,
        "/account/revoke",
        &[("client_id", client_id)],
    )
    .await
}

/// Approves `client` for alice (signing in when asked) and redeems the code: her browser's
/// cookies and the tokens.
async fn connect(
    app: &TestApp,
    client: &Client,
    cookie: Option<String>,
    query: &str,
) -> (String, Value) {
    let (params, cookie) = approve_in(app, cookie, &client.id, query).await;
    let res = exchange(app, client, &params["code"]).await;
    assert_eq!(res.status, 200, "{}", res.body);
    (cookie, res.json())
}

/// Revoking an application on the account page ends every token of that grant — refresh
/// tokens, access tokens and a code issued but not yet redeemed — and forgets the approval,
/// while another application keeps working. On every backend.
#[actix_web::test]
async fn revoking_an_application_ends_every_token_of_its_grant_on_every_backend() {
    let backends = crate::support::EveryBackend::start();
    for overrides in backends.overrides() {
        let app = password_app(&overrides).await;
        let server = resource_server(&app).await;
        let files = public_client(&app).await;
        let mail = public_client(&app).await;
        let (cookie, f) = connect(&app, &files, None, "").await;
        let (cookie, m) = connect(&app, &mail, Some(cookie), "").await;
        let (pending_code, _) = approve_in(&app, Some(cookie.clone()), &files.id, "").await;

        let page = account(&app, &cookie).await;
        let revoked = revoke(&app, &cookie, &page, &files.id).await;
        let after = send(
            app.client()
                .get(revoked.header("location"))
                .insert_header(("cookie", cookie.as_str())),
        )
        .await;

        let name = format!("{overrides:?}");
        assert_eq!(page.status, 200, "{name}: {}", page.body);
        assert!(
            page.body.contains(&files.id) && page.body.contains(&mail.id),
            "{name}: both listed"
        );
        assert_eq!(revoked.status, 303, "{name}: {}", revoked.body);
        assert!(after.body.contains("was revoked"), "{name}: {}", after.body);
        assert!(
            !after.body.contains(&format!("value=\"{}\"", files.id)),
            "{name}: gone from the page"
        );
        assert_oauth_error(
            &refresh(&app, &files, field(&f, "refresh_token"), None).await,
            400,
            "invalid_grant",
        );
        assert_eq!(
            introspect(&app, &server, field(&f, "access_token")).await["active"],
            false,
            "{name}"
        );
        assert_oauth_error(
            &exchange(&app, &files, &pending_code["code"]).await,
            400,
            "invalid_grant",
        );
        assert_eq!(
            refresh(&app, &mail, field(&m, "refresh_token"), None)
                .await
                .status,
            200,
            "{name}: the other app works"
        );
        assert_eq!(
            introspect(&app, &server, field(&m, "access_token")).await["active"],
            true,
            "{name}"
        );
        let again = open_authorize(&app, Some(&cookie), &files.id, "").await;
        assert!(
            again.is_consent_page(),
            "{name}: the approval is forgotten: {}",
            again.body
        );
        assert!(again.body.contains("has not asked you before"), "{name}");
        app.stop().await;
    }
}

/// Two processes on one Redis: an application revoked on one is revoked for the other.
#[actix_web::test]
async fn a_revocation_on_one_process_holds_on_another() {
    let redis = RedisServer::start();
    let url = redis.url();
    let overrides = [
        ("storage.backend", "redis"),
        ("storage.redis_url", url.as_str()),
    ];
    let a = dev_app(&overrides).await;
    let mut with_b = overrides.to_vec();
    with_b.push(("login.mode", "dev"));
    let b = TestApp::with_issuer(&with_b, &a.issuer).await;
    let client = public_client(&a).await;
    let (cookie, issued) = connect(&a, &client, None, "").await;

    let page = account(&b, &cookie).await;
    let revoked = revoke(&b, &cookie, &page, &client.id).await;
    let refreshed_on_a = refresh(&a, &client, field(&issued, "refresh_token"), None).await;

    assert!(
        page.body.contains(&client.id),
        "B lists what was approved on A: {}",
        page.body
    );
    assert_eq!(revoked.status, 303);
    assert_oauth_error(&refreshed_on_a, 400, "invalid_grant");
}

/// Every access- and refresh-token key in `redis`, sorted.
fn token_keys(redis: &RedisServer) -> Vec<String> {
    let out = std::process::Command::new("redis-cli")
        .arg("-s")
        .arg(&redis.socket)
        .args(["--scan", "--pattern", "*"])
        .output()
        .expect("redis-cli must be installed (scripts/test installs it)");
    let mut keys: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|k| k.contains(":at:") || k.contains(":rt:"))
        .map(str::to_owned)
        .collect();
    keys.sort();
    keys
}

/// The tokens of a code exchange are written together with a read of the person's grant (one
/// round trip on Redis); when the grant was revoked meanwhile the exchange is refused and the
/// tokens it wrote are removed again: the store holds the same tokens as before it.
#[actix_web::test]
async fn a_refused_exchange_leaves_no_tokens_behind() {
    let redis = RedisServer::start();
    let url = redis.url();
    let overrides = [
        ("storage.backend", "redis"),
        ("storage.redis_url", url.as_str()),
    ];
    let app = dev_app(&overrides).await;
    let client = public_client(&app).await;
    let (cookie, issued) = connect(&app, &client, None, "").await;
    let (pending_code, _) = approve_in(&app, Some(cookie.clone()), &client.id, "").await;
    let page = account(&app, &cookie).await;
    let revoked = revoke(&app, &cookie, &page, &client.id).await;
    let before = token_keys(&redis);
    let refused = exchange(&app, &client, &pending_code["code"]).await;
    let refreshed = refresh(&app, &client, field(&issued, "refresh_token"), None).await;
    let after = token_keys(&redis);

    assert_eq!(revoked.status, 303, "{}", revoked.body);
    assert_oauth_error(&refused, 400, "invalid_grant");
    assert!(refused.body.contains("revoked"), "{}", refused.body);
    assert_oauth_error(&refreshed, 400, "invalid_grant");
    assert_eq!(
        before.len(),
        2,
        "the first exchange's access and refresh tokens: {before:?}"
    );
    assert_eq!(
        after, before,
        "nothing of the refused exchange and refresh is left (the refresh token presented was \
         rotated out, so it is still there, as a mark)"
    );
    app.stop().await;
}

/// One person cannot see another's applications, nor revoke them (not with their own form,
/// not with the other's CSRF token).
#[actix_web::test]
async fn one_person_cannot_see_or_revoke_anothers_grants() {
    let app = password_app_for(&[(USER, PASSWORD), ("bob", "bobs password")], &[]).await;
    let client = public_client(&app).await;
    let (alice, issued) = connect(&app, &client, None, "").await;
    let alice_page = account(&app, &alice).await;
    // Bob signs in on the account page.
    let sign_in_page = account(&app, "").await;
    let bob_login = send_form(
        app.post("/login")
            .insert_header(("cookie", sign_in_page.cookies().unwrap())),
        &[
            ("request", &sign_in_page.field("request")),
            ("csrf_token", &sign_in_page.field("csrf_token")),
            ("username", "bob"),
            ("password", "bobs password"),
        ],
    )
    .await;
    let bob = jar(&[
        bob_login.session_cookie().as_deref(),
        sign_in_page.cookies().as_deref(),
    ]);

    let bob_page = account(&app, &bob).await;
    let bobs_try = revoke(&app, &bob, &bob_page, &client.id).await;
    let with_alices_token = revoke(&app, &bob, &alice_page, &client.id).await;
    let still = refresh(&app, &client, field(&issued, "refresh_token"), None).await;

    assert_eq!(bob_login.status, 303, "{}", bob_login.body);
    assert!(
        bob_login.header("location").ends_with("/account"),
        "back to the account page"
    );
    assert!(alice_page.body.contains(&client.id));
    assert_eq!(bob_page.status, 200, "{}", bob_page.body);
    assert!(bob_page.body.contains("Signed in as <strong>bob</strong>"));
    assert!(
        !bob_page.body.contains(&client.id),
        "bob sees none of alice's applications"
    );
    assert!(bob_page.body.contains("not allowed any application yet"));
    assert_eq!(bobs_try.status, 303, "bob's own grants: nothing to revoke");
    assert_eq!(with_alices_token.status, 403, "{}", with_alices_token.body);
    assert_eq!(
        still.status, 200,
        "alice's application still works: {}",
        still.body
    );
}

#[actix_web::test]
async fn the_account_page_asks_to_sign_in_first_and_returns_to_itself() {
    let app = password_app(&[]).await;

    let page = account(&app, "").await;
    let (cookie, after) = sign_in(&app, &page).await;

    assert_eq!(page.status, 200);
    assert!(page.is_sign_in_page(), "{}", page.body);
    assert!(
        page.body
            .contains("Sign in to see the applications you allowed")
    );
    assert_eq!(after.status, 200, "{}", after.body);
    assert!(
        after.body.contains("Your connected applications"),
        "{}",
        after.body
    );
    assert!(!cookie.is_empty());
}

#[actix_web::test]
async fn sign_out_ends_the_session_and_needs_the_pages_token() {
    let app = password_app(&[]).await;
    let client = public_client(&app).await;
    let (cookie, _) = connect(&app, &client, None, "").await;
    let page = account(&app, &cookie).await;

    let forged = send_form(
        app.post("/account/signout")
            .insert_header(("cookie", cookie.as_str())),
        &[("csrf_token", "not-the-token")],
    )
    .await;
    let cross_site = send_form(
        app.post("/account/signout")
            .insert_header(("cookie", cookie.as_str()))
            .insert_header(("sec-fetch-site", "cross-site")),
        &[("csrf_token", &page.field("csrf_token"))],
    )
    .await;
    let signed_out = account_form(&app, &cookie, &page, "/account/signout", &[]).await;
    let afterwards = account(&app, &cookie).await;
    let by_get = send(
        app.get("/account/signout")
            .insert_header(("cookie", cookie.as_str())),
    )
    .await;

    assert_eq!(forged.status, 403);
    assert_eq!(cross_site.status, 403);
    assert_eq!(signed_out.status, 200, "{}", signed_out.body);
    assert!(signed_out.body.contains("You are signed out"));
    let removal = signed_out
        .session_set_cookie()
        .expect("the cookie is removed");
    assert!(removal.contains("Max-Age=0"), "{removal}");
    assert!(
        afterwards.is_sign_in_page(),
        "the old cookie signs no one in: {}",
        afterwards.body
    );
    assert_ne!(by_get.status, 200, "sign-out is POST only");
}

/// The consent page says what each scope means, which server the access is for, and whether
/// the application is new to the person or asks for more than before (step-up).
#[actix_web::test]
async fn consent_says_what_is_granted_and_what_is_new() {
    let app = password_app(&[("scopes.supported", "mcp,files,offline_access")]).await;
    let client = public_client(&app).await;
    let first = open_authorize(
        &app,
        None,
        &client.id,
        "&scope=mcp&resource=https%3A%2F%2Fmcp.example.com%2Fmcp",
    )
    .await;
    let (cookie, consent) = sign_in(&app, &first).await;
    let approved = decide(&app, Some(&cookie), &consent, "approve").await;

    let wider = open_authorize(
        &app,
        Some(&cookie),
        &client.id,
        "&scope=mcp%20files&resource=https%3A%2F%2Fmcp.example.com%2Fmcp",
    )
    .await;

    assert!(
        consent.body.contains("has not asked you before"),
        "{}",
        consent.body
    );
    assert!(consent.body.contains("Use the MCP server on your behalf"));
    assert!(
        consent
            .body
            .contains("<strong>mcp.example.com/mcp</strong>"),
        "by host and path"
    );
    assert!(
        consent.body.contains("href=\"") && consent.body.contains("/account\">your account page")
    );
    assert_eq!(approved.status, 303);
    assert!(
        wider.is_consent_page(),
        "more is asked: the page again: {}",
        wider.body
    );
    assert!(
        wider.body.contains("You approved this application on"),
        "{}",
        wider.body
    );
    assert!(
        wider
            .body
            .contains("<code>files</code> <span class=\"badge\">new</span>"),
        "{}",
        wider.body
    );
    assert!(
        !wider
            .body
            .contains("<code>mcp</code> <span class=\"badge\">"),
        "mcp is not new"
    );
}
