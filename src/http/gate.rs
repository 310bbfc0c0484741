//! The gate's routes (docs/behaviour.md §13.2): `{path}` of every `[[gate.routes]]` entry,
//! and its RFC 9728 document under `/.well-known/oauth-protected-resource`.

use actix_web::http::{Method, StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;

use super::proxy::{self, Body};
use super::request::bearer;
use crate::flows::gate::{self, Calls, Route};
use crate::render::{self, gate as answer};
use crate::state::AppState;

/// Bodies up to this size are read before being passed on (MCP messages are small); larger
/// ones are streamed up.
const READ_UP_TO: usize = 64 * 1024;

/// `GET /.well-known/oauth-protected-resource{path}` (RFC 9728 §3).
pub async fn get_resource_metadata(state: web::Data<AppState>, index: usize) -> HttpResponse {
    match state.gate.routes.get(index) {
        Some(route) => answer::metadata(route),
        None => HttpResponse::NotFound().finish(),
    }
}

fn text<'r>(req: &'r HttpRequest, name: &str) -> Option<&'r str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn too_large(limit: usize, id: Option<&serde_json::Value>) -> HttpResponse {
    answer::rpc_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        id,
        &format!("The request body is larger than {limit} bytes."),
        None,
    )
}

/// Reads the whole body, refusing it past `limit` bytes.
async fn read(mut payload: web::Payload, limit: usize) -> Result<web::Bytes, HttpResponse> {
    let mut buf = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| {
            answer::rpc_error(
                StatusCode::BAD_REQUEST,
                None,
                "The request body could not be read.",
                None,
            )
        })?;
        if buf.len() + chunk.len() > limit {
            return Err(too_large(limit, None));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// Any request to a gate route: the token checked against the route's resource and scopes (and
/// the scopes of the tools it calls), then passed on, streaming. `html`: the browser variant
/// (the `PrefersHtml` guard), whose challenge is a page.
pub async fn any_gate(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
    index: usize,
    html: bool,
) -> HttpResponse {
    let g = &state.gate;
    let Some(route) = g.routes.get(index) else {
        return HttpResponse::NotFound().finish();
    };
    if req.method() == Method::OPTIONS {
        return answer::preflight();
    }
    let length = text(&req, "content-length").and_then(|v| v.parse::<usize>().ok());
    if length.is_some_and(|n| n > g.body_limit) {
        return too_large(g.body_limit, None);
    }
    let method = text(&req, "mcp-method");
    let name = text(&req, "mcp-name");
    let mut tools: Vec<String> = Vec::new();
    let mut calls = Calls::default();
    let has_body =
        length.is_some_and(|n| n > 0) || req.headers().contains_key(header::TRANSFER_ENCODING);
    // Per-tool scopes: the MCP 2026-07-28 headers say what is called, the body (read, bounded)
    // says it for older clients, and the two must agree, since the upstream acts on the body.
    let body = if !has_body {
        Body::None
    } else if !route.tools.is_empty() || length.is_some_and(|n| n <= READ_UP_TO) {
        let bytes = match read(payload, g.body_limit).await {
            Ok(b) => b,
            Err(res) => return res,
        };
        if !route.tools.is_empty() {
            calls = gate::calls(&bytes);
            if gate::headers_disagree(method, name, &calls) {
                return answer::rpc_error(
                    StatusCode::BAD_REQUEST,
                    calls.id.as_ref(),
                    "The Mcp-Method or Mcp-Name header does not match the request body.",
                    None,
                );
            }
            tools = std::mem::take(&mut calls.tools);
        }
        Body::Read(bytes)
    } else {
        Body::Stream(payload)
    };
    if tools.is_empty()
        && !route.tools.is_empty()
        && let Some(tool) = gate::header_tool(method, name)
    {
        tools.push(tool);
    }
    let ctx = state.ctx();
    let caller = match gate::admit(&ctx, route, bearer(&req), &tools).await {
        Ok(Ok(caller)) => caller,
        Ok(Err(challenge)) if html => {
            return answer::challenge_page(&state.page, route, &challenge);
        }
        Ok(Err(challenge)) => return answer::challenge(route, &challenge),
        Err(problem) => {
            let (status, _) = render::status(problem.kind);
            return answer::rpc_error(
                status,
                calls.id.as_ref(),
                &problem.error.description,
                render::retry_after(problem.kind),
            );
        }
    };
    proxy::forward(g, route, &req, body, &caller, calls.id.as_ref()).await
}

/// The routes of the gate, before Doorman's own.
pub fn configure(cfg: &mut web::ServiceConfig, routes: &[Route]) {
    use crate::http::negotiate::PrefersHtml;
    for (index, route) in routes.iter().enumerate() {
        for path in &route.metadata_paths {
            cfg.service(
                web::resource(path.clone())
                    .route(
                        web::get()
                            .to(move |s: web::Data<AppState>| get_resource_metadata(s, index)),
                    )
                    .route(web::method(Method::OPTIONS).to(|| async { answer::preflight() })),
            );
        }
        cfg.service(
            web::resource(route.path.clone())
                .route(web::get().guard(PrefersHtml).to(
                    move |s: web::Data<AppState>, r: HttpRequest, p: web::Payload| {
                        any_gate(s, r, p, index, true)
                    },
                ))
                .route(web::route().to(
                    move |s: web::Data<AppState>, r: HttpRequest, p: web::Payload| {
                        any_gate(s, r, p, index, false)
                    },
                )),
        );
    }
}
