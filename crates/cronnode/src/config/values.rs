//! The types of settings whose text must not be shown as it is: [`Secret`] (tokens) and
//! [`RedisUrl`] (its password), and [`LogFormat`].
//!
//! A secret's `Debug` is `<set>`, a Redis URL's `Debug` and `Display` hide its password, so the
//! derived `Debug` of `Config` and a log line of the URL are safe by their type. The value
//! itself is read with `expose`, where it is sent.

use std::fmt;

/// A token: never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Secret {
        Secret(token.into())
    }

    /// The token, to send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<set>")
    }
}

/// A Redis URL (`redis://`, `rediss://`): printed with its password masked.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(String);

impl RedisUrl {
    /// Wraps a URL (checked by the `--redis` parser).
    pub fn new(url: impl Into<String>) -> RedisUrl {
        RedisUrl(url.into())
    }

    /// The URL, password included, to connect with.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redis_queue::queue::mask_password(&self.0))
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_string())
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines, for terminals.
    Pretty,
    /// One JSON object per line, for log shippers.
    Json,
}

impl LogFormat {
    /// Every format, by the name `--log-format` takes.
    pub const NAMES: [(&'static str, LogFormat); 2] =
        [("pretty", LogFormat::Pretty), ("json", LogFormat::Json)];

    /// The format's name.
    pub fn name(self) -> &'static str {
        LogFormat::NAMES
            .iter()
            .find(|(_, f)| *f == self)
            .map_or("pretty", |(n, _)| n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_print() {
        assert_eq!(format!("{:?}", Secret::new("s3cret")), "<set>");
        let url = RedisUrl::new("redis://:pw@h:1/0");
        assert_eq!(url.to_string(), "redis://:***@h:1/0");
        assert!(!format!("{url:?}").contains("pw"));
        assert_eq!(url.expose(), "redis://:pw@h:1/0");
        assert_eq!(LogFormat::Json.name(), "json");
    }
}
