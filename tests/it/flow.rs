//! Sign-in, consent, /token, /revoke and /introspect (docs/behaviour.md §4 step 5, §7, §8).

use std::collections::HashMap;

use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use awc::http::header::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use doorman::settings::Settings;
use serde_json::{Value, json};

use crate::support::{CHALLENGE, CHROME_ACCEPT, TestApp, VERIFIER, text};

pub(crate) const REDIRECT: &str = "http://127.0.0.1:4000/cb";
pub(crate) const RESOURCE: &str = "https://mcp.example.com/mcp";
pub(crate) const USER: &str = "alice";
pub(crate) const PASSWORD: &str = "correct horse battery staple";
/// Echoed byte-exact, whatever it contains.
pub(crate) const STATE: &str = "s t&a=te/é?#";

// --- answers ----------------------------------------------------------------------------------

/// An HTTP answer, read completely.
pub(crate) struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub(crate) fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The query parameters of the `Location` header.
    pub(crate) fn location_params(&self) -> HashMap<String, String> {
        let location = self.header("location");
        let url = url::Url::parse(&location)
            .unwrap_or_else(|e| panic!("Location {location:?} is not a URL ({e})"));
        url.query_pairs().into_owned().collect()
    }

    /// The whole `Set-Cookie` line of the session cookie, if this answer sets it.
    pub(crate) fn session_set_cookie(&self) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("doorman_session="))
            .map(str::to_owned)
    }

    /// When this answer starts a session: every cookie it sets (the session, and the binding
    /// of the sign-in to this browser when it sets that too), as a browser sends them back.
    pub(crate) fn session_cookie(&self) -> Option<String> {
        self.session_set_cookie()?;
        self.cookies()
    }

    /// Every cookie this answer sets, as a browser sends them back (`a=1; b=2`), e.g. the
    /// binding of a sign-in to this browser that `/authorize` sets beside a session.
    pub(crate) fn cookies(&self) -> Option<String> {
        let pairs: Vec<&str> = self
            .headers
            .get_all("set-cookie")
            .filter_map(|v| v.to_str().ok())
            .filter_map(|line| line.split(';').next())
            .collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }

    /// The value of a form field (`name="…" value="…"`) on this page.
    pub(crate) fn field(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("no field {name} on the page: {}", self.body))
            + marker.len();
        let len = self.body[start..].find('"').expect("closing quote");
        self.body[start..start + len].to_owned()
    }

    pub(crate) fn is_sign_in_page(&self) -> bool {
        self.body.contains("name=\"password\"")
    }

    pub(crate) fn is_consent_page(&self) -> bool {
        self.body.contains("name=\"decision\" value=\"approve\"")
    }
}

pub(crate) async fn read<S>(res: &mut awc::ClientResponse<S>) -> Reply
where
    S: futures_util::Stream<Item = Result<actix_web::web::Bytes, awc::error::PayloadError>> + Unpin,
{
    let body = text(res).await;
    Reply {
        status: res.status().as_u16(),
        headers: res.headers().clone(),
        body,
    }
}

pub(crate) async fn send(req: awc::ClientRequest) -> Reply {
    let mut res = req.send().await.expect("request");
    read(&mut res).await
}

pub(crate) async fn send_form(req: awc::ClientRequest, form: &[(&str, &str)]) -> Reply {
    let mut res = req.send_form(&form).await.expect("request");
    read(&mut res).await
}

pub(crate) fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

// --- servers ----------------------------------------------------------------------------------

/// An argon2id PHC hash with cheap parameters; the server verifies with the parameters the
/// PHC string names.
pub(crate) fn password_hash(password: &str) -> String {
    let params = Params::new(1024, 1, 1, None).expect("argon2 params");
    let salt = SaltString::from_b64("c2FsdHNhbHRzYWx0c2FsdA").expect("salt");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .expect("hash")
        .to_string()
}

/// Doorman in password mode with one user, alice, given in a `--config` file (a list of
/// tables, which `DOORMAN__…` overrides cannot express).
pub(crate) async fn password_app(overrides: &[(&str, &str)]) -> TestApp {
    password_app_for(&[(USER, PASSWORD)], overrides).await
}

/// Doorman in password mode with the given users (username, password).
pub(crate) async fn password_app_for(
    users: &[(&str, &str)],
    overrides: &[(&str, &str)],
) -> TestApp {
    let users: Vec<String> = users
        .iter()
        .map(|(u, p)| {
            format!(
                "{{ username = \"{u}\", password_hash = \"{}\" }}",
                password_hash(p)
            )
        })
        .collect();
    let toml = format!(
        "[login]\nmode = \"password\"\nusers = [{}]\n",
        users.join(", ")
    );
    TestApp::with_settings(crate::support::settings_with_file(&toml, overrides)).await
}

/// Doorman in dev mode: everyone is signed in as `dev` without a form.
pub(crate) async fn dev_app(overrides: &[(&str, &str)]) -> TestApp {
    let mut all = vec![("login.mode", "dev")];
    all.extend_from_slice(overrides);
    TestApp::with(&all).await
}

// --- clients ----------------------------------------------------------------------------------

/// A registered client as it authenticates at /token.
pub(crate) struct Client {
    pub id: String,
    pub secret: Option<String>,
}

/// How a confidential client presents its secret.
#[derive(Clone, Copy)]
pub(crate) enum Auth {
    Basic,
    Body,
}

pub(crate) async fn public_client(app: &TestApp) -> Client {
    Client {
        id: app.register_public(REDIRECT).await,
        secret: None,
    }
}

pub(crate) async fn client_from(app: &TestApp, metadata: Value) -> Client {
    let doc = app.register(metadata).await;
    Client {
        id: doc["client_id"].as_str().expect("client_id").to_owned(),
        secret: doc["client_secret"].as_str().map(str::to_owned),
    }
}

pub(crate) async fn confidential_client(app: &TestApp, auth_method: &str) -> Client {
    let client = client_from(
        app,
        json!({
            "client_name": "Confidential",
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": auth_method,
        }),
    )
    .await;
    assert!(
        client.secret.is_some(),
        "a confidential client gets a secret"
    );
    client
}

/// An MCP server that introspects tokens, registered by the operator.
pub(crate) async fn resource_server(app: &TestApp) -> Client {
    let created = app
        .operator_client(doorman::admin::NewClient {
            name: "MCP server".into(),
            resource_server: true,
            ..Default::default()
        })
        .await;
    Client {
        id: created.client.client_id,
        secret: created.client_secret,
    }
}

pub(crate) fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

/// POSTs a form to `path` as `client`: Basic or body for a confidential client, `client_id`
/// alone for a public one.
pub(crate) async fn call_as(
    app: &TestApp,
    path: &str,
    client: &Client,
    auth: Auth,
    form: &[(&str, &str)],
) -> Reply {
    let mut fields: Vec<(&str, &str)> = form.to_vec();
    let mut req = app.post(path);
    match (auth, client.secret.as_deref()) {
        (Auth::Basic, Some(secret)) => {
            req = req.insert_header(("authorization", basic(&client.id, secret)));
        }
        (_, secret) => {
            fields.push(("client_id", &client.id));
            if let Some(s) = secret {
                fields.push(("client_secret", s));
            }
        }
    }
    send_form(req, &fields).await
}

pub(crate) async fn token(app: &TestApp, client: &Client, form: &[(&str, &str)]) -> Reply {
    call_as(app, "/token", client, Auth::Basic, form).await
}

// --- the browser side -------------------------------------------------------------------------

pub(crate) fn authorize_path(client_id: &str, extra_query: &str) -> String {
    format!(
        "/authorize?response_type=code&client_id={}&redirect_uri={}&code_challenge={CHALLENGE}&code_challenge_method=S256&state={}{extra_query}",
        enc(client_id),
        enc(REDIRECT),
        enc(STATE)
    )
}

/// `GET /authorize` as a browser sends it, with the session cookie when there is one.
pub(crate) async fn open_authorize(
    app: &TestApp,
    cookie: Option<&str>,
    client_id: &str,
    extra_query: &str,
) -> Reply {
    let mut req = app
        .get(&authorize_path(client_id, extra_query))
        .insert_header(("accept", CHROME_ACCEPT));
    if let Some(c) = cookie {
        req = req.insert_header(("cookie", c));
    }
    send(req).await
}

/// Joins cookie strings as a browser sends them.
pub(crate) fn jar(parts: &[Option<&str>]) -> String {
    parts
        .iter()
        .flatten()
        .copied()
        .collect::<Vec<_>>()
        .join("; ")
}

/// Submits the sign-in form of `page` (the answer that showed it, whose cookies bind the
/// request to this browser) as alice with `password`.
pub(crate) async fn submit_sign_in(app: &TestApp, page: &Reply, password: &str) -> Reply {
    let request = page.field("request");
    let csrf = page.field("csrf_token");
    let mut req = app.post("/login");
    if let Some(cookies) = page.cookies() {
        req = req.insert_header(("cookie", cookies));
    }
    send_form(
        req,
        &[
            ("request", &request),
            ("csrf_token", &csrf),
            ("username", USER),
            ("password", password),
        ],
    )
    .await
}

/// Signs alice in on a sign-in page; returns her browser's cookies (session and binding) and
/// the consent page.
pub(crate) async fn sign_in(app: &TestApp, page: &Reply) -> (String, Reply) {
    let res = submit_sign_in(app, page, PASSWORD).await;
    assert_eq!(res.status, 303, "sign-in failed: {}", res.body);
    let session = res.session_cookie().expect("session cookie");
    let cookie = jar(&[Some(&session), page.cookies().as_deref()]);
    let consent = send(
        app.client()
            .get(res.header("location"))
            .insert_header(("cookie", cookie.as_str())),
    )
    .await;
    (cookie, consent)
}

/// Submits the consent form of `page` with `decision`, sending `cookie` when given.
pub(crate) async fn decide(
    app: &TestApp,
    cookie: Option<&str>,
    page: &Reply,
    decision: &str,
) -> Reply {
    let request = page.field("request");
    let csrf = page.field("csrf_token");
    let mut req = app.post("/consent");
    if let Some(c) = cookie {
        req = req.insert_header(("cookie", c));
    }
    send_form(
        req,
        &[
            ("request", &request),
            ("csrf_token", &csrf),
            ("decision", decision),
        ],
    )
    .await
}

/// Runs /authorize in a browser (signing in and approving when asked, in either login mode);
/// returns the query of the final redirect to the client and the session cookie.
pub(crate) async fn approve_in(
    app: &TestApp,
    cookie: Option<String>,
    client_id: &str,
    extra_query: &str,
) -> (HashMap<String, String>, String) {
    let page = open_authorize(app, cookie.as_deref(), client_id, extra_query).await;
    // The browser keeps what it had and adds what this answer sets.
    let cookie = match (cookie, page.cookies()) {
        (Some(had), Some(new)) => Some(jar(&[Some(&had), Some(&new)])),
        (had, new) => had.or(new),
    };
    if page.status == 302 {
        return (page.location_params(), cookie.expect("session cookie"));
    }
    assert_eq!(page.status, 200, "{}", page.body);
    let (cookie, consent) = if page.is_sign_in_page() {
        sign_in(app, &page).await
    } else {
        (cookie.expect("session cookie"), page)
    };
    let res = decide(app, Some(&cookie), &consent, "approve").await;
    assert_eq!(res.status, 303, "{}", res.body);
    (res.location_params(), cookie)
}

/// Authorizes `client_id` (with `extra_query` such as `&scope=mcp`) and returns the code.
pub(crate) async fn authorize_and_approve(
    app: &TestApp,
    client_id: &str,
    extra_query: &str,
) -> String {
    let (query, _) = approve_in(app, None, client_id, extra_query).await;
    query
        .get("code")
        .cloned()
        .unwrap_or_else(|| panic!("no code in {query:?}"))
}

// --- the token side ---------------------------------------------------------------------------

pub(crate) async fn exchange_as(app: &TestApp, client: &Client, auth: Auth, code: &str) -> Reply {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    call_as(app, "/token", client, auth, &form).await
}

pub(crate) async fn exchange(app: &TestApp, client: &Client, code: &str) -> Reply {
    exchange_as(app, client, Auth::Basic, code).await
}

/// Authorizes, approves and redeems the code; returns the token response.
pub(crate) async fn tokens(app: &TestApp, client: &Client, extra_query: &str) -> Value {
    let code = authorize_and_approve(app, &client.id, extra_query).await;
    let res = exchange(app, client, &code).await;
    assert_eq!(res.status, 200, "{}", res.body);
    res.json()
}

pub(crate) fn field<'a>(doc: &'a Value, name: &str) -> &'a str {
    doc[name]
        .as_str()
        .unwrap_or_else(|| panic!("no {name} in {doc}"))
}

pub(crate) async fn refresh(
    app: &TestApp,
    client: &Client,
    refresh_token: &str,
    scope: Option<&str>,
) -> Reply {
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ];
    if let Some(s) = scope {
        form.push(("scope", s));
    }
    token(app, client, &form).await
}

pub(crate) async fn introspect(app: &TestApp, server: &Client, token: &str) -> Value {
    let res = call_as(app, "/introspect", server, Auth::Basic, &[("token", token)]).await;
    assert_eq!(res.status, 200, "{}", res.body);
    res.json()
}

pub(crate) async fn revoke(
    app: &TestApp,
    client: &Client,
    token: &str,
    hint: Option<&str>,
) -> Reply {
    let mut form = vec![("token", token)];
    if let Some(h) = hint {
        form.push(("token_type_hint", h));
    }
    call_as(app, "/revoke", client, Auth::Basic, &form).await
}

pub(crate) fn assert_oauth_error(res: &Reply, status: u16, error: &str) {
    assert_eq!(res.status, status, "{}", res.body);
    assert_eq!(res.json()["error"], error, "{}", res.body);
}

// === sign-in and consent (docs/behaviour.md §4 step 5) ==================================================

#[actix_web::test]
async fn password_mode_signs_in_asks_consent_and_redirects_with_code_state_and_iss() {
    let app = password_app(&[]).await;
    let client = client_from(
        &app,
        json!({"client_name": "Inspector", "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}),
    )
    .await;

    let login = open_authorize(
        &app,
        None,
        &client.id,
        &format!("&scope=mcp&resource={}", enc(RESOURCE)),
    )
    .await;
    let signed_in = submit_sign_in(&app, &login, PASSWORD).await;
    let cookie = crate::flow::jar(&[
        signed_in.session_cookie().as_deref(),
        login.cookies().as_deref(),
    ]);
    let consent = send(
        app.client()
            .get(signed_in.header("location"))
            .insert_header(("cookie", cookie.as_str())),
    )
    .await;
    let done = decide(&app, Some(&cookie), &consent, "approve").await;

    assert_eq!(login.status, 200, "{}", login.body);
    assert_eq!(login.header("cache-control"), "no-store");
    assert!(
        login
            .body
            .contains(&format!("action=\"{}/login\"", app.issuer))
    );
    assert!(login.is_sign_in_page() && login.body.contains("name=\"username\""));
    assert!(!login.field("request").is_empty() && !login.field("csrf_token").is_empty());
    assert!(
        login.session_cookie().is_none(),
        "no session before signing in"
    );
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    assert_eq!(
        signed_in.header("location"),
        format!("{}/consent?request={}", app.issuer, login.field("request"))
    );
    let set_cookie = signed_in.session_set_cookie().expect("Set-Cookie");
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Lax"), "{set_cookie}");
    assert!(!set_cookie.contains("Secure"), "http issuer: {set_cookie}");
    assert_eq!(consent.status, 200, "{}", consent.body);
    assert_eq!(consent.header("cache-control"), "no-store");
    for shown in [
        "Inspector",
        client.id.as_str(),
        "http://127.0.0.1",
        "<code>mcp</code>",
        // The resource by host and path (docs/behaviour.md §15), and what the scope means.
        "mcp.example.com/mcp",
        "Use the MCP server on your behalf",
        USER,
        "name=\"decision\" value=\"approve\"",
        "name=\"decision\" value=\"deny\"",
    ] {
        assert!(consent.body.contains(shown), "consent page lacks {shown:?}");
    }
    assert_eq!(done.status, 303, "{}", done.body);
    assert!(done.header("location").starts_with(&format!("{REDIRECT}?")));
    let query = done.location_params();
    // 256 random bits after the time it was made (docs/behaviour.md §2).
    assert_eq!(query["code"].len(), doorman::secret::ORDERED_TOKEN_LEN);
    assert!(doorman::secret::order_of(&query["code"]).is_some());
    assert_eq!(query["state"], STATE);
    assert_eq!(query["iss"], app.issuer);
}

#[actix_web::test]
async fn dev_mode_shows_consent_at_once_with_a_session_cookie() {
    let app = dev_app(&[]).await;
    let client = public_client(&app).await;

    let page = open_authorize(&app, None, &client.id, "").await;
    let cookie = page.session_cookie();
    let done = decide(&app, cookie.as_deref(), &page, "approve").await;

    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.header("cache-control"), "no-store");
    assert!(page.is_consent_page() && !page.is_sign_in_page());
    assert!(page.body.contains(">dev<"), "signed in as dev");
    let set_cookie = page.session_set_cookie().expect("Set-Cookie");
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"));
    assert_eq!(done.status, 303, "{}", done.body);
    let query = done.location_params();
    assert!(query.contains_key("code"));
    assert_eq!(query["state"], STATE);
    assert_eq!(query["iss"], app.issuer);
}

#[actix_web::test]
async fn a_wrong_password_is_401_keeps_the_username_and_starts_no_session() {
    let app = password_app(&[]).await;
    let client = public_client(&app).await;
    let login = open_authorize(&app, None, &client.id, "").await;

    let res = submit_sign_in(&app, &login, "wrong password").await;

    assert_eq!(res.status, 401, "{}", res.body);
    assert!(res.is_sign_in_page());
    assert!(
        res.body.contains(&format!("value=\"{USER}\"")),
        "username kept"
    );
    assert!(res.body.contains("wrong"), "says what went wrong");
    assert!(res.session_cookie().is_none());
    assert!(res.header("location").is_empty());
}

#[actix_web::test]
async fn an_unknown_user_is_refused_like_a_wrong_password() {
    let app = password_app(&[]).await;
    let client = public_client(&app).await;
    let login = open_authorize(&app, None, &client.id, "").await;

    let res = send_form(
        app.post("/login")
            .insert_header(("cookie", login.cookies().expect("binding cookie"))),
        &[
            ("request", &login.field("request")),
            ("csrf_token", &login.field("csrf_token")),
            ("username", "mallory"),
            ("password", PASSWORD),
        ],
    )
    .await;

    assert_eq!(res.status, 401, "{}", res.body);
    assert!(res.session_cookie().is_none());
}

#[actix_web::test]
async fn deny_redirects_with_access_denied_state_and_iss() {
    let app = dev_app(&[]).await;
    let client = public_client(&app).await;
    let page = open_authorize(&app, None, &client.id, "").await;

    let res = decide(&app, page.session_cookie().as_deref(), &page, "deny").await;

    assert_eq!(res.status, 303, "{}", res.body);
    let query = res.location_params();
    assert_eq!(query["error"], "access_denied");
    assert_eq!(query["state"], STATE);
    assert_eq!(query["iss"], app.issuer);
    assert!(!query.contains_key("code"));
}

#[actix_web::test]
async fn consent_with_a_wrong_csrf_token_is_403_and_issues_no_code() {
    let app = dev_app(&[]).await;
    let client = public_client(&app).await;
    let page = open_authorize(&app, None, &client.id, "").await;
    let cookie = page.session_cookie().expect("session cookie");

    let res = send_form(
        app.post("/consent")
            .insert_header(("cookie", cookie.as_str())),
        &[
            ("request", &page.field("request")),
            ("csrf_token", "forged"),
            ("decision", "approve"),
        ],
    )
    .await;
    let genuine = decide(&app, Some(&cookie), &page, "approve").await;

    assert_eq!(res.status, 403, "{}", res.body);
    assert!(res.header("location").is_empty());
    assert_eq!(
        genuine.status, 303,
        "the forgery did not use up the request"
    );
}

#[actix_web::test]
async fn a_consent_form_is_bound_to_the_session_it_was_shown_to() {
    let app = password_app(&[]).await;
    let attackers_client = public_client(&app).await;
    let victims_client = public_client(&app).await;
    let attackers_login = open_authorize(&app, None, &attackers_client.id, "").await;
    let (_, attackers_consent) = sign_in(&app, &attackers_login).await;
    let victims_login = open_authorize(&app, None, &victims_client.id, "").await;
    let (victims_cookie, _) = sign_in(&app, &victims_login).await;

    let res = decide(&app, Some(&victims_cookie), &attackers_consent, "approve").await;

    assert_eq!(res.status, 403, "{}", res.body);
    assert!(res.header("location").is_empty());
}

#[actix_web::test]
async fn consent_without_the_session_cookie_shows_the_sign_in_page_and_no_code() {
    let app = password_app(&[]).await;
    let client = public_client(&app).await;
    let login = open_authorize(&app, None, &client.id, "").await;
    let (_, consent) = sign_in(&app, &login).await;

    // The same browser (its binding cookie), without the session.
    let res = decide(&app, login.cookies().as_deref(), &consent, "approve").await;

    assert_eq!(res.status, 200, "{}", res.body);
    assert!(res.is_sign_in_page());
    assert!(res.header("location").is_empty());
}

#[actix_web::test]
async fn a_pending_request_is_used_once() {
    let app = dev_app(&[]).await;
    let client = public_client(&app).await;
    let page = open_authorize(&app, None, &client.id, "").await;
    let cookie = page.session_cookie().expect("session cookie");

    let first = decide(&app, Some(&cookie), &page, "approve").await;
    let second = decide(&app, Some(&cookie), &page, "approve").await;

    assert_eq!(first.status, 303);
    assert_eq!(second.status, 400, "{}", second.body);
    assert!(second.header("location").is_empty());
    assert!(second.body.contains("already used"));
}

#[actix_web::test]
async fn a_pending_request_expires_after_ten_minutes() {
    let app = dev_app(&[]).await;
    let client = public_client(&app).await;
    let page = open_authorize(&app, None, &client.id, "").await;
    let cookie = page.session_cookie().expect("session cookie");

    app.clock.advance(601);
    let late = decide(&app, Some(&cookie), &page, "approve").await;

    assert_eq!(late.status, 400, "{}", late.body);
    assert!(late.header("location").is_empty());
    assert!(late.body.contains("expired"));
}

#[actix_web::test]
async fn the_sign_in_page_escapes_the_client_name() {
    let app = password_app(&[]).await;
    let client = client_from(
        &app,
        json!({"client_name": "<script>alert(1)</script>", "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}),
    )
    .await;

    let page = open_authorize(&app, None, &client.id, "").await;

    assert_eq!(page.status, 200);
    assert!(page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!page.body.contains("<script>alert(1)"));
}

#[actix_web::test]
async fn the_consent_page_escapes_the_client_name() {
    let app = dev_app(&[]).await;
    let client = client_from(
        &app,
        json!({"client_name": "<img src=x onerror=alert(1)>", "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}),
    )
    .await;

    let page = open_authorize(&app, None, &client.id, "").await;

    assert!(page.is_consent_page());
    assert!(page.body.contains("&lt;img src=x onerror=alert(1)&gt;"));
    assert!(!page.body.contains("<img src=x"));
}

#[actix_web::test]
async fn the_consent_page_lets_its_form_redirect_to_the_client() {
    let app = dev_app(&[]).await;
    let loopback = public_client(&app).await;
    let native_uri = "cursor://anysphere.cursor-mcp/oauth/callback";
    let native = app.register_public(native_uri).await;

    let page = open_authorize(&app, None, &loopback.id, "").await;
    let native_page = send(
        app.get(&format!(
            "/authorize?response_type=code&client_id={native}&code_challenge={CHALLENGE}"
        ))
        .insert_header(("accept", CHROME_ACCEPT)),
    )
    .await;

    // Chrome and Safari check form-action against the 303 that answers Approve/Deny.
    assert!(
        page.header("content-security-policy")
            .contains("form-action 'self' http://127.0.0.1:4000;"),
        "{}",
        page.header("content-security-policy")
    );
    assert!(native_page.is_consent_page(), "{}", native_page.body);
    assert!(
        native_page
            .header("content-security-policy")
            .contains("form-action 'self' cursor:;"),
        "{}",
        native_page.header("content-security-policy")
    );
}

#[test]
fn dev_mode_is_refused_at_start_up_unless_the_issuer_is_loopback() {
    let env = |issuer: &str| -> HashMap<String, String> {
        [
            ("DOORMAN__LOGIN__MODE", "dev"),
            ("DOORMAN__STORAGE__BACKEND", "memory"),
            ("DOORMAN__ISSUER", issuer),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    };

    let public = Settings::load(None, Some(env("https://auth.example.com")));
    let loopback = Settings::load(None, Some(env("http://localhost:8080")));

    let message = public
        .expect_err("dev mode with a public issuer")
        .to_string();
    assert!(message.contains("login.mode"), "{message}");
    assert!(loopback.is_ok());
}

#[actix_web::test]
async fn remembered_consent_redirects_302_with_a_code_and_no_store() {
    let app = password_app(&[]).await;
    let client = public_client(&app).await;
    let (_, cookie) = approve_in(&app, None, &client.id, "").await;

    let again = open_authorize(&app, Some(&cookie), &client.id, "").await;
    let exchanged = exchange(&app, &client, &again.location_params()["code"]).await;

    assert_eq!(again.status, 302, "{}", again.body);
    assert_eq!(again.header("cache-control"), "no-store");
    let query = again.location_params();
    assert_eq!(query["state"], STATE);
    assert_eq!(query["iss"], app.issuer);
    assert_eq!(exchanged.status, 200, "{}", exchanged.body);
}

#[actix_web::test]
async fn remembered_consent_is_off_when_remember_consent_days_is_0() {
    let app = password_app(&[("login.remember_consent_days", "0")]).await;
    let client = public_client(&app).await;
    let (_, cookie) = approve_in(&app, None, &client.id, "").await;

    let again = open_authorize(&app, Some(&cookie), &client.id, "").await;

    assert_eq!(again.status, 200, "{}", again.body);
    assert!(again.is_consent_page());
}

#[actix_web::test]
async fn remembered_consent_lapses_after_remember_consent_days() {
    let app = password_app(&[
        ("login.remember_consent_days", "1"),
        ("login.session_ttl", "604800"),
    ])
    .await;
    let client = public_client(&app).await;
    let (_, cookie) = approve_in(&app, None, &client.id, "").await;

    app.clock.advance(86_401);
    let again = open_authorize(&app, Some(&cookie), &client.id, "").await;

    assert_eq!(again.status, 200, "{}", again.body);
    assert!(again.is_consent_page(), "asked again after a day");
}

#[actix_web::test]
async fn remembered_consent_does_not_cover_more_scopes() {
    let app = dev_app(&[]).await;
    let client = public_client(&app).await;
    let (_, cookie) = approve_in(&app, None, &client.id, "&scope=mcp").await;

    let wider = open_authorize(
        &app,
        Some(&cookie),
        &client.id,
        "&scope=mcp%20offline_access",
    )
    .await;

    assert_eq!(wider.status, 200, "{}", wider.body);
    assert!(wider.is_consent_page());
    assert!(wider.body.contains("<code>offline_access</code>"));
}

#[actix_web::test]
async fn an_expired_sign_in_asks_for_the_password_again() {
    let app = password_app(&[]).await;
    let client = public_client(&app).await;
    let (_, cookie) = approve_in(&app, None, &client.id, "").await;
    let before = open_authorize(&app, Some(&cookie), &client.id, "").await;
    assert_eq!(
        before.status, 302,
        "signed in and remembered: {}",
        before.body
    );

    app.clock.advance(28_801);
    let after = open_authorize(&app, Some(&cookie), &client.id, "").await;

    assert_eq!(after.status, 200, "{}", after.body);
    assert!(after.is_sign_in_page());
}

// === /token (docs/behaviour.md §7) ======================================================================

#[actix_web::test]
async fn the_code_grant_returns_bearer_tokens_that_are_never_cached() {
    let app = dev_app(&[]).await;
    let client = public_client(&app).await;
    let code = authorize_and_approve(&app, &client.id, "&scope=mcp").await;

    let res = exchange(&app, &client, &code).await;

    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.header("cache-control"), "no-store");
    assert_eq!(res.header("pragma"), "no-cache");
    let body = res.json();
    assert_eq!(
        field(&body, "access_token").split('.').count(),
        3,
        "a JWT by default (tests/it/jwt.rs)"
    );
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    let refresh = field(&body, "refresh_token");
    assert_eq!(refresh.len(), doorman::secret::ORDERED_TOKEN_LEN);
    assert!(doorman::secret::order_of(refresh).is_some());
    assert_ne!(body["access_token"], body["refresh_token"]);
    assert_eq!(body["scope"], "mcp");
}

#[actix_web::test]
async fn a_code_without_code_verifier_is_invalid_request() {
    let app = dev_app(&[]).await;
    let client = public_client(&app).await;
    let code = authorize_and_approve(&app, &client.id, "").await;

    let res = token(
        &app,
        &client,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;

    assert_oauth_error(&res, 400, "invalid_request");
}

#[actix_web::test]
async fn a_code_with_a_wrong_code_verifier_is_invalid_grant() {
    let app = dev_app(&[]).await;
    let client = public_client(&app).await;
    let code = authorize_and_approve(&app, &client.id, "").await;
    let wrong = format!("x{}", &VERIFIER[1..]);

    let res = token(
        &app,
        &client,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &wrong),
        ],
    )
    .await;

    assert_oauth_error(&res, 400, "invalid_grant");
}

#[actix_web::test]
async fn a_code_with_another_redirect_uri_is_invalid_grant() {
    let app = dev_app(&[]).await;
    let client = public_client(&app).await;
    let code = authorize_and_approve(&app, &client.id, "").await;

    let res = token(
        &app,
        &client,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:4001/cb"),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;

    assert_oauth_error(&res, 400, "invalid_grant");
}

#[actix_web::test]
async fn a_code_without_the_redirect_uri_sent_at_authorize_is_invalid_request() {
    let app = dev_app(&[]).await;
    let client = public_client(&app).await;
    let code = authorize_and_approve(&app, &client.id, "").await;

    let res = token(
        &app,
        &client,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;

    assert_oauth_error(&res, 400, "invalid_request");
}

#[actix_web::test]
async fn a_replayed_code_is_refused_and_revokes_the_tokens_issued_from_it() {
    let app = dev_app(&[]).await;
    let client = public_client(&app).await;
    let server = resource_server(&app).await;
    let code = authorize_and_approve(&app, &client.id, "").await;
    let first = exchange(&app, &client, &code).await.json();
    let access = field(&first, "access_token");
    assert_eq!(introspect(&app, &server, access).await["active"], true);

    let replay = exchange(&app, &client, &code).await;

    assert_oauth_error(&replay, 400, "invalid_grant");
    assert_eq!(introspect(&app, &server, access).await["active"], false);
    let refreshed = refresh(&app, &client, field(&first, "refresh_token"), None).await;
    assert_oauth_error(&refreshed, 400, "invalid_grant");
}

#[actix_web::test]
async fn a_code_expires_after_five_minutes() {
    let app = dev_app(&[]).await;
    let client = public_client(&app).await;
    let code = authorize_and_approve(&app, &client.id, "").await;

    app.clock.advance(301);
    let res = exchange(&app, &client, &code).await;

    assert_oauth_error(&res, 400, "invalid_grant");
}

#[actix_web::test]
async fn a_code_is_refused_to_another_client_and_stays_redeemable() {
    let app = dev_app(&[]).await;
    let a = public_client(&app).await;
    let b = public_client(&app).await;
    let code = authorize_and_approve(&app, &a.id, "").await;

    let by_b = exchange(&app, &b, &code).await;
    let by_a = exchange(&app, &a, &code).await;

    assert_oauth_error(&by_b, 400, "invalid_grant");
    assert_eq!(by_a.status, 200, "{}", by_a.body);
}

#[actix_web::test]
async fn the_resource_named_at_authorize_is_the_aud_at_introspection() {
    let app = dev_app(&[]).await;
    let client = public_client(&app).await;
    let server = resource_server(&app).await;
    let code =
        authorize_and_approve(&app, &client.id, &format!("&resource={}", enc(RESOURCE))).await;

    let res = token(
        &app,
        &client,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("resource", RESOURCE),
        ],
    )
    .await;

    assert_eq!(res.status, 200, "{}", res.body);
    let claims = introspect(&app, &server, field(&res.json(), "access_token")).await;
    assert_eq!(claims["aud"], RESOURCE);
}

#[actix_web::test]
async fn another_resource_at_token_than_at_authorize_is_invalid_target() {
    let app = dev_app(&[]).await;
    let client = public_client(&app).await;
    let code =
        authorize_and_approve(&app, &client.id, &format!("&resource={}", enc(RESOURCE))).await;

    let res = token(
        &app,
        &client,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("resource", "https://other.example.com/mcp"),
        ],
    )
    .await;

    assert_oauth_error(&res, 400, "invalid_target");
}

#[actix_web::test]
async fn every_refresh_rotates_the_refresh_token() {
    let app = dev_app(&[]).await;
    let client = public_client(&app).await;
    let first = tokens(&app, &client, "").await;

    let second = refresh(&app, &client, field(&first, "refresh_token"), None).await;
    let second_body = second.json();
    let third = refresh(&app, &client, field(&second_body, "refresh_token"), None).await;

    assert_eq!(second.status, 200, "{}", second.body);
    assert_eq!(second.header("cache-control"), "no-store");
    assert_eq!(second.header("pragma"), "no-cache");
    assert_eq!(second_body["token_type"], "Bearer");
    assert_ne!(second_body["refresh_token"], first["refresh_token"]);
    assert_ne!(second_body["access_token"], first["access_token"]);
    assert_eq!(third.status, 200, "{}", third.body);
    assert_ne!(third.json()["refresh_token"], second_body["refresh_token"]);
}

#[actix_web::test]
async fn reusing_a_rotated_out_refresh_token_revokes_the_whole_family() {
    let app = dev_app(&[]).await;
    let client = public_client(&app).await;
    let server = resource_server(&app).await;
    let first = tokens(&app, &client, "").await;
    let newest = refresh(&app, &client, field(&first, "refresh_token"), None)
        .await
        .json();
    // Past the grace period for retries (tokens.refresh_grace).
    app.clock.advance(31);

    let reuse = refresh(&app, &client, field(&first, "refresh_token"), None).await;

    assert_oauth_error(&reuse, 400, "invalid_grant");
    for t in [
        field(&first, "access_token"),
        field(&newest, "access_token"),
        field(&newest, "refresh_token"),
    ] {
        assert_eq!(introspect(&app, &server, t).await["active"], false);
    }
    let with_newest = refresh(&app, &client, field(&newest, "refresh_token"), None).await;
    assert_oauth_error(&with_newest, 400, "invalid_grant");
}

#[actix_web::test]
async fn a_refresh_may_narrow_the_scope() {
    let app = dev_app(&[]).await;
    let client = public_client(&app).await;
    let first = tokens(&app, &client, "&scope=mcp%20offline_access").await;
    assert_eq!(first["scope"], "mcp offline_access");

    let narrower = refresh(&app, &client, field(&first, "refresh_token"), Some("mcp")).await;

    assert_eq!(narrower.status, 200, "{}", narrower.body);
    assert_eq!(narrower.json()["scope"], "mcp");
}

#[actix_web::test]
async fn a_refresh_asking_for_more_scope_is_invalid_scope_and_keeps_the_token_usable() {
    let app = dev_app(&[]).await;
    let client = public_client(&app).await;
    let first = tokens(&app, &client, "&scope=mcp").await;

    let wider = refresh(
        &app,
        &client,
        field(&first, "refresh_token"),
        Some("mcp offline_access"),
    )
    .await;
    let retry = refresh(&app, &client, field(&first, "refresh_token"), None).await;

    assert_oauth_error(&wider, 400, "invalid_scope");
    assert_eq!(
        retry.status, 200,
        "a refused request must not burn the token: {}",
        retry.body
    );
    assert_eq!(retry.json()["scope"], "mcp");
}

#[actix_web::test]
async fn a_refresh_token_is_refused_to_another_client() {
    let app = dev_app(&[]).await;
    let a = public_client(&app).await;
    let b = public_client(&app).await;
    let first = tokens(&app, &a, "").await;

    let by_b = refresh(&app, &b, field(&first, "refresh_token"), None).await;
    let by_a = refresh(&app, &a, field(&first, "refresh_token"), None).await;

    assert_oauth_error(&by_b, 400, "invalid_grant");
    assert_eq!(by_a.status, 200, "{}", by_a.body);
}

#[actix_web::test]
async fn a_refresh_token_expires_after_refresh_ttl() {
    let app = dev_app(&[]).await;
    let client = public_client(&app).await;
    let first = tokens(&app, &client, "").await;

    app.clock.advance(2_592_001);
    let res = refresh(&app, &client, field(&first, "refresh_token"), None).await;

    assert_oauth_error(&res, 400, "invalid_grant");
}

#[actix_web::test]
async fn a_confidential_client_may_authenticate_by_basic_or_in_the_body_whatever_it_registered() {
    let app = dev_app(&[]).await;
    let registered_basic = confidential_client(&app, "client_secret_basic").await;
    let registered_post = confidential_client(&app, "client_secret_post").await;
    let code_1 = authorize_and_approve(&app, &registered_basic.id, "").await;
    let code_2 = authorize_and_approve(&app, &registered_post.id, "").await;
    let code_3 = authorize_and_approve(&app, &registered_basic.id, "").await;
    let code_4 = authorize_and_approve(&app, &registered_post.id, "").await;

    let results = [
        exchange_as(&app, &registered_basic, Auth::Basic, &code_1).await,
        exchange_as(&app, &registered_post, Auth::Body, &code_2).await,
        exchange_as(&app, &registered_basic, Auth::Body, &code_3).await,
        exchange_as(&app, &registered_post, Auth::Basic, &code_4).await,
    ];

    for res in &results {
        assert_eq!(res.status, 200, "{}", res.body);
        assert!(res.json()["access_token"].is_string());
    }
}

#[actix_web::test]
async fn a_wrong_secret_by_basic_is_401_with_www_authenticate_basic() {
    let app = dev_app(&[]).await;
    let client = confidential_client(&app, "client_secret_basic").await;
    let impostor = Client {
        id: client.id.clone(),
        secret: Some("wrong".into()),
    };
    let code = authorize_and_approve(&app, &client.id, "").await;

    let res = exchange_as(&app, &impostor, Auth::Basic, &code).await;

    assert_oauth_error(&res, 401, "invalid_client");
    assert!(
        res.header("www-authenticate").starts_with("Basic"),
        "{:?}",
        res.header("www-authenticate")
    );
}

#[actix_web::test]
async fn a_wrong_secret_in_the_body_is_401_without_www_authenticate() {
    let app = dev_app(&[]).await;
    let client = confidential_client(&app, "client_secret_post").await;
    let impostor = Client {
        id: client.id.clone(),
        secret: Some("wrong".into()),
    };
    let code = authorize_and_approve(&app, &client.id, "").await;

    let res = exchange_as(&app, &impostor, Auth::Body, &code).await;

    assert_oauth_error(&res, 401, "invalid_client");
    assert!(res.headers.get("www-authenticate").is_none());
}

#[actix_web::test]
async fn a_confidential_client_without_its_secret_is_401() {
    let app = dev_app(&[]).await;
    let client = confidential_client(&app, "client_secret_basic").await;
    let secretless = Client {
        id: client.id.clone(),
        secret: None,
    };
    let code = authorize_and_approve(&app, &client.id, "").await;

    let res = exchange(&app, &secretless, &code).await;

    assert_oauth_error(&res, 401, "invalid_client");
}

#[actix_web::test]
async fn an_unknown_client_is_401_invalid_client() {
    let app = dev_app(&[]).await;
    let nobody = Client {
        id: "nobody".into(),
        secret: None,
    };
    let nobody_with_secret = Client {
        id: "nobody".into(),
        secret: Some("secret".into()),
    };

    let by_body = token(&app, &nobody, &[("grant_type", "client_credentials")]).await;
    let by_basic = token(
        &app,
        &nobody_with_secret,
        &[("grant_type", "client_credentials")],
    )
    .await;

    assert_oauth_error(&by_body, 401, "invalid_client");
    assert_oauth_error(&by_basic, 401, "invalid_client");
    assert!(by_basic.header("www-authenticate").starts_with("Basic"));
}

#[actix_web::test]
async fn an_unsupported_grant_type_is_unsupported_grant_type() {
    let app = dev_app(&[]).await;
    let client = public_client(&app).await;

    let res = token(
        &app,
        &client,
        &[
            ("grant_type", "password"),
            ("username", USER),
            ("password", PASSWORD),
        ],
    )
    .await;

    assert_oauth_error(&res, 400, "unsupported_grant_type");
}

#[actix_web::test]
async fn a_missing_grant_type_is_invalid_request() {
    let app = dev_app(&[]).await;
    let client = public_client(&app).await;
    let code = authorize_and_approve(&app, &client.id, "").await;

    let res = token(
        &app,
        &client,
        &[
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;

    assert_oauth_error(&res, 400, "invalid_request");
}

#[actix_web::test]
async fn a_repeated_parameter_is_invalid_request() {
    let app = dev_app(&[]).await;
    let client = public_client(&app).await;
    let code = authorize_and_approve(&app, &client.id, "").await;

    let res = token(
        &app,
        &client,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;

    assert_oauth_error(&res, 400, "invalid_request");
}

#[actix_web::test]
async fn client_credentials_give_a_confidential_client_an_access_token_only() {
    let app = dev_app(&[]).await;
    let server = resource_server(&app).await;

    let res = token(
        &app,
        &server,
        &[("grant_type", "client_credentials"), ("scope", "mcp")],
    )
    .await;

    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.header("cache-control"), "no-store");
    let body = res.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "mcp");
    assert!(body.get("refresh_token").is_none());
    let claims = introspect(&app, &server, field(&body, "access_token")).await;
    assert_eq!(claims["active"], true);
    assert_eq!(claims["client_id"], server.id.as_str());
}

#[actix_web::test]
async fn client_credentials_are_unauthorized_for_a_public_client() {
    let app = dev_app(&[]).await;
    let client = public_client(&app).await;

    let res = token(&app, &client, &[("grant_type", "client_credentials")]).await;

    assert_oauth_error(&res, 400, "unauthorized_client");
}

#[actix_web::test]
async fn unknown_scopes_are_dropped_at_authorize_and_the_grant_shows_what_was_granted() {
    let app = dev_app(&[]).await;
    let client = public_client(&app).await;

    let page = open_authorize(&app, None, &client.id, "&scope=openid%20mcp%20admin").await;
    let done = decide(&app, page.session_cookie().as_deref(), &page, "approve").await;
    let res = exchange(&app, &client, &done.location_params()["code"]).await;

    assert!(page.body.contains("<code>mcp</code>"));
    assert!(!page.body.contains("admin") && !page.body.contains("openid"));
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json()["scope"], "mcp");
}

#[actix_web::test]
async fn offline_access_is_granted_only_to_clients_with_the_refresh_token_grant() {
    let app = dev_app(&[]).await;
    let without = client_from(
        &app,
        json!({
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code"],
        }),
    )
    .await;
    let with = public_client(&app).await;

    let for_without = tokens(&app, &without, "&scope=mcp%20offline_access").await;
    let for_with = tokens(&app, &with, "&scope=mcp%20offline_access").await;

    assert_eq!(for_without["scope"], "mcp");
    assert!(for_without.get("refresh_token").is_none());
    assert_eq!(for_with["scope"], "mcp offline_access");
    assert!(for_with["refresh_token"].is_string());
}

#[actix_web::test]
async fn the_token_endpoint_allows_cross_origin_calls() {
    let app = dev_app(&[]).await;

    let res = send_form(
        app.post("/token")
            .insert_header(("origin", "http://localhost:6274")),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "nobody"),
        ],
    )
    .await;
    let preflight = send(
        app.client()
            .request(awc::http::Method::OPTIONS, app.url("/token"))
            .insert_header(("origin", "http://localhost:6274"))
            .insert_header(("access-control-request-method", "POST"))
            .insert_header((
                "access-control-request-headers",
                "authorization, content-type",
            )),
    )
    .await;

    assert_eq!(res.status, 401);
    assert_eq!(res.header("access-control-allow-origin"), "*");
    assert!(
        res.header("access-control-expose-headers")
            .contains("WWW-Authenticate")
    );
    assert!(
        (200..300).contains(&preflight.status),
        "{}",
        preflight.status
    );
    assert_eq!(preflight.header("access-control-allow-origin"), "*");
    assert!(
        preflight
            .header("access-control-allow-methods")
            .contains("POST")
    );
    let allowed = preflight
        .header("access-control-allow-headers")
        .to_ascii_lowercase();
    assert!(allowed.contains("authorization") && allowed.contains("content-type"));
}

// === /revoke and /introspect (docs/behaviour.md §8) =====================================================

#[actix_web::test]
async fn revocation_answers_200_for_unknown_and_already_revoked_tokens() {
    let app = dev_app(&[]).await;
    let client = public_client(&app).await;
    let issued = tokens(&app, &client, "").await;
    let access = field(&issued, "access_token");

    let unknown = revoke(&app, &client, "no-such-token", None).await;
    let first = revoke(&app, &client, access, Some("access_token")).await;
    let again = revoke(&app, &client, access, Some("access_token")).await;

    assert_eq!(unknown.status, 200, "{}", unknown.body);
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(again.status, 200, "{}", again.body);
}

#[actix_web::test]
async fn a_public_client_revokes_an_access_token_without_a_secret_whatever_the_hint() {
    let app = dev_app(&[]).await;
    let client = public_client(&app).await;
    let server = resource_server(&app).await;
    let issued = tokens(&app, &client, "").await;
    let access = field(&issued, "access_token");

    let res = revoke(&app, &client, access, Some("no_such_hint")).await;

    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(introspect(&app, &server, access).await["active"], false);
}

#[actix_web::test]
async fn revoking_a_refresh_token_revokes_its_family() {
    let app = dev_app(&[]).await;
    let client = public_client(&app).await;
    let server = resource_server(&app).await;
    let first = tokens(&app, &client, "").await;
    let second = refresh(&app, &client, field(&first, "refresh_token"), None)
        .await
        .json();

    let res = revoke(
        &app,
        &client,
        field(&second, "refresh_token"),
        Some("refresh_token"),
    )
    .await;

    assert_eq!(res.status, 200, "{}", res.body);
    for t in [
        field(&first, "access_token"),
        field(&second, "access_token"),
    ] {
        assert_eq!(introspect(&app, &server, t).await["active"], false);
    }
    let refreshed = refresh(&app, &client, field(&second, "refresh_token"), None).await;
    assert_oauth_error(&refreshed, 400, "invalid_grant");
}

#[actix_web::test]
async fn another_clients_token_is_not_revoked() {
    let app = dev_app(&[]).await;
    let owner = public_client(&app).await;
    let other = public_client(&app).await;
    let server = resource_server(&app).await;
    let issued = tokens(&app, &owner, "").await;

    let res = revoke(&app, &other, field(&issued, "access_token"), None).await;

    // RFC 7009 §2.1: refused, not answered 200 (docs/behaviour.md §8).
    assert_oauth_error(&res, 400, "unauthorized_client");
    let claims = introspect(&app, &server, field(&issued, "access_token")).await;
    assert_eq!(claims["active"], true);
}

#[actix_web::test]
async fn introspection_needs_a_confidential_client() {
    let app = dev_app(&[]).await;
    let client = public_client(&app).await;
    let server = resource_server(&app).await;
    let issued = tokens(&app, &client, "").await;
    let impostor = Client {
        id: server.id.clone(),
        secret: Some("wrong".into()),
    };

    let by_public = call_as(
        &app,
        "/introspect",
        &client,
        Auth::Body,
        &[("token", field(&issued, "access_token"))],
    )
    .await;
    let by_impostor = call_as(
        &app,
        "/introspect",
        &impostor,
        Auth::Basic,
        &[("token", field(&issued, "access_token"))],
    )
    .await;

    assert_oauth_error(&by_public, 401, "invalid_client");
    assert!(!by_public.body.contains("\"active\""));
    assert_oauth_error(&by_impostor, 401, "invalid_client");
}

#[actix_web::test]
async fn introspection_describes_an_active_token() {
    let app = password_app(&[]).await;
    let client = public_client(&app).await;
    let server = resource_server(&app).await;
    let issued = tokens(
        &app,
        &client,
        &format!("&scope=mcp&resource={}", enc(RESOURCE)),
    )
    .await;
    let now = doorman::clock::wall();

    let claims = introspect(&app, &server, field(&issued, "access_token")).await;

    assert_eq!(claims["active"], true);
    assert_eq!(claims["scope"], "mcp");
    assert_eq!(claims["client_id"], client.id.as_str());
    assert_eq!(claims["sub"], USER);
    assert_eq!(claims["aud"], RESOURCE);
    assert_eq!(claims["iss"], app.issuer.as_str());
    let iat = claims["iat"].as_u64().expect("iat");
    let exp = claims["exp"].as_u64().expect("exp");
    assert!(iat.abs_diff(now) <= 5, "iat {iat} vs now {now}");
    assert_eq!(exp, iat + 3600);
}

#[actix_web::test]
async fn an_unknown_token_is_inactive_and_nothing_more() {
    let app = dev_app(&[]).await;
    let server = resource_server(&app).await;

    let claims = introspect(&app, &server, "no-such-token").await;

    assert_eq!(claims, json!({"active": false}));
}

#[actix_web::test]
async fn an_expired_access_token_is_inactive() {
    let app = dev_app(&[]).await;
    let client = public_client(&app).await;
    let server = resource_server(&app).await;
    let issued = tokens(&app, &client, "").await;

    app.clock.advance(3601);
    let claims = introspect(&app, &server, field(&issued, "access_token")).await;

    assert_eq!(claims, json!({"active": false}));
}

/// Whether a browser sends a cookie set by `set_cookie` to `path` (RFC 6265 §5.1.4).
fn browser_sends(set_cookie: &str, path: &str) -> bool {
    let cookie_path = set_cookie
        .split(';')
        .map(str::trim)
        .find_map(|a| a.strip_prefix("Path=").or_else(|| a.strip_prefix("path=")))
        .unwrap_or("/");
    path == cookie_path
        || (path.starts_with(cookie_path)
            && (cookie_path.ends_with('/') || path[cookie_path.len()..].starts_with('/')))
}

#[actix_web::test]
async fn with_an_issuer_path_the_session_reaches_the_root_alias_of_authorize() {
    let app = dev_app(&[("issuer_path", "/auth")]).await;
    let client = public_client(&app).await;
    let first = send(
        app.get(&format!("/auth{}", authorize_path(&client.id, "")))
            .insert_header(("accept", CHROME_ACCEPT)),
    )
    .await;
    let line = first
        .session_set_cookie()
        .expect("dev mode starts a session");
    let cookie = first.session_cookie().expect("session cookie");
    let approved = decide(&app, Some(&cookie), &first, "approve").await;

    let again = open_authorize(&app, Some(&cookie), &client.id, "").await;

    assert!(first.is_consent_page(), "{}", first.body);
    assert!(browser_sends(&line, "/auth/authorize"), "{line}");
    assert!(
        browser_sends(&line, "/authorize"),
        "the root alias sees it too: {line}"
    );
    assert_eq!(approved.status, 303, "{}", approved.body);
    assert_eq!(
        again.status, 302,
        "remembered consent at the root alias: {}",
        again.body
    );
    assert!(again.location_params().contains_key("code"));
}
