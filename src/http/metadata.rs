//! `GET /.well-known/oauth-authorization-server` (RFC 8414), served from bytes built once.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, web};

use crate::render::{APPLICATION_JSON, CORS_ALLOW_ORIGIN, CORS_EXPOSE, answer};
use crate::state::AppState;

const CACHE_AN_HOUR: HeaderValue = HeaderValue::from_static("public, max-age=3600");

/// The document with its CORS headers (browser-based MCP clients read it, docs/behaviour.md §9), set
/// here rather than by a CORS middleware: this is the most requested URL of all.
pub async fn get_metadata(state: web::Data<AppState>) -> HttpResponse {
    answer(
        actix_web::http::StatusCode::OK,
        [
            (header::CACHE_CONTROL, CACHE_AN_HOUR),
            (header::CONTENT_TYPE, APPLICATION_JSON),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, CORS_ALLOW_ORIGIN),
            (header::ACCESS_CONTROL_EXPOSE_HEADERS, CORS_EXPOSE),
        ],
        state.meta.json.clone(),
    )
}
