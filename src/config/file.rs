//! Writing the configuration: comments kept, the file replaced atomically,
//! and a warning when a password sits in a file others can read.
//!
//! Saving merges the new values into the existing document with
//! `toml_edit`, so the technician's comments and layout survive wherever
//! their keys do; only a configuration that passes
//! [`Config::validate`] is ever written.

use std::path::{Path, PathBuf};

use super::{Config, ConfigError, DEFAULT_TIMEOUT_MS, Kind, RelayConfig};

impl Config {
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
    ///
    /// Only what the technician chose is written: a key absent from
    /// `existing` is added only when its value differs from the default the
    /// loader would fill in (a relay added in the settings window gets its
    /// id, request topic and whatever was changed), while a key the file
    /// already has is kept even when it holds the default. Saving an
    /// unchanged configuration gives back `existing` byte for byte.
    pub fn render(&self, existing: &str) -> String {
        let fresh = toml::to_string(self)
            .ok()
            .and_then(|t| t.parse::<toml_edit::DocumentMut>().ok())
            .unwrap_or_default();
        let mut doc = existing
            .parse::<toml_edit::DocumentMut>()
            .unwrap_or_default();
        merge_table(
            doc.as_table_mut(),
            fresh.as_table(),
            "broker",
            &broker_defaults(),
        );
        merge_table(doc.as_table_mut(), fresh.as_table(), "panel", &[]);
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
        for (new, relay) in fresh_relays
            .into_iter()
            .flat_map(|a| a.iter())
            .zip(&self.relays)
        {
            let id = new.get("id").and_then(|v| v.as_str());
            let defaults = relay_defaults(relay.kind);
            let mut table = old
                .iter()
                .find(|t| t.get("id").and_then(|v| v.as_str()) == id)
                .cloned()
                .unwrap_or_default();
            sync_keys(&mut table, new, &defaults);
            relays.push(table);
        }
        doc.insert("relay", toml_edit::Item::ArrayOfTables(relays));
        doc.to_string()
    }
}

/// A key the loader fills in when the file leaves it out, and the value it
/// fills in.
type KeyDefault = (&'static str, toml_edit::Value);

/// `[broker]` keys with a default (the `Option`s default to absent, which
/// serde already leaves out).
fn broker_defaults() -> [KeyDefault; 1] {
    let timeout = i64::try_from(DEFAULT_TIMEOUT_MS).unwrap_or(i64::MAX);
    [("request_timeout_ms", timeout.into())]
}

/// `[[relay]]` keys with a default for a relay of `kind`, as
/// [`RelayConfig::of_kind`] has them (the payloads follow the kind). Empty
/// names, `kind = "mqtt5"` and `confirm = false` are listed too: serde
/// leaves them out, and a file that spells them out keeps them. Keys of
/// other kinds are not listed, so a file that spells one out loses it
/// when the relay changes kind.
fn relay_defaults(kind: Kind) -> Vec<KeyDefault> {
    let relay = RelayConfig::of_kind("", kind);
    [
        ("name", relay.name.as_str().into()),
        ("group", relay.group.as_str().into()),
        ("kind", Kind::default().as_str().into()),
        ("switch", i64::from(relay.switch).into()),
        ("payload_on", relay.payload_on.as_str().into()),
        ("payload_off", relay.payload_off.as_str().into()),
        ("confirm", relay.confirm.into()),
    ]
    .into_iter()
    .filter(|(key, _)| kind.has_key(key))
    .collect()
}

/// Makes `table` hold `new`'s values, keeping the decoration (comments) and
/// spelling of keys that stay, and writing no default the file did not
/// already spell out. A key of `defaults` that `new` lacks (serde leaves out
/// empty names and `false`) and `table` has is set to its default; any
/// other key `new` lacks is gone (an option unset).
fn sync_keys(table: &mut toml_edit::Table, new: &toml_edit::Table, defaults: &[KeyDefault]) {
    let default_of = |key: &str| defaults.iter().find(|(k, _)| *k == key).map(|(_, v)| v);
    let gone: Vec<String> = table
        .iter()
        .map(|(k, _)| k.to_owned())
        .filter(|k| !new.contains_key(k) && default_of(k).is_none())
        .collect();
    for key in gone {
        table.remove(&key);
    }
    for (key, default) in defaults {
        if !new.contains_key(key) && table.contains_key(key) {
            set_value(table, key, default);
        }
    }
    for (key, item) in new.iter() {
        let value = item.as_value();
        let is_default = default_of(key)
            .zip(value)
            .is_some_and(|(default, value)| same_value(default, value));
        if is_default && !table.contains_key(key) {
            continue;
        }
        match value {
            Some(value) => set_value(table, key, value),
            None => {
                table.insert(key, item.clone());
            }
        }
    }
}

/// Sets `key` to `value`, leaving an equal value as written (`'1'` stays
/// `'1'`, `3_000` stays `3_000`) and keeping the comments around a changed one.
fn set_value(table: &mut toml_edit::Table, key: &str, value: &toml_edit::Value) {
    match table.get_mut(key) {
        Some(toml_edit::Item::Value(old)) => {
            if !same_value(old, value) {
                let decor = old.decor().clone();
                *old = value.clone();
                *old.decor_mut() = decor;
            }
        }
        _ => {
            table.insert(key, toml_edit::Item::Value(value.clone()));
        }
    }
}

/// Whether two values mean the same, however they are spelled.
fn same_value(a: &toml_edit::Value, b: &toml_edit::Value) -> bool {
    use toml_edit::Value;
    match (a, b) {
        (Value::String(a), Value::String(b)) => a.value() == b.value(),
        (Value::Integer(a), Value::Integer(b)) => a.value() == b.value(),
        (Value::Float(a), Value::Float(b)) => a.value() == b.value(),
        (Value::Boolean(a), Value::Boolean(b)) => a.value() == b.value(),
        _ => a.to_string().trim() == b.to_string().trim(),
    }
}

/// Merges the table `name` of `fresh` into `doc`'s. A table that holds only
/// defaults (an empty `[panel]`) is not added to a file that lacks it.
fn merge_table(
    doc: &mut toml_edit::Table,
    fresh: &toml_edit::Table,
    name: &str,
    defaults: &[KeyDefault],
) {
    let Some(new) = fresh.get(name).and_then(|i| i.as_table()) else {
        doc.remove(name);
        return;
    };
    match doc.get_mut(name).and_then(|i| i.as_table_mut()) {
        Some(old) => sync_keys(old, new, defaults),
        None => {
            let mut table = toml_edit::Table::new();
            sync_keys(&mut table, new, defaults);
            if !table.is_empty() {
                doc.insert(name, toml_edit::Item::Table(table));
            }
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

#[cfg(test)]
mod tests {
    use super::*;

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

    /// A minimal file, with comments, odd spellings and a default spelled
    /// out.
    const MINIMAL: &str = "# lab panel\n[broker]\nurl = \"mqtt://127.0.0.1:1883\" # lab\n\n[[relay]]\nid = \"a\"\nrequest_topic = 'dev/a'\npayload_on = \"1\" # spelled out\ntimeout_ms = 1_500\n\n[[relay]]\nid = \"b\"\nrequest_topic = \"dev/b\"\n";

    /// Saving an unchanged configuration gives back the file byte for
    /// byte: no default is added (no `payload_on = "1"` in every relay, no
    /// `request_timeout_ms = 3000`, no empty `[panel]`), nothing re-spelled.
    #[test]
    fn unchanged_save_is_byte_identical() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, MINIMAL).unwrap();
        let config = Config::load(&path).unwrap();
        config.save(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), MINIMAL);
    }

    /// A relay added (as the settings window adds one) gets its id, name,
    /// request topic and the values that differ from the defaults: nothing
    /// else is written, and the rest of the file is untouched.
    #[test]
    fn added_relay_gets_only_non_default_keys() {
        let mut config = Config::parse(MINIMAL, Path::new("c.toml")).unwrap();
        let mut plain = RelayConfig::new("c", "dev/c");
        plain.name = "Pump".into();
        let mut custom = RelayConfig::new("d", "dev/d");
        custom.payload_on = "ON".into();
        custom.confirm = true;
        config.relays.push(plain);
        config.relays.push(custom);
        let text = config.render(MINIMAL);
        let added = "\n[[relay]]\nid = \"c\"\nname = \"Pump\"\nrequest_topic = \"dev/c\"\n\
                     \n[[relay]]\nid = \"d\"\nrequest_topic = \"dev/d\"\npayload_on = \"ON\"\nconfirm = true\n";
        assert_eq!(text, format!("{MINIMAL}{added}"));
        assert_eq!(Config::parse(&text, Path::new("c.toml")).unwrap(), config);
    }

    /// A new file holds only what differs from the defaults; the keys the
    /// schema always serialises but has a default for are all known to
    /// `render` (a field added with a default and not listed fails here).
    #[test]
    fn new_file_holds_only_non_defaults() {
        let mut config = Config::new("mqtt://h");
        config.relays.push(RelayConfig::new("a", "dev/a"));
        assert_eq!(
            config.render(""),
            "[broker]\nurl = \"mqtt://h\"\n\n[[relay]]\nid = \"a\"\nrequest_topic = \"dev/a\"\n"
        );
    }

    /// A key the file spells out keeps being written when it is set back
    /// to its default, with its comment; an unset option is removed.
    #[test]
    fn spelled_out_key_stays_when_set_to_default() {
        let original = "[broker]\nurl = \"mqtt://h\"\nrequest_timeout_ms = 1500 # slow site\n\n[[relay]]\nid = \"a\"\nrequest_topic = \"dev/a\"\npayload_on = \"ON\"\npayload_query = \"?\"\nconfirm = true # boiler\n";
        let mut config = Config::parse(original, Path::new("c.toml")).unwrap();
        config.broker.request_timeout_ms = DEFAULT_TIMEOUT_MS;
        config.relays[0].payload_on = "1".into();
        config.relays[0].payload_query = None;
        config.relays[0].confirm = false;
        assert_eq!(
            config.render(original),
            "[broker]\nurl = \"mqtt://h\"\nrequest_timeout_ms = 3000 # slow site\n\n[[relay]]\nid = \"a\"\nrequest_topic = \"dev/a\"\npayload_on = \"1\"\nconfirm = false # boiler\n"
        );
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
}
