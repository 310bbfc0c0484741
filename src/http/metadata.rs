//! `GET /.well-known/oauth-authorization-server` (RFC 8414), served from bytes built once.

use actix_web::http::header;
use actix_web::{HttpResponse, web};

use crate::AppState;

pub async fn get_metadata(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .content_type("application/json")
        .body(state.meta.json.clone())
}
