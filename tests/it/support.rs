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
    /// The app's store, for what the operator does beside the server (`doorman clients …`).
    pub store: Store,
}

/// Settings for a test: defaults, rate limits off, the given backend, plus `overrides`
/// (`"storage.backend" → "redis"` style keys, as `DOORMAN__…` variables would set them).
pub fn settings(overrides: &[(&str, &str)]) -> Settings {
    Settings::load(None, Some(test_env(overrides))).unwrap_or_else(|e| panic!("test settings: {e}"))
}

/// The `DOORMAN__…` variables of a test: rate limits off, memory store, one worker, the
/// repository's static files, then `overrides`.
fn test_env(overrides: &[(&str, &str)]) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = HashMap::new();
    env.insert("DOORMAN__RATE_LIMIT__ENABLED".into(), "false".into());
    env.insert("DOORMAN__STORAGE__BACKEND".into(), "memory".into());
    env.insert("DOORMAN__SERVER__WORKERS".into(), "1".into());
    env.insert("DOORMAN__SERVER__SHUTDOWN_TIMEOUT".into(), "1".into());
    env.insert(
        "DOORMAN__SERVER__STATIC_DIR".into(),
        static_dir().display().to_string(),
    );
    for (k, v) in overrides {
        env.insert(
            format!("DOORMAN__{}", k.replace('.', "__").to_uppercase()),
            (*v).to_owned(),
        );
    }
    env
}

/// Settings for a test from a `--config` file holding `toml` (for lists of tables such as
/// `login.users` and `[[login.providers]]`, which `DOORMAN__…` overrides cannot express), then
/// the test defaults of `settings` and `overrides`.
pub fn settings_with_file(toml: &str, overrides: &[(&str, &str)]) -> Settings {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("doorman.toml");
    std::fs::write(&path, toml).expect("write config");
    Settings::load(Some(&path), Some(test_env(overrides)))
        .unwrap_or_else(|e| panic!("settings: {e}"))
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
        let path = overrides
            .iter()
            .find(|(k, _)| *k == "issuer_path")
            .map(|(_, v)| *v)
            .unwrap_or("");
        let issuer = format!("{base}{path}");
        let mut all: Vec<(&str, &str)> = overrides
            .iter()
            .filter(|(k, _)| *k != "issuer_path")
            .copied()
            .collect();
        all.push(("issuer", &issuer));
        let settings = settings(&all);
        let store = Store::open(&settings.storage).unwrap_or_else(|e| panic!("open store: {e}"));
        let clock = doorman::clock::Clock::default();
        let server =
            doorman::build_server(settings.clone(), store.clone(), clock.clone(), listener)
                .expect("build server");
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Self {
            addr,
            base,
            issuer,
            handle,
            settings,
            clock,
            store,
        }
    }

    /// Doorman with settings overrides and a given issuer (e.g. another app's), as processes
    /// behind one load balancer share one issuer while each listens on its own address.
    pub async fn with_issuer(overrides: &[(&str, &str)], issuer: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let base = format!("http://{addr}");
        let mut all: Vec<(&str, &str)> = overrides
            .iter()
            .filter(|(k, _)| *k != "issuer")
            .copied()
            .collect();
        all.push(("issuer", issuer));
        let settings = settings(&all);
        let store = Store::open(&settings.storage).unwrap_or_else(|e| panic!("open store: {e}"));
        let clock = doorman::clock::Clock::default();
        let server =
            doorman::build_server(settings.clone(), store.clone(), clock.clone(), listener)
                .expect("build server");
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Self {
            addr,
            base,
            issuer: issuer.to_owned(),
            handle,
            settings,
            clock,
            store,
        }
    }

    /// Doorman with settings built by the test (for what overrides cannot express, such as
    /// `login.users`). The issuer is replaced by the bound address, as in `with`.
    pub async fn with_settings(settings: Settings) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        Self::on(listener, settings).await
    }

    /// Doorman on a listener the test bound first (so it could tell its address to someone
    /// else, such as an identity provider's redirect URIs). The issuer is the bound address.
    pub async fn on(listener: TcpListener, mut settings: Settings) -> Self {
        let addr = listener.local_addr().expect("local addr");
        settings.issuer = format!("http://{addr}");
        Self::serve(listener, settings).await
    }

    /// Doorman on `listener` with `settings` as they are (their issuer may be another
    /// process's, as behind a load balancer).
    pub async fn serve(listener: TcpListener, settings: Settings) -> Self {
        let addr = listener.local_addr().expect("local addr");
        let base = format!("http://{addr}");
        let issuer = settings.issuer.clone();
        let store = Store::open(&settings.storage).unwrap_or_else(|e| panic!("open store: {e}"));
        let clock = doorman::clock::Clock::default();
        let server =
            doorman::build_server(settings.clone(), store.clone(), clock.clone(), listener)
                .expect("build server");
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Self {
            addr,
            base,
            issuer,
            handle,
            settings,
            clock,
            store,
        }
    }

    /// Registers a client as the operator does (`doorman clients register …`), on this app's
    /// store; returns it with its secrets.
    pub async fn operator_client(
        &self,
        new: doorman::admin::NewClient,
    ) -> doorman::flows::clients::Created {
        let state = doorman::state::AppState::new(
            self.settings.clone(),
            self.store.clone(),
            self.clock.clone(),
        );
        doorman::admin::register(&state, &new, &mut Vec::new())
            .await
            .unwrap_or_else(|e| panic!("operator registration: {e}"))
    }

    /// A public client with one redirect URI, registered by the operator (so its web redirect
    /// URI also receives error redirects before sign-in); returns its client_id.
    pub async fn operator_public(&self, redirect_uri: &str) -> String {
        self.operator_client(doorman::admin::NewClient {
            name: "Operator's app".into(),
            redirect_uris: vec![redirect_uri.into()],
            ..Default::default()
        })
        .await
        .client
        .client_id
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
        awc::Client::builder()
            .timeout(Duration::from_secs(10))
            .disable_redirects()
            .finish()
    }

    pub fn get(&self, path: &str) -> awc::ClientRequest {
        self.client().get(self.url(path))
    }

    pub fn post(&self, path: &str) -> awc::ClientRequest {
        self.client().post(self.url(path))
    }

    /// Registers a client by JSON and returns the 201 document.
    pub async fn register(&self, body: serde_json::Value) -> serde_json::Value {
        let mut res = self
            .post("/register")
            .send_json(&body)
            .await
            .expect("POST /register");
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
    serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&body)))
}

/// A header's value as a string ("" when absent).
pub fn header<S>(res: &awc::ClientResponse<S>, name: &str) -> String {
    res.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// A private redis-server on a unix socket in a temp dir, killed on drop. Fails the test
/// (never skips) when redis-server is missing: `scripts/test` installs it.
pub struct RedisServer {
    child: Child,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    /// Extra `redis-server` arguments, given again on `restart`.
    extra: Vec<String>,
}

impl RedisServer {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A redis-server that appends every write to its AOF and fsyncs it before answering
    /// (`appendfsync always`), so a write it acknowledged survives `kill` + `restart`.
    pub fn start_durable() -> Self {
        Self::start_with(&["--appendonly", "yes", "--appendfsync", "always"])
    }

    pub fn start_with(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("redis.sock");
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", "0", "--unixsocket"])
            .arg(&socket)
            .args([
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
            ])
            .arg(dir.path())
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd
            .spawn()
            .expect("redis-server must be installed (scripts/test installs it)");
        let extra = extra.iter().map(|s| (*s).to_owned()).collect();
        let server = Self {
            child,
            dir,
            socket,
            extra,
        };
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

    /// Freezes the server (SIGSTOP): connections stay open and nothing is answered, as with a
    /// Redis stuck on a slow disk or a long command; `resume` thaws it.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, which: &str) {
        let status = Command::new("kill")
            .arg(which)
            .arg(self.child.id().to_string())
            .status()
            .expect("kill(1)");
        assert!(status.success(), "kill {which} redis-server");
    }

    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new("redis-server")
            .args(["--port", "0", "--unixsocket"])
            .arg(&self.socket)
            .args([
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
            ])
            .arg(self.dir.path())
            .args(&self.extra)
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

/// A loopback TCP port that was free a moment ago, for servers that must be told their port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// A free port whose cluster bus port (+10000) is free too.
fn free_cluster_port() -> u16 {
    loop {
        let port = free_port();
        if port <= 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

/// True when a redis-server on `port` answers PING.
fn redis_pong(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

/// `redis-cli -h 127.0.0.1 -p PORT ARGS…`; its standard output. Panics (the test fails, it is
/// never skipped) when redis-cli is missing.
pub fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("redis-cli must be installed (package redis-tools; scripts/test installs redis-server, which brings it)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A three-master Redis Cluster on loopback ports (`redis-server --cluster-enabled yes` ×3,
/// then `redis-cli --cluster create … --cluster-replicas 0`), killed on drop. Fails the test
/// (never skips) when redis-server or redis-cli is missing.
pub struct RedisCluster {
    nodes: Vec<Option<Child>>,
    pub ports: Vec<u16>,
    pub dir: tempfile::TempDir,
    /// AOF with `appendfsync always` on every node, so a killed node restarts with its data.
    durable: bool,
}

impl RedisCluster {
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// A cluster whose nodes fsync every write to their AOF before answering, for tests that
    /// kill and restart a node.
    pub fn start_durable() -> Self {
        Self::start_with(true)
    }

    fn start_with(durable: bool) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cluster = Self {
            nodes: Vec::new(),
            ports: Vec::new(),
            dir,
            durable,
        };
        for n in 0..3 {
            cluster.start_node(n);
        }
        let addrs: Vec<String> = cluster
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli must be installed (package redis-tools; scripts/test installs redis-server, which brings it)");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        cluster.wait_ok();
        cluster
    }

    /// `redis-server` for node `n` on `port`: its own directory (`nodes.conf`, AOF) under `dir`.
    fn spawn_node(&self, n: usize, port: u16) -> Child {
        let node_dir = self.dir.path().join(format!("node-{n}"));
        std::fs::create_dir_all(&node_dir).expect("node dir");
        let appendonly = if self.durable { "yes" } else { "no" };
        Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--save",
                "",
                "--appendonly",
                appendonly,
                "--appendfsync",
                "always",
                "--dir",
            ])
            .arg(&node_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/test installs it)")
    }

    /// Waits until `child` answers PING on `port`; false when it exited (port taken).
    fn wait_node(child: &mut Child, port: u16) -> bool {
        for _ in 0..400 {
            if child.try_wait().ok().flatten().is_some() {
                return false;
            }
            if redis_pong(port) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        false
    }

    /// Starts node `n` on a free port, trying another port if that one was taken meanwhile.
    fn start_node(&mut self, n: usize) {
        for _ in 0..10 {
            let port = free_cluster_port();
            let mut child = self.spawn_node(n, port);
            if Self::wait_node(&mut child, port) {
                self.nodes.push(Some(child));
                self.ports.push(port);
                return;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("cluster node {n}: redis-server did not start");
    }

    /// `kill -9` of node `n`.
    pub fn kill_node(&mut self, n: usize) {
        if let Some(mut child) = self.nodes[n].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts node `n` again on its port, with its `nodes.conf` (and AOF, when durable); returns
    /// once it answers PING (the cluster reports `ok` a moment later).
    pub fn restart_node(&mut self, n: usize) {
        self.kill_node(n);
        let port = self.ports[n];
        let mut child = self.spawn_node(n, port);
        assert!(
            Self::wait_node(&mut child, port),
            "cluster node {n} did not restart on port {port}"
        );
        self.nodes[n] = Some(child);
    }

    /// Waits until every node reports `cluster_state:ok`.
    pub fn wait_ok(&self) {
        for _ in 0..200 {
            if self
                .ports
                .iter()
                .all(|p| redis_cli(*p, &["cluster", "info"]).contains("cluster_state:ok"))
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "the cluster on ports {:?} did not reach cluster_state:ok",
            self.ports
        );
    }

    /// The node URLs, comma-separated, as `storage.redis_url` takes them in cluster mode.
    pub fn url(&self) -> String {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Settings overrides for Doorman on this cluster.
    pub fn overrides(&self) -> Vec<(String, String)> {
        vec![
            ("storage.backend".into(), "redis".into()),
            ("storage.redis_mode".into(), "cluster".into()),
            ("storage.redis_url".into(), self.url()),
        ]
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for n in 0..self.nodes.len() {
            self.kill_node(n);
        }
    }
}

/// One blocking `GET` on a fresh connection; the status, or `None` when nothing answers.
pub fn http_status(addr: std::net::SocketAddr, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// The built `doorman` binary as a process of its own (for `kill -9` and SIGTERM): settings in
/// a `--config` file, `overrides` as `DOORMAN__…` environment variables, standard error in
/// `log`. Killed on drop.
pub struct DoormanProcess {
    child: Option<Child>,
    pub addr: std::net::SocketAddr,
    pub base: String,
    pub log: PathBuf,
    config: PathBuf,
    overrides: Vec<(String, String)>,
    dir: tempfile::TempDir,
}

impl DoormanProcess {
    /// Starts `doorman --config FILE serve` on a free loopback port and waits for `/healthz`.
    pub fn start(overrides: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut process = Self {
            child: None,
            addr: ([127, 0, 0, 1], 0).into(),
            base: String::new(),
            log: dir.path().join("doorman.log"),
            config: dir.path().join("doorman.toml"),
            overrides: overrides
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            dir,
        };
        let mut last = String::new();
        // The port was free a moment ago; if another process took it meanwhile, take another.
        for _ in 0..5 {
            process.addr = ([127, 0, 0, 1], free_port()).into();
            process.base = format!("http://{}", process.addr);
            let toml = format!(
                "issuer = \"{base}\"\n\n[server]\nbind = \"{addr}\"\nworkers = 2\nstatic_dir = {static_dir:?}\nshutdown_timeout = 10\n\n[rate_limit]\nenabled = false\n",
                base = process.base,
                addr = process.addr,
                static_dir = static_dir().display().to_string(),
            );
            std::fs::write(&process.config, toml).expect("write config");
            match process.spawn() {
                Ok(()) => return process,
                Err(e) => last = e,
            }
        }
        panic!("doorman did not start: {last}");
    }

    /// Spawns the binary and waits until `/healthz` answers 200 (or the process exits).
    fn spawn(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_doorman"));
        cmd.arg("--config")
            .arg(&self.config)
            .arg("serve")
            .current_dir(self.dir.path());
        for (k, _) in std::env::vars() {
            if k.starts_with("DOORMAN_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("RUST_LOG", "info");
        for (k, v) in &self.overrides {
            cmd.env(
                format!("DOORMAN__{}", k.replace('.', "__").to_uppercase()),
                v,
            );
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn the doorman binary");
        self.child = Some(child);
        for _ in 0..400 {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(format!("exited with {status}: {}", self.log_text()));
            }
            if http_status(self.addr, "/healthz") == Some(200) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        self.stop_child();
        Err(format!("no answer on {}: {}", self.addr, self.log_text()))
    }

    /// Starts the binary again with the same settings, port and data.
    pub fn restart(&mut self) {
        self.stop_child();
        if let Err(e) = self.spawn() {
            panic!("doorman did not restart: {e}");
        }
    }

    /// `kill -9`: no chance to flush or clean up.
    pub fn kill_9(&mut self) {
        self.stop_child();
    }

    fn stop_child(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends SIGTERM (through `kill`, as an orchestrator would).
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits up to `within` for the process to exit; its exit status.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let started = std::time::Instant::now();
        while started.elapsed() < within {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Everything the process wrote to standard error so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for DoormanProcess {
    fn drop(&mut self) {
        self.stop_child();
    }
}

/// The three backends a test runs on: memory, embedded (a file in a temporary directory) and a
/// private Redis, each as the overrides that select it. Dropping it stops Redis and removes the
/// directory.
pub struct EveryBackend {
    _redis: RedisServer,
    _dir: tempfile::TempDir,
    path: String,
    url: String,
}

impl EveryBackend {
    pub fn start() -> Self {
        let redis = RedisServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("doorman.redb").display().to_string();
        let url = redis.url();
        Self {
            _redis: redis,
            _dir: dir,
            path,
            url,
        }
    }

    pub fn overrides(&self) -> Vec<Vec<(&str, &str)>> {
        vec![
            vec![("storage.backend", "memory")],
            vec![
                ("storage.backend", "embedded"),
                ("storage.path", &self.path),
            ],
            vec![
                ("storage.backend", "redis"),
                ("storage.redis_url", &self.url),
            ],
        ]
    }
}
