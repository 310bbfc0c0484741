//! The authorization code flow up to the code (docs/behaviour.md §4): validate the request,
//! sign the person in, ask for consent (or remember it), issue the code. The pending request
//! lives in the store with a TTL and the session behind a signed cookie, so any Doorman process
//! can continue a flow another one started.

use std::time::Duration;

use super::clients::{self, Lookup};
use super::guard::Refused;
use super::sessions::{self, BROWSER_COOKIE, NewSession, SignedIn};
use super::{Browser, Ctx, Kind, Problem, grants, upstream};
use crate::oauth::authorize::{self, ClientLookup, Outcome, Rules, UnknownReason};
use crate::oauth::errors::{ErrorCode, OAuthError};
use crate::oauth::params::Params;
use crate::oauth::redirect_uri::{self, UriKind};
use crate::records::{AuthCode, AuthRequest, Client, Grant, PendingRequest, RegisteredBy, Session};
use crate::secret;
use crate::settings::LoginMode;
use crate::store::Backend;

/// Seconds a person has to sign in and decide.
pub const PENDING_TTL: u64 = 600;

/// What the person's browser is sent next.
#[derive(Debug, Clone)]
pub enum Next {
    /// Answered directly, never redirected: a wrong request before the redirect URI was
    /// validated, an expired or forged form, a storage failure.
    Refused(Problem),
    /// The client is not known here (step 2).
    Unregistered(UnknownReason),
    /// Back to the client's validated redirect URI, with a code or an error.
    Redirect(Redirect),
    /// An error found before the person signed in, for a client whose redirect URI the server
    /// has no reason to trust (a self-registered client's https URI): shown on a page with a
    /// link back, never redirected automatically (RFC 9700 §4.11.2).
    Stopped {
        problem: Problem,
        /// The error response the link leads to.
        return_to: String,
        /// The redirect URI's host, as the link names it.
        host: String,
    },
    /// The person must sign in, or decide.
    Ask(Box<Prompt>),
    /// Signed in: on to this page (the consent page, or the account page).
    Continue(String),
    /// Off to an identity provider (docs/behaviour.md §14), with the cookie that binds the
    /// round trip to this browser when it has none yet.
    Upstream {
        location: String,
        binding: Option<String>,
    },
    /// Back from the identity provider and signed in: a page that continues to the consent
    /// page (or the account page) at this URL by itself (a navigation from our own page, so
    /// the browser sends its `SameSite=Strict` binding again, which it withholds after the
    /// provider's cross-site redirect).
    Resume(String),
    /// An upstream sign-in that failed: a page saying why, with a way to try again.
    Failed(Box<super::upstream::Failure>),
}

/// What an authorization step answers: where to go next, a session to start in the browser
/// (after a sign-in, or in dev mode), and the browser's binding cookie when it had none.
#[derive(Debug, Clone)]
pub struct Answer {
    pub next: Next,
    pub session: Option<NewSession>,
    pub browser: Option<String>,
}

impl From<Next> for Answer {
    fn from(next: Next) -> Self {
        Self {
            next,
            session: None,
            browser: None,
        }
    }
}

impl From<Problem> for Answer {
    fn from(p: Problem) -> Self {
        Next::Refused(p).into()
    }
}

/// A redirect to a validated redirect URI. After a POSTed form it is a `303` (some clients
/// refuse `307`), otherwise a `302`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    pub location: String,
    pub after_form: bool,
}

/// A page for the person: which request, which client (none when signing in to the account
/// page), and what is asked.
#[derive(Debug, Clone)]
pub struct Prompt {
    pub request_id: String,
    pub pending: PendingRequest,
    pub client: Option<Client>,
    pub step: Step,
}

#[derive(Debug, Clone)]
pub enum Step {
    SignIn {
        username: String,
        failure: Option<SignInFailure>,
    },
    /// `csrf` is bound to the session the page is shown to; `previous` is what the person
    /// approved for this client before, if anything.
    Consent {
        username: String,
        csrf: String,
        previous: Option<Grant>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInFailure {
    WrongPassword,
    /// The session ended between the consent page and its form.
    SignInAgain,
}

fn rules<'a>(ctx: &Ctx<'a>) -> Rules<'a> {
    let s = ctx.settings;
    Rules {
        registration_enabled: s.registration.enabled,
        target: super::target_policy(s),
    }
}

/// `/authorize`: steps 1–4 in contract order, then step 5 (sign-in and consent).
pub async fn start(ctx: &Ctx<'_>, params: &Params<'_>, browser: &Browser<'_>) -> Answer {
    let sent_state = params.get("state");
    // Step 1.
    let client_id = match authorize::client_id(params) {
        Ok(id) => id,
        Err(error) => return Problem::request(error).about(None, sent_state).into(),
    };
    // Step 2: a storage failure is a 503, never "unknown client".
    let client = match clients::find(ctx, client_id).await.map(Lookup::client) {
        Ok(Ok(c)) => c,
        Ok(Err(why)) => return Next::Unregistered(UnknownReason::CimdFailed(why)).into(),
        Err(p) => return p.into(),
    };
    let lookup = match &client {
        Some(c) => ClientLookup::Found {
            metadata: &c.metadata,
            expires_at: c.expires_at,
            document: c.registered_by == RegisteredBy::Document,
        },
        None => ClientLookup::NotFound,
    };
    match authorize::validate(params, client_id, lookup, &rules(ctx), ctx.now) {
        Outcome::Direct(error) => Problem::request(error)
            .about(Some(client_id), sent_state)
            .into(),
        Outcome::Unregistered { reason, .. } => Next::Unregistered(reason).into(),
        Outcome::RedirectError {
            redirect_uri,
            error,
            state,
        } => {
            let next = error_redirect(ctx, &redirect_uri, &error, state.as_deref(), false);
            let trusted = client.as_ref().is_some_and(Client::by_operator);
            match next {
                Next::Redirect(r) if !trusted && is_web(&redirect_uri) => Next::Stopped {
                    problem: Problem::request(error).about(Some(client_id), sent_state),
                    host: url::Url::parse(&redirect_uri)
                        .ok()
                        .and_then(|u| u.host_str().map(str::to_owned))
                        .unwrap_or_default(),
                    return_to: r.location,
                }
                .into(),
                other => other.into(),
            }
        }
        Outcome::Valid(request) => match client {
            Some(client) => proceed(ctx, client, request, browser)
                .await
                .unwrap_or_else(Answer::from),
            None => {
                Problem::from(crate::store::StoreError::Backend("client vanished".into())).into()
            }
        },
    }
}

/// Whether a redirect URI is a web one (https on a host that is not loopback), as opposed to a
/// native app's loopback or private-use URI, where nothing but the app itself listens.
fn is_web(uri: &str) -> bool {
    redirect_uri::validate_for_registration(uri) == Ok(UriKind::Web)
}

/// Step 5 for a valid request: remembered consent → code; signed in (or dev mode) → consent
/// page; otherwise → sign-in page.
async fn proceed(
    ctx: &Ctx<'_>,
    client: Client,
    request: AuthRequest,
    browser: &Browser<'_>,
) -> Result<Answer, Problem> {
    let mut signed_in = sessions::current(ctx, browser).await?;
    let mut new_session = None;
    if signed_in.is_none() && ctx.settings.login.mode == LoginMode::Dev {
        let (s, c) = sessions::start(ctx, "dev", None).await?;
        signed_in = Some(s);
        new_session = Some(c);
    }
    if let Some(s) = &signed_in
        && let Some(grant) = grants::remembered(ctx, &s.session.username, &request).await?
    {
        grants::touch(ctx, &s.session.username, &grant).await?;
        let redirect = code_redirect(ctx, &client, &request, &s.session, &grant, false).await?;
        return Ok(Answer {
            next: redirect,
            session: new_session,
            browser: None,
        });
    }
    // The pending request belongs to this browser: its binding cookie, made now if it has none.
    let (binding, new_binding) = match browser.cookie(BROWSER_COOKIE) {
        Some(b) => (b.to_owned(), None),
        None => {
            let b = secret::random_token();
            (b.clone(), Some(b))
        }
    };
    let (request_id, pending) = new_pending(ctx, &binding, Some(request)).await?;
    if signed_in.is_none()
        && let Some(answer) = upstream::straight_on(ctx, &request_id, &pending, browser).await
    {
        return Ok(Answer {
            browser: new_binding,
            ..answer
        });
    }
    let prompt = match &signed_in {
        Some(s) => consent_prompt(ctx, request_id, pending, client, s).await?,
        None => sign_in_prompt(request_id, pending, Some(client), String::new(), None),
    };
    Ok(Answer {
        next: Next::Ask(Box::new(prompt)),
        session: new_session,
        browser: new_binding,
    })
}

/// Stores a new pending sign-in for the browser with `binding`, continuing `request` (or, with
/// none, a sign-in to the account page).
pub(super) async fn new_pending(
    ctx: &Ctx<'_>,
    binding: &str,
    request: Option<AuthRequest>,
) -> Result<(String, PendingRequest), Problem> {
    let request_id = secret::ordered_token();
    let pending = PendingRequest {
        csrf: secret::random_token(),
        browser: secret::hash(binding),
        failures: 0,
        request,
        expires_at: ctx.now + PENDING_TTL,
    };
    ctx.store
        .put_pending(&request_id, &pending, Duration::from_secs(PENDING_TTL))
        .await?;
    Ok((request_id, pending))
}

pub(super) fn sign_in_prompt(
    request_id: String,
    pending: PendingRequest,
    client: Option<Client>,
    username: String,
    failure: Option<SignInFailure>,
) -> Prompt {
    Prompt {
        request_id,
        pending,
        client,
        step: Step::SignIn { username, failure },
    }
}

/// The consent page's CSRF token: the pending request's token bound to the session that is
/// shown the form, so a form obtained by someone else (e.g. for their own client) cannot be
/// approved with this person's cookie.
fn consent_csrf(pending: &PendingRequest, session_id: &str) -> String {
    secret::hash(&format!("{}:{session_id}", pending.csrf))
}

async fn consent_prompt(
    ctx: &Ctx<'_>,
    request_id: String,
    pending: PendingRequest,
    client: Client,
    signed_in: &SignedIn,
) -> Result<Prompt, Problem> {
    let csrf = consent_csrf(&pending, &signed_in.id);
    let username = &signed_in.session.username;
    let previous = grants::current(ctx, username, &client.client_id).await?;
    Ok(Prompt {
        request_id,
        pending,
        client: Some(client),
        step: Step::Consent {
            username: upstream::shown_as(ctx, &signed_in.session),
            csrf,
            previous,
        },
    })
}

/// A redirect carrying an error (RFC 6749 §4.1.2.1), with `state` and `iss` (RFC 9207).
fn error_redirect(
    ctx: &Ctx<'_>,
    redirect_uri: &str,
    error: &OAuthError,
    state: Option<&str>,
    after_form: bool,
) -> Next {
    let params = [
        ("error", error.code.as_str()),
        ("error_description", error.description.as_str()),
    ];
    redirect(ctx, redirect_uri, &params, state, after_form)
}

/// A redirect to an already validated redirect URI.
fn redirect(
    ctx: &Ctx<'_>,
    redirect_uri: &str,
    params: &[(&str, &str)],
    state: Option<&str>,
    after_form: bool,
) -> Next {
    match authorize::redirect_url(redirect_uri, params, state, &ctx.endpoints.issuer) {
        Some(location) => Next::Redirect(Redirect {
            location,
            after_form,
        }),
        None => Next::Refused(Problem::new(
            Kind::Request,
            ErrorCode::InvalidRequest,
            "The redirect URI cannot carry the authorization response.",
        )),
    }
}

/// Issues a single-use code bound to the request and the grant (docs/behaviour.md §4) and
/// redirects with it.
async fn code_redirect(
    ctx: &Ctx<'_>,
    client: &Client,
    request: &AuthRequest,
    session: &Session,
    grant: &Grant,
    after_form: bool,
) -> Result<Next, Problem> {
    clients::mark_used(ctx, client).await?;
    let code = secret::ordered_token();
    let ttl = ctx.settings.tokens.code_ttl;
    let record = AuthCode {
        client_id: request.client_id.clone(),
        redirect_uri: request.redirect_uri.clone(),
        redirect_uri_sent: request.redirect_uri_sent,
        code_challenge: request.code_challenge.clone(),
        scopes: request.scopes.clone(),
        resource: request.resource.clone(),
        username: session.username.clone(),
        expires_at: ctx.now + ttl,
        family_id: secret::ordered_id(),
        grant_id: Some(grant.id.clone()),
        upstream: session.upstream.clone(),
    };
    ctx.store
        .put_code(&code, &record, Duration::from_secs(ttl))
        .await?;
    Ok(redirect(
        ctx,
        &request.redirect_uri,
        &[("code", &code)],
        request.state.as_deref(),
        after_form,
    ))
}

fn expired_request() -> Problem {
    Problem::new(
        Kind::Request,
        ErrorCode::InvalidRequest,
        "This sign-in request has expired or was already used. Go back to the application and start again.",
    )
}

/// The answer to a form whose CSRF token is missing or wrong.
fn forged_form() -> Problem {
    Problem::new(
        Kind::Forbidden,
        ErrorCode::InvalidRequest,
        "This form was not sent from the sign-in page. Go back to the application and start again.",
    )
}

/// The pending request `id`, unless it is gone or has expired by the app clock.
pub(super) async fn load_pending(ctx: &Ctx<'_>, id: &str) -> Result<PendingRequest, Problem> {
    match ctx.store.pending(id).await? {
        Some(p) if p.expires_at > ctx.now => Ok(p),
        _ => Err(expired_request()),
    }
}

/// The answer to a sign-in continued in another browser than the one that started it.
fn other_browser() -> Problem {
    Problem::new(
        Kind::Forbidden,
        ErrorCode::InvalidRequest,
        "This sign-in was started in another browser (or its cookies were cleared). Go back to the application and start again.",
    )
}

/// The pending request named by a form (or a query), if `browser` is the one that started it.
/// The caller checks the CSRF token, as it knows what the token is bound to.
pub(super) async fn bound_pending(
    ctx: &Ctx<'_>,
    id: &str,
    browser: &Browser<'_>,
) -> Result<PendingRequest, Problem> {
    let pending = load_pending(ctx, id).await?;
    if !browser
        .cookie(BROWSER_COOKIE)
        .is_some_and(|b| secret::verify(b, &pending.browser))
    {
        return Err(other_browser());
    }
    Ok(pending)
}

/// The client a pending request is for (none for a sign-in to the account page).
async fn client_of(ctx: &Ctx<'_>, pending: &PendingRequest) -> Result<Option<Client>, Problem> {
    let Some(request) = &pending.request else {
        return Ok(None);
    };
    match clients::find(ctx, &request.client_id).await?.client() {
        Ok(Some(c)) => Ok(Some(c)),
        Ok(None) => Err(Problem::new(
            Kind::Request,
            ErrorCode::InvalidClient,
            "The application's registration was deleted while you were signing in.",
        )),
        Err(why) => Err(Problem::new(
            Kind::Request,
            ErrorCode::InvalidClient,
            format!("The application's metadata document can no longer be used: {why}."),
        )),
    }
}

/// The pending authorization request named by a form (or a query), its request and client.
async fn pending_and_client(
    ctx: &Ctx<'_>,
    id: &str,
    browser: &Browser<'_>,
) -> Result<(PendingRequest, AuthRequest, Client), Problem> {
    let pending = bound_pending(ctx, id, browser).await?;
    match (pending.request.clone(), client_of(ctx, &pending).await?) {
        (Some(request), Some(client)) => Ok((pending, request, client)),
        _ => Err(expired_request()),
    }
}

/// Where a signed-in person goes on: the consent page of the authorization request, or the
/// account page for a sign-in that came from there.
pub fn after_sign_in(ctx: &Ctx<'_>, request_id: &str, pending: &PendingRequest) -> String {
    match pending.request {
        Some(_) => format!("{}/consent?request={request_id}", ctx.endpoints.issuer),
        None => format!("{}/account", ctx.endpoints.issuer),
    }
}

/// Whether the form's CSRF token is the expected one (compared in constant time).
fn csrf_ok(form: &Params<'_>, expected: &str) -> bool {
    form.get("csrf_token")
        .is_some_and(|t| secret::equal(t, expected))
}

/// A hash of nothing, verified for unknown usernames so they cost as much as a wrong password.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0f3Hq1mKzXxdm0Qz4Jt7Xf0Y0cX+5b1d8mJ7Q8l2QyE";

/// Checks a password against `login.users` on the guard's password threads.
async fn verify_password(ctx: &Ctx<'_>, username: &str, password: &str) -> Result<bool, Refused> {
    let user = ctx
        .settings
        .login
        .users
        .iter()
        .find(|u| secret::equal(&u.username, username));
    let hash = user.map_or(DUMMY_HASH, |u| u.password_hash.as_str());
    let ok = ctx
        .guard
        .verify(hash.to_owned(), password.to_owned())
        .await?;
    Ok(ok && user.is_some())
}

fn refused(why: Refused) -> Problem {
    match why {
        Refused::TooMany(wait) => Problem::new(
            Kind::TooMany { retry_after: wait },
            ErrorCode::InvalidRequest,
            format!("Too many sign-in attempts; wait {wait} seconds, then try again."),
        ),
        Refused::Busy => Problem::new(
            Kind::Unavailable { retry_after: 2 },
            ErrorCode::TemporarilyUnavailable,
            "Too many people are signing in at once; please try again in a moment.",
        ),
    }
}

/// `POST /login`: checks the password, starts a session, then on to consent. The form must
/// come from our page in the browser that started the request, attempts are rate limited by
/// address and by username, and a request survives only `login.max_failures` wrong passwords.
pub async fn sign_in(ctx: &Ctx<'_>, form: &Params<'_>, browser: &Browser<'_>) -> Answer {
    let request_id = form.get("request").unwrap_or("");
    if !browser.form_is_ours(&ctx.endpoints.origin) {
        return forged_form().into();
    }
    let pending = match bound_pending(ctx, request_id, browser).await {
        Ok(p) => p,
        Err(p) => return p.into(),
    };
    if !csrf_ok(form, &pending.csrf) {
        return forged_form().into();
    }
    let client = match client_of(ctx, &pending).await {
        Ok(c) => c,
        Err(p) => return p.into(),
    };
    let username = form.get("username").unwrap_or("").trim();
    let password = form.get("password").unwrap_or("");
    let checked = match ctx.guard.admit(browser.address, username) {
        Ok(()) => verify_password(ctx, username, password).await,
        Err(why) => Err(why),
    };
    match checked {
        Ok(true) => {}
        Ok(false) => return wrong_password(ctx, request_id, pending, client, username).await,
        Err(why) => return refused(why).into(),
    }
    match sessions::start(ctx, username, None).await {
        Ok((_, session)) => Answer {
            next: Next::Continue(after_sign_in(ctx, request_id, &pending)),
            session: Some(session),
            browser: None,
        },
        Err(p) => p.into(),
    }
}

/// A wrong password: counted on the pending request, which is gone at `login.max_failures`.
async fn wrong_password(
    ctx: &Ctx<'_>,
    request_id: &str,
    mut pending: PendingRequest,
    client: Option<Client>,
    username: &str,
) -> Answer {
    pending.failures += 1;
    let kept = if pending.failures >= ctx.settings.login.max_failures {
        ctx.store.take_pending(request_id).await.map(|_| false)
    } else {
        let left = pending.expires_at.saturating_sub(ctx.now).max(1);
        ctx.store
            .put_pending(request_id, &pending, Duration::from_secs(left))
            .await
            .map(|()| true)
    };
    match kept {
        Ok(true) => Next::Ask(Box::new(sign_in_prompt(
            request_id.to_owned(),
            pending,
            client,
            username.to_owned(),
            Some(SignInFailure::WrongPassword),
        )))
        .into(),
        Ok(false) => Problem::new(
            Kind::Forbidden,
            ErrorCode::AccessDenied,
            "Too many wrong passwords for this sign-in request. Go back to the application and start again.",
        )
        .into(),
        Err(e) => Problem::from(e).into(),
    }
}

/// `GET /consent?request=…`: the consent page for a signed-in person, else the sign-in page.
pub async fn consent(ctx: &Ctx<'_>, request_id: &str, browser: &Browser<'_>) -> Answer {
    let result = async {
        let (pending, _, client) = pending_and_client(ctx, request_id, browser).await?;
        let id = request_id.to_owned();
        Ok::<_, Problem>(match sessions::current(ctx, browser).await? {
            Some(s) => consent_prompt(ctx, id, pending, client, &s).await?,
            None => sign_in_prompt(id, pending, Some(client), String::new(), None),
        })
    };
    match result.await {
        Ok(prompt) => Next::Ask(Box::new(prompt)).into(),
        Err(p) => Answer::from(p),
    }
}

/// `POST /consent`: approve → code (303), deny → `access_denied` (303). The decision is made
/// once, even if two processes see the same form, and only in the browser that started it.
pub async fn decide(ctx: &Ctx<'_>, form: &Params<'_>, browser: &Browser<'_>) -> Answer {
    let result = async {
        if !browser.form_is_ours(&ctx.endpoints.origin) {
            return Err(forged_form());
        }
        let request_id = form.get("request").unwrap_or("");
        let (pending, request, client) = pending_and_client(ctx, request_id, browser).await?;
        let Some(signed_in) = sessions::current(ctx, browser).await? else {
            return Ok(Next::Ask(Box::new(sign_in_prompt(
                request_id.to_owned(),
                pending,
                Some(client),
                String::new(),
                Some(SignInFailure::SignInAgain),
            ))));
        };
        if !csrf_ok(form, &consent_csrf(&pending, &signed_in.id)) {
            return Err(forged_form());
        }
        if ctx.store.take_pending(request_id).await?.is_none() {
            return Err(expired_request());
        }
        let request = &request;
        let username = &signed_in.session.username;
        if form.get("decision") != Some("approve") {
            let error = OAuthError::new(ErrorCode::AccessDenied, "The person denied the request.");
            return Ok(error_redirect(
                ctx,
                &request.redirect_uri,
                &error,
                request.state.as_deref(),
                true,
            ));
        }
        let grant = grants::approve(ctx, username, request).await?;
        code_redirect(ctx, &client, request, &signed_in.session, &grant, true).await
    };
    match result.await {
        Ok(next) => next.into(),
        Err(p) => Answer::from(p),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_dummy_hash_parses_so_unknown_users_cost_a_full_verification() {
        assert!(argon2::PasswordHash::new(super::DUMMY_HASH).is_ok());
    }
}
