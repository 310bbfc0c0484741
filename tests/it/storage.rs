//! Storage (docs/behaviour.md §2): one conformance suite for memory, embedded and redis (and,
//! in `cluster`, a Redis Cluster), restarts, and a backend that is down.
#![allow(clippy::expect_used, clippy::unwrap_used)] // in tests, a failed expectation is a failed test

use std::time::Duration;

use doorman::records::{
    AuthCode, AuthRequest, CachedDocument, Client, Family, Grant, PendingRequest, RegisteredBy,
    ResourceServer, Session, Token, TokenKind, Upstream, UpstreamLogin,
};
use doorman::store::kv::{self, Durability, Entry, Kv, Once};
use doorman::store::{Backend as _, NewToken, Store, StoreError, Taken};
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

    /// A connection of its own to the backend's redis-server (a Redis backend only).
    async fn redis_connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.redis.as_ref().expect("redis").url())
            .expect("client")
            .get_multiplexed_async_connection()
            .await
            .expect("connect")
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

/// How many GETs the Redis server has executed (INFO commandstats).
fn redis_gets(redis: &RedisServer) -> u64 {
    let out = std::process::Command::new("redis-cli")
        .arg("-s")
        .arg(&redis.socket)
        .args(["INFO", "commandstats"])
        .output()
        .expect("redis-cli");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("cmdstat_get:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().expect("a count"))
}

/// Polls `authorize_status` until it is `want`; how long that took, or `None` after 3 s.
async fn becomes(app: &TestApp, client_id: &str, want: u16) -> Option<Duration> {
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        if authorize_status(app, client_id).await == want {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

/// The Redis client cache (`storage.redis_client_cache`, on by default): a process answers
/// repeated lookups of a client — here an unknown one, the answer a misconfigured client
/// hammers — from memory, without a round trip; yet a client registered or deleted by another
/// process is seen at once (Redis's invalidation message), long before the cache's own 60 s
/// lifetime could hide the change.
#[actix_web::test]
async fn redis_client_cache_answers_from_memory_and_sees_other_processes_changes_at_once() {
    let backend = Backend::redis();
    let app = backend.spawn().await;
    let other_process = backend.store();
    let redis = backend.redis.as_ref().expect("redis");

    assert_eq!(authorize_status(&app, "cached-client").await, 400);
    let before = redis_gets(redis);
    for _ in 0..20 {
        assert_eq!(authorize_status(&app, "cached-client").await, 400);
    }
    let gets = redis_gets(redis) - before;

    other_process
        .put_client(&client("cached-client"), None)
        .await
        .expect("registered elsewhere");
    let seen_registered = becomes(&app, "cached-client", 302).await;
    other_process
        .delete_client("cached-client")
        .await
        .expect("deleted elsewhere");
    let seen_deleted = becomes(&app, "cached-client", 400).await;

    assert!(gets <= 1, "20 lookups of a cached answer cost {gets} GETs");
    let seen_registered = seen_registered.expect("the registration is seen");
    let seen_deleted = seen_deleted.expect("the deletion is seen");
    assert!(
        seen_registered < Duration::from_secs(1) && seen_deleted < Duration::from_secs(1),
        "changes seen after {seen_registered:?} and {seen_deleted:?}"
    );
    app.stop().await;
}

/// What is written back is read exactly, never from the client cache: a registration access
/// token rotated through one process (RFC 7592 read) holds at once on another process that has
/// the client cached — the new token works there, the old one does not.
#[actix_web::test]
async fn a_rotation_through_one_process_holds_on_another_that_cached_the_client() {
    let backend = Backend::redis();
    let (a, b) = (backend.spawn().await, backend.spawn().await);
    let (client_id, uri, old) = register(&a).await;
    assert_eq!(
        authorize_status(&b, &client_id).await,
        302,
        "b has it cached"
    );
    let path = uri
        .split_once("/register/")
        .map(|(_, id)| format!("/register/{id}"))
        .expect("path");
    let read = |app: &TestApp, bearer: String| {
        let req = app.get(&path).insert_header(("authorization", bearer));
        async move { req.send().await.expect("GET") }
    };

    let mut first = read(&a, old.clone()).await;
    let new = format!(
        "Bearer {}",
        json(&mut first).await["registration_access_token"]
            .as_str()
            .expect("a new token")
    );
    let with_old = read(&b, old).await.status();
    let with_new = read(&b, new).await.status();

    assert_eq!(first.status(), 200);
    assert_eq!(with_old, 401, "the old token ended with the rotation");
    assert_eq!(with_new, 200, "the new token works on the other process");
    a.stop().await;
    b.stop().await;
}

/// With the cache off, every lookup is a GET (the setting is honoured).
#[actix_web::test]
async fn redis_client_cache_can_be_turned_off() {
    let mut backend = Backend::redis();
    backend
        .overrides
        .push(("storage.redis_client_cache".into(), "false".into()));
    let app = backend.spawn().await;
    let redis = backend.redis.as_ref().expect("redis");

    let before = redis_gets(redis);
    for _ in 0..20 {
        assert_eq!(authorize_status(&app, "uncached-client").await, 400);
    }

    assert_eq!(redis_gets(redis) - before, 20);
    app.stop().await;
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
    store
        .put_client(&client("down-client"), None)
        .await
        .expect("put");

    backend.redis_mut().kill();
    let found = store.client("down-client").await;
    let session = store.session("some-session").await;

    assert!(
        matches!(found, Err(StoreError::Unavailable(_))),
        "{:?}",
        found.map(|c| c.is_some())
    );
    assert!(
        matches!(session, Err(StoreError::Unavailable(_))),
        "{session:?}"
    );
}

/// A Redis that stops answering (frozen, its connections open) makes an operation an error
/// within the storage timeout, not a wait for ever; a client record this connection read before
/// is still answered from the client cache, at once; once Redis answers again, so does the
/// store.
#[actix_web::test]
async fn a_frozen_redis_is_an_error_within_the_timeout_not_a_hang() {
    let backend = Backend::redis();
    let store = backend.store();
    store
        .put_client(&client("frozen-client"), None)
        .await
        .expect("put");
    assert!(
        store
            .client_cached("frozen-client")
            .await
            .expect("read")
            .is_some()
    );

    let redis = backend.redis.as_ref().expect("redis");
    redis.pause();
    let cached = store.client_cached("frozen-client").await;
    assert!(
        matches!(cached, Ok(Some(_))),
        "the cached record is answered while Redis is frozen: {:?}",
        cached.map(|c| c.is_some())
    );
    // storage.timeout_ms is 1000 here; the bound is loose, the point is that it ends.
    let started = std::time::Instant::now();
    let session = store.session("some-session").await;
    let waited = started.elapsed();
    redis.resume();
    assert!(
        matches!(session, Err(StoreError::Unavailable(_))),
        "{session:?}"
    );
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "answered after {waited:?}, storage timeout 1000 ms"
    );

    let mut recovered = false;
    for _ in 0..50 {
        if matches!(store.session("some-session").await, Ok(None)) {
            recovered = true;
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "the store answers again once Redis does");
}

#[actix_web::test]
async fn store_operations_behave_the_same_on_every_backend() {
    for backend in backends() {
        let store = backend.store();

        kv_suite(&store, backend.name).await;
        conformance(&store, backend.name).await;

        assert_eq!(store.backend_name(), backend.name);
    }
}

/// The one-key primitives every backend provides (`doorman::store::kv`): writes with and
/// without TTLs, overwrite, a lapsed TTL, write-if-absent, listing under a prefix, remove,
/// single use with an owner, reach. Run here on every backend and by `cluster` on a Redis
/// Cluster; expects no other `t:` or `u:` keys in the store.
pub async fn kv_suite(store: &Store, name: &str) {
    let hour = Some(Duration::from_secs(3600));

    store.put("t:a", b"one", None).await.expect("put");
    store.put("t:b", b"two", hour).await.expect("put with ttl");
    store.put("u:c", b"three", None).await.expect("put");
    store.put("t:a", b"uno", None).await.expect("overwrite");
    store
        .put("t:lapsed", b"gone", Some(Duration::ZERO))
        .await
        .expect("put lapsed");
    store
        .put_many(&[
            Entry {
                key: "m:one",
                value: b"1",
                ttl: hour,
            },
            Entry {
                key: "m:two",
                value: b"2",
                ttl: None,
            },
            Entry {
                key: "m:gone",
                value: b"3",
                ttl: Some(Duration::ZERO),
            },
        ])
        .await
        .expect("put_many");
    let mut keys = store.scan("t:").await.expect("scan");
    keys.sort();
    let mut many = store.scan("m:").await.expect("scan");
    many.sort();

    assert_eq!(
        many,
        vec!["m:one", "m:two"],
        "{name}: put_many writes each entry, a zero TTL vanishes"
    );
    assert_eq!(
        (
            store.get("m:one").await.expect("get"),
            store.get("m:two").await.expect("get")
        ),
        (Some(b"1".to_vec()), Some(b"2".to_vec())),
        "{name}: put_many values"
    );

    assert_eq!(
        store.get("t:a").await.expect("get"),
        Some(b"uno".to_vec()),
        "{name}: overwrite"
    );
    assert_eq!(
        store.get("t:b").await.expect("get"),
        Some(b"two".to_vec()),
        "{name}: within its TTL"
    );
    assert_eq!(store.get("missing").await.expect("get"), None, "{name}");
    assert_eq!(
        store.get("t:lapsed").await.expect("get"),
        None,
        "{name}: a lapsed TTL hides it"
    );
    assert_eq!(
        keys,
        vec!["t:a", "t:b"],
        "{name}: keys under a prefix, lapsed ones left out"
    );
    assert!(
        !store.put_new("t:a", b"x", None).await.expect("put_new"),
        "{name}: taken"
    );
    assert!(
        store
            .put_new("t:lapsed", b"x", hour)
            .await
            .expect("put_new"),
        "{name}: lapsed is free"
    );
    assert_eq!(
        store.remove("t:b").await.expect("remove"),
        Some(b"two".to_vec()),
        "{name}"
    );
    assert_eq!(
        store.remove("t:b").await.expect("remove"),
        None,
        "{name}: once"
    );
    assert_eq!(
        store.remove("u:c").await.expect("remove"),
        Some(b"three".to_vec()),
        "{name}"
    );
    assert_eq!(store.get("u:c").await.expect("get"), None, "{name}");

    let live = kv::live("owner-1", b"payload");
    store.put("t:once", &live, hour).await.expect("put");
    assert_eq!(
        store
            .take_once(
                "t:once",
                "owner-2",
                7,
                Duration::from_secs(60),
                Durability::Durable
            )
            .await
            .expect("take"),
        Once::Held(live.clone()),
        "{name}: another owner leaves it"
    );
    assert_eq!(
        store
            .take_once(
                "t:once",
                "owner-1",
                7,
                Duration::from_secs(60),
                Durability::Durable
            )
            .await
            .expect("take"),
        Once::Taken(live.clone()),
        "{name}: the owner takes it"
    );
    assert_eq!(
        store
            .take_once(
                "t:once",
                "owner-1",
                9,
                Duration::from_secs(60),
                Durability::Durable
            )
            .await
            .expect("take"),
        Once::Used(kv::used(7, &live)),
        "{name}: then finds the mark, stamped when it was taken"
    );
    assert_eq!(
        store
            .take_once(
                "t:none",
                "owner-1",
                9,
                Duration::from_secs(60),
                Durability::Durable
            )
            .await
            .expect("take"),
        Once::Missing,
        "{name}"
    );
    assert_eq!(
        store.get("t:none").await.expect("get"),
        None,
        "{name}: nothing written"
    );
    // Volatile writes answer the same (a disk-backed store just may not have fsynced yet).
    store
        .put_volatile("t:volatile", &live, hour)
        .await
        .expect("put_volatile");
    assert_eq!(
        store.get("t:volatile").await.expect("get"),
        Some(live.clone()),
        "{name}: a volatile write is read back at once"
    );
    assert_eq!(
        store
            .take_once(
                "t:volatile",
                "owner-1",
                11,
                Duration::from_secs(60),
                Durability::Volatile
            )
            .await
            .expect("take"),
        Once::Taken(live.clone()),
        "{name}"
    );
    assert_eq!(
        store
            .take_once(
                "t:volatile",
                "owner-1",
                12,
                Duration::from_secs(60),
                Durability::Volatile
            )
            .await
            .expect("take"),
        Once::Used(kv::used(11, &live)),
        "{name}"
    );
    store
        .reach()
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    for key in ["t:a", "t:lapsed", "t:once", "t:volatile"] {
        store.remove(key).await.expect("clean up");
    }
}

fn client(id: &str) -> Client {
    let input = doorman::oauth::register::MetadataInput {
        redirect_uris: Some(vec!["http://127.0.0.1/callback".into()]),
        client_name: Some("Round trip".into()),
        ..Default::default()
    };
    let metadata = doorman::oauth::register::validate(input, &["mcp".into()]).expect("metadata");
    Client {
        client_id: id.into(),
        secret_hash: Some("c2VjcmV0LWhhc2g".into()),
        registration_token_hash: "dG9rZW4taGFzaA".into(),
        metadata,
        issued_at: 1_700_000_000,
        expires_at: 0,
        registered_by: RegisteredBy::Operator,
        resource_server: Some(ResourceServer {
            resources: vec!["https://mcp.example.com/".into()],
        }),
        used: true,
        last_used: 1_700_086_400,
    }
}

fn code(client_id: &str) -> AuthCode {
    AuthCode {
        client_id: client_id.into(),
        redirect_uri: "http://127.0.0.1/callback".into(),
        redirect_uri_sent: true,
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        scopes: vec!["mcp".into()],
        resource: Some("https://mcp.example.com/".into()),
        username: "alice".into(),
        expires_at: 1_700_000_300,
        family_id: "family-1".into(),
        grant_id: Some("grant-1".into()),
        upstream: Some(ada()),
    }
}

/// Who signed in upstream, as sessions, codes and tokens keep it.
fn ada() -> Upstream {
    Upstream {
        provider: "github".into(),
        name: Some("Ada Lovelace".into()),
        email: Some("ada@example.com".into()),
    }
}

fn token(client_id: &str, family: Option<&str>) -> Token {
    Token {
        client_id: client_id.into(),
        subject: "alice".into(),
        scopes: vec!["mcp".into(), "offline_access".into()],
        resource: None,
        family_id: family.map(str::to_owned),
        grant_id: None,
        issued_at: 1_700_000_000,
        expires_at: 1_700_003_600,
        upstream: family.map(|_| ada()),
    }
}

/// Every typed operation of `doorman::store::Backend`, the interface the flows use, on one
/// backend: what it stores, what it returns, how long it keeps it, and that single-use
/// records are used once even by concurrent callers. Expects a store with no clients.
pub async fn conformance(store: &Store, name: &str) {
    let hour = Duration::from_secs(3600);
    let gone = Duration::ZERO;

    // Clients.
    let c = client("conformance-client");
    store.put_client(&c, None).await.expect("put_client");
    store
        .put_client(&client("conformance-other"), None)
        .await
        .expect("put_client");
    assert_eq!(
        store.client("conformance-client").await.expect("client"),
        Some(c.clone()),
        "{name}"
    );
    assert_eq!(
        store.client("nobody").await.expect("client"),
        None,
        "{name}"
    );
    assert_eq!(
        store.client_ids().await.expect("client_ids"),
        vec!["conformance-client", "conformance-other"],
        "{name}: every client, sorted"
    );
    assert!(
        store
            .delete_client("conformance-other")
            .await
            .expect("delete"),
        "{name}"
    );
    assert!(
        !store
            .delete_client("conformance-other")
            .await
            .expect("delete"),
        "{name}: once"
    );
    assert_eq!(
        store.client_ids().await.expect("ids"),
        vec!["conformance-client"],
        "{name}"
    );
    store
        .put_client(&client("conformance-lapsed"), Some(gone))
        .await
        .expect("put_client with a TTL");
    assert_eq!(
        store.client("conformance-lapsed").await.expect("client"),
        None,
        "{name}: a client's TTL is a store TTL"
    );

    // Pending requests: put, read, take once, and a lapsed one is gone.
    let pending = PendingRequest {
        csrf: "csrf".into(),
        browser: "browser-hash".into(),
        failures: 2,
        request: Some(AuthRequest {
            client_id: c.client_id.clone(),
            redirect_uri: "http://127.0.0.1/callback".into(),
            redirect_uri_sent: false,
            state: Some("s".into()),
            code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
            scopes: vec!["mcp".into()],
            resource: None,
        }),
        expires_at: 1_700_000_600,
    };
    store
        .put_pending("pending-id", &pending, hour)
        .await
        .expect("put_pending");
    store
        .put_pending("lapsed-id", &pending, gone)
        .await
        .expect("put_pending");
    assert_eq!(
        store.pending("pending-id").await.expect("pending"),
        Some(pending.clone()),
        "{name}"
    );
    assert_eq!(
        store.pending("lapsed-id").await.expect("pending"),
        None,
        "{name}: lapsed"
    );
    assert_eq!(
        store.take_pending("pending-id").await.expect("take"),
        Some(pending),
        "{name}"
    );
    assert_eq!(
        store.take_pending("pending-id").await.expect("take"),
        None,
        "{name}: once"
    );

    // Upstream round trips (docs/behaviour.md §14): put under the state, taken once, and a
    // lapsed one is gone; two states never meet.
    let trip = UpstreamLogin {
        request_id: "pending-id".into(),
        provider: "okta".into(),
        verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".into(),
        nonce: "n-0S6_WzA2Mj".into(),
        browser: "browser-hash".into(),
        expires_at: 1_700_000_600,
    };
    store
        .put_upstream("state-1", &trip, hour)
        .await
        .expect("put_upstream");
    store
        .put_upstream("state-lapsed", &trip, gone)
        .await
        .expect("put_upstream");
    assert_eq!(
        store.take_upstream("state-2").await.expect("take_upstream"),
        None,
        "{name}: another state"
    );
    assert_eq!(
        store
            .take_upstream("state-lapsed")
            .await
            .expect("take_upstream"),
        None,
        "{name}: lapsed"
    );
    assert_eq!(
        store.take_upstream("state-1").await.expect("take_upstream"),
        Some(trip.clone()),
        "{name}"
    );
    assert_eq!(
        store.take_upstream("state-1").await.expect("take_upstream"),
        None,
        "{name}: once"
    );
    // Two processes taking the same answer at once: exactly one gets it.
    store
        .put_upstream("state-raced", &trip, hour)
        .await
        .expect("put_upstream");
    let (a, b) = tokio::join!(
        store.take_upstream("state-raced"),
        store.take_upstream("state-raced")
    );
    assert_eq!(
        [a.expect("take"), b.expect("take")]
            .iter()
            .filter(|t| t.is_some())
            .count(),
        1,
        "{name}: one winner"
    );

    // Sessions and remembered consent.
    let session = Session {
        username: "github:583231".into(),
        auth_time: 1_700_000_000,
        upstream: Some(ada()),
    };
    store
        .put_session("session-id", &session, hour)
        .await
        .expect("put_session");
    store
        .put_session("lapsed-session", &session, gone)
        .await
        .expect("put_session");
    assert_eq!(
        store.session("session-id").await.expect("session"),
        Some(session),
        "{name}"
    );
    assert_eq!(
        store.session("other-id").await.expect("session"),
        None,
        "{name}"
    );
    assert_eq!(
        store.session("lapsed-session").await.expect("session"),
        None,
        "{name}"
    );
    // Grants: one map per person, a field per client; set, read, list, remove one.
    let grant = |client_id: &str, scopes: &[&str]| Grant {
        id: format!("grant-{client_id}"),
        client_id: client_id.into(),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        resource: Some("https://mcp.example.com/".into()),
        redirect_uri: "http://127.0.0.1/callback".into(),
        remember_until: 1_702_592_000,
        first_use: 1_700_000_000,
        last_use: 1_700_000_100,
        expires_at: 1_705_000_000,
    };
    store
        .put_grant("alice", &grant(&c.client_id, &["mcp"]), hour)
        .await
        .expect("put_grant");
    store
        .put_grant("alice", &grant("other-app", &["mcp"]), hour)
        .await
        .expect("put_grant");
    store
        .put_grant(
            "alice",
            &grant(&c.client_id, &["mcp", "offline_access"]),
            hour,
        )
        .await
        .expect("put_grant replaces");
    store
        .put_grant("bob", &grant("bobs-app", &["mcp"]), hour)
        .await
        .expect("put_grant");
    assert_eq!(
        store.grant("alice", &c.client_id).await.expect("grant"),
        Some(grant(&c.client_id, &["mcp", "offline_access"])),
        "{name}"
    );
    assert_eq!(
        store.grant("bob", &c.client_id).await.expect("grant"),
        None,
        "{name}: another person's grants are apart"
    );
    let mut listed: Vec<String> = store
        .grants("alice")
        .await
        .expect("grants")
        .into_iter()
        .map(|g| g.client_id)
        .collect();
    listed.sort();
    let mut expected = vec![c.client_id.clone(), "other-app".to_owned()];
    expected.sort();
    assert_eq!(
        listed, expected,
        "{name}: every grant of the person, and only hers"
    );
    assert!(
        store
            .remove_grant("alice", "other-app")
            .await
            .expect("remove"),
        "{name}"
    );
    assert!(
        !store
            .remove_grant("alice", "other-app")
            .await
            .expect("remove"),
        "{name}: once"
    );
    assert_eq!(
        store.grants("alice").await.expect("grants").len(),
        1,
        "{name}"
    );
    assert_eq!(
        store.grants("bob").await.expect("grants").len(),
        1,
        "{name}: bob's untouched"
    );
    // Tokens written with a read of the grant they are issued under (one round trip on Redis):
    // both written, and the grant as it is; no grant, no grant read, the tokens still written.
    let granted_access = token(&c.client_id, Some("family-g"));
    let granted_refresh = Token {
        expires_at: granted_access.expires_at + 100,
        ..granted_access.clone()
    };
    let pair = |access: &'static str, refresh: &'static str| {
        [
            NewToken {
                kind: TokenKind::Access,
                token: access,
                record: &granted_access,
                ttl: hour,
            },
            NewToken {
                kind: TokenKind::Refresh,
                token: refresh,
                record: &granted_refresh,
                ttl: hour,
            },
        ]
    };
    assert_eq!(
        store
            .put_tokens_reading_grant(
                &pair("granted-access", "granted-refresh"),
                "alice",
                &c.client_id
            )
            .await
            .expect("put_tokens_reading_grant"),
        Some(grant(&c.client_id, &["mcp", "offline_access"])),
        "{name}: the grant, read with the write"
    );
    assert_eq!(
        store
            .put_tokens_reading_grant(
                &pair("ungranted-access", "ungranted-refresh"),
                "bob",
                &c.client_id
            )
            .await
            .expect("put_tokens_reading_grant"),
        None,
        "{name}: bob has no grant for this client"
    );
    for (kind, t, record) in [
        (TokenKind::Access, "granted-access", &granted_access),
        (TokenKind::Refresh, "granted-refresh", &granted_refresh),
        (TokenKind::Access, "ungranted-access", &granted_access),
        (TokenKind::Refresh, "ungranted-refresh", &granted_refresh),
    ] {
        assert_eq!(
            store.token(kind, t).await.expect("token"),
            Some(record.clone()),
            "{name}: {t} written whatever the grant"
        );
    }
    store
        .put_grant("carol", &grant("lapsing", &["mcp"]), gone)
        .await
        .expect("put_grant");
    assert!(
        store.grants("carol").await.expect("grants").is_empty(),
        "{name}: a person's grants lapse with their TTL"
    );
    store
        .put_grant("carol", &grant("later", &["mcp"]), hour)
        .await
        .expect("put_grant");
    assert_eq!(
        store.grants("carol").await.expect("grants"),
        vec![grant("later", &["mcp"])],
        "{name}: grants that lapsed do not come back with the next one"
    );
    assert_eq!(
        store.grant("carol", "lapsing").await.expect("grant"),
        None,
        "{name}"
    );
    assert!(
        store.remove_grant("carol", "later").await.expect("remove"),
        "{name}"
    );
    assert!(
        store.grants("carol").await.expect("grants").is_empty(),
        "{name}: her last grant removed, she has none"
    );
    assert!(
        store
            .remove_session("session-id")
            .await
            .expect("remove_session"),
        "{name}"
    );
    assert_eq!(
        store.session("session-id").await.expect("session"),
        None,
        "{name}"
    );

    // Codes: another client cannot take one; its own client takes it once; a replay finds the
    // record it was (to revoke its family); an unknown or lapsed code is missing.
    let remember = Duration::from_secs(900);
    store
        .put_code("the-code", &code(&c.client_id), hour)
        .await
        .expect("put_code");
    store
        .put_code("lapsed-code", &code(&c.client_id), gone)
        .await
        .expect("put_code");
    assert_eq!(
        store
            .take_code("the-code", "intruder", remember, 10)
            .await
            .expect("take"),
        Taken::Held(code(&c.client_id)),
        "{name}: held for its own client"
    );
    assert_eq!(
        store
            .take_code("the-code", &c.client_id, remember, 10)
            .await
            .expect("take"),
        Taken::Fresh(code(&c.client_id)),
        "{name}"
    );
    assert_eq!(
        store
            .take_code("the-code", &c.client_id, remember, 20)
            .await
            .expect("take"),
        Taken::Used {
            record: code(&c.client_id),
            at: 10
        },
        "{name}: a replay"
    );
    assert_eq!(
        store
            .take_code("lapsed-code", &c.client_id, remember, 10)
            .await
            .expect("take"),
        Taken::Missing,
        "{name}"
    );
    assert_eq!(
        store
            .take_code("no-code", &c.client_id, remember, 10)
            .await
            .expect("take"),
        Taken::Missing,
        "{name}"
    );

    // Concurrent callers: exactly one takes a code.
    store
        .put_code("raced-code", &code(&c.client_id), hour)
        .await
        .expect("put_code");
    let takes = futures_util::future::join_all(
        (0..32).map(|_| store.take_code("raced-code", &c.client_id, remember, 30)),
    )
    .await;
    let fresh = takes
        .iter()
        .filter(|t| matches!(t, Ok(Taken::Fresh(_))))
        .count();
    let used = takes
        .iter()
        .filter(|t| matches!(t, Ok(Taken::Used { .. })))
        .count();
    assert_eq!((fresh, used), (1, 31), "{name}: one winner");

    // Tokens: access and refresh are apart; a refresh token is taken once, as a code is.
    let access = token(&c.client_id, Some("family-1"));
    store
        .put_token(TokenKind::Access, "access-1", &access, hour)
        .await
        .expect("put_token");
    store
        .put_token(
            TokenKind::Refresh,
            "refresh-1",
            &token(&c.client_id, Some("family-1")),
            hour,
        )
        .await
        .expect("put_token");
    store
        .put_token(TokenKind::Access, "lapsed-access", &access, gone)
        .await
        .expect("put_token");
    let pair_access = token(&c.client_id, Some("family-2"));
    let pair_refresh = Token {
        expires_at: pair_access.expires_at + 100,
        ..pair_access.clone()
    };
    store
        .put_tokens(&[
            NewToken {
                kind: TokenKind::Access,
                token: "pair-access",
                record: &pair_access,
                ttl: Duration::from_secs(3600),
            },
            NewToken {
                kind: TokenKind::Refresh,
                token: "pair-refresh",
                record: &pair_refresh,
                ttl: Duration::from_secs(3600),
            },
        ])
        .await
        .expect("put_tokens");
    assert_eq!(
        (
            store
                .token(TokenKind::Access, "pair-access")
                .await
                .expect("token"),
            store
                .token(TokenKind::Refresh, "pair-refresh")
                .await
                .expect("token"),
        ),
        (Some(pair_access), Some(pair_refresh.clone())),
        "{name}: put_tokens writes both"
    );
    assert!(
        matches!(
            store
                .take_refresh("pair-refresh", &c.client_id, Duration::from_secs(60), 1)
                .await
                .expect("take_refresh"),
            Taken::Fresh(t) if t == pair_refresh
        ),
        "{name}: a refresh token written by put_tokens is taken once like any other"
    );
    assert_eq!(
        store
            .token(TokenKind::Access, "access-1")
            .await
            .expect("token"),
        Some(access.clone()),
        "{name}"
    );
    assert_eq!(
        store
            .token(TokenKind::Refresh, "access-1")
            .await
            .expect("token"),
        None,
        "{name}: kinds apart"
    );
    assert_eq!(
        store
            .token(TokenKind::Access, "lapsed-access")
            .await
            .expect("token"),
        None,
        "{name}"
    );
    assert_eq!(
        store
            .take_refresh("refresh-1", "intruder", remember, 40)
            .await
            .expect("take"),
        Taken::Held(token(&c.client_id, Some("family-1"))),
        "{name}"
    );
    assert_eq!(
        store
            .take_refresh("refresh-1", &c.client_id, remember, 40)
            .await
            .expect("take"),
        Taken::Fresh(token(&c.client_id, Some("family-1"))),
        "{name}"
    );
    assert_eq!(
        store
            .token(TokenKind::Refresh, "refresh-1")
            .await
            .expect("token"),
        None,
        "{name}: rotated out"
    );
    assert_eq!(
        store
            .take_refresh("refresh-1", &c.client_id, remember, 50)
            .await
            .expect("take"),
        Taken::Used {
            record: token(&c.client_id, Some("family-1")),
            at: 40
        },
        "{name}: reuse"
    );
    assert!(
        store
            .delete_token(TokenKind::Access, "access-1")
            .await
            .expect("delete"),
        "{name}"
    );
    assert!(
        !store
            .delete_token(TokenKind::Access, "access-1")
            .await
            .expect("delete"),
        "{name}: once"
    );
    assert_eq!(
        store
            .token(TokenKind::Access, "access-1")
            .await
            .expect("token"),
        None,
        "{name}"
    );

    // Families.
    let family = Family {
        client_id: c.client_id.clone(),
        revoked: true,
    };
    assert_eq!(
        store.family("family-1").await.expect("family"),
        None,
        "{name}"
    );
    store
        .revoke_family("family-1", &family, hour)
        .await
        .expect("revoke");
    assert_eq!(
        store.family("family-1").await.expect("family"),
        Some(family),
        "{name}"
    );

    // Client metadata documents: kept, read, lapsed; one fetch mark at a time, also when many
    // callers race for it.
    let url = "https://app.example/client.json";
    let document = CachedDocument {
        body: r#"{"client_id":"https://app.example/client.json"}"#.into(),
        fetched_at: 1_700_000_000,
        fresh_until: 1_700_000_300,
        stale_until: 1_700_086_700,
    };
    assert_eq!(store.document(url).await.expect("document"), None, "{name}");
    store
        .put_document(url, &document, hour)
        .await
        .expect("put_document");
    store
        .put_document("https://lapsed.example/c.json", &document, gone)
        .await
        .expect("put_document");
    assert_eq!(
        store.document(url).await.expect("document"),
        Some(document.clone()),
        "{name}"
    );
    assert_eq!(
        store
            .document("https://lapsed.example/c.json")
            .await
            .expect("document"),
        None,
        "{name}: a document's TTL is a store TTL"
    );
    assert_eq!(
        store
            .document("https://app.example/other.json")
            .await
            .expect("document"),
        None,
        "{name}"
    );
    let claims =
        futures_util::future::join_all((0..16).map(|_| store.claim_document_fetch(url, hour)))
            .await;
    assert_eq!(
        claims.iter().filter(|c| matches!(c, Ok(true))).count(),
        1,
        "{name}: one fetcher among racing callers"
    );
    assert!(
        store
            .claim_document_fetch("https://app.example/other.json", hour)
            .await
            .expect("claim"),
        "{name}: marks are per URL"
    );
    store.release_document_fetch(url).await.expect("release");
    assert!(
        store.claim_document_fetch(url, hour).await.expect("claim"),
        "{name}: released"
    );
    assert!(
        store
            .claim_document_fetch("https://lapsing.example/c.json", gone)
            .await
            .expect("claim"),
        "{name}"
    );
    assert!(
        store
            .claim_document_fetch("https://lapsing.example/c.json", hour)
            .await
            .expect("claim"),
        "{name}: a lapsed mark is no mark"
    );
    for u in [
        url,
        "https://app.example/other.json",
        "https://lapsing.example/c.json",
    ] {
        store.release_document_fetch(u).await.expect("release");
    }
    assert_eq!(
        store.document(url).await.expect("document"),
        Some(document),
        "{name}: releasing the mark keeps the document"
    );

    // The server's own secrets: the first one stored is everyone's.
    let first = store
        .server_secret("conformance-key", b"first")
        .await
        .expect("secret");
    let second = store
        .server_secret("conformance-key", b"second")
        .await
        .expect("secret");
    assert_eq!(
        (first.as_slice(), second.as_slice()),
        (&b"first"[..], &b"first"[..]),
        "{name}"
    );

    // The access-token signing keys: the first set stored is everyone's, until replaced.
    let key = |kid: &str| doorman::records::SigningKey {
        kid: kid.into(),
        alg: doorman::records::Algorithm::ES256,
        pem: "pem".into(),
        created_at: 1,
        signs_from: 2,
    };
    let first = doorman::records::KeySet {
        keys: vec![key("k1")],
    };
    let other = doorman::records::KeySet {
        keys: vec![key("k2")],
    };
    let before = store.signing_keys().await.expect("keys");
    if before.is_none() {
        assert_eq!(
            store.first_signing_keys(&first).await.expect("keys"),
            first,
            "{name}"
        );
        assert_eq!(
            store.first_signing_keys(&other).await.expect("keys"),
            first,
            "{name}: the first set stays"
        );
    }
    store.put_signing_keys(&other).await.expect("put keys");
    assert_eq!(
        store.signing_keys().await.expect("keys"),
        Some(other),
        "{name}"
    );
    if let Some(before) = before {
        store.put_signing_keys(&before).await.expect("restore keys");
    }

    store.ping().await.unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(
        store
            .delete_client("conformance-client")
            .await
            .expect("clean up"),
        "{name}"
    );
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
            .get(&format!("client:{client_id}"))
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
    let mut conn = backend.redis_connection().await;

    store
        .put_code("a-code", &code("y"), Duration::from_secs(300))
        .await
        .expect("put_code");
    store
        .put_client(&client("y"), None)
        .await
        .expect("put_client");
    let code_key = format!("doorman:code:{}", doorman::secret::hash("a-code"));
    let code_ttl: i64 = redis::cmd("PTTL")
        .arg(&code_key)
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

/// The store's scripts go by their SHA1 (EVALSHA); a Redis that lost its script cache
/// (restarted, failed over: here `SCRIPT FLUSH`) gets the body once (EVAL) and every operation
/// still works.
#[actix_web::test]
async fn redis_scripts_go_by_sha1_and_survive_a_flushed_script_cache() {
    let backend = Backend::redis();
    let store = backend.store();
    let mut conn = backend.redis_connection().await;
    let calls = |stats: &str, command: &str| -> u64 {
        stats
            .lines()
            .find_map(|l| l.strip_prefix(&format!("cmdstat_{command}:calls=")))
            .and_then(|rest| rest.split(',').next())
            .map_or(0, |n| n.parse().expect("calls"))
    };
    let hour = Duration::from_secs(3600);
    let take = |code_value: &'static str| {
        let store = &store;
        async move {
            store
                .put_code(code_value, &code("y"), hour)
                .await
                .expect("put_code");
            store
                .take_code(code_value, "y", hour, 1)
                .await
                .expect("take_code")
        }
    };

    assert!(matches!(take("first").await, Taken::Fresh(_)), "first");
    assert!(matches!(take("second").await, Taken::Fresh(_)), "second");
    let _: String = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .expect("SCRIPT FLUSH");
    assert!(
        matches!(take("after-flush").await, Taken::Fresh(_)),
        "a flushed script cache costs one EVAL, never a failure"
    );
    assert!(matches!(take("again").await, Taken::Fresh(_)), "again");
    assert!(
        matches!(
            store.take_code("again", "y", hour, 2).await.expect("take"),
            Taken::Used { .. }
        ),
        "taken once"
    );
    let g = Grant {
        id: "g".into(),
        client_id: "y".into(),
        scopes: vec!["mcp".into()],
        resource: None,
        redirect_uri: "http://127.0.0.1/cb".into(),
        remember_until: 0,
        first_use: 1,
        last_use: 1,
        expires_at: 2_000_000_000,
    };
    store.put_grant("ada", &g, hour).await.expect("put_grant");
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .expect("INFO");

    assert_eq!(store.grant("ada", "y").await.expect("grant"), Some(g));
    // take_code x5 (the last a replay) and put_grant: six EVALSHA; three were answered
    // NOSCRIPT and sent again as EVAL — take_once's script at its first use and after the
    // flush, map_set's at its first use (after the flush).
    assert_eq!(calls(&stats, "evalsha"), 6, "{stats}");
    assert_eq!(calls(&stats, "eval"), 3, "{stats}");
}

#[actix_web::test]
async fn redis_key_prefix_separates_deployments_sharing_one_server() {
    let backend = Backend::redis();
    let mut other_pairs = backend.pairs();
    other_pairs.push(("storage.key_prefix", "other:"));
    let ours = backend.store();
    let theirs = Store::open(&settings(&other_pairs).storage).expect("store");

    ours.put_client(&client("shared-name"), None)
        .await
        .expect("put");
    let seen = theirs.client("shared-name").await.expect("client");
    let ids = theirs.client_ids().await.expect("ids");

    assert_eq!(seen, None);
    assert!(ids.is_empty(), "{ids:?}");
    assert!(ours.client("shared-name").await.expect("client").is_some());
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
