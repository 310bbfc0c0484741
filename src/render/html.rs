//! The HTML renderer: styled pages for people, with the security headers of BEHAVIOUR §5.4.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, HttpResponseBuilder};
use sailfish::TemplateSimple;

use super::pages::{ErrorPage, RegisterForm, UnregisteredPage};
use super::{Problem, Renderer, Unregistered};
use crate::AppState;
use crate::http::common::{link_header, no_store};
use crate::oauth::authorize::UnknownReason;
use crate::oauth::errors::ErrorCode;

pub struct Html;

pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";
pub const CSRF_COOKIE: &str = "doorman_csrf";

/// A response builder carrying every header an HTML page needs (constant values, so nothing
/// is validated or copied per page).
pub fn builder(status: StatusCode) -> HttpResponseBuilder {
    const HEADERS: [(HeaderName, HeaderValue); 6] = [
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (header::VARY, HeaderValue::from_static("Accept")),
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        ),
    ];
    let mut res = HttpResponse::build(status);
    no_store(&mut res);
    for pair in HEADERS {
        res.insert_header(pair);
    }
    res
}

/// Renders a template into a finished response; a template failure is a plain 500 page
/// (it cannot happen with the compiled templates, but it must never panic).
pub fn page(mut res: HttpResponseBuilder, tpl: impl TemplateSimple) -> HttpResponse {
    match tpl.render_once() {
        Ok(body) => res.body(body),
        Err(e) => {
            log::error!("template rendering failed: {e}");
            builder(StatusCode::INTERNAL_SERVER_ERROR)
                .body("<!DOCTYPE html><title>Error</title><p>The page could not be rendered.</p>")
        }
    }
}

/// The double-submit CSRF cookie that accompanies every form (SameSite=Strict, HttpOnly).
pub fn csrf_cookie(state: &AppState, token: &str) -> Cookie<'static> {
    let ep = &state.meta.endpoints;
    let path = if ep.base_path.is_empty() {
        "/".to_owned()
    } else {
        ep.base_path.clone()
    };
    Cookie::build(CSRF_COOKIE, token.to_owned())
        .path(path)
        .http_only(true)
        .secure(ep.issuer.starts_with("https://"))
        .same_site(SameSite::Strict)
        .max_age(actix_web::cookie::time::Duration::hours(2))
        .finish()
}

/// An empty registration form with a fresh CSRF token.
pub fn new_form(state: &AppState, csrf: String) -> RegisterForm {
    RegisterForm {
        action: state
            .meta
            .endpoints
            .registration
            .clone()
            .unwrap_or_default(),
        csrf,
        needs_initial_token: !state.settings.registration.initial_access_token.is_empty(),
        ..Default::default()
    }
}

/// Whether people may register clients through the HTML form.
pub fn form_enabled(state: &AppState) -> bool {
    state.settings.registration.enabled && state.settings.registration.form
}

impl Renderer for Html {
    const HTML: bool = true;

    fn unregistered(state: &AppState, view: &Unregistered<'_>) -> HttpResponse {
        let ep = &state.meta.endpoints;
        let name = &state.settings.branding.name;
        let (headline, explanation, mut steps) = match &view.reason {
            UnknownReason::Unknown => (
                "This application is not registered here",
                format!("An application asked {name} to sign you in, but {name} does not know its client ID. It may never have registered, or its registration was lost."),
                vec![
                    "Go back to the application and connect or sign in again: most MCP clients register themselves anew when they retry.".to_owned(),
                    "If that does not help, register the application below and retry the sign-in with the new client ID.".to_owned(),
                    "If it keeps happening, tell the application's developer that this server does not recognise its client ID.".to_owned(),
                ],
            ),
            UnknownReason::Expired => (
                "This application's registration has expired",
                format!("An application asked {name} to sign you in, but its registration with {name} has lapsed."),
                vec![
                    "Go back to the application and connect again: it can register itself anew.".to_owned(),
                    "Or register it again below and retry the sign-in with the new client ID.".to_owned(),
                ],
            ),
            UnknownReason::CimdFailed(why) => (
                "This application's metadata could not be read",
                format!("The application identifies itself by a web address, but {name} could not use the document found there: {why}."),
                vec![
                    "Try again in a moment: the document may have been briefly unreachable.".to_owned(),
                    "If it keeps failing, tell the application's developer what went wrong.".to_owned(),
                    "Or register the application below and retry the sign-in with the new client ID.".to_owned(),
                ],
            ),
            UnknownReason::RegistrationDisabled => (
                "This application is not registered here",
                format!("An application asked {name} to sign you in, but it is not registered, and {name} does not accept new registrations."),
                vec![
                    "Ask the operator of this server to register the application, and give them the client ID shown here.".to_owned(),
                    "Then connect again from the application.".to_owned(),
                ],
            ),
        };
        let show_form = form_enabled(state) && view.reason != UnknownReason::RegistrationDisabled;
        if !show_form {
            steps.retain(|s| !s.contains("below"));
        }
        let csrf = crate::oauth::secret::random_token();
        let form = show_form.then(|| RegisterForm {
            redirect_uris: view.redirect_uri.unwrap_or_default().to_owned(),
            retry: view.retry_query.to_owned(),
            ..new_form(state, csrf.clone())
        });
        let mut res = builder(StatusCode::BAD_REQUEST);
        res.insert_header((header::LINK, link_header(ep)));
        if show_form {
            res.cookie(csrf_cookie(state, &csrf));
        }
        page(
            res,
            UnregisteredPage {
                c: &state.chrome,
                title: headline,
                headline,
                explanation,
                client_id: view.client_id,
                steps,
                registration_doc: ep.registration.as_ref().map(|_| ep.documentation.as_str()),
                form,
            },
        )
    }

    fn problem(state: &AppState, p: &Problem) -> HttpResponse {
        let (title, steps): (&str, Vec<String>) = match p.error.code {
            ErrorCode::TemporarilyUnavailable => (
                "Temporarily unavailable",
                vec!["Wait a few seconds, then reload this page.".to_owned()],
            ),
            ErrorCode::InvalidRequest if p.client_id.is_some() => (
                "The sign-in request cannot be used",
                vec![
                    "Go back to the application and start the sign-in again.".to_owned(),
                    "If it keeps failing, tell the application's developer the message above."
                        .to_owned(),
                ],
            ),
            ErrorCode::InvalidRequest => (
                "The sign-in request is incomplete",
                vec!["Go back to the application and start the sign-in again.".to_owned()],
            ),
            ErrorCode::ServerError => ("Sign-in is not available", Vec::new()),
            _ => ("The request could not be completed", Vec::new()),
        };
        let mut res = builder(p.status);
        if let Some(secs) = p.retry_after {
            res.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        page(
            res,
            ErrorPage {
                c: &state.chrome,
                title,
                message: &p.error.description,
                error_code: p.error.code.as_str(),
                client_id: p.client_id.as_deref(),
                steps,
            },
        )
    }
}
