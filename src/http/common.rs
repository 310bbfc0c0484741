//! Pieces every handler shares: cache headers, Link hints, bounded bodies, storage failures.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, HttpResponseBuilder, web};
use futures_util::StreamExt;

use crate::metadata::Endpoints;
use crate::oauth::errors::{ErrorCode, OAuthError};
use crate::render::Problem;
use crate::store::StoreError;

/// Largest request body accepted anywhere (BEHAVIOUR §6: 64 KiB → 413).
pub const MAX_BODY: usize = 64 * 1024;
/// Seconds a client should wait after a 503.
pub const RETRY_AFTER_SECS: u64 = 5;

/// `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 §5.1).
pub fn no_store(res: &mut HttpResponseBuilder) {
    res.insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"));
}

/// `Link` to the registration endpoint (the relation other MCP servers use) and to the
/// metadata document.
pub fn link_header(ep: &Endpoints) -> String {
    let meta = format!("<{}>; rel=\"oauth-authorization-server\"", ep.metadata);
    match &ep.registration {
        Some(reg) => format!("<{reg}>; rel=\"http://oauth.net/core/2.1/#registration\", {meta}"),
        None => meta,
    }
}

/// A body that is too large or could not be read.
pub enum BodyError {
    TooLarge,
    Broken,
}

/// Reads the request body up to `MAX_BODY` bytes.
pub async fn read_body(mut payload: web::Payload) -> Result<web::Bytes, BodyError> {
    let mut buf = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| match e {
            actix_web::error::PayloadError::Overflow => BodyError::TooLarge,
            _ => BodyError::Broken,
        })?;
        if buf.len() + chunk.len() > MAX_BODY {
            return Err(BodyError::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// The problem to answer for a body error.
pub fn body_problem(e: BodyError, code: ErrorCode) -> Problem {
    match e {
        BodyError::TooLarge => Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            OAuthError::new(
                code,
                format!("The request body is larger than {} KiB.", MAX_BODY / 1024),
            ),
        ),
        BodyError::Broken => Problem::new(
            StatusCode::BAD_REQUEST,
            OAuthError::new(code, "The request body could not be read."),
        ),
    }
}

/// A storage failure as the caller sees it: 503 `temporarily_unavailable` with `Retry-After`
/// (never "client not registered", never a backtrace).
pub fn store_problem(e: &StoreError) -> Problem {
    log::error!("{e}");
    match e {
        StoreError::Corrupt { .. } => Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            OAuthError::new(
                ErrorCode::ServerError,
                "A stored record could not be read; the operator has been told in the log.",
            ),
        ),
        _ => Problem {
            retry_after: Some(RETRY_AFTER_SECS),
            ..Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                OAuthError::new(
                    ErrorCode::TemporarilyUnavailable,
                    "The authorization server's storage is not reachable right now; please retry in a few seconds.",
                ),
            )
        },
    }
}

/// The content type's essence (`application/json; charset=utf-8` → `application/json`).
pub fn media_type(req: &actix_web::HttpRequest) -> String {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// JSON response with `no-store`.
pub fn json_no_store(status: StatusCode, body: &serde_json::Value) -> HttpResponse {
    let mut res = HttpResponse::build(status);
    no_store(&mut res);
    res.json(body)
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
