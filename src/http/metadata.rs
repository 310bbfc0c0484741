//! `GET /.well-known/oauth-authorization-server` (RFC 8414), served from bytes built once, and
//! `GET /jwks.json`, the keys that verify access tokens.

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

/// Verifiers cache the key set this long; `tokens.rotation_delay` must exceed it (with
/// `tokens.key_refresh`) so that a new key is known before it signs.
const CACHE_FIVE_MINUTES: HeaderValue = HeaderValue::from_static("public, max-age=300");

/// `GET /jwks.json` (RFC 7517 §5): the public keys that verify access tokens, the next key
/// included before it signs and the previous one until its last token has expired
/// (docs/behaviour.md §13).
pub async fn get_jwks(state: web::Data<AppState>) -> HttpResponse {
    let ctx = state.ctx();
    match ctx.signing.jwks(&ctx).await {
        Ok(set) => answer(
            actix_web::http::StatusCode::OK,
            [
                (header::CACHE_CONTROL, CACHE_FIVE_MINUTES),
                (header::CONTENT_TYPE, APPLICATION_JSON),
                (header::ACCESS_CONTROL_ALLOW_ORIGIN, CORS_ALLOW_ORIGIN),
                (header::ACCESS_CONTROL_EXPOSE_HEADERS, CORS_EXPOSE),
            ],
            serde_json::to_vec(&set).unwrap_or_default(),
        ),
        Err(problem) => crate::render::Json::error(&problem),
    }
}
