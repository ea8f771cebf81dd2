//! The short form of the fault-tolerance suite, part of `scripts/test`: one round of the seven
//! faults against a real three-node cluster, then the checker. Recovery times are shortened;
//! the faults themselves keep their strength (a pause past 2×TTL, a 30 s Consul outage).
#![allow(clippy::unwrap_used)]

use chaos::{run, RunConfig, Timings};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seven_faults_every_slot_exactly_once() {
    let dir = tempfile::Builder::new()
        .prefix("cronnode-chaos-")
        .tempdir()
        .unwrap();
    let cfg = RunConfig::from_env(Timings::short(), None, dir.path().to_path_buf());
    let outcome = match run(&cfg).await {
        Ok(outcome) => outcome,
        Err(e) => {
            let kept = dir.keep();
            panic!(
                "the harness could not run: {e:#}\nlogs and data kept in {}",
                kept.display()
            )
        }
    };
    println!("{}", outcome.report);
    if std::env::var_os("CHAOS_KEEP").is_some() {
        println!("logs and data kept in {}", dir.keep().display());
        assert!(outcome.passed(), "{:?}\n{}", outcome.errors, outcome.report);
        return;
    }
    if !outcome.passed() {
        let kept = dir.keep();
        panic!(
            "chaos run failed: {:?}\n{}\nlogs and data kept in {}",
            outcome.errors,
            outcome.report,
            kept.display()
        );
    }
    assert_eq!(
        outcome.report.faults.len() + outcome.report.skipped.len(),
        7
    );
    assert!(outcome.report.expected > 0, "the run window had no slot");
}
