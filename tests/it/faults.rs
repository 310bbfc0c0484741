//! Faults (issue 6 part 2, docs/behaviour.md §2 and §10): Redis killed and restarted under
//! registration load, `kill -9` of a real `doorman` process on the embedded backend, and
//! SIGTERM with requests in flight. Small sizes here; `scripts/load` runs the first two at
//! full size.
#![allow(clippy::expect_used, clippy::unwrap_used)] // in tests, a failed expectation is a failed test

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{DoormanProcess, RedisServer, TestApp, http_status};

/// Registered for every load client; any loopback port matches it at /authorize.
const REDIRECT: &str = "http://127.0.0.1/callback";
/// Concurrent clients of the load.
pub const WORKERS: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Register,
    Authorize,
}

/// What one request got back.
#[derive(Debug)]
pub struct Answer {
    pub kind: Kind,
    pub status: u16,
    pub retry_after: String,
    pub error: Option<String>,
    pub reason: Option<String>,
    pub at: Instant,
}

/// A registration the server acknowledged with 201.
pub struct Acked {
    pub client_id: String,
    pub bearer: String,
}

#[derive(Default)]
pub struct Tally {
    pub answers: Vec<Answer>,
    pub acked: Vec<Acked>,
    /// Requests that got no HTTP answer at all (the process was killed under them).
    pub unanswered: usize,
}

impl Tally {
    pub fn count(&self, kind: Kind, status: u16) -> usize {
        self.answers
            .iter()
            .filter(|a| a.kind == kind && a.status == status)
            .count()
    }

    /// The first 201 received after `t`.
    pub fn first_ack_after(&self, t: Instant) -> Option<Instant> {
        self.answers
            .iter()
            .filter(|a| a.kind == Kind::Register && a.status == 201 && a.at > t)
            .map(|a| a.at)
            .min()
    }

    /// Answers the contract forbids under a storage fault: anything but 201 (register),
    /// 302 (authorize of a known client) or 503; and 503s that are not
    /// `temporarily_unavailable` with `Retry-After`, or that carry the unregistered `reason`.
    pub fn violations(&self) -> (Vec<&Answer>, Vec<&Answer>) {
        let unexpected = self
            .answers
            .iter()
            .filter(|a| {
                !matches!(
                    (a.kind, a.status),
                    (Kind::Register, 201) | (Kind::Authorize, 302) | (_, 503)
                )
            })
            .collect();
        let bad_503 = self
            .answers
            .iter()
            .filter(|a| a.status == 503)
            .filter(|a| {
                a.error.as_deref() != Some("temporarily_unavailable")
                    || a.reason.is_some()
                    || !a.retry_after.parse::<u64>().is_ok_and(|s| s > 0)
            })
            .collect();
        (unexpected, bad_503)
    }

    pub fn acks_after(&self, t: Instant) -> usize {
        self.answers
            .iter()
            .filter(|a| a.kind == Kind::Register && a.status == 201 && a.at > t)
            .count()
    }
}

fn http_client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .disable_redirects()
        .finish()
}

/// Reads an answer completely; the record of it and its JSON body (Null when not JSON).
async fn answer<S>(kind: Kind, res: &mut awc::ClientResponse<S>) -> Option<(Answer, Value)>
where
    S: futures_util::Stream<Item = Result<actix_web::web::Bytes, awc::error::PayloadError>> + Unpin,
{
    let body = res.body().limit(1 << 20).await.ok()?;
    let doc: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let header = |name: &str| {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let answer = Answer {
        kind,
        status: res.status().as_u16(),
        retry_after: header("retry-after"),
        error: doc["error"].as_str().map(str::to_owned),
        reason: doc["reason"].as_str().map(str::to_owned),
        at: Instant::now(),
    };
    Some((answer, doc))
}

/// Registers public clients at `base` one after another, and after each registration
/// authorizes the last client it saw acknowledged, until `stop`; records every answer.
async fn worker(base: String, tally: Rc<RefCell<Tally>>, stop: Rc<Cell<bool>>) {
    let http = http_client();
    let mut last: Option<String> = None;
    while !stop.get() {
        let sent = http
            .post(format!("{base}/register"))
            .send_json(&json!({
                "client_name": "Fault load",
                "redirect_uris": [REDIRECT],
                "token_endpoint_auth_method": "none",
            }))
            .await;
        let got = match sent {
            Ok(mut res) => answer(Kind::Register, &mut res).await,
            Err(_) => None,
        };
        match got {
            Some((a, doc)) => {
                let mut t = tally.borrow_mut();
                if a.status == 201 {
                    let client_id = doc["client_id"].as_str().unwrap_or_default().to_owned();
                    let token = doc["registration_access_token"]
                        .as_str()
                        .unwrap_or_default();
                    t.acked.push(Acked {
                        client_id: client_id.clone(),
                        bearer: format!("Bearer {token}"),
                    });
                    last = Some(client_id);
                }
                t.answers.push(a);
            }
            None => {
                tally.borrow_mut().unanswered += 1;
                // The process is gone; do not spin.
                actix_web::rt::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        }
        if let Some(client_id) = &last {
            // Step 4 error for a known client (302 to its redirect URI); 400 would be the
            // unregistered answer.
            let sent = http
                .get(format!(
                    "{base}/authorize?client_id={client_id}&redirect_uri=http://127.0.0.1:9999/callback&response_type=token"
                ))
                .send()
                .await;
            match sent {
                Ok(mut res) => match answer(Kind::Authorize, &mut res).await {
                    Some((a, _)) => tally.borrow_mut().answers.push(a),
                    None => tally.borrow_mut().unanswered += 1,
                },
                Err(_) => tally.borrow_mut().unanswered += 1,
            }
        }
    }
}

/// `WORKERS` load workers against one server.
pub struct Load {
    pub tally: Rc<RefCell<Tally>>,
    stop: Rc<Cell<bool>>,
    workers: Vec<actix_web::rt::task::JoinHandle<()>>,
}

impl Load {
    pub fn start(base: &str) -> Self {
        let tally = Rc::new(RefCell::new(Tally::default()));
        let stop = Rc::new(Cell::new(false));
        let workers = (0..WORKERS)
            .map(|_| actix_web::rt::spawn(worker(base.to_owned(), tally.clone(), stop.clone())))
            .collect();
        Self {
            tally,
            stop,
            workers,
        }
    }

    /// Stops the workers after their current request; everything they recorded.
    pub async fn finish(self) -> Tally {
        self.stop.set(true);
        for w in self.workers {
            w.await.expect("load worker");
        }
        self.tally.take()
    }
}

/// Polls `done` every 10 ms, failing the test after `within`.
pub async fn wait_for(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < within, "timed out waiting for {what}");
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Every acknowledged client is found by `base`: its RFC 7592 read answers 200.
pub async fn assert_all_found(base: &str, acked: &[Acked]) {
    let http = http_client();
    let mut missing = Vec::new();
    for a in acked {
        let res = http
            .get(format!("{base}/register/{}", a.client_id))
            .insert_header(("authorization", a.bearer.as_str()))
            .send()
            .await
            .expect("GET /register/{id}");
        if res.status() != 200 {
            missing.push((a.client_id.clone(), res.status().as_u16()));
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged registrations lost: {missing:?}",
        missing.len(),
        acked.len()
    );
}

#[actix_web::test]
async fn redis_killed_under_registration_load_is_503_then_recovers_and_loses_nothing() {
    let mut redis = RedisServer::start_durable();
    let url = redis.url();
    let app = TestApp::with(&[
        ("storage.backend", "redis"),
        ("storage.redis_url", &url),
        ("storage.timeout_ms", "1000"),
    ])
    .await;
    let load = Load::start(&app.base);
    let long = Duration::from_secs(20);

    wait_for("registrations before the outage", long, || {
        load.tally.borrow().acked.len() >= 40
    })
    .await;
    redis.kill();
    let killed = Instant::now();
    wait_for("503 answers during the outage", long, || {
        load.tally.borrow().count(Kind::Register, 503) >= 2 * WORKERS
    })
    .await;
    redis.restart();
    let restarted = Instant::now();
    wait_for("registrations after the restart", long, || {
        load.tally.borrow().acks_after(restarted) >= 40
    })
    .await;
    let t = load.finish().await;
    let recovery = t.first_ack_after(restarted).expect("an ack") - restarted;
    let (unexpected, bad_503) = t.violations();
    eprintln!(
        "redis fault: {} answers ({} registered, {} × 503), outage {:?}, recovery {recovery:?}",
        t.answers.len(),
        t.acked.len(),
        t.answers.iter().filter(|a| a.status == 503).count(),
        restarted - killed,
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
        recovery < Duration::from_secs(5),
        "recovered {recovery:?} after Redis returned"
    );
    assert_all_found(&app.base, &t.acked).await;
    app.stop().await;
}

#[actix_web::test]
async fn kill_9_under_embedded_registration_load_loses_no_acknowledged_client() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("doorman.redb").display().to_string();
    let mut doorman =
        DoormanProcess::start(&[("storage.backend", "embedded"), ("storage.path", &path)]);
    let load = Load::start(&doorman.base);

    wait_for(
        "registrations before the kill",
        Duration::from_secs(30),
        || load.tally.borrow().acked.len() >= 150,
    )
    .await;
    doorman.kill_9();
    let t = load.finish().await;
    doorman.restart();
    let ready = http_status(doorman.addr, "/readyz");
    let failed: Vec<&Answer> = t
        .answers
        .iter()
        .filter(|a| !matches!(a.status, 201 | 302))
        .collect();
    let mut after = http_client()
        .post(doorman.url("/register"))
        .send_json(&json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}))
        .await
        .expect("POST /register");
    eprintln!(
        "kill -9: {} acknowledged, {} in flight when killed",
        t.acked.len(),
        t.unanswered
    );

    assert!(
        failed.is_empty(),
        "every answer before the kill was a success: {failed:?}"
    );
    assert_eq!(ready, Some(200), "the store opens cleanly after kill -9");
    assert_all_found(&doorman.base, &t.acked).await;
    assert_eq!(
        after.status(),
        201,
        "and takes writes: {:?}",
        after.body().await
    );
}

/// Reads one HTTP/1.1 response with a Content-Length body: status and body.
fn read_response(stream: &mut TcpStream) -> (u16, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).expect("read the response");
        assert!(
            n > 0,
            "connection closed before a complete response head: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status: u16 = head[9..12].parse().expect("status code");
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .expect("content-length")
        .trim()
        .parse()
        .expect("content-length value");
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).expect("read the body");
        assert!(
            n > 0,
            "connection closed after {} of {length} body bytes",
            buf.len() - head_end
        );
        buf.extend_from_slice(&chunk[..n]);
    }
    (status, buf[head_end..head_end + length].to_vec())
}

#[test]
fn sigterm_lets_in_flight_requests_finish_then_exits_zero() {
    let mut doorman = DoormanProcess::start(&[("storage.backend", "memory")]);
    let body = json!({"client_name": "Slow upload", "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}).to_string();
    let (first, rest) = body.as_bytes().split_at(body.len() / 2);
    // Each connection completes one request first, so the server has certainly accepted it,
    // then sends a registration's head and half its body: a request in flight.
    let mut in_flight: Vec<TcpStream> = (0..8)
        .map(|_| {
            let mut s = TcpStream::connect(doorman.addr).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(20)))
                .expect("timeout");
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: doorman\r\n\r\n")
                .expect("write");
            assert_eq!(read_response(&mut s).0, 200);
            let head = format!(
                "POST /register HTTP/1.1\r\nHost: doorman\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            s.write_all(head.as_bytes()).expect("write head");
            s.write_all(first).expect("write half the body");
            s
        })
        .collect();

    doorman.terminate();
    let started = Instant::now();
    while !doorman.log_text().contains("accept thread stopped") {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no graceful shutdown began: {}",
            doorman.log_text()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let refused = TcpStream::connect(doorman.addr).is_err();
    for s in &mut in_flight {
        s.write_all(rest).expect("write the rest of the body");
    }
    let answers: Vec<(u16, Value)> = in_flight
        .iter_mut()
        .map(|s| {
            let (status, body) = read_response(s);
            (
                status,
                serde_json::from_slice(&body).expect("a complete JSON body"),
            )
        })
        .collect();
    let exit = doorman.wait_exit(Duration::from_secs(15));

    assert!(refused, "no new connections once shutdown began");
    for (status, doc) in &answers {
        assert_eq!(*status, 201, "{doc}");
        assert!(doc["client_id"].is_string(), "{doc}");
    }
    let exit = exit.expect("doorman exits after its in-flight requests");
    assert!(exit.success(), "exit status {exit}: {}", doorman.log_text());
}
