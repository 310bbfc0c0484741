//! A client metadata document server for the CIMD tests: plain HTTP or TLS (the test
//! certificate of `tests/fixtures/tls/`) on loopback, answers the test sets and changes while
//! it runs, every connection and request counted, and answers that are held back until the
//! test releases them, or never sent.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The test CA that signed the server certificate (for `cimd.ca_file`).
pub const TEST_CA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls/ca.pem");
const CERT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls/server.pem");
const KEY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls/server.key");

/// What a path answers.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Send `Content-Length` (otherwise the body ends when the connection closes).
    pub length: bool,
    /// Wait for `DocServer::release` before answering.
    pub held: bool,
    /// Never answer.
    pub stall: bool,
}

impl Answer {
    /// `200` with a JSON body.
    pub fn json(body: impl Into<Vec<u8>>) -> Self {
        Self {
            status: 200,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.into(),
            length: true,
            held: false,
            stall: false,
        }
    }

    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: vec![("Content-Type".into(), "text/plain".into())],
            body: b"no document here\n".to_vec(),
            ..Self::json("")
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn without_length(mut self) -> Self {
        self.length = false;
        self
    }

    pub fn held(mut self) -> Self {
        self.held = true;
        self
    }

    pub fn stalled(mut self) -> Self {
        self.stall = true;
        self
    }
}

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub accept: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Default)]
struct State {
    answers: HashMap<String, Answer>,
    connections: usize,
    requests: Vec<Seen>,
}

pub struct DocServer {
    /// The port, the same on every address it listens on.
    pub port: u16,
    /// The addresses it listens on: 127.0.0.1, and where possible 127.0.0.2 and [::1].
    pub listening: Vec<SocketAddr>,
    scheme: &'static str,
    state: Arc<Mutex<State>>,
    released: watch::Sender<bool>,
    requests: watch::Sender<usize>,
}

impl DocServer {
    /// A plain HTTP server.
    pub async fn http() -> Self {
        Self::start(None).await
    }

    /// An https server with the test certificate (for localhost, 127.0.0.1 and ::1).
    pub async fn https() -> Self {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(CERT)
            .expect("test certificate")
            .collect::<Result<_, _>>()
            .expect("test certificate");
        let key = PrivateKeyDer::from_pem_file(KEY).expect("test key");
        let config = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("TLS config");
        Self::start(Some(TlsAcceptor::from(Arc::new(config)))).await
    }

    async fn start(tls: Option<TlsAcceptor>) -> Self {
        let first = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = first.local_addr().expect("addr").port();
        let mut listeners = vec![first];
        // The same port on the other loopback addresses, to see that nothing connects there.
        for other in ["127.0.0.2", "[::1]"] {
            if let Ok(l) = TcpListener::bind(format!("{other}:{port}")).await {
                listeners.push(l);
            }
        }
        let listening = listeners
            .iter()
            .map(|l| l.local_addr().expect("addr"))
            .collect();
        let state = Arc::new(Mutex::new(State::default()));
        let (released, _) = watch::channel(false);
        let (requests, _) = watch::channel(0usize);
        let server = Self {
            port,
            listening,
            scheme: if tls.is_some() { "https" } else { "http" },
            state,
            released,
            requests,
        };
        for listener in listeners {
            let state = server.state.clone();
            let released = server.released.subscribe();
            let requests = server.requests.clone();
            let tls = tls.clone();
            actix_web::rt::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    state.lock().unwrap().connections += 1;
                    let state = state.clone();
                    let released = released.clone();
                    let requests = requests.clone();
                    let tls = tls.clone();
                    actix_web::rt::spawn(async move {
                        match tls {
                            Some(acceptor) => {
                                if let Ok(s) = acceptor.accept(stream).await {
                                    serve(s, &state, released, &requests).await;
                                }
                            }
                            None => serve(stream, &state, released, &requests).await,
                        }
                    });
                }
            });
        }
        server
    }

    /// The URL of `path` on 127.0.0.1.
    pub fn url(&self, path: &str) -> String {
        format!("{}://127.0.0.1:{}{path}", self.scheme, self.port)
    }

    /// The URL of `path` on another host name for the same port (`localhost`, `[::1]`, …).
    pub fn url_on(&self, host: &str, path: &str) -> String {
        format!("{}://{host}:{}{path}", self.scheme, self.port)
    }

    pub fn set(&self, path: &str, answer: Answer) {
        self.state
            .lock()
            .unwrap()
            .answers
            .insert(path.to_owned(), answer);
    }

    /// Serves `doc` (a JSON value) at `path`.
    pub fn set_json(&self, path: &str, doc: &serde_json::Value) {
        self.set(path, Answer::json(doc.to_string()));
    }

    /// Connections accepted so far, on every address.
    pub fn connections(&self) -> usize {
        self.state.lock().unwrap().connections
    }

    /// Requests read so far.
    pub fn requests(&self) -> Vec<Seen> {
        self.state.lock().unwrap().requests.clone()
    }

    /// How often `path` was asked for.
    pub fn fetches(&self, path: &str) -> usize {
        self.requests().iter().filter(|r| r.path == path).count()
    }

    /// Resolves once `n` requests have arrived.
    pub async fn wait_for_requests(&self, n: usize) {
        let mut rx = self.requests.subscribe();
        rx.wait_for(|seen| *seen >= n).await.expect("server alive");
    }

    /// Lets held answers go.
    pub fn release(&self) {
        self.released.send_replace(true);
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    state: &Mutex<State>,
    mut released: watch::Receiver<bool>,
    requests: &watch::Sender<usize>,
) {
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
        if head.len() > 16 * 1024 {
            return;
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let path = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or("")
        .to_owned();
    let header = |name: &str| {
        text.split("\r\n").skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    let answer = {
        let mut s = state.lock().unwrap();
        s.requests.push(Seen {
            path: path.clone(),
            accept: header("accept"),
            user_agent: header("user-agent"),
        });
        s.answers.get(&path).cloned()
    };
    requests.send_modify(|n| *n += 1);
    let answer = answer.unwrap_or_else(|| Answer::status(404));
    if answer.stall {
        std::future::pending::<()>().await;
    }
    if answer.held {
        let _ = released.wait_for(|r| *r).await;
    }
    let mut out = format!("HTTP/1.1 {} Test\r\nConnection: close\r\n", answer.status);
    for (n, v) in &answer.headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    if answer.length {
        out.push_str(&format!("Content-Length: {}\r\n", answer.body.len()));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&answer.body);
    let _ = stream.write_all(&bytes).await;
    let _ = stream.flush().await;
    let _ = stream.shutdown().await;
}
