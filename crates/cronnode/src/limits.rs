//! Limits the API and its clients share (the CLI caps what it reads from a file at what the
//! API would take), so neither imports the other.

/// Largest request body the API reads (a job spec's body is at most 256 KiB, JSON escaping
/// included, within Consul's limit on one write; see `consul_lock::MAX_JOB_BYTES`).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
