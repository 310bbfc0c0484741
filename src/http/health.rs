//! `GET /healthz` (process up), `GET /readyz` (storage reachable), `GET /metrics`.

use actix_web::{HttpResponse, web};

use crate::store::Backend;
use serde_json::json;

use crate::state::AppState;

pub async fn get_healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

pub async fn get_readyz(state: web::Data<AppState>) -> HttpResponse {
    match state.store.ping().await {
        Ok(()) => HttpResponse::Ok().json(json!({"status": "ready", "storage": state.store.backend_name()})),
        Err(e) => HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "5"))
            .json(json!({"status": "unavailable", "storage": state.store.backend_name(), "error": e.to_string()})),
    }
}

/// `GET /metrics`, for a scraper that presents `metrics.token` as a bearer token (compared in
/// constant time); not served at all while the setting is empty.
pub async fn get_metrics(req: actix_web::HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let token = &state.settings.metrics.token;
    if token.is_empty() {
        return HttpResponse::NotFound().finish();
    }
    if !super::request::bearer(&req).is_some_and(|b| crate::secret::equal(b, token)) {
        return HttpResponse::Unauthorized()
            .insert_header(("WWW-Authenticate", "Bearer realm=\"metrics\""))
            .finish();
    }
    let body = state
        .metrics
        .render(state.store.latency(), state.store.backend_name());
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(body)
}
