//! Default locations of the configuration file and the data directory.

use std::path::PathBuf;

/// Environment variable that overrides the default configuration path.
pub const CONFIG_ENV: &str = "RELAY_PANEL_CONFIG";
/// Environment variable that overrides the default data directory (store).
pub const DATA_DIR_ENV: &str = "RELAY_PANEL_DATA_DIR";

fn project_dirs() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("", "", "relay-panel")
}

/// The configuration file to use: `explicit` (from `--config`), else
/// `$RELAY_PANEL_CONFIG`, else `config.toml` in the platform's config dir.
pub fn config_path(explicit: Option<PathBuf>) -> PathBuf {
    if let Some(path) = explicit {
        return path;
    }
    if let Some(path) = std::env::var_os(CONFIG_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    project_dirs()
        .map(|d| d.config_dir().join("config.toml"))
        .unwrap_or_else(|| PathBuf::from("relay-panel.toml"))
}

/// The directory holding the store: `explicit` (from `--data-dir`), else
/// `$RELAY_PANEL_DATA_DIR`, else the platform's data dir.
pub fn data_dir(explicit: Option<PathBuf>) -> PathBuf {
    if let Some(path) = explicit {
        return path;
    }
    if let Some(path) = std::env::var_os(DATA_DIR_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    project_dirs()
        .map(|d| d.data_dir().to_path_buf())
        .unwrap_or_else(|| PathBuf::from("relay-panel-data"))
}

/// The user name written into requests and the audit log when the
/// configuration names no operator.
pub fn os_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".to_owned())
}
