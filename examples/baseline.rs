//! The benchmark's baseline: the smallest actix-web server, built with Doorman's own actix-web
//! version and features (it shares Cargo.lock), answering one GET route with a fixed small JSON
//! body. `scripts/bench` reports every Doorman figure as a ratio to this server's, measured in the
//! same run on the same machine.
//!
//! Usage: `baseline ADDR WORKERS`, e.g. `target/release/examples/baseline 127.0.0.1:8081 2`.

use actix_web::{App, HttpResponse, HttpServer, web};

const BODY: &str = r#"{"status":"ok"}"#;

async fn get_root() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(BODY)
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8081".to_owned());
    let workers = args
        .next()
        .and_then(|w| w.parse().ok())
        .filter(|w: &usize| *w > 0)
        .unwrap_or(2);
    HttpServer::new(|| App::new().route("/", web::get().to(get_root)))
        .workers(workers)
        .bind(addr)?
        .run()
        .await
}
