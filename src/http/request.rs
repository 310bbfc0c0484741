//! Reading a request: bounded bodies, content types, bearer tokens, the raw cookie header.
//! Whatever cannot be read becomes a `Problem`, answered by the renderer like any other.

use actix_web::http::header;
use actix_web::{HttpRequest, web};
use futures_util::StreamExt;

use crate::flows::{Browser, Problem};
use crate::oauth::errors::ErrorCode;
use crate::state::AppState;

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

fn text(req: &HttpRequest, name: header::HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// What the flows need to know of a browser's request: its raw `Cookie` header (flows pick out
/// the cookie they need, only when they need it) and where a form came from. The address is
/// left out; `with_address` adds it where a limit counts it.
pub fn browser<'r>(req: &'r HttpRequest, state: &AppState) -> Browser<'r> {
    Browser {
        address: None,
        cookies: text(req, header::COOKIE),
        origin: text(req, header::ORIGIN),
        fetch_site: text(req, header::HeaderName::from_static("sec-fetch-site")),
        cookie_prefix: state.meta.endpoints.cookie_prefix,
    }
}

/// `browser`, with the client's address as rate limits count it.
pub fn with_address<'r>(req: &'r HttpRequest, state: &AppState) -> Browser<'r> {
    let address = req.peer_addr().map(|peer| {
        let forwarded: Vec<&str> = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .collect();
        super::ratelimit::client_address(
            &state.settings.rate_limit.trusted_proxies,
            peer.ip(),
            &forwarded,
        )
    });
    Browser {
        address,
        ..browser(req, state)
    }
}
