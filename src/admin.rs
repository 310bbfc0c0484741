//! Client administration against the configured store (`doorman clients …`), for operators.

use std::io::Write;

use crate::flows::{Problem, clients};
use crate::oauth::register::{self, MetadataInput};
use crate::records::{GRANT_CLIENT_CREDENTIALS, RegisteredBy, ResourceServer};
use crate::state::AppState;
use crate::store::{Backend, StoreError};

/// An admin command failure, worded for the operator.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{}", .0.error.description)]
    Flow(Problem),
    #[error("no client with id {0:?}")]
    NotFound(String),
    #[error("invalid client: {0}")]
    Invalid(String),
    #[error("output: {0}")]
    Io(#[from] std::io::Error),
}

/// Lists clients, one line each; a progress line goes to `progress` every 1,000 clients.
pub async fn list(
    state: &AppState,
    out: &mut impl Write,
    progress: &mut impl Write,
) -> Result<usize, AdminError> {
    let ids = state.store.client_ids().await?;
    let total = ids.len();
    writeln!(out, "{:<24} {:<12} {:<8} NAME", "CLIENT_ID", "TYPE", "URIS")?;
    for (i, id) in ids.iter().enumerate() {
        if let Some(c) = state.store.client(id).await? {
            let kind = if c.metadata.is_confidential() {
                "confidential"
            } else {
                "public"
            };
            let name = c.metadata.client_name.as_deref().unwrap_or("-");
            writeln!(
                out,
                "{:<24} {:<12} {:<8} {name:?}",
                c.client_id,
                kind,
                c.metadata.redirect_uris.len()
            )?;
        }
        if total >= 1000 && (i + 1) % 1000 == 0 {
            writeln!(progress, "listed {} of {total} clients…", i + 1)?;
        }
    }
    Ok(total)
}

/// Prints one client as its RFC 7591 document (without secrets, which are stored hashed).
pub async fn show(state: &AppState, id: &str, out: &mut impl Write) -> Result<(), AdminError> {
    let client = state
        .store
        .client(id)
        .await?
        .ok_or_else(|| AdminError::NotFound(id.to_owned()))?;
    let doc = clients::info(&state.ctx(), &client, None, None);
    writeln!(
        out,
        "{}",
        serde_json::to_string_pretty(&doc).unwrap_or_default()
    )?;
    Ok(())
}

/// What the operator asks `doorman clients register` for.
#[derive(Debug, Clone, Default)]
pub struct NewClient {
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub confidential: bool,
    pub scope: Option<String>,
    /// A resource server (an MCP server): confidential, may introspect tokens (for
    /// `resources`, or any when empty) and use client_credentials; needs no redirect URI.
    pub resource_server: bool,
    pub resources: Vec<String>,
}

/// Registers a client the operator trusts (docs/behaviour.md §11), and prints its credentials
/// once.
pub async fn register(
    state: &AppState,
    new: &NewClient,
    out: &mut impl Write,
) -> Result<clients::Created, AdminError> {
    let confidential = new.confidential || new.resource_server;
    let grants = if new.resource_server && new.redirect_uris.is_empty() {
        Some(vec![GRANT_CLIENT_CREDENTIALS.to_owned()])
    } else {
        None
    };
    let input = MetadataInput {
        client_name: Some(new.name.clone()),
        redirect_uris: Some(new.redirect_uris.clone()),
        grant_types: grants,
        token_endpoint_auth_method: Some(
            if confidential {
                "client_secret_basic"
            } else {
                "none"
            }
            .to_owned(),
        ),
        scope: new.scope.clone(),
        ..Default::default()
    };
    let metadata = register::validate(input, &state.settings.scopes.supported)
        .map_err(|e| AdminError::Invalid(format!("{}: {}", e.error.code, e.error.description)))?;
    let mut resources = Vec::new();
    for r in &new.resources {
        resources.push(
            crate::oauth::resource::normalize(r)
                .ok_or_else(|| AdminError::Invalid(format!("{r:?} is not an absolute URI")))?,
        );
    }
    let server = new.resource_server.then_some(ResourceServer { resources });
    let created = clients::create(&state.ctx(), metadata, RegisteredBy::Operator, server)
        .await
        .map_err(AdminError::Flow)?;
    writeln!(
        out,
        "client_id:                 {}",
        created.client.client_id
    )?;
    if let Some(secret) = &created.client_secret {
        writeln!(out, "client_secret:             {secret}   (shown once)")?;
    }
    writeln!(
        out,
        "registration_access_token: {}   (shown once)",
        created.registration_access_token
    )?;
    Ok(created)
}

/// Lists the applications `username` allowed, one line each.
pub async fn list_grants(
    state: &AppState,
    username: &str,
    out: &mut impl Write,
) -> Result<usize, AdminError> {
    let ctx = state.ctx();
    let grants = crate::flows::grants::of(&ctx, username)
        .await
        .map_err(AdminError::Flow)?;
    writeln!(
        out,
        "{:<24} {:<12} {:<12} {:<28} RESOURCE",
        "CLIENT_ID", "FIRST_USE", "LAST_USE", "SCOPES"
    )?;
    for g in &grants {
        writeln!(
            out,
            "{:<24} {:<12} {:<12} {:<28} {}",
            g.client_id,
            g.first_use,
            g.last_use,
            g.scopes.join(" "),
            g.resource.as_deref().unwrap_or("-")
        )?;
    }
    Ok(grants.len())
}

/// Ends `username`'s grant for `client_id`.
pub async fn revoke_grant(
    state: &AppState,
    username: &str,
    client_id: &str,
) -> Result<(), AdminError> {
    let revoked = crate::flows::grants::revoke(&state.ctx(), username, client_id)
        .await
        .map_err(AdminError::Flow)?;
    if revoked {
        Ok(())
    } else {
        Err(AdminError::NotFound(format!("{username}/{client_id}")))
    }
}

/// Deletes a client.
pub async fn delete(state: &AppState, id: &str) -> Result<(), AdminError> {
    if state.store.delete_client(id).await? {
        Ok(())
    } else {
        Err(AdminError::NotFound(id.to_owned()))
    }
}

/// `doorman keys rotate`: publishes a new signing key (docs/behaviour.md §13) and prints its
/// `kid` and when it starts signing.
pub async fn rotate_keys(state: &AppState, out: &mut impl Write) -> Result<(), AdminError> {
    if state.signing.from_file() {
        return Err(AdminError::Invalid(
            "the signing key is tokens.signing_key_file: rotate it by replacing the file (or use tokens.signing_key = \"store\")".into(),
        ));
    }
    let ctx = state.ctx();
    let rotated = crate::flows::keys::rotate(&ctx)
        .await
        .map_err(AdminError::Flow)?;
    writeln!(
        out,
        "published {}; it signs from {} ({} s from now)",
        rotated.kid,
        rotated.signs_from,
        rotated.signs_from.saturating_sub(ctx.now)
    )?;
    for kid in &rotated.retired {
        writeln!(out, "retired {kid}: no token it signed is still alive")?;
    }
    Ok(())
}

/// `doorman keys list`: the signing keys, oldest first.
pub async fn list_keys(state: &AppState, out: &mut impl Write) -> Result<(), AdminError> {
    if state.signing.from_file() {
        writeln!(out, "the signing key is tokens.signing_key_file")?;
        return Ok(());
    }
    let set = state.store.signing_keys().await?.unwrap_or_default();
    writeln!(
        out,
        "{:<45} {:<6} {:<12} SIGNS_FROM",
        "KID", "ALG", "CREATED"
    )?;
    for k in &set.keys {
        writeln!(
            out,
            "{:<45} {:<6} {:<12} {}",
            k.kid,
            k.alg.name(),
            k.created_at,
            k.signs_from
        )?;
    }
    Ok(())
}
