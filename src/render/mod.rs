//! Turns outcomes into responses. `Json` and `Html` each know every screen; the route guard
//! chose which one before the handler ran. Every status code, every error body and the
//! `Cache-Control`, `WWW-Authenticate`, `Retry-After`, `Link` and cookie headers are decided
//! here, from a narrow page context built once at start-up.

pub mod cookies;
pub mod gate;
pub mod html;
pub mod json;
pub mod pages;

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};

use crate::flows::authorization::{Answer, Next};
use crate::flows::{Kind, Problem};
use crate::metadata::Endpoints;
use crate::oauth::authorize::UnknownReason;
use crate::settings::Settings;
use pages::{Chrome, Escaped};

pub use html::Html;
pub use json::Json;

/// `Content-Type` of every JSON answer. Header values used on every request are constants,
/// so answering does not validate and copy the same text each time.
pub const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");
/// CORS for endpoints that browser-based MCP clients call (docs/behaviour.md §9).
pub const CORS_ALLOW_ORIGIN: HeaderValue = HeaderValue::from_static("*");
pub const CORS_EXPOSE: HeaderValue =
    HeaderValue::from_static("WWW-Authenticate, Link, Retry-After");
pub const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
pub const NO_CACHE: HeaderValue = HeaderValue::from_static("no-cache");
pub const VARY_ACCEPT: HeaderValue = HeaderValue::from_static("Accept");

/// What the renderers know about the server: its URLs, its branding, the registration form's
/// settings, and the parts of frequent answers built once. Built at start-up from the
/// settings and the metadata; renderers never see the application state.
pub struct Page {
    pub endpoints: Endpoints,
    pub chrome: Chrome,
    /// `branding.name`, as text.
    pub name: String,
    /// Whether pages offer the registration form (`registration.enabled` and `.form`).
    pub form_shown: bool,
    /// Whether the form asks for the initial access token.
    pub needs_initial_token: bool,
    /// `Link` to the registration endpoint and the metadata document.
    pub link: HeaderValue,
    pub json: json::UnregisteredJson,
    pub html: html::UnregisteredTexts,
    pub cookies: cookies::Cookies,
    /// `scopes.descriptions`.
    pub scope_descriptions: std::collections::HashMap<String, String>,
    /// The identity providers' ids and names, for the sign-in page's buttons.
    pub providers: Vec<(String, String)>,
    /// Whether the sign-in page shows the password form (password mode, or password users
    /// beside the providers).
    pub password_form: bool,
}

impl Page {
    pub fn new(settings: &Settings, ep: &Endpoints) -> Self {
        let static_base = format!("{}/static", ep.base_path);
        let chrome = Chrome {
            name: Escaped::new(&settings.branding.name),
            css: Escaped::new(&format!("{static_base}/doorman.css")),
            logo: Escaped::new(&format!("{static_base}/{}", settings.branding.logo)),
            favicon: Escaped::new(&format!("{static_base}/favicon.svg")),
            docs: Escaped::new(&ep.documentation),
            metadata: Escaped::new(&ep.metadata),
        };
        let form_shown = settings.registration.enabled && settings.registration.form;
        Self {
            // The issuer is a checked URL, so the header value is valid; an empty one otherwise.
            link: HeaderValue::try_from(link_header(ep)).unwrap_or(HeaderValue::from_static("")),
            json: json::UnregisteredJson::new(ep),
            html: html::UnregisteredTexts::new(&settings.branding.name, form_shown),
            cookies: cookies::Cookies::new(ep, settings.login.session_ttl),
            chrome,
            name: settings.branding.name.clone(),
            form_shown,
            needs_initial_token: !settings.registration.initial_access_token.is_empty(),
            scope_descriptions: settings.scopes.descriptions.clone(),
            endpoints: ep.clone(),
            providers: settings
                .login
                .providers
                .iter()
                .map(|p| (p.id.clone(), p.name.clone()))
                .collect(),
            password_form: settings.login.mode != crate::settings::LoginMode::Upstream
                || !settings.login.users.is_empty(),
        }
    }
}

/// `Link` to the registration endpoint (the relation other MCP servers use) and to the
/// metadata document (docs/behaviour.md §5.2).
pub fn link_header(ep: &Endpoints) -> String {
    const REGISTRATION: &str = ">; rel=\"http://oauth.net/core/2.1/#registration\", <";
    const METADATA: &str = ">; rel=\"oauth-authorization-server\"";
    let reg = ep.registration.as_deref();
    let mut link = String::with_capacity(
        reg.map_or(0, |r| r.len() + REGISTRATION.len()) + ep.metadata.len() + METADATA.len() + 1,
    );
    link.push('<');
    if let Some(reg) = reg {
        link.push_str(reg);
        link.push_str(REGISTRATION);
    }
    link.push_str(&ep.metadata);
    link.push_str(METADATA);
    link
}

/// The unregistered-client answer (docs/behaviour.md §5). Borrows from the request: the JSON
/// renderer uses only a few fields, so nothing is copied for it.
#[derive(Debug, Clone)]
pub struct Unregistered<'a> {
    pub client_id: &'a str,
    pub state: Option<&'a str>,
    pub reason: &'a UnknownReason,
    /// The request's redirect_uri, to prefill the registration form.
    pub redirect_uri: Option<&'a str>,
    /// The original authorization query, so a new registration can retry it ("" when too long).
    pub retry_query: &'a str,
}

/// The parts of the authorization request an answer shows back.
#[derive(Debug, Clone, Copy)]
pub struct Echo<'a> {
    pub client_id: Option<&'a str>,
    pub state: Option<&'a str>,
    pub redirect_uri: Option<&'a str>,
    pub retry_query: &'a str,
}

/// One way of answering; handlers are generic over it (`get_authorize::<Html>`).
pub trait Renderer: 'static {
    /// Whether this renderer produces HTML (for metrics).
    const HTML: bool;
    fn unregistered(page: &Page, view: &Unregistered<'_>) -> HttpResponse;
    fn problem(page: &Page, problem: &Problem) -> HttpResponse;

    /// An authorization step's answer. Only a person can sign in and approve, so pages and
    /// redirects are the same whatever the Accept header said; the errors answered directly
    /// are this renderer's.
    fn authorize(page: &Page, answer: &Answer, echo: Echo<'_>) -> HttpResponse {
        match &answer.next {
            Next::Unregistered(reason) => Self::unregistered(
                page,
                &Unregistered {
                    client_id: echo.client_id.unwrap_or_default(),
                    state: echo.state,
                    reason,
                    redirect_uri: echo.redirect_uri,
                    retry_query: echo.retry_query,
                },
            ),
            Next::Refused(p) | Next::Stopped { problem: p, .. } if !Self::HTML => {
                Self::problem(page, p)
            }
            Next::Refused(p) => Self::problem(page, p),
            _ => Html::answer(page, answer),
        }
    }
}

/// The status of a problem, and the `WWW-Authenticate` challenge that goes with it.
pub fn status(kind: Kind) -> (StatusCode, Option<HeaderValue>) {
    match kind {
        Kind::Request => (StatusCode::BAD_REQUEST, None),
        Kind::Client { basic } => (
            StatusCode::UNAUTHORIZED,
            basic.then(|| HeaderValue::from_static("Basic realm=\"doorman\", charset=\"UTF-8\"")),
        ),
        Kind::Token => (
            StatusCode::UNAUTHORIZED,
            Some(HeaderValue::from_static("Bearer error=\"invalid_token\"")),
        ),
        Kind::Forbidden => (StatusCode::FORBIDDEN, None),
        Kind::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, None),
        Kind::TooMany { .. } => (StatusCode::TOO_MANY_REQUESTS, None),
        Kind::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, None),
        Kind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, None),
        Kind::Upstream => (StatusCode::BAD_GATEWAY, None),
    }
}

/// Seconds to wait before retrying, for the kinds that have one.
pub fn retry_after(kind: Kind) -> Option<u64> {
    match kind {
        Kind::TooMany { retry_after } | Kind::Unavailable { retry_after } => Some(retry_after),
        _ => None,
    }
}

/// A response with `headers` and `body`, built without `HttpResponseBuilder`: for the answers
/// served most often, whose header values are all ready-made.
pub fn answer<const N: usize>(
    status: StatusCode,
    headers: [(HeaderName, HeaderValue); N],
    body: impl Into<actix_web::web::Bytes>,
) -> HttpResponse {
    // `Bytes` is a body `BoxBody` holds without boxing it again.
    let body = actix_web::body::BoxBody::new(body.into());
    let mut res = HttpResponse::with_body(status, body);
    let map = res.headers_mut();
    map.reserve(N);
    for (name, value) in headers {
        map.insert(name, value);
    }
    res
}

/// `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 §5.1), on every answer that
/// carries something a cache must not keep.
pub fn no_store(res: &mut HttpResponse) {
    let headers = res.headers_mut();
    headers.insert(header::CACHE_CONTROL, NO_STORE);
    headers.insert(header::PRAGMA, NO_CACHE);
}

/// The sentence of the unregistered-client JSON `error_description` (docs/behaviour.md §5.3).
pub fn unregistered_description(
    reason: &UnknownReason,
    registration_endpoint: Option<&str>,
) -> String {
    match (reason, registration_endpoint) {
        // The document's publisher must fix it: nothing here suggests registering.
        (UnknownReason::CimdFailed(why), _) => {
            format!("The client's metadata document could not be used: {why}.")
        }
        (UnknownReason::RegistrationDisabled, _) | (_, None) => {
            "The client is not registered with this authorization server, and this server does not accept new registrations; ask its operator to register the client.".to_owned()
        }
        (UnknownReason::Expired, Some(ep)) => format!(
            "The client's registration with this authorization server has expired; register it again at {ep} and retry the authorization with the new client_id."
        ),
        (UnknownReason::Unknown, Some(ep)) => format!(
            "The client is not registered with this authorization server; register it at {ep} and retry the authorization with the new client_id."
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_names_the_registration_endpoint_then_the_metadata() {
        let settings = crate::settings::Settings::defaults().expect("default settings");
        let mut ep = crate::metadata::Metadata::build(&settings).endpoints;
        ep.registration = Some("https://as.example/register".into());
        ep.metadata = "https://as.example/.well-known/oauth-authorization-server".into();

        assert_eq!(
            link_header(&ep),
            "<https://as.example/register>; rel=\"http://oauth.net/core/2.1/#registration\", \
             <https://as.example/.well-known/oauth-authorization-server>; rel=\"oauth-authorization-server\""
        );
        ep.registration = None;
        assert_eq!(
            link_header(&ep),
            "<https://as.example/.well-known/oauth-authorization-server>; rel=\"oauth-authorization-server\""
        );
    }
}
