//! The report: the machine, then one markdown table per scenario, each figure beside its goal
//! or its reference from the same run. Pure formatting: every number comes from a scenario.

use std::fmt::Write as _;

use crate::stats::fmt;
use crate::{backlog, churn, console, consul_load, failover, lateness, memory, peer, procs};

/// A line on the machine and its load now.
pub fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0);
    let redis = std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .nth(2)
                .unwrap_or("")
                .to_string()
        })
        .unwrap_or_default();
    format!(
        "{cpus} CPUs ({model}), {:.1} GiB memory, Linux, Redis {redis}",
        mem as f64 / 1024.0 / 1024.0
    )
}

/// The 1-minute load average now.
pub fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn goal(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**missed**"
    }
}

/// Scenario 1 and 2.
pub fn lateness(rows: &[lateness::Outcome]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "| jobs | slots | in the queue − slot p50 / p99 / max (ms) | popped − slot p50 / p99 / max (ms) | created_at − slot p50 / p99 / max (ms) | leader CPU in window (ms) | enqueue calls: count, mean ms, mean fires | jobs loaded in (s) |");
    let _ = writeln!(s, "|---:|---|---|---|---|---:|---|---:|");
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} / {} / {} | {} / {} / {} | {} / {} / {} | {} | {}, {}, {} | {} |",
            r.n,
            r.spread.label(),
            fmt(r.seen.p50),
            fmt(r.seen.p99),
            fmt(r.seen.max),
            fmt(r.recv.p50),
            fmt(r.recv.p99),
            fmt(r.recv.max),
            fmt(r.created.p50),
            fmt(r.created.p99),
            fmt(r.created.max),
            fmt(r.cpu_s * 1000.0),
            r.batches.0,
            fmt(r.batches.1),
            fmt(r.batches.2),
            fmt(r.load_s)
        );
    }
    if let Some(r) = rows
        .iter()
        .find(|r| r.n == 10_000 && r.spread == lateness::Spread::SameSecond)
    {
        let _ = writeln!(
            s,
            "\nGoal at 10,000 in one second (p99 ≤ 25 ms, max ≤ 250 ms), judged on when the consumer first counted each task in the queue: p99 {} ms {}, max {} ms {} (popped: p99 {} ms, max {} ms).",
            fmt(r.seen.p99),
            goal(r.seen.p99 <= 25.0),
            fmt(r.seen.max),
            goal(r.seen.max <= 250.0),
            fmt(r.recv.p99),
            fmt(r.recv.max)
        );
    }
    s
}

/// Scenario 1b.
pub fn backlog(rows: &[backlog::Outcome]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "| jobs (one second) | tasks already in queue0 | in the queue − slot p50 / p99 / max (ms) | release prepared ahead (took ms) | jobs loaded in (s) |");
    let _ = writeln!(s, "|---:|---:|---|---|---:|");
    for r in rows {
        let prepared = match r.prepared {
            Some((true, ms)) => format!("yes ({})", fmt(ms)),
            Some((false, ms)) => format!("no ({})", fmt(ms)),
            None => "not asked".to_string(),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} / {} / {} | {} | {} |",
            r.n,
            r.backlog,
            fmt(r.seen.p50),
            fmt(r.seen.p99),
            fmt(r.seen.max),
            prepared,
            fmt(r.load_s)
        );
    }
    for r in rows {
        let _ = writeln!(
            s,
            "\nGoal (p99 ≤ 5 ms after the slot) with {} tasks waiting: p99 {} ms {}.",
            r.backlog,
            fmt(r.seen.p99),
            goal(r.seen.p99 <= 5.0)
        );
    }
    s
}

/// Scenario 2.
pub fn throughput(rows: &[lateness::Outcome]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "| burst (jobs in one second) | leader's enqueue/stage calls: fires ÷ time in calls (fires/s) | end to end, slot→last popped (fires/s) | redis-benchmark LPUSH -P 64, same task size, same Redis (req/s) | task size (B) |");
    let _ = writeln!(s, "|---:|---:|---:|---:|---:|");
    for r in rows
        .iter()
        .filter(|r| r.spread == lateness::Spread::SameSecond)
    {
        // The calls are awaited one after another, so their summed time is the wall time the
        // leader spent pushing the burst through Redis (staging happens before the slot).
        let enq = r.batches.2 / (r.batches.1 / 1000.0);
        let e2e = r.n as f64 / (r.last_recv_ms / 1000.0);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            r.n,
            fmt(enq),
            fmt(e2e),
            r.redis_lpush.map_or("not run".into(), fmt),
            r.task_bytes
        );
    }
    s
}

/// Scenario 3.
pub fn memory(m: &memory::Outcome) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Leader RSS with no jobs: {} KiB.\n", m.baseline);
    let _ = writeln!(s, "| jobs | leader RSS (KiB) | leader peak RSS (KiB) | per job beyond baseline (B) | goal ≤ 1 KiB | consul-dev RSS (KiB) | redis RSS (KiB) | loaded in (s) |");
    let _ = writeln!(s, "|---:|---:|---:|---:|---|---:|---:|---:|");
    for st in &m.steps {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            st.jobs,
            st.rss,
            st.hwm,
            fmt(st.per_job),
            goal(st.per_job <= 1024.0),
            st.consul_rss,
            st.redis_rss,
            fmt(st.load_s)
        );
    }
    if let Some((n, why)) = &m.failed {
        let _ = writeln!(s, "\n**{n} jobs: not measured.** {why}");
    }
    s
}

/// Scenario 4.
pub fn consul_load(rows: &[consul_load::Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "| jobs | leader (requests/min) | follower (requests/min) | window (s) | leader's requests in the window | follower's requests in the window |");
    let _ = writeln!(s, "|---:|---:|---:|---:|---|---|");
    let by = |m: &std::collections::BTreeMap<String, u64>| {
        m.iter()
            .map(|(k, v)| format!("`{k}` {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} |",
            r.jobs,
            fmt(r.leader_rpm),
            fmt(r.follower_rpm),
            r.window_s,
            by(&r.leader_by),
            by(&r.follower_by)
        );
    }
    if let (Some(a), Some(b)) = (rows.first(), rows.last()) {
        let same = (b.leader_rpm - a.leader_rpm).abs() <= a.leader_rpm.max(1.0) * 0.25
            && (b.follower_rpm - a.follower_rpm).abs() <= a.follower_rpm.max(1.0) * 0.25;
        let _ = writeln!(
            s,
            "\nGoal (the same at {} and {} jobs, within 25%): {}.",
            a.jobs,
            b.jobs,
            goal(same)
        );
    }
    s
}

/// Scenario 5.
pub fn failover(f: &failover::Outcome) -> String {
    let mut s = String::new();
    let crash_goal = 2.0 * procs::SESSION_TTL.as_secs_f64() * 1000.0
        + procs::LOCK_DELAY.as_secs_f64() * 1000.0
        + 1000.0;
    let _ = writeln!(s, "| kind | rounds | successor leads, median / max (ms) | worst probe-slot lateness, median / max (ms) | successor's first enqueue, median / max (ms) | goal | verdict (later of leads and worst slot, max) |");
    let _ = writeln!(s, "|---|---:|---|---|---|---|---|");
    for (kind, g) in [
        (failover::Kind::Graceful, 1000.0),
        (failover::Kind::Crash, crash_goal),
    ] {
        let rs: Vec<_> = f.rounds.iter().filter(|r| r.kind == kind).collect();
        if rs.is_empty() {
            continue;
        }
        let (lm, lx) = crate::stats::median_max(&rs.iter().map(|r| r.lock_ms).collect::<Vec<_>>());
        let (wm, wx) =
            crate::stats::median_max(&rs.iter().map(|r| r.worst_slot_ms).collect::<Vec<_>>());
        let (em, ex) =
            crate::stats::median_max(&rs.iter().map(|r| r.enqueue_ms).collect::<Vec<_>>());
        let judged = rs.iter().map(|r| r.judged_ms()).fold(0.0, f64::max);
        let _ = writeln!(
            s,
            "| {kind:?} | {} | {} / {} | {} / {} | {} / {} | ≤ {} ms | {} |",
            rs.len(),
            fmt(lm),
            fmt(lx),
            fmt(wm),
            fmt(wx),
            fmt(em),
            fmt(ex),
            g,
            goal(judged <= g)
        );
    }
    let _ = writeln!(
        s,
        "\nProbe (every second) over the whole run: {} slots, {} missing, {} doubled.",
        f.probe_slots, f.missing, f.doubled
    );
    s
}

/// Scenario 6.
pub fn churn(c: &churn::Outcome) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "| every-minute jobs | updates/s asked | answered 2xx/s | errors | PUT latency p50 / p99 (ms) | fire lateness p50 / p99 / max (ms) | update → first task with it, p50 / p99 / max (ms) | probe updates never seen | seconds |");
    let _ = writeln!(s, "|---:|---:|---:|---:|---|---|---|---:|---:|");
    let _ = writeln!(
        s,
        "| {} | {} | {} | {} | {} / {} | {} / {} / {} | {} / {} / {} | {} | {} |",
        c.jobs,
        c.rate,
        fmt(c.achieved),
        c.errors,
        fmt(c.api.p50),
        fmt(c.api.p99),
        fmt(c.lateness.p50),
        fmt(c.lateness.p99),
        fmt(c.lateness.max),
        fmt(c.effect.p50),
        fmt(c.effect.p99),
        fmt(c.effect.max),
        c.never,
        c.secs
    );
    let cpu: Vec<String> = c.cpu.iter().map(|(n, x)| format!("{n} {x:.2}")).collect();
    let _ = writeln!(s, "\nCPU during the churn, in cores: {}.", cpu.join(", "));
    if let Some(e) = &c.first_error {
        let _ = writeln!(
            s,
            "\nFirst failed update: `{}`",
            e.chars().take(300).collect::<String>()
        );
    }
    s
}

/// Scenario 7.
pub fn peer(rows: &[peer::Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "| schedules | system | lateness (popped − minute) p50 / p99 / max (ms) | not arrived by +58 s | scheduler CPU from 4 s before the minute to 58 s after (s) | scheduler RSS (KiB) | schedules loaded in (s) |");
    let _ = writeln!(s, "|---:|---|---|---:|---:|---:|---:|");
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} / {} / {} | {} | {:.2} | {} | {} |",
            r.n,
            r.system,
            fmt(r.lateness.p50),
            fmt(r.lateness.p99),
            fmt(r.lateness.max),
            r.missing,
            r.cpu_s,
            r.rss,
            fmt(r.load_s)
        );
    }
    s
}

/// Scenario 8.
pub fn console(o: &console::Outcome) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} jobs in the store; the page loads {} files ({} bytes); the console's page size is {} jobs.\n",
        o.jobs, o.files, o.bytes, o.page_size
    );
    let _ = writeln!(
        s,
        "| request | n | p50 (ms) | p99 (ms) | max (ms) | goal < 200 ms |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---|");
    let rows = [
        (
            "the first page: every file, one after the other, then the list",
            &o.first_page,
            true,
        ),
        (
            "the list's first page alone (`GET /v1/cronjobs?limit=…`)",
            &o.list,
            false,
        ),
        (
            "a first page filtered by a state no job has (`state=paused`)",
            &o.by_state,
            false,
        ),
        (
            "a first page searched for an id nothing contains (`id_contains=`)",
            &o.by_id,
            false,
        ),
    ];
    for (what, x, judged) in rows {
        let verdict = if judged { goal(x.p99 < 200.0) } else { "" };
        let _ = writeln!(
            s,
            "| {what} | {} | {} | {} | {} | {verdict} |",
            x.n,
            fmt(x.p50),
            fmt(x.p99),
            fmt(x.max)
        );
    }
    s
}
