//! Redis Cluster for real (issue 6 part 4): three masters on loopback ports, the
//! backend-agnostic store suite against them, listing across masters, one OAuth flow spread
//! over two Doorman processes sharing the cluster, and a master killed under load.
//!
//! CROSSSLOT: every store operation touches exactly one key (GET, SET .. PX, SET NX, GETDEL, a
//! script on one key — see `src/store/redis.rs`), so no operation needs its keys in one slot
//! and no key carries a `{…}` hash tag. Listing uses KEYS, which the cluster client sends to every master
//! and concatenates. These tests would fail with CROSSSLOT if that ever changed without tags.
#![allow(clippy::expect_used, clippy::unwrap_used)] // in tests, a failed expectation is a failed test

use std::collections::HashMap;
use std::time::{Duration, Instant};

use doorman::store::Store;
use serde_json::{Value, json};

use crate::faults::{Kind, Load, WORKERS, assert_all_found, wait_for};
use crate::storage::{conformance, kv_suite};
use crate::support::{
    CHALLENGE, CHROME_ACCEPT, RedisCluster, TestApp, VERIFIER, redis_cli, settings,
};
use doorman::store::Backend as _;
use doorman::store::kv::Kv;

const REDIRECT: &str = "http://127.0.0.1:4000/cb";

fn cluster_store(cluster: &RedisCluster) -> Store {
    let overrides = cluster.overrides();
    let pairs: Vec<(&str, &str)> = overrides
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    Store::open(&settings(&pairs).storage).expect("open the cluster store")
}

#[actix_web::test]
async fn the_store_conforms_on_a_three_master_cluster() {
    let cluster = RedisCluster::start();
    let store = cluster_store(&cluster);

    kv_suite(&store, "redis cluster").await;
    conformance(&store, "redis cluster").await;

    assert_eq!(store.backend_name(), "redis");
}

#[actix_web::test]
async fn client_listing_gathers_keys_from_every_master() {
    let cluster = RedisCluster::start();
    let store = cluster_store(&cluster);
    let ids: Vec<String> = (0..30).map(|n| format!("listing-client-{n:02}")).collect();
    for id in &ids {
        store
            .put(&format!("client:{id}"), b"{}", None)
            .await
            .expect("put");
    }
    store.put("code:other", b"x", None).await.expect("put");

    let listed = store.client_ids().await.expect("client_ids");
    let keys = store.scan("client:").await.expect("scan");
    let per_node: Vec<u64> = cluster
        .ports
        .iter()
        .map(|p| {
            redis_cli(*p, &["dbsize"])
                .trim()
                .parse()
                .expect("DBSIZE answer")
        })
        .collect();

    assert!(
        per_node.iter().all(|n| *n > 0),
        "the keys are spread over all three masters: {per_node:?}"
    );
    assert_eq!(listed, ids, "every client, from every master, sorted");
    assert_eq!(keys.len(), ids.len(), "{keys:?}");
}

/// An HTTP answer, read completely.
struct Reply {
    status: u16,
    headers: awc::http::header::HeaderMap,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The value of a form field (`name="…" value="…"`) on this page.
    fn field(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("no field {name} on the page: {}", self.body))
            + marker.len();
        let len = self.body[start..].find('"').expect("closing quote");
        self.body[start..start + len].to_owned()
    }

    /// The session and the sign-in's browser binding, as a browser sends them back.
    fn session_cookie(&self) -> String {
        let cookies: Vec<&str> = self
            .headers
            .get_all("set-cookie")
            .filter_map(|v| v.to_str().ok())
            .filter_map(|line| line.split(';').next())
            .collect();
        assert!(
            cookies.iter().any(|c| c.starts_with("doorman_session=")),
            "session cookie"
        );
        cookies.join("; ")
    }

    fn location_params(&self) -> HashMap<String, String> {
        let url = url::Url::parse(self.header("location")).expect("Location is a URL");
        url.query_pairs().into_owned().collect()
    }
}

async fn send(req: awc::ClientRequest, form: Option<&[(&str, &str)]>) -> Reply {
    let mut res = match form {
        Some(form) => req.send_form(&form).await,
        None => req.send().await,
    }
    .expect("request");
    let body = res.body().limit(1 << 22).await.expect("body");
    Reply {
        status: res.status().as_u16(),
        headers: res.headers().clone(),
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[actix_web::test]
async fn two_processes_on_one_cluster_share_a_whole_flow() {
    let cluster = RedisCluster::start();
    let mut overrides = cluster.overrides();
    overrides.push(("login.mode".into(), "dev".into()));
    let pairs: Vec<(&str, &str)> = overrides
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    // Two processes behind one load balancer: one issuer, two addresses.
    let a = TestApp::with(&pairs).await;
    let b = TestApp::with_issuer(&pairs, &a.issuer).await;

    let doc = a
        .register(json!({"client_name": "Cluster client", "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}))
        .await;
    let client_id = doc["client_id"].as_str().expect("client_id").to_owned();
    let bearer = format!(
        "Bearer {}",
        doc["registration_access_token"].as_str().expect("token")
    );
    let read_on_b = send(
        b.get(&format!("/register/{client_id}"))
            .insert_header(("authorization", bearer.as_str())),
        None,
    )
    .await;
    let consent_page = send(
        a.get(&format!(
            "/authorize?response_type=code&client_id={}&redirect_uri={}&code_challenge={CHALLENGE}&code_challenge_method=S256&state=xyz&scope=mcp",
            enc(&client_id),
            enc(REDIRECT)
        ))
        .insert_header(("accept", CHROME_ACCEPT)),
        None,
    )
    .await;
    assert_eq!(consent_page.status, 200, "{}", consent_page.body);
    let cookie = consent_page.session_cookie();
    let approved = send(
        b.post("/consent")
            .insert_header(("cookie", cookie.as_str())),
        Some(&[
            ("request", &consent_page.field("request")),
            ("csrf_token", &consent_page.field("csrf_token")),
            ("decision", "approve"),
        ]),
    )
    .await;
    assert_eq!(approved.status, 303, "{}", approved.body);
    let query = approved.location_params();
    let code = query.get("code").expect("code").clone();
    let exchange = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
        ("client_id", client_id.as_str()),
    ];
    let tokens_on_b = send(b.post("/token"), Some(&exchange)).await;
    let tokens = tokens_on_b.json();
    let first_refresh = tokens["refresh_token"].as_str().unwrap_or_default();
    let refreshed_on_a = send(
        a.post("/token"),
        Some(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", first_refresh),
            ("client_id", client_id.as_str()),
        ]),
    )
    .await;
    let replay_on_a = send(a.post("/token"), Some(&exchange)).await;
    let second_refresh = refreshed_on_a.json()["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let revoked_on_b = send(
        b.post("/token"),
        Some(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", second_refresh.as_str()),
            ("client_id", client_id.as_str()),
        ]),
    )
    .await;
    // The read on B issued a new registration access token (RFC 7592 §3).
    let renewed = format!(
        "Bearer {}",
        read_on_b.json()["registration_access_token"]
            .as_str()
            .expect("a new registration access token")
    );
    let deleted_on_b = send(
        b.client()
            .delete(b.url(&format!("/register/{client_id}")))
            .insert_header(("authorization", renewed.as_str())),
        None,
    )
    .await;
    let unknown_on_a = send(a.get(&format!("/authorize?client_id={client_id}")), None).await;

    assert_eq!(read_on_b.status, 200, "{}", read_on_b.body);
    assert_eq!(read_on_b.json()["client_id"], client_id.as_str());
    assert_eq!(query["state"], "xyz");
    assert_eq!(query["iss"], a.issuer);
    assert_eq!(tokens_on_b.status, 200, "{}", tokens_on_b.body);
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["scope"], "mcp");
    assert_eq!(refreshed_on_a.status, 200, "{}", refreshed_on_a.body);
    assert_eq!(replay_on_a.status, 400, "{}", replay_on_a.body);
    assert_eq!(replay_on_a.json()["error"], "invalid_grant");
    assert_eq!(
        revoked_on_b.status, 400,
        "the replayed code revoked the whole family, seen by the other process: {}",
        revoked_on_b.body
    );
    assert_eq!(revoked_on_b.json()["error"], "invalid_grant");
    assert_eq!(deleted_on_b.status, 204, "{}", deleted_on_b.body);
    assert_eq!(unknown_on_a.status, 400, "{}", unknown_on_a.body);
    assert_eq!(unknown_on_a.json()["reason"], "unknown");
    a.stop().await;
    b.stop().await;
}

#[actix_web::test]
async fn a_master_killed_under_load_is_503_then_recovers_and_loses_nothing() {
    let mut cluster = RedisCluster::start_durable();
    let mut overrides = cluster.overrides();
    overrides.push(("storage.timeout_ms".into(), "1000".into()));
    let pairs: Vec<(&str, &str)> = overrides
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let app = TestApp::with(&pairs).await;
    let load = Load::start(&app.base);
    let long = Duration::from_secs(30);

    wait_for("registrations before the outage", long, || {
        load.tally.borrow().acked.len() >= 40
    })
    .await;
    cluster.kill_node(0);
    wait_for("503 answers while a master is down", long, || {
        load.tally.borrow().count(Kind::Register, 503) >= WORKERS
    })
    .await;
    cluster.restart_node(0);
    let restarted = Instant::now();
    let mut ready_after = None;
    while restarted.elapsed() < long {
        if app.get("/readyz").send().await.expect("GET").status() == 200 {
            ready_after = Some(restarted.elapsed());
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    wait_for("registrations after the restart", long, || {
        load.tally.borrow().acks_after(restarted) >= 40
    })
    .await;
    let t = load.finish().await;
    let (unexpected, bad_503) = t.violations();
    eprintln!(
        "cluster fault: {} answers ({} registered, {} × 503), every master reachable {ready_after:?} after the restart",
        t.answers.len(),
        t.acked.len(),
        t.answers.iter().filter(|a| a.status == 503).count(),
    );

    assert!(
        unexpected.is_empty(),
        "only 201/302 or 503, never a 500 or the unregistered answer: {unexpected:?}"
    );
    assert!(
        bad_503.is_empty(),
        "a 503 is temporarily_unavailable with Retry-After: {bad_503:?}"
    );
    assert_eq!(t.unanswered, 0, "every request got an answer");
    assert!(
        ready_after.is_some_and(|d| d < Duration::from_secs(5)),
        "/readyz is 200 within seconds of the master's return: {ready_after:?}"
    );
    assert_all_found(&app.base, &t.acked).await;
    app.stop().await;
}
