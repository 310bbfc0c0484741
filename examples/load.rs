//! Load without loss (issue 6): Doorman release processes on a private Redis (or Redis
//! Cluster, or the embedded backend), concurrent clients registering and authorizing, faults
//! in the middle, and a check that every acknowledged registration is still found through
//! every process. Run it through `scripts/load` (which builds it); `scripts/load --help` lists
//! the options. Loopback only, bounded in count and time, stops by itself.
#![allow(clippy::print_stdout, clippy::print_stderr)] // a command-line report

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{Value, json};

/// A valid S256 challenge (RFC 7636 appendix B) and its verifier.
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const REDIRECT: &str = "http://127.0.0.1:4000/cb";
/// A browser's Accept: /authorize answers with the consent page (dev sign-in mode).
const HTML: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

#[derive(Parser, Debug, Clone)]
#[command(
    name = "load",
    about = "Registration and authorization load against Doorman release processes, with faults"
)]
struct Args {
    /// Clients to register (each is registered until acknowledged, then authorized).
    #[arg(long, default_value_t = 20_000)]
    clients: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Every Nth client also runs consent and /token (0: never).
    #[arg(long, default_value_t = 50)]
    flow_every: usize,
    /// Fault (a): kill -9 Redis when 40% of the clients are registered, restart it after
    /// --outage-ms, measure recovery.
    #[arg(long)]
    kill_redis: bool,
    /// How long Redis stays down with --kill-redis.
    #[arg(long, default_value_t = 3000)]
    outage_ms: u64,
    /// Fault (b): one Doorman on the embedded backend, kill -9 at 50% and restart it.
    #[arg(long, conflicts_with_all = ["kill_redis", "cluster"])]
    embedded_kill9: bool,
    /// A three-master Redis Cluster instead of one Redis (with --kill-redis, the first master
    /// is the one killed and restarted).
    #[arg(long)]
    cluster: bool,
    /// Give up (exit 1) after this many seconds, whatever is left.
    #[arg(long, default_value_t = 900)]
    time_limit: u64,
    /// The doorman binary.
    #[arg(long, default_value = "target/release/doorman")]
    doorman: PathBuf,
    /// Keep the working directory (configs, logs, data) afterwards.
    #[arg(long)]
    keep: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let system = actix_web::rt::System::new();
    match system.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("load: {e}");
            ExitCode::from(2)
        }
    }
}

// --- processes --------------------------------------------------------------------------------

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

async fn sleep_ms(ms: u64) {
    actix_web::rt::time::sleep(Duration::from_millis(ms)).await;
}

fn kill(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// True when the redis-server at `target` (`host:port` or a socket path) answers PING.
fn redis_pong(target: &str) -> bool {
    let args: Vec<&str> = if target.starts_with('/') {
        vec!["-s", target, "ping"]
    } else {
        let (host, port) = target.split_once(':').unwrap_or((target, "6379"));
        vec!["-h", host, "-p", port, "ping"]
    };
    Command::new("redis-cli")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "PONG")
}

/// One redis-server with its data directory, AOF with `appendfsync always`.
struct RedisNode {
    args: Vec<String>,
    /// What redis_pong is given: the socket path or `127.0.0.1:port`.
    target: String,
    child: Option<Child>,
    log: PathBuf,
}

impl RedisNode {
    fn unix(dir: &Path) -> Self {
        let socket = dir.join("redis.sock").display().to_string();
        let args = [
            "--port",
            "0",
            "--unixsocket",
            &socket,
            "--unixsocketperm",
            "700",
        ];
        Self::new(dir, &args, socket.clone())
    }

    fn cluster_node(dir: &Path, port: u16) -> Self {
        let port_s = port.to_string();
        let args = [
            "--port",
            &port_s,
            "--bind",
            "127.0.0.1",
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
        ];
        Self::new(dir, &args, format!("127.0.0.1:{port}"))
    }

    fn new(dir: &Path, specific: &[&str], target: String) -> Self {
        let mut args: Vec<String> = specific.iter().map(|s| (*s).to_owned()).collect();
        for a in [
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--dir",
        ] {
            args.push(a.to_owned());
        }
        args.push(dir.display().to_string());
        Self {
            args,
            target,
            child: None,
            log: dir.join("redis.log"),
        }
    }

    /// Starts (or restarts, on the same data) and waits until it answers PING.
    async fn start(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("{}: {e}", self.log.display()))?;
        let child = Command::new("redis-server")
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("redis-server must be installed: {e}"))?;
        self.child = Some(child);
        for _ in 0..500 {
            if redis_pong(&self.target) {
                return Ok(());
            }
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                return Err(format!(
                    "redis-server exited with {status}; see {}",
                    self.log.display()
                ));
            }
            sleep_ms(10).await;
        }
        Err(format!("redis-server on {} did not answer", self.target))
    }

    /// kill -9.
    fn kill(&mut self) {
        kill(&mut self.child);
    }
}

impl Drop for RedisNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The storage behind the Doorman processes.
enum Storage {
    Redis(RedisNode),
    Cluster(Vec<RedisNode>),
    Embedded(PathBuf),
}

impl Storage {
    async fn redis(dir: &Path) -> Result<Self, String> {
        let mut node = RedisNode::unix(dir);
        node.start().await?;
        Ok(Self::Redis(node))
    }

    async fn cluster(dir: &Path) -> Result<Self, String> {
        let mut nodes = Vec::new();
        for n in 0..3 {
            let node_dir = dir.join(format!("node-{n}"));
            std::fs::create_dir_all(&node_dir).map_err(|e| e.to_string())?;
            let mut started = None;
            for _ in 0..10 {
                let port = free_port()?;
                if port > 55_000 || TcpListener::bind(("127.0.0.1", port + 10_000)).is_err() {
                    continue;
                }
                let mut node = RedisNode::cluster_node(&node_dir, port);
                if node.start().await.is_ok() {
                    started = Some(node);
                    break;
                }
            }
            nodes.push(started.ok_or("a cluster node did not start")?);
        }
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(nodes.iter().map(|n| n.target.clone()))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("redis-cli must be installed: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "redis-cli --cluster create: {}",
                String::from_utf8_lossy(&out.stdout)
            ));
        }
        for _ in 0..500 {
            let ok = nodes.iter().all(|n| {
                let (_, port) = n.target.split_once(':').unwrap_or_default();
                Command::new("redis-cli")
                    .args(["-h", "127.0.0.1", "-p", port, "cluster", "info"])
                    .output()
                    .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("cluster_state:ok"))
            });
            if ok {
                return Ok(Self::Cluster(nodes));
            }
            sleep_ms(20).await;
        }
        Err("the cluster did not reach cluster_state:ok".into())
    }

    fn toml(&self) -> String {
        match self {
            Self::Redis(node) => format!(
                "backend = \"redis\"\nredis_mode = \"single\"\nredis_url = \"unix://{}\"\n",
                node.target
            ),
            Self::Cluster(nodes) => format!(
                "backend = \"redis\"\nredis_mode = \"cluster\"\nredis_url = \"{}\"\n",
                nodes
                    .iter()
                    .map(|n| format!("redis://{}", n.target))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            Self::Embedded(path) => {
                format!(
                    "backend = \"embedded\"\npath = {:?}\n",
                    path.display().to_string()
                )
            }
        }
    }

    fn describe(&self) -> &'static str {
        match self {
            Self::Redis(_) => "one redis-server (AOF, appendfsync always) on a unix socket",
            Self::Cluster(_) => {
                "a three-master Redis Cluster (AOF, appendfsync always) on loopback"
            }
            Self::Embedded(_) => "the embedded backend (one redb file)",
        }
    }
}

/// A `doorman serve` release process.
struct Doorman {
    name: &'static str,
    base: String,
    config: PathBuf,
    log: PathBuf,
    binary: PathBuf,
    child: Option<Child>,
}

impl Doorman {
    /// Writes the config and starts the process; `issuer` is shared by the processes (they sit
    /// behind one name, as behind a load balancer).
    async fn start(
        name: &'static str,
        binary: &Path,
        dir: &Path,
        port: u16,
        issuer: &str,
        storage: &Storage,
    ) -> Result<Self, String> {
        let config = dir.join(format!("doorman-{name}.toml"));
        let static_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("static");
        let toml = format!(
            "issuer = \"{issuer}\"\n\n[server]\nbind = \"127.0.0.1:{port}\"\nworkers = 2\nstatic_dir = {:?}\nshutdown_timeout = 5\n\n[storage]\n{}timeout_ms = 2000\n\n[rate_limit]\nenabled = false\n\n[login]\nmode = \"dev\"\n",
            static_dir.display().to_string(),
            storage.toml()
        );
        std::fs::write(&config, toml).map_err(|e| format!("{}: {e}", config.display()))?;
        let mut doorman = Self {
            name,
            base: format!("http://127.0.0.1:{port}"),
            config,
            log: dir.join(format!("doorman-{name}.log")),
            binary: binary.to_owned(),
            child: None,
        };
        doorman.spawn().await?;
        Ok(doorman)
    }

    async fn spawn(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("{}: {e}", self.log.display()))?;
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--config").arg(&self.config).arg("serve");
        for (k, _) in std::env::vars() {
            if k.starts_with("DOORMAN_") {
                cmd.env_remove(k);
            }
        }
        let child = cmd
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| {
                format!(
                    "{}: {e} (build it: cargo build --release)",
                    self.binary.display()
                )
            })?;
        self.child = Some(child);
        let http = http_client();
        for _ in 0..1000 {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                return Err(format!(
                    "doorman {} exited with {status}; see {}",
                    self.name,
                    self.log.display()
                ));
            }
            if let Ok(res) = http.get(format!("{}/healthz", self.base)).send().await
                && res.status() == 200
            {
                return Ok(());
            }
            sleep_ms(10).await;
        }
        Err(format!("doorman {} did not answer /healthz", self.name))
    }
}

impl Drop for Doorman {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

// --- the load ---------------------------------------------------------------------------------

fn http_client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(15))
        .disable_redirects()
        .connector(awc::Connector::new().limit(1024))
        .finish()
}

/// An answer, read completely.
struct Reply {
    status: u16,
    headers: awc::http::header::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn field(&self, name: &str) -> Option<String> {
        let body = String::from_utf8_lossy(&self.body);
        let marker = format!("name=\"{name}\" value=\"");
        let start = body.find(&marker)? + marker.len();
        let len = body[start..].find('"')?;
        Some(body[start..start + len].to_owned())
    }

    /// The cookies a browser would send back: the session, and the browser binding of the
    /// pending request (docs/behaviour.md §11); `None` without a session.
    fn session_cookie(&self) -> Option<String> {
        let cookies: Vec<&str> = self
            .headers
            .get_all("set-cookie")
            .filter_map(|v| v.to_str().ok())
            .filter(|v| v.starts_with("doorman_"))
            .filter_map(|line| line.split(';').next())
            .collect();
        cookies
            .iter()
            .any(|c| c.starts_with("doorman_session="))
            .then(|| cookies.join("; "))
    }

    fn location_param(&self, name: &str) -> Option<String> {
        let url = url::Url::parse(self.header("location")).ok()?;
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// A 503 as docs/behaviour.md §2 wants it: temporarily_unavailable, Retry-After, no "unregistered".
    fn is_proper_503(&self) -> bool {
        let doc = self.json();
        let html = self.header("content-type").starts_with("text/html");
        self.header("retry-after")
            .parse::<u64>()
            .is_ok_and(|s| s > 0)
            && if html {
                !String::from_utf8_lossy(&self.body).contains("not registered")
            } else {
                doc["error"] == "temporarily_unavailable" && doc.get("reason").is_none()
            }
    }
}

/// Which request, for the tally.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Step {
    Register,
    Authorize,
    Consent,
    Token,
    Verify,
}

impl Step {
    fn label(self) -> &'static str {
        match self {
            Self::Register => "POST /register",
            Self::Authorize => "GET /authorize",
            Self::Consent => "POST /consent",
            Self::Token => "POST /token",
            Self::Verify => "GET /register/{id} (check)",
        }
    }
}

/// Everything counted while the load runs.
#[derive(Default)]
struct Tally {
    /// (step, status) → count; status 0 = no answer (connection refused or reset).
    statuses: BTreeMap<(Step, u16), u64>,
    /// Acknowledged registrations: client_id and registration access token.
    acked: Vec<(String, String)>,
    /// Answers the contract forbids (a 500, an unregistered answer for a known client, a 503
    /// without Retry-After …), with a sample of each.
    unexpected: Vec<String>,
    /// Per process: when it last failed and when it first succeeded after the fault.
    recovered: Vec<Option<Instant>>,
}

struct Ctx {
    args: Args,
    bases: Vec<String>,
    http: awc::Client,
    next: Cell<usize>,
    deadline: Instant,
    tally: RefCell<Tally>,
    /// Set when the fault is over (Redis answers again, or the killed process serves again).
    fault_over: Cell<Option<Instant>>,
    /// Set when the fault begins.
    fault_began: Cell<Option<Instant>>,
    /// Store-backed successes between the fault's beginning and its end.
    served_in_fault: Cell<u64>,
}

impl Ctx {
    fn count(&self, step: Step, status: u16) {
        *self
            .tally
            .borrow_mut()
            .statuses
            .entry((step, status))
            .or_default() += 1;
    }

    fn unexpected(&self, what: String) {
        let mut t = self.tally.borrow_mut();
        if t.unexpected.len() < 1000 {
            t.unexpected.push(what);
        }
    }

    /// A store-backed success from process `p`: the first one after the fault is its recovery.
    fn success(&self, p: usize) {
        if self.fault_began.get().is_some() && self.fault_over.get().is_none() {
            self.served_in_fault.set(self.served_in_fault.get() + 1);
        }
        if let Some(over) = self.fault_over.get() {
            let now = Instant::now();
            let mut t = self.tally.borrow_mut();
            if t.recovered[p].is_none() && now > over {
                t.recovered[p] = Some(now);
            }
        }
    }

    async fn send(
        &self,
        step: Step,
        req: awc::ClientRequest,
        form: Option<&[(&str, &str)]>,
        json: Option<&Value>,
    ) -> Option<Reply> {
        let sent = match (form, json) {
            (Some(f), _) => req.send_form(&f).await,
            (None, Some(j)) => req.send_json(j).await,
            (None, None) => req.send().await,
        };
        let reply = match sent {
            Ok(mut res) => match res.body().limit(1 << 20).await {
                Ok(body) => Some(Reply {
                    status: res.status().as_u16(),
                    headers: res.headers().clone(),
                    body: body.to_vec(),
                }),
                Err(_) => None,
            },
            Err(_) => None,
        };
        self.count(step, reply.as_ref().map_or(0, |r| r.status));
        if let Some(r) = &reply
            && r.status == 503
            && !r.is_proper_503()
        {
            self.unexpected(format!(
                "{}: 503 without Retry-After/temporarily_unavailable: {}",
                step.label(),
                String::from_utf8_lossy(&r.body)
            ));
        }
        reply
    }
}

/// Registers client `i` on one process until acknowledged (a 503 or no answer is retried, as a
/// client told `Retry-After` would), then authorizes it on the other, and every
/// `flow_every`-th time also approves and redeems the code.
async fn worker(ctx: Rc<Ctx>) {
    let n = ctx.bases.len();
    loop {
        let i = ctx.next.get();
        if i >= ctx.args.clients || Instant::now() > ctx.deadline {
            return;
        }
        ctx.next.set(i + 1);
        let (p, q) = (i % n, (i + 1) % n);
        let body = json!({
            "client_name": format!("load client {i}"),
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "none",
        });
        let client_id = loop {
            if Instant::now() > ctx.deadline {
                return;
            }
            let req = ctx.http.post(format!("{}/register", ctx.bases[p]));
            match ctx.send(Step::Register, req, None, Some(&body)).await {
                Some(r) if r.status == 201 => {
                    let doc = r.json();
                    let id = doc["client_id"].as_str().unwrap_or_default().to_owned();
                    let token = doc["registration_access_token"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    ctx.tally.borrow_mut().acked.push((id.clone(), token));
                    ctx.success(p);
                    break id;
                }
                Some(r) if r.status == 503 => sleep_ms(100).await,
                None => sleep_ms(100).await,
                Some(r) => {
                    ctx.unexpected(format!(
                        "POST /register answered {}: {}",
                        r.status,
                        String::from_utf8_lossy(&r.body)
                    ));
                    break String::new();
                }
            }
        };
        if client_id.is_empty() {
            continue;
        }
        let path = format!(
            "/authorize?response_type=code&client_id={client_id}&redirect_uri={}&code_challenge={CHALLENGE}&code_challenge_method=S256&state=s{i}&scope=mcp",
            url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
        );
        let req = ctx
            .http
            .get(format!("{}{path}", ctx.bases[q]))
            .insert_header(("accept", HTML));
        let Some(page) = ctx.send(Step::Authorize, req, None, None).await else {
            continue;
        };
        match page.status {
            200 => ctx.success(q),
            503 => continue,
            other => {
                ctx.unexpected(format!(
                    "GET /authorize for registered {client_id} answered {other}"
                ));
                continue;
            }
        }
        if ctx.args.flow_every == 0 || !i.is_multiple_of(ctx.args.flow_every) {
            continue;
        }
        let (Some(cookie), Some(request), Some(csrf)) = (
            page.session_cookie(),
            page.field("request"),
            page.field("csrf_token"),
        ) else {
            ctx.unexpected(format!("no consent form for {client_id}"));
            continue;
        };
        // As a browser sends it: a form POST from Doorman's own page carries its Origin
        // (docs/behaviour.md §11: a POST from another site is refused).
        let req = ctx
            .http
            .post(format!("{}/consent", ctx.bases[p]))
            .insert_header(("cookie", cookie))
            .insert_header(("origin", ctx.bases[p].as_str()))
            .insert_header(("sec-fetch-site", "same-origin"));
        let form = [
            ("request", request.as_str()),
            ("csrf_token", csrf.as_str()),
            ("decision", "approve"),
        ];
        let Some(done) = ctx.send(Step::Consent, req, Some(&form), None).await else {
            continue;
        };
        let Some(code) = done.location_param("code").filter(|_| done.status == 303) else {
            if done.status != 503 {
                ctx.unexpected(format!("POST /consent answered {}", done.status));
            }
            continue;
        };
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("client_id", client_id.as_str()),
        ];
        let req = ctx.http.post(format!("{}/token", ctx.bases[q]));
        if let Some(r) = ctx.send(Step::Token, req, Some(&form), None).await
            && !matches!(r.status, 200 | 503)
        {
            ctx.unexpected(format!(
                "POST /token answered {}: {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            ));
        }
    }
}

/// Reads every acknowledged registration back through every process (RFC 7592 GET).
async fn verify(ctx: Rc<Ctx>, next: Rc<Cell<usize>>, lost: Rc<RefCell<Vec<String>>>) {
    loop {
        let i = next.get();
        let Some((id, mut token)) = ctx.tally.borrow().acked.get(i).cloned() else {
            return;
        };
        next.set(i + 1);
        // Every RFC 7592 answer carries a new registration access token and ends the old one
        // (docs/security.md), so each read uses the token the previous one returned — which
        // also checks that a rotation made through one process holds on the other.
        for base in &ctx.bases {
            let mut found = false;
            // A transport hiccup is retried; an answer other than 200 is not.
            for _ in 0..3 {
                let req = ctx
                    .http
                    .get(format!("{base}/register/{id}"))
                    .insert_header(("authorization", format!("Bearer {token}")));
                match ctx.send(Step::Verify, req, None, None).await {
                    Some(r) => {
                        let doc = r.json();
                        found = r.status == 200 && doc["client_id"] == id.as_str();
                        if let Some(next) = doc["registration_access_token"].as_str() {
                            token = next.to_owned();
                        }
                        break;
                    }
                    None => sleep_ms(100).await,
                }
            }
            if !found {
                lost.borrow_mut().push(format!("{id} via {base}"));
            }
        }
    }
}

async fn wait_until(ctx: &Ctx, done: impl Fn(&Ctx) -> bool) -> bool {
    while !done(ctx) {
        if Instant::now() > ctx.deadline || ctx.next.get() >= ctx.args.clients {
            return false;
        }
        sleep_ms(10).await;
    }
    true
}

/// What the fault controller measured.
#[derive(Default)]
struct FaultReport {
    lines: Vec<String>,
    ok: bool,
}

/// Fault (a): kill -9 Redis at 40%, restart it after the outage, time /readyz.
async fn kill_redis(ctx: Rc<Ctx>, storage: Rc<RefCell<Storage>>) -> FaultReport {
    let mut report = FaultReport::default();
    let target = ctx.args.clients * 2 / 5;
    if !wait_until(&ctx, |c| c.tally.borrow().acked.len() >= target).await {
        report
            .lines
            .push("fault: never reached 40% of the load".into());
        return report;
    }
    // The node is taken out while it is down, so no RefCell borrow lives across an await.
    // The node is taken out while it is down, so no RefCell borrow lives across an await; a
    // cluster's other nodes stay in place.
    let taken = std::mem::replace(&mut *storage.borrow_mut(), Storage::Cluster(Vec::new()));
    let mut node = match taken {
        Storage::Redis(node) => node,
        Storage::Cluster(mut nodes) if !nodes.is_empty() => {
            let first = nodes.remove(0);
            *storage.borrow_mut() = Storage::Cluster(nodes);
            first
        }
        other => {
            *storage.borrow_mut() = other;
            report.lines.push("fault: no Redis to kill".into());
            return report;
        }
    };
    let killed = Instant::now();
    ctx.fault_began.set(Some(killed));
    node.kill();
    let acked_at_kill = ctx.tally.borrow().acked.len();
    sleep_ms(ctx.args.outage_ms).await;
    // Restarted on the same data directory (its AOF) and, in a cluster, the same nodes.conf.
    let started = node.start().await;
    {
        let mut storage = storage.borrow_mut();
        match &mut *storage {
            Storage::Cluster(nodes) if !nodes.is_empty() => nodes.insert(0, node),
            single => *single = Storage::Redis(node),
        }
    }
    if let Err(e) = started {
        report
            .lines
            .push(format!("fault: Redis did not restart: {e}"));
        return report;
    }
    let back = Instant::now();
    ctx.fault_over.set(Some(back));
    let mut ready = Vec::new();
    for base in &ctx.bases {
        let mut when = None;
        while Instant::now() < back + Duration::from_secs(30) {
            if let Ok(res) = ctx.http.get(format!("{base}/readyz")).send().await
                && res.status() == 200
            {
                when = Some(back.elapsed());
                break;
            }
            sleep_ms(20).await;
        }
        ready.push(when);
    }
    report.lines.push(format!(
        "fault (a): a redis-server killed (-9) after {acked_at_kill} acknowledged registrations; outage (kill → Redis answering again) {:.2} s",
        (back - killed).as_secs_f64()
    ));
    report.lines.push(format!(
        "           /readyz back to 200 after Redis returned: {}",
        ctx.bases
            .iter()
            .zip(&ready)
            .map(|(b, r)| format!(
                "{b} {}",
                r.map_or("never".into(), |d| format!("{:.3} s", d.as_secs_f64()))
            ))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    report.ok = ready.iter().all(Option::is_some);
    report
}

/// Fault (b): kill -9 the (embedded) Doorman at 50%, restart it on the same file.
async fn kill_doorman(ctx: Rc<Ctx>, doorman: Rc<RefCell<Option<Doorman>>>) -> FaultReport {
    let mut report = FaultReport::default();
    let target = ctx.args.clients / 2;
    if !wait_until(&ctx, |c| c.tally.borrow().acked.len() >= target).await {
        report
            .lines
            .push("fault: never reached 50% of the load".into());
        return report;
    }
    let Some(mut d) = doorman.borrow_mut().take() else {
        return report;
    };
    let killed = Instant::now();
    ctx.fault_began.set(Some(killed));
    kill(&mut d.child);
    let acked_at_kill = ctx.tally.borrow().acked.len();
    let restarted = d.spawn().await;
    let back = Instant::now();
    let ready = ctx
        .http
        .get(format!("{}/readyz", d.base))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0);
    *doorman.borrow_mut() = Some(d);
    ctx.fault_over.set(Some(back));
    match restarted {
        Ok(()) => report.lines.push(format!(
            "fault (b): doorman killed (-9) after {acked_at_kill} acknowledged registrations; restarted and serving after {:.2} s; /readyz {ready} (the store opened cleanly)",
            (back - killed).as_secs_f64()
        )),
        Err(e) => report.lines.push(format!("fault (b): the restart failed: {e}")),
    }
    report.ok = ready == 200;
    report
}

async fn run(args: Args) -> Result<bool, String> {
    let work = tempfile::Builder::new()
        .prefix("doorman-load-")
        .tempdir()
        .map_err(|e| format!("tempdir: {e}"))?;
    let dir = work.path().to_owned();
    if !args.doorman.is_file() {
        return Err(format!(
            "{} not found (scripts/load builds it)",
            args.doorman.display()
        ));
    }
    let storage = if args.embedded_kill9 {
        Storage::Embedded(dir.join("doorman.redb"))
    } else if args.cluster {
        Storage::cluster(&dir).await?
    } else {
        Storage::redis(&dir).await?
    };
    let names: &[&'static str] = if args.embedded_kill9 {
        &["A"]
    } else {
        &["A", "B"]
    };
    let ports: Vec<u16> = names
        .iter()
        .map(|_| free_port())
        .collect::<Result<_, _>>()?;
    let issuer = format!("http://127.0.0.1:{}", ports[0]);
    let mut doormen = Vec::new();
    for (name, port) in names.iter().zip(&ports) {
        doormen.push(Doorman::start(name, &args.doorman, &dir, *port, &issuer, &storage).await?);
    }
    let bases: Vec<String> = doormen.iter().map(|d| d.base.clone()).collect();
    println!(
        "load: {} clients, {} in flight, {} Doorman process(es) {} on {}",
        args.clients,
        args.concurrency,
        bases.len(),
        bases.join(" "),
        storage.describe()
    );
    let ctx = Rc::new(Ctx {
        args: args.clone(),
        bases: bases.clone(),
        http: http_client(),
        next: Cell::new(0),
        deadline: Instant::now() + Duration::from_secs(args.time_limit),
        tally: RefCell::new(Tally {
            recovered: vec![None; bases.len()],
            ..Tally::default()
        }),
        fault_over: Cell::new(None),
        fault_began: Cell::new(None),
        served_in_fault: Cell::new(0),
    });
    let storage = Rc::new(RefCell::new(storage));
    let doorman_slot = Rc::new(RefCell::new(None));
    if args.embedded_kill9 {
        *doorman_slot.borrow_mut() = doormen.pop();
    }

    let started = Instant::now();
    let fault = if args.kill_redis {
        Some(actix_web::rt::spawn(kill_redis(
            ctx.clone(),
            storage.clone(),
        )))
    } else if args.embedded_kill9 {
        Some(actix_web::rt::spawn(kill_doorman(
            ctx.clone(),
            doorman_slot.clone(),
        )))
    } else {
        None
    };
    let workers: Vec<_> = (0..args.concurrency)
        .map(|_| actix_web::rt::spawn(worker(ctx.clone())))
        .collect();
    for w in workers {
        w.await.map_err(|e| format!("worker: {e}"))?;
    }
    let load_time = started.elapsed();
    let fault_report = match fault {
        Some(f) => Some(f.await.map_err(|e| format!("fault: {e}"))?),
        None => None,
    };

    let verify_started = Instant::now();
    let next = Rc::new(Cell::new(0));
    let lost = Rc::new(RefCell::new(Vec::new()));
    let checkers: Vec<_> = (0..args.concurrency)
        .map(|_| actix_web::rt::spawn(verify(ctx.clone(), next.clone(), lost.clone())))
        .collect();
    for c in checkers {
        c.await.map_err(|e| format!("check: {e}"))?;
    }
    let verify_time = verify_started.elapsed();

    // --- the report ---------------------------------------------------------------------------
    let t = ctx.tally.borrow();
    let lost = lost.borrow();
    let total: u64 = t.statuses.values().sum();
    let load_requests: u64 = t
        .statuses
        .iter()
        .filter(|((s, _), _)| *s != Step::Verify)
        .map(|(_, n)| n)
        .sum();
    println!();
    println!(
        "load phase: {load_requests} requests in {:.1} s ({:.0}/s); check phase: {} requests in {:.1} s",
        load_time.as_secs_f64(),
        load_requests as f64 / load_time.as_secs_f64(),
        total - load_requests,
        verify_time.as_secs_f64()
    );
    let mut step = None;
    for ((s, status), n) in &t.statuses {
        if step != Some(*s) {
            print!(
                "{}  {:<28}",
                if step.is_some() { "\n" } else { "" },
                s.label()
            );
            step = Some(*s);
        }
        if *status == 0 {
            print!(" no-answer: {n}");
        } else {
            print!(" {status}: {n}");
        }
    }
    println!();
    let mut classes: BTreeMap<String, u64> = BTreeMap::new();
    for ((_, status), n) in &t.statuses {
        let class = match status {
            0 => "no answer".to_owned(),
            s => format!("{}xx", s / 100),
        };
        *classes.entry(class).or_default() += n;
    }
    println!(
        "status classes (all {total} requests): {}",
        classes
            .iter()
            .map(|(c, n)| format!("{c} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut ok = true;
    if let Some(f) = &fault_report {
        for line in &f.lines {
            println!("{line}");
        }
        let recovery: Vec<String> = bases
            .iter()
            .zip(&t.recovered)
            .map(|(b, r)| match (r, ctx.fault_over.get()) {
                (Some(r), Some(over)) => format!("{b} {:.3} s", (*r - over).as_secs_f64()),
                _ => format!("{b} never"),
            })
            .collect();
        println!(
            "recovery (fault over → first successful request on each process): {}",
            recovery.join(", ")
        );
        println!(
            "served during the fault (successful registrations, authorizations): {}",
            ctx.served_in_fault.get()
        );
        ok &= f.ok && t.recovered.iter().all(Option::is_some);
    }
    let registered = t.acked.len();
    println!(
        "registered: {registered} of {} clients acknowledged (201); lost: {} (every one read back through {})",
        args.clients,
        lost.len(),
        if bases.len() > 1 {
            "both processes"
        } else {
            "the restarted process"
        }
    );
    for l in lost.iter().take(20) {
        println!("  lost: {l}");
    }
    println!("unexpected answers: {}", t.unexpected.len());
    for u in t.unexpected.iter().take(20) {
        println!("  {u}");
    }
    ok &= lost.is_empty() && t.unexpected.is_empty() && registered == args.clients;
    if Instant::now() > ctx.deadline {
        println!("time limit of {} s reached", args.time_limit);
        ok = false;
    }
    println!("result: {}", if ok { "PASS" } else { "FAIL" });
    drop(t);
    drop(doormen);
    drop(doorman_slot);
    drop(storage);
    if args.keep || !ok {
        let kept = work.keep();
        println!("working directory kept: {}", kept.display());
    }
    Ok(ok)
}
