//! Where the panel's configuration came from: a file, the demo, a file not
//! written yet (the first-run screen) or a broken file.

use std::path::PathBuf;

/// Where the configuration came from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A file that loaded (saved back to it).
    File(PathBuf),
    /// The built-in demo (nothing saved).
    Demo,
    /// No file yet at this path: the first-run screen.
    Missing(PathBuf),
    /// The file is broken: the error, with file:line:col.
    Broken(PathBuf, String),
}

impl Source {
    /// The configuration file, unless this is the demo.
    pub fn config_file(&self) -> Option<&PathBuf> {
        match self {
            Source::File(p) | Source::Missing(p) | Source::Broken(p, _) => Some(p),
            Source::Demo => None,
        }
    }

    /// Whether there are relays to show (otherwise the first-run screen).
    pub fn has_relays(&self) -> bool {
        matches!(self, Source::File(_) | Source::Demo)
    }
}
