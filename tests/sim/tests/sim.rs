//! The simulator itself: a seed replays bit for bit, and a cluster left alone delivers every
//! slot once (so a failing seed is the cluster's doing, not the simulator's).
#![allow(clippy::unwrap_used)]

use sim::workload::Rates;
use sim::world::SEC;
use sim::{run, Config};

fn short() -> Config {
    Config {
        duration: 8 * 60 * SEC,
        settle: 3 * 60 * SEC,
        ..Config::default()
    }
}

#[test]
fn a_seed_replays_bit_for_bit() {
    for seed in [3, 17] {
        let a = run(seed, short());
        let b = run(seed, short());
        assert_eq!(a.digest, b.digest, "seed {seed}");
        assert_eq!(a.stats.events, b.stats.events, "seed {seed}");
        assert_eq!(a.report.to_string(), b.report.to_string(), "seed {seed}");
    }
    assert_ne!(run(3, short()).digest, run(4, short()).digest);
}

#[test]
fn a_cluster_left_alone_delivers_every_slot_once() {
    let cfg = Config {
        rates: Rates {
            fault_every: u64::MAX / 4,
            request_every: u64::MAX / 4,
            lost_request: 0.0,
            lost_answer: 0.0,
            late_answer: 0.0,
        },
        ..short()
    };
    let o = run(1, cfg);
    assert!(o.passed(), "{}", o.report);
    // 5 static and 3 churned jobs over 5 minutes: hundreds of slots, one term.
    assert!(o.report.expected > 500, "{}", o.report);
    assert_eq!(o.report.delivered_once, o.report.expected);
    assert_eq!(o.stats.terms, 1);
    assert_eq!(o.stats.faults.values().sum::<u64>(), 0);
}
