//! The operators and the HTTP API of every node, as the simulation plays them (the daemon's
//! `api/forward.rs`): job writes to the store, then (for a pause, resume, replace or delete)
//! the change told to the leader, whose reply is awaited up to `TELL_LEADER_TIMEOUT`: 200 when
//! the leader confirmed it, 202 Accepted otherwise; manual runs forwarded to the leader.
//!
//! What the API answered, and when, is the evidence the checker holds the cluster to: a change
//! answered `200` (the leader confirmed it) at an instant must hold for every task that
//! reaches a queue after it; a `202` (no confirmation) promises nothing, as the API documents.
//! An API node that is down, paused, or cut from Consul answers nothing, and promises nothing.
//! Must not touch Redis (only the leader's machine does).

use std::collections::BTreeMap;
use std::sync::Arc;

use checker::{JobChange, JobState, JobUnderTest, ManualRun};
use cron_core::{Fire, FireKind, Job, JobSpec, Schedule};
use leader_term::{Command, JobEvent, Reply};
use uuid::Uuid;

use crate::node::{store_moved, wall};
use crate::workload::{Request, CHURN_JOBS, CHURN_SCHEDULES, STATIC_JOBS};
use crate::world::{instant, Ev, Micros, World, SEC};

/// How long an API node waits for the leader's manual run (`leader::handle::COMMAND_TIMEOUT`).
pub const COMMAND_TIMEOUT: Micros = 20 * SEC;
/// How long it waits for the leader to apply a job change (`api::forward::TELL_LEADER_TIMEOUT`)
/// before answering all the same.
pub const TELL_LEADER_TIMEOUT: Micros = 5 * SEC;

/// A request waiting for the leader.
#[derive(Debug)]
enum Pending {
    /// The change at this index of `Api::changes` (written, not yet answered).
    Change(usize),
    Manual {
        job: String,
    },
}

/// The API side of the run, and what it answered.
#[derive(Debug, Default)]
pub struct Api {
    pending: BTreeMap<u64, (usize, Pending)>,
    /// The job id of each churn slot, if it has one.
    churn: [Option<String>; CHURN_JOBS],
    created: usize,
    /// Every job created, as the checker needs it.
    pub jobs: Vec<JobUnderTest>,
    /// Changes written, and when they were answered.
    pub changes: Vec<JobChange>,
    /// Manual runs answered as enqueued.
    pub manual_runs: Vec<ManualRun>,
}

/// A job spec as the API would store it: `gen` is the body's generation (the checker's spec
/// version), `created` its `created_at`.
fn spec(
    id: &str,
    frequency: &str,
    priority: u8,
    gen: u64,
    created: chrono::DateTime<chrono::Utc>,
) -> JobSpec {
    spec_with(id, frequency, priority, gen, created, "")
}

/// [`spec`] with more top-level fields (`extra`: `,"jitter":"4s"`).
fn spec_with(
    id: &str,
    frequency: &str,
    priority: u8,
    gen: u64,
    created: chrono::DateTime<chrono::Utc>,
    extra: &str,
) -> JobSpec {
    let text = format!(
        r#"{{"id":"{id}","frequency":"{frequency}","function":{{"app":"a","path":"/p","image":"sim/noop","priority":{priority},"body":"gen-{gen}"}},"catchup":{{"policy":"all","window":"20m"}},"created_at":"{}"{extra}}}"#,
        created.to_rfc3339()
    );
    // The text is ours and valid: a failure here is a bug of the simulator.
    JobSpec::from_json(text.as_bytes()).unwrap_or_else(|e| panic!("simulator job {text}: {e}"))
}

fn validate(spec: JobSpec) -> Arc<Job> {
    let text = format!("{spec:?}");
    Arc::new(
        spec.validate()
            .unwrap_or_else(|e| panic!("simulator job {text}: {e}")),
    )
}

/// The spec version the checker knows a task by: the generation in its body.
pub fn generation(job: &Job) -> u64 {
    job.spec
        .function
        .body
        .strip_prefix("gen-")
        .and_then(|g| g.parse().ok())
        .unwrap_or(0)
}

fn schedule(job: &Job) -> Schedule {
    job.schedule
}

/// Writes a job to the store (through Consul, at the next index); `None` deletes it.
fn write(w: &mut World, id: &str, job: Option<Arc<Job>>) -> u64 {
    let now = w.now;
    let version = match &job {
        // The spec's text: every change is a write (the store keeps JSON; any text that
        // differs when the spec differs will do here).
        Some(j) => w
            .consul
            .write_job(id, format!("{:?}", j.spec).as_bytes(), now),
        None => w.consul.delete_job(id, now),
    };
    w.consul_moved();
    w.job_index = version;
    match job {
        Some(j) => {
            w.jobs.insert(id.to_string(), (j, version));
        }
        None => {
            w.jobs.remove(id);
        }
    }
    store_moved(w);
    version
}

/// The run's first jobs, written before the nodes start.
pub fn create_static_jobs(w: &mut World) {
    let created = instant(w.now);
    for (id, frequency, priority) in STATIC_JOBS {
        let job = validate(spec(id, frequency, priority, 0, created));
        w.api.jobs.push(JobUnderTest {
            id: id.to_string(),
            schedule: schedule(&job),
            created,
        });
        write(w, id, Some(job));
    }
    // Jittered jobs (their tasks reach the queue at the jittered instant, with the nominal
    // slot's fire id) and a one-shot 25 minutes in (fired once, caught up if nobody leads).
    let shot = created + chrono::TimeDelta::minutes(25);
    let life = [
        ("jittered", "*/4 * * * * *".to_string(), r#","jitter":"4s""#),
        (
            "jittered-minutely",
            "0 * * * * *".to_string(),
            r#","jitter":"50s""#,
        ),
        ("one-shot", format!("@at {}", shot.to_rfc3339()), ""),
    ];
    for (id, frequency, extra) in life {
        let job = validate(spec_with(id, &frequency, 1, 0, created, extra));
        w.api.jobs.push(JobUnderTest {
            id: id.to_string(),
            schedule: schedule(&job),
            created,
        });
        write(w, id, Some(job));
    }
    for slot in 0..CHURN_JOBS {
        create_churn(w, slot, slot, created);
    }
}

fn create_churn(w: &mut World, slot: usize, sched: usize, created: chrono::DateTime<chrono::Utc>) {
    let id = format!("churn-{}", w.api.created);
    w.api.created += 1;
    let job = validate(spec(
        &id,
        CHURN_SCHEDULES[sched],
        (slot % 3) as u8,
        0,
        created,
    ));
    w.api.jobs.push(JobUnderTest {
        id: id.clone(),
        schedule: schedule(&job),
        created,
    });
    write(w, &id, Some(job));
    w.api.churn[slot] = Some(id);
}

/// An operator's request reaches node `n`'s API.
pub fn request(w: &mut World, n: usize, slot: usize, req: Request) {
    if w.healed {
        return;
    }
    if !w.nodes[n].up || w.nodes[n].paused || !w.reaches_consul(n) {
        w.stats.unanswered += 1;
        return;
    }
    let Some(id) = w.api.churn[slot].clone() else {
        if let Request::Create { schedule } = req {
            let created = wall(w, n);
            create_churn(w, slot, schedule, created);
            w.stats.answered += 1;
        }
        return;
    };
    let Some((job, _)) = w.jobs.get(&id).cloned() else {
        return;
    };
    let mut new = job.spec.clone();
    match req {
        Request::Create { .. } => return, // 409: the slot has a job
        Request::Run => return run(w, n, id, job),
        Request::Pause if job.spec.paused => return,
        Request::Resume if !job.spec.paused => return,
        Request::Pause => new.paused = true,
        Request::Resume => new.paused = false,
        Request::Replace { schedule } => {
            new.function.body = format!("gen-{}", generation(&job) + 1);
            if let Some(s) = schedule {
                new.frequency = CHURN_SCHEDULES[s].to_string();
            }
        }
        Request::Delete => {}
    }
    let (event, state) = if req == Request::Delete {
        let version = write(w, &id, None);
        w.api.churn[slot] = None;
        let event = JobEvent::Remove {
            id: Arc::from(id.as_str()),
            version,
        };
        (event, JobState::Deleted)
    } else {
        let job = validate(new);
        let version = write(w, &id, Some(job.clone()));
        let state = if job.spec.paused {
            JobState::Paused
        } else {
            JobState::Active {
                schedule: schedule(&job),
                version: generation(&job),
            }
        };
        (event_upsert(job, version), state)
    };
    if w.traced(&id) {
        w.say(format_args!(
            "API n{n}: {req:?} {id} written -> {state:?}; lock held by {:?}",
            w.consul.holder()
        ));
    }
    w.api.changes.push(JobChange {
        job: id,
        written: instant(w.now),
        answered: None,
        state,
    });
    let pending = Pending::Change(w.api.changes.len() - 1);
    forward(w, n, pending, Command::JobChanged(event));
}

fn event_upsert(job: Arc<Job>, version: u64) -> JobEvent {
    JobEvent::Upsert { job, version }
}

/// `POST /v1/cronjobs/{id}/run`.
fn run(w: &mut World, n: usize, id: String, job: Arc<Job>) {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&w.rng.next_u64().to_le_bytes());
    bytes[8..].copy_from_slice(&w.rng.next_u64().to_le_bytes());
    let fire = Fire {
        job_id: Arc::from(id.as_str()),
        slot: wall(w, n),
        fire_id: uuid::Builder::from_random_bytes(bytes).into_uuid(),
        kind: FireKind::Manual,
    };
    debug_assert_eq!(fire.fire_id.get_version_num(), 4);
    let _: Uuid = fire.fire_id;
    forward(
        w,
        n,
        Pending::Manual { job: id },
        Command::ManualRun { job, fire },
    );
}

/// Tells the leader (this node's own machine if it leads, else the node the lock key names, as
/// the API's `on_leader` does) and waits for its reply; with no leader, a change is answered at
/// once with 202 (the next leader reads the store) and a run refused.
fn forward(w: &mut World, n: usize, pending: Pending, cmd: Command) {
    let wait = match pending {
        Pending::Change(_) => TELL_LEADER_TIMEOUT,
        Pending::Manual { .. } => COMMAND_TIMEOUT,
    };
    // As the API's `on_leader`: this node's own machine if it leads, else the lock's holder.
    let leading = !matches!(w.nodes[n].leader.status(), leader_term::Status::Follower);
    let target = if leading { Some(n) } else { w.consul.holder() };
    if w.trace.is_some() {
        w.say(format_args!("API n{n}: {pending:?} told to {target:?}"));
    }
    let Some(leader) = target else {
        let id = w.next_id();
        w.api.pending.insert(id, (n, pending));
        let at = w.now + w.latency();
        w.at(at, Ev::ApiTimeout { api: id });
        return;
    };
    let api = w.next_id();
    w.api.pending.insert(api, (n, pending));
    let inc = w.nodes[leader].inc;
    let at = w.now + w.latency();
    w.at(
        at,
        Ev::Command {
            node: leader,
            inc,
            api,
            cmd,
        },
    );
    w.at(w.now + wait, Ev::ApiTimeout { api });
}

/// The leader replied (`Some`), or the API node stopped waiting (`None`): the API answers.
pub fn answered(w: &mut World, api: u64, reply: Option<Reply>) {
    let Some((n, pending)) = w.api.pending.remove(&api) else {
        return;
    };
    if !w.nodes[n].up || w.nodes[n].paused {
        w.stats.unanswered += 1;
        return;
    }
    w.stats.answered += 1;
    if w.trace.is_some() {
        w.say(format_args!(
            "API n{n}: answered {pending:?} with {reply:?}"
        ));
    }
    match pending {
        // As `api::forward::tell_leader`: 200 only when the leader confirmed the change, and
        // only that answer promises that no task of the old state reaches a queue after it;
        // anything else is 202 Accepted (written, the leader's watch brings it), no promise.
        Pending::Change(i) => {
            if let (Some(c), Some(Reply::JobChanged(Ok(_)))) = (w.api.changes.get_mut(i), &reply) {
                c.answered = Some(instant(w.now));
            }
        }
        Pending::Manual { job } => {
            if let Some(Reply::ManualRun(Ok(done))) = reply {
                if done.enqueued {
                    w.stats.manual += 1;
                    w.api.manual_runs.push(ManualRun {
                        job,
                        fire_id: done.fire.fire_id.to_string(),
                    });
                }
            }
        }
    }
}
