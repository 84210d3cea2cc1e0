//! The configuration file: broker settings and the list of relays.
//!
//! Loading parses with serde (unknown keys are rejected), then runs
//! [`Config::validate`], the same rules the settings window uses. Every
//! error names the file, the line and column, and the offending relay.
//! Saving edits the existing document with `toml_edit` so comments survive,
//! and replaces the file atomically.
//!
//! Layout: this file holds the schema (the serde structs), loading and
//! [`ConfigError`]; `rules.rs` the validation rules and where in the file a
//! broken one is; `file.rs` saving and the permission warning; `broker.rs`
//! the broker URL and password sources; `kind.rs` the relay kinds (their
//! keys, defaults and derived topics); `stamp.rs` what the file held when
//! read, to notice edits made by others. The submodules are private and
//! everything public is re-exported here, so callers keep naming it
//! `config::…` whichever file it lives in.

mod broker;
mod file;
mod kind;
mod rules;
mod stamp;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use broker::{BrokerAddress, PasswordError, Scheme, UrlError, parse_broker_url};
pub use file::write_atomically;
pub use kind::Kind;
use rules::SpanFinder;
pub use rules::{Place, Problem, RESERVED_PREFIX};
pub use stamp::{FileLook, FileStamp};

/// Default time a device has to answer a request.
pub const DEFAULT_TIMEOUT_MS: u64 = 3000;
/// Default `payload_available`.
pub const DEFAULT_PAYLOAD_AVAILABLE: &str = "online";
/// Default `payload_not_available`.
pub const DEFAULT_PAYLOAD_NOT_AVAILABLE: &str = "offline";
/// Longest allowed request timeout (MQTT message expiry is in whole seconds;
/// anything longer than ten minutes is surely a typo).
pub const MAX_TIMEOUT_MS: u64 = 600_000;

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the broker is and how to log in.
    pub broker: BrokerConfig,
    /// Who is operating (sent with each request and kept in the audit log).
    #[serde(default)]
    pub panel: PanelConfig,
    /// The relays, in the order the panel shows them.
    #[serde(default, rename = "relay")]
    pub relays: Vec<RelayConfig>,
}

/// The file as written: [`Config`] with each relay's table as it is
/// spelled out ([`kind::RelayFile`]), for [`Config::parse`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    broker: BrokerConfig,
    #[serde(default)]
    panel: PanelConfig,
    #[serde(default)]
    relay: Vec<kind::RelayFile>,
}

/// `[broker]`: connection settings. `Debug` never shows the password.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerConfig {
    /// `mqtt://host:port` or `mqtts://host:port` (TLS).
    pub url: String,
    /// User name for the broker, if it asks for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Password for the broker (prefer `password_env` / `password_file`:
    /// a config file holding a password that others can read gets a warning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Name of an environment variable holding the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// File whose first line is the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// CA certificate (PEM) that signed the broker's certificate (mqtts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for brokers that require one (mqtts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<PathBuf>,
    /// Private key (PEM) of `client_cert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<PathBuf>,
    /// Fixed MQTT client id; by default each panel makes a random one, so
    /// two panels never throw each other off the broker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Time a device has to answer, unless the relay sets its own.
    #[serde(default = "default_timeout_ms")]
    pub request_timeout_ms: u64,
}

impl fmt::Debug for BrokerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerConfig")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("password_env", &self.password_env)
            .field("password_file", &self.password_file)
            .field("ca_file", &self.ca_file)
            .field("client_cert", &self.client_cert)
            .field("client_key", &self.client_key)
            .field("client_id", &self.client_id)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .finish()
    }
}

/// `[panel]`: settings of this panel that are not about the broker.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PanelConfig {
    /// Operator name sent as the `operator` user property and written into
    /// the audit log; the OS user when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
}

/// One `[[relay]]`. Flat: every kind's keys are fields here, and a kind
/// leaves the others at their defaults ([`Config::validate`] names a key
/// set for the wrong kind). On disk it goes through [`kind::RelayFile`],
/// which fills the payload defaults of the relay's kind and writes only the
/// keys that belong to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "kind::RelayFile", into = "kind::RelayFile")]
pub struct RelayConfig {
    /// Stable identifier (used by relayctl, the store and widget ids).
    pub id: String,
    /// What the technician reads; defaults to the id.
    pub name: String,
    /// Heading the relay is listed under.
    pub group: String,
    /// How the device is spoken to; decides which keys below apply.
    pub kind: Kind,
    /// `mqtt5`: topic the device listens on; unique, no wildcards. Empty
    /// for the other kinds (see [`RelayConfig::publish_topic`]).
    pub request_topic: String,
    /// `shelly`, `tasmota`: the device's MQTT topic (Shelly's prefix,
    /// Tasmota's `%topic%`).
    pub device: String,
    /// `shelly`: the Switch component id (default 0).
    pub switch: u32,
    /// `tasmota`: which `POWER<n>`; `None` for a one-relay device (`POWER`).
    pub power: Option<u32>,
    /// `state`: where the command is published.
    pub command_topic: String,
    /// `state`: where the device publishes its state (required);
    /// `mqtt5`: where the device publishes its state whenever it changes
    /// (optional, empty when not set): changes made at the device.
    pub state_topic: String,
    /// `mqtt5`, `state`: the device's last-will topic, on which it
    /// publishes `payload_available` / `payload_not_available` (optional,
    /// empty when not set). `shelly` and `tasmota` have fixed ones (see
    /// [`RelayConfig::availability_topic`]).
    pub availability_topic: String,
    /// `mqtt5`, `state`: the payload on `availability_topic` meaning the
    /// device is reachable (default `online`).
    pub payload_available: String,
    /// `mqtt5`, `state`: the payload on `availability_topic` meaning the
    /// device is not reachable (default `offline`).
    pub payload_not_available: String,
    /// Payload that means "on" in both directions (`mqtt5`: `1`, `state`:
    /// `ON`; fixed for `shelly` and `tasmota`, see [`Kind::default_payloads`]).
    pub payload_on: String,
    /// Payload that means "off" in both directions (`mqtt5`: `0`, `state`:
    /// `OFF`).
    pub payload_off: String,
    /// `mqtt5`, `state`: payload that asks the state without changing it.
    /// Opt-in: a device written for the plain pattern may take any unknown
    /// payload as "off". (`shelly` and `tasmota` can always be asked.)
    pub payload_query: Option<String>,
    /// Per-relay timeout overriding the broker's `request_timeout_ms`.
    pub timeout_ms: Option<u64>,
    /// Ask the technician before every switch of this relay.
    pub confirm: bool,
}

fn default_timeout_ms() -> u64 {
    DEFAULT_TIMEOUT_MS
}

impl RelayConfig {
    /// A relay of kind `mqtt5` with default payloads.
    pub fn new(id: &str, request_topic: &str) -> Self {
        RelayConfig {
            request_topic: request_topic.to_owned(),
            ..RelayConfig::of_kind(id, Kind::Mqtt5)
        }
    }

    /// A relay of kind `shelly`: switch `switch` of the Shelly whose topic
    /// prefix is `device`.
    pub fn shelly(id: &str, device: &str, switch: u32) -> Self {
        RelayConfig {
            device: device.to_owned(),
            switch,
            ..RelayConfig::of_kind(id, Kind::Shelly)
        }
    }

    /// A relay of kind `tasmota`: `POWER<power>` (or `POWER`) of the
    /// Tasmota whose `%topic%` is `device`.
    pub fn tasmota(id: &str, device: &str, power: Option<u32>) -> Self {
        RelayConfig {
            device: device.to_owned(),
            power,
            ..RelayConfig::of_kind(id, Kind::Tasmota)
        }
    }

    /// A relay of kind `state`, with payloads `ON` / `OFF`.
    pub fn state(id: &str, command_topic: &str, state_topic: &str) -> Self {
        RelayConfig {
            command_topic: command_topic.to_owned(),
            state_topic: state_topic.to_owned(),
            ..RelayConfig::of_kind(id, Kind::State)
        }
    }

    /// A relay of `kind` with every key at its default (topics empty).
    pub fn of_kind(id: &str, kind: Kind) -> Self {
        let (on, off) = kind.default_payloads();
        RelayConfig {
            id: id.to_owned(),
            name: String::new(),
            group: String::new(),
            kind,
            request_topic: String::new(),
            device: String::new(),
            switch: 0,
            power: None,
            command_topic: String::new(),
            state_topic: String::new(),
            availability_topic: String::new(),
            payload_available: DEFAULT_PAYLOAD_AVAILABLE.to_owned(),
            payload_not_available: DEFAULT_PAYLOAD_NOT_AVAILABLE.to_owned(),
            payload_on: on.to_owned(),
            payload_off: off.to_owned(),
            payload_query: None,
            timeout_ms: None,
            confirm: false,
        }
    }

    /// The name shown to the technician.
    pub fn display_name(&self) -> &str {
        if self.name.is_empty() {
            &self.id
        } else {
            &self.name
        }
    }
}

/// Why a configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file is missing or unreadable.
    #[error("cannot read configuration {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// TOML syntax, a wrong type or an unknown key.
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// The file parses but breaks a rule (first problem shown; all listed).
    #[error("{}", render_invalid(.path, .problems))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Each broken rule with its position.
        problems: Vec<(usize, usize, Problem)>,
    },
    /// Writing the file failed; the previous file is untouched.
    #[error("cannot save configuration {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
}

fn render_invalid(path: &Path, problems: &[(usize, usize, Problem)]) -> String {
    problems
        .iter()
        .map(|(line, column, problem)| format!("{}:{line}:{column}: {problem}", path.display()))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Config {
    /// A configuration with a broker and no relays.
    pub fn new(url: &str) -> Self {
        Config {
            broker: BrokerConfig {
                url: url.to_owned(),
                username: None,
                password: None,
                password_env: None,
                password_file: None,
                ca_file: None,
                client_cert: None,
                client_key: None,
                client_id: None,
                request_timeout_ms: DEFAULT_TIMEOUT_MS,
            },
            panel: PanelConfig::default(),
            relays: Vec::new(),
        }
    }

    /// Reads, parses and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_stamped(path).map(|(config, _)| config)
    }

    /// Like [`Config::load`], with the stamp of the very bytes parsed (to
    /// notice later edits by others: see [`FileStamp`]).
    pub fn load_stamped(path: &Path) -> Result<(Config, FileStamp), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let stamp = FileStamp::of_bytes(text.as_bytes());
        let config = Config::parse(&text, path);
        drop(text);
        release_freed_memory();
        config.map(|config| (config, stamp))
    }

    /// Parses and validates configuration text; `path` only labels errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        // One parse (the toml document of 10,000 relays briefly takes
        // ~30 MB): the relays' tables as written tell which keys they spell
        // out, then become the configuration.
        let file: ConfigFile = toml::from_str(text).map_err(|e| {
            let offset = e.span().map(|s| s.start).unwrap_or(0);
            let (line, column) = line_column(text, offset);
            ConfigError::Syntax {
                path: path.to_owned(),
                line,
                column,
                message: e.message().trim().to_owned(),
            }
        })?;
        let written: Vec<Vec<&'static str>> = file
            .relay
            .iter()
            .map(kind::RelayFile::kind_keys_written)
            .collect();
        let config = Config {
            broker: file.broker,
            panel: file.panel,
            relays: file.relay.into_iter().map(RelayConfig::from).collect(),
        };
        let mut problems = config.validate();
        problems.extend(rules::foreign_keys_written(&written, &config));
        if problems.is_empty() {
            return Ok(config);
        }
        let spans = SpanFinder::new(text);
        let problems = problems
            .into_iter()
            .map(|p| {
                let (line, column) = line_column(text, spans.offset(&p.place));
                (line, column, p)
            })
            .collect();
        Err(ConfigError::Invalid {
            path: path.to_owned(),
            problems,
        })
    }

    /// The time the relay's device has to answer.
    pub fn timeout(&self, relay: &RelayConfig) -> Duration {
        Duration::from_millis(relay.timeout_ms.unwrap_or(self.broker.request_timeout_ms))
    }

    /// The relay with this id.
    pub fn relay(&self, id: &str) -> Option<&RelayConfig> {
        self.relays.iter().find(|r| r.id == id)
    }
}

/// Parsing a large file (10,000 relays: 1.3 MB) briefly needs ~30 MB, and
/// the window's first burst of events from the engine (every relay's
/// retained state and last will) as much again; glibc keeps freed memory in
/// the process unless asked to return it.
pub(crate) fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free heap pages; it has no
    // preconditions and touches no live allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// 1-based line and column of a byte offset.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..text.floor_char_boundary(offset)];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(before.chars().count(), |nl| {
        before[nl + 1..].chars().count()
    }) + 1;
    (line, column)
}

/// A small example configuration, written for first-time users.
pub const EXAMPLE: &str = r#"# Relay Panel configuration. See the README for every key.
[broker]
url = "mqtt://127.0.0.1:1883"        # mqtts:// for TLS
request_timeout_ms = 3000

[[relay]]
id = "pump-1"
name = "Basement pump"
group = "Basement"
request_topic = "device_1/relay_1"
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("panel.toml"))
    }

    const GOOD: &str = r#"
[broker]
url = "mqtt://127.0.0.1:1883"

[[relay]]
id = "a"
request_topic = "dev/a"

[[relay]]
id = "b"
name = "B relay"
group = "G"
request_topic = "dev/b"
payload_on = "ON"
payload_off = "OFF"
payload_query = "?"
timeout_ms = 500
confirm = true
"#;

    /// A valid file loads with defaults filled in.
    #[test]
    fn good_config_loads_with_defaults() {
        let config = parse(GOOD).unwrap();
        assert_eq!(config.relays.len(), 2);
        assert_eq!(config.relays[0].payload_on, "1");
        assert_eq!(config.relays[0].payload_off, "0");
        assert_eq!(config.relays[0].display_name(), "a");
        assert_eq!(
            config.timeout(&config.relays[0]),
            Duration::from_millis(3000)
        );
        assert_eq!(
            config.timeout(&config.relays[1]),
            Duration::from_millis(500)
        );
        assert!(config.relays[1].confirm);
    }

    /// A missing file is reported with its path.
    #[test]
    fn missing_file_names_the_path() {
        let err = Config::load(Path::new("/nonexistent/relay.toml")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/relay.toml"), "{err}");
    }

    /// The example shipped to first-time users is valid.
    #[test]
    fn example_is_valid() {
        parse(EXAMPLE).unwrap();
    }
}
