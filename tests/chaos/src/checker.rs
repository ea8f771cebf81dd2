//! The checker: reads what a run left on the queues and decides whether every slot was
//! delivered exactly once, under the fence.
//!
//! Pure: it takes the [`Evidence`] the harness collected (jobs, decoded tasks in push order,
//! fence samples, fault records, the end of the run window) and returns a [`Report`]. It does
//! no I/O and reads no clock, so it is tested with plain values.
//!
//! What it proves, per job, for every slot `created < slot <= end` computed with cron-core's
//! [`Schedule`] (the daemon's own schedule code; a bug shared by both would go unseen, which is
//! why the unit tests here pin a few slots by hand):
//! - exactly one task carries the slot (none missing, none doubled), its `id` is the slot's fire
//!   id, and no task names a slot the schedule does not have;
//! - no task was pushed with a token below the fence in force at the time. The fence in force at
//!   a list position is at least the largest token pushed before it (the enqueue script raises
//!   the fence to the token it pushes with), and at least every fence sample taken while the
//!   list was no longer than that position (the harness reads the fence, then the list lengths,
//!   so every later push happened under that fence or a higher one). Both need no clock.
//!   One exception, and it needs a clock: the leader stages a fire up to [`STAGE_LOOKAHEAD`]
//!   before its slot, and a successor releases what its predecessor staged into the queue
//!   after its own pushes, still carrying the predecessor's token. A task below the fence in
//!   force is therefore accepted when its slot is less than [`STAGE_LOOKAHEAD`] after the
//!   first evidence of a fence above its token (a fence sample, or the `created_at` of a task
//!   pushed with a higher token): it can have been staged before that fence was raised. Such
//!   tasks are counted ([`Report::released_by_successor`]), not failed.
//!
//! Start at [`check`].

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use chrono::{DateTime, Utc};
use cron_core::Schedule;

/// How long before its slot cronnode's leader stages a fire (`leader::staging::LOOKAHEAD`,
/// 2 s), plus a second for rounding (the leader stages slots up to `now + LOOKAHEAD` rounded
/// down to the second, and `created_at` has millisecond resolution).
pub const STAGE_LOOKAHEAD: chrono::TimeDelta = chrono::TimeDelta::seconds(3);

/// How many items of each failure list the report prints.
const SHOWN: usize = 20;

/// A job the harness registered.
#[derive(Debug, Clone)]
pub struct JobUnderTest {
    /// The job id.
    pub id: String,
    /// Its schedule, parsed by cron-core from the spec the harness sent.
    pub schedule: Schedule,
    /// When the job store recorded it: its first slot is the first one strictly after this.
    pub created: DateTime<Utc>,
}

/// One task read from a queue list.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// The Redis list it was on.
    pub list: String,
    /// Its push position in that list (0 = pushed first).
    pub seq: usize,
    /// The task's `id`.
    pub id: String,
    /// The job id from the task's `cron` object.
    pub job: String,
    /// The scheduled instant from the task's `cron` object.
    pub slot: DateTime<Utc>,
    /// The fencing token it was pushed with.
    pub token: u64,
    /// When the leader made it (the task's `created_at`), if present.
    pub enqueued: Option<DateTime<Utc>>,
    /// The node that pushed it, if the task says.
    pub node: Option<String>,
}

/// The fence read at one moment, then the length of every queue list.
#[derive(Debug, Clone, PartialEq)]
pub struct FenceSample {
    /// The fence value read first.
    pub fence: u64,
    /// When the fence answered (read after it: the fence was at least this high by then).
    pub at: DateTime<Utc>,
    /// The list lengths read after it.
    pub lens: BTreeMap<String, usize>,
}

/// One injected fault, as the harness recorded it.
#[derive(Debug, Clone)]
pub struct FaultRecord {
    /// Its name, e.g. `kill-9 leader`.
    pub name: String,
    /// When it was injected.
    pub started: DateTime<Utc>,
    /// When it was lifted (equal to `started` for instantaneous faults).
    pub lifted: DateTime<Utc>,
    /// What the harness saw (which node, which session, ...).
    pub note: String,
}

/// Everything a run leaves for the checker.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    /// The registered jobs.
    pub jobs: Vec<JobUnderTest>,
    /// Every decoded task, in push order within each list.
    pub tasks: Vec<Task>,
    /// Raw queue entries that did not decode as cronnode tasks.
    pub undecodable: Vec<String>,
    /// Fence samples, in the order taken.
    pub fences: Vec<FenceSample>,
    /// Faults, in the order injected.
    pub faults: Vec<FaultRecord>,
    /// Faults the harness could not inject here, with the reason.
    pub skipped: Vec<String>,
    /// The end of the run window: slots at or before it must have been delivered.
    pub end: DateTime<Utc>,
}

/// A job's slot.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slot {
    /// The job id.
    pub job: String,
    /// The scheduled instant.
    pub at: DateTime<Utc>,
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.job, self.at.format("%H:%M:%S"))
    }
}

/// What one fault did to the enqueue stream.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultOutcome {
    /// The fault's name.
    pub name: String,
    /// The harness's note.
    pub note: String,
    /// The term (token) of the last push before the fault.
    pub old_term: Option<u64>,
    /// The term of the first push of a newer term after the fault, if the term changed.
    pub new_term: Option<u64>,
    /// Fault → first push of the new term (or, when the term did not change, first push after
    /// the fault was lifted), seconds.
    pub failover: Option<f64>,
    /// Last push of the old term → first push of the new term, seconds.
    pub handover: Option<f64>,
    /// The worst lateness of the tasks pushed between this fault and the next one, seconds.
    pub max_lateness: Option<f64>,
    /// Term changes seen between this fault and the next one (a rolling restart can move the
    /// lock more than once).
    pub term_changes: usize,
    /// The longest time without any push between this fault and the next one, seconds: the
    /// outage as the queue saw it, whatever caused it.
    pub longest_silence: Option<f64>,
}

/// Lateness (push time − slot) over all tasks that say when they were made.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Lateness {
    /// How many tasks were measured.
    pub count: usize,
    /// Median, seconds.
    pub p50: f64,
    /// 90th percentile, seconds.
    pub p90: f64,
    /// 99th percentile, seconds.
    pub p99: f64,
    /// Worst, seconds.
    pub max: f64,
}

/// The checker's verdict.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// One entry per injected fault.
    pub faults: Vec<FaultOutcome>,
    /// Faults skipped, with the reason.
    pub skipped: Vec<String>,
    /// Slots in the run window.
    pub expected: usize,
    /// Slots in the window carried by exactly one task.
    pub delivered_once: usize,
    /// Slots in the window carried by no task.
    pub missing: Vec<Slot>,
    /// Slots carried by more than one task, with the count.
    pub duplicates: Vec<(Slot, usize)>,
    /// Tasks for a slot the job's schedule does not have (or an unknown job).
    pub unexpected: Vec<Slot>,
    /// Tasks whose `id` is not their slot's fire id.
    pub bad_ids: Vec<String>,
    /// Tasks pushed with a token below the fence in force at their position.
    pub fence_violations: Vec<String>,
    /// Tasks below the fence in force at their position that a predecessor staged before the
    /// fence rose and a successor released (see the module docs).
    pub released_by_successor: usize,
    /// Queue entries that were not cronnode tasks.
    pub undecodable: usize,
    /// The lateness distribution.
    pub lateness: Lateness,
    /// The largest failover over all faults, seconds.
    pub max_failover: Option<f64>,
    /// How many fence samples the fence check used, and the highest fence seen.
    pub fence_samples: (usize, Option<u64>),
    /// Distinct terms (tokens) that pushed tasks.
    pub terms: usize,
}

impl Report {
    /// Whether the run kept every promise.
    pub fn passed(&self) -> bool {
        self.missing.is_empty()
            && self.duplicates.is_empty()
            && self.unexpected.is_empty()
            && self.bad_ids.is_empty()
            && self.fence_violations.is_empty()
            && self.undecodable == 0
            && self.delivered_once == self.expected
    }
}

/// Checks a run.
pub fn check(evidence: &Evidence) -> Report {
    let mut report = Report {
        skipped: evidence.skipped.clone(),
        undecodable: evidence.undecodable.len(),
        ..Report::default()
    };
    check_slots(evidence, &mut report);
    report.bad_ids = evidence
        .tasks
        .iter()
        .filter(|t| t.id != cron_core::fire::fire_id(&t.job, t.slot).to_string())
        .map(|t| format!("{} on {}@{}", t.id, t.job, t.slot.to_rfc3339()))
        .collect();
    (report.fence_violations, report.released_by_successor) =
        fence_violations(&evidence.tasks, &evidence.fences);
    report.fence_samples = (
        evidence.fences.len(),
        evidence.fences.iter().map(|f| f.fence).max(),
    );
    let terms: std::collections::BTreeSet<u64> = evidence.tasks.iter().map(|t| t.token).collect();
    report.terms = terms.len();
    report.lateness = lateness(evidence.tasks.iter().filter_map(late));
    report.faults = fault_outcomes(evidence);
    report.max_failover = report
        .faults
        .iter()
        .filter_map(|f| f.failover)
        .fold(None, |acc: Option<f64>, x| {
            Some(acc.map_or(x, |a| a.max(x)))
        });
    report
}

fn check_slots(evidence: &Evidence, report: &mut Report) {
    let mut carried: HashMap<Slot, usize> = HashMap::new();
    for task in &evidence.tasks {
        let slot = Slot {
            job: task.job.clone(),
            at: task.slot,
        };
        *carried.entry(slot).or_default() += 1;
    }
    for job in &evidence.jobs {
        // Every slot the schedule has from creation up to the later of the window's end and
        // the last slot any task names, so that a task past the end is still checked.
        let last_named = evidence
            .tasks
            .iter()
            .filter(|t| t.job == job.id)
            .map(|t| t.slot)
            .max();
        let horizon = last_named.map_or(evidence.end, |l| l.max(evidence.end));
        let mut at = job.created;
        while let Some(next) = job.schedule.next_after(at) {
            if next > horizon {
                break;
            }
            at = next;
            let slot = Slot {
                job: job.id.clone(),
                at: next,
            };
            let count = carried.remove(&slot).unwrap_or(0);
            if next <= evidence.end {
                report.expected += 1;
                match count {
                    0 => report.missing.push(slot),
                    1 => report.delivered_once += 1,
                    n => report.duplicates.push((slot, n)),
                }
            } else if count > 1 {
                report.duplicates.push((slot, count));
            }
        }
    }
    let mut unexpected: Vec<Slot> = carried.into_keys().collect();
    unexpected.sort();
    report.unexpected = unexpected;
}

/// The first evidence of a fence above `token`: a sample, or a task pushed with a higher token
/// (its leader raised the fence before making it).
fn fence_above_since(token: u64, tasks: &[Task], fences: &[FenceSample]) -> Option<DateTime<Utc>> {
    let samples = fences.iter().filter(|f| f.fence > token).map(|f| f.at);
    let pushes = tasks
        .iter()
        .filter(|t| t.token > token)
        .filter_map(|t| t.enqueued);
    samples.chain(pushes).min()
}

/// Tasks pushed below the fence in force at their list position (see the module docs), and
/// how many such tasks were staged before the fence rose (not violations).
fn fence_violations(tasks: &[Task], fences: &[FenceSample]) -> (Vec<String>, usize) {
    let mut released = 0;
    let mut by_list: BTreeMap<&str, Vec<&Task>> = BTreeMap::new();
    for task in tasks {
        by_list.entry(task.list.as_str()).or_default().push(task);
    }
    let mut violations = Vec::new();
    for (list, mut pushed) in by_list {
        pushed.sort_by_key(|t| t.seq);
        // (length when sampled, fence) sorted by length: a push at position >= length came
        // after the sample.
        let mut samples: Vec<(usize, u64)> = fences
            .iter()
            .filter_map(|s| s.lens.get(list).map(|&len| (len, s.fence)))
            .collect();
        samples.sort();
        let mut next_sample = 0;
        let mut floor = 0u64;
        let mut floor_from = String::from("no fence");
        for task in pushed {
            while next_sample < samples.len() && samples[next_sample].0 <= task.seq {
                if samples[next_sample].1 > floor {
                    floor = samples[next_sample].1;
                    floor_from = format!("fence {floor} read before push {}", task.seq);
                }
                next_sample += 1;
            }
            let staged_before = || {
                fence_above_since(task.token, tasks, fences)
                    .is_some_and(|since| task.slot < since + STAGE_LOOKAHEAD)
            };
            if task.token < floor && staged_before() {
                released += 1;
            } else if task.token < floor {
                violations.push(format!(
                    "{list}[{}] {}@{} token {} by {} below {floor_from}",
                    task.seq,
                    task.job,
                    task.slot.to_rfc3339(),
                    task.token,
                    task.node.as_deref().unwrap_or("?"),
                ));
            }
            if task.token > floor {
                floor = task.token;
                floor_from = format!("token {floor} pushed at {list}[{}]", task.seq);
            }
        }
    }
    (violations, released)
}

fn late(task: &Task) -> Option<f64> {
    task.enqueued.map(|e| secs(e - task.slot))
}

fn secs(d: chrono::TimeDelta) -> f64 {
    d.num_milliseconds() as f64 / 1000.0
}

fn lateness(values: impl Iterator<Item = f64>) -> Lateness {
    let mut v: Vec<f64> = values.collect();
    if v.is_empty() {
        return Lateness::default();
    }
    v.sort_by(f64::total_cmp);
    let pick = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    Lateness {
        count: v.len(),
        p50: pick(0.5),
        p90: pick(0.9),
        p99: pick(0.99),
        max: v[v.len() - 1],
    }
}

fn fault_outcomes(evidence: &Evidence) -> Vec<FaultOutcome> {
    let mut timed: Vec<(DateTime<Utc>, &Task)> = evidence
        .tasks
        .iter()
        .filter_map(|t| t.enqueued.map(|e| (e, t)))
        .collect();
    timed.sort_by_key(|(e, t)| (*e, t.seq));
    let mut outcomes = Vec::new();
    for (i, fault) in evidence.faults.iter().enumerate() {
        let window_end = evidence
            .faults
            .get(i + 1)
            .map_or(evidence.end, |next| next.started);
        let old_term = timed
            .iter()
            .rev()
            .find(|(e, _)| *e < fault.started)
            .map(|(_, t)| t.token);
        // Only this fault's window: a term change caused by the next fault is not this one's.
        let after: Vec<&(DateTime<Utc>, &Task)> = timed
            .iter()
            .filter(|(e, _)| *e >= fault.started && *e < window_end)
            .collect();
        let new_first = after
            .iter()
            .find(|(_, t)| old_term.is_none_or(|old| t.token > old));
        let (new_term, failover, handover) = match (old_term, new_first) {
            (Some(old), Some((first, t))) => {
                let last_old = timed
                    .iter()
                    .rev()
                    .find(|(e, x)| x.token == old && e <= first)
                    .map(|(e, _)| *e);
                (
                    Some(t.token),
                    Some(secs(*first - fault.started)),
                    last_old.map(|l| secs(*first - l)),
                )
            }
            _ => {
                let first = after.iter().find(|(e, _)| *e >= fault.lifted);
                (None, first.map(|(e, _)| secs(*e - fault.started)), None)
            }
        };
        let max_lateness = timed
            .iter()
            .filter(|(e, _)| *e >= fault.started && *e < window_end)
            .filter_map(|(_, t)| late(t))
            .fold(None, |acc: Option<f64>, x| {
                Some(acc.map_or(x, |a| a.max(x)))
            });
        let (mut term_changes, mut longest_silence) = (0, None::<f64>);
        let mut term = old_term.unwrap_or(0);
        let mut previous = timed
            .iter()
            .rev()
            .find(|(e, _)| *e < fault.started)
            .map(|(e, _)| *e);
        for (e, t) in &after {
            if t.token > term {
                term_changes += 1;
                term = t.token;
            }
            if let Some(p) = previous {
                let gap = secs(*e - p);
                longest_silence = Some(longest_silence.map_or(gap, |l| l.max(gap)));
            }
            previous = Some(*e);
        }
        outcomes.push(FaultOutcome {
            name: fault.name.clone(),
            note: fault.note.clone(),
            old_term,
            new_term,
            failover,
            handover,
            max_lateness,
            term_changes,
            longest_silence,
        });
    }
    outcomes
}

fn opt_secs(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |s| format!("{s:.1} s"))
}

fn list<T: fmt::Display>(f: &mut fmt::Formatter<'_>, what: &str, items: &[T]) -> fmt::Result {
    if items.is_empty() {
        return Ok(());
    }
    let shown: Vec<String> = items.iter().take(SHOWN).map(ToString::to_string).collect();
    let more = items.len().saturating_sub(SHOWN);
    write!(f, "{what} ({}): {}", items.len(), shown.join(", "))?;
    if more > 0 {
        write!(f, " … and {more} more")?;
    }
    writeln!(f)
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, o) in self.faults.iter().enumerate() {
            let term = |t: Option<u64>| t.map_or_else(|| "-".to_string(), |t| t.to_string());
            let change = match o.new_term {
                Some(new) => format!(
                    "term {} -> {new}, failover {}, handover {}",
                    term(o.old_term),
                    opt_secs(o.failover),
                    opt_secs(o.handover)
                ),
                None => format!(
                    "term {} kept, first push after lifting {}",
                    term(o.old_term),
                    opt_secs(o.failover)
                ),
            };
            writeln!(
                f,
                "fault {}: {} ({}): {change}, max lateness {}, longest silence {}, {} term change(s)",
                i + 1,
                o.name,
                o.note,
                opt_secs(o.max_lateness),
                opt_secs(o.longest_silence),
                o.term_changes
            )?;
        }
        for s in &self.skipped {
            writeln!(f, "skipped: {s}")?;
        }
        writeln!(
            f,
            "{} tasks from {} terms; fence checked against push order and {} samples (highest {}); {} staged by a leader and released by its successor",
            self.lateness.count,
            self.terms,
            self.fence_samples.0,
            self.fence_samples
                .1
                .map_or_else(|| "-".to_string(), |v| v.to_string()),
            self.released_by_successor
        )?;
        let l = &self.lateness;
        writeln!(
            f,
            "lateness over {} tasks: p50 {:.2} s, p90 {:.2} s, p99 {:.2} s, max {:.2} s",
            l.count, l.p50, l.p90, l.p99, l.max
        )?;
        list(f, "MISSING", &self.missing)?;
        let dups: Vec<String> = self
            .duplicates
            .iter()
            .map(|(s, n)| format!("{s} x{n}"))
            .collect();
        list(f, "DUPLICATE", &dups)?;
        list(f, "UNEXPECTED", &self.unexpected)?;
        list(f, "BAD ID", &self.bad_ids)?;
        list(f, "FENCE VIOLATION", &self.fence_violations)?;
        if self.undecodable > 0 {
            writeln!(f, "UNDECODABLE queue entries: {}", self.undecodable)?;
        }
        write!(
            f,
            "faults: {}, slots expected: {}, delivered once: {}, missing: {}, duplicates: {}, max failover: {}",
            self.faults.len(),
            self.expected,
            self.delivered_once,
            self.missing.len(),
            self.duplicates.len(),
            self.max_failover
                .map_or_else(|| "- s".to_string(), |s| format!("{s:.1} s"))
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::TimeDelta;

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-26T20:00:00.400Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-26T20:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            + TimeDelta::seconds(secs)
    }

    fn job(id: &str, expr: &str) -> JobUnderTest {
        JobUnderTest {
            id: id.into(),
            schedule: Schedule::parse(expr, None).unwrap(),
            created: t0(),
        }
    }

    /// A task of `job` for the slot `slot` seconds after 20:00:00, pushed `late_ms` after it.
    fn task(seq: usize, job: &str, slot: i64, token: u64, late_ms: i64) -> Task {
        let s = at(slot);
        Task {
            list: "queue0".into(),
            seq,
            id: cron_core::fire::fire_id(job, s).to_string(),
            job: job.into(),
            slot: s,
            token,
            enqueued: Some(s + TimeDelta::milliseconds(late_ms)),
            node: Some("n1".into()),
        }
    }

    /// Every second from 20:00:01 to 20:00:10, token 10 then 20 from slot 6 on.
    fn clean() -> Evidence {
        Evidence {
            jobs: vec![job("s", "* * * * * *")],
            tasks: (1..=10)
                .map(|i| task(i as usize - 1, "s", i, if i < 6 { 10 } else { 20 }, 100))
                .collect(),
            end: at(10),
            ..Evidence::default()
        }
    }

    #[test]
    fn a_clean_run_passes_and_counts_every_slot_once() {
        let r = check(&clean());
        assert!(r.passed(), "{r}");
        assert_eq!((r.expected, r.delivered_once), (10, 10));
        assert!(r
            .to_string()
            .ends_with("faults: 0, slots expected: 10, delivered once: 10, missing: 0, duplicates: 0, max failover: - s"));
    }

    #[test]
    fn slots_are_the_schedules_own_between_creation_and_end() {
        // Created at 20:00:00.4: */3 has 20:00:03, :06, :09 up to the end at 20:00:10.
        let e = Evidence {
            jobs: vec![job("t", "*/3 * * * * *")],
            tasks: vec![
                task(0, "t", 3, 1, 0),
                task(1, "t", 6, 1, 0),
                task(2, "t", 9, 1, 0),
            ],
            end: at(10),
            ..Evidence::default()
        };
        let r = check(&e);
        assert!(r.passed(), "{r}");
        assert_eq!(r.expected, 3);
    }

    #[test]
    fn missing_duplicate_and_foreign_slots_fail() {
        let mut e = clean();
        e.tasks.remove(3); // slot 4
        let mut dup = task(10, "s", 7, 20, 2000);
        dup.enqueued = Some(at(9));
        e.tasks.push(dup);
        e.tasks.push(task(11, "other", 8, 20, 0));
        let r = check(&e);
        assert!(!r.passed());
        assert_eq!(r.missing.len(), 1);
        assert_eq!(r.missing[0].at, at(4));
        assert_eq!(r.duplicates.len(), 1);
        assert_eq!(
            r.duplicates[0],
            (
                Slot {
                    job: "s".into(),
                    at: at(7)
                },
                2
            )
        );
        assert_eq!(r.unexpected.len(), 1);
        assert_eq!((r.expected, r.delivered_once), (10, 8));
        assert!(r.to_string().contains("missing: 1, duplicates: 1"));
    }

    #[test]
    fn a_duplicate_after_the_window_still_fails() {
        let mut e = clean();
        e.tasks.push(task(10, "s", 12, 20, 0));
        e.tasks.push(task(11, "s", 12, 20, 0));
        let r = check(&e);
        assert_eq!(r.duplicates.len(), 1);
        assert_eq!(r.expected, 10);
    }

    #[test]
    fn a_wrong_id_fails() {
        let mut e = clean();
        e.tasks[0].id = "not-the-fire-id".into();
        let r = check(&e);
        assert_eq!(r.bad_ids.len(), 1);
        assert!(!r.passed());
    }

    #[test]
    fn a_push_below_an_earlier_token_is_a_fence_violation() {
        let mut e = clean();
        // The paused former leader (token 10) pushes slot 10 after the successor pushed with 20
        // (from 6.1 s on): more than the staging lookahead after the fence rose.
        e.tasks[9].token = 10;
        let r = check(&e);
        assert_eq!(r.fence_violations.len(), 1, "{r}");
        assert!(r.fence_violations[0].contains("token 10"));
    }

    #[test]
    fn a_task_staged_before_the_fence_rose_and_released_later_is_no_violation() {
        let mut e = clean();
        // The old leader (10) staged slot 7 before the successor (20) raised the fence (its
        // first push, slot 6, made at 6.0 s), then died; the successor released slot 7 after
        // its own push of slot 6: below the token pushed before it, but slot 7 is within the
        // lookahead of the fence's rise.
        e.tasks[6].token = 10;
        let r = check(&e);
        assert!(r.fence_violations.is_empty(), "{r}");
        assert_eq!(r.released_by_successor, 1);
        // Slot 10 with the old token: too far after the rise to have been staged before it.
        e.tasks[9].token = 10;
        let r = check(&e);
        assert_eq!(r.fence_violations.len(), 1, "{r}");
        assert!(r.fence_violations[0].contains("token 10"));
    }

    #[test]
    fn a_push_after_a_raised_fence_sample_is_checked_against_it() {
        let mut e = clean();
        // The successor raised the fence to 20 when the list held 5 tasks, before pushing. (Read
        // at 2 s, more than the staging lookahead before slot 6: no task staged under the old
        // token before that read can carry slot 6.)
        e.fences.push(FenceSample {
            fence: 20,
            at: at(2),
            lens: BTreeMap::from([("queue0".to_string(), 5)]),
        });
        assert!(check(&e).fence_violations.is_empty());
        // A push at position 5 with the old token comes after that sample.
        e.tasks[5].token = 10;
        let r = check(&e);
        assert_eq!(r.fence_violations.len(), 1, "{r}");
        // The same fence read when the list held 6 does not cover position 5.
        e.fences[0].lens.insert("queue0".into(), 6);
        assert!(check(&e).fence_violations.is_empty());
    }

    #[test]
    fn failover_is_measured_from_the_fault_and_from_the_old_leaders_last_push() {
        let mut e = clean();
        // Old leader (10) pushed slot 5 at 5.1 s; fault at 5.5 s; new leader (20) pushes
        // slots 6 and 7 at 8.0 s (catch-up), then on time.
        e.tasks[5].enqueued = Some(at(8));
        e.tasks[6].enqueued = Some(at(8));
        e.faults.push(FaultRecord {
            name: "kill -9 leader".into(),
            started: at(5) + TimeDelta::milliseconds(500),
            lifted: at(5) + TimeDelta::milliseconds(500),
            note: "n1 killed".into(),
        });
        let r = check(&e);
        let f = &r.faults[0];
        assert_eq!((f.old_term, f.new_term), (Some(10), Some(20)));
        assert_eq!(f.failover, Some(2.5));
        assert_eq!(f.handover, Some(2.9));
        assert_eq!(f.max_lateness, Some(2.0));
        assert_eq!(f.term_changes, 1);
        assert_eq!(f.longest_silence, Some(2.9));
        assert_eq!(r.max_failover, Some(2.5));
        let text = r.to_string();
        assert!(text.starts_with("fault 1: kill -9 leader (n1 killed): term 10 -> 20"));
        assert!(text.ends_with("max failover: 2.5 s"), "{text}");
    }

    #[test]
    fn a_fault_without_a_new_term_measures_the_first_push_after_lifting() {
        let mut e = clean();
        for t in &mut e.tasks {
            t.token = 10;
        }
        e.tasks[6].enqueued = Some(at(9)); // slot 7 late: Redis was down 6.2 .. 8.8
        e.faults.push(FaultRecord {
            name: "redis".into(),
            started: at(6) + TimeDelta::milliseconds(200),
            lifted: at(8) + TimeDelta::milliseconds(800),
            note: String::new(),
        });
        let f = &check(&e).faults[0];
        assert_eq!(f.new_term, None);
        assert_eq!(f.failover, Some(2.8));
    }

    #[test]
    fn a_term_change_after_the_next_fault_is_not_this_faults() {
        let mut e = clean();
        // Redis fault at 2.5 s (no term change), next fault at 5.5 s, new term from slot 6.
        e.faults.push(FaultRecord {
            name: "redis".into(),
            started: at(2) + TimeDelta::milliseconds(500),
            lifted: at(3) + TimeDelta::milliseconds(500),
            note: String::new(),
        });
        e.faults.push(FaultRecord {
            name: "rolling".into(),
            started: at(5) + TimeDelta::milliseconds(500),
            lifted: at(5) + TimeDelta::milliseconds(500),
            note: String::new(),
        });
        let r = check(&e);
        assert_eq!(r.faults[0].new_term, None);
        assert_eq!(r.faults[0].failover, Some(1.6));
        assert_eq!(r.faults[1].new_term, Some(20));
    }

    #[test]
    fn lateness_percentiles() {
        let l = lateness((1..=100).map(f64::from));
        assert_eq!(
            (l.count, l.p50, l.p90, l.p99, l.max),
            (100, 51.0, 90.0, 99.0, 100.0)
        );
    }
}
