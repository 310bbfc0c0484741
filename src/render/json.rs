//! The JSON renderer: documents for API clients, with machine-readable hints.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::{Problem, Renderer, Unregistered, unregistered_description};
use crate::AppState;
use crate::http::common::{APPLICATION_JSON, NO_CACHE, NO_STORE, answer, no_store};
use crate::metadata::Endpoints;
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

/// The unregistered-client document for the reasons whose text depends only on settings, as
/// the bytes around the two request fields in it: `head`, the client_id, the reason's tail,
/// then `,"state":…` when sent, then `}`. Built once by serialising each settings-derived
/// field with `serde_json`, so the answer is the same document `UnregisteredBody` gives
/// (a unit test compares them) without escaping the same long texts on every request.
pub struct UnregisteredJson {
    head: String,
    /// For `Unknown`, `Expired` and `RegistrationDisabled`, by `prebuilt_index`.
    tails: [String; 3],
}

/// Where a reason's prebuilt parts are kept; `CimdFailed` carries a detail of its own.
pub fn prebuilt_index(reason: &UnknownReason) -> Option<usize> {
    match reason {
        UnknownReason::Unknown => Some(0),
        UnknownReason::Expired => Some(1),
        UnknownReason::RegistrationDisabled => Some(2),
        UnknownReason::CimdFailed(_) => None,
    }
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

impl UnregisteredJson {
    pub fn new(ep: &Endpoints) -> Self {
        let head = format!(
            "{{\"authorization_server_metadata\":{},\"client_id\":",
            json_str(&ep.metadata)
        );
        let registration = ep.registration.as_deref().map_or(String::new(), |r| {
            format!(",\"registration_endpoint\":{}", json_str(r))
        });
        let tail = |reason: UnknownReason| {
            let description = unregistered_description(&reason, ep.registration.as_deref());
            format!(
                ",\"error\":\"invalid_client\",\"error_description\":{},\"reason\":{}{registration}",
                json_str(&description),
                json_str(reason.as_str())
            )
        };
        Self {
            head,
            tails: [
                tail(UnknownReason::Unknown),
                tail(UnknownReason::Expired),
                tail(UnknownReason::RegistrationDisabled),
            ],
        }
    }

    /// The document for `view`, or `None` for a reason that is not prebuilt.
    fn body(&self, view: &Unregistered<'_>) -> Option<Vec<u8>> {
        let tail = &self.tails[prebuilt_index(&view.reason)?];
        let state_len = view.state.map_or(0, |s| s.len() + 16);
        let mut out =
            Vec::with_capacity(self.head.len() + tail.len() + view.client_id.len() + state_len + 8);
        out.extend_from_slice(self.head.as_bytes());
        serde_json::to_writer(&mut out, view.client_id).ok()?;
        out.extend_from_slice(tail.as_bytes());
        if let Some(state) = view.state {
            out.extend_from_slice(b",\"state\":");
            serde_json::to_writer(&mut out, state).ok()?;
        }
        out.push(b'}');
        Some(out)
    }
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
        if let Some(body) = state.answers.json.body(view) {
            let headers = [
                (header::LINK, state.answers.link.clone()),
                (header::CACHE_CONTROL, NO_STORE),
                (header::PRAGMA, NO_CACHE),
                (header::VARY, VARY_ACCEPT),
                (header::CONTENT_TYPE, APPLICATION_JSON),
            ];
            return answer(StatusCode::BAD_REQUEST, headers, body);
        }
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
        res.insert_header((header::LINK, state.answers.link.clone()));
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

    /// The prebuilt document is byte for byte what serialising `UnregisteredBody` gives, for
    /// every prebuilt reason, with and without registration, for hostile request fields too.
    #[test]
    fn the_prebuilt_unregistered_document_is_the_serialised_one() {
        let settings = crate::settings::Settings::defaults().expect("default settings");
        let mut ep = crate::metadata::Metadata::build(&settings).endpoints;
        for registration in [Some("https://as.example/p/register"), None] {
            ep.registration = registration.map(str::to_owned);
            ep.metadata = "https://as.example/.well-known/oauth-authorization-server/p\"".into();
            let prebuilt = UnregisteredJson::new(&ep);
            for reason in [
                UnknownReason::Unknown,
                UnknownReason::Expired,
                UnknownReason::RegistrationDisabled,
            ] {
                for (client_id, state) in [
                    ("c", None),
                    ("<script>\"\\\u{1}é", Some("s\"<\n\u{7f}")),
                    ("", Some("")),
                ] {
                    let view = Unregistered {
                        client_id,
                        state,
                        reason: reason.clone(),
                        redirect_uri: None,
                        retry_query: "",
                    };
                    let description = unregistered_description(&reason, registration);
                    let expected = UnregisteredBody {
                        authorization_server_metadata: &ep.metadata,
                        client_id,
                        error: "invalid_client",
                        error_description: &description,
                        reason: reason.as_str(),
                        reason_detail: None,
                        registration_endpoint: registration,
                        state,
                    };

                    let ours = String::from_utf8(prebuilt.body(&view).expect("prebuilt"));

                    assert_eq!(
                        ours.expect("UTF-8"),
                        serde_json::to_string(&expected).expect("serialises")
                    );
                }
            }
            let cimd = Unregistered {
                client_id: "https://c.example/m",
                state: None,
                reason: UnknownReason::CimdFailed("404".into()),
                redirect_uri: None,
                retry_query: "",
            };
            assert!(prebuilt.body(&cimd).is_none());
        }
    }

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
