//! Counters for `/metrics`, rendered as Prometheus text.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use parking_lot::Mutex;

/// A monotonically increasing counter.
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    /// Subtracts one.
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
    /// The current value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
    /// Sets the value.
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }
}

/// The cluster's health and traffic (rendered only when a cluster is configured).
#[derive(Default)]
pub struct ClusterMetrics {
    /// Whether this node runs in a cluster.
    pub enabled: std::sync::atomic::AtomicBool,
    /// 1 while the node is connected to Redis, else 0.
    pub redis_connected: Gauge,
    /// Envelopes this node published to other nodes.
    pub published: Counter,
    /// Envelopes this node received from other nodes.
    pub received: Counter,
    /// Envelopes that could not be published (Redis down or too slow).
    pub dropped: Counter,
    /// Users of dead nodes removed from presence by this node.
    pub reaped: Counter,
}

/// Counters keyed by a reason label.
#[derive(Default)]
pub struct LabeledCounter(Mutex<Vec<(&'static str, u64)>>);

impl LabeledCounter {
    /// Adds one under `label`.
    pub fn inc(&self, label: &'static str) {
        let mut v = self.0.lock();
        match v.iter_mut().find(|(l, _)| *l == label) {
            Some((_, n)) => *n += 1,
            None => v.push((label, 1)),
        }
    }
    /// The value under `label`.
    pub fn get(&self, label: &str) -> u64 {
        self.0
            .lock()
            .iter()
            .find(|(l, _)| *l == label)
            .map_or(0, |(_, n)| *n)
    }
}

/// Every metric the engine exports.
#[derive(Default)]
pub struct Metrics {
    /// Open Engine.IO sessions.
    pub connections: Gauge,
    /// Sessions that have not joined a namespace yet (not authenticated).
    pub pending_connections: Gauge,
    /// Sessions opened since start.
    pub connections_total: Counter,
    /// Connected Socket.IO sockets.
    pub sockets: Gauge,
    /// Engine.IO packets received.
    pub packets_in: Counter,
    /// Frames queued for clients.
    pub packets_out: Counter,
    /// Payload bytes received.
    pub bytes_in: Counter,
    /// Bytes written to clients.
    pub bytes_out: Counter,
    /// Refused connections by reason.
    pub refusals: LabeledCounter,
    /// Closed sessions by reason.
    pub disconnects: LabeledCounter,
    /// Messages accepted by `sendMessage` or the API.
    pub messages: Counter,
    /// The cluster (Redis), when configured.
    pub cluster: ClusterMetrics,
}

impl Metrics {
    /// Renders every metric as Prometheus text.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        let mut simple = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        simple(
            "switchboard_connections",
            "gauge",
            "Open Engine.IO sessions.",
            self.connections.get().to_string(),
        );
        simple(
            "switchboard_pending_connections",
            "gauge",
            "Sessions that have not joined a namespace yet.",
            self.pending_connections.get().to_string(),
        );
        simple(
            "switchboard_connections_total",
            "counter",
            "Sessions opened since start.",
            self.connections_total.get().to_string(),
        );
        simple(
            "switchboard_sockets",
            "gauge",
            "Connected Socket.IO sockets.",
            self.sockets.get().to_string(),
        );
        simple(
            "switchboard_packets_in_total",
            "counter",
            "Engine.IO packets received.",
            self.packets_in.get().to_string(),
        );
        simple(
            "switchboard_packets_out_total",
            "counter",
            "Frames queued for clients.",
            self.packets_out.get().to_string(),
        );
        simple(
            "switchboard_bytes_in_total",
            "counter",
            "Payload bytes received.",
            self.bytes_in.get().to_string(),
        );
        simple(
            "switchboard_bytes_out_total",
            "counter",
            "Bytes written to clients.",
            self.bytes_out.get().to_string(),
        );
        simple(
            "switchboard_messages_total",
            "counter",
            "Chat messages accepted.",
            self.messages.get().to_string(),
        );
        let c = &self.cluster;
        if c.enabled.load(Ordering::Relaxed) {
            simple(
                "switchboard_redis_connected",
                "gauge",
                "1 while this node is connected to the cluster's Redis.",
                c.redis_connected.get().to_string(),
            );
            for (name, help, counter) in [
                (
                    "switchboard_cluster_published_total",
                    "Envelopes published to other nodes.",
                    &c.published,
                ),
                (
                    "switchboard_cluster_received_total",
                    "Envelopes received from other nodes.",
                    &c.received,
                ),
                (
                    "switchboard_cluster_dropped_total",
                    "Envelopes not published: Redis down or too slow.",
                    &c.dropped,
                ),
                (
                    "switchboard_cluster_reaped_total",
                    "Users of dead nodes removed from presence.",
                    &c.reaped,
                ),
            ] {
                simple(name, "counter", help, counter.get().to_string());
            }
        }
        for (name, help, counter) in [
            (
                "switchboard_refusals_total",
                "Refused connections by reason.",
                &self.refusals,
            ),
            (
                "switchboard_disconnects_total",
                "Closed sessions by reason.",
                &self.disconnects,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (label, n) in counter.0.lock().iter() {
                let _ = writeln!(out, "{name}{{reason=\"{label}\"}} {n}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.connections.inc();
        m.refusals.inc("invalid_token");
        m.refusals.inc("invalid_token");
        let text = m.render();
        assert!(text.contains("\nswitchboard_connections 1\n"));
        assert!(text.contains("switchboard_refusals_total{reason=\"invalid_token\"} 2\n"));
    }
}
