//! The JSON renderer: documents for API clients, with machine-readable hints.

use actix_web::HttpResponse;
use actix_web::http::header;
use serde_json::{Map, Value, json};

use super::{Problem, Renderer, Unregistered, unregistered_description};
use crate::AppState;
use crate::http::common::{link_header, no_store};

pub struct Json;

impl Renderer for Json {
    const HTML: bool = false;

    fn unregistered(state: &AppState, view: &Unregistered) -> HttpResponse {
        let ep = &state.meta.endpoints;
        let mut body = Map::new();
        body.insert("error".into(), json!("invalid_client"));
        body.insert(
            "error_description".into(),
            json!(unregistered_description(
                &view.reason,
                ep.registration.as_deref()
            )),
        );
        body.insert("reason".into(), json!(view.reason.as_str()));
        if let crate::oauth::authorize::UnknownReason::CimdFailed(why) = &view.reason {
            body.insert("reason_detail".into(), json!(why));
        }
        body.insert("client_id".into(), json!(view.client_id));
        if let Some(s) = &view.state {
            body.insert("state".into(), json!(s));
        }
        if let Some(reg) = &ep.registration {
            body.insert("registration_endpoint".into(), json!(reg));
        }
        body.insert("authorization_server_metadata".into(), json!(ep.metadata));
        let mut res = HttpResponse::BadRequest();
        no_store(&mut res);
        res.insert_header((header::VARY, "Accept"));
        res.insert_header((header::LINK, link_header(ep)));
        res.json(Value::Object(body))
    }

    fn problem(_state: &AppState, p: &Problem) -> HttpResponse {
        let mut res = HttpResponse::build(p.status);
        no_store(&mut res);
        res.insert_header((header::VARY, "Accept"));
        if let Some(secs) = p.retry_after {
            res.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        res.json(problem_body(p))
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
