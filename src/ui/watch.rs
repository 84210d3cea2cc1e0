//! Noticing that the configuration file changed on disk while the panel
//! runs (an editor, a deployment script), so that the panel reloads it and
//! Settings never overwrites a change it did not show.
//!
//! A thread looks at the file's modification time and length once a
//! second (a `stat`: no repaint, nothing read) and reads it only when
//! those change; it reports contents that differ from the ones the panel
//! knows. Polling, rather than inotify, sees every way a file is replaced
//! (editors that write a new file and rename it, network file systems).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::{FileLook, FileStamp};

/// How often the file is looked at.
pub const LOOK_EVERY: Duration = Duration::from_secs(1);

/// The contents the panel knows the file to hold (`None` until first
/// read), shared by the watching thread, the panel and its save jobs.
pub type Known = Arc<Mutex<Option<FileStamp>>>;

/// A running watch on one file; stops when dropped.
pub struct FileWatch {
    /// The file watched.
    pub path: PathBuf,
    /// What the panel knows it holds.
    pub known: Known,
    /// Tells the thread to stop.
    stop: Arc<AtomicBool>,
}

impl FileWatch {
    /// Watches `path`; `changed` is called (from the watching thread) with
    /// the new stamp whenever the contents differ from the known ones —
    /// once per new contents; it returns false once nobody listens. The
    /// known contents start as `initial` (what was parsed), else as the
    /// first read.
    pub fn start(
        path: PathBuf,
        initial: Option<FileStamp>,
        changed: impl Fn(FileStamp) -> bool + Send + 'static,
    ) -> FileWatch {
        let known: Known = Arc::new(Mutex::new(initial));
        let stop = Arc::new(AtomicBool::new(false));
        let watch = FileWatch {
            path: path.clone(),
            known: known.clone(),
            stop: stop.clone(),
        };
        let spawned = std::thread::Builder::new()
            .name("config-watch".into())
            .spawn(move || {
                let mut look = None;
                let mut reported = None;
                while !stop.load(Ordering::Relaxed) {
                    let now = FileLook::take(&path);
                    if look != Some(now) {
                        look = Some(now);
                        if let Ok(stamp) = FileStamp::read(&path) {
                            let mut known = known.lock().unwrap_or_else(|e| e.into_inner());
                            match *known {
                                None => *known = Some(stamp),
                                Some(k) if k != stamp && reported != Some(stamp) => {
                                    drop(known);
                                    reported = Some(stamp);
                                    // The panel is gone: nothing left to tell.
                                    if !changed(stamp) {
                                        return;
                                    }
                                }
                                Some(_) => {}
                            }
                        }
                    }
                    std::thread::sleep(LOOK_EVERY);
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot watch {}: {e}", watch.path.display());
        }
        watch
    }

    /// What the panel knows the file holds.
    pub fn known(&self) -> Option<FileStamp> {
        *self.known.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for FileWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
