//! What the gate's proxy passes on (docs/behaviour.md §13.2): the request headers without
//! hop-by-hop headers and credentials, with the caller's identity and forwarding headers; the
//! request body, read or streamed with back-pressure; and which answer headers come back.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::http::header as ax;
use actix_web::{HttpRequest, web};
use futures_util::StreamExt;
use reqwest::header::{self as rq, HeaderMap, HeaderName};

use crate::flows::gate::{Caller, Gate, Route};

/// What goes up as the request body.
pub enum Body {
    None,
    /// Read already (small, or read to decide the tools called).
    Read(web::Bytes),
    /// Streamed up as it arrives, cut at the gate's body limit.
    Stream(web::Payload),
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) and what the gate sets itself or never passes on.
pub fn dropped(name: &str) -> bool {
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

pub fn upstream_headers(
    gate: &Gate,
    route: &Route,
    req: &HttpRequest,
    caller: &Caller,
) -> HeaderMap {
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
pub fn upstream_body(body: Body, limit: usize, overflow: Arc<AtomicBool>) -> Option<reqwest::Body> {
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
