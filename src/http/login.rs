//! `POST /login` (the sign-in form), `GET /consent` and `POST /consent` (docs/behaviour.md §4
//! step 5). Always pages: only a person signs in and decides.

use actix_web::{HttpRequest, HttpResponse, web};

use super::request;
use crate::flows::authorization;
use crate::oauth::errors::ErrorCode;
use crate::oauth::params::Params;
use crate::render::{Html, Renderer};
use crate::state::AppState;

pub async fn post_login(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> HttpResponse {
    match request::body(payload, ErrorCode::InvalidRequest).await {
        Ok(body) => {
            let browser = request::with_address(&req, &state);
            let form = Params::parse(&body);
            let answer = authorization::sign_in(&state.ctx(), &form, &browser).await;
            Html::answer(&state.page, &answer)
        }
        Err(p) => Html::problem(&state.page, &p),
    }
}

pub async fn get_consent(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let params = Params::parse(req.query_string().as_bytes());
    let request_id = params.get("request").unwrap_or("");
    let browser = request::browser(&req, &state);
    let answer = authorization::consent(&state.ctx(), request_id, &browser).await;
    Html::answer(&state.page, &answer)
}

pub async fn post_consent(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> HttpResponse {
    match request::body(payload, ErrorCode::InvalidRequest).await {
        Ok(body) => {
            let form = Params::parse(&body);
            let browser = request::browser(&req, &state);
            let answer = authorization::decide(&state.ctx(), &form, &browser).await;
            Html::answer(&state.page, &answer)
        }
        Err(p) => Html::problem(&state.page, &p),
    }
}
