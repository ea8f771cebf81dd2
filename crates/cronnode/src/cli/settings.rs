//! The daemon's settings on the command line: one clap argument per declared setting
//! (`crate::config::settings()`), each with its environment variable, and `--config FILE`.
//!
//! Nothing here names a setting: a setting added to `config/settings.rs` is a flag and an
//! environment variable of `run` and `dev` with no change in this file. Clap fills in no
//! default, so that an unset flag leaves the setting to the file and then to its declared
//! default.

use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{Arg, ArgMatches, Args, Command, FromArgMatches};

use crate::config::{self, ConfigError, RawConfig, Setting};

/// Environment variable of the settings file.
pub const ENV_CONFIG: &str = "CRONNODE_CONFIG";
/// The file's argument (not a setting: where settings come from).
const CONFIG: &str = "config";

/// The settings given as flags and environment variables, and the file under them.
#[derive(Debug, Clone, Default)]
pub struct SettingsArgs {
    /// `--config FILE`.
    pub config: Option<PathBuf>,
    /// Flags and environment variables.
    pub given: RawConfig,
    /// Secret settings given as flags (`--api-token`), where every local user can read them
    /// (`ps`, `/proc/PID/cmdline`): a warning each at start-up.
    pub secrets_on_command_line: Vec<(&'static str, &'static str)>,
}

impl SettingsArgs {
    /// One warning per secret given on the command line, naming where to put it instead.
    pub fn exposure_warnings(&self) -> Vec<String> {
        self.secrets_on_command_line
            .iter()
            .map(|(name, env)| {
                format!(
                    "--{name} was given on the command line, where every local user can read it (ps, /proc/PID/cmdline): set {env} in the environment or `{name}` in the --config file instead"
                )
            })
            .collect()
    }

    /// Flags and environment, then the config file under them: one [`RawConfig`].
    pub fn raw(&self) -> Result<RawConfig, ConfigError> {
        match &self.config {
            Some(path) => Ok(self.given.clone().or(RawConfig::from_toml_file(path)?)),
            None => Ok(self.given.clone()),
        }
    }
}

fn arg(setting: &Setting) -> Arg {
    let help = match setting.default_doc() {
        Some(default) => format!("{} [default: {default}]", setting.help),
        None => setting.help.clone(),
    };
    Arg::new(setting.name)
        .long(setting.name)
        .value_name(setting.value_name)
        .env(setting.env)
        .hide_env_values(setting.secret)
        .help(help)
        .value_parser(clap::value_parser!(String))
}

impl Args for SettingsArgs {
    fn augment_args(cmd: Command) -> Command {
        let file = Arg::new(CONFIG)
            .long(CONFIG)
            .value_name("FILE")
            .env(ENV_CONFIG)
            .help("A TOML file of settings (keys are the flag names); flags and environment win over it")
            .value_parser(clap::value_parser!(PathBuf));
        config::settings()
            .iter()
            .fold(cmd.arg(file), |cmd, s| cmd.arg(arg(s)))
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        SettingsArgs::augment_args(cmd)
    }
}

impl FromArgMatches for SettingsArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<SettingsArgs, clap::Error> {
        let mut given = RawConfig::default();
        let mut secrets_on_command_line = Vec::new();
        for s in config::settings() {
            if let Some(value) = matches.try_get_one::<String>(s.name).map_err(internal)? {
                given.set(s.name, value.clone());
                let from_flag = matches.value_source(s.name) == Some(ValueSource::CommandLine);
                if from_flag && s.secret && holds_secret(value) {
                    secrets_on_command_line.push((s.name, s.env));
                }
            }
        }
        let config = matches
            .try_get_one::<PathBuf>(CONFIG)
            .map_err(internal)?
            .cloned();
        Ok(SettingsArgs {
            config,
            given,
            secrets_on_command_line,
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = SettingsArgs::from_arg_matches(matches)?;
        Ok(())
    }
}

/// Whether the text of a secret setting holds a secret: a token does; a URL only with a
/// password in it (`--redis redis://host:6379` is not one).
fn holds_secret(value: &str) -> bool {
    !value.contains("://") || redis_queue::queue::mask_password(value) != value
}

fn internal(e: clap::parser::MatchesError) -> clap::Error {
    clap::Error::raw(clap::error::ErrorKind::Io, e.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use clap::Parser;

    use crate::cli::{Cli, Command};

    #[test]
    fn every_setting_is_a_flag_of_run_and_dev() {
        let cli = Cli::try_parse_from([
            "cronnode",
            "run",
            "--session-ttl",
            "15s",
            "--node",
            "n1",
            "--api-token",
            "t",
        ])
        .unwrap();
        let Command::Run(run) = cli.command else {
            panic!("not run")
        };
        assert_eq!(run.settings.given.session_ttl.as_deref(), Some("15s"));
        assert_eq!(run.settings.given.node.as_deref(), Some("n1"));
        assert_eq!(run.settings.given.consul_addr, None);
        let cli = Cli::try_parse_from(["cronnode", "dev", "--no-example", "--log-format", "json"])
            .unwrap();
        let Command::Dev(dev) = cli.command else {
            panic!("not dev")
        };
        assert!(dev.no_example);
        assert_eq!(dev.settings.given.log_format.as_deref(), Some("json"));
        assert!(Cli::try_parse_from(["cronnode", "run", "--sesion-ttl", "1s"]).is_err());
    }

    #[test]
    fn a_secret_on_the_command_line_is_named_in_a_warning() {
        let parse = |args: &[&str]| {
            let Command::Run(run) = Cli::try_parse_from(args).unwrap().command else {
                panic!("not run")
            };
            run.settings.exposure_warnings()
        };
        let w = parse(&["cronnode", "run", "--api-token", "t", "--consul-token", "c"]);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].contains("--consul-token") && w[0].contains("CONSUL_HTTP_TOKEN"),
            "{w:?}"
        );
        assert!(
            w[1].contains("--api-token") && w[1].contains("CRONNODE_API_TOKEN"),
            "{w:?}"
        );
        assert!(!w.concat().contains(" t ") && !w.concat().contains("\"t\""));
        // A Redis URL is a secret only with a password in it.
        assert!(parse(&["cronnode", "run", "--redis", "redis://h:1"]).is_empty());
        assert_eq!(
            parse(&["cronnode", "run", "--redis", "redis://:pw@h:1"]).len(),
            1
        );
    }
}
