//! `GET /login/{provider}` (a sign-in button: off to the identity provider) and
//! `GET /login/{provider}/callback` (its answer), docs/behaviour.md §14. Always pages: only a
//! person signs in.

use actix_web::{HttpRequest, HttpResponse, web};

use super::request;
use crate::flows::upstream;
use crate::oauth::params::Params;
use crate::render::Html;
use crate::state::AppState;

pub async fn get_login_provider(
    req: HttpRequest,
    state: web::Data<AppState>,
    provider: web::Path<String>,
) -> HttpResponse {
    let params = Params::parse(req.query_string().as_bytes());
    let browser = request::browser(&req, &state);
    let request_id = params.get("request").unwrap_or("");
    let answer = upstream::begin(&state.ctx(), &provider, request_id, &browser).await;
    Html::answer(&state.page, &answer)
}

pub async fn get_login_callback(
    req: HttpRequest,
    state: web::Data<AppState>,
    provider: web::Path<String>,
) -> HttpResponse {
    let params = Params::parse(req.query_string().as_bytes());
    let browser = request::browser(&req, &state);
    let answer = upstream::finish(&state.ctx(), &provider, &params, &browser).await;
    Html::answer(&state.page, &answer)
}
