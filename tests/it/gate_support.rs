//! What the gate tests stand on: a small real MCP-ish upstream on 127.0.0.1:0 (actix) that
//! answers JSON, streams SSE event by event (the next event only when the test releases it),
//! breaks off mid-stream, answers slowly, and counts its open connections; and Doorman with
//! `[[gate.routes]]` in front of it.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::flow::{self, Client};
use crate::support::{TestApp, settings_with_file};

/// Shared by the upstream's handlers and the test.
pub struct Shared {
    /// Connections open right now.
    pub open: AtomicUsize,
    /// Requests seen.
    pub requests: AtomicUsize,
    /// Released by the test: one permit per further SSE event of a `step` stream.
    pub step: tokio::sync::Semaphore,
}

impl Default for Shared {
    fn default() -> Self {
        Self {
            open: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
            step: tokio::sync::Semaphore::new(0),
        }
    }
}

/// Decrements `open` when actix drops the connection's extensions (the connection closed).
struct Open(Arc<Shared>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

pub struct Upstream {
    pub url: String,
    pub shared: Arc<Shared>,
    handle: ServerHandle,
}

impl Upstream {
    pub async fn start() -> Self {
        let shared = Arc::new(Shared::default());
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/mcp", listener.local_addr().expect("addr"));
        let data = shared.clone();
        let counted = shared.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(data.clone()))
                .route("/mcp", web::route().to(mcp))
        })
        .on_connect(move |_, ext| {
            counted.open.fetch_add(1, Ordering::SeqCst);
            ext.insert(Open(counted.clone()));
        })
        .workers(1)
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Self {
            url,
            shared,
            handle,
        }
    }

    /// Waits until the upstream has `n` open connections (at most 5 s); returns the count.
    pub async fn wait_open(&self, n: usize) -> usize {
        for _ in 0..100 {
            let now = self.shared.open.load(Ordering::SeqCst);
            if now == n {
                return now;
            }
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
        self.shared.open.load(Ordering::SeqCst)
    }

    /// Stops it, forcibly (in-flight answers break off).
    pub async fn kill(&self) {
        self.handle.stop(false).await;
    }
}

fn sse(event: &str) -> web::Bytes {
    web::Bytes::from(format!("event: message\ndata: {event}\n\n"))
}

/// `/mcp`: the request's headers and body echoed in a JSON-RPC result; `x-test` picks another
/// behaviour: `step` (SSE, the next event when the test releases it), `tick` (SSE forever),
/// `die` (one SSE event, then the stream breaks), `slow` (answers after 5 s).
async fn mcp(req: HttpRequest, body: web::Bytes, shared: web::Data<Arc<Shared>>) -> HttpResponse {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let headers: serde_json::Map<String, Value> = req
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), json!(v.to_str().unwrap_or("?"))))
        .collect();
    let mode = req
        .headers()
        .get("x-test")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let session = req
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let id = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("id").cloned())
        .unwrap_or(Value::Null);
    let echo = json!({"jsonrpc": "2.0", "id": id, "result": {
        "method": req.method().as_str(),
        "query": req.query_string(),
        "headers": headers,
        "body_len": body.len(),
    }});
    let sse_response = || {
        let mut b = HttpResponse::Ok();
        b.content_type("text/event-stream")
            .insert_header(("cache-control", "no-cache"));
        if let Some(s) = &session {
            b.insert_header(("mcp-session-id", s.as_str()));
        }
        b
    };
    match mode.as_str() {
        "step" => {
            let shared = shared.get_ref().clone();
            let stream = futures_util::stream::unfold(0u32, move |n| {
                let shared = shared.clone();
                async move {
                    if n >= 3 {
                        return None;
                    }
                    if n > 0 {
                        shared.step.acquire().await.ok()?.forget();
                    }
                    Some((
                        Ok::<_, std::io::Error>(sse(&json!({"jsonrpc":"2.0","method":"notifications/progress","params":{"progress": n}}).to_string())),
                        n + 1,
                    ))
                }
            });
            sse_response().streaming(stream)
        }
        "tick" => {
            let stream = futures_util::stream::unfold(0u64, |n| async move {
                actix_web::rt::time::sleep(Duration::from_millis(20)).await;
                Some((
                    Ok::<_, std::io::Error>(sse(&format!("{{\"tick\":{n}}}"))),
                    n + 1,
                ))
            });
            sse_response().streaming(stream)
        }
        "die" => {
            let stream = futures_util::stream::iter(0..2).then(|n| async move {
                if n == 0 {
                    Ok(sse("{\"first\":true}"))
                } else {
                    actix_web::rt::time::sleep(Duration::from_millis(100)).await;
                    Err(std::io::Error::other("upstream killed"))
                }
            });
            sse_response().streaming(stream)
        }
        "slow" => {
            actix_web::rt::time::sleep(Duration::from_secs(5)).await;
            HttpResponse::Ok().json(echo)
        }
        _ if req.method() == actix_web::http::Method::DELETE => {
            let mut b = HttpResponse::NoContent();
            if let Some(s) = &session {
                b.insert_header(("x-deleted-session", s.as_str()));
            }
            b.finish()
        }
        _ if req.method() == actix_web::http::Method::GET => {
            let one = futures_util::stream::once(async move {
                Ok::<_, std::io::Error>(sse(&echo.to_string()))
            });
            sse_response().streaming(one)
        }
        _ => {
            let mut b = HttpResponse::Ok();
            b.insert_header(("set-cookie", "doorman_session=stolen; Path=/"));
            if let Some(s) = &session {
                b.insert_header(("mcp-session-id", s.as_str()));
            }
            b.json(echo)
        }
    }
}

/// Doorman in dev sign-in with one gate route at `/mcp` in front of `upstream`, the scope
/// `admin` supported, the tool `rm` needing it, and `extra` TOML lines in the route.
pub async fn gate_app(upstream: &str, extra: &str, overrides: &[(&str, &str)]) -> TestApp {
    let toml = format!(
        "[[gate.routes]]\npath = \"/mcp\"\nupstream = \"{upstream}\"\nname = \"Test tools\"\nscopes = [\"mcp\"]\n{extra}\n[gate.routes.tools]\nrm = [\"admin\"]\n"
    );
    let mut all = vec![
        ("login.mode", "dev"),
        ("scopes.supported", "mcp,offline_access,admin"),
        ("gate.first_byte_timeout_ms", "400"),
        ("gate.connect_timeout_ms", "1000"),
    ];
    all.extend_from_slice(overrides);
    TestApp::with_settings(settings_with_file(&toml, &all)).await
}

/// A public client's access token for `resource` with `scope`, by dev sign-in and consent.
pub async fn token_for(app: &TestApp, resource: &str, scope: &str) -> (Client, Value) {
    let client = flow::public_client(app).await;
    let query = format!(
        "&scope={}&resource={}",
        flow::enc(scope),
        flow::enc(resource)
    );
    let tokens = flow::tokens(app, &client, &query).await;
    (client, tokens)
}
