//! The schedule of an open-loop run and the percentiles of its latencies.
//!
//! Request `n` (0, 1, 2, …) is due at `n / rate` seconds after the start, for every `n` with
//! `n < floor(rate × duration)`. Connection `c` of `C` sends requests `c, c + C, c + 2C, …`: each
//! connection keeps its own fixed schedule of `rate / C` per second, and the connections' phases
//! are staggered by `1 / rate`, so that together they send evenly rather than in bursts of `C`.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    rate: f64,
    total: u64,
    connections: u64,
}

/// More requests than this in one run is a mistake on the command line (the latencies alone
/// would take gigabytes).
pub const MAX_REQUESTS: u64 = 200_000_000;

impl Schedule {
    pub fn new(rate: f64, duration_s: f64, connections: u64) -> Result<Schedule, String> {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(format!(
                "the rate must be a positive number of requests per second, not {rate}"
            ));
        }
        if !(duration_s.is_finite() && duration_s > 0.0) {
            return Err(format!(
                "the duration must be a positive number of seconds, not {duration_s}"
            ));
        }
        if connections == 0 {
            return Err("at least one connection is needed".to_owned());
        }
        let total = (rate * duration_s).floor();
        if total < 1.0 {
            return Err(format!(
                "{rate} requests/s for {duration_s} s is not even one request"
            ));
        }
        if total > MAX_REQUESTS as f64 {
            return Err(format!(
                "{total} requests in one run is more than the {MAX_REQUESTS} this tool keeps"
            ));
        }
        Ok(Schedule {
            rate,
            total: total as u64,
            connections,
        })
    }

    /// Requests in the whole run.
    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn connections(&self) -> u64 {
        self.connections
    }

    /// When request `n` is due, from the start.
    pub fn due(&self, n: u64) -> Duration {
        Duration::from_secs_f64(n as f64 / self.rate)
    }

    /// The requests connection `c` sends, in order.
    pub fn slots(&self, c: u64) -> std::iter::StepBy<std::ops::Range<u64>> {
        (c..self.total).step_by(self.connections.max(1) as usize)
    }

    /// How many requests connection `c` sends.
    pub fn count(&self, c: u64) -> u64 {
        if c >= self.total {
            0
        } else {
            (self.total - 1 - c) / self.connections + 1
        }
    }
}

/// The `p`-th percentile (0 < p ≤ 100) of sorted values by nearest rank: the smallest value
/// that at least p % of the values do not exceed. None when there are no values.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    // In integers (parts per million), so that 99.9 % of 1000 is the 999th value, not the
    // 1000th by a rounding error.
    let ppm = (p * 10_000.0).round().clamp(0.0, 1e6) as u128;
    let n = sorted.len() as u128;
    let rank = (ppm * n).div_ceil(1_000_000) as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_times_duration_sends() {
        for (rate, secs, conns) in [
            (1000.0, 3.0, 64),
            (40_000.0, 10.0, 64),
            (7.0, 1.5, 3),
            (100.0, 1.0, 1000),
            (333.3, 2.0, 7),
        ] {
            let s = Schedule::new(rate, secs, conns).unwrap();
            let want = (rate * secs).floor() as u64;
            assert_eq!(s.total(), want, "{rate} × {secs}");
            // Every request is sent by exactly one connection.
            let mut all: Vec<u64> = (0..conns).flat_map(|c| s.slots(c)).collect();
            let per_conn: u64 = (0..conns).map(|c| s.count(c)).sum();
            assert_eq!(all.len() as u64, want);
            assert_eq!(per_conn, want);
            for c in 0..conns {
                assert_eq!(s.slots(c).count() as u64, s.count(c));
            }
            all.sort_unstable();
            assert!(all.iter().copied().eq(0..want));
            // All within the run, the last one less than a request's interval before its end.
            let last = s.due(want - 1).as_secs_f64();
            assert!(last < secs && last >= secs - 2.0 / rate, "{last}");
        }
    }

    #[test]
    fn each_connection_keeps_its_own_rate_staggered() {
        let s = Schedule::new(1000.0, 1.0, 4).unwrap();
        // Connection 1: requests 1, 5, 9, … every 4 ms from 1 ms.
        let due: Vec<f64> = s
            .slots(1)
            .take(3)
            .map(|n| s.due(n).as_secs_f64() * 1000.0)
            .collect();
        for (got, want) in due.iter().zip([1.0, 5.0, 9.0]) {
            assert!((got - want).abs() < 1e-6, "{due:?}");
        }
        // Connections start 1 ms apart, not all at once.
        let firsts: Vec<u64> = (0..4).map(|c| s.slots(c).next().unwrap()).collect();
        assert_eq!(firsts, [0, 1, 2, 3]);
    }

    #[test]
    fn bad_schedules() {
        assert!(Schedule::new(0.0, 1.0, 1).is_err());
        assert!(Schedule::new(f64::NAN, 1.0, 1).is_err());
        assert!(Schedule::new(10.0, -1.0, 1).is_err());
        assert!(Schedule::new(10.0, 1.0, 0).is_err());
        assert!(Schedule::new(0.5, 1.0, 1).is_err());
        assert!(Schedule::new(1e9, 1e9, 1).is_err());
    }

    #[test]
    fn percentiles() {
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[7], 99.9), Some(7));
        let v: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentile(&v, 50.0), Some(500));
        assert_eq!(percentile(&v, 90.0), Some(900));
        assert_eq!(percentile(&v, 99.0), Some(990));
        assert_eq!(percentile(&v, 99.9), Some(999));
        assert_eq!(percentile(&v, 100.0), Some(1000));
        // One slow request in a hundred is the p99, not above it; two are above it.
        let mut v = vec![1u64; 99];
        v.push(1000);
        assert_eq!(percentile(&v, 99.0), Some(1));
        assert_eq!(percentile(&v, 99.9), Some(1000));
        let mut v = vec![1u64; 98];
        v.extend([1000, 1000]);
        assert_eq!(percentile(&v, 99.0), Some(1000));
        // Ten values: p50 is the 5th, p90 the 9th.
        let v: Vec<u64> = (10..=100).step_by(10).collect();
        assert_eq!(
            (percentile(&v, 50.0), percentile(&v, 90.0)),
            (Some(50), Some(90))
        );
    }
}
