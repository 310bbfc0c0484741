//! The HTML renderer: styled pages for people, with the security headers of
//! docs/behaviour.md §5.4.

use actix_web::HttpResponse;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::{StatusCode, header};
use sailfish::TemplateSimple;

use super::pages::{
    AccountPage, AppLine, ConsentPage, ContinuePage, ErrorPage, Escaped, LoginPage, RegisterForm,
    RegisterPage, RegisteredPage, ScopeLine, SignedOutPage, UnregisteredPage,
};
use super::{
    NO_CACHE, NO_STORE, Page, Renderer, Unregistered, VARY_ACCEPT, answer, json, retry_after,
    status,
};
use crate::flows::account;
use crate::flows::authorization::{Answer, Next, Prompt, Redirect, SignInFailure, Step};
use crate::flows::clients::{FormCreated, FormFields, Refusal};
use crate::flows::{Kind, Problem};
use crate::oauth::authorize::UnknownReason;
use crate::oauth::cimd;
use crate::oauth::errors::ErrorCode;
use crate::oauth::register::Field;
use crate::records::{Client, RegisteredBy};

pub struct Html;

pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Every header an HTML page carries (docs/behaviour.md §5.4), `no-store` included; constant
/// values, so nothing is validated or copied per page.
pub(super) fn page_headers() -> [(HeaderName, HeaderValue); 8] {
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
        (header::VARY, VARY_ACCEPT),
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        ),
        (header::CACHE_CONTROL, NO_STORE),
        (header::PRAGMA, NO_CACHE),
    ]
}

/// The plain 500 page for a template failure (it cannot happen with the compiled templates,
/// but it must never panic).
fn page_failed(e: sailfish::RenderError) -> HttpResponse {
    log::error!("template rendering failed: {e}");
    answer(
        StatusCode::INTERNAL_SERVER_ERROR,
        page_headers(),
        "<!DOCTYPE html><title>Error</title><p>The page could not be rendered.</p>",
    )
}

/// Renders a template into a finished page.
pub(super) fn render(status: StatusCode, tpl: impl TemplateSimple) -> HttpResponse {
    match tpl.render_once() {
        Ok(body) => answer(status, page_headers(), body),
        Err(e) => page_failed(e),
    }
}

fn set_cookie(res: &mut HttpResponse, cookie: Option<HeaderValue>) {
    if let Some(cookie) = cookie {
        res.headers_mut().append(header::SET_COOKIE, cookie);
    }
}

/// A redirect to a validated URI: 303 after a form, 302 otherwise.
fn redirect(location: &str, after_form: bool) -> HttpResponse {
    let Ok(location) = HeaderValue::try_from(location) else {
        return HttpResponse::BadRequest().finish();
    };
    let code = if after_form {
        StatusCode::SEE_OTHER
    } else {
        StatusCode::FOUND
    };
    answer(
        code,
        [
            (header::LOCATION, location),
            (header::CACHE_CONTROL, NO_STORE),
            (header::PRAGMA, NO_CACHE),
        ],
        "",
    )
}

/// An empty registration form with a fresh CSRF token.
fn new_form(page: &Page, csrf: String) -> RegisterForm<'_> {
    RegisterForm {
        action: page
            .endpoints
            .registration
            .as_deref()
            .unwrap_or_default()
            .into(),
        csrf,
        needs_initial_token: page.needs_initial_token,
        ..Default::default()
    }
}

/// What the unregistered page says for one reason.
pub struct ReasonTexts {
    pub headline: Escaped,
    pub explanation: Escaped,
    pub steps: Vec<Escaped>,
}

/// The page's texts for `reason`, without the steps that point at the form when it is not shown.
/// `client_id` is the one sent: a metadata document failure names its host.
fn reason_texts(
    reason: &UnknownReason,
    name: &str,
    show_form: bool,
    client_id: &str,
) -> ReasonTexts {
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
        // Only the document's publisher can fix it: no registration step, no form.
        UnknownReason::CimdFailed(why) => {
            let host = cimd::display_host(client_id).unwrap_or_else(|| client_id.to_owned());
            let code = why.code();
            let steps = if why.is_transient() {
                vec![
                    format!("Try again in a few minutes: {host} may be briefly unreachable."),
                    format!("If it keeps failing, tell the makers of the application from {host} what went wrong (error “{code}”)."),
                ]
            } else {
                vec![
                    format!("Tell the makers of the application from {host} what went wrong (error “{code}”): only they can fix the document."),
                    "When they have, connect again from the application.".to_owned(),
                ]
            };
            (
                "This application could not be identified",
                format!("The application says it is described by a document at {host}, but {name} could not use that document: {why}."),
                steps,
            )
        }
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

/// Whether the unregistered page offers the registration form for `reason`: not when the
/// operator must act, nor when the client's metadata document failed (registering would not
/// fix the document).
fn shows_form(form_shown: bool, reason: &UnknownReason) -> bool {
    form_shown
        && !matches!(
            reason,
            UnknownReason::RegistrationDisabled | UnknownReason::CimdFailed(_)
        )
}

/// The texts of the unregistered page for the reasons that carry no detail (by
/// `json::prebuilt_index`), escaped once at start-up.
pub struct UnregisteredTexts {
    reasons: [ReasonTexts; 3],
}

impl UnregisteredTexts {
    pub fn new(name: &str, form_shown: bool) -> Self {
        let texts = |reason: UnknownReason| {
            let show = shows_form(form_shown, &reason);
            reason_texts(&reason, name, show, "")
        };
        Self {
            reasons: [
                texts(UnknownReason::Unknown),
                texts(UnknownReason::Expired),
                texts(UnknownReason::RegistrationDisabled),
            ],
        }
    }
}

/// The CSP source that admits the redirect URI. Chrome and Safari check `form-action` against
/// the redirect that answers a form submission too (w3c/webappsec-csp#8), so with
/// `form-action 'self'` alone the 303 to the client after Approve or Deny is blocked.
fn redirect_source(redirect_uri: &str) -> Option<String> {
    let url = url::Url::parse(redirect_uri).ok()?;
    let scheme = url.scheme();
    // A host is named only when it is a plain DNS name or IPv4 address, so nothing from a
    // registration can add a directive; otherwise the scheme alone (`cursor:`) is admitted.
    let plain_host = url.host_str().filter(|h| {
        h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    });
    match plain_host {
        Some(host) if matches!(scheme, "http" | "https") => Some(match url.port() {
            Some(port) => format!("{scheme}://{host}:{port}"),
            None => format!("{scheme}://{host}"),
        }),
        _ => Some(format!("{scheme}:")),
    }
}

/// The consent page's CSP: `form-action` admits the redirect URI's origin, and `img-src` the
/// origin of the client's logo when one is shown.
fn consent_csp(redirect_uri: &str, logo: Option<&str>) -> String {
    let mut csp = match redirect_source(redirect_uri) {
        Some(src) => CSP.replace("form-action 'self'", &format!("form-action 'self' {src}")),
        None => CSP.to_owned(),
    };
    if let Some(src) = logo.and_then(redirect_source).filter(|s| s.contains("://")) {
        csp = csp.replace(
            "img-src 'self' data:",
            &format!("img-src 'self' data: {src}"),
        );
    }
    csp
}

/// The logo of a metadata-document client, shown only when it is served from the host that
/// publishes the document (the only host the person can trust, docs/behaviour.md §12), with
/// the same scheme and port.
fn document_logo(client: &Client) -> Option<&str> {
    if client.registered_by != RegisteredBy::Document {
        return None;
    }
    let logo = client.metadata.logo_uri.as_deref()?;
    let (l, id) = (
        url::Url::parse(logo).ok()?,
        url::Url::parse(&client.client_id).ok()?,
    );
    let same = l.scheme() == id.scheme()
        && l.host_str().is_some()
        && l.host_str() == id.host_str()
        && l.port_or_known_default() == id.port_or_known_default();
    same.then_some(logo)
}

/// The lines of `scopes` as a person reads them; with `before` (what was approved earlier),
/// the ones asked beyond it are marked new.
fn scope_lines(page: &Page, scopes: &[String], before: Option<&[String]>) -> Vec<ScopeLine> {
    scopes
        .iter()
        .map(|s| ScopeLine {
            name: s.clone(),
            description: page.scope_descriptions.get(s).cloned(),
            new: before.is_some_and(|b| !b.contains(s)),
        })
        .collect()
}

/// A resource as people read it: host and path (`mcp.example.com/mcp`).
fn resource_shown(resource: &str) -> String {
    match url::Url::parse(resource) {
        Ok(u) => {
            let host = u.host_str().unwrap_or_default();
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            let path = if u.path() == "/" { "" } else { u.path() };
            format!("{host}{port}{path}")
        }
        Err(_) => resource.to_owned(),
    }
}

/// A day, `2026-11-28`, from seconds since the epoch (UTC).
fn date(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| actix_web::cookie::time::OffsetDateTime::from_unix_timestamp(s).ok())
        .map_or_else(String::new, |t| t.date().to_string())
}

/// The plain 500 page for a state that cannot happen (never a panic).
fn page_failed_plain(what: &str) -> HttpResponse {
    log::error!("cannot render {what}");
    answer(
        StatusCode::INTERNAL_SERVER_ERROR,
        page_headers(),
        "<!DOCTYPE html><title>Error</title><p>The page could not be rendered.</p>",
    )
}

/// Where the person goes after deciding, as shown: scheme and host.
fn redirect_host(redirect_uri: &str) -> String {
    url::Url::parse(redirect_uri)
        .map(|u| match u.host_str() {
            Some(h) => format!("{}://{h}", u.scheme()),
            None => format!("{}:", u.scheme()),
        })
        .unwrap_or_else(|_| redirect_uri.to_owned())
}

impl Html {
    /// An authorization step's answer as the person's browser gets it.
    pub fn answer(page: &Page, answer: &Answer) -> HttpResponse {
        let mut res = match &answer.next {
            Next::Refused(p) => Self::problem(page, p),
            Next::Unregistered(reason) => Self::problem(
                page,
                &Problem::new(
                    Kind::Request,
                    ErrorCode::InvalidClient,
                    crate::render::unregistered_description(
                        reason,
                        page.endpoints.registration.as_deref(),
                    ),
                ),
            ),
            Next::Redirect(Redirect {
                location,
                after_form,
            }) => redirect(location, *after_form),
            Next::Continue(location) => redirect(location, true),
            Next::Ask(prompt) => Self::prompt(page, prompt),
            Next::Stopped {
                problem,
                return_to,
                host,
            } => Self::error_page(page, problem, Some((return_to, host))),
            Next::Upstream { location, binding } => {
                let mut res = redirect(location, false);
                if let Some(b) = binding {
                    set_cookie(&mut res, page.cookies.upstream(b));
                }
                res
            }
            Next::Resume(location) => {
                let mut res = render(
                    StatusCode::OK,
                    ContinuePage {
                        c: &page.chrome,
                        title: "Signed in",
                        location,
                    },
                );
                // A navigation the page itself starts (docs/behaviour.md §14), like a meta
                // refresh but without markup; the link is there for anyone it does not move.
                if let Ok(refresh) = HeaderValue::try_from(format!("0; url={location}")) {
                    res.headers_mut().insert(header::REFRESH, refresh);
                }
                set_cookie(&mut res, page.cookies.upstream_gone());
                res
            }
            Next::Failed(f) => Self::page_of(
                page,
                &f.problem,
                f.title,
                Vec::new(),
                None,
                f.retry.as_deref(),
            ),
        };
        if let Some(session) = &answer.session {
            set_cookie(&mut res, page.cookies.session(&session.cookie));
        }
        if let Some(binding) = &answer.browser {
            set_cookie(&mut res, page.cookies.browser(binding));
        }
        res
    }

    /// The sign-in or the consent page.
    fn prompt(page: &Page, prompt: &Prompt) -> HttpResponse {
        let client = prompt.client.as_ref();
        match &prompt.step {
            Step::SignIn { username, failure } => {
                let action = format!("{}/login", page.endpoints.issuer);
                let (code, error) = match failure {
                    Some(SignInFailure::WrongPassword) => (
                        StatusCode::UNAUTHORIZED,
                        Some("The username or password is wrong."),
                    ),
                    Some(SignInFailure::SignInAgain) => {
                        (StatusCode::OK, Some("Please sign in again."))
                    }
                    None => (StatusCode::OK, None),
                };
                let providers = page
                    .providers
                    .iter()
                    .map(|(id, name)| {
                        let href = format!(
                            "{}/login/{id}?request={}",
                            page.endpoints.issuer, prompt.request_id
                        );
                        (name.as_str(), href)
                    })
                    .collect();
                render(
                    code,
                    LoginPage {
                        c: &page.chrome,
                        title: "Sign in",
                        action: &action,
                        client_name: client.map(Client::display_name),
                        request_id: &prompt.request_id,
                        csrf: &prompt.pending.csrf,
                        username,
                        error,
                        providers,
                        password: page.password_form,
                    },
                )
            }
            Step::Consent {
                username,
                csrf,
                previous,
            } => {
                let (Some(client), Some(r)) = (client, &prompt.pending.request) else {
                    return page_failed_plain("a consent page without its request");
                };
                let action = format!("{}/consent", page.endpoints.issuer);
                let account = format!("{}/account", page.endpoints.issuer);
                let before = previous
                    .as_ref()
                    .map(|g| g.scopes.as_slice())
                    .unwrap_or(&[]);
                let scopes = scope_lines(page, &r.scopes, previous.as_ref().map(|_| before));
                let logo = document_logo(client);
                let mut res = render(
                    StatusCode::OK,
                    ConsentPage {
                        c: &page.chrome,
                        title: "Allow access?",
                        action: &action,
                        client_name: client.display_name(),
                        client_id: &client.client_id,
                        document_host: (client.registered_by == RegisteredBy::Document)
                            .then(|| cimd::display_host(&client.client_id))
                            .flatten(),
                        logo,
                        username,
                        redirect_host: redirect_host(&r.redirect_uri),
                        step_up: scopes.iter().any(|s| s.new),
                        scopes,
                        resource: r.resource.as_deref().map(resource_shown),
                        approved_on: previous.as_ref().map(|g| date(g.first_use)),
                        account: &account,
                        request_id: &prompt.request_id,
                        csrf,
                    },
                );
                if let Ok(csp) = HeaderValue::try_from(consent_csp(&r.redirect_uri, logo)) {
                    res.headers_mut()
                        .insert(header::CONTENT_SECURITY_POLICY, csp);
                }
                res
            }
        }
    }

    /// The account page, or what it answers instead (docs/behaviour.md §15).
    pub fn account(page: &Page, outcome: &account::Outcome) -> HttpResponse {
        match outcome {
            account::Outcome::Show(a) => {
                let apps = a
                    .apps
                    .iter()
                    .map(|app| AppLine {
                        client_id: app.client_id.clone(),
                        name: app
                            .name
                            .clone()
                            .unwrap_or_else(|| "A deleted application".to_owned()),
                        host: app.host.clone(),
                        scopes: scope_lines(page, &app.scopes, None),
                        resource: app.resource.as_deref().map(resource_shown),
                        first_use: date(app.first_use),
                        last_use: date(app.last_use),
                    })
                    .collect();
                let revoke = format!("{}/account/revoke", page.endpoints.issuer);
                let signout = format!("{}/account/signout", page.endpoints.issuer);
                render(
                    StatusCode::OK,
                    AccountPage {
                        c: &page.chrome,
                        title: "Your connected applications",
                        username: &a.username,
                        apps,
                        revoked: a.revoked.as_deref(),
                        csrf: &a.csrf,
                        revoke_action: &revoke,
                        signout_action: &signout,
                    },
                )
            }
            account::Outcome::SignIn(answer) => Self::answer(page, answer),
            account::Outcome::Back(location) => redirect(location, true),
            account::Outcome::SignedOut(location) => {
                let mut res = render(
                    StatusCode::OK,
                    SignedOutPage {
                        c: &page.chrome,
                        title: "Signed out",
                        account: location,
                    },
                );
                set_cookie(&mut res, page.cookies.session_removal());
                res
            }
            account::Outcome::Refused(p) => Self::problem(page, p),
        }
    }

    /// `GET /register` in a browser: the registration form on its own page.
    pub fn register_page(page: &Page) -> HttpResponse {
        if !page.form_shown {
            return Self::problem(page, &Refusal::Disabled.problem());
        }
        Self::form_page(
            page,
            StatusCode::OK,
            new_form(page, crate::secret::random_token()),
        )
    }

    fn form_page(page: &Page, code: StatusCode, form: RegisterForm<'_>) -> HttpResponse {
        let cookie = page.cookies.csrf(&form.csrf);
        let mut res = render(
            code,
            RegisterPage {
                c: &page.chrome,
                title: "Register an application",
                f: form,
            },
        );
        set_cookie(&mut res, cookie);
        res
    }

    /// The form again, with what was entered and the refusal next to its field.
    pub fn register_again(page: &Page, fields: &FormFields, refusal: &Refusal) -> HttpResponse {
        let mut form = RegisterForm {
            client_name: fields.client_name.clone(),
            redirect_uris: fields.redirect_uris.clone().into(),
            confidential: fields.confidential,
            scope: fields.scope.clone(),
            retry: fields.retry.clone().into(),
            ..new_form(page, crate::secret::random_token())
        };
        let errors = &mut form.errors;
        let code = match refusal {
            Refusal::Disabled | Refusal::Problem(_) => {
                return Self::problem(page, &refusal.problem());
            }
            Refusal::Forged => {
                errors.general = Some(refusal.problem().error.description);
                StatusCode::FORBIDDEN
            }
            Refusal::InitialToken => {
                errors.general = Some(
                    "The initial access token is missing or wrong; ask the operator of this server for it."
                        .into(),
                );
                StatusCode::UNAUTHORIZED
            }
            Refusal::Invalid(e) => {
                let message = Some(e.error.description.clone());
                match e.field {
                    Field::ClientName => errors.client_name = message,
                    Field::RedirectUris => errors.redirect_uris = message,
                    Field::ClientType => errors.client_type = message,
                    Field::Scope => errors.scope = message,
                    Field::Other => errors.general = message,
                }
                StatusCode::BAD_REQUEST
            }
        };
        Self::form_page(page, code, form)
    }

    /// The new client's credentials, shown once, and the retry link.
    pub fn registered(page: &Page, done: &FormCreated) -> HttpResponse {
        let created = &done.created;
        let client = &created.client;
        let rcu = format!("{}/register/{}", page.endpoints.issuer, client.client_id);
        render(
            StatusCode::CREATED,
            RegisteredPage {
                c: &page.chrome,
                title: "Application registered",
                client_id: &client.client_id,
                client_name: client.metadata.client_name.as_deref(),
                client_secret: created.client_secret.as_deref(),
                registration_access_token: &created.registration_access_token,
                registration_client_uri: &rcu,
                redirect_uris: &client.metadata.redirect_uris,
                retry_link: done.retry_link.clone(),
            },
        )
    }
}

impl Renderer for Html {
    const HTML: bool = true;

    fn unregistered(page: &Page, view: &Unregistered<'_>) -> HttpResponse {
        let ep = &page.endpoints;
        let computed;
        let texts = match json::prebuilt_index(view.reason) {
            Some(i) => &page.html.reasons[i],
            None => {
                let show = shows_form(page.form_shown, view.reason);
                computed = reason_texts(view.reason, &page.name, show, view.client_id);
                &computed
            }
        };
        let show_form = shows_form(page.form_shown, view.reason);
        // 128 random bits, as for any CSRF token; the page is shown far more often than a
        // form is sent, and a shorter token is quicker to make.
        let csrf = crate::secret::random_id();
        let cookie = show_form.then(|| page.cookies.csrf(&csrf)).flatten();
        let form = show_form.then(|| RegisterForm {
            redirect_uris: view.redirect_uri.unwrap_or_default().into(),
            retry: view.retry_query.into(),
            ..new_form(page, csrf)
        });
        let tpl = UnregisteredPage {
            c: &page.chrome,
            title: &texts.headline,
            headline: &texts.headline,
            explanation: &texts.explanation,
            client_id: view.client_id,
            steps: &texts.steps,
            registration_doc: ep
                .registration
                .as_ref()
                .filter(|_| !matches!(view.reason, UnknownReason::CimdFailed(_)))
                .map(|_| ep.documentation.as_str()),
            cimd_error: match view.reason {
                UnknownReason::CimdFailed(why) => Some(why.code()),
                _ => None,
            },
            form,
        };
        let mut res = render(StatusCode::BAD_REQUEST, tpl);
        res.headers_mut().insert(header::LINK, page.link.clone());
        set_cookie(&mut res, cookie);
        res
    }

    fn problem(page: &Page, p: &Problem) -> HttpResponse {
        Self::error_page(page, p, None)
    }
}

impl Html {
    /// The error page, with a link back to the application (`return_to`, named by its host)
    /// when the error is for it to hear.
    fn error_page(page: &Page, p: &Problem, return_to: Option<(&str, &str)>) -> HttpResponse {
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
        Self::page_of(page, p, title, steps, return_to, None)
    }

    /// The error page for `p`, headed `title`.
    fn page_of(
        page: &Page,
        p: &Problem,
        title: &str,
        steps: Vec<String>,
        return_to: Option<(&str, &str)>,
        retry: Option<&str>,
    ) -> HttpResponse {
        let (code, challenge) = status(p.kind);
        let mut res = render(
            code,
            ErrorPage {
                c: &page.chrome,
                title,
                message: &p.error.description,
                error_code: p.error.code.as_str(),
                client_id: p.client_id.as_deref(),
                steps,
                return_to,
                retry,
            },
        );
        let headers = res.headers_mut();
        if let Some(challenge) = challenge {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        if let Some(secs) = retry_after(p.kind) {
            headers.insert(header::RETRY_AFTER, secs.into());
        }
        res
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_consent_form_may_redirect_to_the_redirect_uris_origin_and_nothing_injected() {
        let source = |uri: &str| super::redirect_source(uri);

        assert_eq!(
            source("http://127.0.0.1:4000/cb").as_deref(),
            Some("http://127.0.0.1:4000")
        );
        assert_eq!(
            source("https://App.Example.com/cb?x=1").as_deref(),
            Some("https://app.example.com")
        );
        assert_eq!(source("http://[::1]:4000/cb").as_deref(), Some("http:"));
        assert_eq!(
            source("cursor://anysphere.cursor-mcp/oauth/callback").as_deref(),
            Some("cursor:")
        );
        assert_eq!(
            source("com.example.app:/oauth").as_deref(),
            Some("com.example.app:")
        );
        assert_eq!(
            source("x-app://a;script-src%20*/cb").as_deref(),
            Some("x-app:")
        );
        assert!(
            super::consent_csp("http://localhost:5000/cb", None)
                .contains("form-action 'self' http://localhost:5000; base-uri 'none'")
        );
        let with_logo = super::consent_csp(
            "https://app.example/cb",
            Some("https://app.example/logo.png"),
        );
        assert!(
            with_logo.contains("img-src 'self' data: https://app.example; "),
            "{with_logo}"
        );
        assert!(
            !super::consent_csp("https://app.example/cb", Some("x-app://a;script-src%20*/l"))
                .contains("x-app"),
            "a logo source is an http(s) origin or nothing"
        );
    }
}
