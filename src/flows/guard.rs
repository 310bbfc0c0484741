//! What protects sign-in (docs/behaviour.md §11): rate limits by address and by username, and a
//! small fixed pool of threads for password checks. An argon2 check takes ~19 MiB and tens of
//! milliseconds on purpose; run on the shared blocking pool, a flood of sign-ins used hundreds
//! of threads at once and left gigabytes resident. Even on a fixed pool, a new 19 MiB buffer
//! per check kept growing the process (measured: +19 MB a check, sequentially, with glibc's
//! per-thread arenas). So here at most `login.password_checks` checks run at once, each on a
//! thread that keeps one argon2 memory buffer for its whole life and reuses it: the memory
//! they use is that number of buffers, allocated once.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use subtle::ConstantTimeEq;
use tokio::sync::oneshot;

use crate::settings::Settings;

/// Checks waiting for a thread, per thread, before more are turned away.
const QUEUE_PER_THREAD: usize = 16;
/// Every this many checks, limiter entries that have recovered fully are dropped.
const PRUNE_EVERY: u64 = 1024;
/// The most argon2 memory a hash may ask for (1 GiB, in 1 KiB blocks); more is refused.
const MAX_BLOCKS: usize = 1024 * 1024;

/// A keyed limiter that forgets keys once they are back to a full burst.
struct Limiter<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    checks: AtomicU64,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    fn new(burst: u32, period_ms: u64) -> Option<Self> {
        let quota = Quota::with_period(Duration::from_millis(period_ms))?
            .allow_burst(NonZeroU32::new(burst)?);
        Some(Self {
            limiter: RateLimiter::keyed(quota),
            checks: AtomicU64::new(0),
        })
    }

    /// `Err(seconds to wait)` when `key` is over its limit.
    fn check(&self, key: &K) -> Result<(), u64> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        self.limiter.check_key(key).map_err(|not_until| {
            not_until
                .wait_time_from(self.limiter.clock().now())
                .as_secs()
                .max(1)
        })
    }
}

/// Why a sign-in attempt was not checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Too many attempts from this address or for this username; retry after so many seconds.
    TooMany(u64),
    /// Every password-checking thread is busy and the queue is full.
    Busy,
}

struct Check {
    hash: String,
    password: String,
    reply: oneshot::Sender<bool>,
}

/// The sign-in guard of one process.
pub struct SignInGuard {
    by_address: Option<Limiter<IpAddr>>,
    by_username: Option<Limiter<String>>,
    checks: mpsc::SyncSender<Check>,
}

impl SignInGuard {
    pub fn new(settings: &Settings) -> Self {
        let rl = &settings.rate_limit;
        let on = rl.enabled;
        let threads = match settings.login.password_checks {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        let (checks, queue) = mpsc::sync_channel::<Check>(threads * QUEUE_PER_THREAD);
        let queue = std::sync::Arc::new(std::sync::Mutex::new(queue));
        for i in 0..threads {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("doorman-password-{i}"))
                .spawn(move || check_loop(&queue));
            if let Err(e) = spawned {
                log::error!("cannot start a password-checking thread: {e}");
            }
        }
        Self {
            by_address: Limiter::new(rl.login_burst, rl.login_period_ms).filter(|_| on),
            by_username: Limiter::new(rl.login_user_burst, rl.login_user_period_ms).filter(|_| on),
            checks,
        }
    }

    /// Counts an attempt from `address` for `username` against both limits.
    pub fn admit(&self, address: Option<IpAddr>, username: &str) -> Result<(), Refused> {
        if let (Some(limiter), Some(ip)) = (&self.by_address, address) {
            limiter.check(&ip).map_err(Refused::TooMany)?;
        }
        if let Some(limiter) = &self.by_username {
            // Usernames compare as people type them.
            limiter
                .check(&username.to_lowercase())
                .map_err(Refused::TooMany)?;
        }
        Ok(())
    }

    /// Whether `password` matches the argon2 PHC `hash`, on one of the guard's threads.
    pub async fn verify(&self, hash: String, password: String) -> Result<bool, Refused> {
        let (reply, answer) = oneshot::channel();
        self.checks
            .try_send(Check {
                hash,
                password,
                reply,
            })
            .map_err(|_| Refused::Busy)?;
        answer.await.map_err(|_| Refused::Busy)
    }
}

fn check_loop(queue: &std::sync::Mutex<mpsc::Receiver<Check>>) {
    // This thread's argon2 memory, allocated by the first check and reused by every other.
    let mut memory: Vec<Block> = Vec::new();
    loop {
        // One thread waits on the queue at a time; the others wait for the lock.
        let next = match queue.lock() {
            Ok(q) => q.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        let Ok(check) = next else {
            return;
        };
        let ok = verify(&mut memory, &check.hash, check.password.as_bytes());
        let _ = check.reply.send(ok);
    }
}

/// Whether `password` hashes to the argon2 PHC string `hash`, computed in `memory` (grown to
/// the hash's memory cost if needed) and compared in constant time.
fn verify(memory: &mut Vec<Block>, hash: &str, password: &[u8]) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let (Ok(params), Ok(algorithm), Some(salt), Some(expected)) = (
        Params::try_from(&parsed),
        Algorithm::try_from(parsed.algorithm),
        parsed.salt,
        parsed.hash,
    ) else {
        return false;
    };
    let Ok(version) = parsed.version.map(Version::try_from).transpose() else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let blocks = params.block_count();
    if blocks > MAX_BLOCKS {
        return false;
    }
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    let argon2 = Argon2::new(algorithm, version.unwrap_or_default(), params);
    argon2
        .hash_password_into_with_memory(password, salt, &mut out, &mut memory[..blocks])
        .is_ok()
        && bool::from(out.as_slice().ct_eq(expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher, SaltString};

    /// The same verdicts as argon2's own verifier, on hashes of every algorithm and version,
    /// with one buffer reused across different memory costs.
    #[test]
    fn verification_in_a_reused_buffer_agrees_with_argon2() {
        use argon2::PasswordVerifier;
        let mut memory = Vec::new();
        let salt = SaltString::from_b64("c2FsdHNhbHRzYWx0c2FsdA").expect("salt");
        for (algorithm, version, m) in [
            (Algorithm::Argon2id, Version::V0x13, 64),
            (Algorithm::Argon2i, Version::V0x13, 256),
            (Algorithm::Argon2d, Version::V0x10, 32),
            (Algorithm::Argon2id, Version::V0x13, 128),
        ] {
            let params = Params::new(m, 2, 1, None).expect("params");
            let hash = Argon2::new(algorithm, version, params)
                .hash_password(b"right", &salt)
                .expect("hash")
                .to_string();
            let parsed = PasswordHash::new(&hash).expect("parses");

            for password in [&b"right"[..], b"wrong", b""] {
                let theirs = Argon2::default().verify_password(password, &parsed).is_ok();
                assert_eq!(verify(&mut memory, &hash, password), theirs, "{hash}");
            }
        }
        assert!(!verify(&mut memory, "not a hash", b"x"));
        assert!(
            !verify(
                &mut memory,
                "$argon2id$v=19$m=4194304,t=1,p=1$c29tZXNhbHQ$AAAAAAAAAAAAAAAAAAAAAA",
                b"x"
            ),
            "over the memory bound"
        );
    }

    #[test]
    fn a_key_over_its_burst_waits_and_others_do_not() {
        let limiter = Limiter::<String>::new(2, 60_000).expect("a quota");

        assert_eq!(limiter.check(&"a".to_owned()), Ok(()));
        assert_eq!(limiter.check(&"a".to_owned()), Ok(()));
        let wait = limiter.check(&"a".to_owned()).expect_err("over the burst");
        assert!((1..=60).contains(&wait), "{wait}");
        assert_eq!(limiter.check(&"b".to_owned()), Ok(()));
    }
}
