//! `--mq-url` / `MQ_URL`: IronFunctions' own queue setting, read exactly as IronFunctions reads
//! it, so an operator copies one line from its configuration.
//!
//! IronFunctions (`api/mqs/new.go`, `api/mqs/redis.go`, and redigo's `DialURL` at the revision
//! it ships) takes `redis://[USER][:PASSWORD@]HOST[:PORT][PATH]`: only the `redis` scheme;
//! host `localhost` and port 6379 when left out; the password only (no user name is sent);
//! the path, percent-decoded, is the queue keys' prefix verbatim (`redis://h:6379/` gives
//! `/queue0`); the database is the digits of the path's last `/<digits>` (none or empty: 0),
//! and a path that does not end with `/` or `/<digits>` is refused ("invalid database").
//! So `/3` is database 3 with prefix `/3`, and `/cron/2` database 2 with prefix `/cron/2`
//! (observed with IronFunctions' own consumer). A query or fragment is ignored.
//!
//! Must not touch the network.

use super::values::RedisUrl;

/// What `MQ_URL` says: where the Redis is, and the queue keys' prefix.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MqUrl {
    /// The Redis to connect to, as the Redis client reads it (`redis://[:PASSWORD@]HOST:PORT/DB`).
    pub redis: RedisUrl,
    /// The queue keys' prefix (the path).
    pub queue_prefix: String,
}

/// Parses `MQ_URL`; empty is none.
pub fn mq_url(text: &str) -> Result<Option<MqUrl>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    let shown = RedisUrl::new(text).to_string();
    let Some(rest) = text.strip_prefix("redis://") else {
        return Err(format!(
            "{shown:?}: IronFunctions' MQ_URL for Redis is redis://[:PASSWORD@]HOST[:PORT][/PATH] \
             (it takes no other scheme; for rediss:// use --redis and --queue-prefix)"
        ));
    };
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
        None => (None, authority),
    };
    let bad = |what: &str| format!("{shown:?}: {what}");
    let password = match userinfo.and_then(|u| u.split_once(':')) {
        Some((_, pw)) => {
            Some(decode(pw).ok_or_else(|| bad("the password is badly percent-encoded"))?)
        }
        None => None,
    };
    let (host, port) = split_host_port(hostport);
    if port.parse::<u16>().is_err() {
        return Err(bad(&format!(
            "port {port:?} is not a number from 0 to 65535"
        )));
    }
    let path = decode(path).ok_or_else(|| bad("the path is badly percent-encoded"))?;
    let db = database(&path).map_err(|e| bad(&e))?;
    let auth = password
        .map(|pw| format!(":{}@", crate::percent::encode(&pw)))
        .unwrap_or_default();
    let url = format!("redis://{auth}{host}:{port}/{db}");
    super::parse::redis_url(&url).map_err(|e| bad(&e))?;
    Ok(Some(MqUrl {
        redis: RedisUrl::new(url),
        queue_prefix: path,
    }))
}

/// Go's `net.SplitHostPort`, or the whole text as the host and 6379 (redigo's fallback); an
/// empty host is `localhost`.
fn split_host_port(hostport: &str) -> (String, String) {
    let split = if let Some(rest) = hostport.strip_prefix('[') {
        rest.split_once("]:").map(|(h, p)| (format!("[{h}]"), p))
    } else {
        hostport
            .split_once(':')
            .filter(|(_, p)| !p.contains(':'))
            .map(|(h, p)| (h.to_string(), p))
    };
    let (host, port) = split.unwrap_or_else(|| (hostport.to_string(), "6379"));
    let host = if host.is_empty() || host == "[]" {
        "localhost".to_string()
    } else {
        host
    };
    (host, port.to_string())
}

/// redigo's rule: the digits of a final `/<digits>` (`/(\d*)\z`, unanchored), 0 when empty;
/// no path is database 0; any other path is refused.
fn database(path: &str) -> Result<i64, String> {
    if path.is_empty() {
        return Ok(0);
    }
    let tail = path.rsplit('/').next().unwrap_or_default();
    let invalid = || {
        format!(
            "invalid database: {:?} (IronFunctions refuses it too): the path must end with / or \
             /<digits>, the database number; the whole path is the queue keys' prefix",
            &path[1..]
        )
    };
    if !tail.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    if tail.is_empty() {
        return Ok(0);
    }
    tail.parse::<i64>().map_err(|_| invalid())
}

/// Percent-decoding as Go's `url.Parse` does for a path and a password.
fn decode(text: &str) -> Option<String> {
    crate::percent::decode_path(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> (String, String) {
        let m = mq_url(text).unwrap().unwrap();
        (m.redis.expose().to_string(), m.queue_prefix)
    }

    #[test]
    fn reads_mq_url_as_ironfunctions_does() {
        assert_eq!(
            parsed("redis://h:6379/"),
            ("redis://h:6379/0".into(), "/".into())
        );
        assert_eq!(
            parsed("redis://h:6379"),
            ("redis://h:6379/0".into(), "".into())
        );
        assert_eq!(
            parsed("redis://h:6379/3"),
            ("redis://h:6379/3".into(), "/3".into())
        );
        assert_eq!(
            parsed("redis://h/cron/2"),
            ("redis://h:6379/2".into(), "/cron/2".into())
        );
        assert_eq!(
            parsed("redis://h:1/cron/"),
            ("redis://h:1/0".into(), "/cron/".into())
        );
        assert_eq!(
            parsed("redis:///"),
            ("redis://localhost:6379/0".into(), "/".into())
        );
        assert_eq!(
            parsed("redis://user:p%40ss@h:7/1?x=1"),
            ("redis://:p%40ss@h:7/1".into(), "/1".into())
        );
        assert_eq!(
            parsed("redis://[::1]:7/"),
            ("redis://[::1]:7/0".into(), "/".into())
        );
        assert_eq!(mq_url("").unwrap(), None);
    }

    #[test]
    fn refuses_what_ironfunctions_refuses() {
        for bad in [
            "redis://h:6379/cron",
            "rediss://h:6379/",
            "bolt:///tmp/x",
            "redis://h:x/",
            "redis://h/1a",
        ] {
            let e = mq_url(bad).unwrap_err();
            assert!(e.contains(bad.split('/').next().unwrap()), "{bad}: {e}");
        }
        let e = mq_url("redis://:secret@h:6379/cron").unwrap_err();
        assert!(
            !e.contains("secret") && e.contains("invalid database"),
            "{e}"
        );
    }
}
