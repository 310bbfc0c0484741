//! `GET|POST /authorize` (OAuth 2.1 §4.1.1, BEHAVIOUR §4). The route guard picked the renderer.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};

use crate::AppState;
use crate::http::common::{body_problem, no_store, read_body, store_problem};
use crate::oauth::authorize::{self, ClientLookup, Outcome, Policy};
use crate::oauth::errors::{ErrorCode, OAuthError};
use crate::oauth::params::Params;
use crate::render::{Problem, Renderer, Unregistered};

/// Longest original request kept for the "retry with the new client_id" link.
const MAX_RETRY: usize = 8 * 1024;

pub async fn get_authorize<R: Renderer>(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> HttpResponse {
    let raw = req.query_string();
    authorize::<R>(&req, &state, Params::parse(raw.as_bytes()), raw).await
}

pub async fn post_authorize<R: Renderer>(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> HttpResponse {
    match read_body(payload).await {
        Ok(body) => {
            let raw = String::from_utf8_lossy(&body).into_owned();
            authorize::<R>(&req, &state, Params::parse(&body), &raw).await
        }
        Err(e) => R::problem(&state, &body_problem(e, ErrorCode::InvalidRequest)),
    }
}

async fn authorize<R: Renderer>(
    req: &HttpRequest,
    state: &AppState,
    params: Params<'_>,
    raw: &str,
) -> HttpResponse {
    let sent_state = params.get("state");
    // Step 1.
    let client_id = match authorize::client_id(&params) {
        Ok(id) => id,
        Err(error) => {
            let problem = Problem {
                state: sent_state.map(str::to_owned),
                ..Problem::new(StatusCode::BAD_REQUEST, error)
            };
            return R::problem(state, &problem);
        }
    };
    // Step 2: a storage failure is a 503, never "unknown client".
    let client = match state.store.client(client_id).await {
        Ok(c) => c,
        Err(e) => return R::problem(state, &store_problem(&e)),
    };
    let lookup = match &client {
        Some(c) => ClientLookup::Found {
            metadata: &c.metadata,
            expires_at: c.expires_at,
        },
        None => ClientLookup::NotFound,
    };
    let policy = Policy {
        registration_enabled: state.settings.registration.enabled,
        supported_scopes: &state.settings.scopes.supported,
        default_scopes: &state.settings.scopes.default,
        allowed_resources: &state.settings.resources.allowed,
    };
    match authorize::validate(&params, client_id, lookup, &policy, state.clock.now()) {
        Outcome::Direct(error) => {
            let problem = Problem {
                client_id: Some(client_id.to_owned()),
                state: sent_state.map(str::to_owned),
                ..Problem::new(StatusCode::BAD_REQUEST, error)
            };
            R::problem(state, &problem)
        }
        Outcome::Unregistered { client_id, reason } => {
            state
                .metrics
                .unregistered(reason.as_str(), if R::HTML { "html" } else { "json" });
            let view = Unregistered {
                client_id: &client_id,
                state: sent_state,
                reason,
                redirect_uri: params.get("redirect_uri"),
                retry_query: if raw.len() <= MAX_RETRY { raw } else { "" },
            };
            R::unregistered(state, &view)
        }
        Outcome::RedirectError {
            redirect_uri,
            error,
            state: st,
        } => redirect_error(state, &redirect_uri, &error, st.as_deref()),
        // Only a person can sign in and approve, so the next step is a page whatever the
        // Accept header said.
        Outcome::Valid(request) => match &client {
            Some(c) => crate::http::login::proceed(req, state, c, request).await,
            None => R::problem(
                state,
                &store_problem(&crate::store::StoreError::Backend("client vanished".into())),
            ),
        },
    }
}

/// A redirect carrying an error (RFC 6749 §4.1.2.1), with `state` and `iss` (RFC 9207).
pub fn redirect_error(
    state: &AppState,
    redirect_uri: &str,
    error: &OAuthError,
    st: Option<&str>,
) -> HttpResponse {
    let params = [
        ("error", error.code.as_str()),
        ("error_description", error.description.as_str()),
    ];
    redirect(state, redirect_uri, &params, st, StatusCode::FOUND)
}

/// A redirect to an already validated redirect URI.
pub fn redirect(
    state: &AppState,
    redirect_uri: &str,
    params: &[(&str, &str)],
    st: Option<&str>,
    status: StatusCode,
) -> HttpResponse {
    match authorize::redirect_url(redirect_uri, params, st, &state.meta.endpoints.issuer) {
        Some(location) => {
            let mut res = HttpResponse::build(status);
            no_store(&mut res);
            res.insert_header((header::LOCATION, location)).finish()
        }
        None => {
            let mut res = HttpResponse::BadRequest();
            no_store(&mut res);
            res.finish()
        }
    }
}
