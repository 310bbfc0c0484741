//! What real MCP clients send (`tests/fixtures/real-clients.json`) is accepted as
//! docs/behaviour.md §9 says: their registrations, then their authorization requests.
#![allow(clippy::expect_used, clippy::unwrap_used)] // in tests, a failed expectation is a failed test

use serde_json::{Map, Value, json};

use crate::support::{CHALLENGE, TestApp, header, json};

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/real-clients.json"
);
/// The port a loopback placeholder gets at registration, and the different one the client
/// then listens on when it authorizes (RFC 8252 §7.3).
const REGISTER_PORT: &str = "33333";
const AUTHORIZE_PORT: &str = "44444";
const CALLBACK_ID: &str = "OUbdUMlL15Ct";
const RESOURCE: &str = "https://mcp.example.com/mcp";
const DEVICE_CODE: &str = "urn:ietf:params:oauth:grant-type:device_code";

struct Fixture {
    name: String,
    register: Option<Map<String, Value>>,
    authorize: Option<Map<String, Value>>,
}

fn fixtures() -> Vec<Fixture> {
    let text = std::fs::read_to_string(FIXTURES).unwrap_or_else(|e| panic!("{FIXTURES}: {e}"));
    let doc: Value = serde_json::from_str(&text).expect("fixtures are JSON");
    doc["clients"]
        .as_array()
        .expect("clients")
        .iter()
        .map(|c| Fixture {
            name: c["client"].as_str().expect("client").to_owned(),
            register: c["register"].as_object().cloned(),
            authorize: c["authorize"].as_object().cloned(),
        })
        .collect()
}

fn is_placeholder(s: &str) -> bool {
    s.starts_with('<') && s.ends_with('>')
}

/// Drops a trailing remark such as `none (unconfirmed)` or `https://x  (e.g. ...)`, and
/// keeps the first of `A or B`.
fn without_remark(s: &str) -> String {
    let s = s.split(" (").next().unwrap_or(s).trim();
    s.split(" or ").next().unwrap_or(s).trim().to_owned()
}

/// Replaces every `<...>` inside `s` with what `fill` makes of its content.
fn fill(s: &str, fill: impl Fn(&str) -> String) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find('<') {
        let Some(len) = rest[start..].find('>') else {
            break;
        };
        out.push_str(&rest[..start]);
        out.push_str(&fill(&rest[start + 1..start + len]));
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    out
}

/// A redirect URI from the fixtures, with its placeholders filled for `port`.
fn redirect_uri(raw: &str, port: &str) -> String {
    let raw = without_remark(raw);
    if is_placeholder(&raw) {
        return format!("http://127.0.0.1:{port}/callback");
    }
    fill(&raw, |inner| {
        if inner.contains("port") {
            port.to_owned()
        } else if inner.contains("callback_id") {
            CALLBACK_ID.to_owned()
        } else if inner.contains("random id") {
            "a1b2c3d4e5f6".to_owned()
        } else {
            panic!("unexpected placeholder <{inner}> in {raw}")
        }
    })
}

/// A registration body as the client sends it, placeholders filled.
fn registration_body(raw: &Map<String, Value>) -> Map<String, Value> {
    let mut body = Map::new();
    for (key, value) in raw {
        let filled = match (key.as_str(), value) {
            ("redirect_uris", Value::Array(uris)) => {
                json!(
                    uris.iter()
                        .map(|u| redirect_uri(u.as_str().expect("string URI"), REGISTER_PORT))
                        .collect::<Vec<_>>()
                )
            }
            ("client_name", Value::String(s)) if is_placeholder(s) => json!("Example MCP client"),
            ("client_name", Value::String(s)) => json!(fill(s, |_| "Example server".to_owned())),
            ("scope", Value::String(s)) if s.contains('<') => continue,
            ("application_type", Value::String(s)) if is_placeholder(s) => continue,
            ("application_type", Value::String(s)) => {
                json!(s.split_whitespace().next().unwrap_or(""))
            }
            ("token_endpoint_auth_method", Value::String(s)) => json!(without_remark(s)),
            (_, Value::String(s)) if s.contains('<') => {
                panic!("unhandled placeholder in {key}: {s}")
            }
            _ => value.clone(),
        };
        body.insert(key.clone(), filled);
    }
    body
}

/// An authorization request's parameters, placeholders filled, for `client_id`.
fn authorization_params(
    raw: &Map<String, Value>,
    client_id: &str,
    registered: &[String],
) -> Vec<(String, String)> {
    let mut params = Vec::new();
    for (key, value) in raw {
        let s = value.as_str().expect("string parameter");
        let filled = match key.as_str() {
            "client_id" => client_id.to_owned(),
            "redirect_uri" if is_placeholder(&without_remark(s)) => registered
                .first()
                .expect("a registered URI")
                .replace(REGISTER_PORT, AUTHORIZE_PORT),
            "redirect_uri" => redirect_uri(s, AUTHORIZE_PORT),
            "code_challenge" => CHALLENGE.to_owned(),
            "state" if s.contains("full URI") => {
                "vscode://dynamicauthprovider/auth.example.com/authorize?nonce=0f3a9c".to_owned()
            }
            "state" => "St4te_with-odd chars&=+/?é".to_owned(),
            "scope" if s.contains('<') => "mcp offline_access".to_owned(),
            "resource" if s.contains('<') => RESOURCE.to_owned(),
            _ if s.contains('<') => panic!("unhandled placeholder in {key}: {s}"),
            _ => without_remark(s),
        };
        params.push((key.clone(), filled));
    }
    // The fixtures list what is known of each request; every client sends its client_id, and
    // one that names S256 sends a challenge with it.
    if !params.iter().any(|(k, _)| k == "client_id") {
        params.push(("client_id".into(), client_id.into()));
    }
    if !params.iter().any(|(k, _)| k == "code_challenge") {
        params.push(("code_challenge".into(), CHALLENGE.into()));
    }
    params
}

fn query(params: &[(String, String)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
}

fn is_native_uri(uri: &str) -> bool {
    let Ok(url) = url::Url::parse(uri) else {
        return false;
    };
    let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    !matches!(url.scheme(), "https" | "http") || loopback
}

/// Registers `body`; returns the status and document.
async fn post_register(app: &TestApp, body: &Map<String, Value>) -> (u16, Value) {
    let mut res = app
        .post("/register")
        .send_json(body)
        .await
        .expect("POST /register");
    let doc = json(&mut res).await;
    (res.status().as_u16(), doc)
}

/// The §9 expectations for one accepted registration; problems are returned, not panicked,
/// so one run reports every client.
fn check_registration(
    name: &str,
    body: &Map<String, Value>,
    status: u16,
    doc: &Value,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut expect = |ok: bool, what: String| {
        if !ok {
            problems.push(format!("{name}: {what}"));
        }
    };
    expect(
        status == 201,
        format!("registration refused with {status}: {doc}"),
    );
    if status != 201 {
        return problems;
    }
    let grants: Vec<&str> = doc["grant_types"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    expect(
        grants.contains(&"authorization_code"),
        format!("grant_types {grants:?}"),
    );
    expect(
        !grants.contains(&DEVICE_CODE),
        "the device-code grant must be dropped".into(),
    );
    expect(
        doc["redirect_uris"] == body["redirect_uris"],
        format!(
            "redirect_uris {} != {}",
            doc["redirect_uris"], body["redirect_uris"]
        ),
    );
    if body.get("scope").is_some_and(|s| *s == "") {
        expect(
            doc.get("scope").is_none(),
            format!("scope \"\" must be absent, got {}", doc["scope"]),
        );
    }
    if body
        .get("token_endpoint_auth_method")
        .is_some_and(|m| *m == "none")
    {
        expect(
            doc.get("client_secret").is_none(),
            "a public client never gets a secret".into(),
        );
    }
    let uris: Vec<&str> = body["redirect_uris"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if body.get("application_type").is_some_and(|t| *t == "web")
        && uris.iter().any(|u| is_native_uri(u))
    {
        expect(
            doc["application_type"] == "native",
            format!(
                "web with native URIs must become native, got {}",
                doc["application_type"]
            ),
        );
    }
    if let Some(n) = body.get("client_name") {
        expect(
            &doc["client_name"] == n,
            format!("client_name {} != {n}", doc["client_name"]),
        );
    }
    problems
}

#[actix_web::test]
async fn real_client_registrations_are_accepted_with_the_section_9_corrections() {
    let app = TestApp::spawn().await;
    let mut problems = Vec::new();
    let mut count = 0;

    for fixture in fixtures() {
        let Some(raw) = &fixture.register else {
            continue;
        };
        let body = registration_body(raw);
        let (status, doc) = post_register(&app, &body).await;
        problems.extend(check_registration(&fixture.name, &body, status, &doc));
        count += 1;
    }

    assert!(
        count >= 10,
        "the fixtures hold the real registrations ({count} found)"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[actix_web::test]
async fn real_client_registrations_declared_web_with_native_uris_become_native() {
    let app = TestApp::spawn().await;
    let mut problems = Vec::new();
    let mut count = 0;

    for fixture in fixtures() {
        let Some(raw) = &fixture.register else {
            continue;
        };
        let mut body = registration_body(raw);
        let native = body["redirect_uris"]
            .as_array()
            .is_some_and(|a| a.iter().filter_map(Value::as_str).any(is_native_uri));
        if !native {
            continue;
        }
        body.insert("application_type".into(), json!("web"));
        let (status, doc) = post_register(&app, &body).await;
        problems.extend(check_registration(
            &format!("{} (declared web)", fixture.name),
            &body,
            status,
            &doc,
        ));
        count += 1;
    }

    assert!(count >= 5, "{count} clients with native redirect URIs");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[actix_web::test]
async fn real_client_authorization_requests_are_not_refused() {
    let app = TestApp::spawn().await;
    let mut problems = Vec::new();
    let mut count = 0;

    for fixture in fixtures() {
        let Some(auth) = &fixture.authorize else {
            continue;
        };
        let client_id = auth.get("client_id").and_then(Value::as_str).unwrap_or("");
        let body = match &fixture.register {
            Some(raw) => registration_body(raw),
            // A CIMD client: answered below.
            None if client_id.starts_with("https://") => continue,
            // No registration captured: register the redirect URI its request uses.
            None => {
                let uri = redirect_uri(
                    auth["redirect_uri"].as_str().expect("redirect_uri"),
                    REGISTER_PORT,
                );
                let mut body = Map::new();
                body.insert("client_name".into(), json!(fixture.name));
                body.insert("redirect_uris".into(), json!([uri]));
                body.insert("token_endpoint_auth_method".into(), json!("none"));
                body
            }
        };
        let (status, doc) = post_register(&app, &body).await;
        if status != 201 {
            problems.push(format!(
                "{}: registration refused with {status}: {doc}",
                fixture.name
            ));
            continue;
        }
        let issued = doc["client_id"].as_str().expect("client_id");
        let registered: Vec<String> = doc["redirect_uris"]
            .as_array()
            .expect("uris")
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
        let params = authorization_params(auth, issued, &registered);

        let res = app
            .get(&format!("/authorize?{}", query(&params)))
            .send()
            .await
            .expect("GET /authorize");
        let location = header(&res, "location");
        count += 1;

        if res.status() == 400 || location.contains("error=") {
            let mut res = res;
            let body = crate::support::text(&mut res).await;
            problems.push(format!(
                "{}: {params:?} refused with {}: {location} {body}",
                fixture.name,
                res.status()
            ));
        }
    }

    assert!(
        count >= 10,
        "the fixtures hold the real authorization requests ({count} found)"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The CIMD clients' real authorization requests, with their published documents pinned
/// (`cimd.pinned`, so nothing is fetched): each gets the sign-in page. Clients whose documents
/// are not in the fixtures are outside `cimd.allow_domains`, so they are refused without a
/// fetch, with the `cimd_failed` answer that says so.
#[actix_web::test]
async fn cimd_clients_resolve_from_their_pinned_documents() {
    let dir = tempfile::tempdir().expect("tempdir");
    let documents = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/cimd");
    for name in [
        "claude-ai-connectors.json",
        "claude-code.json",
        "vscode.json",
        "chatgpt.json",
    ] {
        std::fs::copy(format!("{documents}/{name}"), dir.path().join(name)).expect("copy");
    }
    let pinned = dir.path().display().to_string();
    let app = TestApp::with(&[
        ("cimd.pinned", pinned.as_str()),
        ("cimd.allow_domains", "claude.ai,vscode.dev,chatgpt.com"),
    ])
    .await;
    let (mut resolved, mut refused) = (0, 0);

    for fixture in fixtures() {
        let (None, Some(auth)) = (&fixture.register, &fixture.authorize) else {
            continue;
        };
        let Some(client_id) = auth
            .get("client_id")
            .and_then(Value::as_str)
            .filter(|id| id.starts_with("https://"))
        else {
            continue;
        };
        let sent = auth["redirect_uri"].as_str().expect("redirect_uri");
        let registered = vec![redirect_uri(sent, REGISTER_PORT)];
        let params = authorization_params(auth, client_id, &registered);

        let mut res = app
            .get(&format!("/authorize?{}", query(&params)))
            .send()
            .await
            .expect("GET /authorize");
        let body = crate::support::text(&mut res).await;

        assert!(res.headers().get("location").is_none(), "{}", fixture.name);
        let host = url::Url::parse(client_id).expect("URL");
        if ["claude.ai", "vscode.dev", "chatgpt.com"].contains(&host.host_str().unwrap_or("")) {
            assert_eq!(res.status(), 200, "{}: {body}", fixture.name);
            assert!(
                body.contains("name=\"password\""),
                "{}: sign-in page",
                fixture.name
            );
            resolved += 1;
        } else {
            let doc: Value = serde_json::from_str(&body).expect("JSON");
            assert_eq!(res.status(), 400, "{}", fixture.name);
            assert_eq!(doc["reason"], "cimd_failed", "{}: {doc}", fixture.name);
            assert_eq!(
                doc["cimd_error"], "domain_not_allowed",
                "{}: {doc}",
                fixture.name
            );
            assert_eq!(doc["client_id"], client_id, "{}", fixture.name);
            refused += 1;
        }
    }

    assert!(
        resolved >= 4,
        "{resolved} CIMD clients resolved from pinned documents"
    );
    assert!(
        refused >= 1,
        "{refused} CIMD clients outside the allowed domains"
    );
}
