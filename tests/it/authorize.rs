//! `GET|POST /authorize`, steps 1–4 and the unregistered-client answer (docs/behaviour.md §4, §5),
//! over a real socket.
#![allow(clippy::expect_used, clippy::unwrap_used)] // in tests, a failed expectation is a failed test

use std::collections::HashMap;

use actix_web::http::Method;
use serde_json::json;
use url::Url;

use crate::support::{
    CHALLENGE, CHROME_ACCEPT, FIREFOX_ACCEPT, SAFARI_ACCEPT, TestApp, header, json, text,
};

const REGISTRATION_REL: &str = "rel=\"http://oauth.net/core/2.1/#registration\"";
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// A query string built the way a client library builds it.
fn query(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// The query parameters of a `Location` header, with the URL they were appended to.
fn location(location: &str) -> (Url, HashMap<String, String>) {
    let url =
        Url::parse(location).unwrap_or_else(|e| panic!("Location {location:?} is not a URL: {e}"));
    let params = url.query_pairs().into_owned().collect();
    (url, params)
}

/// A `state` of exactly 4 KiB, full of characters that need encoding.
fn awkward_state() -> String {
    let pattern = [
        '&', '=', '+', ' ', '/', '?', 'é', '%', '#', ';', '"', '<', '\'', '😀', 'Z',
    ];
    let mut s = String::new();
    for c in pattern.iter().cycle() {
        if s.len() + c.len_utf8() > 4096 {
            break;
        }
        s.push(*c);
    }
    while s.len() < 4096 {
        s.push('x');
    }
    s
}

/// One step-4 case: its name, the parameters added to a valid base, the expected error.
type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);

/// The metadata URL of an app whose issuer has no path.
fn metadata_url(app: &TestApp) -> String {
    format!("{}/.well-known/oauth-authorization-server", app.base)
}

#[actix_web::test]
async fn accept_header_chooses_html_or_json_for_an_unknown_client() {
    let app = TestApp::spawn().await;
    let cases: [(&str, Option<&str>, bool); 9] = [
        ("Chrome", Some(CHROME_ACCEPT), true),
        ("Firefox", Some(FIREFOX_ACCEPT), true),
        ("Safari", Some(SAFARI_ACCEPT), true),
        ("curl", Some("*/*"), false),
        ("no Accept", None, false),
        ("JSON", Some("application/json"), false),
        ("HTML refused", Some("text/html;q=0"), false),
        ("upper case", Some("TEXT/HTML"), true),
        (
            "JSON preferred",
            Some("text/html;q=0.5, application/json"),
            false,
        ),
    ];

    for (name, accept, want_html) in cases {
        let mut req = app.get("/authorize?client_id=not-registered&response_type=code");
        if let Some(a) = accept {
            req = req.insert_header(("accept", a));
        }
        let mut res = req.send().await.expect("GET /authorize");
        let content_type = header(&res, "content-type");
        let body = text(&mut res).await;

        assert_eq!(res.status(), 400, "{name}");
        assert!(
            res.headers().get("location").is_none(),
            "{name}: must not redirect"
        );
        if want_html {
            assert!(
                content_type.starts_with("text/html"),
                "{name}: got {content_type}"
            );
            assert!(body.contains("<!DOCTYPE html>"), "{name}: not a page");
        } else {
            assert!(
                content_type.starts_with("application/json"),
                "{name}: got {content_type}"
            );
            let doc: serde_json::Value =
                serde_json::from_str(&body).unwrap_or_else(|e| panic!("{name}: {e}: {body}"));
            assert_eq!(doc["error"], "invalid_client", "{name}");
        }
    }
}

#[actix_web::test]
async fn unregistered_answer_carries_cache_vary_and_link_headers_in_both_renderers() {
    let app = TestApp::spawn().await;
    let registration = format!("<{}/register>; {REGISTRATION_REL}", app.issuer);
    let metadata = format!("<{}>", metadata_url(&app));

    for accept in [CHROME_ACCEPT, "application/json"] {
        let res = app
            .get("/authorize?client_id=nobody")
            .insert_header(("accept", accept))
            .send()
            .await
            .expect("GET");

        assert_eq!(res.status(), 400, "{accept}");
        assert_eq!(header(&res, "cache-control"), "no-store", "{accept}");
        assert!(
            header(&res, "vary").to_ascii_lowercase().contains("accept"),
            "{accept}: Vary {:?}",
            header(&res, "vary")
        );
        let link = header(&res, "link");
        assert!(
            link.contains(&registration),
            "{accept}: Link {link:?} lacks {registration}"
        );
        assert!(
            link.contains(&metadata),
            "{accept}: Link {link:?} lacks the metadata document"
        );
    }
}

#[actix_web::test]
async fn html_answers_carry_the_security_headers() {
    let app = TestApp::spawn().await;
    let requests = [
        "/authorize?client_id=nobody",   // the unregistered page
        "/authorize?response_type=code", // missing client_id: the error page
    ];

    for path in requests {
        let res = app
            .get(path)
            .insert_header(("accept", CHROME_ACCEPT))
            .send()
            .await
            .expect("GET");

        assert!(
            header(&res, "content-type").starts_with("text/html"),
            "{path}"
        );
        assert_eq!(header(&res, "content-security-policy"), CSP, "{path}");
        assert_eq!(header(&res, "x-frame-options"), "DENY", "{path}");
        assert_eq!(header(&res, "x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header(&res, "referrer-policy"), "no-referrer", "{path}");
        assert_eq!(header(&res, "cache-control"), "no-store", "{path}");
    }
}

#[actix_web::test]
async fn unregistered_json_has_the_documented_shape() {
    let app = TestApp::spawn().await;

    let mut res = app
        .get(&format!(
            "/authorize?{}",
            query(&[
                ("client_id", "forgotten-client"),
                ("response_type", "code"),
                ("state", "s t&u")
            ])
        ))
        .insert_header(("accept", "application/json"))
        .send()
        .await
        .expect("GET");
    let doc = json(&mut res).await;

    assert_eq!(res.status(), 400);
    assert_eq!(doc["error"], "invalid_client");
    assert_eq!(doc["reason"], "unknown");
    assert_eq!(doc["client_id"], "forgotten-client");
    assert_eq!(doc["state"], "s t&u");
    let registration = format!("{}/register", app.issuer);
    assert_eq!(doc["registration_endpoint"], registration.as_str());
    assert_eq!(
        doc["authorization_server_metadata"],
        metadata_url(&app).as_str()
    );
    let description = doc["error_description"]
        .as_str()
        .expect("error_description");
    assert!(description.contains("not registered"), "{description}");
    assert!(description.contains(&registration), "{description}");
    assert!(description.contains("retry"), "{description}");
    assert!(!description.contains('\n'), "one sentence: {description}");
}

#[actix_web::test]
async fn unregistered_json_echoes_a_4_kib_state_byte_exact() {
    let app = TestApp::spawn().await;
    let state = awkward_state();

    let mut res = app
        .get(&format!(
            "/authorize?{}",
            query(&[("client_id", "nobody"), ("state", state.as_str())])
        ))
        .send()
        .await
        .expect("GET");
    let doc = json(&mut res).await;

    assert_eq!(res.status(), 400);
    assert!(doc["state"] == state.as_str(), "state must be byte-exact");
}

#[actix_web::test]
async fn unregistered_json_omits_state_when_none_was_sent() {
    let app = TestApp::spawn().await;

    let mut res = app
        .get("/authorize?client_id=forgotten-client")
        .send()
        .await
        .expect("GET");
    let doc = json(&mut res).await;

    assert_eq!(res.status(), 400);
    assert!(doc.get("state").is_none(), "{doc}");
}

#[actix_web::test]
async fn unregistered_html_page_explains_and_offers_a_prefilled_form() {
    let app = TestApp::with(&[("branding.name", "Acme Sign-in")]).await;
    let redirect = "http://127.0.0.1:5555/callback";

    let mut res = app
        .get(&format!(
            "/authorize?{}",
            query(&[
                ("client_id", "forgotten"),
                ("redirect_uri", redirect),
                ("response_type", "code")
            ])
        ))
        .insert_header(("accept", CHROME_ACCEPT))
        .send()
        .await
        .expect("GET");
    let cookie = header(&res, "set-cookie");
    let page = text(&mut res).await;

    assert_eq!(res.status(), 400);
    assert!(page.contains("Acme Sign-in"), "branding name shown");
    assert!(page.contains(">forgotten<"), "client_id shown");
    assert!(page.contains("<ol class=\"steps\">"), "numbered steps");
    assert!(
        page.contains(&format!("href=\"{}\"", metadata_url(&app))),
        "metadata link"
    );
    assert!(
        page.contains(&format!("href=\"{}\"", doorman::metadata::PROJECT_DOCS)),
        "link to the registration documentation"
    );
    assert!(
        page.contains(&format!("action=\"{}/register\"", app.issuer)),
        "form posts to the registration endpoint"
    );
    assert!(
        page.contains(&format!(">{redirect}</textarea>")),
        "redirect_uris prefilled"
    );
    assert!(
        page.contains("name=\"client_type\" value=\"public\""),
        "client type choice"
    );
    assert!(
        page.contains("name=\"client_type\" value=\"confidential\""),
        "client type choice"
    );
    assert!(page.contains("name=\"scope\""), "scope field");
    assert!(page.contains("name=\"csrf_token\""), "CSRF token");
    assert!(
        cookie.starts_with("doorman_csrf="),
        "CSRF cookie: {cookie:?}"
    );
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie:?}"
    );
    assert!(!page.contains("<script"), "no script at all");
}

#[actix_web::test]
async fn html_page_stylesheet_and_logo_are_served_from_static() {
    for issuer_path in ["", "/auth"] {
        let app = TestApp::with(&[("issuer_path", issuer_path)]).await;

        let mut res = app
            .get(&format!("{issuer_path}/authorize?client_id=x"))
            .insert_header(("accept", CHROME_ACCEPT))
            .send()
            .await
            .expect("GET");
        let page = text(&mut res).await;

        for marker in [
            "<link rel=\"stylesheet\" href=\"",
            "<img class=\"logo\" src=\"",
        ] {
            let start = page
                .find(marker)
                .unwrap_or_else(|| panic!("{marker} missing"))
                + marker.len();
            let href = &page[start..start + page[start..].find('"').expect("closing quote")];
            assert!(
                href.starts_with(&format!("{issuer_path}/static/")),
                "{href}"
            );
            assert!(!href.contains("://"), "no third-party URL: {href}");
            let res = app.get(href).send().await.expect("GET static");
            assert_eq!(res.status(), 200, "{href} must be served");
        }
    }
}

#[actix_web::test]
async fn script_client_id_is_escaped_in_html() {
    let app = TestApp::spawn().await;

    let mut res = app
        .get("/authorize?client_id=%3Cscript%3Ealert(1)%3C%2Fscript%3E&response_type=code")
        .insert_header(("accept", CHROME_ACCEPT))
        .send()
        .await
        .expect("GET");
    let page = text(&mut res).await;

    assert_eq!(res.status(), 400);
    assert!(res.headers().get("location").is_none(), "must not redirect");
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "client_id must be escaped"
    );
    assert!(
        !page.contains("<script"),
        "no script element may reach the page"
    );
}

#[actix_web::test]
async fn script_client_id_is_intact_in_valid_json() {
    let app = TestApp::spawn().await;

    let mut res = app
        .get("/authorize?client_id=%3Cscript%3Ealert(%22x%22)%3C%2Fscript%3E")
        .send()
        .await
        .expect("GET");
    let content_type = header(&res, "content-type");
    let doc = json(&mut res).await;

    assert_eq!(res.status(), 400);
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    assert_eq!(doc["client_id"], "<script>alert(\"x\")</script>");
}

#[actix_web::test]
async fn unknown_client_with_an_otherwise_malformed_request_still_gets_the_unregistered_answer() {
    let app = TestApp::spawn().await;
    let q = query(&[
        ("client_id", "stranger"),
        ("response_type", "token"),
        ("redirect_uri", "javascript:alert(document.cookie)"),
        ("code_challenge_method", "plain"),
        ("resource", "not a uri#frag"),
        ("scope", "x"),
        ("scope", "y"),
        ("state", "abc"),
    ]);

    for accept in ["application/json", CHROME_ACCEPT] {
        let mut res = app
            .get(&format!("/authorize?{q}"))
            .insert_header(("accept", accept))
            .send()
            .await
            .expect("GET");
        let body = text(&mut res).await;

        assert_eq!(res.status(), 400, "{accept}");
        assert!(
            res.headers().get("location").is_none(),
            "{accept}: never redirect for an unknown client"
        );
        assert!(
            header(&res, "link").contains(REGISTRATION_REL),
            "{accept}: the unregistered answer"
        );
        if accept == "application/json" {
            let doc: serde_json::Value = serde_json::from_str(&body).expect("JSON");
            assert_eq!(doc["error"], "invalid_client");
            assert_eq!(doc["reason"], "unknown");
            assert_eq!(doc["state"], "abc");
        } else {
            assert!(body.contains(">stranger<"), "the page names the client");
        }
    }
}

#[actix_web::test]
async fn missing_client_id_is_a_direct_invalid_request() {
    let app = TestApp::spawn().await;
    let q = query(&[
        ("response_type", "code"),
        ("redirect_uri", "https://evil.example/cb"),
        ("state", "st"),
    ]);

    let mut res = app
        .get(&format!("/authorize?{q}"))
        .send()
        .await
        .expect("GET");
    let doc = json(&mut res).await;
    let page_res = app
        .get(&format!("/authorize?{q}"))
        .insert_header(("accept", CHROME_ACCEPT))
        .send()
        .await
        .expect("GET");

    assert_eq!(res.status(), 400);
    assert!(res.headers().get("location").is_none(), "must not redirect");
    assert_eq!(header(&res, "cache-control"), "no-store");
    assert_eq!(doc["error"], "invalid_request");
    assert!(
        doc["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("client_id")),
        "{doc}"
    );
    assert!(
        doc.get("registration_endpoint").is_none(),
        "no hints that do not apply: {doc}"
    );
    assert!(doc.get("reason").is_none(), "{doc}");
    assert_eq!(page_res.status(), 400);
    assert!(
        page_res.headers().get("location").is_none(),
        "HTML: must not redirect"
    );
    assert!(header(&page_res, "content-type").starts_with("text/html"));
}

#[actix_web::test]
async fn repeated_client_id_is_a_direct_invalid_request() {
    let app = TestApp::spawn().await;
    let client_id = app.register_public("http://127.0.0.1/callback").await;

    let mut res = app
        .get(&format!(
            "/authorize?client_id={client_id}&client_id=other&response_type=code"
        ))
        .send()
        .await
        .expect("GET");
    let doc = json(&mut res).await;

    assert_eq!(res.status(), 400);
    assert!(res.headers().get("location").is_none());
    assert_eq!(doc["error"], "invalid_request");
}

#[actix_web::test]
async fn registration_disabled_gives_its_reason_without_registration_hints() {
    let app = TestApp::with(&[("registration.enabled", "false")]).await;

    let mut json_res = app
        .get("/authorize?client_id=stranger")
        .send()
        .await
        .expect("GET");
    let doc = json(&mut json_res).await;
    let mut html_res = app
        .get("/authorize?client_id=stranger")
        .insert_header(("accept", CHROME_ACCEPT))
        .send()
        .await
        .expect("GET");
    let page = text(&mut html_res).await;

    assert_eq!(json_res.status(), 400);
    assert_eq!(doc["error"], "invalid_client");
    assert_eq!(doc["reason"], "registration_disabled");
    assert!(doc.get("registration_endpoint").is_none(), "{doc}");
    assert!(doc["authorization_server_metadata"].is_string(), "{doc}");
    assert!(
        !header(&json_res, "link").contains(REGISTRATION_REL),
        "no Link to a registration endpoint that is off"
    );
    assert_eq!(html_res.status(), 400);
    assert!(!page.contains("<form"), "no registration form");
    assert!(
        page.contains("operator"),
        "tells the person to ask the operator"
    );
    assert!(
        html_res.headers().get("set-cookie").is_none(),
        "no CSRF cookie without a form"
    );
}

#[actix_web::test]
async fn registration_form_setting_hides_the_form_but_keeps_the_json_hints() {
    let app = TestApp::with(&[("registration.form", "false")]).await;

    let mut page_res = app
        .get("/authorize?client_id=stranger")
        .insert_header(("accept", CHROME_ACCEPT))
        .send()
        .await
        .expect("GET");
    let page = text(&mut page_res).await;
    let mut json_res = app
        .get("/authorize?client_id=stranger")
        .send()
        .await
        .expect("GET");
    let doc = json(&mut json_res).await;

    assert_eq!(page_res.status(), 400);
    assert!(!page.contains("<form"), "no form");
    assert!(
        !page.contains("below"),
        "steps do not point at a missing form"
    );
    assert_eq!(doc["reason"], "unknown");
    assert!(doc["registration_endpoint"].is_string());
}

#[actix_web::test]
async fn lapsed_registration_gets_reason_expired() {
    let app = TestApp::with(&[("registration.client_ttl", "60")]).await;
    let client_id = app.register_public("http://127.0.0.1/callback").await;
    let path = format!("/authorize?client_id={client_id}&response_type=token&state=s");
    let before = app.get(&path).send().await.expect("GET");

    app.clock.advance(61);
    let mut res = app.get(&path).send().await.expect("GET");
    let doc = json(&mut res).await;
    let mut page_res = app
        .get(&path)
        .insert_header(("accept", CHROME_ACCEPT))
        .send()
        .await
        .expect("GET");
    let page = text(&mut page_res).await;

    assert_eq!(before.status(), 302, "known while its registration lasts");
    assert_eq!(res.status(), 400);
    assert!(res.headers().get("location").is_none());
    assert_eq!(doc["error"], "invalid_client");
    assert_eq!(doc["reason"], "expired");
    assert_eq!(doc["client_id"], client_id.as_str());
    assert_eq!(doc["state"], "s");
    assert!(doc["registration_endpoint"].is_string());
    assert_eq!(page_res.status(), 400);
    assert!(
        page.contains("expired"),
        "the page says the registration lapsed"
    );
}

#[actix_web::test]
async fn registration_lifetime_is_measured_on_the_servers_clock() {
    let app = TestApp::with(&[("registration.client_ttl", "60")]).await;
    app.clock.advance(3600);
    let client_id = app.register_public("http://127.0.0.1/callback").await;
    let path = format!("/authorize?client_id={client_id}&response_type=token");

    let fresh = app.get(&path).send().await.expect("GET");
    app.clock.advance(61);
    let lapsed = app.get(&path).send().await.expect("GET");

    assert_eq!(
        fresh.status(),
        302,
        "a client registered a moment ago has not lapsed"
    );
    assert_eq!(lapsed.status(), 400);
}

#[actix_web::test]
async fn unregistered_redirect_uri_is_refused_directly_naming_the_registered_uris() {
    let app = TestApp::spawn().await;
    let doc = app
        .register(json!({
            "redirect_uris": ["http://127.0.0.1/callback", "https://app.example.com/cb"],
            "token_endpoint_auth_method": "none",
        }))
        .await;
    let client_id = doc["client_id"].as_str().expect("client_id");
    let q = query(&[
        ("client_id", client_id),
        ("redirect_uri", "https://evil.example/cb"),
        ("response_type", "code"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
        ("state", "st"),
    ]);

    let mut res = app
        .get(&format!("/authorize?{q}"))
        .send()
        .await
        .expect("GET");
    let body = json(&mut res).await;
    let mut page_res = app
        .get(&format!("/authorize?{q}"))
        .insert_header(("accept", CHROME_ACCEPT))
        .send()
        .await
        .expect("GET");
    let page = text(&mut page_res).await;

    assert_eq!(res.status(), 400);
    assert!(
        res.headers().get("location").is_none(),
        "never redirect to an unvalidated URI"
    );
    assert_eq!(header(&res, "cache-control"), "no-store");
    assert_eq!(body["error"], "invalid_request");
    let description = body["error_description"].as_str().expect("description");
    assert!(
        description.contains("http://127.0.0.1/callback"),
        "{description}"
    );
    assert!(
        description.contains("https://app.example.com/cb"),
        "{description}"
    );
    assert!(body.get("registration_endpoint").is_none(), "{body}");
    assert_eq!(page_res.status(), 400);
    assert!(page_res.headers().get("location").is_none());
    assert!(
        page.contains("https://app.example.com/cb"),
        "the page says what was compared"
    );
}

#[actix_web::test]
async fn omitted_redirect_uri_is_refused_when_several_are_registered() {
    let app = TestApp::spawn().await;
    let doc = app
        .register(json!({
            "redirect_uris": ["http://127.0.0.1/callback", "https://app.example.com/cb"],
            "token_endpoint_auth_method": "none",
        }))
        .await;
    let client_id = doc["client_id"].as_str().expect("client_id");

    let mut res = app
        .get(&format!(
            "/authorize?client_id={client_id}&response_type=token"
        ))
        .send()
        .await
        .expect("GET");
    let body = json(&mut res).await;

    assert_eq!(res.status(), 400);
    assert!(res.headers().get("location").is_none());
    assert_eq!(body["error"], "invalid_request");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("https://app.example.com/cb")),
        "{body}"
    );
}

#[actix_web::test]
async fn omitted_redirect_uri_uses_the_only_registered_one() {
    let app = TestApp::spawn().await;
    let client_id = app.operator_public("https://app.example.com/cb").await;

    let res = app
        .get(&format!(
            "/authorize?client_id={client_id}&response_type=token"
        ))
        .send()
        .await
        .expect("GET");

    assert_eq!(res.status(), 302);
    let (url, params) = location(&header(&res, "location"));
    assert_eq!(
        url.as_str().split('?').next(),
        Some("https://app.example.com/cb")
    );
    assert_eq!(params["error"], "unsupported_response_type");
}

#[actix_web::test]
async fn loopback_redirect_uris_match_on_any_port_but_nothing_else_varies() {
    let app = TestApp::spawn().await;
    let doc = app
        .register(json!({
            "redirect_uris": ["http://127.0.0.1/callback", "http://localhost:3000/cb", "http://[::1]/cb", "https://app.example.com/cb"],
            "token_endpoint_auth_method": "none",
        }))
        .await;
    let client_id = doc["client_id"].as_str().expect("client_id");
    let accepted = [
        "http://127.0.0.1/callback",
        "http://127.0.0.1:49152/callback",
        "http://localhost:3000/cb",
        "http://localhost:8123/cb",
        "http://localhost/cb",
        "http://[::1]:5555/cb",
    ];
    let refused = [
        "http://localhost:49152/callback",     // other host
        "http://127.0.0.1:3000/cb",            // other host
        "http://127.0.0.1:49152/callback/",    // other path
        "http://127.0.0.1:49152/Callback",     // other path
        "http://127.0.0.1:49152/callback?x=1", // other query
        "https://127.0.0.1:49152/callback",    // other scheme
        "https://app.example.com:8443/cb",     // the any-port rule is for loopback http only
        "http://127.0.0.2:49152/callback",     // other address
    ];

    for uri in accepted {
        // response_type=token fails at step 4, so an accepted URI shows as a redirect to it.
        let res = app
            .get(&format!(
                "/authorize?{}",
                query(&[
                    ("client_id", client_id),
                    ("redirect_uri", uri),
                    ("response_type", "token")
                ])
            ))
            .send()
            .await
            .expect("GET");

        assert_eq!(res.status(), 302, "{uri} must match");
        let loc = header(&res, "location");
        assert!(
            loc.starts_with(&format!("{uri}?")),
            "{uri}: redirected to {loc}"
        );
    }
    for uri in refused {
        let res = app
            .get(&format!(
                "/authorize?{}",
                query(&[
                    ("client_id", client_id),
                    ("redirect_uri", uri),
                    ("response_type", "token")
                ])
            ))
            .send()
            .await
            .expect("GET");

        assert_eq!(res.status(), 400, "{uri} must not match");
        assert!(
            res.headers().get("location").is_none(),
            "{uri}: no redirect"
        );
    }
}

#[actix_web::test]
async fn step_four_errors_redirect_with_error_state_and_iss() {
    let app = TestApp::spawn().await;
    let client_id = app.register_public("http://127.0.0.1/callback").await;
    let redirect = "http://127.0.0.1:61234/callback";
    let state = awkward_state();
    let base = [
        ("client_id", client_id.as_str()),
        ("redirect_uri", redirect),
        ("state", state.as_str()),
    ];
    let short = "a".repeat(42);
    let long = "a".repeat(129);
    let cases: Vec<Case> = vec![
        (
            "response_type=token",
            vec![("response_type", "token"), ("code_challenge", CHALLENGE)],
            "unsupported_response_type",
        ),
        (
            "no response_type",
            vec![("code_challenge", CHALLENGE)],
            "invalid_request",
        ),
        (
            "no code_challenge",
            vec![("response_type", "code")],
            "invalid_request",
        ),
        (
            "short code_challenge",
            vec![
                ("response_type", "code"),
                ("code_challenge", short.as_str()),
            ],
            "invalid_request",
        ),
        (
            "long code_challenge",
            vec![("response_type", "code"), ("code_challenge", long.as_str())],
            "invalid_request",
        ),
        (
            "bad characters",
            vec![
                ("response_type", "code"),
                (
                    "code_challenge",
                    "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM",
                ),
            ],
            "invalid_request",
        ),
        (
            "plain",
            vec![
                ("response_type", "code"),
                ("code_challenge", CHALLENGE),
                ("code_challenge_method", "plain"),
            ],
            "invalid_request",
        ),
        (
            "resource with fragment",
            vec![
                ("response_type", "code"),
                ("code_challenge", CHALLENGE),
                ("resource", "https://mcp.example.com/mcp#x"),
            ],
            "invalid_target",
        ),
        (
            "relative resource",
            vec![
                ("response_type", "code"),
                ("code_challenge", CHALLENGE),
                ("resource", "/mcp"),
            ],
            "invalid_target",
        ),
        (
            "resource not served",
            vec![
                ("response_type", "code"),
                ("code_challenge", CHALLENGE),
                ("resource", "http://mcp.example.com/mcp"),
            ],
            "invalid_target",
        ),
        (
            "duplicate parameter",
            vec![
                ("response_type", "code"),
                ("code_challenge", CHALLENGE),
                ("scope", "mcp"),
                ("scope", "mcp"),
            ],
            "invalid_request",
        ),
    ];

    for (name, extra, code) in cases {
        let mut pairs = base.to_vec();
        pairs.extend(extra);
        let q = query(&pairs);

        let get = app
            .get(&format!("/authorize?{q}"))
            .send()
            .await
            .expect("GET");
        let post = app
            .post("/authorize")
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .send_body(q.clone())
            .await
            .expect("POST");

        for (method, res) in [("GET", get), ("POST", post)] {
            assert_eq!(res.status(), 302, "{method} {name}");
            assert_eq!(header(&res, "cache-control"), "no-store", "{method} {name}");
            let (url, params) = location(&header(&res, "location"));
            assert_eq!(
                url.as_str().split('?').next(),
                Some(redirect),
                "{method} {name}: to the validated URI"
            );
            assert_eq!(
                params.get("error").map(String::as_str),
                Some(code),
                "{method} {name}"
            );
            assert!(
                params
                    .get("error_description")
                    .is_some_and(|d| !d.is_empty()),
                "{method} {name}"
            );
            assert!(
                params.get("state") == Some(&state),
                "{method} {name}: state must be byte-exact"
            );
            assert_eq!(params.get("iss"), Some(&app.issuer), "{method} {name}");
            assert!(!params.contains_key("code"), "{method} {name}");
        }
    }
}

#[actix_web::test]
async fn error_redirect_keeps_the_redirect_uris_own_query() {
    let app = TestApp::spawn().await;
    let client_id = app
        .operator_public("https://app.example.com/cb?tenant=a%20b")
        .await;

    let res = app
        .get(&format!(
            "/authorize?{}",
            query(&[
                ("client_id", client_id.as_str()),
                ("redirect_uri", "https://app.example.com/cb?tenant=a%20b"),
                ("response_type", "token")
            ])
        ))
        .send()
        .await
        .expect("GET");

    assert_eq!(res.status(), 302);
    let loc = header(&res, "location");
    assert!(
        loc.starts_with("https://app.example.com/cb?tenant=a%20b&"),
        "{loc}"
    );
    let (_, params) = location(&loc);
    assert_eq!(params["tenant"], "a b");
    assert_eq!(params["error"], "unsupported_response_type");
}

#[actix_web::test]
async fn post_authorize_with_a_form_body_behaves_like_get() {
    let app = TestApp::spawn().await;
    let client_id = app.register_public("http://127.0.0.1/callback").await;
    let form = |pairs: &[(&str, &str)]| query(pairs);

    let mut unknown = app
        .post("/authorize")
        .insert_header(("content-type", "application/x-www-form-urlencoded"))
        .send_body(form(&[("client_id", "stranger"), ("state", "st")]))
        .await
        .expect("POST");
    let unknown_doc = json(&mut unknown).await;
    let mut unknown_page = app
        .post("/authorize")
        .insert_header(("content-type", "application/x-www-form-urlencoded"))
        .insert_header(("accept", CHROME_ACCEPT))
        .send_body(form(&[("client_id", "<b>stranger</b>")]))
        .await
        .expect("POST");
    let page = text(&mut unknown_page).await;
    let mut missing = app
        .post("/authorize")
        .insert_header(("content-type", "application/x-www-form-urlencoded"))
        .send_body(form(&[("response_type", "code")]))
        .await
        .expect("POST");
    let missing_doc = json(&mut missing).await;
    let bad_redirect = app
        .post("/authorize")
        .insert_header(("content-type", "application/x-www-form-urlencoded"))
        .send_body(form(&[
            ("client_id", client_id.as_str()),
            ("redirect_uri", "https://evil.example/cb"),
            ("response_type", "token"),
        ]))
        .await
        .expect("POST");

    assert_eq!(unknown.status(), 400);
    assert_eq!(unknown_doc["error"], "invalid_client");
    assert_eq!(unknown_doc["reason"], "unknown");
    assert_eq!(unknown_doc["state"], "st");
    assert_eq!(unknown_page.status(), 400);
    assert!(
        page.contains("&lt;b&gt;stranger&lt;/b&gt;"),
        "escaped on the POST page too"
    );
    assert_eq!(missing.status(), 400);
    assert_eq!(missing_doc["error"], "invalid_request");
    assert_eq!(bad_redirect.status(), 400);
    assert!(bad_redirect.headers().get("location").is_none());
}

#[actix_web::test]
async fn valid_request_is_neither_refused_nor_redirected_with_an_error() {
    let app = TestApp::spawn().await;
    let client_id = app.register_public("http://127.0.0.1/callback").await;
    let q = query(&[
        ("client_id", client_id.as_str()),
        ("redirect_uri", "http://127.0.0.1:50000/callback"),
        ("response_type", "code"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
        ("scope", "openid mcp offline_access"),
        ("resource", "https://mcp.example.com/mcp"),
        ("state", "abc"),
    ]);

    for accept in ["application/json", CHROME_ACCEPT] {
        let res = app
            .get(&format!("/authorize?{q}"))
            .insert_header(("accept", accept))
            .send()
            .await
            .expect("GET");

        assert_ne!(res.status(), 400, "{accept}");
        let loc = header(&res, "location");
        assert!(!loc.contains("error="), "{accept}: error redirect {loc}");
        assert_eq!(header(&res, "cache-control"), "no-store", "{accept}");
    }
}

#[actix_web::test]
async fn error_redirect_carries_the_issuer_with_its_path_even_at_the_origin_root() {
    let app = TestApp::with(&[("issuer_path", "/auth")]).await;
    let client_id = app.register_public("http://127.0.0.1/callback").await;
    let q = query(&[
        ("client_id", client_id.as_str()),
        ("response_type", "token"),
        ("state", "s"),
    ]);

    for path in ["/auth/authorize", "/authorize"] {
        let res = app.get(&format!("{path}?{q}")).send().await.expect("GET");

        assert_eq!(res.status(), 302, "{path}");
        let (_, params) = location(&header(&res, "location"));
        assert_eq!(params.get("iss"), Some(&app.issuer), "{path}");
        assert!(app.issuer.ends_with("/auth"));
    }
}

#[actix_web::test]
async fn oversized_authorize_body_is_refused_with_413() {
    let app = TestApp::spawn().await;
    let body = format!("client_id=nobody&padding={}", "x".repeat(70 * 1024));

    let mut res = app
        .post("/authorize")
        .insert_header(("content-type", "application/x-www-form-urlencoded"))
        .send_body(body)
        .await
        .expect("POST");
    let doc = json(&mut res).await;

    assert_eq!(res.status(), 413);
    assert!(res.headers().get("location").is_none());
    assert_eq!(header(&res, "cache-control"), "no-store");
    assert_eq!(doc["error"], "invalid_request");
}

/// RFC 9110 §15.5.6: a method /authorize does not serve gets 405 with `Allow` naming the two
/// it does, once each, at the root and under an issuer path.
#[actix_web::test]
async fn other_methods_get_405_with_allow() {
    for issuer_path in ["", "/auth"] {
        let app = if issuer_path.is_empty() {
            TestApp::spawn().await
        } else {
            TestApp::with_issuer(&[], &format!("http://127.0.0.1{issuer_path}")).await
        };
        for method in [Method::DELETE, Method::PUT, Method::PATCH, Method::OPTIONS] {
            let res = app
                .client()
                .request(
                    method.clone(),
                    app.url(&format!("{issuer_path}/authorize?client_id=x")),
                )
                .send()
                .await
                .expect("request");

            assert_eq!(res.status(), 405, "{method} {issuer_path}/authorize");
            assert_eq!(header(&res, "allow"), "GET, POST", "{method}");
        }
        let res = app
            .get(&format!("{issuer_path}/authorize?client_id=x"))
            .insert_header(("Accept", "application/json"))
            .send()
            .await
            .expect("GET");
        assert_eq!(res.status(), 400);
    }
}
