//! `POST /register` (RFC 7591: the JSON API and the HTML form) and `/register/{client_id}`
//! (RFC 7592: read, update, delete with the registration access token).

use actix_web::{HttpRequest, HttpResponse, web};

use super::request;
use crate::flows::clients::{self, FormFields, Refusal};
use crate::flows::{Kind, Problem};
use crate::oauth::errors::ErrorCode;
use crate::oauth::params::Params;
use crate::oauth::register;
use crate::render::json::Written;
use crate::render::{Html, Json, Renderer};
use crate::state::AppState;

/// A body that must be JSON: the content type, then the bytes.
async fn json_body(req: &HttpRequest, payload: web::Payload) -> Result<web::Bytes, Problem> {
    if request::media_type(req) != "application/json" {
        return Err(Problem::new(
            Kind::Request,
            ErrorCode::InvalidClientMetadata,
            "Send the client metadata as a JSON object with Content-Type: application/json.",
        ));
    }
    request::body(payload, ErrorCode::InvalidClientMetadata).await
}

/// `POST /register` with a JSON body (RFC 7591 §3.1).
pub async fn post_register(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> HttpResponse {
    let input = match json_body(&req, payload).await {
        Ok(body) => register::parse_json(&body).map_err(Refusal::Invalid),
        Err(p) => Err(Refusal::Problem(p)),
    };
    let ctx = state.ctx();
    match clients::register(&ctx, input, request::bearer(&req)).await {
        Ok(created) => Json::client_info(Written::Created, &clients::created_info(&ctx, &created)),
        Err(refusal) => Json::error(&refusal.problem()),
    }
}

/// `GET /register` in a browser: the registration form on its own page.
pub async fn get_register_form(state: web::Data<AppState>) -> HttpResponse {
    Html::register_page(&state.page)
}

/// `POST /register` from the HTML form (`application/x-www-form-urlencoded`, CSRF-protected).
pub async fn post_register_form(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> HttpResponse {
    let body = match request::body(payload, ErrorCode::InvalidClientMetadata).await {
        Ok(b) => b,
        Err(p) => return Html::problem(&state.page, &p),
    };
    let params = Params::parse(&body);
    let field = |name: &str| params.get(name).unwrap_or("").to_owned();
    let fields = FormFields {
        client_name: field("client_name"),
        redirect_uris: field("redirect_uris"),
        confidential: params.get("client_type") == Some("confidential"),
        scope: field("scope"),
        retry: field("retry"),
        csrf_token: params.get("csrf_token").map(str::to_owned),
        initial_access_token: params.get("initial_access_token").map(str::to_owned),
    };
    let browser = request::browser(&req, &state);
    match clients::register_form(&state.ctx(), &fields, &browser).await {
        Ok(done) => Html::registered(&state.page, &done),
        Err(refusal) => Html::register_again(&state.page, &fields, &refusal),
    }
}

/// `GET /register/{client_id}` (RFC 7592 §2.1).
pub async fn get_client(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> HttpResponse {
    match clients::read(&state.ctx(), &path, request::bearer(&req)).await {
        Ok(info) => Json::client_info(Written::Current, &info),
        Err(p) => Json::error(&p),
    }
}

/// `PUT /register/{client_id}` (RFC 7592 §2.2): replaces the metadata.
pub async fn put_client(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    payload: web::Payload,
) -> HttpResponse {
    let body = json_body(&req, payload).await;
    let updated = clients::update(
        &state.ctx(),
        &path,
        request::bearer(&req),
        body.as_ref().map(|b| &b[..]).map_err(Clone::clone),
    )
    .await;
    match updated {
        Ok(info) => Json::client_info(Written::Current, &info),
        Err(p) => Json::error(&p),
    }
}

/// `DELETE /register/{client_id}` (RFC 7592 §2.3): 204.
pub async fn delete_client(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> HttpResponse {
    match clients::delete(&state.ctx(), &path, request::bearer(&req)).await {
        Ok(()) => Json::deleted(),
        Err(p) => Json::error(&p),
    }
}
