//! What a configuration file held when the panel read or wrote it, to
//! notice edits made by another program (an editor, a deployment script)
//! while the panel runs, and never to overwrite one unseen.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;
use std::time::SystemTime;

/// A file's contents, summarised: its length and a hash of its bytes
/// (`None` when the file does not exist).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp(Option<(u64, u64)>);

impl FileStamp {
    /// The stamp of a file that does not exist.
    pub const MISSING: FileStamp = FileStamp(None);

    /// The stamp of `bytes` as a file's contents.
    pub fn of_bytes(bytes: &[u8]) -> FileStamp {
        let mut hasher = DefaultHasher::new();
        bytes.hash(&mut hasher);
        FileStamp(Some((bytes.len() as u64, hasher.finish())))
    }

    /// The stamp of the file at `path` now (of a missing file: one that
    /// differs from every existing file's).
    pub fn read(path: &Path) -> std::io::Result<FileStamp> {
        match std::fs::read(path) {
            Ok(bytes) => Ok(FileStamp::of_bytes(&bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FileStamp::MISSING),
            Err(e) => Err(e),
        }
    }
}

/// A cheap look at a file (modification time and length), taken often to
/// decide when to read it again for a [`FileStamp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileLook(Option<(SystemTime, u64)>);

impl FileLook {
    /// How the file at `path` looks now.
    pub fn take(path: &Path) -> FileLook {
        FileLook(
            std::fs::metadata(path)
                .ok()
                .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len())),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stamps tell contents apart, and a missing file from an empty one.
    #[test]
    fn stamps_follow_contents() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("panel.toml");
        let missing = FileStamp::read(&path).unwrap();
        std::fs::write(&path, "").unwrap();
        let empty = FileStamp::read(&path).unwrap();
        assert_ne!(missing, empty);
        std::fs::write(&path, "a = 1\n").unwrap();
        let one = FileStamp::read(&path).unwrap();
        assert_eq!(one, FileStamp::of_bytes(b"a = 1\n"));
        std::fs::write(&path, "a = 2\n").unwrap();
        assert_ne!(
            FileStamp::read(&path).unwrap(),
            one,
            "same length, other bytes"
        );
        assert_ne!(FileLook::take(&path), FileLook::take(&dir.path().join("x")));
    }
}
