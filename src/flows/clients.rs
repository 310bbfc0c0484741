//! Client registration (RFC 7591) and management (RFC 7592), for the JSON API, the HTML form
//! and the operator's command line alike; and `find`, the one way every flow looks a client
//! up, whether it registered or publishes a metadata document (docs/behaviour.md §12).

use serde::Serialize;

use super::{Browser, Ctx, Kind, Problem};
use crate::oauth::cimd::{self, Failure};
use crate::oauth::errors::ErrorCode;
use crate::oauth::params::Params;
use crate::oauth::register::{self, Field, MetadataInput, RegisterError};
use crate::records::{
    Client, ClientMetadata, GRANT_CLIENT_CREDENTIALS, RegisteredBy, ResourceServer,
};
use crate::secret;
use crate::store::Backend;

/// What a client_id names.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// A registered client (possibly lapsed: `Client::is_current`), or the client a metadata
    /// document describes.
    Found(Box<Client>),
    /// Not registered (or forgotten).
    NotFound,
    /// A metadata document URL whose document could not be used.
    Failed(Failure),
}

impl Lookup {
    /// The client, when there is one; a document failure as it is.
    pub fn client(self) -> Result<Option<Client>, Failure> {
        match self {
            Self::Found(c) => Ok(Some(*c)),
            Self::NotFound => Ok(None),
            Self::Failed(f) => Err(f),
        }
    }
}

/// The client named by `client_id`, for `/authorize`, client authentication at `/token`,
/// `/revoke` and `/introspect`, and the consent steps alike: a registered client from the
/// store, or — while `cimd.enabled` — the client whose metadata document the URL names. A
/// storage failure is a `Problem` (503), never "not found".
pub async fn find(ctx: &Ctx<'_>, client_id: &str) -> Result<Lookup, Problem> {
    if ctx.settings.cimd.enabled && cimd::is_document_url(client_id) {
        return super::cimd::resolve(ctx, client_id).await;
    }
    Ok(match ctx.store.client_cached(client_id).await? {
        Some(c) => Lookup::Found(Box::new(c)),
        None => Lookup::NotFound,
    })
}

/// A client just created, with the secrets that are shown once and then kept only hashed.
#[derive(Debug, Clone)]
pub struct Created {
    pub client: Client,
    pub client_secret: Option<String>,
    pub registration_access_token: String,
}

/// Why a registration was refused.
#[derive(Debug, Clone)]
pub enum Refusal {
    /// Registration is disabled; the person must ask the operator.
    Disabled,
    /// The initial access token is missing or wrong.
    InitialToken,
    /// The HTML form was not sent from this server's page (its CSRF token does not match).
    Forged,
    /// The metadata is not acceptable; the error names the field for the form.
    Invalid(RegisterError),
    /// Anything else: the body could not be read, the store failed.
    Problem(Problem),
}

impl Refusal {
    /// The refusal as an API answer.
    pub fn problem(&self) -> Problem {
        match self {
            Self::Disabled => Problem::new(
                Kind::Forbidden,
                ErrorCode::AccessDenied,
                "Dynamic client registration is disabled on this server; ask its operator to register your client.",
            ),
            Self::InitialToken => Problem::new(
                Kind::Token,
                ErrorCode::InvalidToken,
                "This server requires an initial access token (Authorization: Bearer) to register clients.",
            ),
            Self::Forged => Problem::new(
                Kind::Forbidden,
                ErrorCode::InvalidRequest,
                "This form expired or was not sent from this site. Please check the values and submit it again.",
            ),
            Self::Invalid(e) => Problem::request(e.error.clone()),
            Self::Problem(p) => p.clone(),
        }
    }
}

/// The RFC 7591 §3.2.1 client information response: everything stored, the identifiers, and
/// the secrets when they are shown (once).
#[derive(Debug, Clone, Serialize)]
pub struct ClientInfo {
    #[serde(flatten)]
    pub metadata: ClientMetadata,
    pub client_id: String,
    pub client_id_issued_at: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// 0 = never (only for clients with a secret).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret_expires_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registration_access_token: Option<String>,
    pub registration_client_uri: String,
}

/// Whether people may register clients through the HTML form.
pub fn form_enabled(ctx: &Ctx<'_>) -> bool {
    let r = &ctx.settings.registration;
    r.enabled && r.form
}

/// RFC 7591 §3: registers a client from `input` (as read from the request), checking first
/// that registration is open and, when one is required, the initial access token (compared in
/// constant time).
pub async fn register(
    ctx: &Ctx<'_>,
    input: Result<MetadataInput, Refusal>,
    initial_access_token: Option<&str>,
) -> Result<Created, Refusal> {
    let settings = &ctx.settings.registration;
    if !settings.enabled {
        return Err(Refusal::Disabled);
    }
    let required = &settings.initial_access_token;
    let by = if required.is_empty() {
        RegisteredBy::Client
    } else if initial_access_token.is_some_and(|t| secret::equal(t, required)) {
        RegisteredBy::Operator
    } else {
        return Err(Refusal::InitialToken);
    };
    let metadata =
        register::validate(input?, &ctx.settings.scopes.supported).map_err(Refusal::Invalid)?;
    // Anyone may register, so a self-registered client that could use client_credentials
    // would let anyone mint tokens (docs/behaviour.md §11).
    if metadata.has_grant(GRANT_CLIENT_CREDENTIALS)
        && by == RegisteredBy::Client
        && !settings.allow_client_credentials
    {
        return Err(Refusal::Invalid(RegisterError::metadata(
            Field::Other,
            "the client_credentials grant is only for clients the operator registers (doorman clients register, or registration with the initial access token), because anyone can register here",
        )));
    }
    create(ctx, metadata, by, None)
        .await
        .map_err(Refusal::Problem)
}

/// The fields of the HTML registration form (docs/behaviour.md §5.5), as entered.
#[derive(Debug, Clone, Default)]
pub struct FormFields {
    pub client_name: String,
    /// One redirect URI per line.
    pub redirect_uris: String,
    pub confidential: bool,
    pub scope: String,
    /// The failed authorization's query, to retry it with the new client_id.
    pub retry: String,
    pub csrf_token: Option<String>,
    pub initial_access_token: Option<String>,
}

/// A client registered from the form, and the link that retries the failed authorization with
/// its new client_id (when the form came from one).
#[derive(Debug, Clone)]
pub struct FormCreated {
    pub created: Created,
    pub retry_link: Option<String>,
}

/// The cookie that holds the registration form's CSRF token (double submit).
pub const CSRF_COOKIE: &str = "doorman_csrf";

/// Registers a client from the HTML form: the form must be enabled, sent from this server's
/// page, and its CSRF token must be the one in the browser's cookie (double submit); then as
/// `register`.
pub async fn register_form(
    ctx: &Ctx<'_>,
    fields: &FormFields,
    browser: &Browser<'_>,
) -> Result<FormCreated, Refusal> {
    if !form_enabled(ctx) {
        return Err(Refusal::Disabled);
    }
    if !browser.form_is_ours(&ctx.endpoints.origin) {
        return Err(Refusal::Forged);
    }
    let csrf_cookie = browser.cookie(CSRF_COOKIE);
    let csrf_ok = match (csrf_cookie, fields.csrf_token.as_deref()) {
        (Some(c), Some(f)) => secret::equal(c, f),
        _ => false,
    };
    if !csrf_ok {
        return Err(Refusal::Forged);
    }
    let input = MetadataInput {
        client_name: Some(fields.client_name.clone()),
        redirect_uris: Some(
            fields
                .redirect_uris
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect(),
        ),
        token_endpoint_auth_method: Some(
            if fields.confidential {
                "client_secret_basic"
            } else {
                "none"
            }
            .into(),
        ),
        scope: Some(fields.scope.clone()),
        ..Default::default()
    };
    let created = register(ctx, Ok(input), fields.initial_access_token.as_deref()).await?;
    let retry_link = retry_link(ctx, &fields.retry, &created.client.client_id);
    Ok(FormCreated {
        created,
        retry_link,
    })
}

/// The failed authorization again, with the new client_id: always a link to this server's own
/// authorization endpoint, built with `Url`.
fn retry_link(ctx: &Ctx<'_>, retry: &str, client_id: &str) -> Option<String> {
    if retry.is_empty() {
        return None;
    }
    let original = Params::parse(retry.as_bytes());
    let mut url = url::Url::parse(&ctx.endpoints.authorization).ok()?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("client_id", client_id);
        for (k, v) in original.pairs().iter().filter(|(k, _)| k != "client_id") {
            q.append_pair(k, v);
        }
    }
    Some(url.into())
}

/// How long a lapsed registration is still remembered, so that the person and the client are
/// told it "expired" rather than "unknown"; then the store forgets it.
const EXPIRED_SHOWN: u64 = 7 * 86_400;

/// When a registration lapses: after `registration.client_ttl`, and — for a self-registered
/// client — after `registration.unused_ttl` while it was never used for an authorization, or
/// `registration.idle_ttl` after its last use (0 = never). So registrations that clients leave
/// behind (many register again on every connection) do not pile up (docs/behaviour.md §6).
fn expiry(ctx: &Ctx<'_>, client: &Client) -> u64 {
    let r = &ctx.settings.registration;
    let after = |from: u64, ttl: u64| (ttl > 0).then(|| from.saturating_add(ttl));
    let lapse = match (client.by_operator(), client.used) {
        (true, _) => None,
        (false, false) => after(client.issued_at, r.unused_ttl),
        (false, true) => after(client.last_used.max(client.issued_at), r.idle_ttl),
    };
    match (after(client.issued_at, r.client_ttl), lapse) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b).unwrap_or(0),
    }
}

/// How often a client's last use is written down: once a day is precise enough for a lapse
/// counted in days, and keeps refreshes from writing the client every time.
const USE_NOTED_EVERY: u64 = 86_400;

/// Stores `client`, to be kept by the store until a week after it lapses (a client's lifetime
/// is a store TTL too, so lapsed registrations do not pile up).
async fn save(ctx: &Ctx<'_>, client: &Client) -> Result<(), Problem> {
    let ttl = (client.expires_at != 0).then(|| {
        std::time::Duration::from_secs(
            client
                .expires_at
                .saturating_sub(ctx.now)
                .saturating_add(EXPIRED_SHOWN),
        )
    });
    Ok(ctx.store.put_client(client, ttl).await?)
}

/// Creates and stores a client (the operator's command line comes here directly); returns
/// only after the store confirmed the write (docs/behaviour.md §2).
pub async fn create(
    ctx: &Ctx<'_>,
    metadata: ClientMetadata,
    registered_by: RegisteredBy,
    resource_server: Option<ResourceServer>,
) -> Result<Created, Problem> {
    let client_secret = metadata.is_confidential().then(secret::random_token);
    let registration_access_token = secret::random_token();
    let mut client = Client {
        client_id: secret::ordered_id(),
        secret_hash: client_secret.as_deref().map(secret::hash),
        registration_token_hash: secret::hash(&registration_access_token),
        metadata,
        issued_at: ctx.now,
        expires_at: 0,
        registered_by,
        resource_server,
        used: false,
        last_used: 0,
    };
    client.expires_at = expiry(ctx, &client);
    save(ctx, &client).await?;
    Ok(Created {
        client,
        client_secret,
        registration_access_token,
    })
}

/// Notes that `client` was used (a code issued, a token refreshed): it no longer lapses as
/// unused, and a self-registered client's idle time starts again. A metadata-document client
/// is not a registration: nothing is stored.
pub async fn mark_used(ctx: &Ctx<'_>, client: &Client) -> Result<(), Problem> {
    let noted_lately = client.last_used.saturating_add(USE_NOTED_EVERY) > ctx.now;
    let idle_counts = !client.by_operator() && ctx.settings.registration.idle_ttl > 0;
    if client.registered_by == RegisteredBy::Document
        || (client.used && (noted_lately || !idle_counts))
    {
        return Ok(());
    }
    // Written back from an exact read: `client` may come from the Redis client cache, and a
    // change made by another process an instant ago (a rotated registration access token)
    // must not be overwritten with what came before it.
    let Some(mut client) = ctx.store.client(&client.client_id).await? else {
        return Ok(());
    };
    client.used = true;
    client.last_used = ctx.now;
    client.expires_at = expiry(ctx, &client);
    save(ctx, &client).await
}

/// The information response for `client`, with the secrets given (shown once).
pub fn info(
    ctx: &Ctx<'_>,
    client: &Client,
    client_secret: Option<&str>,
    registration_access_token: Option<&str>,
) -> ClientInfo {
    ClientInfo {
        metadata: client.metadata.clone(),
        client_id: client.client_id.clone(),
        client_id_issued_at: client.issued_at,
        client_secret: client_secret.map(str::to_owned),
        client_secret_expires_at: client.secret_hash.as_ref().map(|_| 0),
        registration_access_token: registration_access_token.map(str::to_owned),
        registration_client_uri: registration_client_uri(ctx, &client.client_id),
    }
}

/// The information response for a client just created.
pub fn created_info(ctx: &Ctx<'_>, created: &Created) -> ClientInfo {
    info(
        ctx,
        &created.client,
        created.client_secret.as_deref(),
        Some(&created.registration_access_token),
    )
}

fn registration_client_uri(ctx: &Ctx<'_>, client_id: &str) -> String {
    // client_ids are base64url, so they need no escaping in a path segment.
    format!("{}/register/{client_id}", ctx.endpoints.issuer)
}

/// RFC 6750 §3: the registration access token is missing or not this client's.
fn invalid_token(description: &str) -> Problem {
    Problem::new(Kind::Token, ErrorCode::InvalidToken, description)
}

/// RFC 7592 §2: the client named in the path, if `bearer` is its registration access token.
/// An unknown client and a wrong token look the same (§2.1).
async fn authorized(
    ctx: &Ctx<'_>,
    client_id: &str,
    bearer: Option<&str>,
) -> Result<Client, Problem> {
    let Some(token) = bearer else {
        return Err(invalid_token(
            "Send the registration access token as Authorization: Bearer.",
        ));
    };
    match ctx.store.client(client_id).await? {
        Some(c) if secret::verify(token, &c.registration_token_hash) => Ok(c),
        _ => Err(invalid_token(
            "The registration access token is not valid for this client.",
        )),
    }
}

/// RFC 7592 §2.1. The client secret is stored hashed, so it is not returned again; the
/// registration access token is replaced by a new one in every response (RFC 7592 §3 requires
/// it in the response, and only its hash is kept), and the old one stops working.
pub async fn read(
    ctx: &Ctx<'_>,
    client_id: &str,
    bearer: Option<&str>,
) -> Result<ClientInfo, Problem> {
    let mut client = authorized(ctx, client_id, bearer).await?;
    let token = rotate_registration_token(&mut client);
    save(ctx, &client).await?;
    Ok(info(ctx, &client, None, Some(&token)))
}

/// A new registration access token for `client` (RFC 7592 §2.1: the old one is invalidated).
fn rotate_registration_token(client: &mut Client) -> String {
    let token = secret::random_token();
    client.registration_token_hash = secret::hash(&token);
    token
}

fn invalid_metadata(description: String) -> Problem {
    Problem::new(Kind::Request, ErrorCode::InvalidClientMetadata, description)
}

/// RFC 7592 §2.2: replaces the metadata. The body must name the client, and may repeat its
/// secret; a client that becomes confidential gets a new secret, shown once.
pub async fn update(
    ctx: &Ctx<'_>,
    client_id: &str,
    bearer: Option<&str>,
    body: Result<&[u8], Problem>,
) -> Result<ClientInfo, Problem> {
    let mut client = authorized(ctx, client_id, bearer).await?;
    let body = body?;
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| invalid_metadata(format!("The request body is not valid JSON ({e}).")))?;
    if value.get("client_id").and_then(serde_json::Value::as_str) != Some(&client.client_id) {
        return Err(invalid_metadata(
            "The body's client_id must equal the client being updated (RFC 7592 §2.2).".into(),
        ));
    }
    if let Some(sent) = value
        .get("client_secret")
        .and_then(serde_json::Value::as_str)
    {
        let matches = client
            .secret_hash
            .as_deref()
            .is_some_and(|h| secret::verify(sent, h));
        if !matches {
            return Err(invalid_metadata(
                "The client_secret in the body does not match this client's secret.".into(),
            ));
        }
    }
    let metadata = register::parse_json(body)
        .and_then(|i| register::validate(i, &ctx.settings.scopes.supported))
        .map_err(|e| Problem::request(e.error))?;
    let mut new_secret = None;
    match (metadata.is_confidential(), client.secret_hash.is_some()) {
        (true, false) => {
            let s = secret::random_token();
            client.secret_hash = Some(secret::hash(&s));
            new_secret = Some(s);
        }
        (false, true) => client.secret_hash = None,
        _ => {}
    }
    client.metadata = metadata;
    if client.metadata.has_grant(GRANT_CLIENT_CREDENTIALS)
        && !client.by_operator()
        && !ctx.settings.registration.allow_client_credentials
    {
        return Err(invalid_metadata(
            "The client_credentials grant is only for clients the operator registers.".into(),
        ));
    }
    let token = rotate_registration_token(&mut client);
    save(ctx, &client).await?;
    Ok(info(ctx, &client, new_secret.as_deref(), Some(&token)))
}

/// RFC 7592 §2.3: deletes the client.
pub async fn delete(ctx: &Ctx<'_>, client_id: &str, bearer: Option<&str>) -> Result<(), Problem> {
    let client = authorized(ctx, client_id, bearer).await?;
    ctx.store.delete_client(&client.client_id).await?;
    Ok(())
}
