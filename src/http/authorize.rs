//! `GET|POST /authorize` (OAuth 2.1 §4.1.1, docs/behaviour.md §4). The route guard picked the
//! renderer.

use actix_web::{HttpRequest, HttpResponse, web};

use super::request;
use crate::flows::authorization::{self, Next};
use crate::oauth::errors::ErrorCode;
use crate::oauth::params::Params;
use crate::render::{Echo, Renderer};
use crate::state::AppState;

/// Longest original request kept for the "retry with the new client_id" link.
const MAX_RETRY: usize = 8 * 1024;

pub async fn get_authorize<R: Renderer>(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> HttpResponse {
    let raw = req.query_string();
    authorize::<R>(&req, &state, &Params::parse(raw.as_bytes()), raw).await
}

pub async fn post_authorize<R: Renderer>(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> HttpResponse {
    match request::body(payload, ErrorCode::InvalidRequest).await {
        Ok(body) => {
            let raw = String::from_utf8_lossy(&body);
            authorize::<R>(&req, &state, &Params::parse(&body), &raw).await
        }
        Err(p) => R::problem(&state.page, &p),
    }
}

async fn authorize<R: Renderer>(
    req: &HttpRequest,
    state: &AppState,
    params: &Params<'_>,
    raw: &str,
) -> HttpResponse {
    let browser = request::browser(req, state);
    let answer = authorization::start(&state.ctx(), params, &browser).await;
    if let Next::Unregistered(reason) = &answer.next {
        let renderer = if R::HTML { "html" } else { "json" };
        state.metrics.unregistered(reason.as_str(), renderer);
    }
    let echo = Echo {
        client_id: params.get("client_id"),
        state: params.get("state"),
        redirect_uri: params.get("redirect_uri"),
        retry_query: if raw.len() <= MAX_RETRY { raw } else { "" },
    };
    R::authorize(&state.page, &answer, echo)
}
