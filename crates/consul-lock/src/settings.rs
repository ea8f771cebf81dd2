//! The settings of the lock, the service registration and the job store, and their checks.
//!
//! Every out-of-range value is refused with the allowed range, and every problem is reported at
//! once ([`SettingsError`]). Defaults and bounds are the named constants below.

use std::time::Duration;

/// Default KV prefix.
pub const DEFAULT_PREFIX: &str = "cronnode";
/// Default session TTL (also the TTL of the service check).
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(10);
/// Shortest session TTL Consul accepts.
pub const MIN_SESSION_TTL: Duration = Duration::from_secs(10);
/// Longest session TTL Consul accepts.
pub const MAX_SESSION_TTL: Duration = Duration::from_secs(24 * 3600);
/// Default lock-delay: short, because the fence, not the delay, keeps a former leader harmless.
pub const DEFAULT_LOCK_DELAY: Duration = Duration::from_secs(1);
/// Longest lock-delay Consul applies.
pub const MAX_LOCK_DELAY: Duration = Duration::from_secs(60);
/// Longest node name (it goes into the service id and the session name).
pub const MAX_NODE_LEN: usize = 128;
/// Longest KV prefix.
pub const MAX_PREFIX_LEN: usize = 256;

/// Settings of [`crate::Node`] and [`crate::JobStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockSettings {
    /// KV prefix: the lock is `<prefix>/leader`, jobs are `<prefix>/jobs/<id>`.
    pub prefix: String,
    /// Session TTL, 10 s to 24 h; renewed and the check passed every TTL/2.
    pub session_ttl: Duration,
    /// Lock-delay of the session, 0 to 60 s.
    pub lock_delay: Duration,
    /// This node's name (default: the host name).
    pub node: String,
    /// The HTTP API's `host:port`, registered with the service and written in the lock value.
    pub api_addr: String,
    /// cronnode's version, registered in `Meta.version` and written in the lock value.
    pub version: String,
}

impl Default for LockSettings {
    fn default() -> Self {
        LockSettings {
            prefix: DEFAULT_PREFIX.to_string(),
            session_ttl: DEFAULT_SESSION_TTL,
            lock_delay: DEFAULT_LOCK_DELAY,
            node: host_name(),
            api_addr: "127.0.0.1:8080".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

/// Every problem found in [`LockSettings`], each naming the setting and the allowed values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid Consul settings: {}", .problems.join("; "))]
pub struct SettingsError {
    /// One message per problem.
    pub problems: Vec<String>,
}

impl LockSettings {
    /// Checks every setting, reporting all problems at once.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let mut problems = Vec::new();
        if let Err(e) = check_prefix(&self.prefix) {
            problems.push(e);
        }
        if !(MIN_SESSION_TTL..=MAX_SESSION_TTL).contains(&self.session_ttl) {
            problems.push(format!(
                "session TTL {:?} is out of range: allowed 10s to 24h",
                self.session_ttl
            ));
        }
        if self.lock_delay > MAX_LOCK_DELAY {
            problems.push(format!(
                "lock-delay {:?} is out of range: allowed 0s to 60s",
                self.lock_delay
            ));
        }
        if self.node.is_empty()
            || self.node.len() > MAX_NODE_LEN
            || !self
                .node
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            problems.push(format!(
                "node name {:?}: allowed 1 to {MAX_NODE_LEN} characters of [A-Za-z0-9_.-]",
                self.node
            ));
        }
        if self.api_addr.trim().is_empty() {
            problems.push("API address is empty: expected host:port".to_string());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(SettingsError { problems })
        }
    }

    /// `<prefix>/leader`.
    pub fn lock_key(&self) -> String {
        lock_key(&self.prefix)
    }
}

/// `<prefix>/leader`.
pub fn lock_key(prefix: &str) -> String {
    format!("{prefix}/leader")
}

/// A prefix of `/`-separated segments of `[A-Za-z0-9_.-]`, none empty, `.` or `..`.
pub(crate) fn check_prefix(prefix: &str) -> Result<(), String> {
    let ok = !prefix.is_empty()
        && prefix.len() <= MAX_PREFIX_LEN
        && prefix.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "KV prefix {prefix:?}: allowed 1 to {MAX_PREFIX_LEN} characters, `/`-separated \
             segments of [A-Za-z0-9_.-], none empty, `.` or `..`, no leading or trailing `/`"
        ))
    }
}

/// The host name (`/proc/sys/kernel/hostname`, then `HOSTNAME`), cut to what a node name may
/// hold; `localhost` when neither is readable.
pub fn host_name() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let name: String = raw
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(MAX_NODE_LEN)
        .collect();
    if name.is_empty() {
        "localhost".to_string()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let s = LockSettings::default();
        s.validate().unwrap();
        assert_eq!(s.lock_key(), "cronnode/leader");
        assert_eq!(s.lock_delay, Duration::from_secs(1));
    }

    #[test]
    fn every_problem_with_its_range() {
        let s = LockSettings {
            prefix: "/bad/../x".into(),
            session_ttl: Duration::from_secs(5),
            lock_delay: Duration::from_secs(61),
            node: "a b".into(),
            api_addr: " ".into(),
            version: "1".into(),
        };
        let e = s.validate().unwrap_err();
        assert_eq!(e.problems.len(), 5, "{e}");
        let text = e.to_string();
        assert!(text.contains("allowed 10s to 24h"), "{text}");
        assert!(text.contains("allowed 0s to 60s"), "{text}");
        let s = LockSettings {
            session_ttl: Duration::from_secs(24 * 3600 + 1),
            ..LockSettings::default()
        };
        assert!(s.validate().unwrap_err().to_string().contains("10s to 24h"));
        let s = LockSettings {
            session_ttl: Duration::from_secs(24 * 3600),
            lock_delay: Duration::ZERO,
            prefix: "team-a/cron".into(),
            ..LockSettings::default()
        };
        s.validate().unwrap();
    }
}
