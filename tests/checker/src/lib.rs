//! # checker: the verdict on what a cronnode run left on the queues
//!
//! Decides whether every slot was delivered exactly once, under the fence, and (when the run
//! changed its jobs) whether every pause, delete and change was honoured from the moment the
//! API answered it. Shared by the chaos suite (tests/chaos, a real cluster) and the simulator
//! (tests/sim, a deterministic model of one): both collect [`Evidence`] and call [`check`].
//!
//! Pure: it takes the evidence (jobs and what the API answered about them, decoded tasks in
//! push order, fence samples, fault records, the end of the run window) and returns a
//! [`Report`]. It does no I/O and reads no clock, so it is tested with plain values.
//!
//! What it proves, computed with cron-core's [`Schedule`] (the daemon's own schedule code; a
//! bug shared by both would go unseen, which is why the unit tests here pin a few slots by
//! hand):
//! - **Exactly once.** A job's life is a timeline of states as the API answered them
//!   ([`JobState`]: active with a schedule and a spec version, paused, deleted), starting
//!   active with [`JobUnderTest::schedule`] (spec version 0) at its creation. A slot is *owed*
//!   when it is after the creation, at or before the end of the run window, and the job was
//!   active with the slot in its schedule from the slot's instant to the end of the window:
//!   exactly one task must carry it. (With clocks apart, a leader sees a change at its own
//!   clock's instant: the slots within [`Evidence::clock_skew`] after a change are not owed.) Any other slot may be carried at most once (a slot of a
//!   paused stretch caught up after a resume, a slot delivered before a later change), and
//!   only if some schedule of the job's timeline has it; a task for a slot no schedule has, or
//!   for an unknown job, fails. Each task's `id` must be its slot's fire id (a manual run's id
//!   is a random version-4 UUID, never a slot's: such tasks are checked as manual runs).
//! - **Nothing after the API answered** (when the evidence says when each task reached its
//!   queue, [`Evidence::arrivals`]; the simulator knows, a real cluster does not): a scheduled
//!   task must fit the job as the API last answered before the task reached its queue, or as
//!   a later write made it (a change may be in force before its answer, or without one): a
//!   task that reached its queue when every such state was paused or deleted, lacked the
//!   slot, or had another spec version, fails.
//! - **Manual runs**: every run the API answered as enqueued is on a queue exactly once; no
//!   manual fire id is on the queues twice.
//! - **Nothing pushed under the fence.** The fence in force at a list position is at least the
//!   largest token pushed before it (the enqueue script raises the fence to the token it
//!   pushes with), and at least every fence sample taken while the list was no longer than
//!   that position (the harness reads the fence, then the list lengths, so every later push
//!   happened under that fence or a higher one). Both need no clock. One exception, and it
//!   needs a clock: the leader stages a fire up to [`STAGE_LOOKAHEAD`] before its slot, and a
//!   successor releases what its predecessor staged into the queue after its own pushes, still
//!   carrying the predecessor's token. A task below the fence in force is therefore accepted
//!   when its slot is less than [`STAGE_LOOKAHEAD`] after the first evidence of a fence above
//!   its token (a fence sample, or the `created_at` of a task pushed with a higher token): it
//!   can have been staged before that fence was raised. Such tasks are counted
//!   ([`Report::released_by_successor`]), not failed.
//!
//! Start at [`check`].
#![deny(missing_docs)]

use std::collections::{BTreeMap, HashMap, HashSet};
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

/// A job's state as the API answered it, in force from that answer to the next.
#[derive(Debug, Clone)]
pub enum JobState {
    /// Scheduled by this schedule; its tasks carry this spec version (the spec a job is
    /// created with is version 0).
    Active {
        /// The schedule now in force.
        schedule: Schedule,
        /// The spec version its tasks must be built from.
        version: u64,
    },
    /// Paused: no scheduled task of the job may reach a queue.
    Paused,
    /// Deleted: no scheduled task of the job may reach a queue.
    Deleted,
}

/// A change to a job (pause, resume, replace, delete): when the store took it, and when the
/// API answered it (`None`: never; the change holds all the same, but promises nothing).
#[derive(Debug, Clone)]
pub struct JobChange {
    /// The job id.
    pub job: String,
    /// When the job store took the write: the cluster's state of the job from then on.
    pub written: DateTime<Utc>,
    /// When the API answered: from this instant on, the new state (or a later one) holds.
    pub answered: Option<DateTime<Utc>>,
    /// The job's state from then on.
    pub state: JobState,
}

/// When a task reached its queue, and the spec version it was built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// The instant of the push or release that put it on the queue.
    pub reached: DateTime<Utc>,
    /// The spec version of the job the task was built from.
    pub version: u64,
}

/// A manual run the API answered as enqueued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManualRun {
    /// The job id.
    pub job: String,
    /// The fire id the API answered.
    pub fire_id: String,
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
    /// What the API answered about the jobs after creating them, in the order answered.
    pub changes: Vec<JobChange>,
    /// Every decoded task, in push order within each list.
    pub tasks: Vec<Task>,
    /// When each task of [`Evidence::tasks`] reached its queue, in the same order; empty when
    /// the harness cannot know (a real cluster), which leaves the after-the-answer rule out.
    pub arrivals: Vec<Arrival>,
    /// The manual runs the API answered as enqueued.
    pub manual_runs: Vec<ManualRun>,
    /// Raw queue entries that did not decode as cronnode tasks.
    pub undecodable: Vec<String>,
    /// Fence samples, in the order taken.
    pub fences: Vec<FenceSample>,
    /// Faults, in the order injected.
    pub faults: Vec<FaultRecord>,
    /// Faults the harness could not inject here, with the reason.
    pub skipped: Vec<String>,
    /// The end of the run window: slots owed at or before it must have been delivered.
    pub end: DateTime<Utc>,
    /// How far any node's clock was from the true one during the run; zero when all shared one
    /// clock. A leader stages a fire [`STAGE_LOOKAHEAD`] before its slot by its own clock, and
    /// a task's `created_at` is its maker's clock, so the staged-task exception of the fence
    /// check widens by twice this.
    pub clock_skew: chrono::TimeDelta,
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
    /// Owed slots in the run window.
    pub expected: usize,
    /// Owed slots carried by exactly one task.
    pub delivered_once: usize,
    /// Owed slots carried by no task.
    pub missing: Vec<Slot>,
    /// Slots carried by more than one task, with the count.
    pub duplicates: Vec<(Slot, usize)>,
    /// Tasks for a slot no schedule of the job has (or an unknown job).
    pub unexpected: Vec<Slot>,
    /// Tasks whose `id` is not their slot's fire id.
    pub bad_ids: Vec<String>,
    /// Scheduled tasks that reached a queue after the API had answered a pause, a delete or a
    /// change that rules them out.
    pub after_answer: Vec<String>,
    /// Manual runs answered as enqueued that no queue holds, and manual fire ids held twice.
    pub manual_runs: Vec<String>,
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
            && self.after_answer.is_empty()
            && self.manual_runs.is_empty()
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
    let timelines = timelines(evidence);
    check_slots(evidence, &timelines, &mut report);
    check_manual_runs(evidence, &mut report);
    if !evidence.arrivals.is_empty() {
        report.after_answer = after_answer(evidence, &timelines);
    }
    report.bad_ids = evidence
        .tasks
        .iter()
        .filter(|t| !is_manual(t) && t.id != cron_core::fire::fire_id(&t.job, t.slot).to_string())
        .map(|t| format!("{} on {}@{}", t.id, t.job, t.slot.to_rfc3339()))
        .collect();
    (report.fence_violations, report.released_by_successor) = fence_violations(
        &evidence.tasks,
        &evidence.fences,
        // The stager's clock, and the clock of a `created_at` taken as evidence, may each be off.
        STAGE_LOOKAHEAD + evidence.clock_skew.abs() * 2,
    );
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

/// A job's states in the order written, each with the instant it took effect and the instant
/// the API answered it: its creation (active, the registered schedule, version 0; answered
/// then), then every change.
type Timeline = Vec<(DateTime<Utc>, JobState, Option<DateTime<Utc>>)>;

fn timelines(evidence: &Evidence) -> HashMap<&str, (&JobUnderTest, Timeline)> {
    let mut out: HashMap<&str, (&JobUnderTest, Timeline)> = evidence
        .jobs
        .iter()
        .map(|j| {
            let first = JobState::Active {
                schedule: j.schedule,
                version: 0,
            };
            // The creation comes first whatever the clocks say (`created` is the API node's
            // clock), and was answered before any change.
            let answered = Some(DateTime::<Utc>::MIN_UTC);
            (j.id.as_str(), (j, vec![(j.created, first, answered)]))
        })
        .collect();
    for c in &evidence.changes {
        if let Some((_, t)) = out.get_mut(c.job.as_str()) {
            t.push((c.written, c.state.clone(), c.answered));
        }
    }
    for (_, t) in out.values_mut() {
        t[1..].sort_by_key(|(at, _, _)| *at);
    }
    out
}

/// Whether `schedule` has a slot at `at` (slots are whole seconds).
fn has_slot(schedule: &Schedule, at: DateTime<Utc>) -> bool {
    schedule.next_after(at - chrono::TimeDelta::seconds(1)) == Some(at)
}

/// A manual run's fire id is a random (version 4) UUID; a slot's is a version 5 one.
fn is_manual(task: &Task) -> bool {
    uuid::Uuid::parse_str(&task.id).is_ok_and(|u| u.get_version_num() == 4)
}

fn check_slots(
    evidence: &Evidence,
    timelines: &HashMap<&str, (&JobUnderTest, Timeline)>,
    report: &mut Report,
) {
    let mut carried: HashMap<Slot, usize> = HashMap::new();
    for task in evidence.tasks.iter().filter(|t| !is_manual(t)) {
        let slot = Slot {
            job: task.job.clone(),
            at: task.slot,
        };
        *carried.entry(slot).or_default() += 1;
    }
    // Owed slots: each active stretch's slots that every later stretch up to the end keeps.
    let mut ids: Vec<&str> = timelines.keys().copied().collect();
    ids.sort_unstable();
    for id in ids {
        let (job, timeline) = &timelines[id];
        for (i, (from, state, _)) in timeline.iter().enumerate() {
            let JobState::Active { schedule, .. } = state else {
                continue;
            };
            // This stretch's slots: after the creation, from its write (inclusive: the state
            // before was in force until then) to the next write (exclusive) or the end. The
            // leader sees a change at its own clock's instant: the slots within the clock skew
            // after the write are the cluster's to judge either way (not owed).
            let mut at = if i == 0 {
                job.created
            } else {
                let skew = evidence.clock_skew.abs();
                (*from + skew - chrono::TimeDelta::nanoseconds(1)).max(job.created)
            };
            let next_from = timeline.get(i + 1).map(|(t, _, _)| *t);
            let later: Vec<&JobState> = timeline[i + 1..]
                .iter()
                .take_while(|(t, _, _)| *t <= evidence.end)
                .map(|(_, s, _)| s)
                .collect();
            while let Some(next) = schedule.next_after(at) {
                if next > evidence.end || next_from.is_some_and(|t| next >= t) {
                    break;
                }
                at = next;
                let kept = later.iter().all(
                    |s| matches!(s, JobState::Active { schedule, .. } if has_slot(schedule, next)),
                );
                if !kept {
                    continue;
                }
                let slot = Slot {
                    job: job.id.clone(),
                    at: next,
                };
                report.expected += 1;
                match carried.remove(&slot).unwrap_or(0) {
                    0 => report.missing.push(slot),
                    1 => report.delivered_once += 1,
                    n => report.duplicates.push((slot, n)),
                }
            }
        }
    }
    // Carried slots nobody owed: at most once, and only a slot some schedule of the job has.
    let mut rest: Vec<(Slot, usize)> = carried.into_iter().collect();
    rest.sort();
    for (slot, count) in rest {
        // A leader whose clock is behind the API node's that created the job may fire a slot
        // just before its `created_at`: a clock's doing, not a fault (at most once all the same).
        let known = timelines.get(slot.job.as_str()).is_some_and(|(job, t)| {
            slot.at > job.created - evidence.clock_skew.abs() * 2
                && t.iter().any(
                    |(_, s, _)| matches!(s, JobState::Active { schedule, .. } if has_slot(schedule, slot.at)),
                )
        });
        if !known {
            report.unexpected.push(slot);
        } else if count > 1 {
            report.duplicates.push((slot, count));
        }
    }
}

/// Scheduled tasks that reached their queue when the job could not have them: every state
/// it may have had then (the last one answered before, and any written after that one) was
/// paused, deleted, without the slot, or of another spec version.
fn after_answer(
    evidence: &Evidence,
    timelines: &HashMap<&str, (&JobUnderTest, Timeline)>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (task, arrival) in evidence.tasks.iter().zip(&evidence.arrivals) {
        if is_manual(task) {
            continue;
        }
        let Some((_, timeline)) = timelines.get(task.job.as_str()) else {
            continue; // unexpected: reported by the slot check
        };
        let r = arrival.reached;
        let Some(k) = timeline
            .iter()
            .rposition(|(_, _, answered)| answered.is_some_and(|a| a < r))
        else {
            continue;
        };
        let mut why = None;
        for (written, state, _) in &timeline[k..] {
            // The last answered state (written before its answer, so before `r`), and the
            // states written after it before `r`.
            if *written >= r {
                break;
            }
            let no = match state {
                JobState::Paused => Some("paused".to_string()),
                JobState::Deleted => Some("deleted".to_string()),
                JobState::Active { schedule, .. } if !has_slot(schedule, task.slot) => {
                    Some("changed to a schedule without this slot".to_string())
                }
                JobState::Active { version, .. } if *version != arrival.version => Some(format!(
                    "changed to spec v{version} (the task carries v{})",
                    arrival.version
                )),
                JobState::Active { .. } => None,
            };
            match no {
                None => {
                    why = None;
                    break;
                }
                Some(w) if why.is_none() => why = Some(w),
                Some(_) => {}
            }
        }
        if let (Some(why), Some(answered)) = (why, timeline[k].2) {
            out.push(format!(
                "{}@{} reached {} at {} by {}, {:.3} s after the API answered that the job was {why} ({})",
                task.job,
                task.slot.format("%H:%M:%S"),
                task.list,
                r.format("%H:%M:%S%.6f"),
                task.node.as_deref().unwrap_or("?"),
                secs(r - answered),
                answered.format("%H:%M:%S%.6f"),
            ));
        }
    }
    out
}

/// Every manual run answered as enqueued is held once; no manual fire id is held twice.
fn check_manual_runs(evidence: &Evidence, report: &mut Report) {
    let mut held: HashMap<&str, usize> = HashMap::new();
    for t in evidence.tasks.iter().filter(|t| is_manual(t)) {
        *held.entry(t.id.as_str()).or_default() += 1;
    }
    let answered: HashSet<&str> = evidence
        .manual_runs
        .iter()
        .map(|m| m.fire_id.as_str())
        .collect();
    for m in &evidence.manual_runs {
        if !held.contains_key(m.fire_id.as_str()) {
            report.manual_runs.push(format!(
                "manual run {} of {} answered enqueued, on no queue",
                m.fire_id, m.job
            ));
        }
    }
    let mut twice: Vec<String> = held
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, n)| {
            let why = if answered.contains(id) {
                ""
            } else {
                " (not answered)"
            };
            format!("manual run {id} on the queues x{n}{why}")
        })
        .collect();
    twice.sort();
    report.manual_runs.append(&mut twice);
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
fn fence_violations(
    tasks: &[Task],
    fences: &[FenceSample],
    lookahead: chrono::TimeDelta,
) -> (Vec<String>, usize) {
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
                    .is_some_and(|since| task.slot < since + lookahead)
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
        list(f, "AFTER THE ANSWER", &self.after_answer)?;
        list(f, "MANUAL RUN", &self.manual_runs)?;
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

    fn change(job: &str, ms: i64, state: JobState) -> JobChange {
        let t = at(0) + TimeDelta::milliseconds(ms);
        JobChange {
            job: job.into(),
            written: t - TimeDelta::milliseconds(5),
            answered: Some(t),
            state,
        }
    }

    fn active(expr: &str, version: u64) -> JobState {
        JobState::Active {
            schedule: Schedule::parse(expr, None).unwrap(),
            version,
        }
    }

    /// Each task reached its queue `late_ms` after its slot, built from spec `version`.
    fn arrivals(e: &Evidence, late_ms: i64, version: u64) -> Vec<Arrival> {
        e.tasks
            .iter()
            .map(|t| Arrival {
                reached: t.slot + TimeDelta::milliseconds(late_ms),
                version,
            })
            .collect()
    }

    #[test]
    fn a_paused_stretch_owes_nothing_and_must_stay_empty() {
        // Paused at 3.5 s, resumed at 7.5 s: only 8..=10 are owed (1..=3 were delivered, but a
        // leader that was down then would rightly have withheld them at the pause).
        let mut e = clean();
        e.changes = vec![
            change("s", 3500, JobState::Paused),
            change("s", 7500, active("* * * * * *", 0)),
        ];
        e.tasks
            .retain(|t| !(4..=7).contains(&(t.slot.timestamp() % 60)));
        e.arrivals = arrivals(&e, 1, 0);
        let r = check(&e);
        assert!(r.passed(), "{r}");
        assert_eq!(r.expected, 3);
        // Slot 5 reaching the queue at 5.001 s, while paused, fails.
        e.tasks.push(task(10, "s", 5, 20, 0));
        e.arrivals = arrivals(&e, 1, 0);
        let r = check(&e);
        assert_eq!(r.after_answer.len(), 1, "{r}");
        assert!(r.after_answer[0].contains("paused"), "{r}");
        // Caught up after the resume (policy all), it is fine: at most once, while active.
        e.arrivals[6].reached = at(8);
        let r = check(&e);
        assert!(r.passed(), "{r}");
        assert_eq!(r.expected, 3);
    }

    #[test]
    fn a_deleted_job_owes_nothing_after_and_nothing_may_arrive() {
        let mut e = clean();
        e.changes = vec![change("s", 6500, JobState::Deleted)];
        e.tasks.truncate(6);
        e.arrivals = arrivals(&e, 0, 0);
        let r = check(&e);
        assert!(r.passed(), "{r}");
        assert_eq!(
            r.expected, 0,
            "a deleted job owes nothing: its slots were at most once"
        );
        // Slot 6 staged before the delete and released at 6.6 s: after the answer.
        e.arrivals[5].reached = at(6) + TimeDelta::milliseconds(600);
        let r = check(&e);
        assert_eq!(r.after_answer.len(), 1, "{r}");
        assert!(r.after_answer[0].contains("deleted"), "{r}");
    }

    #[test]
    fn a_changed_spec_must_be_carried_from_the_answer_on() {
        // At 4.5 s the body changed (version 1) and the schedule became every 2 s.
        let mut e = clean();
        e.changes = vec![change("s", 4500, active("*/2 * * * * *", 1))];
        e.tasks.retain(|t| {
            let s = t.slot.timestamp() % 60;
            s <= 4 || s % 2 == 0
        });
        e.arrivals = e
            .tasks
            .iter()
            .map(|t| Arrival {
                reached: t.slot,
                version: u64::from(t.slot.timestamp() % 60 > 4),
            })
            .collect();
        let r = check(&e);
        assert!(r.passed(), "{r}");
        // Owed: 2 and 4 (kept by the new schedule), 6, 8, 10.
        assert_eq!(r.expected, 5);
        // Slot 6 with the old spec: fails; slot 5 (old schedule only) after the answer: fails.
        e.arrivals[4].version = 0;
        e.tasks.push(task(20, "s", 5, 20, 0));
        e.arrivals.push(Arrival {
            reached: at(5),
            version: 0,
        });
        let r = check(&e);
        assert_eq!(r.after_answer.len(), 2, "{r}");
        assert!(r.after_answer.iter().any(|v| v.contains("spec v1")), "{r}");
        assert!(
            r.after_answer
                .iter()
                .any(|v| v.contains("without this slot")),
            "{r}"
        );
    }

    #[test]
    fn a_slot_carried_before_a_change_is_not_owed_twice_nor_missing_after() {
        // Slot 5 delivered at 5 s; at 5.5 s the schedule became */2: slot 5 stays delivered
        // (at most once), slots 7 and 9 of the old schedule are owed by nobody.
        let mut e = clean();
        e.changes = vec![change("s", 5500, active("*/2 * * * * *", 0))];
        e.tasks.retain(|t| {
            let s = t.slot.timestamp() % 60;
            s <= 5 || s % 2 == 0
        });
        let r = check(&e);
        assert!(r.passed(), "{r}");
        assert_eq!(r.expected, 5, "2 and 4 (kept by */2), then 6, 8, 10");
    }

    #[test]
    fn a_change_written_but_never_answered_may_hold_from_its_write() {
        // Answered at 3.5 s: v1. Written at 6.5 s, never answered: v2 (its API node died).
        // Tasks of v1 or v2 after 6.5 s are both fine; v0 after 3.5 s is not.
        let mut e = clean();
        e.changes = vec![change("s", 3500, active("* * * * * *", 1))];
        e.changes.push(JobChange {
            job: "s".into(),
            written: at(6) + TimeDelta::milliseconds(500),
            answered: None,
            state: active("* * * * * *", 2),
        });
        e.arrivals = e
            .tasks
            .iter()
            .map(|t| {
                let s = t.slot.timestamp() % 60;
                Arrival {
                    reached: t.slot,
                    version: if s <= 3 {
                        0
                    } else if s % 2 == 0 {
                        1
                    } else if s > 6 {
                        2
                    } else {
                        1
                    },
                }
            })
            .collect();
        let r = check(&e);
        assert!(r.passed(), "{r}");
        e.arrivals[8].version = 0;
        let r = check(&e);
        assert_eq!(r.after_answer.len(), 1, "{r}");
    }

    #[test]
    fn manual_runs_answered_are_held_once() {
        let mut e = clean();
        let id = "0b1d4e8a-2c1f-4a7e-9d3b-5f6a7b8c9d0e";
        let mut m = task(10, "s", 3, 20, 0);
        m.id = id.into();
        m.slot = at(3) + TimeDelta::milliseconds(250);
        e.tasks.push(m.clone());
        e.manual_runs.push(ManualRun {
            job: "s".into(),
            fire_id: id.into(),
        });
        let r = check(&e);
        assert!(r.passed(), "{r}");
        e.tasks.push(m);
        e.manual_runs.push(ManualRun {
            job: "s".into(),
            fire_id: "9f1d4e8a-2c1f-4a7e-9d3b-5f6a7b8c9d0e".into(),
        });
        let r = check(&e);
        assert_eq!(r.manual_runs.len(), 2, "{r}");
        assert!(!r.passed());
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
