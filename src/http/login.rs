//! Sign-in and consent (BEHAVIOUR §4 step 5): the pending request lives in the store with a
//! TTL and the session behind a signed cookie, so any Doorman process can continue a flow.

use std::time::Duration;

use actix_web::cookie::{Cookie, CookieJar, Key, SameSite};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use argon2::{Argon2, PasswordHash, PasswordVerifier};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::AppState;
use crate::http::authorize::{redirect, redirect_error};
use crate::http::common::{body_problem, read_body, store_problem};
use crate::oauth::authorize::ValidRequest;
use crate::oauth::errors::{ErrorCode, OAuthError};
use crate::oauth::params::Params;
use crate::oauth::secret;
use crate::render::html::{self, Html};
use crate::render::pages::{ConsentPage, LoginPage};
use crate::render::{Problem, Renderer};
use crate::settings::LoginMode;
use crate::store::{AuthCode, Client, Consent, PendingRequest, Session, StoreError, keys};

pub const SESSION_COOKIE: &str = "doorman_session";
/// Seconds a person has to sign in and decide.
const PENDING_TTL: u64 = 600;

/// The key that signs session cookies: from `login.session_secret`, or created once in the
/// store so that every process sharing the store uses the same one.
async fn cookie_key(state: &AppState) -> Result<&Key, StoreError> {
    state
        .cookie_key
        .get_or_try_init(|| async {
            let secret_setting = &state.settings.login.session_secret;
            if !secret_setting.is_empty() {
                return Ok(Key::derive_from(secret_setting.as_bytes()));
            }
            let mut fresh = [0u8; 64];
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut fresh);
            state
                .store
                .set_nx_raw(
                    keys::COOKIE_KEY,
                    URL_SAFE_NO_PAD.encode(fresh).as_bytes(),
                    None,
                )
                .await?;
            let stored = state
                .store
                .get_raw(keys::COOKIE_KEY)
                .await?
                .unwrap_or_default();
            URL_SAFE_NO_PAD
                .decode(&stored)
                .ok()
                .and_then(|b| Key::try_from(b.as_slice()).ok())
                .ok_or_else(|| StoreError::Corrupt {
                    key: keys::COOKIE_KEY.into(),
                    problem: "not a 64-byte key".into(),
                })
        })
        .await
}

/// A signed-in person and the id of their session (the value inside the signed cookie).
struct SignedIn {
    id: String,
    session: Session,
}

/// The signed-in person, if the request carries a valid session cookie for a session that
/// has not outlived `login.session_ttl` (by the app's clock, not only the store's TTL).
async fn current_session(
    req: &HttpRequest,
    state: &AppState,
) -> Result<Option<SignedIn>, StoreError> {
    let Some(raw) = req.cookie(SESSION_COOKIE) else {
        return Ok(None);
    };
    let key = cookie_key(state).await?;
    let mut jar = CookieJar::new();
    jar.add_original(raw.into_owned());
    let Some(verified) = jar.signed(key).get(SESSION_COOKIE) else {
        return Ok(None);
    };
    let id = verified.value().to_owned();
    let session = state.store.get_json::<Session>(&keys::session(&id)).await?;
    let ttl = state.settings.login.session_ttl;
    Ok(session
        .filter(|s| s.auth_time.saturating_add(ttl) > state.clock.now())
        .map(|session| SignedIn { id, session }))
}

/// The CSRF token of the consent form: the pending request's token bound to the session that
/// was shown the form, so a form obtained by someone else (e.g. for their own client) cannot
/// be approved with this person's cookie.
fn consent_csrf(pending: &PendingRequest, session_id: &str) -> String {
    secret::hash(&format!("{}:{session_id}", pending.csrf))
}

/// Creates a session and returns the signed cookie that names it.
async fn new_session(
    state: &AppState,
    username: &str,
) -> Result<(SignedIn, Cookie<'static>), StoreError> {
    let sid = secret::random_token();
    let session = Session {
        username: username.to_owned(),
        auth_time: state.clock.now(),
    };
    let ttl = state.settings.login.session_ttl;
    state
        .store
        .set_json(
            &keys::session(&sid),
            &session,
            Some(Duration::from_secs(ttl)),
        )
        .await?;
    let ep = &state.meta.endpoints;
    let cookie = Cookie::build(SESSION_COOKIE, sid.clone())
        .path(if ep.base_path.is_empty() {
            "/".to_owned()
        } else {
            ep.base_path.clone()
        })
        .http_only(true)
        .secure(ep.issuer.starts_with("https://"))
        .same_site(SameSite::Lax)
        .max_age(actix_web::cookie::time::Duration::seconds(ttl as i64))
        .finish();
    let mut jar = CookieJar::new();
    jar.signed_mut(cookie_key(state).await?).add(cookie);
    let signed = jar
        .get(SESSION_COOKIE)
        .cloned()
        .ok_or_else(|| StoreError::Backend("cookie signing failed".into()))?;
    Ok((SignedIn { id: sid, session }, signed))
}

fn client_name(client: &Client) -> String {
    client
        .metadata
        .client_name
        .clone()
        .unwrap_or_else(|| "An unnamed application".to_owned())
}

fn page_problem(
    state: &AppState,
    status: StatusCode,
    code: ErrorCode,
    description: &str,
) -> HttpResponse {
    Html::problem(
        state,
        &Problem::new(status, OAuthError::new(code, description)),
    )
}

fn expired_request(state: &AppState) -> HttpResponse {
    page_problem(
        state,
        StatusCode::BAD_REQUEST,
        ErrorCode::InvalidRequest,
        "This sign-in request has expired or was already used. Go back to the application and start again.",
    )
}

/// Issues a single-use authorization code bound to the request (BEHAVIOUR §4).
async fn issue_code(
    state: &AppState,
    request: &ValidRequest,
    username: &str,
) -> Result<String, StoreError> {
    let code = secret::random_token();
    let ttl = state.settings.tokens.code_ttl;
    let record = AuthCode {
        client_id: request.client_id.clone(),
        redirect_uri: request.redirect_uri.clone(),
        redirect_uri_sent: request.redirect_uri_sent,
        code_challenge: request.code_challenge.clone(),
        scopes: request.scopes.clone(),
        resource: request.resource.clone(),
        username: username.to_owned(),
        expires_at: state.clock.now() + ttl,
        family_id: secret::random_id(),
    };
    state
        .store
        .set_json(&keys::code(&code), &record, Some(Duration::from_secs(ttl)))
        .await?;
    Ok(code)
}

async fn code_redirect(
    state: &AppState,
    request: &ValidRequest,
    username: &str,
    status: StatusCode,
) -> HttpResponse {
    match issue_code(state, request, username).await {
        Ok(code) => redirect(
            state,
            &request.redirect_uri,
            &[("code", &code)],
            request.state.as_deref(),
            status,
        ),
        Err(e) => Html::problem(state, &store_problem(&e)),
    }
}

async fn remembered(
    state: &AppState,
    username: &str,
    request: &ValidRequest,
) -> Result<bool, StoreError> {
    if state.settings.login.remember_consent_days == 0 {
        return Ok(false);
    }
    let consent: Option<Consent> = state
        .store
        .get_json(&keys::consent(username, &request.client_id))
        .await?;
    let now = state.clock.now();
    Ok(consent.is_some_and(|c| {
        c.expires_at > now
            && c.resource == request.resource
            && request.scopes.iter().all(|s| c.scopes.contains(s))
    }))
}

fn login_page(
    state: &AppState,
    status: StatusCode,
    client: &str,
    pending: &PendingRequest,
    username: &str,
    error: Option<&str>,
) -> HttpResponse {
    let action = format!("{}/login", state.meta.endpoints.issuer);
    html::page(
        html::builder(status),
        LoginPage {
            c: &state.chrome,
            title: "Sign in",
            action: &action,
            client_name: client,
            request_id: &pending.id,
            csrf: &pending.csrf,
            username,
            error,
        },
    )
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

fn consent_csp(redirect_uri: &str) -> String {
    match redirect_source(redirect_uri) {
        Some(src) => html::CSP.replace("form-action 'self'", &format!("form-action 'self' {src}")),
        None => html::CSP.to_owned(),
    }
}

fn consent_page(
    state: &AppState,
    client: &Client,
    pending: &PendingRequest,
    signed_in: &SignedIn,
    cookie: Option<Cookie<'static>>,
) -> HttpResponse {
    let r = &pending.request;
    let redirect_host = url::Url::parse(&r.redirect_uri)
        .map(|u| match u.host_str() {
            Some(h) => format!("{}://{h}", u.scheme()),
            None => format!("{}:", u.scheme()),
        })
        .unwrap_or_else(|_| r.redirect_uri.clone());
    let action = format!("{}/consent", state.meta.endpoints.issuer);
    let name = client_name(client);
    let csrf = consent_csrf(pending, &signed_in.id);
    let mut res = html::builder(StatusCode::OK);
    res.insert_header((
        actix_web::http::header::CONTENT_SECURITY_POLICY,
        consent_csp(&r.redirect_uri),
    ));
    if let Some(c) = cookie {
        res.cookie(c);
    }
    html::page(
        res,
        ConsentPage {
            c: &state.chrome,
            title: "Allow access?",
            action: &action,
            client_name: &name,
            client_id: &client.client_id,
            username: &signed_in.session.username,
            redirect_host,
            scopes: &r.scopes,
            resource: r.resource.as_deref(),
            request_id: &pending.id,
            csrf: &csrf,
        },
    )
}

/// Step 5 of /authorize for a valid request: remembered consent → code; signed in (or dev
/// mode) → consent page; otherwise → sign-in page.
pub async fn proceed(
    req: &HttpRequest,
    state: &AppState,
    client: &Client,
    request: ValidRequest,
) -> HttpResponse {
    let result: Result<HttpResponse, StoreError> = async {
        let mut session = current_session(req, state).await?;
        let mut cookie = None;
        if session.is_none() && state.settings.login.mode == LoginMode::Dev {
            let (s, c) = new_session(state, "dev").await?;
            session = Some(s);
            cookie = Some(c);
        }
        if let Some(s) = &session
            && remembered(state, &s.session.username, &request).await?
        {
            let mut res =
                code_redirect(state, &request, &s.session.username, StatusCode::FOUND).await;
            if let Some(c) = cookie {
                let _ = res.add_cookie(&c);
            }
            return Ok(res);
        }
        let pending = PendingRequest {
            id: secret::random_token(),
            csrf: secret::random_token(),
            request,
            expires_at: state.clock.now() + PENDING_TTL,
        };
        state
            .store
            .set_json(
                &keys::pending(&pending.id),
                &pending,
                Some(Duration::from_secs(PENDING_TTL)),
            )
            .await?;
        Ok(match &session {
            Some(s) => consent_page(state, client, &pending, s, cookie),
            None => login_page(
                state,
                StatusCode::OK,
                &client_name(client),
                &pending,
                "",
                None,
            ),
        })
    }
    .await;
    result.unwrap_or_else(|e| Html::problem(state, &store_problem(&e)))
}

/// Whether the form's CSRF token is the expected one (compared in constant time).
fn csrf_ok(params: &Params, expected: &str) -> bool {
    params
        .get("csrf_token")
        .is_some_and(|t| secret::equal(t, expected))
}

/// The answer to a form whose CSRF token is missing or wrong.
fn forged_form(state: &AppState) -> HttpResponse {
    page_problem(
        state,
        StatusCode::FORBIDDEN,
        ErrorCode::InvalidRequest,
        "This form was not sent from the sign-in page. Go back to the application and start again.",
    )
}

/// The pending request `id`, unless it is gone or has expired by the app clock.
async fn load_pending(state: &AppState, id: &str) -> Result<PendingRequest, HttpResponse> {
    match state
        .store
        .get_json::<PendingRequest>(&keys::pending(id))
        .await
    {
        Ok(Some(p)) if p.expires_at > state.clock.now() => Ok(p),
        Ok(_) => Err(expired_request(state)),
        Err(e) => Err(Html::problem(state, &store_problem(&e))),
    }
}

/// Loads the pending request named by the form and its client (the CSRF token is checked by
/// the caller, which knows what it must be bound to).
async fn pending_from_form(
    state: &AppState,
    params: &Params<'_>,
) -> Result<(PendingRequest, Client), HttpResponse> {
    let pending = load_pending(state, params.get("request").unwrap_or("")).await?;
    match state.store.client(&pending.request.client_id).await {
        Ok(Some(c)) => Ok((pending, c)),
        Ok(None) => Err(page_problem(
            state,
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidClient,
            "The application's registration was deleted while you were signing in.",
        )),
        Err(e) => Err(Html::problem(state, &store_problem(&e))),
    }
}

/// A hash of nothing, verified for unknown usernames so they cost as much as a wrong password.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0f3Hq1mKzXxdm0Qz4Jt7Xf0Y0cX+5b1d8mJ7Q8l2QyE";

fn verify_password(state: &AppState, username: &str, password: &str) -> bool {
    let user = state
        .settings
        .login
        .users
        .iter()
        .find(|u| secret::equal(&u.username, username));
    let hash = user.map(|u| u.password_hash.as_str()).unwrap_or(DUMMY_HASH);
    let ok = PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    });
    ok && user.is_some()
}

/// `POST /login`: checks the password, starts a session, then shows consent.
pub async fn post_login(state: web::Data<AppState>, payload: web::Payload) -> HttpResponse {
    let body = match read_body(payload).await {
        Ok(b) => b,
        Err(e) => return Html::problem(&state, &body_problem(e, ErrorCode::InvalidRequest)),
    };
    let params = Params::parse(&body);
    let (pending, client) = match pending_from_form(&state, &params).await {
        Ok(p) => p,
        Err(res) => return res,
    };
    if !csrf_ok(&params, &pending.csrf) {
        return forged_form(&state);
    }
    let username = params.get("username").unwrap_or("").trim().to_owned();
    let password = params.get("password").unwrap_or("").to_owned();
    let ok = {
        let state = state.clone();
        let username = username.clone();
        web::block(move || verify_password(&state, &username, &password))
            .await
            .unwrap_or(false)
    };
    if !ok {
        return login_page(
            &state,
            StatusCode::UNAUTHORIZED,
            &client_name(&client),
            &pending,
            &username,
            Some("The username or password is wrong."),
        );
    }
    match new_session(&state, &username).await {
        Ok((_, cookie)) => {
            let location = format!(
                "{}/consent?request={}",
                state.meta.endpoints.issuer, pending.id
            );
            let mut res = HttpResponse::SeeOther();
            crate::http::common::no_store(&mut res);
            res.cookie(cookie)
                .insert_header((actix_web::http::header::LOCATION, location))
                .finish()
        }
        Err(e) => Html::problem(&state, &store_problem(&e)),
    }
}

/// `GET /consent?request=…`: the consent page for a signed-in person.
pub async fn get_consent(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let params = Params::parse(req.query_string().as_bytes());
    let pending = match load_pending(&state, params.get("request").unwrap_or("")).await {
        Ok(p) => p,
        Err(res) => return res,
    };
    let client = match state.store.client(&pending.request.client_id).await {
        Ok(Some(c)) => c,
        Ok(None) => return expired_request(&state),
        Err(e) => return Html::problem(&state, &store_problem(&e)),
    };
    match current_session(&req, &state).await {
        Ok(Some(s)) => consent_page(&state, &client, &pending, &s, None),
        Ok(None) => login_page(
            &state,
            StatusCode::OK,
            &client_name(&client),
            &pending,
            "",
            None,
        ),
        Err(e) => Html::problem(&state, &store_problem(&e)),
    }
}

/// `POST /consent`: approve → code (303), deny → `access_denied` (303).
pub async fn post_consent(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> HttpResponse {
    let body = match read_body(payload).await {
        Ok(b) => b,
        Err(e) => return Html::problem(&state, &body_problem(e, ErrorCode::InvalidRequest)),
    };
    let params = Params::parse(&body);
    let (pending, client) = match pending_from_form(&state, &params).await {
        Ok(p) => p,
        Err(res) => return res,
    };
    let signed_in = match current_session(&req, &state).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return login_page(
                &state,
                StatusCode::OK,
                &client_name(&client),
                &pending,
                "",
                Some("Please sign in again."),
            );
        }
        Err(e) => return Html::problem(&state, &store_problem(&e)),
    };
    if !csrf_ok(&params, &consent_csrf(&pending, &signed_in.id)) {
        return forged_form(&state);
    }
    let session = &signed_in.session;
    // The decision is used once, even if two processes see the same form.
    match state.store.take_raw(&keys::pending(&pending.id)).await {
        Ok(Some(_)) => {}
        Ok(None) => return expired_request(&state),
        Err(e) => return Html::problem(&state, &store_problem(&e)),
    }
    let request = &pending.request;
    match params.get("decision") {
        Some("approve") => {
            let days = state.settings.login.remember_consent_days;
            if days > 0 {
                let consent = Consent {
                    scopes: request.scopes.clone(),
                    resource: request.resource.clone(),
                    expires_at: state.clock.now() + days * 86_400,
                };
                let key = keys::consent(&session.username, &request.client_id);
                if let Err(e) = state
                    .store
                    .set_json(&key, &consent, Some(Duration::from_secs(days * 86_400)))
                    .await
                {
                    return Html::problem(&state, &store_problem(&e));
                }
            }
            code_redirect(&state, request, &session.username, StatusCode::SEE_OTHER).await
        }
        _ => {
            let error = OAuthError::new(ErrorCode::AccessDenied, "The person denied the request.");
            let mut res = redirect_error(
                &state,
                &request.redirect_uri,
                &error,
                request.state.as_deref(),
            );
            *res.status_mut() = StatusCode::SEE_OTHER;
            res
        }
    }
}

#[cfg(test)]
mod tests {
    use argon2::PasswordHash;

    #[test]
    fn the_dummy_hash_parses_so_unknown_users_cost_a_full_verification() {
        assert!(PasswordHash::new(super::DUMMY_HASH).is_ok());
    }

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
            super::consent_csp("http://localhost:5000/cb")
                .contains("form-action 'self' http://localhost:5000; base-uri 'none'")
        );
    }
}
