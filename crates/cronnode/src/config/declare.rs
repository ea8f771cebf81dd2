//! How a setting is declared: the `declare_settings!` macro and the [`Setting`] table it
//! builds. Read `settings.rs` first (what the settings are); this file is how one declaration
//! becomes everything a setting needs:
//!
//! - a field of [`super::RawConfig`] (the text given, `None` when not given), with `or` (a
//!   lower-priority source fills what is unset) and `set` (by name, for the file and the
//!   command line);
//! - a typed field of [`super::Config`] and its parsing: the declared parser on the given text,
//!   else on the default's text, else the declared value when unset;
//! - a row of [`super::settings()`]: name (the flag without `--` and the TOML key),
//!   environment variable, value name, help, whether it is secret, and what it is when unset.
//!
//! Must not: hold a setting's facts (they are in `settings.rs`) or parse a value itself.

/// What a setting is when nobody gives it, as `--help` and the README say it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unset {
    /// This value, written as a user would write it (it goes through the setting's parser).
    Default(String),
    /// Computed when unset (the host name); the text says what.
    Derived(&'static str),
    /// No value; the text, when there is one, says what that means.
    None(Option<&'static str>),
}

/// One setting as the command line, the file and the docs see it.
#[derive(Debug, Clone)]
pub struct Setting {
    /// The flag without `--`, and the key in the file: `session-ttl`.
    pub name: &'static str,
    /// The environment variable: `CRONNODE_SESSION_TTL`.
    pub env: &'static str,
    /// What `--help` calls the value: `DURATION`.
    pub value_name: &'static str,
    /// One line of help, without the default.
    pub help: String,
    /// Its value must not be shown (`--help` hides what the environment holds).
    pub secret: bool,
    /// What it is when not given.
    pub unset: Unset,
}

impl Setting {
    /// The default as `--help` shows it (`None`: the setting has no value when unset).
    pub fn default_doc(&self) -> Option<String> {
        match &self.unset {
            Unset::Default(v) if v.is_empty() => Some("empty".to_string()),
            Unset::Default(v) => Some(v.clone()),
            Unset::Derived(what) | Unset::None(Some(what)) => Some(what.to_string()),
            Unset::None(None) => None,
        }
    }
}

/// Whether a declaration says `secret: true` (absent means not secret).
pub fn is_secret(flags: &[bool]) -> bool {
    flags.contains(&true)
}

/// Declares the settings (see the module header). Each entry:
///
/// ```text
/// /// Doc of the Config field.
/// field: Type {
///     name: "flag-name", env: "ENV_VAR", value_name: "VALUE", help: "One line",
///     [secret: true,]
///     parse: fn(&str) -> Result<Type, String>,
///     default: "text" | derived: "what" => value | none [: "what"]
/// }
/// ```
///
/// With `none`, `Type` is an `Option` and the parser returns one (so that an empty text can
/// mean unset).
macro_rules! declare_settings {
    (@value $given:ident, $parse:expr, default: $default:expr $(,)?) => {{
        let default: &str = &$default;
        ($parse)($given.unwrap_or(default))
    }};
    (@value $given:ident, $parse:expr, derived: $what:literal => $value:expr $(,)?) => {
        match $given {
            Some(text) => ($parse)(text),
            None => Ok($value),
        }
    };
    (@value $given:ident, $parse:expr, none $(: $what:literal)? $(,)?) => {
        match $given {
            Some(text) => ($parse)(text),
            None => Ok(None),
        }
    };
    (@unset default: $default:expr $(,)?) => {{
        let default: &str = &$default;
        $crate::config::Unset::Default(default.to_string())
    }};
    (@unset derived: $what:literal => $value:expr $(,)?) => {
        $crate::config::Unset::Derived($what)
    };
    (@unset none: $what:literal $(,)?) => {
        $crate::config::Unset::None(Some($what))
    };
    (@unset none $(,)?) => {
        $crate::config::Unset::None(None)
    };
    ($(
        $(#[doc = $doc:literal])+
        $field:ident: $ty:ty {
            name: $name:literal,
            env: $env:expr,
            value_name: $value_name:literal,
            help: $help:expr,
            $(secret: $secret:literal,)?
            parse: $parse:expr,
            $($unset:tt)+
        }
    )+) => {
        /// The settings as given (flags, environment, file), as text, by setting; `None` when
        /// not given.
        #[derive(Clone, Default, PartialEq, Eq)]
        pub struct RawConfig {
            $(
                #[doc = concat!("`--", $name, "`")]
                pub $field: Option<String>,
            )+
        }

        /// The validated configuration of a node: one field per setting.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct Config {
            $(
                $(#[doc = $doc])+
                pub $field: $ty,
            )+
        }

        /// Each setting as parsed so far (`None`: refused), for the rules between settings.
        pub(super) struct PartialConfig {
            $(pub(super) $field: Option<$ty>,)+
        }

        impl RawConfig {
            /// Fills every setting unset here from `lower` (a lower-priority source).
            pub fn or(self, lower: RawConfig) -> RawConfig {
                RawConfig {
                    $($field: self.$field.or(lower.$field),)+
                }
            }

            /// Sets the setting called `name` (`session-ttl`); `false` when there is none.
            pub fn set(&mut self, name: &str, value: String) -> bool {
                let slot = match name {
                    $($name => &mut self.$field,)+
                    _ => return false,
                };
                *slot = Some(value);
                true
            }

            /// Parses every setting on its own, noting each refusal in `problems`.
            pub(super) fn parse_each(
                &self,
                problems: &mut Vec<$crate::config::Problem>,
            ) -> PartialConfig {
                PartialConfig {
                    $($field: {
                        let given: Option<&str> = self.$field.as_deref();
                        let parsed: Result<$ty, String> =
                            declare_settings!(@value given, $parse, $($unset)+);
                        parsed
                            .map_err(|message| {
                                problems.push($crate::config::Problem {
                                    setting: concat!("--", $name),
                                    message,
                                })
                            })
                            .ok()
                    },)+
                }
            }
        }

        impl PartialConfig {
            /// The configuration, when every setting parsed.
            pub(super) fn complete(self) -> Option<Config> {
                Some(Config {
                    $($field: self.$field?,)+
                })
            }
        }

        impl std::fmt::Debug for RawConfig {
            // Secrets never reach a log line.
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let mut d = f.debug_struct("RawConfig");
                $(
                    if let Some(v) = &self.$field {
                        if $crate::config::declare::is_secret(&[$($secret)?]) {
                            d.field(stringify!($field), &"<set>");
                        } else {
                            d.field(stringify!($field), v);
                        }
                    }
                )+
                d.finish()
            }
        }

        /// Every setting, in the order of `--help` and of the README's table.
        pub fn settings() -> Vec<$crate::config::Setting> {
            vec![$(
                $crate::config::Setting {
                    name: $name,
                    env: $env,
                    value_name: $value_name,
                    help: ($help).to_string(),
                    secret: $crate::config::declare::is_secret(&[$($secret)?]),
                    unset: declare_settings!(@unset $($unset)+),
                },
            )+]
        }
    };
}

pub(crate) use declare_settings;
