//! Reading a request: bounded bodies, content types, bearer tokens, the raw cookie header.
//! Whatever cannot be read becomes a `Problem`, answered by the renderer like any other.

use actix_web::http::header;
use actix_web::{HttpRequest, web};
use futures_util::StreamExt;

use crate::flows::Problem;
use crate::oauth::errors::ErrorCode;

/// Largest request body accepted anywhere (docs/behaviour.md §6: 64 KiB → 413).
pub const MAX_BODY: usize = 64 * 1024;

/// Reads the request body up to `MAX_BODY` bytes; an error carries `code`.
pub async fn body(mut payload: web::Payload, code: ErrorCode) -> Result<web::Bytes, Problem> {
    let mut buf = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| match e {
            actix_web::error::PayloadError::Overflow => Problem::too_large(code, MAX_BODY),
            _ => Problem::unreadable(code),
        })?;
        if buf.len() + chunk.len() > MAX_BODY {
            return Err(Problem::too_large(code, MAX_BODY));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// The content type's essence (`application/json; charset=utf-8` → `application/json`).
pub fn media_type(req: &HttpRequest) -> String {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// The `Authorization` header, as text.
pub fn authorization(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

/// The token of `Authorization: Bearer …` (RFC 6750 §2.1).
pub fn bearer(req: &HttpRequest) -> Option<&str> {
    let (scheme, token) = authorization(req)?.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The raw `Cookie` header; flows pick out the cookie they need, only when they need it.
pub fn cookies(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
}
