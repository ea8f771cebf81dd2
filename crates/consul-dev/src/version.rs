//! Which Consul the agent behaves as: today's (the default, [`CURRENT_VERSION`]), or an older
//! release whose differences cronnode must handle, so that CI covers them without that Consul.
//!
//! Emulated below 1.7 (each pinned by a conformance test, listed in the README): sessions
//! ignore `NodeChecks` / `ServiceChecks` and bind through `Checks`, and show `Checks`; `/v1/txn`
//! decodes its numbers (`Flags`, `Index`) as 64-bit floats, as Go's `interface{}` decoding did
//! (hashicorp/consul#6655); `/v1/agent/self` reports the version. Not emulated: the other
//! differences of 1.0.8 the README lists (key validation, txn size, `get-or-empty`, ...).

/// The Consul release consul-dev follows by default.
pub const CURRENT_VERSION: &str = "1.21.5";

/// The behaviour of one Consul release, as far as consul-dev tells versions apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiVersion {
    /// What `/v1/agent/self` reports.
    pub version: String,
    /// Sessions know `NodeChecks` / `ServiceChecks` (Consul ≥ 1.7).
    pub split_checks: bool,
    /// `/v1/txn` decodes its numbers as integers (Consul ≥ 1.7).
    pub exact_txn_numbers: bool,
}

impl ApiVersion {
    /// The behaviour of `version` (`major.minor.patch`); `None` when it is not one.
    pub fn of(version: &str) -> Option<ApiVersion> {
        let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
        let (major, minor, _patch) = (parts.next()??, parts.next()??, parts.next()??);
        if parts.next().is_some() {
            return None;
        }
        let since_1_7 = (major, minor) >= (1, 7);
        Some(ApiVersion {
            version: version.to_string(),
            split_checks: since_1_7,
            exact_txn_numbers: since_1_7,
        })
    }
}

impl Default for ApiVersion {
    fn default() -> Self {
        ApiVersion {
            version: CURRENT_VERSION.to_string(),
            split_checks: true,
            exact_txn_numbers: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(ApiVersion::of(CURRENT_VERSION), Some(ApiVersion::default()));
        let old = ApiVersion::of("1.0.8").unwrap();
        assert!(!old.split_checks && !old.exact_txn_numbers);
        assert!(ApiVersion::of("1.7.0").unwrap().split_checks);
        assert_eq!(ApiVersion::of("1.7"), None);
        assert_eq!(ApiVersion::of("latest"), None);
    }
}
