//! The JSON renderer: documents for API clients, with machine-readable hints.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header;
use serde::Serialize;

use super::{
    APPLICATION_JSON, NO_CACHE, NO_STORE, Page, Renderer, Unregistered, VARY_ACCEPT, answer,
    no_store, retry_after, status, unregistered_description,
};
use crate::flows::Problem;
use crate::flows::clients::ClientInfo;
use crate::flows::tokens::{Introspection, Issued};
use crate::metadata::Endpoints;
use crate::oauth::authorize::UnknownReason;

pub struct Json;

/// The error document (RFC 6749 §5.2): `{"client_id"?, "error", "error_description",
/// "state"?}`, keys in alphabetical order.
#[derive(Serialize)]
struct ProblemBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<&'a str>,
    error: &'a str,
    error_description: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<&'a str>,
}

/// The unregistered-client document (docs/behaviour.md §5.3), as the bytes around the two
/// request fields in it: `head`, for `cimd_failed` its `"cimd_error":…,`, `"client_id":`, the
/// client_id, the reason's tail, then `,"state":…` when sent, then `}`. Every settings-derived
/// field is serialised by `serde_json` when a tail is made — once at start-up for the reasons
/// without a detail, per answer for `cimd_failed` — so the same texts are not escaped again on
/// every request. Keys are in alphabetical order.
pub struct UnregisteredJson {
    head: String,
    registration: String,
    registration_endpoint: Option<String>,
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
            "{{\"authorization_server_metadata\":{},",
            json_str(&ep.metadata)
        );
        let registration = ep.registration.as_deref().map_or(String::new(), |r| {
            format!(",\"registration_endpoint\":{}", json_str(r))
        });
        let mut doc = Self {
            head,
            registration,
            registration_endpoint: ep.registration.clone(),
            tails: Default::default(),
        };
        doc.tails = [
            doc.tail(&UnknownReason::Unknown),
            doc.tail(&UnknownReason::Expired),
            doc.tail(&UnknownReason::RegistrationDisabled),
        ];
        doc
    }

    /// Everything after the client_id up to the optional state, for `reason`.
    fn tail(&self, reason: &UnknownReason) -> String {
        let description = unregistered_description(reason, self.registration_endpoint.as_deref());
        format!(
            ",\"error\":\"invalid_client\",\"error_description\":{},\"reason\":{}{}",
            json_str(&description),
            json_str(reason.as_str()),
            self.registration
        )
    }

    /// The document for `view`.
    fn body(&self, view: &Unregistered<'_>) -> Vec<u8> {
        let computed;
        let tail = match prebuilt_index(view.reason) {
            Some(i) => &self.tails[i],
            None => {
                computed = self.tail(view.reason);
                &computed
            }
        };
        let state_len = view.state.map_or(0, |s| s.len() + 16);
        let mut out = Vec::with_capacity(
            self.head.len() + tail.len() + view.client_id.len() + state_len + 48,
        );
        out.extend_from_slice(self.head.as_bytes());
        if let UnknownReason::CimdFailed(why) = view.reason {
            out.extend_from_slice(b"\"cimd_error\":");
            push_json_str(&mut out, why.code());
            out.push(b',');
        }
        out.extend_from_slice(b"\"client_id\":");
        push_json_str(&mut out, view.client_id);
        out.extend_from_slice(tail.as_bytes());
        if let Some(state) = view.state {
            out.extend_from_slice(b",\"state\":");
            push_json_str(&mut out, state);
        }
        out.push(b'}');
        out
    }
}

fn push_json_str(out: &mut Vec<u8>, s: &str) {
    // Writing a string into a Vec cannot fail.
    if serde_json::to_writer(&mut *out, s).is_err() {
        out.extend_from_slice(b"\"\"");
    }
}

/// A JSON body with `no-store`.
fn respond(status: StatusCode, body: &impl Serialize) -> HttpResponse {
    let mut bytes = Vec::with_capacity(256);
    if let Err(e) = serde_json::to_writer(&mut bytes, body) {
        log::error!("JSON rendering failed: {e}");
        return HttpResponse::InternalServerError().finish();
    }
    answer(
        status,
        [
            (header::CACHE_CONTROL, NO_STORE),
            (header::PRAGMA, NO_CACHE),
            (header::CONTENT_TYPE, APPLICATION_JSON),
        ],
        bytes,
    )
}

/// How a client information response came about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Registered just now (RFC 7591 §3.2.1).
    Created,
    /// Read or updated (RFC 7592 §2.1, §2.2).
    Current,
}

/// The rate limiter's `429` body around its one variable, the seconds to wait: what
/// `Json::error` writes for that problem, without serialising it on every refused request.
const TOO_MANY_HEAD: &str = "{\"error\":\"temporarily_unavailable\",\"error_description\":\"Too many requests from your address; retry in ";
const TOO_MANY_TAIL: &str = " seconds.\"}";
const TOO_MANY_TAIL_ONE: &str = " second.\"}";

/// The `429`s prebuilt once per process, one per wait of 1 to `PREBUILT_WAITS` seconds (every
/// wait the default limits can give, and far more): body and `Retry-After` are `'static`, so an
/// answer copies nothing and allocates no body — cloning a static `Bytes` or `HeaderValue` is a
/// pointer copy, with no reference count shared by the worker threads.
const PREBUILT_WAITS: u64 = 600;

static TOO_MANY: std::sync::LazyLock<Vec<(&'static [u8], header::HeaderValue)>> =
    std::sync::LazyLock::new(|| {
        (1..=PREBUILT_WAITS)
            .map(|wait| {
                let (body, seconds) = too_many_parts(wait);
                // Leaked on purpose: built once and kept for the life of the process (~70 KB for all 600).
                let body: &'static [u8] = Vec::leak(body);
                let seconds: &'static str = String::leak(seconds);
                (body, header::HeaderValue::from_static(seconds))
            })
            .collect()
    });

/// The body and the `Retry-After` value of the `429` for `wait` seconds.
fn too_many_parts(wait: u64) -> (Vec<u8>, String) {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(wait);
    let tail = if wait == 1 {
        TOO_MANY_TAIL_ONE
    } else {
        TOO_MANY_TAIL
    };
    let mut body = Vec::with_capacity(TOO_MANY_HEAD.len() + digits.len() + tail.len());
    body.extend_from_slice(TOO_MANY_HEAD.as_bytes());
    body.extend_from_slice(digits.as_bytes());
    body.extend_from_slice(tail.as_bytes());
    (body, digits.to_owned())
}

impl Json {
    /// The rate limiter's answer: `429`, `Retry-After: wait`, `no-store`, and the body
    /// `Json::error` gives for the sentence "Too many requests from your address; retry in
    /// {wait} seconds." ("1 second." for one) — prebuilt (`TOO_MANY`), because under a flood
    /// this is the answer Doorman gives most (issue 15: the cheapest answer).
    pub fn too_many(wait: u64) -> HttpResponse {
        let (body, retry_after) = match wait.checked_sub(1).and_then(|i| TOO_MANY.get(i as usize)) {
            Some((body, value)) => (actix_web::web::Bytes::from_static(body), value.clone()),
            None => {
                let (body, _) = too_many_parts(wait);
                (body.into(), header::HeaderValue::from(wait))
            }
        };
        answer(
            StatusCode::TOO_MANY_REQUESTS,
            [
                (header::CACHE_CONTROL, NO_STORE),
                (header::PRAGMA, NO_CACHE),
                (header::CONTENT_TYPE, APPLICATION_JSON),
                (header::RETRY_AFTER, retry_after),
            ],
            body,
        )
    }

    /// Any error, from any endpoint: status, challenge, `Retry-After`, `no-store`.
    pub fn error(problem: &Problem) -> HttpResponse {
        let (code, challenge) = status(problem.kind);
        let mut res = respond(
            code,
            &ProblemBody {
                client_id: problem.client_id.as_deref(),
                error: problem.error.code.as_str(),
                error_description: &problem.error.description,
                state: problem.state.as_deref(),
            },
        );
        let headers = res.headers_mut();
        if let Some(challenge) = challenge {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        if let Some(secs) = retry_after(problem.kind) {
            headers.insert(header::RETRY_AFTER, secs.into());
        }
        res
    }

    /// The token response (RFC 6749 §5.1).
    pub fn issued(issued: &Issued) -> HttpResponse {
        respond(StatusCode::OK, issued)
    }

    /// The client information response (RFC 7591 §3.2.1, RFC 7592 §2).
    pub fn client_info(written: Written, info: &ClientInfo) -> HttpResponse {
        let code = match written {
            Written::Created => StatusCode::CREATED,
            Written::Current => StatusCode::OK,
        };
        respond(code, info)
    }

    /// The introspection response (RFC 7662 §2.2).
    pub fn introspection(doc: &Introspection) -> HttpResponse {
        respond(StatusCode::OK, doc)
    }

    /// Done, nothing to say (RFC 7009 §2.2).
    pub fn done() -> HttpResponse {
        let mut res = HttpResponse::Ok().finish();
        no_store(&mut res);
        res
    }

    /// Deleted (RFC 7592 §2.3).
    pub fn deleted() -> HttpResponse {
        let mut res = HttpResponse::NoContent().finish();
        no_store(&mut res);
        res
    }
}

impl Renderer for Json {
    const HTML: bool = false;

    fn unregistered(page: &Page, view: &Unregistered<'_>) -> HttpResponse {
        let headers = [
            (header::LINK, page.link.clone()),
            (header::CACHE_CONTROL, NO_STORE),
            (header::PRAGMA, NO_CACHE),
            (header::VARY, VARY_ACCEPT),
            (header::CONTENT_TYPE, APPLICATION_JSON),
        ];
        answer(StatusCode::BAD_REQUEST, headers, page.json.body(view))
    }

    fn problem(_page: &Page, problem: &Problem) -> HttpResponse {
        let mut res = Self::error(problem);
        // The same URL also answers with a page.
        res.headers_mut().insert(header::VARY, VARY_ACCEPT);
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::cimd::Failure;

    #[actix_web::test]
    async fn the_prebuilt_429_is_the_error_answer_for_the_same_problem() {
        use crate::flows::Kind;
        use crate::oauth::errors::ErrorCode;
        for (wait, unit) in [
            (1, "second"),
            (9, "seconds"),
            (10, "seconds"),
            (59, "seconds"),
            (600, "seconds"),
            (601, "seconds"),
            (3600, "seconds"),
            (u64::MAX, "seconds"),
        ] {
            let fast = Json::too_many(wait);
            let slow = Json::error(&Problem::new(
                Kind::TooMany { retry_after: wait },
                ErrorCode::TemporarilyUnavailable,
                format!("Too many requests from your address; retry in {wait} {unit}."),
            ));

            assert_eq!(fast.status(), slow.status());
            let headers = |r: &HttpResponse| {
                let mut h: Vec<(String, String)> = r
                    .headers()
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
                    .collect();
                h.sort();
                h
            };
            assert_eq!(headers(&fast), headers(&slow), "headers for {wait}");
            let body = |r: HttpResponse| async move {
                actix_web::body::to_bytes(r.into_body()).await.unwrap()
            };
            assert_eq!(body(fast).await, body(slow).await, "body for {wait}");
        }
    }

    /// The unregistered-client document, serialised field by field: what the prebuilt parts
    /// must add up to.
    #[derive(Serialize)]
    struct Expected<'a> {
        authorization_server_metadata: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        cimd_error: Option<&'a str>,
        client_id: &'a str,
        error: &'static str,
        error_description: &'a str,
        reason: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        registration_endpoint: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        state: Option<&'a str>,
    }

    /// The document is byte for byte what serialising it field by field gives, for every
    /// reason, with and without registration, for hostile request fields too.
    #[test]
    fn the_unregistered_document_is_the_serialised_one() {
        let settings = crate::settings::Settings::defaults().expect("default settings");
        let mut ep = crate::metadata::Metadata::build(&settings).endpoints;
        for registration in [Some("https://as.example/p/register"), None] {
            ep.registration = registration.map(str::to_owned);
            ep.metadata = "https://as.example/.well-known/oauth-authorization-server/p\"".into();
            let doc = UnregisteredJson::new(&ep);
            for reason in [
                UnknownReason::Unknown,
                UnknownReason::Expired,
                UnknownReason::RegistrationDisabled,
                UnknownReason::CimdFailed(Failure::ClientIdMismatch {
                    found: "\"<x>\"".into(),
                }),
            ] {
                for (client_id, state) in [
                    ("c", None),
                    ("<script>\"\\\u{1}é", Some("s\"<\n\u{7f}")),
                    ("", Some("")),
                ] {
                    let view = Unregistered {
                        client_id,
                        state,
                        reason: &reason,
                        redirect_uri: None,
                        retry_query: "",
                    };
                    let description = unregistered_description(&reason, registration);
                    let expected = Expected {
                        authorization_server_metadata: &ep.metadata,
                        cimd_error: match &reason {
                            UnknownReason::CimdFailed(why) => Some(why.code()),
                            _ => None,
                        },
                        client_id,
                        error: "invalid_client",
                        error_description: &description,
                        reason: reason.as_str(),
                        registration_endpoint: registration,
                        state,
                    };

                    let ours = String::from_utf8(doc.body(&view)).expect("UTF-8");

                    assert_eq!(ours, serde_json::to_string(&expected).expect("serialises"));
                }
            }
        }
    }
}
