//! The time source. Protocol rules and flows take `now` as a parameter; handlers read it from
//! here, and tests move it forward instead of sleeping. Imports nothing from the crate.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// Wall-clock seconds since the Unix epoch, plus an offset that tests may change.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset: Arc<AtomicI64>,
}

/// Seconds since the Unix epoch by the wall clock.
pub fn wall() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Clock {
    pub fn now(&self) -> u64 {
        let wall = i64::try_from(wall()).unwrap_or(i64::MAX);
        u64::try_from(wall.saturating_add(self.offset.load(Ordering::Relaxed))).unwrap_or(0)
    }

    /// Moves this clock (and every app sharing it) forward by `seconds`.
    pub fn advance(&self, seconds: i64) {
        self.offset.fetch_add(seconds, Ordering::Relaxed);
    }
}
