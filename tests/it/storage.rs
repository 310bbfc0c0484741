//! Storage (BEHAVIOUR §2): one backend-agnostic suite for memory, embedded and redis, restarts,
//! and a backend that is down.
#![allow(clippy::expect_used, clippy::unwrap_used)] // in tests, a failed expectation is a failed test

use std::time::Duration;

use doorman::store::{Store, StoreError};
use serde_json::json;

use crate::support::{CHROME_ACCEPT, RedisServer, TestApp, header, json, settings, text};

/// One storage backend with whatever it needs kept alive (a temp dir, a redis-server).
struct Backend {
    name: &'static str,
    overrides: Vec<(String, String)>,
    _dir: Option<tempfile::TempDir>,
    redis: Option<RedisServer>,
}

impl Backend {
    fn memory() -> Self {
        Self {
            name: "memory",
            overrides: vec![("storage.backend".into(), "memory".into())],
            _dir: None,
            redis: None,
        }
    }

    fn embedded() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nested").join("doorman.redb");
        Self {
            name: "embedded",
            overrides: vec![
                ("storage.backend".into(), "embedded".into()),
                ("storage.path".into(), path.display().to_string()),
            ],
            _dir: Some(dir),
            redis: None,
        }
    }

    fn redis() -> Self {
        let redis = RedisServer::start();
        Self {
            name: "redis",
            overrides: vec![
                ("storage.backend".into(), "redis".into()),
                ("storage.redis_url".into(), redis.url()),
                ("storage.timeout_ms".into(), "1000".into()),
            ],
            _dir: None,
            redis: Some(redis),
        }
    }

    fn pairs(&self) -> Vec<(&str, &str)> {
        self.overrides
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    async fn spawn(&self) -> TestApp {
        TestApp::with(&self.pairs()).await
    }

    fn store(&self) -> Store {
        Store::open(&settings(&self.pairs()).storage)
            .unwrap_or_else(|e| panic!("{}: open store: {e}", self.name))
    }

    fn redis_mut(&mut self) -> &mut RedisServer {
        self.redis.as_mut().expect("a redis backend")
    }
}

fn backends() -> Vec<Backend> {
    vec![Backend::memory(), Backend::embedded(), Backend::redis()]
}

/// Registers a public client; returns its client_id, registration URI and bearer header.
async fn register(app: &TestApp) -> (String, String, String) {
    let doc = app.register(json!({"redirect_uris": ["http://127.0.0.1/callback"], "token_endpoint_auth_method": "none"})).await;
    (
        doc["client_id"].as_str().expect("client_id").to_owned(),
        doc["registration_client_uri"]
            .as_str()
            .expect("uri")
            .to_owned(),
        format!(
            "Bearer {}",
            doc["registration_access_token"].as_str().expect("token")
        ),
    )
}

/// An authorization that fails at step 4 for a known client (302) and is "unregistered" for
/// an unknown one (400), so its status tells whether the client was found.
async fn authorize_status(app: &TestApp, client_id: &str) -> u16 {
    let res = app
        .get(&format!("/authorize?client_id={client_id}&redirect_uri=http://127.0.0.1:9999/callback&response_type=token"))
        .send()
        .await
        .expect("GET /authorize");
    res.status().as_u16()
}

#[actix_web::test]
async fn registered_client_is_found_on_every_backend() {
    for backend in backends() {
        let app = backend.spawn().await;

        let (client_id, uri, bearer) = register(&app).await;
        let mut read = app
            .client()
            .get(&uri)
            .insert_header(("authorization", bearer.as_str()))
            .send()
            .await
            .expect("GET");
        let doc = json(&mut read).await;
        let status = authorize_status(&app, &client_id).await;

        assert_eq!(read.status(), 200, "{}", backend.name);
        assert_eq!(doc["client_id"], client_id.as_str(), "{}", backend.name);
        assert_eq!(status, 302, "{}: authorize finds the client", backend.name);
        app.stop().await;
    }
}

#[actix_web::test]
async fn deleted_client_is_unregistered_on_every_backend() {
    for backend in backends() {
        let app = backend.spawn().await;
        let (client_id, uri, bearer) = register(&app).await;

        let deleted = app
            .client()
            .delete(&uri)
            .insert_header(("authorization", bearer.as_str()))
            .send()
            .await
            .expect("DELETE");
        let mut res = app
            .get(&format!("/authorize?client_id={client_id}"))
            .send()
            .await
            .expect("GET");
        let doc = json(&mut res).await;

        assert_eq!(deleted.status(), 204, "{}", backend.name);
        assert_eq!(res.status(), 400, "{}", backend.name);
        assert_eq!(doc["reason"], "unknown", "{}", backend.name);
        app.stop().await;
    }
}

#[actix_web::test]
async fn registrations_survive_a_restart_on_embedded_and_redis() {
    for backend in [Backend::embedded(), Backend::redis()] {
        let app = backend.spawn().await;
        let (client_id, _, bearer) = register(&app).await;
        app.stop().await;

        let app = backend.spawn().await;
        let status = authorize_status(&app, &client_id).await;
        let read = app
            .client()
            .get(app.url(&format!("/register/{client_id}")))
            .insert_header(("authorization", bearer.as_str()))
            .send()
            .await
            .expect("GET");

        assert_eq!(
            status, 302,
            "{}: the client registered before the restart is known",
            backend.name
        );
        assert_eq!(
            read.status(),
            200,
            "{}: its registration access token still works",
            backend.name
        );
        app.stop().await;
    }
}

#[actix_web::test]
async fn memory_backend_forgets_on_restart() {
    let backend = Backend::memory();
    let app = backend.spawn().await;
    let (client_id, _, _) = register(&app).await;
    app.stop().await;

    let app = backend.spawn().await;
    let status = authorize_status(&app, &client_id).await;

    assert_eq!(
        status, 400,
        "the restart test above can fail: memory forgets"
    );
}

#[actix_web::test]
async fn redis_outage_is_503_never_unregistered_and_recovers_by_itself() {
    let mut backend = Backend::redis();
    let app = backend.spawn().await;
    let (client_id, uri, bearer) = register(&app).await;

    backend.redis_mut().kill();
    let mut known = app
        .get(&format!(
            "/authorize?client_id={client_id}&response_type=code"
        ))
        .send()
        .await
        .expect("GET");
    let known_doc = json(&mut known).await;
    let mut unknown = app
        .get("/authorize?client_id=never-registered&response_type=code")
        .send()
        .await
        .expect("GET");
    let unknown_doc = json(&mut unknown).await;
    let mut page = app
        .get("/authorize?client_id=never-registered")
        .insert_header(("accept", CHROME_ACCEPT))
        .send()
        .await
        .expect("GET");
    let page_text = text(&mut page).await;
    let mut registration = app
        .post("/register")
        .send_json(&json!({"redirect_uris": ["https://app.example.com/cb"]}))
        .await
        .expect("POST");
    let registration_doc = json(&mut registration).await;
    let read = app
        .client()
        .get(&uri)
        .insert_header(("authorization", bearer.as_str()))
        .send()
        .await
        .expect("GET");
    let ready = app.get("/readyz").send().await.expect("GET");

    for (name, status, doc, retry_after) in [
        (
            "authorize, known client",
            known.status(),
            &known_doc,
            header(&known, "retry-after"),
        ),
        (
            "authorize, unknown client",
            unknown.status(),
            &unknown_doc,
            header(&unknown, "retry-after"),
        ),
        (
            "register",
            registration.status(),
            &registration_doc,
            header(&registration, "retry-after"),
        ),
    ] {
        assert_eq!(status, 503, "{name}: {doc}");
        assert_eq!(doc["error"], "temporarily_unavailable", "{name}");
        assert!(
            doc.get("reason").is_none(),
            "{name}: never the unregistered answer: {doc}"
        );
        assert!(
            retry_after.parse::<u64>().is_ok_and(|s| s > 0),
            "{name}: Retry-After {retry_after:?}"
        );
    }
    assert_eq!(page.status(), 503);
    assert!(header(&page, "retry-after").parse::<u64>().is_ok());
    assert!(
        !page_text.contains("not registered"),
        "the page must not say the client is unknown"
    );
    assert_eq!(read.status(), 503, "RFC 7592 read");
    assert_eq!(ready.status(), 503, "/readyz reports the outage");

    backend.redis_mut().restart();
    let mut recovered = None;
    for _ in 0..100 {
        let status = authorize_status(&app, "never-registered").await;
        if status != 503 {
            recovered = Some(status);
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    // The restarted redis-server keeps nothing, so a recovered server finds nobody.
    assert_eq!(recovered, Some(400), "the server recovers by itself");
    let (again, _, _) = register(&app).await;
    assert_eq!(
        authorize_status(&app, &again).await,
        302,
        "and registers and finds clients again"
    );
    assert_eq!(app.get("/readyz").send().await.expect("GET").status(), 200);
}

#[actix_web::test]
async fn storage_down_is_an_error_not_a_missing_record() {
    let mut backend = Backend::redis();
    let store = backend.store();
    store.set_raw("k", b"v", None).await.expect("set");

    backend.redis_mut().kill();
    let client = store.client("some-client").await;
    let raw = store.get_raw("k").await;

    assert!(
        matches!(client, Err(StoreError::Unavailable(_))),
        "{:?}",
        client.map(|c| c.is_some())
    );
    assert!(matches!(raw, Err(StoreError::Unavailable(_))), "{raw:?}");
}

#[actix_web::test]
async fn store_operations_behave_the_same_on_every_backend() {
    for backend in backends() {
        let store = backend.store();

        store_suite(&store, backend.name).await;

        assert_eq!(store.backend_name(), backend.name);
    }
}

/// The backend-agnostic store suite: writes with and without TTLs, overwrite, a lapsed TTL,
/// listing under a prefix, take, delete and ping. Run here on every backend and by `cluster`
/// on a Redis Cluster; expects no other `t:` or `u:` keys in the store.
pub async fn store_suite(store: &Store, name: &str) {
    let hour = Some(Duration::from_secs(3600));

    store.set_raw("t:a", b"one", None).await.expect("set");
    store
        .set_raw("t:b", b"two", hour)
        .await
        .expect("set with ttl");
    store.set_raw("u:c", b"three", None).await.expect("set");
    store.set_raw("t:a", b"uno", None).await.expect("overwrite");
    store
        .set_raw("t:lapsed", b"gone", Some(Duration::ZERO))
        .await
        .expect("set lapsed");
    let mut keys = store.keys("t:").await.expect("keys");
    keys.sort();

    assert_eq!(
        store.get_raw("t:a").await.expect("get"),
        Some(b"uno".to_vec()),
        "{name}: overwrite"
    );
    assert_eq!(
        store.get_raw("t:b").await.expect("get"),
        Some(b"two".to_vec()),
        "{name}: within its TTL"
    );
    assert_eq!(store.get_raw("missing").await.expect("get"), None, "{name}");
    assert_eq!(
        store.get_raw("t:lapsed").await.expect("get"),
        None,
        "{name}: a lapsed TTL hides the record"
    );
    assert_eq!(
        keys,
        vec!["t:a", "t:b"],
        "{name}: keys under a prefix, lapsed ones left out"
    );
    assert_eq!(
        store.take_raw("t:b").await.expect("take"),
        Some(b"two".to_vec()),
        "{name}: take returns the record"
    );
    assert_eq!(
        store.take_raw("t:b").await.expect("take"),
        None,
        "{name}: and removes it"
    );
    assert_eq!(
        store.take_raw("t:lapsed").await.expect("take"),
        None,
        "{name}: nothing to take once lapsed"
    );
    assert!(
        store.delete("u:c").await.expect("delete"),
        "{name}: delete says it removed something"
    );
    assert!(
        !store.delete("u:c").await.expect("delete"),
        "{name}: and then that nothing was there"
    );
    assert_eq!(store.get_raw("u:c").await.expect("get"), None, "{name}");
    assert!(store.ping().await.is_ok(), "{name}");
}

#[actix_web::test]
async fn client_records_round_trip_on_every_backend() {
    for backend in backends() {
        let store = backend.store();

        client_round_trip(&store, backend.name).await;
    }
}

/// Typed client records: put, read, list, delete. Expects no other client in the store.
pub async fn client_round_trip(store: &Store, name: &str) {
    let input = doorman::oauth::register::MetadataInput {
        redirect_uris: Some(vec!["http://127.0.0.1/callback".into()]),
        client_name: Some("Round trip".into()),
        ..Default::default()
    };
    let metadata = doorman::oauth::register::validate(input, &["mcp".into()]).expect("metadata");
    let client = doorman::store::Client {
        client_id: "round-trip-client".into(),
        secret_hash: Some("c2VjcmV0LWhhc2g".into()),
        registration_token_hash: "dG9rZW4taGFzaA".into(),
        metadata,
        issued_at: 1_700_000_000,
        expires_at: 0,
    };
    store.put_client(&client).await.expect("put");
    let read = store.client("round-trip-client").await.expect("client");
    let ids = store.client_ids().await.expect("ids");
    let deleted = store
        .delete_client("round-trip-client")
        .await
        .expect("delete");
    let after = store.client("round-trip-client").await.expect("client");

    assert_eq!(read.as_ref(), Some(&client), "{name}");
    assert_eq!(ids, vec!["round-trip-client".to_owned()], "{name}");
    assert!(deleted, "{name}");
    assert!(after.is_none(), "{name}");
}

#[actix_web::test]
async fn secrets_are_stored_only_as_hashes() {
    // Memory forgets on stop, so the two persistent backends are inspected.
    for backend in [Backend::embedded(), Backend::redis()] {
        let name = backend.name;
        let app = backend.spawn().await;
        let doc = app
            .register(json!({"redirect_uris": ["https://app.example.com/cb"]}))
            .await;
        app.stop().await;
        let store = backend.store();
        let client_id = doc["client_id"].as_str().expect("id");

        let raw = store
            .get_raw(&format!("client:{client_id}"))
            .await
            .expect("get")
            .expect("stored");
        let raw = String::from_utf8_lossy(&raw);

        for secret in ["client_secret", "registration_access_token"] {
            let value = doc[secret].as_str().expect("secret");
            assert!(!raw.contains(value), "{name}: {secret} stored in clear");
        }
    }
}

#[actix_web::test]
async fn redis_records_carry_real_ttls_under_the_key_prefix() {
    let backend = Backend::redis();
    let store = backend.store();
    let redis = redis::Client::open(backend.redis.as_ref().expect("redis").url()).expect("client");
    let mut conn = redis
        .get_multiplexed_async_connection()
        .await
        .expect("connect");

    store
        .set_raw("code:x", b"v", Some(Duration::from_secs(300)))
        .await
        .expect("set");
    store.set_raw("client:y", b"v", None).await.expect("set");
    let code_ttl: i64 = redis::cmd("PTTL")
        .arg("doorman:code:x")
        .query_async(&mut conn)
        .await
        .expect("PTTL");
    let client_ttl: i64 = redis::cmd("PTTL")
        .arg("doorman:client:y")
        .query_async(&mut conn)
        .await
        .expect("PTTL");

    assert!(
        (1..=300_000).contains(&code_ttl),
        "a TTL, not a sweeper: {code_ttl}"
    );
    assert_eq!(client_ttl, -1, "clients do not expire by themselves");
}

#[actix_web::test]
async fn redis_key_prefix_separates_deployments_sharing_one_server() {
    let backend = Backend::redis();
    let mut other_pairs = backend.pairs();
    other_pairs.push(("storage.key_prefix", "other:"));
    let ours = backend.store();
    let theirs = Store::open(&settings(&other_pairs).storage).expect("store");

    ours.set_raw("client:shared-name", b"ours", None)
        .await
        .expect("set");
    let seen = theirs.get_raw("client:shared-name").await.expect("get");
    let keys = theirs.keys("client:").await.expect("keys");

    assert_eq!(seen, None);
    assert!(keys.is_empty(), "{keys:?}");
}

#[actix_web::test]
async fn redis_down_at_start_up_is_503_until_it_comes_up() {
    let mut backend = Backend::redis();
    backend.redis_mut().kill();
    let app = backend.spawn().await;

    let mut down = app
        .get("/authorize?client_id=nobody")
        .send()
        .await
        .expect("GET");
    let doc = json(&mut down).await;
    backend.redis_mut().restart();
    let mut status = 503;
    for _ in 0..100 {
        status = authorize_status(&app, "nobody").await;
        if status != 503 {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }

    assert_eq!(down.status(), 503, "{doc}");
    assert_eq!(doc["error"], "temporarily_unavailable");
    assert_eq!(
        status, 400,
        "once redis is up the unknown client gets the unregistered answer"
    );
}

#[actix_web::test]
async fn unresponsive_redis_is_503_within_the_storage_timeout() {
    // Accepts connections (the kernel completes them) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("redis://{}", silent.local_addr().expect("addr"));
    let app = TestApp::with(&[
        ("storage.backend", "redis"),
        ("storage.redis_url", &url),
        ("storage.timeout_ms", "300"),
    ])
    .await;
    let started = std::time::Instant::now();

    let mut res = app
        .get("/authorize?client_id=nobody")
        .send()
        .await
        .expect("GET");
    let doc = json(&mut res).await;

    assert_eq!(res.status(), 503, "{doc}");
    assert_eq!(doc["error"], "temporarily_unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered after {:?}",
        started.elapsed()
    );
}
