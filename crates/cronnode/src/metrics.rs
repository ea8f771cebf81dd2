//! The node's Prometheus metrics (prometheus-client), served as text at `GET /metrics`.
//!
//! One [`Metrics`] per process, cheap to clone; the leader loop and the API record into it.
//! Names are `cronnode_*`; labels are fixed small sets (never a job id: the number of jobs must
//! not grow the number of series). Per-fire detail lives in the fire history, not here.

use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, &'static str)>;

/// Outcome label of a fire.
#[derive(Debug, Clone, Copy)]
pub enum FireOutcomeLabel {
    /// Pushed onto the queue.
    Enqueued,
    /// Already enqueued before (dedupe key present).
    Duplicate,
    /// Refused by the fence.
    Fenced,
    /// The Redis call failed (the fire is retried).
    Error,
    /// Its job cannot become a task (no image, a bad header): dropped.
    Invalid,
    /// Not sent: its job was paused, deleted or changed before it went out.
    Dropped,
    /// Not fired: its job's IronFunctions app or route is missing (recorded in its history).
    RouteMissing,
}

impl FireOutcomeLabel {
    fn as_str(self) -> &'static str {
        match self {
            FireOutcomeLabel::Enqueued => "enqueued",
            FireOutcomeLabel::Duplicate => "duplicate",
            FireOutcomeLabel::Fenced => "fenced",
            FireOutcomeLabel::Error => "error",
            FireOutcomeLabel::Invalid => "invalid",
            FireOutcomeLabel::Dropped => "dropped",
            FireOutcomeLabel::RouteMissing => "route_missing",
        }
    }
}

/// Every metric of a node.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    fires: Family<Labels, Counter>,
    lateness: Histogram,
    is_leader: Gauge,
    leadership_changes: Counter,
    jobs_loaded: Gauge,
    jobs_invalid: Gauge,
    catchup: Family<Labels, Counter>,
    consul_errors: Family<Labels, Counter>,
    redis_errors: Family<Labels, Counter>,
    batch_size: Histogram,
    batch_duration: Histogram,
    fence_blocked: Gauge,
    amended: Family<Labels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Metrics {
        let mut r = Registry::with_prefix("cronnode");
        let fires = Family::<Labels, Counter>::default();
        r.register(
            "fires",
            "Fires by outcome (enqueued, duplicate, fenced, error, invalid, dropped)",
            fires.clone(),
        );
        // 1 ms .. ~65 s: on-time fires land in the first buckets, a Redis outage in the last.
        let lateness = Histogram::new(exponential_buckets(0.001, 2.0, 17));
        r.register(
            "fire_lateness_seconds",
            "Instant a scheduled fire reached the queue (enqueued, or its staged task released) minus its slot",
            lateness.clone(),
        );
        let is_leader = Gauge::default();
        r.register(
            "is_leader",
            "1 while this node holds the leader lock",
            is_leader.clone(),
        );
        let leadership_changes = Counter::default();
        r.register(
            "leadership_changes",
            "Times this node became leader or stopped being leader",
            leadership_changes.clone(),
        );
        let jobs_loaded = Gauge::default();
        r.register(
            "jobs_loaded",
            "Valid jobs in the job store",
            jobs_loaded.clone(),
        );
        let jobs_invalid = Gauge::default();
        r.register(
            "jobs_invalid",
            "Entries under the jobs prefix that fail validation (ignored)",
            jobs_invalid.clone(),
        );
        let catchup = Family::<Labels, Counter>::default();
        r.register(
            "catchup_slots",
            "Missed slots found by catch-up, by result (enqueued, skipped)",
            catchup.clone(),
        );
        let consul_errors = Family::<Labels, Counter>::default();
        r.register(
            "consul_errors",
            "Consul request failures by operation",
            consul_errors.clone(),
        );
        let redis_errors = Family::<Labels, Counter>::default();
        r.register(
            "redis_errors",
            "Redis request failures by operation",
            redis_errors.clone(),
        );
        let batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 12));
        r.register(
            "enqueue_batch_size",
            "Fires per enqueue script call",
            batch_size.clone(),
        );
        let batch_duration = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        r.register(
            "enqueue_batch_duration_seconds",
            "Duration of one enqueue script call",
            batch_duration.clone(),
        );
        let fence_blocked = Gauge::default();
        r.register(
            "fence_blocked",
            "1 while the Redis fence is above this leader's token (Consul rebuilt?): nothing is enqueued until `cronnode fence reset --yes`",
            fence_blocked.clone(),
        );
        let amended = Family::<Labels, Counter>::default();
        r.register(
            "staged_amended",
            "Staged tasks of paused, deleted or changed jobs, by result (withdrawn, restaged)",
            amended.clone(),
        );
        Metrics {
            registry: Arc::new(r),
            fires,
            lateness,
            is_leader,
            leadership_changes,
            jobs_loaded,
            jobs_invalid,
            catchup,
            consul_errors,
            redis_errors,
            batch_size,
            batch_duration,
            fence_blocked,
            amended,
        }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    /// Counts `n` fires with `outcome`.
    pub fn fires(&self, outcome: FireOutcomeLabel, n: u64) {
        if n > 0 {
            self.fires
                .get_or_create(&vec![("outcome", outcome.as_str())])
                .inc_by(n);
        }
    }

    /// Records the lateness of one scheduled fire, in seconds.
    pub fn lateness(&self, seconds: f64) {
        self.lateness.observe(seconds.max(0.0));
    }

    /// Sets the is-leader gauge and counts the change.
    pub fn leadership(&self, leading: bool) {
        self.is_leader.set(i64::from(leading));
        self.leadership_changes.inc();
    }

    /// Sets the job gauges.
    pub fn jobs(&self, loaded: usize, invalid: usize) {
        self.jobs_loaded.set(loaded as i64);
        self.jobs_invalid.set(invalid as i64);
    }

    /// Counts catch-up slots.
    pub fn catchup(&self, enqueued: u64, skipped: u64) {
        self.catchup
            .get_or_create(&vec![("result", "enqueued")])
            .inc_by(enqueued);
        self.catchup
            .get_or_create(&vec![("result", "skipped")])
            .inc_by(skipped);
    }

    /// Counts a Consul failure of operation `op`.
    pub fn consul_error(&self, op: &'static str) {
        self.consul_errors.get_or_create(&vec![("op", op)]).inc();
    }

    /// Counts a Redis failure of operation `op`.
    pub fn redis_error(&self, op: &'static str) {
        self.redis_errors.get_or_create(&vec![("op", op)]).inc();
    }

    /// Records one enqueue script call.
    pub fn batch(&self, size: usize, seconds: f64) {
        self.batch_size.observe(size as f64);
        self.batch_duration.observe(seconds);
    }

    /// Counts staged tasks withdrawn or restaged after a job change.
    pub fn amended(&self, withdrawn: u64, restaged: u64) {
        self.amended
            .get_or_create(&vec![("result", "withdrawn")])
            .inc_by(withdrawn);
        self.amended
            .get_or_create(&vec![("result", "restaged")])
            .inc_by(restaged);
    }

    /// Sets the fence-blocked gauge.
    pub fn fence_blocked(&self, blocked: bool) {
        self.fence_blocked.set(i64::from(blocked));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_has_every_family() {
        let m = Metrics::new();
        m.fires(FireOutcomeLabel::Enqueued, 3);
        m.redis_error("enqueue");
        m.catchup(2, 1);
        m.amended(1, 2);
        let text = m.encode();
        for name in [
            "cronnode_fires_total{outcome=\"enqueued\"} 3",
            "cronnode_fire_lateness_seconds_bucket",
            "cronnode_is_leader",
            "cronnode_leadership_changes_total",
            "cronnode_jobs_loaded",
            "cronnode_jobs_invalid",
            "cronnode_catchup_slots_total{result=\"skipped\"} 1",
            "cronnode_redis_errors_total{op=\"enqueue\"} 1",
            "cronnode_enqueue_batch_size_bucket",
            "cronnode_enqueue_batch_duration_seconds_bucket",
            "cronnode_fence_blocked",
            "cronnode_staged_amended_total{result=\"restaged\"} 2",
        ] {
            assert!(text.contains(name), "{name} missing in\n{text}");
        }
    }
}
