//! The settings of the lock, the service registration and the job store, and their checks.
//!
//! This file owns their defaults, their bounds and the check of each ([`check_prefix`],
//! [`check_session_ttl`], [`check_lock_delay`], [`check_node`]): a program that reads these
//! settings from its users (cronnode's configuration) checks each one with the same function,
//! so a value it accepted is one [`LockSettings::validate`] accepts. Every out-of-range value
//! is refused with the allowed range, and every problem is reported at once
//! ([`SettingsError`]). Also the one host-name lookup ([`host_name`]), the default node name.

use std::collections::BTreeMap;
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
/// Longest node name (it goes into the service id and the session name): Linux's
/// `HOST_NAME_MAX`, so the default, the host name, always fits.
pub const MAX_NODE_LEN: usize = 64;
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
    /// More service Meta to register (cronnode: whether its API requires a token).
    pub meta: BTreeMap<String, String>,
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
            meta: BTreeMap::new(),
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
        let checks = [
            ("KV prefix", check_prefix(&self.prefix)),
            ("session TTL", check_session_ttl(self.session_ttl)),
            ("lock-delay", check_lock_delay(self.lock_delay)),
            ("node name", check_node(&self.node)),
        ];
        let mut problems: Vec<String> = checks
            .into_iter()
            .filter_map(|(name, check)| check.err().map(|e| format!("{name}: {e}")))
            .collect();
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

/// A KV prefix: 1 to [`MAX_PREFIX_LEN`] characters, `/`-separated segments of
/// `[A-Za-z0-9_.-]`, none empty, `.` or `..`.
pub fn check_prefix(prefix: &str) -> Result<(), String> {
    let ok = !prefix.is_empty()
        && prefix.len() <= MAX_PREFIX_LEN
        && prefix.split('/').all(|seg| {
            !seg.is_empty() && seg != "." && seg != ".." && seg.chars().all(is_name_char)
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{prefix:?} is not a Consul KV prefix: 1-{MAX_PREFIX_LEN} characters, segments of \
             A-Z a-z 0-9 _ - . joined by '/' (none empty, '.' or '..'; no leading or trailing '/')"
        ))
    }
}

/// A session TTL within Consul's bounds, [`MIN_SESSION_TTL`] to [`MAX_SESSION_TTL`].
pub fn check_session_ttl(ttl: Duration) -> Result<(), String> {
    if (MIN_SESSION_TTL..=MAX_SESSION_TTL).contains(&ttl) {
        Ok(())
    } else {
        Err(format!(
            "{} is out of range {}-{} (Consul's bounds)",
            duration_text(ttl),
            duration_text(MIN_SESSION_TTL),
            duration_text(MAX_SESSION_TTL)
        ))
    }
}

/// A lock-delay within Consul's cap, 0 to [`MAX_LOCK_DELAY`].
pub fn check_lock_delay(delay: Duration) -> Result<(), String> {
    if delay <= MAX_LOCK_DELAY {
        Ok(())
    } else {
        Err(format!(
            "{} is out of range 0s-{} (Consul's cap)",
            duration_text(delay),
            duration_text(MAX_LOCK_DELAY)
        ))
    }
}

/// A node name: 1 to [`MAX_NODE_LEN`] characters of `[A-Za-z0-9_.-]`.
pub fn check_node(node: &str) -> Result<(), String> {
    if !node.is_empty() && node.len() <= MAX_NODE_LEN && node.chars().all(is_name_char) {
        Ok(())
    } else {
        Err(format!(
            "{node:?} is not allowed: 1-{MAX_NODE_LEN} characters of A-Z a-z 0-9 _ . -"
        ))
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// A duration as the settings are written (`10s`, `1m30s`, `24h`, `500ms`): the form the
/// messages above use, and that a duration setting is read in.
pub fn duration_text(d: Duration) -> String {
    if d.subsec_nanos() != 0 {
        return if d.subsec_nanos() % 1_000_000 == 0 && d.as_secs() == 0 {
            format!("{}ms", d.subsec_millis())
        } else {
            format!("{d:?}")
        };
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut text = String::new();
    if h > 0 {
        text.push_str(&format!("{h}h"));
    }
    if m > 0 {
        text.push_str(&format!("{m}m"));
    }
    if s > 0 || text.is_empty() {
        text.push_str(&format!("{s}s"));
    }
    text
}

/// The host name (`HOSTNAME`, then `/proc/sys/kernel/hostname`, then `/etc/hostname`), with
/// every character a node name may not hold replaced by `-`, cut to [`MAX_NODE_LEN`];
/// `cronnode` when none is readable.
pub fn host_name() -> String {
    let raw = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .unwrap_or_default();
    let name: String = raw
        .trim()
        .chars()
        .map(|c| if is_name_char(c) { c } else { '-' })
        .take(MAX_NODE_LEN)
        .collect();
    if name.is_empty() {
        "cronnode".to_string()
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
            meta: BTreeMap::new(),
        };
        let e = s.validate().unwrap_err();
        assert_eq!(e.problems.len(), 5, "{e}");
        let text = e.to_string();
        assert!(
            text.contains("session TTL: 5s is out of range 10s-24h"),
            "{text}"
        );
        assert!(
            text.contains("lock-delay: 1m1s is out of range 0s-1m"),
            "{text}"
        );
        let s = LockSettings {
            session_ttl: Duration::from_secs(24 * 3600 + 1),
            ..LockSettings::default()
        };
        assert!(s.validate().unwrap_err().to_string().contains("10s-24h"));
        let s = LockSettings {
            session_ttl: Duration::from_secs(24 * 3600),
            lock_delay: Duration::ZERO,
            prefix: "team-a/cron".into(),
            ..LockSettings::default()
        };
        s.validate().unwrap();
    }

    #[test]
    fn node_names_fit_the_host_name_limit() {
        check_node(&"a".repeat(MAX_NODE_LEN)).unwrap();
        let e = check_node(&"a".repeat(MAX_NODE_LEN + 1)).unwrap_err();
        assert!(e.contains("1-64 characters"), "{e}");
        assert!(check_node("a b").is_err());
        let host = host_name();
        check_node(&host).unwrap();
        check_prefix("team-a/cron.v2").unwrap();
        for bad in [
            "",
            "/x",
            "x/",
            "a//b",
            "a/../b",
            "a,b",
            &"p".repeat(MAX_PREFIX_LEN + 1),
        ] {
            assert!(check_prefix(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn durations_are_written_as_they_are_read() {
        for (d, text) in [
            (Duration::ZERO, "0s"),
            (Duration::from_secs(10), "10s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(24 * 3600), "24h"),
            (Duration::from_secs(3661), "1h1m1s"),
            (Duration::from_millis(500), "500ms"),
        ] {
            assert_eq!(duration_text(d), text);
            assert_eq!(cron_core::schedule::parse_duration(text).unwrap(), d);
        }
    }
}
