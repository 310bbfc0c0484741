//! Prometheus metrics kept in memory: requests by route and status, unregistered-client
//! answers by reason and renderer, storage latency. Rendered as text at `GET /metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the storage latency histogram buckets.
const BUCKETS: [f64; 14] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// A latency histogram with lock-free buckets.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

/// Counters shared by every worker.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    unregistered: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
}

impl Metrics {
    /// Counts a request by its route pattern (never the raw path, so labels stay bounded).
    pub fn request(&self, route: &str, status: u16) {
        if let Ok(mut map) = self.requests.lock() {
            match map.get_mut(&(route.to_owned(), status)) {
                Some(n) => *n += 1,
                None => {
                    map.insert((route.to_owned(), status), 1);
                }
            }
        }
    }

    pub fn unregistered(&self, reason: &'static str, renderer: &'static str) {
        if let Ok(mut map) = self.unregistered.lock() {
            *map.entry((reason, renderer)).or_default() += 1;
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self, storage: &Histogram, backend: &str) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP doorman_http_requests_total HTTP requests by route pattern and status.\n");
        out.push_str("# TYPE doorman_http_requests_total counter\n");
        if let Ok(map) = self.requests.lock() {
            for ((route, status), n) in map.iter() {
                let _ = writeln!(out, "doorman_http_requests_total{{route={route:?},status=\"{status}\"}} {n}");
            }
        }
        out.push_str("# HELP doorman_unregistered_client_responses_total Unregistered-client answers by reason and renderer.\n");
        out.push_str("# TYPE doorman_unregistered_client_responses_total counter\n");
        if let Ok(map) = self.unregistered.lock() {
            for ((reason, renderer), n) in map.iter() {
                let _ = writeln!(out, "doorman_unregistered_client_responses_total{{reason=\"{reason}\",renderer=\"{renderer}\"}} {n}");
            }
        }
        out.push_str("# HELP doorman_storage_operation_seconds Latency of storage operations.\n");
        out.push_str("# TYPE doorman_storage_operation_seconds histogram\n");
        storage.render(&mut out, "doorman_storage_operation_seconds", &format!("backend=\"{backend}\""));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_text_is_prometheus_shaped() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_millis(3));
        let m = Metrics::default();
        m.request("/authorize", 400);
        m.request("/authorize", 400);
        m.unregistered("unknown", "json");

        let text = m.render(&h, "memory");

        assert!(text.contains("doorman_http_requests_total{route=\"/authorize\",status=\"400\"} 2"));
        assert!(text.contains("doorman_unregistered_client_responses_total{reason=\"unknown\",renderer=\"json\"} 1"));
        assert!(text.contains("doorman_storage_operation_seconds_bucket{backend=\"memory\",le=\"0.0001\"} 1"));
        assert!(text.contains("doorman_storage_operation_seconds_bucket{backend=\"memory\",le=\"0.005\"} 2"));
        assert!(text.contains("doorman_storage_operation_seconds_count{backend=\"memory\"} 2"));
    }
}
