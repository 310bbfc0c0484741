//! `GET /healthz` (process up) and `GET /readyz` (storage reachable).

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::AppState;

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
