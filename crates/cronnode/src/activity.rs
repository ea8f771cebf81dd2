//! A short history of what this node's leader loop did: fires per second and their lateness
//! over the last [`WINDOW`], one point per [`STEP`]. `GET /v1/leader/activity` serves the
//! leader's history (a follower forwards the request), so the console of every node shows
//! the figures of the node that fires.
//!
//! The points are differences between readings of the node's own metrics, taken every
//! [`STEP`] by [`Activity::run`] on every node (a node that becomes leader has its history
//! going already): the counter `cronnode_fires_total{outcome}` and the histogram
//! `cronnode_fire_lateness_seconds` (a scheduled fire's instant in the queue − its slot).
//! They are read from the Prometheus text the node serves at `/metrics`, the public face of
//! `crate::metrics`, so this history shows exactly what a scrape of the leader would.
//!
//! Kept in memory only: a new leader's history starts at its own start; the old leader's
//! went with it. Must not: record into the metrics, or read anything but this node's.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::broadcast;

use crate::metrics::Metrics;

/// Time between two points.
pub const STEP: Duration = Duration::from_secs(5);
/// How far back the history goes.
pub const WINDOW: Duration = Duration::from_secs(10 * 60);
/// Points kept: [`WINDOW`] / [`STEP`].
pub const POINTS: usize = (WINDOW.as_secs() / STEP.as_secs()) as usize;

/// The fires counter, one series per outcome.
const FIRES: &str = "cronnode_fires_total";
/// The lateness histogram's series.
const LATENESS: &str = "cronnode_fire_lateness_seconds";
/// The percentile of lateness each point reports.
const PERCENTILE: f64 = 0.99;

/// The cumulative values read from the metrics at one instant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reading {
    /// Fires by outcome: enqueued, duplicate, fenced, error.
    pub outcomes: [f64; 4],
    /// Scheduled fires whose lateness was observed.
    pub late_count: f64,
    /// Sum of their lateness, seconds.
    pub late_sum: f64,
    /// The histogram's cumulative buckets: (upper bound in seconds, count), in order.
    pub buckets: Vec<(f64, f64)>,
}

/// The outcome labels, in the order of [`Reading::outcomes`].
const OUTCOMES: [&str; 4] = ["enqueued", "duplicate", "fenced", "error"];

impl Reading {
    /// Reads the Prometheus text exposition (`Metrics::encode`).
    pub fn parse(text: &str) -> Reading {
        let mut r = Reading::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.trim().parse::<f64>() else {
                continue;
            };
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => (n, l.trim_end_matches('}')),
                None => (series, ""),
            };
            let label = |key: &str| {
                labels.split(',').find_map(|kv| {
                    let (k, v) = kv.split_once('=')?;
                    (k == key).then(|| v.trim_matches('"'))
                })
            };
            if name == FIRES {
                if let Some(i) =
                    label("outcome").and_then(|o| OUTCOMES.iter().position(|x| *x == o))
                {
                    r.outcomes[i] = value;
                }
            } else if let Some(part) = name.strip_prefix(LATENESS) {
                match part {
                    "_count" => r.late_count = value,
                    "_sum" => r.late_sum = value,
                    "_bucket" => {
                        let le = match label("le") {
                            Some("+Inf") => f64::INFINITY,
                            Some(le) => le.parse().unwrap_or(f64::INFINITY),
                            None => continue,
                        };
                        r.buckets.push((le, value));
                    }
                    _ => {}
                }
            }
        }
        r
    }
}

/// What happened during one [`STEP`].
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// The end of the step.
    pub at: DateTime<Utc>,
    /// Fires by outcome during the step: enqueued, duplicate, fenced, error.
    pub outcomes: [u64; 4],
    /// Scheduled fires whose lateness was observed during the step.
    pub late_count: u64,
    /// Their mean lateness, milliseconds; `None` without any.
    pub lateness_mean_ms: Option<f64>,
    /// The upper bound of the histogram bucket that holds their 99th percentile (the last
    /// finite bound when it is beyond it), milliseconds; `None` without any.
    pub lateness_p99_ms: Option<f64>,
}

impl Point {
    /// The difference between two readings, `step` apart, ending at `at`.
    fn between(before: &Reading, after: &Reading, at: DateTime<Utc>) -> Point {
        let delta = |a: f64, b: f64| (a - b).max(0.0);
        let mut outcomes = [0; 4];
        for (i, o) in outcomes.iter_mut().enumerate() {
            *o = delta(after.outcomes[i], before.outcomes[i]).round() as u64;
        }
        let count = delta(after.late_count, before.late_count);
        let sum = delta(after.late_sum, before.late_sum);
        let mean = (count > 0.0).then(|| sum / count * 1000.0);
        let p99 = (count > 0.0).then(|| {
            let rank = (count * PERCENTILE).ceil();
            let last_finite = after
                .buckets
                .iter()
                .map(|(le, _)| *le)
                .filter(|le| le.is_finite())
                .fold(0.0, f64::max);
            after
                .buckets
                .iter()
                .find(|(le, n)| {
                    let before_n = before
                        .buckets
                        .iter()
                        .find(|(l, _)| l == le)
                        .map_or(0.0, |(_, n)| *n);
                    delta(*n, before_n) >= rank
                })
                .map_or(last_finite, |(le, _)| le.min(last_finite))
                * 1000.0
        });
        Point {
            at,
            outcomes,
            late_count: count.round() as u64,
            lateness_mean_ms: mean,
            lateness_p99_ms: p99,
        }
    }
}

/// The history: the last reading and the points since.
#[derive(Debug, Default)]
pub struct History {
    last: Option<Reading>,
    points: VecDeque<Point>,
}

impl History {
    /// Adds the reading taken at `at`: a point from the previous one, if any.
    pub fn record(&mut self, at: DateTime<Utc>, reading: Reading) {
        if let Some(before) = &self.last {
            self.points.push_back(Point::between(before, &reading, at));
            while self.points.len() > POINTS {
                self.points.pop_front();
            }
        }
        self.last = Some(reading);
    }

    /// The points, oldest first.
    pub fn points(&self) -> Vec<Point> {
        self.points.iter().cloned().collect()
    }
}

/// A node's history, shared by the sampler and the API.
#[derive(Debug, Clone, Default)]
pub struct Activity {
    history: Arc<Mutex<History>>,
}

impl Activity {
    /// An empty history.
    pub fn new() -> Activity {
        Activity::default()
    }

    /// Reads `metrics` as of `at`.
    pub fn sample(&self, metrics: &Metrics, at: DateTime<Utc>) {
        let reading = Reading::parse(&metrics.encode());
        self.lock().record(at, reading);
    }

    /// The points, oldest first.
    pub fn points(&self) -> Vec<Point> {
        self.lock().points()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, History> {
        // A panic while holding the lock leaves a history that is still whole.
        self.history.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Samples `metrics` every [`STEP`] until `shutdown`.
    pub async fn run(self, metrics: Metrics, mut shutdown: broadcast::Receiver<()>) {
        let mut tick = tokio::time::interval(STEP);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.sample(&metrics, Utc::now()),
                _ = shutdown.recv() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::metrics::FireOutcomeLabel;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn points_are_what_the_metrics_counted_in_each_step() {
        let metrics = Metrics::new();
        let activity = Activity::new();
        activity.sample(&metrics, at(0));
        assert!(activity.points().is_empty(), "one reading makes no point");

        metrics.fires(FireOutcomeLabel::Enqueued, 10);
        metrics.fires(FireOutcomeLabel::Fenced, 2);
        for ms in [1.0, 1.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 1000.0] {
            metrics.lateness(ms / 1000.0);
        }
        activity.sample(&metrics, at(5));
        activity.sample(&metrics, at(10));

        let points = activity.points();
        assert_eq!(points.len(), 2);
        let p = &points[0];
        assert_eq!(p.at, at(5));
        assert_eq!(p.outcomes, [10, 0, 2, 0]);
        assert_eq!(p.late_count, 10);
        let mean = p.lateness_mean_ms.unwrap();
        assert!((mean - 102.3).abs() < 0.01, "{mean}");
        // The 10th of 10 (the 99th percentile) is the 1 s one: bucket 1.024 s.
        assert_eq!(p.lateness_p99_ms, Some(1024.0));
        // Nothing happened in the second step.
        let q = &points[1];
        assert_eq!(q.outcomes, [0; 4]);
        assert_eq!(
            (q.late_count, q.lateness_mean_ms, q.lateness_p99_ms),
            (0, None, None)
        );
    }

    #[test]
    fn the_window_keeps_the_newest_points() {
        let mut h = History::default();
        for i in 0..(POINTS as i64 + 10) {
            h.record(at(i * 5), Reading::default());
        }
        let points = h.points();
        assert_eq!(points.len(), POINTS);
        assert_eq!(points[POINTS - 1].at, at((POINTS as i64 + 9) * 5));
    }

    #[test]
    fn lateness_beyond_the_last_bucket_reports_the_last_bound() {
        let before = Reading::parse("");
        let after = Reading::parse(
            "cronnode_fire_lateness_seconds_bucket{le=\"1.0\"} 0\n\
             cronnode_fire_lateness_seconds_bucket{le=\"+Inf\"} 3\n\
             cronnode_fire_lateness_seconds_sum 300.0\n\
             cronnode_fire_lateness_seconds_count 3\n",
        );
        let p = Point::between(&before, &after, at(0));
        assert_eq!(p.lateness_p99_ms, Some(1000.0));
        assert_eq!(p.lateness_mean_ms, Some(100_000.0));
    }
}
