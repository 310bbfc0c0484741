//! Pieces every handler shares: cache headers, Link hints, bounded bodies, storage failures.

use actix_web::http::header::HeaderValue;
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

/// `Content-Type` of every JSON answer. Header values used on every request are constants,
/// so answering does not validate and copy the same text each time.
pub const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");
/// CORS for endpoints that browser-based MCP clients call (BEHAVIOUR §9).
pub const CORS_ALLOW_ORIGIN: HeaderValue = HeaderValue::from_static("*");
pub const CORS_EXPOSE: HeaderValue =
    HeaderValue::from_static("WWW-Authenticate, Link, Retry-After");
pub const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
pub const NO_CACHE: HeaderValue = HeaderValue::from_static("no-cache");

/// A response with `headers` and `body`, built without `HttpResponseBuilder`: for the answers
/// served most often, whose header values are all ready-made.
pub fn answer<const N: usize>(
    status: StatusCode,
    headers: [(header::HeaderName, HeaderValue); N],
    body: impl Into<web::Bytes>,
) -> HttpResponse {
    // `Bytes` is a body `BoxBody` holds without boxing it again.
    let body = actix_web::body::BoxBody::new(body.into());
    let mut res = HttpResponse::with_body(status, body);
    let map = res.headers_mut();
    map.reserve(N);
    for (name, value) in headers {
        map.insert(name, value);
    }
    res
}

/// `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 §5.1).
pub fn no_store(res: &mut HttpResponseBuilder) {
    res.insert_header((header::CACHE_CONTROL, NO_STORE))
        .insert_header((header::PRAGMA, NO_CACHE));
}

/// `Link` to the registration endpoint (the relation other MCP servers use) and to the
/// metadata document.
pub fn link_header(ep: &Endpoints) -> String {
    const REGISTRATION: &str = ">; rel=\"http://oauth.net/core/2.1/#registration\", <";
    const METADATA: &str = ">; rel=\"oauth-authorization-server\"";
    let reg = ep.registration.as_deref();
    let mut link = String::with_capacity(
        reg.map_or(0, |r| r.len() + REGISTRATION.len()) + ep.metadata.len() + METADATA.len() + 1,
    );
    link.push('<');
    if let Some(reg) = reg {
        link.push_str(reg);
        link.push_str(REGISTRATION);
    }
    link.push_str(&ep.metadata);
    link.push_str(METADATA);
    link
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_names_the_registration_endpoint_then_the_metadata() {
        let settings = crate::settings::Settings::defaults().expect("default settings");
        let mut ep = crate::metadata::Metadata::build(&settings).endpoints;
        ep.registration = Some("https://as.example/register".into());
        ep.metadata = "https://as.example/.well-known/oauth-authorization-server".into();

        assert_eq!(
            link_header(&ep),
            "<https://as.example/register>; rel=\"http://oauth.net/core/2.1/#registration\", \
             <https://as.example/.well-known/oauth-authorization-server>; rel=\"oauth-authorization-server\""
        );
        ep.registration = None;
        assert_eq!(
            link_header(&ep),
            "<https://as.example/.well-known/oauth-authorization-server>; rel=\"oauth-authorization-server\""
        );
    }
}
