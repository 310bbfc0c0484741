//! JWT access tokens (RFC 9068), their keys and rotation, `access::verify`, and the resource
//! rules of issue 16 (docs/behaviour.md §13).

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::Value;

use crate::flow::{
    Client, RESOURCE, assert_oauth_error, dev_app, enc, field, introspect, public_client, refresh,
    resource_server, revoke, token, tokens,
};
use crate::support::{TestApp, header, json, settings};
use doorman::flows::access::{self, Refusal};
use doorman::state::AppState;

/// Another process on the same store: its own key cache, the same keys.
fn process(app: &TestApp) -> AppState {
    AppState::new(app.settings.clone(), app.store.clone(), app.clock.clone())
}

async fn jwks(app: &TestApp) -> (JwkSet, String) {
    let mut res = app.get("/jwks.json").send().await.expect("jwks");
    assert_eq!(res.status(), 200);
    let cache = header(&res, "cache-control");
    let set: JwkSet = serde_json::from_value(json(&mut res).await).expect("a JWK set");
    (set, cache)
}

fn header_of(token: &str) -> jsonwebtoken::Header {
    jsonwebtoken::decode_header(token).expect("a JWT header")
}

/// Verifies `token` as a resource server would: against the served key set, for `aud`.
async fn verified(app: &TestApp, token: &str, aud: &str) -> Value {
    let (set, _) = jwks(app).await;
    let kid = header_of(token).kid.expect("kid");
    let jwk = set
        .find(&kid)
        .unwrap_or_else(|| panic!("{kid} is not published"));
    let key = DecodingKey::from_jwk(jwk).expect("usable key");
    let mut v = Validation::new(header_of(token).alg);
    v.set_audience(&[aud]);
    v.set_issuer(&[&app.issuer]);
    jsonwebtoken::decode::<Value>(token, &key, &v)
        .unwrap_or_else(|e| panic!("does not verify: {e}"))
        .claims
}

async fn client_credentials(app: &TestApp, server: &Client, resource: Option<&str>) -> Value {
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(r) = resource {
        form.push(("resource", r));
    }
    let res = token(app, server, &form).await;
    assert_eq!(res.status, 200, "{}", res.body);
    res.json()
}

async fn server_for(app: &TestApp, resources: &[&str]) -> Client {
    let created = app
        .operator_client(doorman::admin::NewClient {
            name: "MCP server".into(),
            resource_server: true,
            resources: resources.iter().map(|r| (*r).to_owned()).collect(),
            ..Default::default()
        })
        .await;
    Client {
        id: created.client.client_id,
        secret: created.client_secret,
    }
}

#[actix_web::test]
async fn access_tokens_are_rfc_9068_jwts_that_verify_against_the_jwks() {
    let app = dev_app(&[]).await;
    let client = public_client(&app).await;
    // (a) The resource as the client sent it, without the slash normalisation adds.
    let aud = "http://127.0.0.1:8000";
    let doc = tokens(&app, &client, &format!("&resource={}", enc(aud))).await;
    let at = field(&doc, "access_token");

    let h = header_of(at);
    assert_eq!(h.typ.as_deref(), Some("at+jwt"));
    assert_eq!(h.alg, jsonwebtoken::Algorithm::ES256);
    let claims = verified(&app, at, aud).await;
    assert_eq!(claims["iss"], app.issuer.as_str());
    assert_eq!(claims["aud"], aud, "echoed exactly");
    assert_eq!(claims["sub"], "dev");
    assert_eq!(claims["client_id"], client.id.as_str());
    assert_eq!(claims["scope"], doc["scope"]);
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        app.settings.tokens.access_ttl
    );
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 16));
    assert!(claims["family"].is_string());
    assert_eq!(doc["token_type"], "Bearer");

    let (set, cache) = jwks(&app).await;
    assert_eq!(set.keys.len(), 1);
    assert!(cache.contains("max-age=300"), "{cache}");
    let mut meta = app
        .get("/.well-known/oauth-authorization-server")
        .send()
        .await
        .unwrap();
    assert_eq!(
        json(&mut meta).await["jwks_uri"],
        format!("{}/jwks.json", app.issuer)
    );
}

#[actix_web::test]
async fn a_jwt_is_introspected_revoked_and_refreshed_like_an_opaque_token() {
    let app = dev_app(&[]).await;
    let client = public_client(&app).await;
    let server = resource_server(&app).await;
    let doc = tokens(&app, &client, &format!("&resource={}", enc(RESOURCE))).await;
    let at = field(&doc, "access_token");

    let info = introspect(&app, &server, at).await;
    assert_eq!(info["active"], true);
    assert_eq!(info["aud"], RESOURCE);
    let state = process(&app);
    let record = access::verify(&state.ctx(), at).await.unwrap().unwrap();
    assert_eq!(record.resource.as_deref(), Some(RESOURCE));
    assert_eq!(record.subject, "dev");

    let renewed = refresh(&app, &client, field(&doc, "refresh_token"), None).await;
    assert_eq!(renewed.status, 200, "{}", renewed.body);
    let at2 = renewed.json()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(verified(&app, &at2, RESOURCE).await["sub"], "dev");
    assert_eq!(
        verified(&app, &at2, RESOURCE).await["family"],
        verified(&app, at, RESOURCE).await["family"]
    );

    assert_eq!(revoke(&app, &client, at, None).await.status, 200);
    assert_eq!(introspect(&app, &server, at).await["active"], false);
    assert_eq!(
        access::verify(&state.ctx(), at).await.unwrap(),
        Err(Refusal::Revoked),
        "the gate refuses a revoked JWT at once, its signature notwithstanding"
    );
    assert!(access::verify(&state.ctx(), &at2).await.unwrap().is_ok());
}

#[actix_web::test]
async fn verify_tells_why_a_token_is_refused() {
    let app = dev_app(&[("tokens.access_ttl", "600")]).await;
    let client = public_client(&app).await;
    let doc = tokens(&app, &client, "").await;
    let at = field(&doc, "access_token");
    let state = process(&app);
    let ctx = state.ctx();

    let check = async |t: &str| access::verify(&state.ctx(), t).await.unwrap();
    assert!(check(at).await.is_ok());
    assert_eq!(check("").await, Err(Refusal::Malformed));
    assert_eq!(check("a b").await, Err(Refusal::Malformed));
    assert_eq!(check("RandomOpaqueValue_abc").await, Err(Refusal::Unknown));
    assert_eq!(check("x.y.z").await, Err(Refusal::Malformed));
    // The same claims signed by another key with our kid: the record lookup misses, the
    // signature says why.
    let (h, rest) = at.split_once('.').unwrap();
    let (payload, _) = rest.split_once('.').unwrap();
    let other = doorman::oauth::jwt::KeyPair::from_pem(
        &doorman::oauth::jwt::generate(doorman::records::Algorithm::ES256).unwrap(),
        doorman::records::Algorithm::ES256,
    )
    .unwrap();
    let claims: doorman::oauth::jwt::Claims = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .unwrap(),
    )
    .unwrap();
    let forged = other.sign(&claims).unwrap();
    let forged = format!("{h}.{}", forged.split_once('.').unwrap().1);
    assert_eq!(check(&forged).await, Err(Refusal::BadSignature));
    assert_eq!(ctx.now, state.ctx().now);

    app.clock.advance(601);
    assert_eq!(check(at).await, Err(Refusal::Expired));
}

#[actix_web::test]
async fn opaque_tokens_remain_available_and_verify_too() {
    let app = dev_app(&[("tokens.format", "opaque")]).await;
    let client = public_client(&app).await;
    let doc = tokens(&app, &client, "").await;
    let at = field(&doc, "access_token");
    assert!(!at.contains('.'), "{at}");
    let state = process(&app);

    assert!(access::verify(&state.ctx(), at).await.unwrap().is_ok());
    revoke(&app, &client, at, None).await;
    assert_eq!(
        access::verify(&state.ctx(), at).await.unwrap(),
        Err(Refusal::Unknown),
        "an opaque token's record is all there is"
    );
}

#[actix_web::test]
async fn rotation_publishes_first_switches_later_and_retires_the_old_key_after_its_tokens() {
    let app = dev_app(&[
        ("tokens.rotation_delay", "100"),
        ("tokens.access_ttl", "1000"),
        ("tokens.key_refresh", "1"),
    ])
    .await;
    let client = public_client(&app).await;
    let before = tokens(&app, &client, "").await;
    let old_at = field(&before, "access_token").to_owned();
    let old_kid = header_of(&old_at).kid.unwrap();

    let operator = process(&app);
    let mut out = Vec::new();
    doorman::admin::rotate_keys(&operator, &mut out)
        .await
        .unwrap();
    let printed = String::from_utf8(out).unwrap();
    // The serving process reads the key set again after key_refresh.
    app.clock.advance(2);
    let (set, _) = jwks(&app).await;
    assert_eq!(
        set.keys.len(),
        2,
        "the next key is published before it signs"
    );
    let new_kid = set
        .keys
        .iter()
        .filter_map(|k| k.common.key_id.clone())
        .find(|k| *k != old_kid)
        .unwrap();
    assert!(printed.contains(&new_kid), "{printed}");

    let during = tokens(&app, &client, "").await;
    assert_eq!(
        header_of(field(&during, "access_token")).kid.unwrap(),
        old_kid,
        "not before rotation_delay"
    );

    app.clock.advance(100);
    let after = tokens(&app, &client, "").await;
    let new_at = field(&after, "access_token");
    assert_eq!(header_of(new_at).kid.unwrap(), new_kid);
    let server = resource_server(&app).await;
    assert_eq!(
        verified(&app, &old_at, &app.issuer).await["sub"],
        "dev",
        "tokens signed before the switch still verify"
    );
    assert_eq!(introspect(&app, &server, &old_at).await["active"], true);
    assert!(
        access::verify(&process(&app).ctx(), new_at)
            .await
            .unwrap()
            .is_ok()
    );

    app.clock.advance(1000);
    let (set, _) = jwks(&app).await;
    let kids: Vec<_> = set
        .keys
        .iter()
        .filter_map(|k| k.common.key_id.clone())
        .collect();
    assert_eq!(
        kids,
        vec![new_kid.clone()],
        "the old key left with its last token"
    );
    let mut out = Vec::new();
    let later = process(&app);
    doorman::admin::rotate_keys(&later, &mut out).await.unwrap();
    assert!(
        String::from_utf8(out)
            .unwrap()
            .contains(&format!("retired {old_kid}")),
        "and leaves the store at the next rotation"
    );
}

#[actix_web::test]
async fn rs256_from_a_key_file() {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keys/rs256.pem");
    let app = dev_app(&[
        ("tokens.algorithm", "RS256"),
        ("tokens.signing_key_file", file),
    ])
    .await;
    let client = public_client(&app).await;
    let doc = tokens(&app, &client, "").await;
    let at = field(&doc, "access_token");

    assert_eq!(header_of(at).alg, jsonwebtoken::Algorithm::RS256);
    assert_eq!(verified(&app, at, &app.issuer).await["sub"], "dev");
    let mut out = Vec::new();
    assert!(
        doorman::admin::rotate_keys(&process(&app), &mut out)
            .await
            .is_err(),
        "a key file is rotated by replacing it"
    );
}

#[test]
fn the_signing_key_source_must_be_chosen_with_a_public_issuer_and_a_shared_store() {
    let load = |extra: &[(&str, &str)]| {
        let mut all = vec![
            ("issuer", "https://auth.example.com"),
            ("storage.backend", "redis"),
            ("login.session_secret", "0123456789abcdef0123456789abcdef"),
        ];
        all.extend_from_slice(extra);
        let env = all
            .iter()
            .map(|(k, v)| {
                (
                    format!("DOORMAN__{}", k.replace('.', "__").to_uppercase()),
                    (*v).to_owned(),
                )
            })
            .chain([(
                "DOORMAN__SERVER__STATIC_DIR".to_owned(),
                crate::support::static_dir().display().to_string(),
            )])
            .collect();
        doorman::settings::Settings::load(None, Some(env)).map(|_| ())
    };
    let es = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keys/es256.pem");
    let rs = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keys/rs256.pem");

    let refused = load(&[]).unwrap_err().to_string();
    assert!(refused.contains("tokens.signing_key"), "{refused}");
    load(&[("tokens.signing_key", "store")]).unwrap();
    load(&[("tokens.signing_key_file", es)]).unwrap();
    load(&[("tokens.format", "opaque")]).unwrap();
    let missing = load(&[("tokens.signing_key_file", "/nonexistent/key.pem")])
        .unwrap_err()
        .to_string();
    assert!(missing.contains("tokens.signing_key_file"), "{missing}");
    let wrong = load(&[("tokens.signing_key_file", rs)])
        .unwrap_err()
        .to_string();
    assert!(wrong.contains("tokens.signing_key_file"), "{wrong}");
    let needs = load(&[("tokens.signing_key", "file")])
        .unwrap_err()
        .to_string();
    assert!(needs.contains("tokens.signing_key_file"), "{needs}");
    // A loopback issuer (one machine) may keep its key in the store without saying so.
    settings(&[("storage.backend", "redis")]);
}

#[actix_web::test]
async fn introspection_answers_only_the_resource_server_of_the_token() {
    let app = dev_app(&[]).await;
    let client = public_client(&app).await;
    let mine = server_for(&app, &["HTTPS://mcp.example.com/mcp"]).await;
    let other = server_for(&app, &["https://other.example.com/"]).await;
    let doc = tokens(&app, &client, &format!("&resource={}", enc(RESOURCE))).await;
    let at = field(&doc, "access_token");

    assert_eq!(introspect(&app, &mine, at).await["active"], true);
    assert_eq!(
        introspect(&app, &other, at).await,
        serde_json::json!({"active": false}),
        "RFC 7662 §2.2: not for this resource server"
    );
}

#[actix_web::test]
async fn a_resource_may_be_required_or_defaulted() {
    let app = dev_app(&[("resources.require", "true")]).await;
    let server = resource_server(&app).await;
    let res = token(&app, &server, &[("grant_type", "client_credentials")]).await;
    assert_oauth_error(&res, 400, "invalid_target");
    let sent = "https://MCP.example.com";
    let doc = client_credentials(&app, &server, Some(sent)).await;
    assert_eq!(
        verified(&app, field(&doc, "access_token"), sent).await["aud"],
        sent
    );

    let default = "https://mcp.example.com/mcp";
    let app = dev_app(&[
        ("resources.require", "true"),
        ("resources.default", default),
    ])
    .await;
    let server = resource_server(&app).await;
    let doc = client_credentials(&app, &server, None).await;
    assert_eq!(
        verified(&app, field(&doc, "access_token"), default).await["aud"],
        default
    );
    let client = public_client(&app).await;
    let doc = tokens(&app, &client, "").await;
    assert_eq!(
        introspect(&app, &server, field(&doc, "access_token")).await["aud"],
        default,
        "old clients get the default resource"
    );
}

#[actix_web::test]
async fn a_token_without_resource_is_for_the_issuer_alone() {
    let app = dev_app(&[]).await;
    let client = public_client(&app).await;
    let doc = tokens(&app, &client, "").await;
    assert_eq!(
        verified(&app, field(&doc, "access_token"), &app.issuer).await["aud"],
        app.issuer.as_str()
    );
}

/// The key set lives in the store, so every process signs with the same keys and picks up a
/// rotation without a restart: on every backend.
#[actix_web::test]
async fn keys_are_shared_through_the_store_on_every_backend() {
    let backends = crate::support::EveryBackend::start();
    for mut overrides in backends.overrides() {
        let name = overrides[0].1;
        overrides.extend([("tokens.rotation_delay", "0"), ("tokens.key_refresh", "1")]);
        let app = dev_app(&overrides).await;
        let client = public_client(&app).await;
        let server = resource_server(&app).await;
        let first = tokens(&app, &client, "").await;
        let old_at = field(&first, "access_token").to_owned();
        let other = process(&app);
        assert!(
            access::verify(&other.ctx(), &old_at).await.unwrap().is_ok(),
            "{name}: another process knows the key"
        );

        doorman::admin::rotate_keys(&other, &mut Vec::new())
            .await
            .unwrap();
        app.clock.advance(2);
        let next = tokens(&app, &client, "").await;
        let new_at = field(&next, "access_token");
        assert_ne!(
            header_of(new_at).kid,
            header_of(&old_at).kid,
            "{name}: the running server switched without a restart"
        );
        for t in [old_at.as_str(), new_at] {
            assert_eq!(verified(&app, t, &app.issuer).await["sub"], "dev", "{name}");
            assert_eq!(introspect(&app, &server, t).await["active"], true, "{name}");
        }
        revoke(&app, &client, &old_at, None).await;
        assert_eq!(
            access::verify(&other.ctx(), &old_at).await.unwrap(),
            Err(Refusal::Revoked),
            "{name}"
        );
        app.stop().await;
    }
}

/// The binary refuses to start (exit 2, one line naming the key) when the key source must be
/// chosen or the key file cannot be used.
#[test]
fn the_binary_exits_2_naming_the_signing_key_setting() {
    let run = |extra: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_doorman"));
        cmd.arg("check-config")
            .env_clear()
            .env("DOORMAN__ISSUER", "https://auth.example.com")
            .env("DOORMAN__STORAGE__BACKEND", "redis")
            .env(
                "DOORMAN__LOGIN__SESSION_SECRET",
                "0123456789abcdef0123456789abcdef",
            );
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run doorman");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let (code, err) = run(&[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("tokens.signing_key"), "{err}");
    let (code, err) = run(&[
        ("DOORMAN__TOKENS__SIGNING_KEY", "file"),
        ("DOORMAN__TOKENS__SIGNING_KEY_FILE", "/nonexistent.pem"),
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("tokens.signing_key_file"), "{err}");
}
