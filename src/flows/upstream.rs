//! Sign-in at the operator's identity providers (docs/behaviour.md §14): the round trip from a
//! pending authorization request to the provider and back. `GET /login/{provider}` (or
//! `/authorize`, when one provider is all there is) stores a round trip under the hash of the
//! `state` sent, bound to the browser by a cookie, and sends the person to the provider with
//! PKCE and a `nonce`; `GET /login/{provider}/callback` takes the round trip once (on whichever
//! process it lands), exchanges the code, verifies the ID token (OpenID Connect) or reads the
//! user API (GitHub), applies the allow-lists, starts a session and continues to the consent
//! page. Every failure is a page for the person and a log line for the operator.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use jsonwebtoken::jwk::JwkSet;
use serde_json::Value;

use super::authorization::{self, Answer, Next};
use super::sessions;
use super::{Browser, Ctx, Kind, Problem};
use crate::oauth::errors::ErrorCode;
use crate::oauth::identity::{self, AllowList, Identity};
use crate::oauth::oidc::{self, ClaimNames, ClientAuth, Expected, IdTokenError, ProviderMetadata};
use crate::oauth::params::Params;
use crate::oauth::{github, pkce};
use crate::records::{PendingRequest, Session, Upstream, UpstreamLogin};
use crate::secret;
use crate::settings::{Provider, ProviderKind};
use crate::store::Backend;

/// The cookie that binds a round trip to the browser that started it. `SameSite=Lax`: the
/// provider sends the browser back with a cross-site navigation, on which a `Strict` cookie
/// (such as `doorman_browser`) is not sent.
pub const UPSTREAM_COOKIE: &str = "doorman_upstream";
/// Seconds a round trip may take (no longer than its pending request lives).
pub const ROUND_TRIP_TTL: u64 = 600;
/// Seconds a discovery document and a key set are used before they are fetched again (a key
/// the provider introduces in between is fetched at once, when a token names it).
const CACHE_TTL: u64 = 3600;
/// Largest answer read from a provider.
const MAX_ANSWER: usize = 1 << 20;

/// The identity providers' HTTP client and what this process learnt about them: their
/// discovery documents and key sets, in the order of `login.providers`.
pub struct Providers {
    http: reqwest::Client,
    caches: Vec<Cache>,
}

#[derive(Default)]
struct Cache {
    metadata: Mutex<Option<(Arc<ProviderMetadata>, u64)>>,
    keys: Mutex<Option<(Arc<JwkSet>, u64)>>,
}

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Providers")
            .field("providers", &self.caches.len())
            .finish()
    }
}

/// A call to a provider that gave no usable answer.
enum CallError {
    /// Not reached, or no answer in time.
    Unreachable(String),
    /// An answer Doorman cannot use.
    Bad(String),
}

impl Providers {
    pub fn new(providers: &[Provider]) -> Self {
        // Never follow a redirect: every URL called is one the settings or discovery named.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("doorman/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Self {
            http,
            caches: providers.iter().map(|_| Cache::default()).collect(),
        }
    }

    /// Sends `req` and reads its JSON answer (at most `MAX_ANSWER` bytes) within `timeout`.
    async fn call(
        &self,
        req: reqwest::RequestBuilder,
        timeout: Duration,
        what: &str,
    ) -> Result<Value, CallError> {
        let unreachable = |e: reqwest::Error| {
            CallError::Unreachable(if e.is_timeout() {
                format!("{what} did not answer within {} ms", timeout.as_millis())
            } else {
                format!("{what} could not be reached ({})", e.without_url())
            })
        };
        let res = req
            .timeout(timeout)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(unreachable)?;
        let status = res.status();
        let mut body = Vec::new();
        let mut stream = res.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(unreachable)?;
            if body.len() + chunk.len() > MAX_ANSWER {
                return Err(CallError::Bad(format!(
                    "{what} answered with more than {MAX_ANSWER} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        let json: Option<Value> = serde_json::from_slice(&body).ok();
        match json {
            Some(json) if status.is_success() => Ok(json),
            Some(json) => Err(CallError::Bad(format!(
                "{what} answered {status}: {} {}",
                json.get("error").and_then(Value::as_str).unwrap_or(""),
                json.get("error_description")
                    .and_then(Value::as_str)
                    .unwrap_or("")
            ))),
            None => Err(CallError::Bad(format!(
                "{what} answered {status} with something that is not JSON"
            ))),
        }
    }

    /// The provider's checked discovery document: cached, fetched when missing or old.
    async fn metadata(
        &self,
        now: u64,
        index: usize,
        provider: &Provider,
    ) -> Result<Arc<ProviderMetadata>, CallError> {
        let cache = &self.caches[index].metadata;
        if let Some((meta, at)) = cache.lock().ok().and_then(|c| c.clone())
            && at.saturating_add(CACHE_TTL) > now
        {
            return Ok(meta);
        }
        let url = oidc::discovery_url(&provider.issuer);
        let doc = self
            .call(
                self.http.get(&url),
                timeout(provider),
                "the discovery document",
            )
            .await?;
        let doc: oidc::Discovery = serde_json::from_value(doc).map_err(|e| {
            CallError::Bad(format!(
                "the discovery document at {url} is incomplete ({e})"
            ))
        })?;
        let meta = Arc::new(
            oidc::check_discovery(&doc, &provider.issuer)
                .map_err(|e| CallError::Bad(format!("the discovery document at {url}: {e}")))?,
        );
        if let Ok(mut c) = cache.lock() {
            *c = Some((meta.clone(), now));
        }
        Ok(meta)
    }

    /// The provider's key set: cached, fetched when missing, old, or (`fresh`) when a token
    /// names a key it lacks (key rotation).
    async fn keys(
        &self,
        now: u64,
        index: usize,
        provider: &Provider,
        meta: &ProviderMetadata,
        fresh: bool,
    ) -> Result<Arc<JwkSet>, CallError> {
        let cache = &self.caches[index].keys;
        if !fresh
            && let Some((keys, at)) = cache.lock().ok().and_then(|c| c.clone())
            && at.saturating_add(CACHE_TTL) > now
        {
            return Ok(keys);
        }
        let json = self
            .call(
                self.http.get(&meta.jwks_uri),
                timeout(provider),
                "the key set (jwks_uri)",
            )
            .await?;
        let keys: JwkSet = serde_json::from_value(json)
            .map_err(|e| CallError::Bad(format!("the key set is not a JWK set ({e})")))?;
        let keys = Arc::new(keys);
        if let Ok(mut c) = cache.lock() {
            *c = Some((keys.clone(), now));
        }
        Ok(keys)
    }
}

fn timeout(provider: &Provider) -> Duration {
    Duration::from_millis(provider.timeout_ms)
}

/// Why a round trip failed; each is a page for the person and a log line for the operator.
#[derive(Debug)]
enum Why {
    NoSuchProvider,
    Unreachable(String),
    Broken(String),
    Cancelled,
    Expired,
    OtherBrowser,
    NotAllowed(String),
    Stored(Problem),
}

impl From<CallError> for Why {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Unreachable(d) => Why::Unreachable(d),
            CallError::Bad(d) => Why::Broken(d),
        }
    }
}

impl From<crate::store::StoreError> for Why {
    fn from(e: crate::store::StoreError) -> Self {
        Why::Stored(Problem::from(e))
    }
}

/// A failed upstream sign-in as the person's page shows it: the problem (status, code and
/// sentence), a headline, and a way to try again (the sign-in page of the same request).
#[derive(Debug, Clone)]
pub struct Failure {
    pub problem: Problem,
    pub title: &'static str,
    pub retry: Option<String>,
}

/// The page and the log line for `why`. `name` is the provider's display name.
fn failure(ctx: &Ctx<'_>, id: &str, name: &str, why: Why, request_id: Option<&str>) -> Answer {
    let retry = request_id.map(|r| format!("{}/consent?request={r}", ctx.endpoints.issuer));
    let (kind, code, title, sentence, retry) = match why {
        Why::NoSuchProvider => (
            Kind::Request,
            ErrorCode::InvalidRequest,
            "Unknown sign-in option",
            "This server has no such way to sign in. Go back to the application and start again."
                .to_owned(),
            None,
        ),
        Why::Unreachable(detail) => {
            log::warn!("upstream sign-in with {id:?}: {detail:?}");
            (
                Kind::Unavailable {
                    retry_after: super::RETRY_AFTER_SECS,
                },
                ErrorCode::TemporarilyUnavailable,
                "The sign-in service is not answering",
                format!(
                    "{name} did not answer in time, so you cannot sign in with it right now. Wait a moment and try again."
                ),
                retry,
            )
        }
        Why::Broken(detail) => {
            log::warn!("upstream sign-in with {id:?}: {detail:?}");
            (
                Kind::Upstream,
                ErrorCode::ServerError,
                "Sign-in did not work",
                format!(
                    "{name} sent an answer that could not be used to sign you in. The operator of this server can see why in its log."
                ),
                retry,
            )
        }
        Why::Cancelled => {
            log::info!("upstream sign-in with {id:?}: cancelled at the provider");
            (
                Kind::Forbidden,
                ErrorCode::AccessDenied,
                "Sign-in was cancelled",
                format!(
                    "You did not finish signing in with {name}. You can try again, or go back to the application."
                ),
                retry,
            )
        }
        Why::Expired => {
            log::warn!(
                "upstream sign-in with {id:?}: a state that matches no round trip in progress"
            );
            (
                Kind::Request,
                ErrorCode::InvalidRequest,
                "This sign-in has expired",
                format!(
                    "This answer from {name} does not belong to a sign-in in progress here: it took too long, was already used, or was not started here. Go back to the application and start again."
                ),
                None,
            )
        }
        Why::OtherBrowser => {
            log::warn!(
                "upstream sign-in with {id:?}: the answer came to another browser than the one that started it"
            );
            (
                Kind::Forbidden,
                ErrorCode::InvalidRequest,
                "This sign-in was started in another browser",
                "This sign-in was started in another browser (or its cookies were cleared). Go back to the application and start again.".to_owned(),
                None,
            )
        }
        Why::NotAllowed(sentence) => {
            log::warn!("upstream sign-in with {id:?}: refused: {sentence:?}");
            (
                Kind::Forbidden,
                ErrorCode::AccessDenied,
                "You may not sign in here",
                format!(
                    "{sentence} If you think you should be able to, ask the operator of this server."
                ),
                retry,
            )
        }
        Why::Stored(problem) => return Next::Refused(problem).into(),
    };
    Next::Failed(Box::new(Failure {
        problem: Problem::new(kind, code, sentence),
        title,
        retry,
    }))
    .into()
}

/// The provider `id`, with its place in the settings.
fn find<'a>(ctx: &Ctx<'a>, id: &str) -> Option<(usize, &'a Provider)> {
    ctx.settings
        .login
        .providers
        .iter()
        .enumerate()
        .find(|(_, p)| p.id == id)
}

/// Where the provider sends the browser back: register this URI at the provider.
pub fn callback_url(issuer: &str, provider_id: &str) -> String {
    format!("{issuer}/login/{provider_id}/callback")
}

/// `GET /login/{provider}?request=…`: a sign-in button was pressed.
pub async fn begin(
    ctx: &Ctx<'_>,
    provider_id: &str,
    request_id: &str,
    browser: &Browser<'_>,
) -> Answer {
    let Some((index, provider)) = find(ctx, provider_id) else {
        return failure(ctx, provider_id, provider_id, Why::NoSuchProvider, None);
    };
    match authorization::bound_pending(ctx, request_id, browser).await {
        Ok(pending) => depart(ctx, index, provider, request_id, &pending, browser).await,
        Err(p) => p.into(),
    }
}

/// When the sign-in page would show nothing but one provider's button, the browser goes
/// straight to that provider (docs/behaviour.md §14): its answer, or `None` to show the page.
pub async fn straight_on(
    ctx: &Ctx<'_>,
    request_id: &str,
    pending: &PendingRequest,
    browser: &Browser<'_>,
) -> Option<Answer> {
    let login = &ctx.settings.login;
    match login.providers.as_slice() {
        [only] if login.users.is_empty() && login.mode == crate::settings::LoginMode::Upstream => {
            Some(depart(ctx, 0, only, request_id, pending, browser).await)
        }
        _ => None,
    }
}

/// Sends the browser to the provider for the pending request `request_id`, with a fresh
/// `state`, `nonce` and PKCE verifier kept in the store for the callback.
pub async fn depart(
    ctx: &Ctx<'_>,
    index: usize,
    provider: &Provider,
    request_id: &str,
    pending: &PendingRequest,
    browser: &Browser<'_>,
) -> Answer {
    let result = async {
        let endpoint = match provider.kind {
            ProviderKind::Oidc => ctx
                .upstream
                .metadata(ctx.now, index, provider)
                .await?
                .authorization_endpoint
                .clone(),
            ProviderKind::Github => provider.authorize_url().to_owned(),
        };
        let state = secret::ordered_token();
        let nonce = secret::random_token();
        let verifier = secret::random_token();
        let (binding, new_binding) = match browser.cookie(UPSTREAM_COOKIE) {
            Some(b) if b.len() == 43 => (b.to_owned(), None),
            _ => {
                let b = secret::random_token();
                (b.clone(), Some(b))
            }
        };
        let ttl = pending
            .expires_at
            .saturating_sub(ctx.now)
            .clamp(1, ROUND_TRIP_TTL);
        let login = UpstreamLogin {
            request_id: request_id.to_owned(),
            provider: provider.id.clone(),
            verifier: verifier.clone(),
            nonce: nonce.clone(),
            browser: secret::hash(&binding),
            expires_at: ctx.now + ttl,
        };
        ctx.store
            .put_upstream(&state, &login, Duration::from_secs(ttl))
            .await?;
        let mut url = url::Url::parse(&endpoint).map_err(|_| {
            Why::Broken(format!(
                "the authorization endpoint {endpoint:?} is not a URL"
            ))
        })?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &provider.client_id)
                .append_pair(
                    "redirect_uri",
                    &callback_url(&ctx.endpoints.issuer, &provider.id),
                )
                .append_pair("scope", &provider.scopes().join(" "))
                .append_pair("state", &state)
                .append_pair("code_challenge", &pkce::s256(&verifier))
                .append_pair("code_challenge_method", "S256");
            if provider.kind == ProviderKind::Oidc {
                q.append_pair("nonce", &nonce);
            }
        }
        Ok::<_, Why>(Next::Upstream {
            location: url.into(),
            binding: new_binding,
        })
    };
    match result.await {
        Ok(next) => next.into(),
        Err(why) => failure(ctx, &provider.id, &provider.name, why, Some(request_id)),
    }
}

/// `GET /login/{provider}/callback`: the provider's answer.
pub async fn finish(
    ctx: &Ctx<'_>,
    provider_id: &str,
    params: &Params<'_>,
    browser: &Browser<'_>,
) -> Answer {
    let Some((index, provider)) = find(ctx, provider_id) else {
        return failure(ctx, provider_id, provider_id, Why::NoSuchProvider, None);
    };
    let mut request_id = None;
    let result = async {
        let state = params.get("state").ok_or(Why::Expired)?;
        let trip = ctx.store.take_upstream(state).await?;
        let trip = trip
            .filter(|t| t.expires_at > ctx.now && t.provider == provider.id)
            .ok_or(Why::Expired)?;
        if !browser
            .cookie(UPSTREAM_COOKIE)
            .is_some_and(|b| secret::verify(b, &trip.browser))
        {
            return Err(Why::OtherBrowser);
        }
        request_id = Some(trip.request_id.clone());
        let pending = authorization::load_pending(ctx, &trip.request_id)
            .await
            .map_err(|_| Why::Expired)?;
        if let Some(error) = params.get("error") {
            return Err(if error == "access_denied" {
                Why::Cancelled
            } else {
                Why::Broken(format!(
                    "the provider answered {error}: {}",
                    params.get("error_description").unwrap_or("")
                ))
            });
        }
        let code = params.get("code").ok_or_else(|| {
            Why::Broken("the provider's answer has neither code nor error".into())
        })?;
        let who = match provider.kind {
            ProviderKind::Oidc => oidc_person(ctx, index, provider, &trip, code, params).await?,
            ProviderKind::Github => github_person(ctx, provider, &trip, code).await?,
        };
        let list = AllowList {
            domains: &provider.allowed_domains,
            users: &provider.allowed_users,
            groups: &provider.allowed_groups,
            everyone: provider.allow_everyone,
        };
        identity::admit(&who, &list).map_err(|refused| Why::NotAllowed(refused.0))?;
        let subject = identity::scoped_subject(&provider.id, &who.subject);
        let upstream = Upstream {
            provider: provider.id.clone(),
            name: who.name,
            email: who.email,
        };
        let (_, session) = sessions::start(ctx, &subject, Some(upstream))
            .await
            .map_err(Why::Stored)?;
        log::info!(
            "upstream sign-in with {:?}: signed in {subject:?}",
            provider.id
        );
        Ok(Answer {
            next: Next::Resume(authorization::after_sign_in(
                ctx,
                &trip.request_id,
                &pending,
            )),
            session: Some(session),
            browser: None,
        })
    };
    match result.await {
        Ok(answer) => answer,
        Err(why) => failure(
            ctx,
            &provider.id,
            &provider.name,
            why,
            request_id.as_deref(),
        ),
    }
}

/// RFC 6749 §2.3.1: the client id and secret are form-encoded before they go into Basic.
fn form_encoded(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The OpenID Connect half: RFC 9207 `iss`, the code exchange, the ID token (against the key
/// set, fetched again once for a key it lacks), UserInfo for what the ID token left out.
async fn oidc_person(
    ctx: &Ctx<'_>,
    index: usize,
    provider: &Provider,
    trip: &UpstreamLogin,
    code: &str,
    params: &Params<'_>,
) -> Result<Identity, Why> {
    let up = ctx.upstream;
    let meta = up.metadata(ctx.now, index, provider).await?;
    identity::check_response_iss(params.get("iss"), &meta.issuer, meta.sends_iss)
        .map_err(Why::Broken)?;
    let redirect_uri = callback_url(&ctx.endpoints.issuer, &provider.id);
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", &redirect_uri),
        ("code_verifier", &trip.verifier),
    ];
    let mut req = up.http.post(&meta.token_endpoint);
    match meta.client_auth {
        ClientAuth::Basic => {
            req = req.basic_auth(
                form_encoded(&provider.client_id),
                Some(form_encoded(provider.client_secret.expose())),
            );
        }
        ClientAuth::Post => {
            form.push(("client_id", &provider.client_id));
            form.push(("client_secret", provider.client_secret.expose()));
        }
    }
    let tokens = up
        .call(req.form(&form), timeout(provider), "the token endpoint")
        .await?;
    let id_token = tokens
        .get("id_token")
        .and_then(Value::as_str)
        .ok_or_else(|| Why::Broken("the token response has no id_token".into()))?;
    let expected = Expected {
        issuer: &meta.issuer,
        client_id: &provider.client_id,
        nonce: &trip.nonce,
        algorithms: &meta.algorithms,
    };
    let keys = up.keys(ctx.now, index, provider, &meta, false).await?;
    let mut claims = match oidc::verify_id_token(id_token, &keys, &expected, ctx.now) {
        Err(IdTokenError::UnknownKey(kid)) => {
            log::info!(
                "upstream sign-in with {:?}: key {kid:?} is new, fetching the key set",
                provider.id
            );
            let keys = up.keys(ctx.now, index, provider, &meta, true).await?;
            oidc::verify_id_token(id_token, &keys, &expected, ctx.now)
        }
        other => other,
    }
    .map_err(|e| Why::Broken(e.to_string()))?;
    let names = ClaimNames {
        subject: provider.subject_claim(),
        name: provider.name_claim(),
        email: provider.email_claim(),
        groups: provider.groups_claim(),
    };
    let access_token = tokens.get("access_token").and_then(Value::as_str);
    if let (Some(userinfo), Some(token)) = (&meta.userinfo_endpoint, access_token)
        && oidc::needs_userinfo(&claims, &names, !provider.allowed_groups.is_empty())
    {
        let info = up
            .call(
                up.http.get(userinfo).bearer_auth(token),
                timeout(provider),
                "the UserInfo endpoint",
            )
            .await?;
        let Value::Object(info) = info else {
            return Err(Why::Broken(
                "the UserInfo response is not a JSON object".into(),
            ));
        };
        oidc::merge_userinfo(&mut claims, &info).map_err(Why::Broken)?;
    }
    oidc::identity(&claims, &names).map_err(Why::Broken)
}

/// The GitHub half: the code exchange, then the user, the e-mail addresses and (when groups
/// decide) the organisations from its REST API.
async fn github_person(
    ctx: &Ctx<'_>,
    provider: &Provider,
    trip: &UpstreamLogin,
    code: &str,
) -> Result<Identity, Why> {
    let up = ctx.upstream;
    let redirect_uri = callback_url(&ctx.endpoints.issuer, &provider.id);
    let form = [
        ("client_id", provider.client_id.as_str()),
        ("client_secret", provider.client_secret.expose()),
        ("code", code),
        ("redirect_uri", &redirect_uri),
        ("code_verifier", &trip.verifier),
    ];
    let answer = up
        .call(
            up.http.post(provider.token_url()).form(&form),
            timeout(provider),
            "GitHub's token endpoint",
        )
        .await?;
    let token = github::access_token(&answer).map_err(Why::Broken)?;
    let api = |path: &str| {
        up.http
            .get(format!("{}{path}", provider.api_url()))
            .bearer_auth(&token)
            .header(reqwest::header::ACCEPT, "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
    };
    let user = up
        .call(api("/user"), timeout(provider), "GitHub's user API")
        .await?;
    let emails = up
        .call(
            api("/user/emails"),
            timeout(provider),
            "GitHub's e-mail API",
        )
        .await?;
    let orgs = if provider.allowed_groups.is_empty() {
        None
    } else {
        Some(
            up.call(
                api("/user/orgs"),
                timeout(provider),
                "GitHub's organisation API",
            )
            .await?,
        )
    };
    github::identity(&user, &emails, orgs.as_ref(), provider.subject_claim()).map_err(Why::Broken)
}

/// How the consent page names the person: for an upstream sign-in, the name and e-mail address
/// the provider gave, and which provider; otherwise the username.
pub fn shown_as(ctx: &Ctx<'_>, session: &Session) -> String {
    let Some(up) = &session.upstream else {
        return session.username.clone();
    };
    let provider = find(ctx, &up.provider).map_or(up.provider.as_str(), |(_, p)| p.name.as_str());
    let who = match (&up.name, &up.email) {
        (Some(n), Some(e)) if n != e => format!("{n} ({e})"),
        (Some(n), _) => n.clone(),
        (None, Some(e)) => e.clone(),
        (None, None) => session.username.clone(),
    };
    format!("{who}, with {provider}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn basic_credentials_are_form_encoded_first() {
        assert_eq!(super::form_encoded("a b:c/é"), "a+b%3Ac%2F%C3%A9");
    }
}
