//! Prometheus metrics kept in memory: requests by route and status, unregistered-client
//! answers by reason and renderer, storage latency. Rendered as text at `GET /metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the storage latency histogram buckets.
const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Counters are kept in this many shards, and a thread always writes to the same one. Workers
/// are threads, so with up to this many workers no two of them share a lock or a cache line;
/// `/metrics` adds the shards up. (One shared mutex and shared atomics cost a cache-line
/// transfer between cores on every request.)
const SHARDS: usize = 8;

/// The calling thread's shard: threads are numbered in the order they first count something.
fn shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SHARD.with(|s| *s)
}

/// A latency histogram with lock-free buckets, one set per shard.
#[derive(Debug, Default)]
pub struct Histogram {
    shards: [HistogramShard; SHARDS],
}

/// Aligned so that two shards never share a cache line.
#[derive(Debug, Default)]
#[repr(align(128))]
struct HistogramShard {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let shard = &self.shards[shard()];
        let secs = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            shard.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        shard.count.fetch_add(1, Ordering::Relaxed);
        shard
            .sum_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    fn total(&self, pick: impl Fn(&HistogramShard) -> &AtomicU64) -> u64 {
        self.shards
            .iter()
            .map(|s| pick(s).load(Ordering::Relaxed))
            .sum()
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += self.total(|s| &s.buckets[i]);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
        }
        let count = self.total(|s| &s.count);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
        let sum = self.total(|s| &s.sum_micros) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

/// Counters shared by every worker, sharded by thread (see `SHARDS`).
#[derive(Debug, Default)]
pub struct Metrics {
    shards: [CounterShard; SHARDS],
}

/// A route pattern and its (status, count) pairs.
type RouteCounts = (String, Vec<(u16, u64)>);

#[derive(Debug, Default)]
#[repr(align(128))]
struct CounterShard {
    /// Route pattern → (status, count), found by comparison: the route table has a few dozen
    /// patterns at most, and counting allocates nothing once a route and status were seen.
    requests: Mutex<Vec<RouteCounts>>,
    /// (reason, renderer) → count: a handful of pairs, found by comparison without hashing.
    unregistered: Mutex<Vec<((&'static str, &'static str), u64)>>,
}

impl Metrics {
    /// Counts a request by its route pattern (never the raw path, so labels stay bounded).
    pub fn request(&self, route: &str, status: u16) {
        let Ok(mut routes) = self.shards[shard()].requests.lock() else {
            return;
        };
        let i = match routes.iter().position(|(r, _)| r == route) {
            Some(i) => i,
            None => {
                routes.push((route.to_owned(), Vec::new()));
                routes.len() - 1
            }
        };
        let statuses = &mut routes[i].1;
        match statuses.iter_mut().find(|(s, _)| *s == status) {
            Some((_, n)) => *n += 1,
            None => statuses.push((status, 1)),
        }
    }

    pub fn unregistered(&self, reason: &'static str, renderer: &'static str) {
        if let Ok(mut counts) = self.shards[shard()].unregistered.lock() {
            let key = (reason, renderer);
            match counts.iter_mut().find(|(k, _)| *k == key) {
                Some((_, n)) => *n += 1,
                None => counts.push((key, 1)),
            }
        }
    }

    /// Every shard's request counts added up, in label order.
    fn requests(&self) -> BTreeMap<(String, u16), u64> {
        let mut all = BTreeMap::new();
        for shard in &self.shards {
            if let Ok(map) = shard.requests.lock() {
                for (route, statuses) in map.iter() {
                    for (status, n) in statuses {
                        *all.entry((route.clone(), *status)).or_default() += n;
                    }
                }
            }
        }
        all
    }

    fn unregistered_counts(&self) -> BTreeMap<(&'static str, &'static str), u64> {
        let mut all = BTreeMap::new();
        for shard in &self.shards {
            if let Ok(map) = shard.unregistered.lock() {
                for (key, n) in map.iter() {
                    *all.entry(*key).or_default() += n;
                }
            }
        }
        all
    }

    /// The Prometheus text exposition.
    pub fn render(&self, storage: &Histogram, backend: &str) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str(
            "# HELP doorman_http_requests_total HTTP requests by route pattern and status.\n",
        );
        out.push_str("# TYPE doorman_http_requests_total counter\n");
        for ((route, status), n) in self.requests() {
            let _ = writeln!(
                out,
                "doorman_http_requests_total{{route={route:?},status=\"{status}\"}} {n}"
            );
        }
        out.push_str("# HELP doorman_unregistered_client_responses_total Unregistered-client answers by reason and renderer.\n");
        out.push_str("# TYPE doorman_unregistered_client_responses_total counter\n");
        for ((reason, renderer), n) in self.unregistered_counts() {
            let _ = writeln!(
                out,
                "doorman_unregistered_client_responses_total{{reason=\"{reason}\",renderer=\"{renderer}\"}} {n}"
            );
        }
        out.push_str("# HELP doorman_storage_operation_seconds Latency of storage operations.\n");
        out.push_str("# TYPE doorman_storage_operation_seconds histogram\n");
        storage.render(
            &mut out,
            "doorman_storage_operation_seconds",
            &format!("backend=\"{backend}\""),
        );
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

        assert!(
            text.contains("doorman_http_requests_total{route=\"/authorize\",status=\"400\"} 2")
        );
        assert!(text.contains(
            "doorman_unregistered_client_responses_total{reason=\"unknown\",renderer=\"json\"} 1"
        ));
        assert!(text.contains(
            "doorman_storage_operation_seconds_bucket{backend=\"memory\",le=\"0.0001\"} 1"
        ));
        assert!(text.contains(
            "doorman_storage_operation_seconds_bucket{backend=\"memory\",le=\"0.005\"} 2"
        ));
        assert!(text.contains("doorman_storage_operation_seconds_count{backend=\"memory\"} 2"));
    }

    #[test]
    fn counts_from_many_threads_add_up() {
        let h = Histogram::default();
        let m = Metrics::default();

        std::thread::scope(|scope| {
            for _ in 0..(2 * SHARDS + 1) {
                scope.spawn(|| {
                    for _ in 0..100 {
                        m.request("/token", 200);
                        h.observe(Duration::from_micros(10));
                    }
                    m.request("/token", 400);
                });
            }
        });
        let text = m.render(&h, "memory");

        let threads = 2 * SHARDS + 1;
        assert!(text.contains(&format!(
            "doorman_http_requests_total{{route=\"/token\",status=\"200\"}} {}",
            threads * 100
        )));
        assert!(text.contains(&format!(
            "doorman_http_requests_total{{route=\"/token\",status=\"400\"}} {threads}"
        )));
        assert!(text.contains(&format!(
            "doorman_storage_operation_seconds_count{{backend=\"memory\"}} {}",
            threads * 100
        )));
    }
}
