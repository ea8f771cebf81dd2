//! The `--config FILE`: a TOML table whose keys are the settings' names (`session-ttl = "15s"`),
//! read into a [`RawConfig`] like any other source. Every value is a string, as on the
//! command line; an unknown key or a value of another type is refused by name, all at once.

use std::path::Path;

use super::{settings, ConfigError, Problem, RawConfig};

/// The setting a problem of the file is filed under.
const SETTING: &str = "--config";

impl RawConfig {
    /// Reads a TOML file of settings (keys as flag names: `session-ttl = "15s"`).
    pub fn from_toml_file(path: &Path) -> Result<RawConfig, ConfigError> {
        let problem = |message: String| Problem {
            setting: SETTING,
            message: format!("{}: {message}", path.display()),
        };
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            problems: vec![Problem {
                setting: SETTING,
                message: format!("cannot read {}: {e}", path.display()),
            }],
        })?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| ConfigError {
            problems: vec![problem(e.to_string())],
        })?;
        let mut raw = RawConfig::default();
        let mut problems = Vec::new();
        for (key, value) in table {
            match value {
                toml::Value::String(text) => {
                    if !raw.set(&key, text) {
                        let names: Vec<&str> = settings().iter().map(|s| s.name).collect();
                        problems.push(problem(format!(
                            "unknown key `{key}`: the keys are the flag names ({})",
                            names.join(", ")
                        )));
                    }
                }
                other => problems.push(problem(format!(
                    "`{key}` is a {}: write it as a string (`{key} = \"…\"`)",
                    other.type_str()
                ))),
            }
        }
        if problems.is_empty() {
            Ok(raw)
        } else {
            Err(ConfigError { problems })
        }
    }
}
