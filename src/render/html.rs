//! The HTML renderer: styled pages for people, with the security headers of BEHAVIOUR §5.4.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, HttpResponseBuilder};
use sailfish::TemplateSimple;

use super::json;
use super::pages::{ErrorPage, Escaped, RegisterForm, UnregisteredPage};
use super::{Problem, Renderer, Unregistered};
use crate::AppState;
use crate::http::common::{NO_CACHE, NO_STORE, answer};
use crate::metadata::Endpoints;
use crate::oauth::authorize::UnknownReason;
use crate::oauth::errors::ErrorCode;
use crate::settings::Settings;

pub struct Html;

pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";
pub const CSRF_COOKIE: &str = "doorman_csrf";

/// Every header an HTML page carries (BEHAVIOUR §5.4), `no-store` included; constant values,
/// so nothing is validated or copied per page.
fn page_headers() -> [(HeaderName, HeaderValue); 8] {
    [
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
        (header::CACHE_CONTROL, NO_STORE),
        (header::PRAGMA, NO_CACHE),
    ]
}

/// A response builder carrying every header an HTML page needs.
pub fn builder(status: StatusCode) -> HttpResponseBuilder {
    let mut res = HttpResponse::build(status);
    for pair in page_headers() {
        res.insert_header(pair);
    }
    res
}

/// The plain 500 page for a template failure (it cannot happen with the compiled templates,
/// but it must never panic).
fn page_failed(e: sailfish::RenderError) -> HttpResponse {
    log::error!("template rendering failed: {e}");
    builder(StatusCode::INTERNAL_SERVER_ERROR)
        .body("<!DOCTYPE html><title>Error</title><p>The page could not be rendered.</p>")
}

/// Renders a template into a finished response.
pub fn page(mut res: HttpResponseBuilder, tpl: impl TemplateSimple) -> HttpResponse {
    match tpl.render_once() {
        Ok(body) => res.body(body),
        Err(e) => page_failed(e),
    }
}

/// The double-submit CSRF cookie that accompanies every form (SameSite=Strict, HttpOnly).
pub fn csrf_cookie(ep: &Endpoints, token: &str) -> Cookie<'static> {
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
pub fn new_form(state: &AppState, csrf: String) -> RegisterForm<'_> {
    RegisterForm {
        action: state
            .meta
            .endpoints
            .registration
            .as_deref()
            .unwrap_or_default()
            .into(),
        csrf,
        needs_initial_token: !state.settings.registration.initial_access_token.is_empty(),
        ..Default::default()
    }
}

/// Whether people may register clients through the HTML form.
pub fn form_enabled(state: &AppState) -> bool {
    form_allowed(&state.settings)
}

fn form_allowed(settings: &Settings) -> bool {
    settings.registration.enabled && settings.registration.form
}

/// What the unregistered page says for one reason.
pub struct ReasonTexts {
    pub headline: Escaped,
    pub explanation: Escaped,
    pub steps: Vec<Escaped>,
}

/// The page's texts for `reason`, without the steps that point at the form when it is not shown.
fn reason_texts(reason: &UnknownReason, name: &str, show_form: bool) -> ReasonTexts {
    let (headline, explanation, mut steps) = match reason {
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
    if !show_form {
        steps.retain(|s| !s.contains("below"));
    }
    ReasonTexts {
        headline: Escaped::new(headline),
        explanation: Escaped::new(&explanation),
        steps: steps.iter().map(|s| Escaped::new(s)).collect(),
    }
}

/// Whether the unregistered page offers the registration form for `reason`.
fn shows_form(settings: &Settings, reason: &UnknownReason) -> bool {
    form_allowed(settings) && *reason != UnknownReason::RegistrationDisabled
}

/// The parts of the unregistered page that depend only on settings, built once: the texts for
/// the reasons that carry no detail (by `json::prebuilt_index`), and the CSRF cookie's
/// attributes as the cookie crate writes them.
pub struct UnregisteredTexts {
    reasons: [ReasonTexts; 3],
    /// `; HttpOnly; SameSite=Strict; …`: the `Set-Cookie` value after `doorman_csrf=TOKEN`.
    csrf_attributes: String,
}

impl UnregisteredTexts {
    pub fn new(settings: &Settings, ep: &Endpoints) -> Self {
        let name = &settings.branding.name;
        let texts =
            |reason: UnknownReason| reason_texts(&reason, name, shows_form(settings, &reason));
        let cookie = csrf_cookie(ep, "").encoded().to_string();
        Self {
            reasons: [
                texts(UnknownReason::Unknown),
                texts(UnknownReason::Expired),
                texts(UnknownReason::RegistrationDisabled),
            ],
            csrf_attributes: cookie[cookie.find(';').unwrap_or(cookie.len())..].to_owned(),
        }
    }

    /// `Set-Cookie` for a fresh CSRF token (base64url: nothing in it needs encoding).
    fn csrf_set_cookie(&self, token: &str) -> Option<HeaderValue> {
        // Pieces pushed into one buffer: `format!` costs several times this on every page.
        let mut value =
            String::with_capacity(CSRF_COOKIE.len() + 1 + token.len() + self.csrf_attributes.len());
        value.push_str(CSRF_COOKIE);
        value.push('=');
        value.push_str(token);
        value.push_str(&self.csrf_attributes);
        HeaderValue::try_from(value).ok()
    }
}

impl Renderer for Html {
    const HTML: bool = true;

    fn unregistered(state: &AppState, view: &Unregistered<'_>) -> HttpResponse {
        let ep = &state.meta.endpoints;
        let prebuilt = &state.answers.html;
        let computed;
        let texts = match json::prebuilt_index(&view.reason) {
            Some(i) => &prebuilt.reasons[i],
            None => {
                let show = shows_form(&state.settings, &view.reason);
                computed = reason_texts(&view.reason, &state.settings.branding.name, show);
                &computed
            }
        };
        let show_form = shows_form(&state.settings, &view.reason);
        // 128 random bits, as for any CSRF token; the page is shown far more often than a
        // form is sent, and a shorter token is quicker to make.
        let csrf = crate::oauth::secret::random_id();
        let cookie = if show_form {
            prebuilt.csrf_set_cookie(&csrf)
        } else {
            None
        };
        let form = show_form.then(|| RegisterForm {
            redirect_uris: view.redirect_uri.unwrap_or_default().into(),
            retry: view.retry_query.into(),
            ..new_form(state, csrf)
        });
        let page = UnregisteredPage {
            c: &state.chrome,
            title: &texts.headline,
            headline: &texts.headline,
            explanation: &texts.explanation,
            client_id: view.client_id,
            steps: &texts.steps,
            registration_doc: ep.registration.as_ref().map(|_| ep.documentation.as_str()),
            form,
        };
        let body = match page.render_once() {
            Ok(body) => body,
            Err(e) => return page_failed(e),
        };
        let mut res = answer(StatusCode::BAD_REQUEST, page_headers(), body);
        let headers = res.headers_mut();
        headers.insert(header::LINK, state.answers.link.clone());
        if let Some(cookie) = cookie {
            headers.append(header::SET_COOKIE, cookie);
        }
        res
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The prebuilt `Set-Cookie` is the cookie crate's own rendering of the CSRF cookie, on
    /// http and https issuers, at the root and under a path.
    #[test]
    fn the_prebuilt_csrf_cookie_is_the_cookie_crates() {
        for issuer in ["http://127.0.0.1:8080", "https://as.example/auth"] {
            let mut settings = Settings::defaults().expect("default settings");
            settings.issuer = issuer.to_owned();
            let ep = crate::metadata::Metadata::build(&settings).endpoints;
            let texts = UnregisteredTexts::new(&settings, &ep);
            let token = crate::oauth::secret::random_token();

            let ours = texts.csrf_set_cookie(&token).expect("valid header");

            assert_eq!(
                ours.to_str().expect("ASCII"),
                csrf_cookie(&ep, &token).encoded().to_string()
            );
        }
    }
}
