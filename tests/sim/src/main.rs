//! `sim`: runs seeds of the cluster simulation and prints the verdict.
//!
//!     sim --seed N                 one seed, its report and schedule (replays bit for bit)
//!     sim --seeds N [--from S]     N seeds from S (default 0), on every core
//!
//! Exit status: 0 when every seed kept every promise, 1 when one did not (each failing seed is
//! printed with its replay command), 2 on bad arguments.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use clap::Parser;
use sim::world::SEC;
use sim::{run, Config, Outcome};

#[derive(Parser)]
#[command(about = "Deterministic simulation of a cronnode cluster (issue 13)")]
struct Args {
    /// Run this one seed and print its whole report.
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Run this many seeds.
    #[arg(long)]
    seeds: Option<u64>,
    /// The first seed of `--seeds`.
    #[arg(long, default_value_t = 0)]
    from: u64,
    /// Simulated minutes per seed.
    #[arg(long, default_value_t = 60)]
    minutes: u64,
    /// With --seed: print what happens to this job (`*`: every job) as it happens.
    #[arg(long)]
    trace: Option<String>,
    /// Experiment: no clock steps (the rest of each seed's schedule unchanged).
    #[arg(long)]
    no_clock_steps: bool,
    /// Threads (default: the machine's cores).
    #[arg(long)]
    threads: Option<usize>,
}

fn config(minutes: u64) -> Config {
    let mut cfg = Config {
        duration: minutes * 60 * SEC,
        ..Config::default()
    };
    cfg.settle = cfg.settle.min(cfg.duration / 2);
    cfg
}

fn one(seed: u64, cfg: Config, trace: Option<String>) -> i32 {
    let o = sim::run_traced(seed, cfg, trace);
    println!("{}", o.report);
    println!("schedule of seed {seed}:");
    for (t, f) in &o.schedule.faults {
        println!("  {:>9.3} s  fault {f:?}", *t as f64 / 1e6);
    }
    for (t, n, slot, r) in &o.schedule.requests {
        println!(
            "  {:>9.3} s  request to n{n}: churn job {slot}: {r:?}",
            *t as f64 / 1e6
        );
    }
    println!("{:?}", o.stats);
    println!(
        "seed {seed}: {} (digest {:016x})",
        if o.passed() { "passed" } else { "FAILED" },
        o.digest
    );
    i32::from(!o.passed())
}

fn many(from: u64, count: u64, cfg: Config, threads: usize) -> i32 {
    let started = Instant::now();
    let next = AtomicU64::new(from);
    let done = AtomicU64::new(0);
    let totals = Mutex::new(Totals::default());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= from + count {
                    return;
                }
                let o = run(seed, cfg);
                let finished = done.fetch_add(1, Ordering::Relaxed) + 1;
                let mut t = totals.lock().unwrap_or_else(|p| p.into_inner());
                t.add(&o);
                if !o.passed() {
                    println!(
                        "seed {seed} FAILED; replay: scripts/sim --seed {seed}\n{}",
                        o.report
                    );
                }
                if count >= 20 && finished % (count / 10).max(1) == 0 {
                    eprintln!(
                        "[sim] {finished}/{count} seeds, {:.0} s",
                        started.elapsed().as_secs_f64()
                    );
                }
            });
        }
    });
    let t = totals.into_inner().unwrap_or_else(|p| p.into_inner());
    let hours = count as f64 * cfg.duration as f64 / 3600e6;
    let faults: u64 = t.faults.values().sum();
    println!(
        "seeds: {count} (from {from}), simulated hours: {hours:.1}, faults injected: {faults} ({}), \
         API requests answered: {}, manual runs enqueued: {}, slots owed: {}, delivered once: {}, tasks: {}, \
         terms: {}, fenced calls: {}, lost or late answers: {}, failed seeds: {}, wall: {:.1} s",
        t.faults
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", "),
        t.changes,
        t.manual,
        t.expected,
        t.delivered,
        t.tasks,
        t.terms,
        t.fenced,
        t.lost,
        t.failed.len(),
        started.elapsed().as_secs_f64()
    );
    if t.failed.is_empty() {
        0
    } else {
        let mut f = t.failed.clone();
        f.sort_unstable();
        println!("FAILED seeds: {f:?}");
        1
    }
}

#[derive(Default)]
struct Totals {
    faults: std::collections::BTreeMap<&'static str, u64>,
    changes: u64,
    manual: u64,
    expected: u64,
    delivered: u64,
    tasks: u64,
    terms: u64,
    fenced: u64,
    lost: u64,
    failed: Vec<u64>,
}

impl Totals {
    fn add(&mut self, o: &Outcome) {
        for (k, v) in &o.stats.faults {
            *self.faults.entry(k).or_default() += v;
        }
        self.changes += o.stats.answered;
        self.manual += o.stats.manual;
        self.expected += o.report.expected as u64;
        self.delivered += o.report.delivered_once as u64;
        self.tasks += o.report.lateness.count as u64;
        self.terms += o.stats.terms;
        self.fenced += o.stats.fenced;
        self.lost += o.stats.lost + o.stats.late;
        if !o.passed() {
            self.failed.push(o.seed);
        }
    }
}

fn main() {
    let args = Args::parse();
    let mut cfg = config(args.minutes.max(1));
    cfg.clock_steps = !args.no_clock_steps;
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let code = match (args.seed, args.seeds) {
        (Some(seed), _) => one(seed, cfg, args.trace),
        (None, Some(n)) => many(args.from, n, cfg, threads),
        (None, None) => {
            eprintln!("error: give --seed N or --seeds N");
            2
        }
    };
    std::process::exit(code);
}
