//! The token endpoint's grants (RFC 6749 §4.1.3, §4.4, §6; OAuth 2.1 §4.1.3, §4.3), revocation
//! (RFC 7009) and introspection (RFC 7662). Every request here starts by authenticating the
//! client (RFC 6749 §2.3).

use std::time::Duration;

use serde::Serialize;

use super::{Ctx, Kind, Problem, clients, grants as person};
use crate::oauth::errors::{ErrorCode, OAuthError};
use crate::oauth::grants::{self, Credentials};
use crate::oauth::jwt;
use crate::oauth::params::Params;
use crate::oauth::scope;
use crate::oauth::target;
use crate::records::{
    Client, Family, GRANT_AUTHORIZATION_CODE, GRANT_CLIENT_CREDENTIALS, GRANT_REFRESH_TOKEN, Token,
    TokenKind, Upstream,
};
use crate::secret;
use crate::settings::TokenFormat;
use crate::store::{Backend, NewToken, Taken};

/// The successful token response (RFC 6749 §5.1).
#[derive(Debug, Clone, Serialize)]
pub struct Issued {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// The introspection response (RFC 7662 §2.2); only `active` when the token is not.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Introspection {
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
    /// The identity provider the person signed in with (docs/behaviour.md §14).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
}

/// An authenticated client and how it authenticated.
pub struct Caller {
    pub client: Client,
    pub credentials: Credentials,
}

fn invalid(code: ErrorCode, description: impl Into<String>) -> Problem {
    Problem::request(OAuthError::new(code, description))
}

/// Refuses repeated parameters (RFC 6749 §3.1), then authenticates the client by Basic or by
/// the body (docs/behaviour.md §7).
pub async fn authenticate(
    ctx: &Ctx<'_>,
    authorization: Option<&str>,
    params: &Params<'_>,
) -> Result<Caller, Problem> {
    if let Some(name) = params.first_repeated() {
        return Err(invalid(
            ErrorCode::InvalidRequest,
            format!("The {name} parameter was sent more than once."),
        ));
    }
    let refused = |f: grants::AuthFailure| Problem {
        kind: if f.error.code == ErrorCode::InvalidClient {
            Kind::Client { basic: f.basic }
        } else {
            Kind::Request
        },
        ..Problem::request(f.error)
    };
    let credentials = grants::credentials(authorization, params).map_err(refused)?;
    let client = clients::find(ctx, &credentials.client_id)
        .await?
        .client()
        .map_err(|why| {
            refused(grants::AuthFailure {
                error: OAuthError::new(
                    ErrorCode::InvalidClient,
                    format!("The client's metadata document could not be used: {why}."),
                ),
                basic: credentials.basic,
            })
        })?;
    grants::authenticate(&credentials, client.as_ref(), ctx.now).map_err(refused)?;
    match client {
        Some(client) => Ok(Caller {
            client,
            credentials,
        }),
        None => Err(refused(grants::AuthFailure {
            error: OAuthError::new(ErrorCode::InvalidClient, "Unknown client."),
            basic: credentials.basic,
        })),
    }
}

/// `POST /token`: the grant named by `grant_type`.
pub async fn grant(ctx: &Ctx<'_>, caller: &Caller, params: &Params<'_>) -> Result<Issued, Problem> {
    let client = &caller.client;
    match params.get("grant_type") {
        Some(GRANT_AUTHORIZATION_CODE) => exchange_code(ctx, client, params).await,
        Some(GRANT_REFRESH_TOKEN) => refresh(ctx, client, params).await,
        Some(GRANT_CLIENT_CREDENTIALS) => client_credentials(ctx, client, params).await,
        Some(other) => Err(invalid(
            ErrorCode::UnsupportedGrantType,
            format!("The grant_type {other:?} is not supported."),
        )),
        None => Err(invalid(
            ErrorCode::InvalidRequest,
            "The grant_type parameter is required.",
        )),
    }
}

fn require_grant(client: &Client, grant: &str) -> Result<(), Problem> {
    if client.metadata.has_grant(grant) {
        Ok(())
    } else {
        Err(invalid(
            ErrorCode::UnauthorizedClient,
            format!("This client is not registered for the {grant} grant."),
        ))
    }
}

/// What a new access token is for: everything of its record but its times. `upstream`: who
/// signed in upstream (docs/behaviour.md §14).
struct For<'a> {
    subject: &'a str,
    upstream: Option<&'a Upstream>,
    scopes: &'a [String],
    resource: Option<&'a str>,
    family_id: Option<&'a str>,
    grant_id: Option<&'a str>,
}

/// Issues an access token, and a refresh token when the grant belongs to a family that may
/// refresh (`refresh_scopes`); `invalid_grant` when the person's grant they would be issued
/// under (`access.grant_id`) is no longer in force. Notes the use on that grant.
async fn issue(
    ctx: &Ctx<'_>,
    client: &Client,
    access: For<'_>,
    refresh_scopes: Option<&[String]>,
) -> Result<Issued, Problem> {
    let t = &ctx.settings.tokens;
    let family_id = access.family_id;
    let access_scopes = access.scopes;
    let (subject, access_grant) = (access.subject, access.grant_id);
    let record = Token {
        client_id: client.client_id.clone(),
        subject: subject.to_owned(),
        upstream: access.upstream.cloned(),
        scopes: access_scopes.to_vec(),
        resource: access.resource.map(str::to_owned),
        family_id: family_id.map(str::to_owned),
        grant_id: access_grant.map(str::to_owned),
        issued_at: ctx.now,
        expires_at: ctx.now + t.access_ttl,
    };
    let access = match t.format {
        TokenFormat::Opaque => secret::ordered_token(),
        TokenFormat::Jwt => jwt_for(ctx, &record).await?,
    };
    let refresh = match (refresh_scopes, family_id) {
        (Some(scopes), Some(_)) => Some((
            secret::ordered_token(),
            Token {
                scopes: scopes.to_vec(),
                expires_at: ctx.now + t.refresh_ttl,
                ..record.clone()
            },
        )),
        _ => None,
    };
    // Either format has its record, under the hash of the whole token: introspection,
    // revocation and `access::verify` find it the same way.
    let mut written = vec![NewToken {
        kind: TokenKind::Access,
        token: &access,
        record: &record,
        ttl: Duration::from_secs(t.access_ttl),
    }];
    if let Some((token, record)) = &refresh {
        written.push(NewToken {
            kind: TokenKind::Refresh,
            token,
            record,
            ttl: Duration::from_secs(t.refresh_ttl),
        });
    }
    // One write for both: one durable commit on the embedded store, one round trip on Redis.
    // Tokens issued under a person's grant are written with a read of that grant in the same
    // round trip; it must still be in force (the person may have revoked the application on
    // the account page, docs/behaviour.md §15), else the tokens, never handed out, are removed.
    match access_grant {
        Some(grant_id) => {
            let grant = ctx
                .store
                .put_tokens_reading_grant(&written, subject, &client.client_id)
                .await?;
            match person::in_force(ctx, grant, grant_id) {
                Some(grant) => person::touch(ctx, subject, &grant).await?,
                None => {
                    for t in &written {
                        ctx.store.delete_token(t.kind, t.token).await?;
                    }
                    return Err(invalid(
                        ErrorCode::InvalidGrant,
                        "The person revoked this application's access; ask them to authorize it again.",
                    ));
                }
            }
        }
        None => ctx.store.put_tokens(&written).await?,
    }
    let refresh_token = refresh.map(|(token, _)| token);
    Ok(Issued {
        access_token: access,
        token_type: "Bearer",
        expires_in: t.access_ttl,
        scope: scope::join(access_scopes),
        refresh_token,
    })
}

/// An RFC 9068 access token for `record`, signed by the key signing now. `aud` is the resource
/// as the client sent it (a verifier comparing strings accepts it), or the issuer when the
/// token names no resource (RFC 9068 §3: a default audience, here "this server only").
async fn jwt_for(ctx: &Ctx<'_>, record: &Token) -> Result<String, Problem> {
    let key = ctx.signing.signer(ctx).await?;
    let claims = jwt::Claims {
        iss: ctx.endpoints.issuer.clone(),
        sub: record.subject.clone(),
        aud: record
            .resource
            .clone()
            .unwrap_or_else(|| ctx.endpoints.issuer.clone()),
        client_id: record.client_id.clone(),
        scope: scope::join(&record.scopes),
        exp: record.expires_at,
        iat: record.issued_at,
        jti: secret::ordered_id(),
        family: record.family_id.clone(),
        idp: record.upstream.as_ref().map(|u| u.provider.clone()),
        name: record.upstream.as_ref().and_then(|u| u.name.clone()),
    };
    key.pair.sign(&claims).map_err(|e| {
        log::error!("signing an access token: {e}");
        Problem::new(
            Kind::Internal,
            ErrorCode::ServerError,
            "The access token could not be signed; the operator has been told in the log.",
        )
    })
}

/// Marks a token family revoked. The mark outlives every token of the family (none lives
/// longer than the longer TTL, and none is issued after the mark), so tokens never need a
/// "family exists" record that could expire before a rotated refresh token does, and nothing
/// ever writes `revoked: false` over a revocation.
async fn revoke_family(ctx: &Ctx<'_>, family_id: &str, client_id: &str) -> Result<(), Problem> {
    let t = &ctx.settings.tokens;
    let family = Family {
        client_id: client_id.to_owned(),
        revoked: true,
    };
    let ttl = Duration::from_secs(t.access_ttl.max(t.refresh_ttl) + 60);
    Ok(ctx.store.revoke_family(family_id, &family, ttl).await?)
}

async fn family_active(ctx: &Ctx<'_>, family_id: Option<&str>) -> Result<bool, Problem> {
    match family_id {
        None => Ok(true),
        Some(id) => Ok(!ctx.store.family(id).await?.is_some_and(|f| f.revoked)),
    }
}

/// RFC 6749 §4.1.3 with PKCE (RFC 7636 §4.6): the code is taken once; a replay revokes what
/// was issued from it (OAuth 2.1 §4.1.3).
async fn exchange_code(
    ctx: &Ctx<'_>,
    client: &Client,
    params: &Params<'_>,
) -> Result<Issued, Problem> {
    require_grant(client, GRANT_AUTHORIZATION_CODE)?;
    let Some(code) = params.get("code") else {
        return Err(invalid(
            ErrorCode::InvalidRequest,
            "The code parameter is required.",
        ));
    };
    let invalid_code = || {
        invalid(
            ErrorCode::InvalidGrant,
            "The code is invalid, expired or was already used.",
        )
    };
    let remember = Duration::from_secs(ctx.settings.tokens.code_ttl + 600);
    let record = match ctx
        .store
        .take_code(code, &client.client_id, remember, ctx.now)
        .await?
    {
        Taken::Fresh(record) => record,
        // Another client presenting the code cannot burn it.
        Taken::Held(_) => {
            return Err(invalid(
                ErrorCode::InvalidGrant,
                "The code was issued to another client.",
            ));
        }
        // A replay by the code's own client revokes what was issued from it; anyone else's
        // replay must not be able to revoke a victim's tokens.
        Taken::Used { record, .. } => {
            if record.client_id == client.client_id {
                revoke_family(ctx, &record.family_id, &client.client_id).await?;
            }
            return Err(invalid_code());
        }
        Taken::Missing => return Err(invalid_code()),
    };
    grants::check_code(&record, &client.client_id, params, ctx.now).map_err(Problem::request)?;
    let refresh = client.metadata.has_grant(GRANT_REFRESH_TOKEN);
    let access = For {
        subject: &record.username,
        upstream: record.upstream.as_ref(),
        scopes: &record.scopes,
        resource: record.resource.as_deref(),
        family_id: Some(&record.family_id),
        grant_id: record.grant_id.as_deref(),
    };
    issue(
        ctx,
        client,
        access,
        refresh.then_some(record.scopes.as_slice()),
    )
    .await
}

/// RFC 6749 §6 with rotation (RFC 9700 §4.14.2): every check that can fail runs before the
/// token is taken, so neither another client nor a request with a wrong scope or resource
/// burns it (a retry would otherwise count as reuse). A rotated-out token presented again by
/// its own client within `tokens.refresh_grace` (a retry, or refreshes racing each other)
/// gets tokens of the same family; after that, reuse revokes the whole family.
async fn refresh(ctx: &Ctx<'_>, client: &Client, params: &Params<'_>) -> Result<Issued, Problem> {
    require_grant(client, GRANT_REFRESH_TOKEN)?;
    let Some(token) = params.get("refresh_token") else {
        return Err(invalid(
            ErrorCode::InvalidRequest,
            "The refresh_token parameter is required.",
        ));
    };
    let invalid_token = || {
        invalid(
            ErrorCode::InvalidGrant,
            "The refresh token is invalid, expired, revoked or was already used.",
        )
    };
    let checks = |t: &Token| -> Result<Vec<String>, Problem> {
        grants::check_refresh(t, &client.client_id, ctx.now).map_err(Problem::request)?;
        let scopes = grants::refresh_scopes(&t.scopes, params).map_err(Problem::request)?;
        grants::check_resource(params, t.resource.as_deref()).map_err(Problem::request)?;
        Ok(target::within_client(&scopes, client))
    };
    let found = ctx.store.token(TokenKind::Refresh, token).await?;
    let checked = found.as_ref().map(checks).transpose()?;
    let remember = Duration::from_secs(
        found
            .as_ref()
            .map_or(0, |f| f.expires_at.saturating_sub(ctx.now))
            .max(60),
    );
    let (record, scopes) = match ctx
        .store
        .take_refresh(token, &client.client_id, remember, ctx.now)
        .await?
    {
        Taken::Fresh(record) => {
            let scopes = match checked {
                Some(scopes) => scopes,
                None => checks(&record)?,
            };
            (record, scopes)
        }
        Taken::Used { record, at } if record.client_id == client.client_id => {
            let grace = ctx.settings.tokens.refresh_grace;
            if grace == 0 || ctx.now.saturating_sub(at) > grace {
                if let Some(family_id) = &record.family_id {
                    revoke_family(ctx, family_id, &client.client_id).await?;
                }
                return Err(invalid_token());
            }
            let scopes = checks(&record)?;
            (record, scopes)
        }
        _ => return Err(invalid_token()),
    };
    let family_id = record.family_id.clone().unwrap_or_default();
    if !family_active(ctx, Some(&family_id)).await? {
        return Err(invalid_token());
    }
    let refresh_scopes = target::within_client(&record.scopes, client);
    clients::mark_used(ctx, client).await?;
    let access = For {
        subject: &record.subject,
        upstream: record.upstream.as_ref(),
        scopes: &scopes,
        resource: record.resource.as_deref(),
        family_id: Some(&family_id),
        grant_id: record.grant_id.as_deref(),
    };
    issue(ctx, client, access, Some(&refresh_scopes)).await
}

/// RFC 6749 §4.4: a confidential client's own access token; no refresh token.
async fn client_credentials(
    ctx: &Ctx<'_>,
    client: &Client,
    params: &Params<'_>,
) -> Result<Issued, Problem> {
    if client.secret_hash.is_none() {
        return Err(invalid(
            ErrorCode::UnauthorizedClient,
            "The client_credentials grant is for confidential clients only.",
        ));
    }
    require_grant(client, GRANT_CLIENT_CREDENTIALS)?;
    let s = ctx.settings;
    // Anyone can register a client, so only the operator's may mint tokens for themselves
    // (docs/behaviour.md §11).
    if !client.by_operator() && !s.registration.allow_client_credentials {
        return Err(invalid(
            ErrorCode::UnauthorizedClient,
            "The client_credentials grant is only for clients the operator registered.",
        ));
    }
    let policy = super::target_policy(s);
    let target = target::resolve(
        params.get("scope"),
        &params.all("resource"),
        &policy,
        target::registered_scopes(&client.metadata).as_deref(),
        false,
    )
    .map_err(Problem::request)?;
    let access = For {
        subject: &client.client_id,
        upstream: None,
        scopes: &target.scopes,
        resource: target.resource.as_deref(),
        family_id: None,
        grant_id: None,
    };
    issue(ctx, client, access, None).await
}

/// Whether a token is in force: not expired, its family not revoked, its client still
/// registered, and the person's grant it was issued under not revoked.
pub async fn active(ctx: &Ctx<'_>, t: &Token) -> Result<bool, Problem> {
    if t.expires_at <= ctx.now || !family_active(ctx, t.family_id.as_deref()).await? {
        return Ok(false);
    }
    // A document client whose document can no longer be used has no active tokens.
    let Ok(Some(client)) = clients::find(ctx, &t.client_id).await?.client() else {
        return Ok(false);
    };
    if !client.is_current(ctx.now) {
        return Ok(false);
    }
    match &t.grant_id {
        Some(id) => Ok(person::alive(ctx, &t.subject, &t.client_id, id)
            .await?
            .is_some()),
        None => Ok(true),
    }
}

/// Finds a token by value: access first, then refresh (or the other way round by hint; an
/// unknown hint is ignored, RFC 7009 §2.1).
async fn find_token(
    ctx: &Ctx<'_>,
    token: &str,
    hint: Option<&str>,
) -> Result<Option<(Token, TokenKind)>, Problem> {
    let kinds = if hint == Some("refresh_token") {
        [TokenKind::Refresh, TokenKind::Access]
    } else {
        [TokenKind::Access, TokenKind::Refresh]
    };
    for kind in kinds {
        if let Some(t) = ctx.store.token(kind, token).await? {
            return Ok(Some((t, kind)));
        }
    }
    Ok(None)
}

fn token_param<'p>(params: &'p Params<'_>) -> Result<&'p str, Problem> {
    params.get("token").ok_or_else(|| {
        invalid(
            ErrorCode::InvalidRequest,
            "The token parameter is required.",
        )
    })
}

/// `POST /revoke` (RFC 7009 §2.1): done whether or not the token was known; another client's
/// token is refused (`unauthorized_client`) and left alone; revoking a refresh token revokes
/// its family.
pub async fn revoke(ctx: &Ctx<'_>, caller: &Caller, params: &Params<'_>) -> Result<(), Problem> {
    let token = token_param(params)?;
    let client_id = &caller.client.client_id;
    if let Some((t, kind)) = find_token(ctx, token, params.get("token_type_hint")).await? {
        if &t.client_id != client_id {
            return Err(invalid(
                ErrorCode::UnauthorizedClient,
                "This token was issued to another client; only that client may revoke it.",
            ));
        }
        ctx.store.delete_token(kind, token).await?;
        if kind == TokenKind::Refresh
            && let Some(f) = &t.family_id
        {
            revoke_family(ctx, f, client_id).await?;
        }
    }
    Ok(())
}

/// `POST /introspect` (RFC 7662), for the resource servers the operator declared,
/// authenticated as confidential clients. A token is active only while it has not expired,
/// its family is not revoked and its client is still registered, and only for a resource
/// server that serves its resource (RFC 7662 §2.2).
pub async fn introspect(
    ctx: &Ctx<'_>,
    caller: &Caller,
    params: &Params<'_>,
) -> Result<Introspection, Problem> {
    if caller.client.secret_hash.is_none() {
        return Err(Problem::new(
            Kind::Client {
                basic: caller.credentials.basic,
            },
            ErrorCode::InvalidClient,
            "Introspection needs a confidential client (a resource server with a secret).",
        ));
    }
    let Some(server) = &caller.client.resource_server else {
        return Err(Problem::new(
            Kind::Forbidden,
            ErrorCode::UnauthorizedClient,
            "Only resource servers the operator registered may introspect tokens (doorman clients register --resource-server).",
        ));
    };
    let token = token_param(params)?;
    let Some((t, kind)) = find_token(ctx, token, params.get("token_type_hint")).await? else {
        return Ok(Introspection::default());
    };
    // Resources are kept as sent; the server's were normalised when it was registered.
    let served = server.resources.is_empty()
        || t.resource
            .as_deref()
            .and_then(crate::oauth::resource::normalize)
            .is_some_and(|r| server.resources.contains(&r));
    if !served || !active(ctx, &t).await? {
        return Ok(Introspection::default());
    }
    Ok(Introspection {
        active: true,
        scope: Some(scope::join(&t.scopes)),
        client_id: Some(t.client_id),
        sub: Some(t.subject.clone()),
        // RFC 7662 §2.2: a human-readable identifier; after an upstream sign-in the name the
        // provider gave, else the subject.
        username: Some(
            t.upstream
                .as_ref()
                .and_then(|u| u.display_name())
                .map_or_else(|| t.subject.clone(), str::to_owned),
        ),
        provider: t.upstream.map(|u| u.provider),
        aud: t.resource,
        exp: Some(t.expires_at),
        iat: Some(t.issued_at),
        iss: Some(ctx.endpoints.issuer.clone()),
        token_type: Some(match kind {
            TokenKind::Refresh => "refresh_token",
            TokenKind::Access => "Bearer",
        }),
    })
}
