//! The benchmark's MCP server behind the gate: the smallest streamable-HTTP answer to a
//! `tools/call` (JSON, the request's id echoed), so that `scripts/bench` measures what the gate
//! adds, not the upstream's own work. The same call is made directly to this server and through
//! the gate in the same run.
//!
//! Usage: `mcp_upstream ADDR WORKERS`, e.g. `target/release/examples/mcp_upstream 127.0.0.1:3001 2`.

use actix_web::{App, HttpResponse, HttpServer, web};

#[derive(serde::Deserialize)]
struct Request {
    #[serde(default)]
    id: serde_json::Value,
}

async fn post_mcp(body: web::Bytes) -> HttpResponse {
    let id = serde_json::from_slice::<Request>(&body)
        .map(|r| r.id)
        .unwrap_or(serde_json::Value::Null);
    let answer = serde_json::json!({
        "jsonrpc": "2.0",
        "id": id,
        "result": {"content": [{"type": "text", "text": "Echo: through the gate"}]},
    });
    HttpResponse::Ok()
        .content_type("application/json")
        .body(answer.to_string())
}

async fn get_root() -> HttpResponse {
    HttpResponse::Ok().finish()
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:3001".to_owned());
    let workers = args
        .next()
        .and_then(|w| w.parse().ok())
        .filter(|w: &usize| *w > 0)
        .unwrap_or(2);
    HttpServer::new(|| {
        App::new()
            .route("/mcp", web::post().to(post_mcp))
            .route("/", web::get().to(get_root))
    })
    .workers(workers)
    .bind(addr)?
    .run()
    .await
}
