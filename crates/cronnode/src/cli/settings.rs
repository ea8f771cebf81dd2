//! The daemon's settings on the command line: one clap argument per declared setting
//! (`crate::config::settings()`), each with its environment variable, and `--config FILE`.
//!
//! Nothing here names a setting: a setting added to `config/settings.rs` is a flag and an
//! environment variable of `run` and `dev` with no change in this file. Clap fills in no
//! default, so that an unset flag leaves the setting to the file and then to its declared
//! default.

use std::path::PathBuf;

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
}

impl SettingsArgs {
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
        for s in config::settings() {
            if let Some(value) = matches.try_get_one::<String>(s.name).map_err(internal)? {
                given.set(s.name, value.clone());
            }
        }
        let config = matches
            .try_get_one::<PathBuf>(CONFIG)
            .map_err(internal)?
            .cloned();
        Ok(SettingsArgs { config, given })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = SettingsArgs::from_arg_matches(matches)?;
        Ok(())
    }
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
}
