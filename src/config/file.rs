//! Writing the configuration: comments kept, the file replaced atomically,
//! and a warning when a password sits in a file others can read.
//!
//! Saving merges the new values into the existing document with
//! `toml_edit`, so the technician's comments and layout survive wherever
//! their keys do; only a configuration that passes
//! [`Config::validate`] is ever written.

use std::path::{Path, PathBuf};

use super::{Config, ConfigError};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RelayConfig;

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
}
