//! CPU profiles of a running process with `perf record` (software clock events: this VM has
//! no hardware counters), summarised as the flat top of `perf report`.
//!
//! Owns only the perf child and its data file; the scenario decides when to profile whom.

use std::path::{Path, PathBuf};

use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::process::{Child, Command};

/// Where the data and full reports are kept (relative to the workspace root, where
/// scripts/bench runs).
const PROFILE_DIR: &str = "target/bench/profiles";
/// Sampling frequency (Hz): enough samples in a few seconds, little overhead.
const FREQ: &str = "199";
/// Symbols below this share of samples are left out of the summary.
const PERCENT_LIMIT: &str = "1.5";

/// A `perf record` attached to a process.
pub struct Profiler {
    child: Child,
    data: PathBuf,
}

impl Profiler {
    /// Samples `pid` for `dur`, writing `<PROFILE_DIR>/<name>.data` (and `.txt`, the report).
    pub fn start(pid: u32, name: &str, dur: Duration) -> Result<Profiler> {
        std::fs::create_dir_all(PROFILE_DIR)?;
        let data = Path::new(PROFILE_DIR).join(format!("{name}.data"));
        let child = Command::new("perf")
            .args([
                "record",
                "-e",
                "cpu-clock",
                "-F",
                FREQ,
                "--call-graph",
                "dwarf,16384",
                "-p",
                &pid.to_string(),
                "-o",
            ])
            .arg(&data)
            .args(["--", "sleep", &dur.as_secs().to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("starting perf record (apt-get install linux-perf)")?;
        Ok(Profiler { child, data })
    }

    /// Waits for the recording to end; the flat profile (self time by symbol).
    pub async fn finish(mut self) -> Result<String> {
        self.child.wait().await?;
        let out = Command::new("perf")
            .args([
                "report",
                "--stdio",
                "--no-children",
                "--sort",
                "symbol",
                "-g",
                "none",
            ])
            .args(["--percent-limit", PERCENT_LIMIT, "-i"])
            .arg(&self.data)
            .output()
            .await?;
        if !out.status.success() {
            bail!("perf report: {}", String::from_utf8_lossy(&out.stderr));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines: Vec<String> = Vec::new();
        for l in text.lines() {
            if l.starts_with("# Samples") || l.starts_with("# Event count") {
                lines.push(l.trim_start_matches("# ").to_string());
            } else if !l.starts_with('#') && !l.trim().is_empty() {
                // perf pads the symbol column and appends empty sort columns ("-      -").
                let mut l = l.trim_end();
                while let Some(rest) = l.strip_suffix('-') {
                    l = rest.trim_end();
                }
                lines.push(l.to_string());
            }
        }
        // Keep the full report beside the data for a closer look.
        std::fs::write(self.data.with_extension("txt"), text.as_bytes())?;
        Ok(lines.join("\n"))
    }
}
