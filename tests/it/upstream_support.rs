//! What the upstream sign-in tests stand on: a real OpenID Provider (oidc-provider, started with
//! node from `tests/support/oidc/`), a loopback stand-in for GitHub, a browser that keeps
//! cookies and follows redirects by hand, and Doorman configured with providers.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

use crate::flow::{Reply, read};
use crate::support::{CHROME_ACCEPT, TestApp, settings_with_file};

/// The client Doorman is at the OpenID Provider.
pub const OP_CLIENT_ID: &str = "doorman";
pub const OP_CLIENT_SECRET: &str = "doorman-test-secret-0123456789abcdef";

fn oidc_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/oidc")
}

/// oidc-provider on a loopback port, killed on drop. Fails the test (never skips) when node or
/// the npm packages are missing: `scripts/test` runs `npm ci` in `tests/support/oidc` first.
pub struct OpenIdProvider {
    child: Option<Child>,
    pub issuer: String,
    pub port: u16,
    /// The `kid` of its signing key (a fresh one on every start).
    pub kid: String,
    _dir: tempfile::TempDir,
}

impl OpenIdProvider {
    /// Starts the provider for `redirect_uris` on `port` (0: any), telling the ID token lie
    /// `id_token` (`ok`, `tamper`, `wrong-nonce`, `wrong-aud`; see provider.mjs).
    pub fn start(redirect_uris: &[String], id_token: &str, port: u16) -> Self {
        let dir = oidc_dir();
        assert!(
            dir.join("node_modules/oidc-provider/package.json")
                .is_file(),
            "oidc-provider is not installed: run `npm ci` in {} (scripts/test does)",
            dir.display()
        );
        let tmp = tempfile::tempdir().expect("tempdir");
        let stderr = tmp.path().join("provider.log");
        let mut cmd = Command::new("node");
        cmd.arg(dir.join("provider.mjs"))
            .args(["--port", &port.to_string(), "--id-token", id_token])
            .args([
                "--client-id",
                OP_CLIENT_ID,
                "--client-secret",
                OP_CLIENT_SECRET,
            ]);
        for uri in redirect_uris {
            cmd.args(["--redirect-uri", uri]);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("log file"))
            .spawn()
            .expect("node must be installed (scripts/test installs nodejs)");
        let mut line = String::new();
        let read = child
            .stdout
            .take()
            .map(|out| BufReader::new(out).read_line(&mut line));
        let started: Option<Value> = serde_json::from_str(&line).ok();
        let Some(started) = started.filter(|_| matches!(read, Some(Ok(n)) if n > 0)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the OpenID Provider did not start: {}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
        };
        Self {
            child: Some(child),
            issuer: started["issuer"].as_str().expect("issuer").to_owned(),
            port: u16::try_from(started["port"].as_u64().expect("port")).expect("port"),
            kid: started["kid"].as_str().expect("kid").to_owned(),
            _dir: tmp,
        }
    }

    /// Stops it (the provider is down).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OpenIdProvider {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The `[[login.providers]]` entry of an OpenID provider `id` at `issuer`, plus `extra` lines.
pub fn oidc_entry(id: &str, issuer: &str, extra: &str) -> String {
    format!(
        "[[login.providers]]\nid = \"{id}\"\nname = \"Example IdP\"\nkind = \"oidc\"\nissuer = \"{issuer}\"\nclient_id = \"{OP_CLIENT_ID}\"\nclient_secret = \"{OP_CLIENT_SECRET}\"\n{extra}\n"
    )
}

/// Doorman in upstream mode on `listener` with the provider entries `providers` (TOML).
pub async fn upstream_app(
    listener: TcpListener,
    providers: &str,
    overrides: &[(&str, &str)],
) -> TestApp {
    let toml = format!("[login]\nmode = \"upstream\"\n\n{providers}");
    TestApp::on(listener, settings_with_file(&toml, overrides)).await
}

/// A loopback listener for Doorman and the callback URL a provider `id` must allow.
pub fn doorman_listener(id: &str) -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    (listener, format!("http://{addr}/login/{id}/callback"))
}

/// Doorman with one OpenID provider `test` (admitting example.com, plus `extra` settings lines)
/// and that provider, started for Doorman's callback.
pub async fn oidc_app(
    id_token: &str,
    extra: &str,
    overrides: &[(&str, &str)],
) -> (TestApp, OpenIdProvider) {
    let (listener, callback) = doorman_listener("test");
    let op = OpenIdProvider::start(&[callback], id_token, 0);
    let entry = oidc_entry(
        "test",
        &op.issuer,
        &format!("allowed_domains = [\"example.com\"]\n{extra}"),
    );
    (upstream_app(listener, &entry, overrides).await, op)
}

// --- a browser ---------------------------------------------------------------------------

/// A person's browser: one cookie jar for 127.0.0.1 (cookies do not tell ports apart), redirects
/// followed by hand.
#[derive(Default)]
pub struct Browser {
    jar: BTreeMap<String, String>,
}

fn client() -> awc::Client {
    awc::Client::builder()
        .timeout(std::time::Duration::from_secs(15))
        .disable_redirects()
        .finish()
}

impl Browser {
    fn keep(&mut self, reply: &Reply) {
        for line in reply
            .headers
            .get_all("set-cookie")
            .filter_map(|v| v.to_str().ok())
        {
            let pair = line.split(';').next().unwrap_or("");
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            let gone = line.to_ascii_lowercase().contains("max-age=0");
            if gone || value.is_empty() {
                self.jar.remove(name.trim());
            } else {
                self.jar
                    .insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
    }

    /// The cookies a request carries, or none.
    pub fn cookie_header(&self) -> Option<String> {
        (!self.jar.is_empty()).then(|| {
            self.jar
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    pub fn has(&self, name: &str) -> bool {
        self.jar.contains_key(name)
    }

    pub async fn get(&mut self, url: &str) -> Reply {
        let mut req = client().get(url).insert_header(("accept", CHROME_ACCEPT));
        if let Some(c) = self.cookie_header() {
            req = req.insert_header(("cookie", c));
        }
        let mut res = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let reply = read(&mut res).await;
        self.keep(&reply);
        reply
    }

    pub async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> Reply {
        let mut req = client().post(url).insert_header(("accept", CHROME_ACCEPT));
        if let Some(c) = self.cookie_header() {
            req = req.insert_header(("cookie", c));
        }
        let mut res = req
            .send_form(&form)
            .await
            .unwrap_or_else(|e| panic!("POST {url}: {e}"));
        let reply = read(&mut res).await;
        self.keep(&reply);
        reply
    }

    /// GETs `url` and follows redirects until an answer is not one, or the next URL starts
    /// with `until` (not fetched). The last answer and the URL where it stopped.
    pub async fn follow(&mut self, url: &str, until: &str) -> (Reply, String) {
        let mut url = url.to_owned();
        let mut reply = self.get(&url).await;
        for _ in 0..10 {
            if !(300..400).contains(&reply.status) {
                return (reply, url);
            }
            let next = absolute(&url, &reply.header("location"));
            if next.starts_with(until) {
                return (reply, next);
            }
            url = next;
            reply = self.get(&url).await;
        }
        panic!("too many redirects, at {url}");
    }
}

/// `location` resolved against `base`.
pub fn absolute(base: &str, location: &str) -> String {
    url::Url::parse(base)
        .and_then(|b| b.join(location))
        .map(String::from)
        .unwrap_or_else(|_| location.to_owned())
}

/// HTML attribute text as it was before escaping.
fn unescape(s: &str) -> String {
    s.replace("&amp;", "&")
        .replace("&#x2F;", "/")
        .replace("&#39;", "'")
        .replace("&quot;", "\"")
}

/// The `action` of the first form on a page.
pub fn form_action(body: &str) -> String {
    let start = body.find("<form").expect("a form");
    let rest = &body[start..];
    let a = rest.find("action=\"").expect("action") + 8;
    unescape(&rest[a..a + rest[a..].find('"').expect("quote")])
}

/// The `href` of the link whose text contains `text`.
pub fn link_to(body: &str, text: &str) -> Option<String> {
    let at = body.find(text)?;
    let before = &body[..at];
    let h = before.rfind("href=\"")? + 6;
    Some(unescape(&before[h..h + before[h..].find('"')?]))
}

// --- the journey -------------------------------------------------------------------------

/// At the provider: signs in as `login` on its login page and confirms its consent page; the
/// URL it sends the browser back to (on Doorman, `doorman_base`), not yet followed.
pub async fn at_provider(
    browser: &mut Browser,
    provider_url: &str,
    login: &str,
    doorman_base: &str,
) -> String {
    let (mut page, mut url) = browser.follow(provider_url, doorman_base).await;
    for _ in 0..4 {
        if url.starts_with(doorman_base) {
            return url;
        }
        assert_eq!(page.status, 200, "at {url}: {}", page.body);
        let action = absolute(&url, &form_action(&page.body));
        let submitted = if page.body.contains("value=\"login\"") {
            browser
                .post(
                    &action,
                    &[
                        ("prompt", "login"),
                        ("login", login),
                        ("password", "anything"),
                    ],
                )
                .await
        } else {
            assert!(
                page.body.contains("value=\"consent\""),
                "not a provider page: {}",
                page.body
            );
            browser.post(&action, &[("prompt", "consent")]).await
        };
        assert!((300..400).contains(&submitted.status), "{}", submitted.body);
        let next = absolute(&action, &submitted.header("location"));
        if next.starts_with(doorman_base) {
            return next;
        }
        (page, url) = browser.follow(&next, doorman_base).await;
    }
    panic!(
        "the provider never sent the browser back; last page at {url}: {}",
        page.body
    );
}

/// `GET /authorize` for `client_id` in `browser`; expects Doorman to send it to the provider.
pub async fn authorize_to_provider(browser: &mut Browser, app: &TestApp, client_id: &str) -> Reply {
    let res = browser
        .get(&app.url(&crate::flow::authorize_path(client_id, "&scope=mcp")))
        .await;
    assert_eq!(res.status, 302, "{}", res.body);
    res
}

/// A fresh browser taken from `/authorize` through the provider's pages as `login`; the URL the
/// provider sends it back to (on Doorman), not yet followed.
pub async fn to_callback(app: &TestApp, client_id: &str, login: &str) -> (Browser, String) {
    let mut browser = Browser::default();
    let to_provider = authorize_to_provider(&mut browser, app, client_id).await;
    let callback = at_provider(
        &mut browser,
        &to_provider.header("location"),
        login,
        &app.base,
    )
    .await;
    (browser, callback)
}

/// Back at Doorman with the provider's answer: the continue page; then the consent page it
/// leads to.
pub async fn back_at_doorman(browser: &mut Browser, callback: &str) -> (Reply, Reply) {
    let signed_in = browser.get(callback).await;
    assert_eq!(signed_in.status, 200, "{}", signed_in.body);
    let refresh = signed_in.header("refresh");
    let next = refresh
        .strip_prefix("0; url=")
        .unwrap_or_else(|| panic!("no Refresh header: {refresh:?}"));
    let consent = browser.get(next).await;
    (signed_in, consent)
}

/// Approves the consent page in `browser`; the query of the redirect to the client.
pub async fn approve(
    browser: &mut Browser,
    app: &TestApp,
    consent: &Reply,
) -> HashMap<String, String> {
    assert!(consent.is_consent_page(), "{}", consent.body);
    let done = browser
        .post(
            &app.url("/consent"),
            &[
                ("request", &consent.field("request")),
                ("csrf_token", &consent.field("csrf_token")),
                ("decision", "approve"),
            ],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    done.location_params()
}

/// The whole journey as `login`: /authorize → the provider's pages → Doorman → consent →
/// code. Returns the consent page and the code.
pub async fn journey(app: &TestApp, client_id: &str, login: &str) -> (Reply, String) {
    let (mut browser, callback) = to_callback(app, client_id, login).await;
    let (_, consent) = back_at_doorman(&mut browser, &callback).await;
    let query = approve(&mut browser, app, &consent).await;
    let code = query
        .get("code")
        .cloned()
        .unwrap_or_else(|| panic!("no code: {query:?}"));
    (consent, code)
}

// --- GitHub ------------------------------------------------------------------------------

pub const GH_CLIENT_ID: &str = "Iv1.8a61f9b3a7aba766";
pub const GH_CLIENT_SECRET: &str = "gh-secret-1f2e3d4c5b6a79880";
const GH_TOKEN: &str = "gho_16C7e42F292c6912E7710c838347Ae178B4a";

/// What the GitHub stand-in says about its one user.
#[derive(Clone)]
pub struct GitHubUser {
    pub user: Value,
    pub emails: Value,
    pub orgs: Value,
}

impl Default for GitHubUser {
    fn default() -> Self {
        Self {
            user: json!({"login": "octocat", "id": 583231, "node_id": "MDQ6VXNlcjU4MzIzMQ==", "name": "The Octocat", "email": null}),
            emails: json!([
                {"email": "octocat@example.com", "primary": true, "verified": true, "visibility": "private"},
                {"email": "octocat@unverified.example", "primary": false, "verified": false, "visibility": null}
            ]),
            orgs: json!([{"login": "acme", "id": 1}]),
        }
    }
}

#[derive(Default)]
struct GitHubState {
    user: GitHubUser,
    /// code → (code_challenge, redirect_uri)
    codes: HashMap<String, (String, String)>,
    /// Every API path called, in order.
    calls: Vec<String>,
}

/// A loopback stand-in for GitHub that serves the endpoints and JSON shapes GitHub documents:
/// "Authorizing OAuth apps" (docs.github.com/en/apps/oauth-apps/building-oauth-apps/
/// authorizing-oauth-apps: the authorize redirect with `code` and `state`, PKCE, the token
/// exchange answered as JSON for `Accept: application/json`, errors as 200 with `error`), the
/// REST API's "Get the authenticated user" (docs.github.com/en/rest/users/users), "List email
/// addresses for the authenticated user" (docs.github.com/en/rest/users/emails) and "List
/// organizations for the authenticated user" (docs.github.com/en/rest/orgs/orgs). The person
/// has authorized the app before, so the authorize endpoint answers at once.
pub struct GitHubStandIn {
    pub base: String,
    state: Arc<Mutex<GitHubState>>,
    handle: actix_web::dev::ServerHandle,
}

impl GitHubStandIn {
    pub async fn start(user: GitHubUser) -> Self {
        let state = Arc::new(Mutex::new(GitHubState {
            user,
            ..Default::default()
        }));
        let shared = state.clone();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(shared.clone()))
                .route("/login/oauth/authorize", web::get().to(gh_authorize))
                .route("/login/oauth/access_token", web::post().to(gh_token))
                .route("/api/{path:.*}", web::get().to(gh_api))
        })
        .workers(1)
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Self {
            base,
            state,
            handle,
        }
    }

    /// The API paths called so far.
    pub fn calls(&self) -> Vec<String> {
        self.state.lock().expect("lock").calls.clone()
    }

    /// The provider entry for Doorman, pointing at this stand-in, plus `extra` lines.
    pub fn entry(&self, extra: &str) -> String {
        format!(
            "[[login.providers]]\nid = \"github\"\nname = \"GitHub\"\nkind = \"github\"\nclient_id = \"{GH_CLIENT_ID}\"\nclient_secret = \"{GH_CLIENT_SECRET}\"\nauthorize_url = \"{b}/login/oauth/authorize\"\ntoken_url = \"{b}/login/oauth/access_token\"\napi_url = \"{b}/api\"\n{extra}\n",
            b = self.base
        )
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

type Shared = web::Data<Arc<Mutex<GitHubState>>>;

fn query(req: &HttpRequest) -> HashMap<String, String> {
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect()
}

async fn gh_authorize(req: HttpRequest, state: Shared) -> HttpResponse {
    let q = query(&req);
    let (Some(redirect_uri), Some(st), Some(challenge)) = (
        q.get("redirect_uri"),
        q.get("state"),
        q.get("code_challenge"),
    ) else {
        return HttpResponse::BadRequest()
            .body("redirect_uri, state and code_challenge are required here");
    };
    if q.get("client_id").map(String::as_str) != Some(GH_CLIENT_ID)
        || q.get("code_challenge_method").map(String::as_str) != Some("S256")
    {
        return HttpResponse::BadRequest().body("unknown client or no S256");
    }
    let code = doorman::secret::ordered_id();
    state
        .lock()
        .expect("lock")
        .codes
        .insert(code.clone(), (challenge.clone(), redirect_uri.clone()));
    let mut to = url::Url::parse(redirect_uri).expect("redirect_uri");
    to.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", st);
    HttpResponse::Found()
        .insert_header(("location", to.to_string()))
        .finish()
}

async fn gh_token(req: HttpRequest, state: Shared, body: web::Bytes) -> HttpResponse {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let accepts_json = req
        .headers()
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    let issued = state.lock().expect("lock").codes.remove(field("code"));
    let answer = match issued {
        _ if field("client_id") != GH_CLIENT_ID || field("client_secret") != GH_CLIENT_SECRET => {
            json!({"error": "incorrect_client_credentials", "error_description": "The client_id and/or client_secret passed are incorrect."})
        }
        Some((challenge, redirect_uri))
            if redirect_uri == field("redirect_uri")
                && doorman::oauth::pkce::verify_s256(field("code_verifier"), &challenge) =>
        {
            json!({"access_token": GH_TOKEN, "scope": "read:user,user:email", "token_type": "bearer"})
        }
        _ => {
            json!({"error": "bad_verification_code", "error_description": "The code passed is incorrect or expired."})
        }
    };
    if !accepts_json {
        return HttpResponse::Ok()
            .content_type("application/x-www-form-urlencoded")
            .body("error=accept_json_please");
    }
    HttpResponse::Ok().json(answer)
}

async fn gh_api(req: HttpRequest, state: Shared, path: web::Path<String>) -> HttpResponse {
    let mut s = state.lock().expect("lock");
    s.calls.push(format!("/{path}"));
    let authorized = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {GH_TOKEN}"));
    let versioned = req.headers().contains_key("x-github-api-version");
    if !authorized || !versioned {
        return HttpResponse::Unauthorized().json(json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}));
    }
    match path.as_str() {
        "user" => HttpResponse::Ok().json(s.user.user.clone()),
        "user/emails" => HttpResponse::Ok().json(s.user.emails.clone()),
        "user/orgs" => HttpResponse::Ok().json(s.user.orgs.clone()),
        _ => HttpResponse::NotFound().json(json!({"message": "Not Found"})),
    }
}
