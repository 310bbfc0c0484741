//! `GET /.well-known/oauth-authorization-server` (RFC 8414), served from bytes built once.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, web};

use crate::AppState;
use crate::http::common::APPLICATION_JSON;

const CACHE_AN_HOUR: HeaderValue = HeaderValue::from_static("public, max-age=3600");

pub async fn get_metadata(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, CACHE_AN_HOUR))
        .insert_header((header::CONTENT_TYPE, APPLICATION_JSON))
        .body(state.meta.json.clone())
}
