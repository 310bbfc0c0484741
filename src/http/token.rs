//! `POST /token` (RFC 6749 §3.2, OAuth 2.1 §3.2), `POST /revoke` (RFC 7009) and
//! `POST /introspect` (RFC 7662).

use std::time::Duration;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::http::common::{BodyError, no_store, read_body, store_problem};
use crate::oauth::errors::{ErrorCode, OAuthError};
use crate::oauth::grants::{self, AuthFailure, Credentials};
use crate::oauth::params::Params;
use crate::oauth::register::{
    GRANT_AUTHORIZATION_CODE, GRANT_CLIENT_CREDENTIALS, GRANT_REFRESH_TOKEN,
};
use crate::oauth::{resource, scope, secret};
use crate::store::{AuthCode, Client, Family, StoreError, Token, keys};

/// RFC 6749 §5.2: 400 with the error code; `invalid_client` is 401, with
/// `WWW-Authenticate: Basic` when the client tried Basic.
fn error_response(error: &OAuthError, basic: bool) -> HttpResponse {
    let status = if error.code == ErrorCode::InvalidClient {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::BAD_REQUEST
    };
    let mut res = HttpResponse::build(status);
    no_store(&mut res);
    if error.code == ErrorCode::InvalidClient && basic {
        res.insert_header((
            header::WWW_AUTHENTICATE,
            "Basic realm=\"doorman\", charset=\"UTF-8\"",
        ));
    }
    res.json(json!({"error": error.code.as_str(), "error_description": error.description}))
}

fn store_error(e: &StoreError) -> HttpResponse {
    let p = store_problem(e);
    let mut res = HttpResponse::build(p.status);
    no_store(&mut res);
    if let Some(s) = p.retry_after {
        res.insert_header((header::RETRY_AFTER, s.to_string()));
    }
    res.json(json!({"error": p.error.code.as_str(), "error_description": p.error.description}))
}

fn err(code: ErrorCode, description: impl Into<String>) -> OAuthError {
    OAuthError::new(code, description)
}

/// Reads the form body and authenticates the client; every endpoint here starts so.
async fn authenticated(
    req: &HttpRequest,
    state: &AppState,
    payload: web::Payload,
) -> Result<(Params<'static>, Client, Credentials), HttpResponse> {
    let media = crate::http::common::media_type(req);
    let body = read_body(payload).await.map_err(|e| {
        let (status, message) = match e {
            BodyError::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "The request body is larger than 64 KiB.",
            ),
            BodyError::Broken => (
                StatusCode::BAD_REQUEST,
                "The request body could not be read.",
            ),
        };
        let mut res = error_response(&err(ErrorCode::InvalidRequest, message), false);
        *res.status_mut() = status;
        res
    })?;
    if media != "application/x-www-form-urlencoded" {
        return Err(error_response(
            &err(
                ErrorCode::InvalidRequest,
                "Send the parameters as application/x-www-form-urlencoded.",
            ),
            false,
        ));
    }
    let params = Params::parse(&body).into_owned();
    if let Some(name) = params.first_repeated() {
        return Err(error_response(
            &err(
                ErrorCode::InvalidRequest,
                format!("The {name} parameter was sent more than once."),
            ),
            false,
        ));
    }
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let creds = grants::credentials(authorization, &params)
        .map_err(|f: AuthFailure| error_response(&f.error, f.basic))?;
    let client = state
        .store
        .client(&creds.client_id)
        .await
        .map_err(|e| store_error(&e))?;
    grants::authenticate(&creds, client.as_ref(), state.clock.now())
        .map_err(|f| error_response(&f.error, f.basic))?;
    let client = client.ok_or_else(|| {
        error_response(
            &err(ErrorCode::InvalidClient, "Unknown client."),
            creds.basic,
        )
    })?;
    Ok((params, client, creds))
}

/// `POST /token`.
pub async fn post_token(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> HttpResponse {
    let (params, client, creds) = match authenticated(&req, &state, payload).await {
        Ok(x) => x,
        Err(res) => return res,
    };
    let result = match params.get("grant_type") {
        Some(GRANT_AUTHORIZATION_CODE) => authorization_code(&state, &client, &params).await,
        Some(GRANT_REFRESH_TOKEN) => refresh_token(&state, &client, &params).await,
        Some(GRANT_CLIENT_CREDENTIALS) => client_credentials(&state, &client, &params).await,
        Some(other) => Ok(Err(err(
            ErrorCode::UnsupportedGrantType,
            format!("The grant_type {other:?} is not supported."),
        ))),
        None => Ok(Err(err(
            ErrorCode::InvalidRequest,
            "The grant_type parameter is required.",
        ))),
    };
    match result {
        Ok(Ok(body)) => {
            let mut res = HttpResponse::Ok();
            no_store(&mut res);
            res.json(body)
        }
        Ok(Err(e)) => error_response(&e, creds.basic),
        Err(e) => store_error(&e),
    }
}

type GrantResult = Result<Result<Value, OAuthError>, StoreError>;

fn require_grant(client: &Client, grant: &str) -> Result<(), OAuthError> {
    if client.metadata.has_grant(grant) {
        Ok(())
    } else {
        Err(err(
            ErrorCode::UnauthorizedClient,
            format!("This client is not registered for the {grant} grant."),
        ))
    }
}

/// Issues an access token (and a refresh token when the family allows refresh).
async fn issue(
    state: &AppState,
    client: &Client,
    subject: &str,
    access_scopes: &[String],
    refresh_scopes: Option<&[String]>,
    resource: Option<&str>,
    family_id: Option<&str>,
) -> Result<Value, StoreError> {
    let now = state.clock.now();
    let t = &state.settings.tokens;
    let access = secret::random_token();
    let record = Token {
        client_id: client.client_id.clone(),
        subject: subject.to_owned(),
        scopes: access_scopes.to_vec(),
        resource: resource.map(str::to_owned),
        family_id: family_id.map(str::to_owned),
        issued_at: now,
        expires_at: now + t.access_ttl,
    };
    state
        .store
        .set_json(
            &keys::access(&access),
            &record,
            Some(Duration::from_secs(t.access_ttl)),
        )
        .await?;
    let mut body = Map::new();
    body.insert("access_token".into(), json!(access));
    body.insert("token_type".into(), json!("Bearer"));
    body.insert("expires_in".into(), json!(t.access_ttl));
    body.insert("scope".into(), json!(scope::join(access_scopes)));
    if let (Some(scopes), Some(_)) = (refresh_scopes, family_id) {
        let refresh = secret::random_token();
        let record = Token {
            scopes: scopes.to_vec(),
            expires_at: now + t.refresh_ttl,
            ..record
        };
        state
            .store
            .set_json(
                &keys::refresh(&refresh),
                &record,
                Some(Duration::from_secs(t.refresh_ttl)),
            )
            .await?;
        body.insert("refresh_token".into(), json!(refresh));
    }
    Ok(Value::Object(body))
}

/// Marks a token family revoked. The mark outlives every token of the family (none lives
/// longer than the longer TTL, and none is issued after the mark), so tokens never need a
/// "family exists" record that could expire before a rotated refresh token does, and nothing
/// ever writes `revoked: false` over a revocation.
async fn revoke_family(
    state: &AppState,
    family_id: &str,
    client_id: &str,
) -> Result<(), StoreError> {
    let t = &state.settings.tokens;
    let family = Family {
        client_id: client_id.to_owned(),
        revoked: true,
    };
    state
        .store
        .set_json(
            &keys::family(family_id),
            &family,
            Some(Duration::from_secs(t.access_ttl.max(t.refresh_ttl) + 60)),
        )
        .await
}

async fn family_active(state: &AppState, family_id: Option<&str>) -> Result<bool, StoreError> {
    match family_id {
        None => Ok(true),
        Some(id) => Ok(!state
            .store
            .get_json::<Family>(&keys::family(id))
            .await?
            .is_some_and(|f| f.revoked)),
    }
}

async fn authorization_code(state: &AppState, client: &Client, params: &Params<'_>) -> GrantResult {
    if let Err(e) = require_grant(client, GRANT_AUTHORIZATION_CODE) {
        return Ok(Err(e));
    }
    let Some(code) = params.get("code") else {
        return Ok(Err(err(
            ErrorCode::InvalidRequest,
            "The code parameter is required.",
        )));
    };
    let invalid = || {
        Ok(Err(err(
            ErrorCode::InvalidGrant,
            "The code is invalid, expired or was already used.",
        )))
    };
    // Look first, so that another client presenting the code cannot burn it.
    match state.store.get_json::<AuthCode>(&keys::code(code)).await? {
        Some(c) if c.client_id != client.client_id => {
            return Ok(Err(err(
                ErrorCode::InvalidGrant,
                "The code was issued to another client.",
            )));
        }
        Some(_) => {}
        None => {
            // A replayed code revokes everything issued from it (OAuth 2.1 §4.1.3).
            if let Some(family_id) = state.store.get_raw(&keys::used_code(code)).await? {
                revoke_family(
                    state,
                    &String::from_utf8_lossy(&family_id),
                    &client.client_id,
                )
                .await?;
            }
            return invalid();
        }
    }
    let Some(record) = state.store.take_json::<AuthCode>(&keys::code(code)).await? else {
        return invalid();
    };
    let remember = Duration::from_secs(state.settings.tokens.code_ttl + 600);
    state
        .store
        .set_raw(
            &keys::used_code(code),
            record.family_id.as_bytes(),
            Some(remember),
        )
        .await?;
    if let Err(e) = grants::check_code(&record, &client.client_id, params, state.clock.now()) {
        return Ok(Err(e));
    }
    let refresh = client.metadata.has_grant(GRANT_REFRESH_TOKEN);
    let body = issue(
        state,
        client,
        &record.username,
        &record.scopes,
        refresh.then_some(record.scopes.as_slice()),
        record.resource.as_deref(),
        Some(&record.family_id),
    )
    .await?;
    Ok(Ok(body))
}

async fn refresh_token(state: &AppState, client: &Client, params: &Params<'_>) -> GrantResult {
    if let Err(e) = require_grant(client, GRANT_REFRESH_TOKEN) {
        return Ok(Err(e));
    }
    let Some(token) = params.get("refresh_token") else {
        return Ok(Err(err(
            ErrorCode::InvalidRequest,
            "The refresh_token parameter is required.",
        )));
    };
    let invalid = || {
        Ok(Err(err(
            ErrorCode::InvalidGrant,
            "The refresh token is invalid, expired, revoked or was already used.",
        )))
    };
    let Some(found) = state.store.get_json::<Token>(&keys::refresh(token)).await? else {
        // A rotated-out refresh token used again revokes the whole family.
        if let Some(family_id) = state.store.get_raw(&keys::used_refresh(token)).await? {
            revoke_family(
                state,
                &String::from_utf8_lossy(&family_id),
                &client.client_id,
            )
            .await?;
        }
        return invalid();
    };
    // Every check that can fail runs before the token is consumed, so neither another client
    // nor a request with a wrong scope or resource burns it (a retry would otherwise count as
    // reuse and revoke the family).
    if let Err(e) = grants::check_refresh(&found, &client.client_id, state.clock.now()) {
        return Ok(Err(e));
    }
    let scopes = match grants::refresh_scopes(&found.scopes, params) {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    if let Err(e) = grants::check_resource(params, found.resource.as_deref()) {
        return Ok(Err(e));
    }
    let Some(record) = state
        .store
        .take_json::<Token>(&keys::refresh(token))
        .await?
    else {
        return invalid();
    };
    let family_id = record.family_id.clone().unwrap_or_default();
    let remember = Duration::from_secs(record.expires_at.saturating_sub(state.clock.now()).max(60));
    state
        .store
        .set_raw(
            &keys::used_refresh(token),
            family_id.as_bytes(),
            Some(remember),
        )
        .await?;
    if !family_active(state, Some(&family_id)).await? {
        return invalid();
    }
    let body = issue(
        state,
        client,
        &record.subject,
        &scopes,
        Some(&record.scopes),
        record.resource.as_deref(),
        Some(&family_id),
    )
    .await?;
    Ok(Ok(body))
}

async fn client_credentials(state: &AppState, client: &Client, params: &Params<'_>) -> GrantResult {
    if client.secret_hash.is_none() {
        return Ok(Err(err(
            ErrorCode::UnauthorizedClient,
            "The client_credentials grant is for confidential clients only.",
        )));
    }
    if let Err(e) = require_grant(client, GRANT_CLIENT_CREDENTIALS) {
        return Ok(Err(e));
    }
    let requested = params.get("scope").unwrap_or("");
    let mut scopes = scope::narrow(requested, &state.settings.scopes.supported);
    scopes.retain(|s| s != "offline_access");
    if scopes.is_empty() {
        if !scope::split(requested).is_empty() && state.settings.scopes.default.is_empty() {
            return Ok(Err(err(
                ErrorCode::InvalidScope,
                "None of the requested scopes can be granted.",
            )));
        }
        scopes = state
            .settings
            .scopes
            .default
            .iter()
            .filter(|s| *s != "offline_access")
            .cloned()
            .collect();
    }
    let resources = params.all("resource");
    let resource = match resources.as_slice() {
        [] => match state.settings.resources.allowed.as_slice() {
            [only] => resource::normalize(only),
            _ => None,
        },
        [r] => match resource::normalize(r)
            .filter(|n| resource::is_served(n, &state.settings.resources.allowed))
        {
            Some(n) => Some(n),
            None => {
                return Ok(Err(err(
                    ErrorCode::InvalidTarget,
                    format!("This server does not issue tokens for the resource {r:?}."),
                )));
            }
        },
        _ => {
            return Ok(Err(err(
                ErrorCode::InvalidTarget,
                "Only one resource may be requested.",
            )));
        }
    };
    let body = issue(
        state,
        client,
        &client.client_id,
        &scopes,
        None,
        resource.as_deref(),
        None,
    )
    .await?;
    Ok(Ok(body))
}

/// Finds a token by value: access first, then refresh (or the other way round by hint).
async fn find_token(
    state: &AppState,
    token: &str,
    hint: Option<&str>,
) -> Result<Option<(Token, bool)>, StoreError> {
    let refresh_first = hint == Some("refresh_token");
    for is_refresh in [refresh_first, !refresh_first] {
        let key = if is_refresh {
            keys::refresh(token)
        } else {
            keys::access(token)
        };
        if let Some(t) = state.store.get_json::<Token>(&key).await? {
            return Ok(Some((t, is_refresh)));
        }
    }
    Ok(None)
}

/// `POST /revoke` (RFC 7009): 200 whether or not the token was known.
pub async fn post_revoke(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> HttpResponse {
    let (params, client, _) = match authenticated(&req, &state, payload).await {
        Ok(x) => x,
        Err(res) => return res,
    };
    let Some(token) = params.get("token") else {
        return error_response(
            &err(
                ErrorCode::InvalidRequest,
                "The token parameter is required.",
            ),
            false,
        );
    };
    // RFC 7009 §2.1: an unknown token_type_hint is ignored.
    let result: Result<(), StoreError> = async {
        if let Some((t, is_refresh)) =
            find_token(&state, token, params.get("token_type_hint")).await?
        {
            // Another client's token is treated as unknown (and left alone).
            if t.client_id == client.client_id {
                if is_refresh {
                    state.store.delete(&keys::refresh(token)).await?;
                    if let Some(f) = &t.family_id {
                        revoke_family(&state, f, &client.client_id).await?;
                    }
                } else {
                    state.store.delete(&keys::access(token)).await?;
                }
            }
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => {
            let mut res = HttpResponse::Ok();
            no_store(&mut res);
            res.finish()
        }
        Err(e) => store_error(&e),
    }
}

/// `POST /introspect` (RFC 7662), for resource servers authenticated as confidential clients.
pub async fn post_introspect(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> HttpResponse {
    let (params, client, creds) = match authenticated(&req, &state, payload).await {
        Ok(x) => x,
        Err(res) => return res,
    };
    if client.secret_hash.is_none() {
        return error_response(
            &err(
                ErrorCode::InvalidClient,
                "Introspection needs a confidential client (a resource server with a secret).",
            ),
            creds.basic,
        );
    }
    let Some(token) = params.get("token") else {
        return error_response(
            &err(
                ErrorCode::InvalidRequest,
                "The token parameter is required.",
            ),
            false,
        );
    };
    let result: Result<Value, StoreError> = async {
        let now = state.clock.now();
        let Some((t, is_refresh)) =
            find_token(&state, token, params.get("token_type_hint")).await?
        else {
            return Ok(json!({"active": false}));
        };
        if t.expires_at <= now || !family_active(&state, t.family_id.as_deref()).await? {
            return Ok(json!({"active": false}));
        }
        let mut body = Map::new();
        body.insert("active".into(), json!(true));
        body.insert("scope".into(), json!(scope::join(&t.scopes)));
        body.insert("client_id".into(), json!(t.client_id));
        body.insert("sub".into(), json!(t.subject));
        body.insert("username".into(), json!(t.subject));
        if let Some(r) = &t.resource {
            body.insert("aud".into(), json!(r));
        }
        body.insert("exp".into(), json!(t.expires_at));
        body.insert("iat".into(), json!(t.issued_at));
        body.insert("iss".into(), json!(state.meta.endpoints.issuer));
        body.insert(
            "token_type".into(),
            json!(if is_refresh {
                "refresh_token"
            } else {
                "Bearer"
            }),
        );
        Ok(Value::Object(body))
    }
    .await;
    match result {
        Ok(body) => {
            let mut res = HttpResponse::Ok();
            no_store(&mut res);
            res.json(body)
        }
        Err(e) => store_error(&e),
    }
}
