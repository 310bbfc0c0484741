//! The person's side (docs/behaviour.md §15): the account page listing every application the
//! person approved, with Revoke, and Sign out. Signed-in people only; anyone else is asked to
//! sign in first, through the same sign-in as an authorization.

use super::authorization::{self, Answer, Next};
use super::sessions::{self, BROWSER_COOKIE, SignedIn};
use super::{Browser, Ctx, Kind, Problem, clients, grants, upstream};
use crate::oauth::cimd;
use crate::oauth::errors::ErrorCode;
use crate::oauth::params::Params;
use crate::secret;
use crate::settings::LoginMode;
use crate::store::Backend;

/// One application on the account page.
#[derive(Debug, Clone)]
pub struct App {
    pub client_id: String,
    /// Its name, or none when its registration is gone.
    pub name: Option<String>,
    /// For a client identified by a URL (a metadata document), the host that vouches for it.
    pub host: Option<String>,
    pub scopes: Vec<String>,
    pub resource: Option<String>,
    pub first_use: u64,
    pub last_use: u64,
}

/// The account page.
#[derive(Debug, Clone)]
pub struct Account {
    pub username: String,
    /// Ties the page's forms (Revoke, Sign out) to this session.
    pub csrf: String,
    pub apps: Vec<App>,
    /// The name of the application whose access was just revoked.
    pub revoked: Option<String>,
}

/// What the account page answers.
#[derive(Debug, Clone)]
pub enum Outcome {
    Show(Box<Account>),
    /// Not signed in: the sign-in page first.
    SignIn(Box<Answer>),
    /// Done; back to the account page at this URL (303).
    Back(String),
    /// Signed out: the session is gone and its cookie is removed; on to this URL (303).
    SignedOut(String),
    Refused(Problem),
}

impl From<Problem> for Outcome {
    fn from(p: Problem) -> Self {
        Self::Refused(p)
    }
}

/// The CSRF token of the account page's forms: bound to the session that was shown the page.
fn csrf(signed_in: &SignedIn) -> String {
    secret::hash(&format!("account:{}", signed_in.id))
}

fn forged() -> Problem {
    Problem::new(
        Kind::Forbidden,
        ErrorCode::InvalidRequest,
        "This form was not sent from your account page. Open the account page and try again.",
    )
}

/// The signed-in person, or the answer that asks them to sign in (in dev mode, a session at
/// once, as for an authorization).
async fn signed_in(
    ctx: &Ctx<'_>,
    browser: &Browser<'_>,
) -> Result<Result<SignedIn, Outcome>, Problem> {
    if let Some(s) = sessions::current(ctx, browser).await? {
        return Ok(Ok(s));
    }
    if ctx.settings.login.mode == LoginMode::Dev {
        let (_, session) = sessions::start(ctx, "dev", None).await?;
        return Ok(Err(Outcome::SignIn(Box::new(Answer {
            next: Next::Continue(format!("{}/account", ctx.endpoints.issuer)),
            session: Some(session),
            browser: None,
        }))));
    }
    let (binding, new_binding) = match browser.cookie(BROWSER_COOKIE) {
        Some(b) => (b.to_owned(), None),
        None => {
            let b = secret::random_token();
            (b.clone(), Some(b))
        }
    };
    let (request_id, pending) = authorization::new_pending(ctx, &binding, None).await?;
    if let Some(answer) = upstream::straight_on(ctx, &request_id, &pending, browser).await {
        return Ok(Err(Outcome::SignIn(Box::new(Answer {
            browser: new_binding,
            ..answer
        }))));
    }
    let prompt = authorization::sign_in_prompt(request_id, pending, None, String::new(), None);
    Ok(Err(Outcome::SignIn(Box::new(Answer {
        next: Next::Ask(Box::new(prompt)),
        session: None,
        browser: new_binding,
    }))))
}

/// `GET /account`: the applications the person approved, most recently used first.
/// `revoked` names a client whose access was just revoked, to say so.
pub async fn show(ctx: &Ctx<'_>, browser: &Browser<'_>, revoked: Option<&str>) -> Outcome {
    let result = async {
        let signed_in = match signed_in(ctx, browser).await? {
            Ok(s) => s,
            Err(ask) => return Ok(ask),
        };
        let username = &signed_in.session.username;
        let mut apps = Vec::new();
        for grant in grants::of(ctx, username).await? {
            // A document client's name comes from its document (cached); one that can no
            // longer be fetched is listed by its client_id.
            let client = clients::find(ctx, &grant.client_id)
                .await?
                .client()
                .ok()
                .flatten();
            apps.push(App {
                host: cimd::is_document_url(&grant.client_id)
                    .then(|| cimd::display_host(&grant.client_id))
                    .flatten(),
                name: client.map(|c| c.display_name().to_owned()),
                client_id: grant.client_id,
                scopes: grant.scopes,
                resource: grant.resource,
                first_use: grant.first_use,
                last_use: grant.last_use,
            });
        }
        let revoked = match revoked {
            Some(id) => Some(
                ctx.store
                    .client(id)
                    .await?
                    .map_or_else(|| id.to_owned(), |c| c.display_name().to_owned()),
            ),
            None => None,
        };
        Ok::<_, Problem>(Outcome::Show(Box::new(Account {
            username: username.clone(),
            csrf: csrf(&signed_in),
            apps,
            revoked,
        })))
    };
    result.await.unwrap_or_else(Outcome::from)
}

/// The signed-in person behind a form of the account page, once the form is known to be ours.
async fn form_session(
    ctx: &Ctx<'_>,
    form: &Params<'_>,
    browser: &Browser<'_>,
) -> Result<Result<SignedIn, Outcome>, Problem> {
    if !browser.form_is_ours(&ctx.endpoints.origin) {
        return Err(forged());
    }
    let Some(signed_in) = sessions::current(ctx, browser).await? else {
        // The session ended while the page was open: sign in again, then the page.
        return Ok(Err(Outcome::Back(format!(
            "{}/account",
            ctx.endpoints.issuer
        ))));
    };
    let sent = form.get("csrf_token").unwrap_or("");
    if !secret::equal(sent, &csrf(&signed_in)) {
        return Err(forged());
    }
    Ok(Ok(signed_in))
}

/// `POST /account/revoke`: ends the person's grant for `client_id` — its refresh tokens, access
/// tokens and codes stop working at once, and the approval is forgotten.
pub async fn revoke(ctx: &Ctx<'_>, form: &Params<'_>, browser: &Browser<'_>) -> Outcome {
    let result = async {
        let signed_in = match form_session(ctx, form, browser).await? {
            Ok(s) => s,
            Err(back) => return Ok(back),
        };
        let client_id = form.get("client_id").unwrap_or("");
        grants::revoke(ctx, &signed_in.session.username, client_id).await?;
        let mut url = url::Url::parse(&format!("{}/account", ctx.endpoints.issuer))
            .map_err(|_| Problem::new(Kind::Internal, ErrorCode::ServerError, "bad issuer"))?;
        url.query_pairs_mut().append_pair("revoked", client_id);
        Ok::<_, Problem>(Outcome::Back(url.into()))
    };
    result.await.unwrap_or_else(Outcome::from)
}

/// `POST /account/signout`: ends the session (here and in every process sharing the store).
pub async fn sign_out(ctx: &Ctx<'_>, form: &Params<'_>, browser: &Browser<'_>) -> Outcome {
    let result = async {
        let signed_in = match form_session(ctx, form, browser).await? {
            Ok(s) => s,
            Err(back) => return Ok(back),
        };
        ctx.store.remove_session(&signed_in.id).await?;
        Ok::<_, Problem>(Outcome::SignedOut(format!(
            "{}/account?signed_out=1",
            ctx.endpoints.issuer
        )))
    };
    result.await.unwrap_or_else(Outcome::from)
}
