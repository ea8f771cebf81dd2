//! Where Consul is and how to reach it, read the way Consul's own tools read it.
//!
//! Environment: `CONSUL_HTTP_ADDR` (`host:port` or a URL, http or https; default
//! `127.0.0.1:8500`), `CONSUL_HTTP_TOKEN` (sent as `X-Consul-Token`), `CONSUL_HTTP_SSL` (true
//! forces https, as in Consul's Go client), `CONSUL_CACERT` (a PEM file: the only CA trusted,
//! as in Consul's Go client; without it the Web PKI roots are used). Client certificates
//! (`CONSUL_CLIENT_CERT`/`KEY`) are not supported and are refused rather than ignored.
//!
//! This module only reads and checks values; [`crate::Consul::new`] builds the client.

use std::path::PathBuf;

use crate::error::ConsulError;

/// Environment variable naming Consul's HTTP address.
pub const ENV_ADDR: &str = "CONSUL_HTTP_ADDR";
/// Environment variable holding the ACL token.
pub const ENV_TOKEN: &str = "CONSUL_HTTP_TOKEN";
/// Environment variable forcing https when true.
pub const ENV_SSL: &str = "CONSUL_HTTP_SSL";
/// Environment variable naming a PEM file of the CA to trust.
pub const ENV_CACERT: &str = "CONSUL_CACERT";
/// Environment variable of a client certificate (refused: not supported).
pub const ENV_CLIENT_CERT: &str = "CONSUL_CLIENT_CERT";
/// The address used when `CONSUL_HTTP_ADDR` is unset.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8500";

/// How to reach Consul.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsulConfig {
    /// `host:port` or `http(s)://host:port`; see [`ConsulConfig::base_url`].
    pub address: String,
    /// Force https even for a bare `host:port` or an `http://` URL.
    pub ssl: bool,
    /// The ACL token, sent as `X-Consul-Token` on every request.
    pub token: Option<String>,
    /// A PEM file of the CA to trust for https (replaces the Web PKI roots).
    pub ca_cert: Option<PathBuf>,
}

impl ConsulConfig {
    /// A configuration for `address` (`host:port` or a URL), no token, no TLS options.
    pub fn new(address: impl Into<String>) -> ConsulConfig {
        ConsulConfig {
            address: address.into(),
            ssl: false,
            token: None,
            ca_cert: None,
        }
    }

    /// Adds an ACL token (an empty token means none).
    pub fn with_token(mut self, token: impl Into<String>) -> ConsulConfig {
        let token = token.into();
        self.token = (!token.is_empty()).then_some(token);
        self
    }

    /// Adds a CA file to trust for https.
    pub fn with_ca_cert(mut self, path: impl Into<PathBuf>) -> ConsulConfig {
        self.ca_cert = Some(path.into());
        self
    }

    /// Reads the process environment (see the module header).
    pub fn from_env() -> Result<ConsulConfig, ConsulError> {
        ConsulConfig::from_vars(|name| std::env::var(name).ok())
    }

    /// Reads the variables through `get`, so tests and config files can feed a map.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<ConsulConfig, ConsulError> {
        let non_empty = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let mut cfg =
            ConsulConfig::new(non_empty(ENV_ADDR).unwrap_or_else(|| DEFAULT_ADDR.to_string()));
        if let Some(token) = non_empty(ENV_TOKEN) {
            cfg = cfg.with_token(token.trim());
        }
        if let Some(ssl) = non_empty(ENV_SSL) {
            cfg.ssl =
                parse_ssl(&ssl).map_err(|e| ConsulError::Config(format!("{ENV_SSL}: {e}")))?;
        }
        cfg.ca_cert = non_empty(ENV_CACERT).map(PathBuf::from);
        if non_empty(ENV_CLIENT_CERT).is_some() {
            return Err(ConsulError::Config(format!(
                "{ENV_CLIENT_CERT} is set, but client certificates are not supported; \
                 use an ACL token ({ENV_TOKEN}) instead"
            )));
        }
        cfg.base_url()?;
        Ok(cfg)
    }

    /// The base URL requests go to, without a trailing slash (`http://127.0.0.1:8500`).
    pub fn base_url(&self) -> Result<String, ConsulError> {
        let raw = self.address.trim().trim_end_matches('/');
        let (scheme, rest) = match raw.split_once("://") {
            Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
            None => ("http".to_string(), raw),
        };
        let scheme = match scheme.as_str() {
            "http" | "https" if self.ssl => "https",
            "http" => "http",
            "https" => "https",
            other => {
                return Err(ConsulError::Config(format!(
                    "address {:?}: scheme {other:?} is not supported (use http or https)",
                    self.address
                )))
            }
        };
        if rest.is_empty() || rest.contains('/') || rest.contains('?') {
            return Err(ConsulError::Config(format!(
                "address {:?}: expected host:port or a URL without a path",
                self.address
            )));
        }
        let url = format!("{scheme}://{rest}");
        url.parse::<hyper::Uri>()
            .map_err(|e| ConsulError::Config(format!("address {:?}: {e}", self.address)))?;
        Ok(url)
    }
}

/// A `CONSUL_HTTP_SSL` value, read as Consul's Go client reads it (`strconv.ParseBool`: 1, t,
/// T, TRUE, true, True and their false forms); blank means unset, that is false.
pub fn parse_ssl(value: &str) -> Result<bool, String> {
    match value.trim() {
        "" | "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        other => Err(format!("{other:?} is not allowed: true or false (or 1/0)")),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn from(vars: &[(&str, &str)]) -> Result<ConsulConfig, ConsulError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ConsulConfig::from_vars(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_to_local_agent() {
        let cfg = from(&[]).unwrap();
        assert_eq!(cfg.base_url().unwrap(), "http://127.0.0.1:8500");
        assert_eq!(cfg.token, None);
    }

    #[test]
    fn reads_address_forms_and_ssl() {
        let cfg = from(&[(ENV_ADDR, "consul.internal:8501"), (ENV_SSL, "true")]).unwrap();
        assert_eq!(cfg.base_url().unwrap(), "https://consul.internal:8501");
        let cfg = from(&[(ENV_ADDR, "https://10.0.0.1:8501/")]).unwrap();
        assert_eq!(cfg.base_url().unwrap(), "https://10.0.0.1:8501");
        let cfg = from(&[(ENV_ADDR, "HTTP://h:1"), (ENV_TOKEN, " secret ")]).unwrap();
        assert_eq!(cfg.base_url().unwrap(), "http://h:1");
        assert_eq!(cfg.token.as_deref(), Some("secret"));
    }

    #[test]
    fn refuses_what_it_cannot_honour() {
        let e = from(&[(ENV_ADDR, "unix:///var/run/consul.sock")]).unwrap_err();
        assert!(e.to_string().contains("not supported"), "{e}");
        let e = from(&[(ENV_SSL, "maybe")]).unwrap_err();
        assert!(e.to_string().contains("CONSUL_HTTP_SSL"), "{e}");
        let e = from(&[(ENV_CLIENT_CERT, "/c.pem")]).unwrap_err();
        assert!(e.to_string().contains("not supported"), "{e}");
        let e = from(&[(ENV_ADDR, "http://h:1/v1")]).unwrap_err();
        assert!(e.to_string().contains("without a path"), "{e}");
    }
}
