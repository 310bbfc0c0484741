//! `POST /token` (RFC 6749 §3.2, OAuth 2.1 §3.2), `POST /revoke` (RFC 7009) and
//! `POST /introspect` (RFC 7662): a form body and an authenticated client, then one flow.

use actix_web::{HttpRequest, HttpResponse, web};

use super::request;
use crate::flows::tokens::{self, Caller};
use crate::flows::{Kind, Problem};
use crate::oauth::errors::ErrorCode;
use crate::oauth::params::Params;
use crate::render::Json;
use crate::state::AppState;

/// Reads the form body and authenticates the client; every endpoint here starts so.
async fn caller(
    req: &HttpRequest,
    state: &AppState,
    payload: web::Payload,
) -> Result<(Params<'static>, Caller), Problem> {
    let body = request::body(payload, ErrorCode::InvalidRequest).await?;
    if request::media_type(req) != "application/x-www-form-urlencoded" {
        return Err(Problem::new(
            Kind::Request,
            ErrorCode::InvalidRequest,
            "Send the parameters as application/x-www-form-urlencoded.",
        ));
    }
    let params = Params::parse(&body).into_owned();
    let caller = tokens::authenticate(&state.ctx(), request::authorization(req), &params).await?;
    Ok((params, caller))
}

/// `POST /token`.
pub async fn post_token(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> HttpResponse {
    let issued = match caller(&req, &state, payload).await {
        Ok((params, caller)) => tokens::grant(&state.ctx(), &caller, &params).await,
        Err(p) => Err(p),
    };
    match issued {
        Ok(issued) => Json::issued(&issued),
        Err(p) => Json::error(&p),
    }
}

/// `POST /revoke` (RFC 7009): 200 whether or not the token was known.
pub async fn post_revoke(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> HttpResponse {
    let revoked = match caller(&req, &state, payload).await {
        Ok((params, caller)) => tokens::revoke(&state.ctx(), &caller, &params).await,
        Err(p) => Err(p),
    };
    match revoked {
        Ok(()) => Json::done(),
        Err(p) => Json::error(&p),
    }
}

/// `POST /introspect` (RFC 7662), for resource servers.
pub async fn post_introspect(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> HttpResponse {
    let doc = match caller(&req, &state, payload).await {
        Ok((params, caller)) => tokens::introspect(&state.ctx(), &caller, &params).await,
        Err(p) => Err(p),
    };
    match doc {
        Ok(doc) => Json::introspection(&doc),
        Err(p) => Json::error(&p),
    }
}
