//! The configuration's unit tests: defaults, every problem at once, the rules between
//! settings, the file, and the README's table held to the declarations.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use super::*;

fn raw(given: &[(&str, &str)]) -> RawConfig {
    let mut raw = RawConfig::default();
    for (name, value) in given {
        assert!(raw.set(name, value.to_string()), "no setting {name}");
    }
    raw
}

#[test]
fn defaults_validate() {
    let c = raw(&[("node", "n1")]).validate().unwrap();
    assert_eq!(c.consul_addr, "http://127.0.0.1:8500");
    assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
    assert_eq!(c.advertise(), DEFAULT_LISTEN);
    assert_eq!(c.prefix, consul_lock::DEFAULT_PREFIX);
    assert_eq!(c.session_ttl, consul_lock::DEFAULT_SESSION_TTL);
    assert_eq!(c.lock_delay, consul_lock::DEFAULT_LOCK_DELAY);
    assert_eq!(c.redis_url.expose(), redis_queue::queue::DEFAULT_URL);
    assert_eq!(c.log_format, LogFormat::Pretty);
    assert_eq!(c.api_token, None);
    // Without --node: the host name, which consul-lock's check accepts.
    let c = RawConfig::default().validate().unwrap();
    assert_eq!(c.node, consul_lock::host_name());
}

#[test]
fn what_the_configuration_accepts_the_libraries_accept() {
    let c = raw(&[
        ("node", &"n".repeat(consul_lock::MAX_NODE_LEN)),
        ("prefix", "team-a/cron"),
        ("session-ttl", "24h"),
        ("lock-delay", "0s"),
    ])
    .validate()
    .unwrap();
    c.lock_settings().validate().unwrap();
    assert_eq!(c.consul_config().base_url().unwrap(), c.consul_addr);
    // What consul-lock refuses is refused here, with the exit status of a bad configuration.
    for (name, bad) in [
        ("node", "n".repeat(consul_lock::MAX_NODE_LEN + 1)),
        ("prefix", "a,b".to_string()),
        ("prefix", "p".repeat(consul_lock::MAX_PREFIX_LEN + 1)),
    ] {
        let e = raw(&[(name, &bad)]).validate().unwrap_err();
        assert_eq!(e.problems[0].setting, format!("--{name}"), "{e}");
    }
}

#[test]
fn every_problem_is_reported_at_once() {
    let err = raw(&[
        ("consul", "ftp://x"),
        ("redis", "localhost:6379"),
        ("listen", "nope"),
        ("node", "a b"),
        ("prefix", "/x/../y"),
        ("session-ttl", "5s"),
        ("lock-delay", "90s"),
        ("api-token", " "),
        ("log-format", "xml"),
    ])
    .validate()
    .unwrap_err();
    let names: Vec<_> = err.problems.iter().map(|p| p.setting).collect();
    assert_eq!(
        names,
        [
            "--consul",
            "--redis",
            "--listen",
            "--node",
            "--prefix",
            "--session-ttl",
            "--lock-delay",
            "--api-token",
            "--log-format"
        ]
    );
    let text = err.to_string();
    assert!(text.contains("pretty or json"), "{text}");
    assert!(text.contains("10s-24h"), "{text}");
}

#[test]
fn wildcard_listen_needs_advertise() {
    let given = raw(&[("node", "n"), ("listen", "0.0.0.0:8765")]);
    assert_eq!(
        given.clone().validate().unwrap_err().problems[0].setting,
        "--advertise"
    );
    let c = raw(&[("advertise", "node1.internal:8765")])
        .or(given)
        .validate()
        .unwrap();
    assert_eq!(c.advertise(), "node1.internal:8765");
    assert_eq!(c.lock_settings().api_addr, "node1.internal:8765");
}

#[test]
fn mq_url_stands_for_redis_and_queue_prefix_and_excludes_them() {
    let c = raw(&[("node", "n"), ("mq-url", "redis://:pw@h:6380/2")])
        .validate()
        .unwrap();
    let q = c.queue_config();
    assert_eq!(
        (q.url.as_str(), q.queue_prefix.as_str()),
        ("redis://:pw@h:6380/2", "/2")
    );
    for other in ["redis", "queue-prefix"] {
        let value = if other == "redis" {
            "redis://x:1/"
        } else {
            "p:"
        };
        let e = raw(&[("node", "n"), ("mq-url", "redis://h:1/"), (other, value)])
            .validate()
            .unwrap_err();
        assert_eq!(e.problems.len(), 1, "{e}");
        assert_eq!(e.problems[0].setting, "--mq-url");
        assert!(e.to_string().contains(&format!("--{other}")), "{e}");
    }
    let e = raw(&[("node", "n"), ("mq-url", "redis://h:1/cron")])
        .validate()
        .unwrap_err();
    assert!(e.to_string().contains("invalid database"), "{e}");
}

#[test]
fn file_fills_what_flags_leave_unset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        "node = \"from-file\"\nsession-ttl = \"15s\"\nconsul = \"10.0.0.1:8500\"\n",
    )
    .unwrap();
    let file = RawConfig::from_toml_file(&path).unwrap();
    let c = raw(&[("node", "from-flag")]).or(file).validate().unwrap();
    assert_eq!(c.node, "from-flag");
    assert_eq!(c.session_ttl, Duration::from_secs(15));
    assert_eq!(c.consul_addr, "http://10.0.0.1:8500");
}

#[test]
fn unknown_file_keys_and_non_strings_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "sesion-ttl = \"15s\"\nlock-delay = 2\n").unwrap();
    let err = RawConfig::from_toml_file(&path).unwrap_err();
    assert_eq!(err.problems.len(), 2, "{err}");
    let text = err.to_string();
    assert!(text.contains("sesion-ttl"), "{text}");
    assert!(text.contains("session-ttl"), "{text}");
    assert!(text.contains("`lock-delay` is a integer"), "{text}");
}

#[test]
fn the_deployed_example_file_validates() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/cronnode.toml");
    let file = RawConfig::from_toml_file(std::path::Path::new(path)).unwrap();
    file.validate().unwrap();
}

#[test]
fn consul_ssl_makes_a_plain_address_https() {
    let c = raw(&[
        ("node", "n"),
        ("consul", "consul.internal:8501"),
        ("consul-ssl", "true"),
    ])
    .validate()
    .unwrap();
    assert_eq!(c.consul_addr, "https://consul.internal:8501");
    let err = raw(&[
        ("consul-ssl", "yes"),
        ("consul-cacert", "/nonexistent/ca.pem"),
    ])
    .validate()
    .unwrap_err();
    let names: Vec<_> = err.problems.iter().map(|p| p.setting).collect();
    assert_eq!(names, ["--consul-ssl", "--consul-cacert"]);
}

#[test]
fn the_consul_ui_defaults_to_the_agents() {
    let c = raw(&[("node", "n"), ("consul", "10.0.0.9:8500")])
        .validate()
        .unwrap();
    assert_eq!(c.consul_ui_url(), "http://10.0.0.9:8500/ui");
    let c = raw(&[
        ("node", "n"),
        ("consul-ui", "https://consul.example.com/ui/"),
    ])
    .validate()
    .unwrap();
    assert_eq!(c.consul_ui_url(), "https://consul.example.com/ui");
    for bad in [
        "consul.example.com/ui",
        "ftp://x/ui",
        "https:///ui",
        "http://a b/ui",
    ] {
        let err = raw(&[("consul-ui", bad)]).validate().unwrap_err();
        assert_eq!(err.problems[0].setting, "--consul-ui", "{bad}");
    }
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let given = raw(&[
        ("api-token", "s3cret"),
        ("consul-token", "t0ken"),
        ("redis", "redis://:pw@h:1/0"),
    ]);
    let shown = format!("{given:?} {:?}", given.clone().validate().unwrap());
    for secret in ["s3cret", "t0ken", ":pw@"] {
        assert!(!shown.contains(secret), "{shown}");
    }
}

#[test]
fn every_default_is_a_valid_value_and_names_are_unique() {
    let all = settings();
    for s in &all {
        let mut one = RawConfig::default();
        if let Unset::Default(text) = &s.unset {
            assert!(one.set(s.name, text.clone()));
            one.validate()
                .unwrap_or_else(|e| panic!("default of --{}: {e}", s.name));
        }
    }
    let mut names: Vec<_> = all.iter().map(|s| s.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), all.len());
}

/// The README's configuration table lists exactly the declared settings, in order, with their
/// environment variables and defaults.
#[test]
fn the_readme_table_is_the_declared_settings() {
    let readme = include_str!("../../../../README.md");
    let rows: Vec<Vec<String>> = readme
        .lines()
        .skip_while(|l| !l.starts_with("| flag | environment | default |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect();
    let documented: Vec<[String; 3]> = rows
        .iter()
        .filter(|r| r[0].starts_with("`--") && r[0] != "`--config`")
        .map(|r| [r[0].clone(), r[1].clone(), r[2].clone()])
        .collect();
    let declared: Vec<[String; 3]> = settings()
        .iter()
        .map(|s| {
            let default = match &s.unset {
                Unset::Default(v) if v.is_empty() => "empty".to_string(),
                Unset::Default(v) => format!("`{v}`"),
                Unset::Derived(what) | Unset::None(Some(what)) => what.to_string(),
                Unset::None(None) => "—".to_string(),
            };
            [format!("`--{}`", s.name), format!("`{}`", s.env), default]
        })
        .collect();
    assert_eq!(documented, declared, "README.md's configuration table");
}

#[test]
fn a_redis_url_the_client_cannot_read_is_refused_at_validation() {
    for bad in [
        "localhost:6379",
        "unix:///run/redis.sock",
        "redis://h:notaport",
        "redis://h:99999999",
        "redis://h:1/notadb",
    ] {
        let e = raw(&[("redis", bad)]).validate().unwrap_err();
        assert_eq!(e.problems[0].setting, "--redis", "{bad}: {e}");
    }
    let e = raw(&[("redis", "redis://:s3cret@h:notaport")])
        .validate()
        .unwrap_err();
    assert!(!e.to_string().contains("s3cret"), "{e}");
    for good in [
        "redis://h:6379/2",
        "rediss://u:pw@h:6380",
        "redis://[::1]:6379",
    ] {
        raw(&[("redis", good)])
            .validate()
            .unwrap_or_else(|e| panic!("{good}: {e}"));
    }
}
