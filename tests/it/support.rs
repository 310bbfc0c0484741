//! Test support: spawn Doorman on 127.0.0.1:0 with any backend, and a private redis-server.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use doorman::settings::Settings;
use doorman::store::Store;

pub const CHROME_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7";
pub const FIREFOX_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
pub const SAFARI_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
/// A valid S256 challenge (RFC 7636 appendix B) and its verifier.
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

/// A running Doorman.
pub struct TestApp {
    pub addr: std::net::SocketAddr,
    pub base: String,
    pub issuer: String,
    handle: ServerHandle,
    pub settings: Settings,
    /// The app's clock: `app.clock.advance(301)` expires a code without sleeping.
    pub clock: doorman::clock::Clock,
}

/// Settings for a test: defaults, rate limits off, the given backend, plus `overrides`
/// (`"storage.backend" → "redis"` style keys, as `DOORMAN__…` variables would set them).
pub fn settings(overrides: &[(&str, &str)]) -> Settings {
    let mut env: HashMap<String, String> = HashMap::new();
    env.insert("DOORMAN__RATE_LIMIT__ENABLED".into(), "false".into());
    env.insert("DOORMAN__STORAGE__BACKEND".into(), "memory".into());
    env.insert("DOORMAN__SERVER__WORKERS".into(), "1".into());
    env.insert("DOORMAN__SERVER__SHUTDOWN_TIMEOUT".into(), "1".into());
    env.insert("DOORMAN__SERVER__STATIC_DIR".into(), static_dir().display().to_string());
    for (k, v) in overrides {
        env.insert(format!("DOORMAN__{}", k.replace('.', "__").to_uppercase()), (*v).to_owned());
    }
    Settings::load(None, Some(env)).unwrap_or_else(|e| panic!("test settings: {e}"))
}

pub fn static_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("static")
}

impl TestApp {
    /// Doorman on the memory backend.
    pub async fn spawn() -> Self {
        Self::with(&[]).await
    }

    /// Doorman with settings overrides. The issuer is the bound address unless overridden
    /// (`issuer_path` appends a path to it).
    pub async fn with(overrides: &[(&str, &str)]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let base = format!("http://{addr}");
        let path = overrides.iter().find(|(k, _)| *k == "issuer_path").map(|(_, v)| *v).unwrap_or("");
        let issuer = format!("{base}{path}");
        let mut all: Vec<(&str, &str)> = overrides.iter().filter(|(k, _)| *k != "issuer_path").copied().collect();
        all.push(("issuer", &issuer));
        let settings = settings(&all);
        let store = Store::open(&settings.storage).unwrap_or_else(|e| panic!("open store: {e}"));
        let clock = doorman::clock::Clock::default();
        let server = doorman::build_server(settings.clone(), store, clock.clone(), listener).expect("build server");
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Self { addr, base, issuer, handle, settings, clock }
    }

    /// Doorman with settings built by the test (for what overrides cannot express, such as
    /// `login.users`). The issuer is replaced by the bound address, as in `with`.
    pub async fn with_settings(mut settings: Settings) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let base = format!("http://{addr}");
        let issuer = base.clone();
        settings.issuer = issuer.clone();
        let store = Store::open(&settings.storage).unwrap_or_else(|e| panic!("open store: {e}"));
        let clock = doorman::clock::Clock::default();
        let server = doorman::build_server(settings.clone(), store, clock.clone(), listener).expect("build server");
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Self { addr, base, issuer, handle, settings, clock }
    }

    /// Stops the server and waits until its workers (and their store handles) are gone.
    pub async fn stop(self) {
        self.handle.stop(true).await;
        // Worker threads drop their app state right after the handle resolves.
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn client(&self) -> awc::Client {
        awc::Client::builder().timeout(Duration::from_secs(10)).disable_redirects().finish()
    }

    pub fn get(&self, path: &str) -> awc::ClientRequest {
        self.client().get(self.url(path))
    }

    pub fn post(&self, path: &str) -> awc::ClientRequest {
        self.client().post(self.url(path))
    }

    /// Registers a client by JSON and returns the 201 document.
    pub async fn register(&self, body: serde_json::Value) -> serde_json::Value {
        let mut res = self.post("/register").send_json(&body).await.expect("POST /register");
        let json: serde_json::Value = res.json().limit(1 << 20).await.expect("json body");
        assert_eq!(res.status(), 201, "registration failed: {json}");
        json
    }

    /// Registers a public client with one loopback redirect URI; returns its client_id.
    pub async fn register_public(&self, redirect_uri: &str) -> String {
        let doc = self
            .register(serde_json::json!({
                "client_name": "Test client",
                "redirect_uris": [redirect_uri],
                "token_endpoint_auth_method": "none",
            }))
            .await;
        doc["client_id"].as_str().expect("client_id").to_owned()
    }
}

/// Reads a response body as text.
pub async fn text<S>(res: &mut awc::ClientResponse<S>) -> String
where
    S: futures_util::Stream<Item = Result<actix_web::web::Bytes, awc::error::PayloadError>> + Unpin,
{
    let body = res.body().limit(1 << 22).await.expect("body");
    String::from_utf8_lossy(&body).into_owned()
}

/// Reads a response body as JSON.
pub async fn json<S>(res: &mut awc::ClientResponse<S>) -> serde_json::Value
where
    S: futures_util::Stream<Item = Result<actix_web::web::Bytes, awc::error::PayloadError>> + Unpin,
{
    let body = res.body().limit(1 << 22).await.expect("body");
    serde_json::from_slice(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&body)))
}

/// A header's value as a string ("" when absent).
pub fn header<S>(res: &awc::ClientResponse<S>, name: &str) -> String {
    res.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned()
}

/// A private redis-server on a unix socket in a temp dir, killed on drop. Fails the test
/// (never skips) when redis-server is missing: `scripts/test` installs it.
pub struct RedisServer {
    child: Child,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
}

impl RedisServer {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("redis.sock");
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", "0", "--unixsocket"])
            .arg(&socket)
            .args(["--unixsocketperm", "700", "--save", "", "--appendonly", "no", "--dir"])
            .arg(dir.path())
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().expect("redis-server must be installed (scripts/test installs it)");
        let server = Self { child, dir, socket };
        server.wait_ready();
        server
    }

    fn wait_ready(&self) {
        for _ in 0..200 {
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("redis-server did not start on {}", self.socket.display());
    }

    pub fn url(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Stops the server (simulating an outage); `restart` brings it back on the same socket.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
    }

    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new("redis-server")
            .args(["--port", "0", "--unixsocket"])
            .arg(&self.socket)
            .args(["--unixsocketperm", "700", "--save", "", "--appendonly", "no", "--dir"])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("restart redis-server");
        self.child = child;
        self.wait_ready();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
