//! Sign-in at the operator's identity provider (docs/behaviour.md §14), against a real OpenID
//! Provider nobody here wrote (oidc-provider, on loopback) and a stand-in for GitHub that
//! serves GitHub's documented endpoints and shapes: the whole journey from an MCP client's
//! `/authorize` through the provider's own pages back to Doorman, consent, code and tokens,
//! and every failure as a page (never a 500).

use crate::flow::{Reply, exchange, introspect, public_client, resource_server};
use crate::support::{RedisServer, TestApp, settings_with_file};
use crate::upstream_support::{
    Browser, GitHubStandIn, GitHubUser, OpenIdProvider, approve, at_provider,
    authorize_to_provider, back_at_doorman, doorman_listener, journey, link_to, oidc_app,
    oidc_entry, to_callback, upstream_app,
};

/// A failure page: the status, a page (not JSON, not a redirect), and no session started.
fn assert_failure_page(res: &Reply, status: u16, says: &str) {
    assert_eq!(res.status, status, "{}", res.body);
    assert!(
        res.header("content-type").starts_with("text/html"),
        "a page"
    );
    assert!(
        res.body.contains(says),
        "the page says {says:?}: {}",
        res.body
    );
    assert!(res.session_set_cookie().is_none(), "no session");
    assert!(
        res.header("content-security-policy")
            .contains("default-src 'none'")
    );
}

#[actix_web::test]
async fn the_whole_journey_through_a_real_openid_provider_ends_in_tokens_for_the_scoped_subject() {
    let (app, op) = oidc_app("ok", "", &[]).await;
    let client = public_client(&app).await;
    let server = resource_server(&app).await;
    let mut browser = Browser::default();

    let to_provider = authorize_to_provider(&mut browser, &app, &client.id).await;
    let sent = url::Url::parse(&to_provider.header("location")).expect("location");
    let q: std::collections::HashMap<String, String> = sent.query_pairs().into_owned().collect();
    let callback = at_provider(&mut browser, sent.as_str(), "alice", &app.base).await;
    let back: std::collections::HashMap<String, String> = url::Url::parse(&callback)
        .expect("callback")
        .query_pairs()
        .into_owned()
        .collect();
    let (signed_in, consent) = back_at_doorman(&mut browser, &callback).await;
    let done = approve(&mut browser, &app, &consent).await;
    let tokens = exchange(&app, &client, &done["code"]).await;
    let token = tokens.json()["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let seen = introspect(&app, &server, &token).await;

    // One provider and no password users: /authorize went straight to it, with PKCE, state
    // and nonce, for Doorman's callback.
    assert!(
        sent.as_str().starts_with(&format!("{}/auth?", op.issuer)),
        "{sent}"
    );
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], "doorman");
    assert_eq!(
        q["redirect_uri"],
        format!("{}/login/test/callback", app.issuer)
    );
    assert_eq!(q["scope"], "openid email profile");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43);
    assert!(q["state"].len() >= 43 && q["nonce"].len() >= 43);
    assert!(
        to_provider
            .header("set-cookie")
            .contains("doorman_upstream=")
    );
    assert!(to_provider.header("set-cookie").contains("SameSite=Lax"));
    // The provider answered with RFC 9207's iss, which Doorman checked.
    assert_eq!(back["iss"], op.issuer);
    // Back at Doorman: signed in, on to consent by a navigation of Doorman's own page.
    assert!(signed_in.session_set_cookie().is_some());
    assert!(signed_in.body.contains("Continue"));
    assert!(
        !browser.has("doorman_upstream"),
        "the round trip's cookie is removed"
    );
    assert!(consent.is_consent_page(), "{}", consent.body);
    assert!(
        consent
            .body
            .contains("Alice Example (alice@example.com), with Example IdP"),
        "{}",
        consent.body
    );
    assert_eq!(tokens.status, 200, "{}", tokens.body);
    assert_eq!(seen["active"], true);
    assert_eq!(seen["sub"], "test:alice", "scoped by provider");
    assert_eq!(seen["provider"], "test");
    assert_eq!(seen["username"], "Alice Example");
    // The JWT access token says it too (docs/behaviour.md §13).
    let payload = token.split('.').nth(1).expect("a JWT");
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .expect("base64url"),
    )
    .expect("claims");
    assert_eq!(claims["sub"], "test:alice");
    assert_eq!(claims["idp"], "test");
    assert_eq!(claims["name"], "Alice Example");
}

/// The account page (docs/behaviour.md §15) signs in through the same provider and comes back to
/// itself, not to a consent page; the grant made by the upstream person is listed there.
#[actix_web::test]
async fn the_account_page_signs_in_upstream_and_returns_to_the_account_page() {
    let (app, _op) = oidc_app("ok", "", &[]).await;
    let client = public_client(&app).await;
    // A grant first, through the whole journey.
    journey(&app, &client.id, "alice").await;

    // A new browser asks for the account page: straight to the provider (its sole one).
    let mut browser = Browser::default();
    let to_provider = browser.get(&app.url("/account")).await;
    assert_eq!(to_provider.status, 302, "{}", to_provider.body);
    let callback = at_provider(
        &mut browser,
        &to_provider.header("location"),
        "alice",
        &app.base,
    )
    .await;
    let (signed_in, account) = back_at_doorman(&mut browser, &callback).await;

    assert!(
        signed_in
            .header("refresh")
            .ends_with(&format!("{}/account", app.issuer)),
        "continues to the account page: {}",
        signed_in.header("refresh")
    );
    assert_eq!(account.status, 200, "{}", account.body);
    assert!(!account.is_consent_page(), "{}", account.body);
    assert!(
        account.body.contains(&client.id),
        "the upstream person's grant is listed: {}",
        account.body
    );
}

#[actix_web::test]
async fn several_providers_are_buttons_and_password_users_keep_their_form() {
    let github = GitHubStandIn::start(GitHubUser::default()).await;
    let (listener, callback) = doorman_listener("test");
    let op = OpenIdProvider::start(&[callback], "ok", 0);
    let providers = format!(
        "{}{}",
        oidc_entry("test", &op.issuer, "allow_everyone = true"),
        github.entry("allow_everyone = true")
    );
    let users = format!(
        "users = [{{ username = \"alice\", password_hash = \"{}\" }}]\n\n",
        crate::flow::password_hash(crate::flow::PASSWORD)
    );
    let app = upstream_app(listener, &format!("{users}{providers}"), &[]).await;
    let client = public_client(&app).await;

    let page = crate::flow::open_authorize(&app, None, &client.id, "").await;
    let request = page.field("request");

    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains(&format!(
            "href=\"{}/login/test?request={request}\"",
            app.issuer
        )),
        "{}",
        page.body
    );
    assert!(page.body.contains(&format!(
        "href=\"{}/login/github?request={request}\"",
        app.issuer
    )));
    assert!(
        page.body.contains("Sign in with Example IdP") && page.body.contains("Sign in with GitHub")
    );
    assert!(
        page.is_sign_in_page(),
        "the password form stays for login.users"
    );
    // A button leads to its provider, in the browser that holds the request.
    let cookies = page.cookies().expect("binding");
    let go = crate::flow::send(
        app.client()
            .get(app.url(&format!("/login/github?request={request}")))
            .insert_header(("cookie", cookies.as_str())),
    )
    .await;
    assert_eq!(go.status, 302, "{}", go.body);
    assert!(
        go.header("location")
            .starts_with(&format!("{}/login/oauth/authorize?", github.base))
    );
    // Another browser cannot start it.
    let stranger = crate::flow::send(app.get(&format!("/login/github?request={request}"))).await;
    assert_eq!(stranger.status, 403, "{}", stranger.body);
    github.stop().await;
}

#[actix_web::test]
async fn cancelling_at_the_provider_is_a_page_with_a_way_back() {
    let (app, _op) = oidc_app("ok", "", &[]).await;
    let client = public_client(&app).await;
    let mut browser = Browser::default();
    let to_provider = authorize_to_provider(&mut browser, &app, &client.id).await;
    let (login_page, url) = browser
        .follow(&to_provider.header("location"), &app.base)
        .await;
    let cancel = crate::upstream_support::absolute(
        &url,
        &link_to(&login_page.body, "Cancel").expect("cancel link"),
    );

    let (_, callback) = browser.follow(&cancel, &app.base).await;
    let res = browser.get(&callback).await;

    assert!(callback.contains("error=access_denied"), "{callback}");
    assert_failure_page(&res, 403, "Sign-in was cancelled");
    let retry = link_to(&res.body, "Try again").expect("try again");
    assert!(
        retry.starts_with(&format!("{}/consent?request=", app.issuer)),
        "{retry}"
    );
    let again = browser.get(&retry).await;
    assert_eq!(again.status, 200);
    assert!(
        again.body.contains("Sign in with Example IdP"),
        "{}",
        again.body
    );
}

#[actix_web::test]
async fn a_person_outside_allowed_domains_gets_a_page_saying_why() {
    let (app, _op) = oidc_app("ok", "", &[]).await;
    let client = public_client(&app).await;
    let (mut browser, callback) = to_callback(&app, &client.id, "mallory").await;

    let res = browser.get(&callback).await;

    assert_failure_page(
        &res,
        403,
        "mallory@elsewhere.example is not allowed to sign in here: only addresses in example.com are.",
    );
    assert!(res.body.contains("You may not sign in here"));
}

#[actix_web::test]
async fn an_unverified_address_in_an_allowed_domain_is_not_enough() {
    let (app, _op) = oidc_app("ok", "", &[]).await;
    let client = public_client(&app).await;
    let (mut browser, callback) = to_callback(&app, &client.id, "bob").await;

    let res = browser.get(&callback).await;

    assert_failure_page(&res, 403, "did not confirm (verify) its e-mail address");
}

#[actix_web::test]
async fn groups_from_the_groups_claim_admit_their_members_only() {
    let (listener, callback) = doorman_listener("test");
    let op = OpenIdProvider::start(&[callback], "ok", 0);
    let entry = oidc_entry(
        "test",
        &op.issuer,
        "scopes = [\"openid\", \"email\", \"profile\", \"groups\"]\nallowed_groups = [\"staff\"]",
    );
    let app = upstream_app(listener, &entry, &[]).await;
    let client = public_client(&app).await;

    let (consent, _) = journey(&app, &client.id, "alice").await;
    let (mut browser, callback) = to_callback(&app, &client.id, "mallory").await;
    let refused = browser.get(&callback).await;

    assert!(consent.body.contains("Alice Example"));
    assert_failure_page(&refused, 403, "it is not in a group that is");
}

/// The provider (or something between) lies about the ID token: each lie is a 502 page.
async fn lied_to(mode: &str) -> Reply {
    let (app, _op) = oidc_app(mode, "", &[]).await;
    let client = public_client(&app).await;
    let (mut browser, callback) = to_callback(&app, &client.id, "alice").await;
    browser.get(&callback).await
}

#[actix_web::test]
async fn an_id_token_with_another_nonce_is_refused() {
    let res = lied_to("wrong-nonce").await;

    assert_failure_page(&res, 502, "could not be used to sign you in");
}

#[actix_web::test]
async fn a_tampered_id_token_is_refused() {
    let res = lied_to("tamper").await;

    assert_failure_page(&res, 502, "could not be used to sign you in");
    assert!(link_to(&res.body, "Try again").is_some());
}

#[actix_web::test]
async fn an_id_token_for_another_audience_is_refused() {
    let res = lied_to("wrong-aud").await;

    assert_failure_page(&res, 502, "could not be used to sign you in");
}

#[actix_web::test]
async fn rotated_provider_keys_are_fetched_again_when_a_token_names_a_new_one() {
    let (listener, callback) = doorman_listener("test");
    let mut op = OpenIdProvider::start(std::slice::from_ref(&callback), "ok", 0);
    let entry = oidc_entry("test", &op.issuer, "allowed_domains = [\"example.com\"]");
    let app = upstream_app(listener, &entry, &[]).await;
    let client = public_client(&app).await;
    let (first, _) = journey(&app, &client.id, "alice").await;
    let old_kid = op.kid.clone();

    // The provider restarts with a new signing key (and forgets the old one).
    op.stop();
    let op = OpenIdProvider::start(&[callback], "ok", op.port);
    let (second, code) = journey(&app, &client.id, "alice").await;

    assert!(first.is_consent_page() && second.is_consent_page());
    assert_ne!(op.kid, old_kid, "a new key");
    assert_eq!(exchange(&app, &client, &code).await.status, 200);
}

#[actix_web::test]
async fn a_provider_that_is_down_is_a_503_page_never_a_500() {
    let (app, mut op) = oidc_app("ok", "", &[]).await;
    let client = public_client(&app).await;
    op.stop();
    let mut browser = Browser::default();

    let res = browser
        .get(&app.url(&crate::flow::authorize_path(&client.id, "")))
        .await;

    assert_failure_page(&res, 503, "did not answer in time");
    assert_eq!(res.header("retry-after"), "5");
}

#[actix_web::test]
async fn a_provider_that_goes_down_during_the_round_trip_is_a_503_page_at_the_callback() {
    let (app, mut op) = oidc_app("ok", "", &[]).await;
    let client = public_client(&app).await;
    let (mut browser, callback) = to_callback(&app, &client.id, "alice").await;

    op.stop();
    let res = browser.get(&callback).await;

    assert_failure_page(&res, 503, "did not answer in time");
    assert!(link_to(&res.body, "Try again").is_some());
}

#[actix_web::test]
async fn a_provider_that_never_answers_times_out_into_a_503_page() {
    // Accepts connections and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let issuer = format!("http://{}", silent.local_addr().expect("addr"));
    let (listener, _) = doorman_listener("test");
    let entry = oidc_entry("test", &issuer, "allow_everyone = true\ntimeout_ms = 300");
    let app = upstream_app(listener, &entry, &[]).await;
    let client = public_client(&app).await;

    let res = Browser::default()
        .get(&app.url(&crate::flow::authorize_path(&client.id, "")))
        .await;

    assert_failure_page(&res, 503, "did not answer in time");
    drop(silent);
}

/// A loopback server answering `/.well-known/openid-configuration` with `doc`.
async fn discovery_server(
    doc: impl Fn(&str) -> serde_json::Value + Send + Sync + Clone + 'static,
) -> (String, actix_web::dev::ServerHandle) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let b = base.clone();
    let server = actix_web::HttpServer::new(move || {
        let doc = doc.clone();
        let b = b.clone();
        actix_web::App::new().route(
            "/.well-known/openid-configuration",
            actix_web::web::get().to(move || {
                let body = doc(&b);
                async move { actix_web::HttpResponse::Ok().json(body) }
            }),
        )
    })
    .workers(1)
    .listen(listener)
    .expect("listen")
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    (base, handle)
}

#[actix_web::test]
async fn a_wrong_discovery_document_is_a_502_page() {
    let (base, handle) = discovery_server(|base| {
        serde_json::json!({
            "issuer": "https://someone-else.example",
            "authorization_endpoint": format!("{base}/auth"),
            "token_endpoint": format!("{base}/token"),
            "jwks_uri": format!("{base}/jwks"),
            "response_types_supported": ["code"],
            "id_token_signing_alg_values_supported": ["RS256"]
        })
    })
    .await;
    let (listener, _) = doorman_listener("test");
    let app = upstream_app(
        listener,
        &oidc_entry("test", &base, "allow_everyone = true"),
        &[],
    )
    .await;
    let client = public_client(&app).await;

    let res = Browser::default()
        .get(&app.url(&crate::flow::authorize_path(&client.id, "")))
        .await;

    assert_failure_page(&res, 502, "could not be used to sign you in");
    handle.stop(false).await;
}

#[actix_web::test]
async fn an_answer_with_an_unknown_state_or_used_twice_is_a_page() {
    let (app, _op) = oidc_app("ok", "", &[]).await;
    let client = public_client(&app).await;
    let (mut browser, callback) = to_callback(&app, &client.id, "alice").await;

    let forged = browser
        .get(&app.url("/login/test/callback?code=abc&state=not-a-state"))
        .await;
    let no_state = browser.get(&app.url("/login/test/callback?code=abc")).await;
    let first = browser.get(&callback).await;
    let replayed = browser.get(&callback).await;
    let unknown = browser
        .get(&app.url("/login/nobody/callback?state=x"))
        .await;

    assert_failure_page(&forged, 400, "This sign-in has expired");
    assert_failure_page(&no_state, 400, "This sign-in has expired");
    assert_eq!(first.status, 200, "{}", first.body);
    assert_failure_page(&replayed, 400, "This sign-in has expired");
    assert_failure_page(&unknown, 400, "no such way to sign in");
}

#[actix_web::test]
async fn an_answer_delivered_to_another_browser_is_refused() {
    let (app, _op) = oidc_app("ok", "", &[]).await;
    let client = public_client(&app).await;
    let mut victim = Browser::default();
    // The attacker went through the provider in their own browser …
    let (_attacker, callback) = to_callback(&app, &client.id, "alice").await;

    // Login CSRF: the attacker's answer, opened in the victim's browser.
    let res = victim.get(&callback).await;

    assert_failure_page(&res, 403, "started in another browser");
}

#[actix_web::test]
async fn an_answer_naming_another_issuer_is_refused_rfc_9207() {
    let (app, op) = oidc_app("ok", "", &[]).await;
    let client = public_client(&app).await;
    let (mut browser, callback) = to_callback(&app, &client.id, "alice").await;
    let mixed_up = callback.replace(
        &format!("iss={}", crate::flow::enc(&op.issuer)),
        "iss=https%3A%2F%2Fattacker.example",
    );

    let res = browser.get(&mixed_up).await;

    assert_ne!(mixed_up, callback);
    assert_failure_page(&res, 502, "could not be used to sign you in");
}

#[actix_web::test]
async fn the_round_trip_may_start_on_one_process_and_return_to_another_sharing_redis() {
    let redis = RedisServer::start();
    let url = redis.url();
    let shared = [
        ("storage.backend", "redis"),
        ("storage.redis_url", url.as_str()),
        (
            "login.session_secret",
            "a-session-secret-shared-by-both-processes",
        ),
    ];
    let (listener, callback) = doorman_listener("test");
    let op = OpenIdProvider::start(&[callback], "ok", 0);
    let entry = oidc_entry("test", &op.issuer, "allowed_domains = [\"example.com\"]");
    let first = upstream_app(listener, &entry, &shared).await;
    let toml = format!("[login]\nmode = \"upstream\"\n\n{entry}");
    let mut settings = settings_with_file(&toml, &shared);
    settings.issuer = first.issuer.clone();
    let second = TestApp::serve(
        std::net::TcpListener::bind("127.0.0.1:0").expect("bind"),
        settings,
    )
    .await;
    let client = public_client(&first).await;
    let mut browser = Browser::default();

    // Starts on the first process …
    let to_provider = authorize_to_provider(&mut browser, &first, &client.id).await;
    let callback = at_provider(
        &mut browser,
        &to_provider.header("location"),
        "alice",
        &first.base,
    )
    .await;
    // … and the provider's answer lands on the second (as a load balancer may send it).
    let on_second = callback.replacen(&first.base, &second.base, 1);
    let (signed_in, consent) = back_at_doorman(&mut browser, &on_second).await;
    let done = approve(&mut browser, &first, &consent).await;

    assert_ne!(on_second, callback);
    assert_eq!(signed_in.status, 200);
    assert!(consent.body.contains("Alice Example"), "{}", consent.body);
    assert_eq!(exchange(&second, &client, &done["code"]).await.status, 200);
    drop(redis);
}

#[actix_web::test]
async fn github_the_user_and_its_verified_primary_address_from_the_api() {
    let github = GitHubStandIn::start(GitHubUser::default()).await;
    let (listener, _) = doorman_listener("github");
    let app = upstream_app(
        listener,
        &github.entry("allowed_domains = [\"example.com\"]"),
        &[],
    )
    .await;
    let client = public_client(&app).await;
    let server = resource_server(&app).await;
    let mut browser = Browser::default();

    let to_github = authorize_to_provider(&mut browser, &app, &client.id).await;
    let (_, callback) = browser
        .follow(&to_github.header("location"), &app.base)
        .await;
    let (_, consent) = back_at_doorman(&mut browser, &callback).await;
    let done = approve(&mut browser, &app, &consent).await;
    let tokens = exchange(&app, &client, &done["code"]).await.json();
    let seen = introspect(
        &app,
        &server,
        tokens["access_token"].as_str().expect("token"),
    )
    .await;

    assert!(
        to_github
            .header("location")
            .contains("scope=read%3Auser+user%3Aemail")
    );
    assert!(
        consent
            .body
            .contains("The Octocat (octocat@example.com), with GitHub"),
        "{}",
        consent.body
    );
    assert_eq!(seen["sub"], "github:583231", "GitHub's numeric id, scoped");
    assert_eq!(seen["provider"], "github");
    assert_eq!(
        github.calls(),
        vec!["/user", "/user/emails"],
        "organisations only when groups decide"
    );
    github.stop().await;
}

#[actix_web::test]
async fn github_an_unverified_address_does_not_count_and_organisations_are_groups() {
    let unverified = GitHubUser {
        emails: serde_json::json!([{"email": "octocat@example.com", "primary": true, "verified": false, "visibility": null}]),
        ..GitHubUser::default()
    };
    let github = GitHubStandIn::start(unverified).await;
    let (listener, _) = doorman_listener("github");
    let app = upstream_app(
        listener,
        &github.entry("allowed_domains = [\"example.com\"]"),
        &[],
    )
    .await;
    let by_org = GitHubStandIn::start(GitHubUser::default()).await;
    let (listener, _) = doorman_listener("github");
    let org_app = upstream_app(listener, &by_org.entry("allowed_groups = [\"acme\"]"), &[]).await;

    let mut browser = Browser::default();
    let client = public_client(&app).await;
    let to_github = authorize_to_provider(&mut browser, &app, &client.id).await;
    let (_, callback) = browser
        .follow(&to_github.header("location"), &app.base)
        .await;
    let refused = browser.get(&callback).await;
    let mut other = Browser::default();
    let org_client = public_client(&org_app).await;
    let to_github = authorize_to_provider(&mut other, &org_app, &org_client.id).await;
    let (_, callback) = other
        .follow(&to_github.header("location"), &org_app.base)
        .await;
    let (_, consent) = back_at_doorman(&mut other, &callback).await;

    assert_failure_page(&refused, 403, "did not confirm (verify) its e-mail address");
    assert!(
        to_github.header("location").contains("read%3Aorg"),
        "organisations need read:org"
    );
    assert!(consent.is_consent_page(), "{}", consent.body);
    assert_eq!(by_org.calls(), vec!["/user", "/user/emails", "/user/orgs"]);
    github.stop().await;
    by_org.stop().await;
}

#[actix_web::test]
async fn github_refusing_the_code_is_a_502_page() {
    let github = GitHubStandIn::start(GitHubUser::default()).await;
    let (listener, _) = doorman_listener("github");
    // Doorman holds a wrong secret: GitHub answers 200 with an error member.
    let entry = github
        .entry("allow_everyone = true")
        .replace(crate::upstream_support::GH_CLIENT_SECRET, "not-the-secret");
    let app = upstream_app(listener, &entry, &[]).await;
    let client = public_client(&app).await;
    let mut browser = Browser::default();
    let to_github = authorize_to_provider(&mut browser, &app, &client.id).await;
    let (_, callback) = browser
        .follow(&to_github.header("location"), &app.base)
        .await;

    let res = browser.get(&callback).await;

    assert_failure_page(&res, 502, "could not be used to sign you in");
    github.stop().await;
}

#[test]
fn provider_settings_are_checked_with_one_line_errors_naming_the_key() {
    let load = |providers: &str, mode: &str| {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("d.toml");
        std::fs::write(&path, format!("[login]\nmode = \"{mode}\"\n\n{providers}")).expect("write");
        doorman::settings::Settings::load(Some(&path), Some(Default::default()))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    let entry = |extra: &str| {
        format!(
            "[[login.providers]]\nid = \"okta\"\nname = \"Okta\"\nkind = \"oidc\"\nissuer = \"https://example.okta.com\"\nclient_id = \"c\"\nclient_secret = \"s\"\n{extra}\n"
        )
    };

    assert!(load("", "upstream").contains("key `login.providers`"));
    assert!(load(&entry("allow_everyone = true"), "password").contains("only with login.mode"));
    assert_eq!(load(&entry("allow_everyone = true"), "upstream"), "");
    let errors = [
        (
            entry(""),
            "login.providers[0].allowed_domains` (provider \"okta\"): say who may sign in",
        ),
        (
            entry("allow_everyone = true\nallowed_domains = [\"x.example\"]"),
            "allow_everyone",
        ),
        (
            entry("allow_everyone = true")
                .replace("https://example.okta.com", "http://example.okta.com"),
            "login.providers[0].issuer",
        ),
        (
            entry("allow_everyone = true").replace("id = \"okta\"", "id = \"Okta Prod\""),
            "login.providers[0].id",
        ),
        (
            format!(
                "{}{}",
                entry("allow_everyone = true"),
                entry("allow_everyone = true")
            ),
            "login.providers[1].id",
        ),
        (
            entry("allow_everyone = true\nscopes = [\"email\"]"),
            "needs the scope openid",
        ),
        (
            entry("allow_everyone = true\napi_url = \"https://api.github.com\""),
            "only for kind = \"github\"",
        ),
        (
            entry("allow_everyone = true\nclient_secret_file = \"/nonexistent/secret\""),
            "client_secret_file",
        ),
        (
            entry("allowed_domains = [\"@example.com\"]"),
            "allowed_domains",
        ),
        (entry("allow_everyone = true\ntimeout_ms = 0"), "timeout_ms"),
        (
            entry("allow_everyone = true\ncolour = \"blue\""),
            "unknown field",
        ),
    ];
    for (providers, expected) in errors {
        let error = load(&providers, "upstream");
        assert!(error.contains(expected), "{expected:?} not in {error:?}");
        assert!(
            error.starts_with("settings: ") && !error.contains('\n'),
            "{error:?}"
        );
    }
}

#[test]
fn provider_secrets_never_reach_a_settings_dump_and_may_come_from_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret_file = dir.path().join("google-secret");
    std::fs::write(&secret_file, "GOCSPX-from-a-file\n").expect("write");
    let providers = format!(
        "[login]\nmode = \"upstream\"\n\n[[login.providers]]\nid = \"google\"\nname = \"Google\"\nkind = \"oidc\"\nissuer = \"https://accounts.google.com\"\nclient_id = \"c.apps.googleusercontent.com\"\nclient_secret_file = {:?}\nallowed_domains = [\"example.com\"]\n\n[[login.providers]]\nid = \"gh\"\nname = \"GitHub\"\nkind = \"github\"\nclient_id = \"Iv1\"\nclient_secret = \"github-secret-in-clear\"\nallow_everyone = true\n",
        secret_file.display().to_string()
    );
    let path = dir.path().join("d.toml");
    std::fs::write(&path, providers).expect("write");

    let settings =
        doorman::settings::Settings::load(Some(&path), Some(Default::default())).expect("valid");
    let dump = format!("{settings:?}");

    assert_eq!(
        settings.login.providers[0].client_secret.expose(),
        "GOCSPX-from-a-file"
    );
    assert!(
        !dump.contains("GOCSPX-from-a-file") && !dump.contains("github-secret-in-clear"),
        "{dump}"
    );
    assert!(dump.contains("[redacted]"));
}

#[actix_web::test]
async fn check_config_prints_the_redirect_uri_to_register_at_each_provider() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("d.toml");
    std::fs::write(
        &path,
        "issuer = \"https://auth.example.com\"\n[login]\nmode = \"upstream\"\nsession_secret = \"0123456789abcdef0123456789abcdef\"\n\n[[login.providers]]\nid = \"github\"\nname = \"GitHub\"\nkind = \"github\"\nclient_id = \"Iv1\"\nclient_secret = \"shh-this-is-secret\"\nallowed_users = [\"octocat\"]\n",
    )
    .expect("write");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_doorman"))
        .arg("--config")
        .arg(&path)
        .arg("check-config")
        .env_remove("DOORMAN_ENV")
        .output()
        .expect("run doorman");
    let text = String::from_utf8_lossy(&out.stdout);

    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(
            "login provider \"github\": register https://auth.example.com/login/github/callback"
        ),
        "{text}"
    );
    assert!(!text.contains("shh-this-is-secret"));
}
