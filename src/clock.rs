//! The time source. Protocol code takes `now` as a parameter; handlers read it from here, and
//! tests move it forward instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// Wall-clock seconds since the Unix epoch, plus an offset that tests may change.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset: Arc<AtomicI64>,
}

impl Clock {
    pub fn now(&self) -> u64 {
        let wall = crate::http::common::now() as i64;
        (wall + self.offset.load(Ordering::Relaxed)).max(0) as u64
    }

    /// Moves this clock (and every app sharing it) forward by `seconds`.
    pub fn advance(&self, seconds: i64) {
        self.offset.fetch_add(seconds, Ordering::Relaxed);
    }
}
