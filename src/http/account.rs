//! `GET /account` (the applications a person allowed), `POST /account/revoke` and
//! `POST /account/signout` (docs/behaviour.md §15). Always pages.

use actix_web::{HttpRequest, HttpResponse, web};

use super::request;
use crate::flows::account;
use crate::oauth::errors::ErrorCode;
use crate::oauth::params::Params;
use crate::render::{Html, Renderer};
use crate::state::AppState;

pub async fn get_account(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let query = Params::parse(req.query_string().as_bytes());
    let browser = request::browser(&req, &state);
    let outcome = account::show(&state.ctx(), &browser, query.get("revoked")).await;
    Html::account(&state.page, &outcome)
}

pub async fn post_revoke(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> HttpResponse {
    match request::body(payload, ErrorCode::InvalidRequest).await {
        Ok(body) => {
            let browser = request::browser(&req, &state);
            let outcome = account::revoke(&state.ctx(), &Params::parse(&body), &browser).await;
            Html::account(&state.page, &outcome)
        }
        Err(p) => Html::problem(&state.page, &p),
    }
}

pub async fn post_sign_out(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> HttpResponse {
    match request::body(payload, ErrorCode::InvalidRequest).await {
        Ok(body) => {
            let browser = request::browser(&req, &state);
            let outcome = account::sign_out(&state.ctx(), &Params::parse(&body), &browser).await;
            Html::account(&state.page, &outcome)
        }
        Err(p) => Html::problem(&state.page, &p),
    }
}
