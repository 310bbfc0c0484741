//! Turns outcomes into responses. `Json` and `Html` each know every screen; the route guard
//! chose which one before the handler ran.

pub mod html;
pub mod json;
pub mod pages;

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::HeaderValue;

use crate::AppState;
use crate::oauth::authorize::UnknownReason;
use crate::oauth::errors::OAuthError;

pub use html::Html;
pub use json::Json;

/// The parts of the unregistered-client answers that depend only on settings, built once at
/// start-up (the answer people and clients meet most, so it should cost little).
pub struct Answers {
    /// `Link` to the registration endpoint and the metadata (`http::common::link_header`).
    pub link: HeaderValue,
    pub json: json::UnregisteredJson,
    pub html: html::UnregisteredTexts,
}

impl Answers {
    pub fn new(settings: &crate::settings::Settings, ep: &crate::metadata::Endpoints) -> Self {
        let link = crate::http::common::link_header(ep);
        Self {
            // The issuer is a checked URL, so the header value is valid; an empty one otherwise.
            link: HeaderValue::try_from(link).unwrap_or(HeaderValue::from_static("")),
            json: json::UnregisteredJson::new(ep),
            html: html::UnregisteredTexts::new(settings, ep),
        }
    }
}

/// An error answered directly (never redirected).
#[derive(Debug, Clone)]
pub struct Problem {
    pub status: StatusCode,
    pub error: OAuthError,
    pub client_id: Option<String>,
    pub state: Option<String>,
    pub retry_after: Option<u64>,
}

impl Problem {
    pub fn new(status: StatusCode, error: OAuthError) -> Self {
        Self {
            status,
            error,
            client_id: None,
            state: None,
            retry_after: None,
        }
    }
}

/// The unregistered-client answer (BEHAVIOUR §5). Borrows from the request: the JSON renderer
/// uses only a few fields, so nothing is copied for it.
#[derive(Debug, Clone)]
pub struct Unregistered<'a> {
    pub client_id: &'a str,
    pub state: Option<&'a str>,
    pub reason: UnknownReason,
    /// The request's redirect_uri, to prefill the registration form.
    pub redirect_uri: Option<&'a str>,
    /// The original authorization query, so a new registration can retry it ("" when too long).
    pub retry_query: &'a str,
}

/// One way of answering; handlers are generic over it (`get_authorize::<Html>`).
pub trait Renderer: 'static {
    /// Whether this renderer produces HTML (some handlers set cookies only for pages).
    const HTML: bool;
    fn unregistered(state: &AppState, view: &Unregistered<'_>) -> HttpResponse;
    fn problem(state: &AppState, problem: &Problem) -> HttpResponse;
}

/// The sentence of the unregistered-client JSON `error_description` (BEHAVIOUR §5.3).
pub fn unregistered_description(
    reason: &UnknownReason,
    registration_endpoint: Option<&str>,
) -> String {
    match (reason, registration_endpoint) {
        (UnknownReason::RegistrationDisabled, _) | (_, None) => {
            "The client is not registered with this authorization server, and this server does not accept new registrations; ask its operator to register the client.".to_owned()
        }
        (UnknownReason::Expired, Some(ep)) => format!(
            "The client's registration with this authorization server has expired; register it again at {ep} and retry the authorization with the new client_id."
        ),
        (UnknownReason::CimdFailed(why), Some(ep)) => format!(
            "The client's metadata document could not be used ({why}); fix it, or register the client at {ep} and retry the authorization with the new client_id."
        ),
        (UnknownReason::Unknown, Some(ep)) => format!(
            "The client is not registered with this authorization server; register it at {ep} and retry the authorization with the new client_id."
        ),
    }
}
