//! RFC 8414 metadata (docs/behaviour.md §3), including an issuer with a path, over a real socket.
#![allow(clippy::expect_used, clippy::unwrap_used)] // in tests, a failed expectation is a failed test

use std::net::TcpListener;

use serde_json::Value;

use crate::support::{TestApp, header, json, settings};

const WELL_KNOWN: &str = "/.well-known/oauth-authorization-server";

async fn metadata(app: &TestApp, path: &str) -> Value {
    let mut res = app.get(path).send().await.expect("GET metadata");
    assert_eq!(res.status(), 200, "{path}");
    assert!(
        header(&res, "content-type").starts_with("application/json"),
        "{path}"
    );
    json(&mut res).await
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Doorman with an issuer that `TestApp` cannot express; returns the base URL to call.
async fn spawn_with_issuer(issuer: impl Fn(u16) -> String) -> (String, String) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let issuer = issuer(port);
    let settings = settings(&[("issuer", issuer.as_str())]);
    let store = doorman::store::Store::open(&settings.storage).expect("store");
    let server = doorman::build_server(settings, store, doorman::clock::Clock::default(), listener)
        .expect("server");
    actix_web::rt::spawn(server);
    (format!("http://127.0.0.1:{port}"), issuer)
}

#[actix_web::test]
async fn metadata_document_lists_the_rfc8414_fields() {
    let app = TestApp::spawn().await;

    let doc = metadata(&app, WELL_KNOWN).await;

    let at = |p: &str| format!("{}{p}", app.issuer);
    assert_eq!(doc["issuer"], app.issuer.as_str());
    assert_eq!(doc["authorization_endpoint"], at("/authorize").as_str());
    assert_eq!(doc["token_endpoint"], at("/token").as_str());
    assert_eq!(doc["registration_endpoint"], at("/register").as_str());
    assert_eq!(doc["revocation_endpoint"], at("/revoke").as_str());
    assert_eq!(doc["introspection_endpoint"], at("/introspect").as_str());
    assert_eq!(
        strings(&doc["scopes_supported"]),
        vec!["mcp", "offline_access"]
    );
    assert_eq!(strings(&doc["response_types_supported"]), vec!["code"]);
    let grants = strings(&doc["grant_types_supported"]);
    assert!(
        grants.contains(&"authorization_code") && grants.contains(&"refresh_token"),
        "{grants:?}"
    );
    assert_eq!(
        strings(&doc["code_challenge_methods_supported"]),
        vec!["S256"]
    );
    let methods = strings(&doc["token_endpoint_auth_methods_supported"]);
    assert!(
        methods.contains(&"none"),
        "public clients are normal for MCP: {methods:?}"
    );
    assert!(
        methods.contains(&"client_secret_basic") && methods.contains(&"client_secret_post"),
        "{methods:?}"
    );
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
    assert!(
        doc["service_documentation"]
            .as_str()
            .is_some_and(|d| d.starts_with("https://")),
        "{doc}"
    );
    assert_eq!(
        doc["client_id_metadata_document_supported"], true,
        "metadata documents are on by default (cimd.enabled): {doc}"
    );
}

#[actix_web::test]
async fn issuer_is_exactly_the_configured_string() {
    // A host in mixed case and a path: a URL parser would rewrite the first.
    let (base, issuer) =
        spawn_with_issuer(|port| format!("http://LocalHost:{port}/Tenant-A")).await;
    let client = awc::Client::builder().disable_redirects().finish();

    let mut res = client
        .get(format!("{base}{WELL_KNOWN}/Tenant-A"))
        .send()
        .await
        .expect("GET");
    let doc = json(&mut res).await;
    let unknown = client
        .get(format!(
            "{base}/Tenant-A/authorize?client_id=x&response_type=code"
        ))
        .send()
        .await
        .expect("GET");

    assert_eq!(res.status(), 200);
    assert_eq!(doc["issuer"], issuer.as_str());
    assert_eq!(
        doc["authorization_endpoint"],
        format!("{issuer}/authorize").as_str()
    );
    assert_eq!(
        unknown.status(),
        400,
        "the routes are mounted under the issuer's path"
    );
}

#[actix_web::test]
async fn default_issuer_is_echoed_without_a_trailing_slash() {
    let app = TestApp::spawn().await;

    let doc = metadata(&app, WELL_KNOWN).await;

    assert_eq!(doc["issuer"], app.issuer.as_str());
    assert!(!app.issuer.ends_with('/'));
}

#[actix_web::test]
async fn issuer_with_a_path_serves_metadata_at_every_location_clients_try() {
    let app = TestApp::with(&[("issuer_path", "/auth")]).await;

    let rfc8414 = metadata(&app, &format!("{WELL_KNOWN}/auth")).await;
    let path_first = metadata(&app, &format!("/auth{WELL_KNOWN}")).await;
    let openid = metadata(&app, "/.well-known/openid-configuration/auth").await;

    assert_eq!(rfc8414["issuer"], app.issuer.as_str());
    assert!(app.issuer.ends_with("/auth"));
    assert_eq!(path_first, rfc8414);
    assert_eq!(openid, rfc8414);
}

#[actix_web::test]
async fn issuer_without_a_path_serves_openid_configuration_too() {
    let app = TestApp::spawn().await;

    let rfc8414 = metadata(&app, WELL_KNOWN).await;
    let openid = metadata(&app, "/.well-known/openid-configuration").await;

    assert_eq!(openid, rfc8414);
}

#[actix_web::test]
async fn issuer_with_a_path_puts_every_endpoint_under_the_path() {
    let app = TestApp::with(&[("issuer_path", "/auth")]).await;

    let doc = metadata(&app, &format!("{WELL_KNOWN}/auth")).await;
    let unknown = app
        .get("/auth/authorize?client_id=nobody")
        .send()
        .await
        .expect("GET");
    let registered = app
        .register(serde_json::json!({"redirect_uris": ["http://127.0.0.1/cb"]}))
        .await;

    for key in [
        "authorization_endpoint",
        "token_endpoint",
        "registration_endpoint",
        "revocation_endpoint",
        "introspection_endpoint",
    ] {
        let url = doc[key].as_str().unwrap_or_else(|| panic!("{key} missing"));
        assert!(
            url.starts_with(&format!("{}/auth/", app.base)),
            "{key}: {url}"
        );
    }
    assert_eq!(unknown.status(), 400);
    let rcu = registered["registration_client_uri"]
        .as_str()
        .expect("registration_client_uri");
    assert!(
        rcu.starts_with(&format!("{}/auth/register/", app.base)),
        "{rcu}"
    );
}

#[actix_web::test]
async fn issuer_with_a_path_answers_authorize_and_register_at_the_origin_root_too() {
    let app = TestApp::with(&[("issuer_path", "/auth")]).await;

    let mut under_path = app
        .get("/auth/authorize?client_id=nobody")
        .send()
        .await
        .expect("GET");
    let path_doc = json(&mut under_path).await;
    let mut at_root = app
        .get("/authorize?client_id=nobody")
        .send()
        .await
        .expect("GET");
    let root_doc = json(&mut at_root).await;
    let mut registered = app
        .post("/register")
        .send_json(&serde_json::json!({"redirect_uris": ["http://127.0.0.1/cb"]}))
        .await
        .expect("POST");
    let reg_doc = json(&mut registered).await;

    assert_eq!(at_root.status(), 400);
    assert_eq!(
        root_doc, path_doc,
        "the same answer at the root as under the path"
    );
    assert_eq!(registered.status(), 201, "{reg_doc}");
    let client_id = reg_doc["client_id"].as_str().expect("client_id");
    let found = app
        .get(&format!(
            "/auth/authorize?client_id={client_id}&response_type=token"
        ))
        .send()
        .await
        .expect("GET");
    assert_eq!(
        found.status(),
        302,
        "a client registered at the root is known under the path"
    );
}

#[actix_web::test]
async fn metadata_is_readable_cross_origin() {
    for issuer_path in ["", "/auth"] {
        let app = TestApp::with(&[("issuer_path", issuer_path)]).await;
        let mut paths = vec![
            format!("{WELL_KNOWN}{issuer_path}"),
            format!("/.well-known/openid-configuration{issuer_path}"),
        ];
        if !issuer_path.is_empty() {
            paths.push(format!("{issuer_path}{WELL_KNOWN}"));
        }
        for path in paths {
            let res = app
                .get(&path)
                .insert_header(("origin", "http://localhost:6274"))
                .send()
                .await
                .expect("GET");

            assert_eq!(res.status(), 200, "{path}");
            assert_eq!(header(&res, "access-control-allow-origin"), "*", "{path}");
            assert_eq!(
                header(&res, "access-control-expose-headers"),
                "WWW-Authenticate, Link, Retry-After",
                "{path}"
            );
        }
    }
}

#[actix_web::test]
async fn metadata_preflight_is_answered_with_cors_headers() {
    for issuer_path in ["", "/auth"] {
        let app = TestApp::with(&[("issuer_path", issuer_path)]).await;
        let path = format!("{WELL_KNOWN}{issuer_path}");

        let res = app
            .client()
            .request(awc::http::Method::OPTIONS, app.url(&path))
            .insert_header(("origin", "http://localhost:6274"))
            .insert_header(("access-control-request-method", "GET"))
            .insert_header(("access-control-request-headers", "mcp-protocol-version"))
            .send()
            .await
            .expect("OPTIONS");

        assert!(res.status().is_success(), "{path}: {}", res.status());
        assert_eq!(header(&res, "access-control-allow-origin"), "*", "{path}");
        assert!(
            header(&res, "access-control-allow-methods").contains("GET"),
            "{path}"
        );
        assert!(
            header(&res, "access-control-allow-headers")
                .to_ascii_lowercase()
                .contains("mcp-protocol-version"),
            "{path}"
        );
    }
}

#[actix_web::test]
async fn registration_disabled_removes_the_registration_endpoint() {
    let app = TestApp::with(&[("registration.enabled", "false")]).await;

    let doc = metadata(&app, WELL_KNOWN).await;

    assert!(doc.get("registration_endpoint").is_none(), "{doc}");
    assert_eq!(
        doc["authorization_endpoint"],
        format!("{}/authorize", app.issuer).as_str()
    );
}

#[actix_web::test]
async fn scopes_supported_follow_the_settings() {
    let app = TestApp::with(&[
        ("scopes.supported", "mcp,tools.read"),
        ("scopes.default", "mcp"),
    ])
    .await;

    let doc = metadata(&app, WELL_KNOWN).await;

    assert_eq!(strings(&doc["scopes_supported"]), vec!["mcp", "tools.read"]);
}
