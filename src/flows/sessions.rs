//! Sessions of signed-in people. The browser holds `id.mac`: a 256-bit random id and its
//! HMAC-SHA-256 under the server's session key; the store holds the session under the hash of
//! the id. Any process sharing the store and the key can continue a session.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{Browser, Ctx, Problem};
use crate::records::{Session, Upstream};
use crate::secret;
use crate::store::{Backend, StoreError};

/// Keys the server signs with, loaded once per process (from settings, or from the store so
/// that every process sharing it uses the same key).
#[derive(Debug, Default)]
pub struct ServerKeys {
    session: tokio::sync::OnceCell<Vec<u8>>,
}

/// The cookie that holds the session.
pub const SESSION_COOKIE: &str = "doorman_session";
/// The cookie that binds a sign-in to the browser that started it: a random value whose hash
/// the pending request keeps (login CSRF, docs/behaviour.md §11).
pub const BROWSER_COOKIE: &str = "doorman_browser";

/// The name of the stored session key.
const SESSION_KEY: &str = "cookie_key";

/// A signed-in person and the id of their session.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub id: String,
    pub session: Session,
}

/// A session just started: the cookie value to give the browser, and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    pub cookie: String,
    pub max_age: u64,
}

/// The key that signs session cookies: `login.session_secret`, or one created once in the
/// store.
async fn session_key<'a>(ctx: &Ctx<'a>) -> Result<&'a [u8], StoreError> {
    let key = ctx
        .keys
        .session
        .get_or_try_init(|| async {
            let configured = &ctx.settings.login.session_secret;
            if !configured.is_empty() {
                return Ok(configured.as_bytes().to_vec());
            }
            let mut fresh = [0u8; 64];
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut fresh);
            let stored = ctx
                .store
                .server_secret(SESSION_KEY, URL_SAFE_NO_PAD.encode(fresh).as_bytes())
                .await?;
            URL_SAFE_NO_PAD
                .decode(&stored)
                .ok()
                .filter(|k| k.len() >= 32)
                .ok_or_else(|| StoreError::Corrupt {
                    key: SESSION_KEY.into(),
                    problem: "not a 64-byte key".into(),
                })
        })
        .await?;
    Ok(key)
}

fn mac(key: &[u8], id: &str) -> Hmac<Sha256> {
    // HMAC takes a key of any length.
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable_key_length());
    mac.update(id.as_bytes());
    mac
}

#[cold]
fn unreachable_key_length() -> Hmac<Sha256> {
    // `new_from_slice` refuses no key length for HMAC; an empty key is still a key.
    <Hmac<Sha256> as hmac::digest::KeyInit>::new(&Default::default())
}

/// The id inside a cookie value, when its MAC is right (compared in constant time).
fn verified<'c>(key: &[u8], cookie: &'c str) -> Option<&'c str> {
    let (id, tag) = cookie.rsplit_once('.')?;
    let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
    mac(key, id).verify_slice(&tag).ok()?;
    Some(id)
}

/// The person signed in by the browser's session cookie, if it is genuine and its session has
/// not outlived `login.session_ttl` (by the app's clock, not only the store's TTL).
pub async fn current(ctx: &Ctx<'_>, browser: &Browser<'_>) -> Result<Option<SignedIn>, Problem> {
    let Some(cookie) = browser.cookie(SESSION_COOKIE) else {
        return Ok(None);
    };
    let key = session_key(ctx).await?;
    let Some(id) = verified(key, cookie) else {
        return Ok(None);
    };
    let ttl = ctx.settings.login.session_ttl;
    Ok(ctx
        .store
        .session(id)
        .await?
        .filter(|s| s.auth_time.saturating_add(ttl) > ctx.now)
        .map(|session| SignedIn {
            id: id.to_owned(),
            session,
        }))
}

/// Starts a session for `username`; `upstream` tells who the identity provider said it is
/// (docs/behaviour.md §14).
pub async fn start(
    ctx: &Ctx<'_>,
    username: &str,
    upstream: Option<Upstream>,
) -> Result<(SignedIn, NewSession), Problem> {
    let id = secret::ordered_token();
    let session = Session {
        username: username.to_owned(),
        auth_time: ctx.now,
        upstream,
    };
    let ttl = ctx.settings.login.session_ttl;
    ctx.store
        .put_session(&id, &session, Duration::from_secs(ttl))
        .await?;
    let key = session_key(ctx).await?;
    let tag = URL_SAFE_NO_PAD.encode(mac(key, &id).finalize().into_bytes());
    let cookie = NewSession {
        cookie: format!("{id}.{tag}"),
        max_age: ttl,
    };
    Ok((SignedIn { id, session }, cookie))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_keys_own_mac_verifies() {
        let key = b"0123456789abcdef0123456789abcdef";
        let tag = URL_SAFE_NO_PAD.encode(mac(key, "the-id").finalize().into_bytes());
        let cookie = format!("the-id.{tag}");

        assert_eq!(verified(key, &cookie), Some("the-id"));
        assert_eq!(verified(b"another key, just as long as it", &cookie), None);
        assert_eq!(verified(key, &format!("other-id.{tag}")), None);
        assert_eq!(verified(key, "the-id"), None);
        assert_eq!(verified(key, "the-id.!!"), None);
    }
}
