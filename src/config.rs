//! The configuration file: broker settings and the list of relays.
//!
//! Loading parses with serde (unknown keys are rejected), then runs
//! [`Config::validate`], the same rules the settings window uses. Every
//! error names the file, the line and column, and the offending relay.
//! Saving edits the existing document with `toml_edit` so comments survive,
//! and replaces the file atomically.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Default time a device has to answer a request.
pub const DEFAULT_TIMEOUT_MS: u64 = 3000;
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

impl BrokerConfig {
    /// The password from `password`, `password_env` or `password_file`.
    /// Errors name the variable or file, never the password.
    pub fn resolve_password(&self) -> Result<Option<String>, String> {
        if let Some(name) = &self.password_env {
            return std::env::var(name).map(Some).map_err(|_| {
                format!("password_env names {name:?}, but that environment variable is not set")
            });
        }
        if let Some(path) = &self.password_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read password_file {}: {e}", path.display()))?;
            return Ok(Some(text.lines().next().unwrap_or("").to_owned()));
        }
        Ok(self.password.clone())
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

/// One `[[relay]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayConfig {
    /// Stable identifier (used by relayctl, the store and widget ids).
    pub id: String,
    /// What the technician reads; defaults to the id.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Heading the relay is listed under.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// Topic the device listens on; unique, no wildcards.
    pub request_topic: String,
    /// Payload that means "on" in both directions.
    #[serde(default = "default_on")]
    pub payload_on: String,
    /// Payload that means "off" in both directions.
    #[serde(default = "default_off")]
    pub payload_off: String,
    /// Payload that asks the state without changing it. Opt-in: a device
    /// written for the plain pattern may take any unknown payload as "off".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_query: Option<String>,
    /// Per-relay timeout overriding the broker's `request_timeout_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Ask the technician before every switch of this relay.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub confirm: bool,
}

fn default_timeout_ms() -> u64 {
    DEFAULT_TIMEOUT_MS
}
fn default_on() -> String {
    "1".to_owned()
}
fn default_off() -> String {
    "0".to_owned()
}

impl RelayConfig {
    /// A relay with default payloads.
    pub fn new(id: &str, request_topic: &str) -> Self {
        RelayConfig {
            id: id.to_owned(),
            name: String::new(),
            group: String::new(),
            request_topic: request_topic.to_owned(),
            payload_on: default_on(),
            payload_off: default_off(),
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

/// Whether the broker connection uses TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `mqtt://`, plain TCP.
    Plain,
    /// `mqtts://`, TLS through rustls.
    Tls,
}

/// A parsed broker URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddress {
    /// Plain or TLS.
    pub scheme: Scheme,
    /// Host name or address.
    pub host: String,
    /// TCP port (1883 / 8883 when the URL names none).
    pub port: u16,
}

/// Parses `mqtt://host[:port]` or `mqtts://host[:port]`.
pub fn parse_broker_url(url: &str) -> Result<BrokerAddress, String> {
    let parsed = url::Url::parse(url.trim()).map_err(|e| {
        format!("broker url {url:?} is not a URL ({e}); write it like \"mqtt://127.0.0.1:1883\"")
    })?;
    let scheme = match parsed.scheme() {
        "mqtt" | "tcp" => Scheme::Plain,
        "mqtts" | "ssl" | "tls" => Scheme::Tls,
        other => {
            return Err(format!(
                "broker url {url:?} has scheme {other:?}; use mqtt:// or mqtts:// (TLS)"
            ));
        }
    };
    let host = parsed
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("broker url {url:?} names no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    if !(parsed.path().is_empty() || parsed.path() == "/") {
        return Err(format!(
            "broker url {url:?} has a path ({:?}); MQTT URLs are only scheme://host:port",
            parsed.path()
        ));
    }
    let port = parsed.port().unwrap_or(match scheme {
        Scheme::Plain => 1883,
        Scheme::Tls => 8883,
    });
    Ok(BrokerAddress { scheme, host, port })
}

/// Where in the configuration a problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// A key of `[broker]`.
    Broker(&'static str),
    /// A key of `[panel]`.
    Panel(&'static str),
    /// A key of the relay at this index of `relays`.
    Relay(usize, &'static str),
}

/// One broken rule, found by [`Config::validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Which key is wrong.
    pub place: Place,
    /// What is wrong and what to do, for the technician.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
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

/// Topics under this prefix are panels' response topics
/// (`relay-panel/<client-id>/response`): no request may go there, or a
/// panel could receive its own request and take it for an answer.
pub const RESERVED_PREFIX: &str = "relay-panel/";

fn is_reserved(topic: &str) -> bool {
    topic == "relay-panel" || topic.starts_with(RESERVED_PREFIX)
}

fn has_wildcard(topic: &str) -> bool {
    topic.contains(['+', '#'])
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
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let config = Config::parse(&text, path);
        drop(text);
        release_freed_memory();
        config
    }

    /// Parses and validates configuration text; `path` only labels errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let offset = e.span().map(|s| s.start).unwrap_or(0);
            let (line, column) = line_column(text, offset);
            ConfigError::Syntax {
                path: path.to_owned(),
                line,
                column,
                message: e.message().trim().to_owned(),
            }
        })?;
        let problems = config.validate();
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

    /// Every broken rule (empty when the configuration is usable). The
    /// settings window and the file loader share these rules.
    pub fn validate(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut problem = |place, message: String| problems.push(Problem { place, message });
        let broker = &self.broker;
        match parse_broker_url(&broker.url) {
            Ok(address) => {
                if address.scheme == Scheme::Plain
                    && (broker.ca_file.is_some() || broker.client_cert.is_some())
                {
                    problem(
                        Place::Broker("url"),
                        format!(
                            "broker url {:?} is plain mqtt:// but TLS files are set; use mqtts://",
                            broker.url
                        ),
                    );
                }
            }
            Err(message) => problem(Place::Broker("url"), message),
        }
        if broker.client_cert.is_some() != broker.client_key.is_some() {
            problem(
                Place::Broker("client_cert"),
                "client_cert and client_key go together: set both or neither".to_owned(),
            );
        }
        let sources = [
            broker.password.is_some(),
            broker.password_env.is_some(),
            broker.password_file.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() > 1 {
            problem(
                Place::Broker("password"),
                "set only one of password, password_env and password_file".to_owned(),
            );
        } else if sources.iter().any(|s| *s) && broker.username.is_none() {
            problem(
                Place::Broker("password"),
                "a password is set but username is not".to_owned(),
            );
        }
        if let Some(id) = &broker.client_id
            && (id.is_empty() || id.contains(['+', '#', '/']) || id.chars().any(char::is_control))
        {
            problem(
                Place::Broker("client_id"),
                format!(
                    "client_id {id:?} must be non-empty without '/', '+', '#' (it names this panel's response topic)"
                ),
            );
        }
        if !(1..=MAX_TIMEOUT_MS).contains(&broker.request_timeout_ms) {
            problem(
                Place::Broker("request_timeout_ms"),
                format!(
                    "request_timeout_ms = {} is out of range (1 to {MAX_TIMEOUT_MS})",
                    broker.request_timeout_ms
                ),
            );
        }

        let mut ids: HashMap<&str, usize> = HashMap::new();
        let mut topics: HashMap<&str, usize> = HashMap::new();
        for (index, relay) in self.relays.iter().enumerate() {
            let who = if relay.id.is_empty() {
                format!("relay #{}", index + 1)
            } else {
                format!("relay {:?}", relay.id)
            };
            if relay.id.trim().is_empty() {
                problem(Place::Relay(index, "id"), format!("{who}: id is empty"));
            } else if let Some(first) = ids.insert(&relay.id, index) {
                ids.insert(&self.relays[first].id, first);
                problem(
                    Place::Relay(index, "id"),
                    format!("{who}: duplicate id (relay #{} has it too)", first + 1),
                );
            }
            let topic = &relay.request_topic;
            if topic.is_empty() {
                problem(
                    Place::Relay(index, "request_topic"),
                    format!("{who}: request_topic is empty"),
                );
            } else if has_wildcard(topic) {
                problem(
                    Place::Relay(index, "request_topic"),
                    format!(
                        "{who}: request_topic {topic:?} contains a wildcard ('+' or '#'); a request goes to exactly one device"
                    ),
                );
            } else if topic.contains('\0') {
                problem(
                    Place::Relay(index, "request_topic"),
                    format!("{who}: request_topic contains a NUL character"),
                );
            } else if is_reserved(topic) {
                problem(
                    Place::Relay(index, "request_topic"),
                    format!(
                        "{who}: request_topic {topic:?} is under {RESERVED_PREFIX:?}, where panels receive their answers; \
                         a request there could be taken for a device's answer. Use the device's own topic"
                    ),
                );
            } else if let Some(first) = topics.insert(topic, index) {
                topics.insert(&self.relays[first].request_topic, first);
                problem(
                    Place::Relay(index, "request_topic"),
                    format!(
                        "{who}: request_topic {topic:?} is also used by relay {:?}; answers would be confused",
                        self.relays[first].id
                    ),
                );
            }
            if relay.payload_on.is_empty() || relay.payload_off.is_empty() {
                problem(
                    Place::Relay(index, "payload_on"),
                    format!("{who}: payload_on and payload_off must not be empty"),
                );
            } else if relay.payload_on == relay.payload_off {
                problem(
                    Place::Relay(index, "payload_off"),
                    format!(
                        "{who}: payload_on and payload_off are both {:?}; the answer could not tell on from off",
                        relay.payload_on
                    ),
                );
            }
            if let Some(query) = &relay.payload_query
                && (query.is_empty() || *query == relay.payload_on || *query == relay.payload_off)
            {
                problem(
                    Place::Relay(index, "payload_query"),
                    format!(
                        "{who}: payload_query {query:?} must be non-empty and differ from payload_on and payload_off"
                    ),
                );
            }
            if let Some(ms) = relay.timeout_ms
                && !(1..=MAX_TIMEOUT_MS).contains(&ms)
            {
                problem(
                    Place::Relay(index, "timeout_ms"),
                    format!("{who}: timeout_ms = {ms} is out of range (1 to {MAX_TIMEOUT_MS})"),
                );
            }
        }
        problems
    }

    /// A warning when this file holds a password and others may read it.
    pub fn permission_warning(&self, path: &Path) -> Option<String> {
        use std::os::unix::fs::PermissionsExt;
        self.broker.password.as_ref()?;
        let mode = std::fs::metadata(path).ok()?.permissions().mode();
        (mode & 0o077 != 0).then(|| {
            format!(
                "{} holds a broker password and other users can read it (mode {:o}); run `chmod 600 {}` or use password_env / password_file",
                path.display(),
                mode & 0o777,
                path.display()
            )
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

    /// Validates, then writes the configuration to `path` atomically
    /// (temporary file, fsync, rename), keeping the comments and layout of
    /// the existing file where keys survive.
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        let problems = self.validate();
        if !problems.is_empty() {
            let problems = problems.into_iter().map(|p| (0, 0, p)).collect();
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                problems,
            });
        }
        let existing = std::fs::read_to_string(path).unwrap_or_default();
        let text = self.render(&existing);
        write_atomically(path, text.as_bytes()).map_err(|source| ConfigError::Write {
            path: path.to_owned(),
            source,
        })
    }

    /// The configuration as TOML, merged into `existing` so its comments
    /// stay (unparsable `existing` text is replaced whole).
    pub fn render(&self, existing: &str) -> String {
        let fresh = toml::to_string(self)
            .ok()
            .and_then(|t| t.parse::<toml_edit::DocumentMut>().ok())
            .unwrap_or_default();
        let Ok(mut doc) = existing.parse::<toml_edit::DocumentMut>() else {
            return fresh.to_string();
        };
        merge_table(doc.as_table_mut(), fresh.as_table(), "broker");
        merge_table(doc.as_table_mut(), fresh.as_table(), "panel");
        if self.relays.is_empty() {
            doc.remove("relay");
            return doc.to_string();
        }
        let old: Vec<toml_edit::Table> = doc
            .get("relay")
            .and_then(|i| i.as_array_of_tables())
            .map(|a| a.iter().cloned().collect())
            .unwrap_or_default();
        let mut relays = toml_edit::ArrayOfTables::new();
        let fresh_relays = fresh.get("relay").and_then(|i| i.as_array_of_tables());
        for new in fresh_relays.into_iter().flat_map(|a| a.iter()) {
            let id = new.get("id").and_then(|v| v.as_str());
            let mut table = old
                .iter()
                .find(|t| t.get("id").and_then(|v| v.as_str()) == id)
                .cloned()
                .unwrap_or_default();
            sync_keys(&mut table, new);
            relays.push(table);
        }
        doc.insert("relay", toml_edit::Item::ArrayOfTables(relays));
        doc.to_string()
    }
}

/// Parsing a large file (10,000 relays: 1.3 MB) briefly needs ~25 MB; glibc
/// keeps freed memory in the process unless asked to return it.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free heap pages; it has no
    // preconditions and touches no live allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Makes `table` hold exactly `new`'s keys and values, keeping the
/// decoration (comments) of keys that stay.
fn sync_keys(table: &mut toml_edit::Table, new: &toml_edit::Table) {
    let gone: Vec<String> = table
        .iter()
        .map(|(k, _)| k.to_owned())
        .filter(|k| !new.contains_key(k))
        .collect();
    for key in gone {
        table.remove(&key);
    }
    for (key, item) in new.iter() {
        match (table.get_mut(key), item.as_value()) {
            (Some(toml_edit::Item::Value(old)), Some(value)) => {
                if old.to_string().trim() != value.to_string().trim() {
                    let decor = old.decor().clone();
                    *old = value.clone();
                    *old.decor_mut() = decor;
                }
            }
            _ => {
                table.insert(key, item.clone());
            }
        }
    }
}

fn merge_table(doc: &mut toml_edit::Table, fresh: &toml_edit::Table, name: &str) {
    let Some(new) = fresh.get(name).and_then(|i| i.as_table()) else {
        doc.remove(name);
        return;
    };
    match doc.get_mut(name).and_then(|i| i.as_table_mut()) {
        Some(old) => sync_keys(old, new),
        None => {
            doc.insert(name, toml_edit::Item::Table(new.clone()));
        }
    }
}

/// Replaces `path` with `contents` so that a crash at any moment leaves
/// either the old file or the new one, never a mix.
pub fn write_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config.toml".to_owned());
    let temp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&temp)?;
        if let Ok(meta) = std::fs::metadata(path) {
            // Keep the old file's permissions (a config with a password may be 0600).
            let _ = file.set_permissions(meta.permissions());
        }
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
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

/// Finds the text position of a [`Place`] in the original file.
struct SpanFinder {
    doc: Option<toml_edit::Document<String>>,
}

impl SpanFinder {
    fn new(text: &str) -> Self {
        SpanFinder {
            doc: toml_edit::Document::parse(text.to_owned()).ok(),
        }
    }

    fn offset(&self, place: &Place) -> usize {
        let Some(doc) = &self.doc else { return 0 };
        let root = doc.as_table();
        let (table, key) = match place {
            Place::Broker(key) => (root.get("broker").and_then(|i| i.as_table()), *key),
            Place::Panel(key) => (root.get("panel").and_then(|i| i.as_table()), *key),
            Place::Relay(index, key) => (
                root.get("relay")
                    .and_then(|i| i.as_array_of_tables())
                    .and_then(|a| a.get(*index)),
                *key,
            ),
        };
        let Some(table) = table else { return 0 };
        table
            .get_key_value(key)
            .and_then(|(k, _)| k.span())
            .or_else(|| table.span())
            .map_or(0, |s| s.start)
    }
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

    fn error_text(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    /// Each rule gives a message naming file, line, column and the relay.
    #[test]
    fn every_rule_names_file_line_and_relay() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "[broker]\nurl = \"mqtt://h\"\n[[relay]]\nid = \"a\"\nrequest_topic = \"t\"\ncolour = 1\n",
                "panel.toml:6:1",
                "unknown field `colour`",
            ),
            (
                "[broker]\nurl = \"mqtt://h\"\n[[relay]]\nid = \"a\"\nrequest_topic = \"t\"\n[[relay]]\nid = \"a\"\nrequest_topic = \"u\"\n",
                "panel.toml:7:1",
                "relay \"a\": duplicate id",
            ),
            (
                "[broker]\nurl = \"mqtt://h\"\n[[relay]]\nid = \"a\"\nrequest_topic = \"t\"\n[[relay]]\nid = \"b\"\nrequest_topic = \"t\"\n",
                "panel.toml:8:1",
                "relay \"b\": request_topic \"t\" is also used by relay \"a\"",
            ),
            (
                "[broker]\nurl = \"mqtt://h\"\n[[relay]]\nid = \"a\"\nrequest_topic = \"dev/+/x\"\n",
                "panel.toml:5:1",
                "wildcard",
            ),
            (
                "[broker]\nurl = \"mqtt://h\"\n[[relay]]\nid = \"a\"\nrequest_topic = \"dev/#\"\n",
                "panel.toml:5:1",
                "wildcard",
            ),
            (
                "[broker]\nurl = \"mqtt://h\"\n[[relay]]\nid = \"a\"\nrequest_topic = \"\"\n",
                "panel.toml:5:1",
                "request_topic is empty",
            ),
            (
                "[broker]\nurl = \"mqtt://h\"\n[[relay]]\nid = \"a\"\nrequest_topic = \"t\"\npayload_on = \"x\"\npayload_off = \"x\"\n",
                "panel.toml:7:1",
                "payload_on and payload_off are both \"x\"",
            ),
            (
                "[broker]\nurl = \"http://h\"\n",
                "panel.toml:2:1",
                "use mqtt:// or mqtts://",
            ),
            (
                "[broker]\nurl = \"not a url\"\n",
                "panel.toml:2:1",
                "is not a URL",
            ),
            (
                "[broker]\nurl = \"mqtt://h\"\n[[relay]]\nid = \"a\"\nrequest_topic = \"t\"\ntimeout_ms = \"fast\"\n",
                "panel.toml:6:14",
                "invalid type",
            ),
            (
                "[broker]\nurl = \"mqtt://h\"\n[[relay]]\nid = \"a\"\nrequest_topic = \"t\"\npayload_query = \"1\"\n",
                "panel.toml:6:1",
                "payload_query",
            ),
            ("[broker\n", "panel.toml:1:8", ""),
            (
                // The panel would receive its own request as an "answer".
                "[broker]\nurl = \"mqtt://h\"\nclient_id = \"desk\"\n[[relay]]\nid = \"a\"\nrequest_topic = \"relay-panel/desk/response\"\n",
                "panel.toml:6:1",
                "relay \"a\": request_topic \"relay-panel/desk/response\" is under \"relay-panel/\"",
            ),
            (
                "[broker]\nurl = \"mqtt://h\"\n[[relay]]\nid = \"a\"\nrequest_topic = \"relay-panel/other\"\n",
                "panel.toml:5:1",
                "where panels receive their answers",
            ),
            (
                "[broker]\nurl = \"mqtt://h\"\nclient_id = \"a/b\"\n",
                "panel.toml:3:1",
                "client_id",
            ),
        ];
        for (text, place, fragment) in cases {
            let message = error_text(text);
            assert!(
                message.starts_with(place) && message.contains(fragment),
                "for {text:?}: expected {place} and {fragment:?}, got {message:?}"
            );
        }
    }

    /// A missing file is reported with its path.
    #[test]
    fn missing_file_names_the_path() {
        let err = Config::load(Path::new("/nonexistent/relay.toml")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/relay.toml"), "{err}");
    }

    /// Broker URLs get default ports and TLS detection.
    #[test]
    fn broker_urls() {
        let a = parse_broker_url("mqtt://10.0.0.1").unwrap();
        assert_eq!(
            (a.scheme, a.host.as_str(), a.port),
            (Scheme::Plain, "10.0.0.1", 1883)
        );
        let a = parse_broker_url("mqtts://broker.example:9000").unwrap();
        assert_eq!(
            (a.scheme, a.host.as_str(), a.port),
            (Scheme::Tls, "broker.example", 9000)
        );
        assert_eq!(parse_broker_url("mqtts://b").unwrap().port, 8883);
        assert!(parse_broker_url("mqtt://h/path").is_err());
        assert!(parse_broker_url("mqtt://").is_err());
    }

    /// Saving keeps comments of the existing file and round-trips.
    #[test]
    fn save_keeps_comments_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let original = "# my panel\n[broker]\nurl = \"mqtt://127.0.0.1:1883\" # the lab broker\n\n# the pump\n[[relay]]\nid = \"a\" # keep me\nrequest_topic = \"dev/a\"\n";
        std::fs::write(&path, original).unwrap();
        let mut config = Config::load(&path).unwrap();
        config.relays[0].name = "Pump".into();
        config.relays.push(RelayConfig::new("b", "dev/b"));
        config.broker.request_timeout_ms = 1500;
        config.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("# my panel"), "{text}");
        assert!(text.contains("# the lab broker"), "{text}");
        assert!(text.contains("# keep me"), "{text}");
        assert!(text.contains("# the pump"), "{text}");
        assert_eq!(Config::load(&path).unwrap(), config);
        // Removing a relay removes its table.
        config.relays.remove(0);
        config.save(&path).unwrap();
        assert_eq!(Config::load(&path).unwrap(), config);
    }

    /// An invalid configuration is never written.
    #[test]
    fn save_refuses_invalid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let mut config = Config::new("mqtt://h");
        config.relays.push(RelayConfig::new("a", "t"));
        config.relays.push(RelayConfig::new("a", "u"));
        assert!(config.save(&path).is_err());
        assert!(!path.exists());
    }

    /// A password in a file others can read gets a warning; 0600 does not;
    /// the password itself never shows in Debug output.
    #[test]
    fn password_file_permissions_and_redaction() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let mut config = Config::new("mqtt://h");
        config.broker.username = Some("u".into());
        config.broker.password = Some("hunter2-secret".into());
        config.save(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let warning = config.permission_warning(&path).expect("warning for 0644");
        assert!(
            warning.contains("chmod 600") && !warning.contains("hunter2"),
            "{warning}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(config.permission_warning(&path), None);
        assert!(!format!("{config:?}").contains("hunter2"));
        // Only one password source.
        config.broker.password_env = Some("X".into());
        assert!(
            config
                .validate()
                .iter()
                .any(|p| p.message.contains("only one"))
        );
    }

    /// Readers never see a half-written file while it is replaced.
    #[test]
    fn atomic_write_never_shows_a_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let a = vec![b'a'; 1 << 20];
        let b = vec![b'b'; 1 << 20];
        write_atomically(&path, &a).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (path, stop) = (path.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut reads = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let text = std::fs::read(&path).unwrap();
                    assert_eq!(text.len(), 1 << 20);
                    assert!(text.iter().all(|c| *c == text[0]), "mixed content");
                    reads += 1;
                }
                reads
            })
        };
        for i in 0..50 {
            write_atomically(&path, if i % 2 == 0 { &b } else { &a }).unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary files left behind");
    }

    /// Saving into a directory that cannot be written is a clear error.
    #[test]
    fn unwritable_directory_is_a_clear_error() {
        let mut config = Config::new("mqtt://h");
        config.relays.push(RelayConfig::new("a", "t"));
        let err = config
            .save(Path::new("/proc/relay-panel/config.toml"))
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot save configuration /proc/relay-panel/config.toml"),
            "{err}"
        );
    }

    /// The example shipped to first-time users is valid.
    #[test]
    fn example_is_valid() {
        parse(EXAMPLE).unwrap();
    }
}
