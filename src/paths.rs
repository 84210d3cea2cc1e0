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
/// configuration names no operator: `$USER`, else `$LOGNAME` (`$USERNAME`
/// on Windows), else the OS account of the process (its passwd entry on
/// Unix), which a service or an `env -i` start still has; "unknown" only
/// when even that cannot be read.
pub fn os_user() -> String {
    user_name(|name| std::env::var(name).ok(), || whoami::username().ok())
}

/// [`os_user`] with its sources passed in, so tests need not change the
/// process environment: `var` reads an environment variable, `account`
/// asks the OS.
fn user_name(
    var: impl Fn(&str) -> Option<String>,
    account: impl FnOnce() -> Option<String>,
) -> String {
    ["USER", "LOGNAME", "USERNAME"]
        .into_iter()
        .filter_map(&var)
        .chain(std::iter::once_with(account).flatten())
        .map(|name| name.trim().to_owned())
        .find(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The environment wins in its order; an empty variable counts as
    /// unset; with none set, the OS account; "unknown" only without one.
    #[test]
    fn user_name_sources_in_order() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let account = || Some("svc-relay".to_owned());
        let both = &[("USER", "ana"), ("LOGNAME", "bo")];
        assert_eq!(user_name(env(both), account), "ana");
        assert_eq!(
            user_name(env(&[("USER", ""), ("LOGNAME", "bo")]), account),
            "bo"
        );
        assert_eq!(user_name(env(&[]), account), "svc-relay");
        assert_eq!(user_name(env(&[]), || None), "unknown");
    }

    /// Set in the child process of [`os_user_without_environment`].
    const CHILD: &str = "RELAY_PANEL_OS_USER_CHILD";

    /// With `$USER`, `$LOGNAME` and `$USERNAME` removed (a service, an
    /// `env -i` start) the operator is still the OS account, as `id -un`
    /// names it. The environment is changed only in a child process (this
    /// test binary run again on this one test), never in this one.
    #[test]
    fn os_user_without_environment() {
        if std::env::var_os(CHILD).is_some() {
            println!("os_user={}", os_user());
            return;
        }
        let expected = match std::process::Command::new("id").arg("-un").output() {
            Ok(output) if output.status.success() => output,
            _ => {
                eprintln!("skipped: `id -un` is not available");
                return;
            }
        };
        let expected = String::from_utf8_lossy(&expected.stdout).trim().to_owned();
        let child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "paths::tests::os_user_without_environment",
                "--nocapture",
            ])
            .env(CHILD, "1")
            .env_remove("USER")
            .env_remove("LOGNAME")
            .env_remove("USERNAME")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&child.stdout);
        assert!(child.status.success(), "{stdout}");
        assert!(
            stdout.lines().any(|l| l == format!("os_user={expected}")),
            "expected os_user={expected} in:\n{stdout}"
        );
    }
}
