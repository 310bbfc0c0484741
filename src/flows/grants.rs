//! What a person approved, per client (docs/behaviour.md §4 step 5, §15): remembered consent,
//! the account page's list of connected applications, and revocation. Every code and token
//! issued after an approval names its grant; a token is alive only while its grant is.

use std::time::Duration;

use super::{Ctx, Problem};
use crate::records::{AuthRequest, Grant};
use crate::secret;
use crate::store::Backend;

/// How often a grant's "last used" is written again at most (a refresh is not a write each).
const TOUCH_EVERY: u64 = 300;
/// Kept this much longer than any of its tokens can live, so a token never outlives its grant.
const MARGIN: u64 = 86_400;

/// How long a grant is kept after its last use: as long as a refresh token or a remembered
/// approval can last.
fn lifetime(ctx: &Ctx<'_>) -> u64 {
    let days = ctx.settings.login.remember_consent_days;
    ctx.settings.tokens.refresh_ttl.max(days * 86_400) + MARGIN
}

async fn save(ctx: &Ctx<'_>, username: &str, grant: &Grant) -> Result<(), Problem> {
    let ttl = Duration::from_secs(lifetime(ctx));
    Ok(ctx.store.put_grant(username, grant, ttl).await?)
}

/// The person's live grant for `client_id`, if any.
pub async fn current(
    ctx: &Ctx<'_>,
    username: &str,
    client_id: &str,
) -> Result<Option<Grant>, Problem> {
    Ok(ctx
        .store
        .grant(username, client_id)
        .await?
        .filter(|g| g.expires_at > ctx.now))
}

/// The person's grant that covers `request` without asking again: remembered, for the exact
/// redirect URI approved (port included: a public native client's identity cannot be proven,
/// RFC 8252 §8.6, and another port may be another program), the same resource, and every scope.
pub async fn remembered(
    ctx: &Ctx<'_>,
    username: &str,
    request: &AuthRequest,
) -> Result<Option<Grant>, Problem> {
    Ok(current(ctx, username, &request.client_id)
        .await?
        .filter(|g| {
            g.remember_until > ctx.now
                && g.redirect_uri == request.redirect_uri
                && same_resource(g.resource.as_deref(), request.resource.as_deref())
                && request.scopes.iter().all(|s| g.scopes.contains(s))
        }))
}

/// Resources are kept as the client sent them and compared normalised (docs/behaviour.md §13).
pub fn same_resource(a: Option<&str>, b: Option<&str>) -> bool {
    a.map(crate::oauth::resource::normalize) == b.map(crate::oauth::resource::normalize)
}

/// Records the person's approval of `request`: a new grant, or the existing one widened by
/// what was asked now (a step-up) and remembered for `login.remember_consent_days`.
pub async fn approve(
    ctx: &Ctx<'_>,
    username: &str,
    request: &AuthRequest,
) -> Result<Grant, Problem> {
    let days = ctx.settings.login.remember_consent_days;
    let mut grant = match current(ctx, username, &request.client_id).await? {
        Some(g) => g,
        None => Grant {
            id: secret::ordered_id(),
            client_id: request.client_id.clone(),
            scopes: Vec::new(),
            resource: None,
            redirect_uri: String::new(),
            remember_until: 0,
            first_use: ctx.now,
            last_use: ctx.now,
            expires_at: 0,
        },
    };
    for s in &request.scopes {
        if !grant.scopes.contains(s) {
            grant.scopes.push(s.clone());
        }
    }
    grant.resource.clone_from(&request.resource);
    grant.redirect_uri.clone_from(&request.redirect_uri);
    grant.remember_until = if days > 0 { ctx.now + days * 86_400 } else { 0 };
    grant.last_use = ctx.now;
    grant.expires_at = ctx.now + lifetime(ctx);
    save(ctx, username, &grant).await?;
    Ok(grant)
}

/// Notes a use of `grant` (a code or a refresh), writing at most every few minutes.
pub async fn touch(ctx: &Ctx<'_>, username: &str, grant: &Grant) -> Result<(), Problem> {
    if ctx.now < grant.last_use + TOUCH_EVERY {
        return Ok(());
    }
    let mut grant = grant.clone();
    grant.last_use = ctx.now;
    grant.expires_at = ctx.now + lifetime(ctx);
    save(ctx, username, &grant).await
}

/// The live grant `grant_id` of `username` for `client_id`: `None` once it was revoked (or
/// approved again after a revocation, which makes a new grant).
pub async fn alive(
    ctx: &Ctx<'_>,
    username: &str,
    client_id: &str,
    grant_id: &str,
) -> Result<Option<Grant>, Problem> {
    Ok(in_force(
        ctx,
        ctx.store.grant(username, client_id).await?,
        grant_id,
    ))
}

/// `grant`, as read from the store, if it is the live grant `grant_id`.
pub fn in_force(ctx: &Ctx<'_>, grant: Option<Grant>, grant_id: &str) -> Option<Grant> {
    grant.filter(|g| g.expires_at > ctx.now && secret::equal(&g.id, grant_id))
}

/// Every live grant of the person, most recently used first.
pub async fn of(ctx: &Ctx<'_>, username: &str) -> Result<Vec<Grant>, Problem> {
    let mut grants: Vec<Grant> = ctx
        .store
        .grants(username)
        .await?
        .into_iter()
        .filter(|g| g.expires_at > ctx.now)
        .collect();
    grants.sort_by_key(|g| std::cmp::Reverse(g.last_use));
    Ok(grants)
}

/// Ends the person's grant for `client_id`: every code and token issued under it stops
/// working at once, and the approval is forgotten. Whether there was one.
pub async fn revoke(ctx: &Ctx<'_>, username: &str, client_id: &str) -> Result<bool, Problem> {
    Ok(ctx.store.remove_grant(username, client_id).await?)
}
