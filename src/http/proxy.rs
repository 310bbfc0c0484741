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
use reqwest::header::{self as rq, HeaderMap, HeaderName};

use crate::flows::gate::{Caller, Gate, Route};
use crate::render::CORS_ALLOW_ORIGIN;
use crate::render::gate::{GATE_EXPOSE, rpc_error};

/// What goes up as the request body.
pub enum Body {
    None,
    /// Read already (small, or read to decide the tools called).
    Read(web::Bytes),
    /// Streamed up as it arrives, cut at the gate's body limit.
    Stream(web::Payload),
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) and what the gate sets itself or never passes on.
fn dropped(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "content-length"
            | "authorization"
            | "cookie"
            | "forwarded"
            | "x-forwarded-for"
            | "x-forwarded-host"
            | "x-forwarded-proto"
            | "expect"
    )
}

/// The names listed in `Connection` are hop-by-hop too.
fn connection_listed(headers: &ax::HeaderMap) -> Vec<String> {
    headers
        .get_all(ax::CONNECTION)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect()
}

fn upstream_headers(gate: &Gate, route: &Route, req: &HttpRequest, caller: &Caller) -> HeaderMap {
    let listed = connection_listed(req.headers());
    let identity = [
        &gate.subject_header,
        &gate.client_id_header,
        &gate.scopes_header,
    ];
    let mut out = HeaderMap::with_capacity(req.headers().len() + 6);
    for (name, value) in req.headers() {
        let n = name.as_str();
        if dropped(n)
            || listed.iter().any(|l| l == n)
            || identity
                .iter()
                .any(|h| h.as_ref().is_some_and(|h| h.as_str() == n))
        {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(n.as_bytes()),
            rq::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            out.append(name, value);
        }
    }
    for (name, value) in
        identity
            .into_iter()
            .zip([&caller.subject, &caller.client_id, &caller.scopes])
    {
        if let (Some(name), Ok(value)) = (name, rq::HeaderValue::from_str(value)) {
            out.insert(name.clone(), value);
        }
    }
    // Who asked, as a proxy tells it: the peer's address and the public scheme and host.
    if let Some(peer) = req.peer_addr()
        && let Ok(v) = rq::HeaderValue::from_str(&peer.ip().to_string())
    {
        out.insert(HeaderName::from_static("x-forwarded-for"), v);
    }
    for (name, value) in [
        ("x-forwarded-proto", &route.forwarded_proto),
        ("x-forwarded-host", &route.forwarded_host),
    ] {
        if let Ok(v) = rq::HeaderValue::from_str(value) {
            out.insert(HeaderName::from_static(name), v);
        }
    }
    out
}

/// The request body as the upstream gets it: a payload is read on this worker and handed over
/// through a small channel, so a slow upstream slows the client down (back-pressure) and a body
/// over `limit` stops the upload (and marks `overflow`).
fn upstream_body(body: Body, limit: usize, overflow: Arc<AtomicBool>) -> Option<reqwest::Body> {
    match body {
        Body::None => None,
        Body::Read(bytes) => Some(reqwest::Body::from(bytes)),
        Body::Stream(mut payload) => {
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<web::Bytes, io::Error>>(4);
            actix_web::rt::spawn(async move {
                let mut seen = 0usize;
                while let Some(chunk) = payload.next().await {
                    let item = match chunk {
                        Ok(c) => {
                            seen += c.len();
                            if seen > limit {
                                overflow.store(true, Ordering::Relaxed);
                                Err(io::Error::other("request body over the gate's limit"))
                            } else {
                                Ok(c)
                            }
                        }
                        Err(e) => Err(io::Error::other(e.to_string())),
                    };
                    let stop = item.is_err();
                    if tx.send(item).await.is_err() || stop {
                        break;
                    }
                }
            });
            let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|item| (item, rx))
            });
            Some(reqwest::Body::wrap_stream(stream))
        }
    }
}

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
        None => out.streaming(stream),
    }
}
