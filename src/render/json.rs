//! The JSON renderer: documents for API clients, with machine-readable hints.

use actix_web::HttpResponse;
use actix_web::http::header::{self, HeaderValue};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::{Problem, Renderer, Unregistered, unregistered_description};
use crate::AppState;
use crate::http::common::{APPLICATION_JSON, link_header, no_store};
use crate::oauth::authorize::UnknownReason;

pub struct Json;

const VARY_ACCEPT: HeaderValue = HeaderValue::from_static("Accept");

/// The unregistered-client document (BEHAVIOUR §5.3). Serialised straight from borrowed
/// fields; the fields are in alphabetical order, the order a `serde_json::Map` writes them.
#[derive(Serialize)]
struct UnregisteredBody<'a> {
    authorization_server_metadata: &'a str,
    client_id: &'a str,
    error: &'static str,
    error_description: &'a str,
    reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason_detail: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    registration_endpoint: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<&'a str>,
}

/// `{"client_id"?, "error", "error_description", "state"?}`, as `problem_body` builds it.
#[derive(Serialize)]
struct ProblemBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<&'a str>,
    error: &'a str,
    error_description: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<&'a str>,
}

/// A JSON body with `no-store` and `Vary: Accept` (the same URL also answers with a page).
fn respond(mut res: actix_web::HttpResponseBuilder, body: &impl Serialize) -> HttpResponse {
    no_store(&mut res);
    res.insert_header((header::VARY, VARY_ACCEPT));
    let mut bytes = Vec::with_capacity(512);
    match serde_json::to_writer(&mut bytes, body) {
        Ok(()) => res
            .insert_header((header::CONTENT_TYPE, APPLICATION_JSON))
            .body(bytes),
        Err(e) => {
            log::error!("JSON rendering failed: {e}");
            HttpResponse::InternalServerError().finish()
        }
    }
}

impl Renderer for Json {
    const HTML: bool = false;

    fn unregistered(state: &AppState, view: &Unregistered<'_>) -> HttpResponse {
        let ep = &state.meta.endpoints;
        let description = unregistered_description(&view.reason, ep.registration.as_deref());
        let body = UnregisteredBody {
            authorization_server_metadata: &ep.metadata,
            client_id: view.client_id,
            error: "invalid_client",
            error_description: &description,
            reason: view.reason.as_str(),
            reason_detail: match &view.reason {
                UnknownReason::CimdFailed(why) => Some(why),
                _ => None,
            },
            registration_endpoint: ep.registration.as_deref(),
            state: view.state,
        };
        let mut res = HttpResponse::BadRequest();
        res.insert_header((header::LINK, link_header(ep)));
        respond(res, &body)
    }

    fn problem(_state: &AppState, p: &Problem) -> HttpResponse {
        let mut res = HttpResponse::build(p.status);
        if let Some(secs) = p.retry_after {
            res.insert_header((header::RETRY_AFTER, secs));
        }
        respond(
            res,
            &ProblemBody {
                client_id: p.client_id.as_deref(),
                error: p.error.code.as_str(),
                error_description: &p.error.description,
                state: p.state.as_deref(),
            },
        )
    }
}

/// `{"error", "error_description", "client_id"?, "state"?}`.
pub fn problem_body(p: &Problem) -> Value {
    let mut body = Map::new();
    body.insert("error".into(), json!(p.error.code.as_str()));
    body.insert("error_description".into(), json!(p.error.description));
    if let Some(c) = &p.client_id {
        body.insert("client_id".into(), json!(c));
    }
    if let Some(s) = &p.state {
        body.insert("state".into(), json!(s));
    }
    Value::Object(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::errors::{ErrorCode, OAuthError};
    use actix_web::http::StatusCode;

    #[test]
    fn the_problem_document_is_the_one_problem_body_builds() {
        for (client_id, state) in [(None, None), (Some("c"), Some("s\"<")), (Some("c"), None)] {
            let p = Problem {
                client_id: client_id.map(str::to_owned),
                state: state.map(str::to_owned),
                ..Problem::new(
                    StatusCode::BAD_REQUEST,
                    OAuthError::new(ErrorCode::InvalidRequest, "bad \"request\""),
                )
            };
            let direct = ProblemBody {
                client_id: p.client_id.as_deref(),
                error: p.error.code.as_str(),
                error_description: &p.error.description,
                state: p.state.as_deref(),
            };

            let bytes = serde_json::to_vec(&direct).expect("serialises");

            assert_eq!(
                bytes,
                serde_json::to_vec(&problem_body(&p)).expect("serialises")
            );
        }
    }
}
