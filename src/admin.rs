//! Client administration against the configured store (`doorman clients …`), for operators.

use std::io::Write;

use crate::flows::{Problem, clients};
use crate::oauth::register::{self, MetadataInput};
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

/// Registers a client as `POST /register` would, and prints its credentials once.
pub async fn register(
    state: &AppState,
    name: &str,
    redirect_uris: &[String],
    confidential: bool,
    scope: Option<&str>,
    out: &mut impl Write,
) -> Result<String, AdminError> {
    let input = MetadataInput {
        client_name: Some(name.to_owned()),
        redirect_uris: Some(redirect_uris.to_vec()),
        token_endpoint_auth_method: Some(
            if confidential {
                "client_secret_basic"
            } else {
                "none"
            }
            .to_owned(),
        ),
        scope: scope.map(str::to_owned),
        ..Default::default()
    };
    let metadata = register::validate(input, &state.settings.scopes.supported)
        .map_err(|e| AdminError::Invalid(format!("{}: {}", e.error.code, e.error.description)))?;
    let created = clients::create(&state.ctx(), metadata)
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
    Ok(created.client.client_id)
}

/// Deletes a client.
pub async fn delete(state: &AppState, id: &str) -> Result<(), AdminError> {
    if state.store.delete_client(id).await? {
        Ok(())
    } else {
        Err(AdminError::NotFound(id.to_owned()))
    }
}
