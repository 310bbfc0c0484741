//! The keys that sign JWT access tokens (docs/behaviour.md §13): the operator's key file, or a
//! key set generated once into the store so that every process signs with the same keys, and
//! rotated without downtime (`doorman keys rotate`). Each process keeps the key set for
//! `tokens.key_refresh` seconds, and reads it again at once for a `kid` it does not know.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;

use super::{Ctx, Problem};
use crate::oauth::jwt::{self, KeyPair};
use crate::records::{KeySet, SigningKey};
use crate::settings::Tokens;
use crate::store::{Backend, StoreError};

/// An unknown `kid` sends a process to the store at most this often, so tokens with made-up
/// key ids cannot turn every request into a store read.
const UNKNOWN_KID_PAUSE: Duration = Duration::from_secs(1);

/// A key of the set, ready to use, and from when it signs.
#[derive(Debug)]
pub struct ActiveKey {
    pub pair: KeyPair,
    pub signs_from: u64,
}

/// The keys as last read.
#[derive(Debug, Default)]
struct Loaded {
    /// Oldest first (by `signs_from`).
    keys: Vec<Arc<ActiveKey>>,
    /// App-clock time of the read.
    at: u64,
    /// When an unknown kid last sent us to the store.
    unknown_at: Option<Instant>,
}

/// The process's view of the signing keys.
#[derive(Debug, Default)]
pub struct TokenKeys {
    /// The key file's key, when the operator gave one: it is the whole key set.
    file: Option<Arc<ActiveKey>>,
    loaded: Mutex<Option<Loaded>>,
}

/// Why the key set cannot be used.
fn unusable(e: impl std::fmt::Display) -> Problem {
    Problem::from(StoreError::Corrupt {
        key: "signing keys".into(),
        problem: e.to_string(),
    })
}

impl TokenKeys {
    /// The key file's key (read and checked when the settings were loaded), or the store's.
    pub fn new(tokens: &Tokens) -> Self {
        jwt::install_provider();
        let file = tokens
            .key_from_file()
            .then(|| KeyPair::from_pem(&tokens.signing_key_pem, tokens.algorithm).ok())
            .flatten()
            .map(|pair| {
                Arc::new(ActiveKey {
                    pair,
                    signs_from: 0,
                })
            });
        Self {
            file,
            loaded: Mutex::new(None),
        }
    }

    fn cached(&self) -> Option<(Vec<Arc<ActiveKey>>, u64)> {
        let guard = self.loaded.lock().ok()?;
        guard.as_ref().map(|l| (l.keys.clone(), l.at))
    }

    /// Reads the key set from the store (generating the first key when there is none).
    async fn reload(&self, ctx: &Ctx<'_>) -> Result<Vec<Arc<ActiveKey>>, Problem> {
        let set = match ctx.store.signing_keys().await? {
            Some(set) if !set.keys.is_empty() => set,
            _ => {
                let fresh = KeySet {
                    keys: vec![new_key(ctx.settings.tokens.algorithm, ctx.now, ctx.now)?],
                };
                ctx.store.first_signing_keys(&fresh).await?
            }
        };
        let mut keys = Vec::with_capacity(set.keys.len());
        for k in &set.keys {
            let pair = KeyPair::from_pem(&k.pem, k.alg).map_err(unusable)?;
            keys.push(Arc::new(ActiveKey {
                pair,
                signs_from: k.signs_from,
            }));
        }
        keys.sort_by_key(|k| k.signs_from);
        if let Ok(mut guard) = self.loaded.lock() {
            let unknown_at = guard.as_ref().and_then(|l| l.unknown_at);
            *guard = Some(Loaded {
                keys: keys.clone(),
                at: ctx.now,
                unknown_at,
            });
        }
        Ok(keys)
    }

    /// The keys, read again when older than `tokens.key_refresh`.
    async fn keys(&self, ctx: &Ctx<'_>) -> Result<Vec<Arc<ActiveKey>>, Problem> {
        if let Some(file) = &self.file {
            return Ok(vec![file.clone()]);
        }
        match self.cached() {
            Some((keys, at)) if ctx.now < at + ctx.settings.tokens.key_refresh => Ok(keys),
            _ => self.reload(ctx).await,
        }
    }

    /// The key that signs now: the latest whose time has come.
    pub async fn signer(&self, ctx: &Ctx<'_>) -> Result<Arc<ActiveKey>, Problem> {
        let keys = self.keys(ctx).await?;
        current(&keys, ctx.now)
            .or_else(|| keys.first().cloned())
            .ok_or_else(|| unusable("the key set is empty"))
    }

    /// The published key named `kid`, reading the key set again (at most once a second) when
    /// it is not known: another process may have rotated.
    pub async fn find(&self, ctx: &Ctx<'_>, kid: &str) -> Result<Option<Arc<ActiveKey>>, Problem> {
        let known = |keys: &[Arc<ActiveKey>]| {
            published(keys, ctx.now, ctx.settings.tokens.access_ttl)
                .find(|k| k.pair.kid == kid)
                .cloned()
        };
        let keys = self.keys(ctx).await?;
        if let Some(k) = known(&keys) {
            return Ok(Some(k));
        }
        if self.file.is_some() {
            return Ok(None);
        }
        let may_read = match self.loaded.lock() {
            Ok(mut guard) => match guard.as_mut() {
                Some(l)
                    if l.unknown_at
                        .is_some_and(|t| t.elapsed() < UNKNOWN_KID_PAUSE) =>
                {
                    false
                }
                Some(l) => {
                    l.unknown_at = Some(Instant::now());
                    true
                }
                None => true,
            },
            Err(_) => false,
        };
        if !may_read {
            return Ok(None);
        }
        Ok(known(&self.reload(ctx).await?))
    }

    /// The public keys to publish at `jwks_uri`.
    pub async fn jwks(&self, ctx: &Ctx<'_>) -> Result<JwkSet, Problem> {
        let keys = self.keys(ctx).await?;
        Ok(jwt::key_set(
            published(&keys, ctx.now, ctx.settings.tokens.access_ttl).map(|k| &k.pair),
        ))
    }

    /// Whether the signing key is the operator's file (no rotation through the store).
    pub fn from_file(&self) -> bool {
        self.file.is_some()
    }
}

/// The key signing at `now` among `keys` (sorted by `signs_from`).
fn current(keys: &[Arc<ActiveKey>], now: u64) -> Option<Arc<ActiveKey>> {
    keys.iter().rev().find(|k| k.signs_from <= now).cloned()
}

/// The keys still published at `now`: every key but those that stopped signing (a later key
/// took over) more than `access_ttl` ago, so no token they signed is still alive.
fn published(
    keys: &[Arc<ActiveKey>],
    now: u64,
    access_ttl: u64,
) -> impl Iterator<Item = &Arc<ActiveKey>> {
    keys.iter()
        .enumerate()
        .filter(move |(i, _)| {
            still_published(keys.get(i + 1).map(|n| n.signs_from), now, access_ttl)
        })
        .map(|(_, k)| k)
}

/// Whether a key is still published at `now` when the key after it (if any) signs from
/// `next_signs_from`: until `access_ttl` after it stopped signing.
fn still_published(next_signs_from: Option<u64>, now: u64, access_ttl: u64) -> bool {
    next_signs_from.is_none_or(|next| next > now || now < next + access_ttl)
}

/// A newly generated key of `alg`, made at `now`, signing from `signs_from`.
fn new_key(
    alg: crate::records::Algorithm,
    now: u64,
    signs_from: u64,
) -> Result<SigningKey, Problem> {
    let pem = jwt::generate(alg).map_err(unusable)?;
    let pair = KeyPair::from_pem(&pem, alg).map_err(unusable)?;
    Ok(SigningKey {
        kid: pair.kid,
        alg,
        pem,
        created_at: now,
        signs_from,
    })
}

/// What `doorman keys rotate` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotated {
    /// The new key, published now.
    pub kid: String,
    /// When it starts signing.
    pub signs_from: u64,
    /// Keys dropped because no token they signed can still be alive.
    pub retired: Vec<String>,
}

/// Publishes a new key that signs `tokens.rotation_delay` seconds from now; the keys before it
/// stay published until `tokens.access_ttl` after they stopped signing, and keys past that are
/// dropped. One operator at a time: two rotations at once may lose one of the two new keys
/// (never an old one still needed, since both writers keep those).
pub async fn rotate(ctx: &Ctx<'_>) -> Result<Rotated, Problem> {
    let t = &ctx.settings.tokens;
    let mut set = ctx.store.signing_keys().await?.unwrap_or_default();
    set.keys.sort_by_key(|k| k.signs_from);
    let signs_from = ctx.now + t.rotation_delay;
    let next = new_key(t.algorithm, ctx.now, signs_from)?;
    let kid = next.kid.clone();
    set.keys.push(next);
    let starts: Vec<u64> = set.keys.iter().map(|k| k.signs_from).collect();
    let (kept, gone): (Vec<_>, Vec<_>) = std::mem::take(&mut set.keys)
        .into_iter()
        .enumerate()
        .partition(|(i, _)| still_published(starts.get(i + 1).copied(), ctx.now, t.access_ttl));
    set.keys = kept.into_iter().map(|(_, k)| k).collect();
    let retired = gone.into_iter().map(|(_, k)| k.kid).collect();
    ctx.store.put_signing_keys(&set).await?;
    Ok(Rotated {
        kid,
        signs_from,
        retired,
    })
}
