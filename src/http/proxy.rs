//! The gate's streaming reverse proxy (docs/behaviour.md §13.2): a request that passed the
//! gate goes to its upstream without the client's credentials and with the caller's identity;
//! the answer (JSON, or an SSE stream) comes back chunk by chunk as the upstream sends it. A
//! client that goes away drops the upstream request with it.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::http::StatusCode;
use actix_web::http::header::{self as ax, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use reqwest::header as rq;

pub use super::forwarding::Body;
use super::forwarding::{dropped, upstream_body, upstream_headers};
use crate::flows::gate::{Caller, Gate, Route};
use crate::render::CORS_ALLOW_ORIGIN;
use crate::render::gate::{GATE_EXPOSE, rpc_error};

/// Passes a request that passed the gate on to `route`'s upstream and streams its answer back.
/// An upstream that cannot be reached is a `502`, one that does not start answering within
/// `gate.first_byte_timeout_ms` a `504`, both JSON-RPC-shaped (with the request's `id` when
/// known); never a hang.
pub async fn forward(
    gate: &Gate,
    route: &Route,
    req: &HttpRequest,
    body: Body,
    caller: &Caller,
    id: Option<&serde_json::Value>,
) -> HttpResponse {
    let Ok(permit) =
        tokio::time::timeout(gate.connect_timeout, gate.permits.clone().acquire_owned()).await
    else {
        return rpc_error(
            StatusCode::SERVICE_UNAVAILABLE,
            id,
            "The gate is passing on as many requests as it may; retry shortly.",
            Some(1),
        );
    };
    let Ok(permit) = permit else {
        return rpc_error(
            StatusCode::SERVICE_UNAVAILABLE,
            id,
            "The gate is closing.",
            None,
        );
    };
    let mut url = route.upstream.clone();
    let query = req.query_string();
    if !query.is_empty() {
        let joined = match url.query() {
            Some(q) if !q.is_empty() => format!("{q}&{query}"),
            _ => query.to_owned(),
        };
        url.set_query(Some(&joined));
    }
    let Ok(method) = reqwest::Method::from_bytes(req.method().as_str().as_bytes()) else {
        return rpc_error(
            StatusCode::METHOD_NOT_ALLOWED,
            id,
            "Method not allowed.",
            None,
        );
    };
    let overflow = Arc::new(AtomicBool::new(false));
    let mut request = gate
        .http()
        .request(method, url)
        .headers(upstream_headers(gate, route, req, caller));
    if let Some(b) = upstream_body(body, gate.body_limit, overflow.clone()) {
        request = request.body(b);
    }
    let sent = tokio::time::timeout(gate.first_byte_timeout, request.send()).await;
    let res = match sent {
        Err(_) => {
            log::warn!("gate {:?}: the upstream did not answer in time", route.path);
            return rpc_error(
                StatusCode::GATEWAY_TIMEOUT,
                id,
                &format!(
                    "The MCP server behind this gate did not answer within {} ms.",
                    gate.first_byte_timeout.as_millis()
                ),
                None,
            );
        }
        Ok(Err(_)) if overflow.load(Ordering::Relaxed) => {
            return rpc_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                id,
                &format!("The request body is larger than {} bytes.", gate.body_limit),
                None,
            );
        }
        Ok(Err(e)) => {
            log::warn!("gate {:?}: the upstream failed: {e}", route.path);
            return rpc_error(
                StatusCode::BAD_GATEWAY,
                id,
                "The MCP server behind this gate could not be reached.",
                None,
            );
        }
        Ok(Ok(res)) => res,
    };
    let status = StatusCode::from_u16(res.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut out = HttpResponse::build(status);
    let listed: Vec<String> = res
        .headers()
        .get_all(rq::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .collect();
    for (name, value) in res.headers() {
        let n = name.as_str();
        // An upstream shares Doorman's origin: it may not set cookies there.
        if dropped(n) || n == "set-cookie" || listed.iter().any(|l| l == n) {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            ax::HeaderName::from_bytes(n.as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            out.append_header((name, value));
        }
    }
    out.insert_header((ax::ACCESS_CONTROL_ALLOW_ORIGIN, CORS_ALLOW_ORIGIN))
        .insert_header((ax::ACCESS_CONTROL_EXPOSE_HEADERS, GATE_EXPOSE));
    if matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED) {
        return out.finish();
    }
    let path = route.path.clone();
    let length = res.content_length();
    let sse = res
        .headers()
        .get(rq::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"));
    // The permit lives as long as the stream: until the answer ends or the client leaves.
    let stream = res.bytes_stream().map(move |chunk| {
        let _held = &permit;
        chunk.map_err(|e| {
            log::warn!("gate {path:?}: the upstream's answer broke off: {e}");
            io::Error::other(e)
        })
    });
    match length {
        // Streamed all the same, with the upstream's length instead of chunked encoding.
        Some(n) => out.body(actix_web::body::SizedStream::new(n, stream)),
        None if sse => out.streaming(keepalive(Box::pin(stream), gate.sse_keepalive)),
        None => out.streaming(stream),
    }
}

/// An SSE comment (ignored by clients, WHATWG HTML §9.2.6).
const KEEPALIVE: &[u8] = b": keepalive\n\n";

/// Whether `chunk` ends an SSE event (a blank line), so a comment may follow it.
fn ends_event(chunk: &[u8]) -> bool {
    chunk.ends_with(b"\n\n") || chunk.ends_with(b"\r\n\r\n") || chunk.ends_with(b"\r\r")
}

/// Passes an SSE stream on and, after `every` of silence at an event boundary, sends a comment.
/// actix notices a client that went away only when it writes to it: without this, an idle
/// stream would hold its upstream connection (and its permit) until the upstream spoke again.
fn keepalive<S>(
    stream: std::pin::Pin<Box<S>>,
    every: std::time::Duration,
) -> impl futures_util::Stream<Item = Result<web::Bytes, io::Error>>
where
    S: futures_util::Stream<Item = Result<web::Bytes, io::Error>>,
{
    futures_util::stream::unfold((stream, true), move |(mut s, at_boundary)| async move {
        loop {
            match tokio::time::timeout(every, s.next()).await {
                Ok(Some(Ok(chunk))) => {
                    let boundary = if chunk.is_empty() {
                        at_boundary
                    } else {
                        ends_event(&chunk)
                    };
                    return Some((Ok(chunk), (s, boundary)));
                }
                Ok(Some(Err(e))) => return Some((Err(e), (s, at_boundary))),
                Ok(None) => return None,
                Err(_) if at_boundary => {
                    return Some((Ok(web::Bytes::from_static(KEEPALIVE)), (s, true)));
                }
                Err(_) => {}
            }
        }
    })
}
