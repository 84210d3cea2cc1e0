//! Background jobs: the file and network work the UI thread must not do
//! (saving the configuration, exporting the audit log as CSV, loading the
//! configuration, starting the demo), and the CSV writer.
//!
//! A job runs off the UI thread, sends its [`Job`] result, then wakes the
//! UI with `request_repaint`; the panel applies the result on the next
//! frame. Every running job holds a clone of the shutdown-complete sender,
//! so that `main` waits for a save in progress before the process exits.

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use crate::config::{self, Config, ConfigError, FileStamp, Problem};
use crate::store::AuditEntry;

use super::source::Source;
use super::watch::{FileWatch, Known};

/// The result of a background job.
pub(super) enum Job {
    /// The configuration was saved (or, for the demo, checked): the new
    /// configuration and the file it went to (`None` for the demo).
    Saved(Result<(Config, Option<PathBuf>), JobError>),
    /// The audit log was written to this CSV file.
    Exported(Result<PathBuf, JobError>),
    /// The configuration was (re)read: where it stands now, and the
    /// configuration (with the stamp of what was parsed) when it loaded.
    Loaded(Source, Option<(Config, FileStamp)>),
    /// The configuration file's contents changed on disk (seen by its
    /// [`FileWatch`]).
    FileChanged(PathBuf),
    /// The changed file was read again: the configuration and the stamp
    /// of what was read, or why it cannot be used.
    Changed(PathBuf, Result<(Config, FileStamp), String>),
    /// The demo broker and devices are running.
    #[cfg(feature = "demo")]
    DemoStarted(Box<Result<crate::demo::Demo, JobError>>),
}

/// Why a background job failed, for the notice line.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The configuration file could not be written (the message names it).
    #[error(transparent)]
    Save(#[from] ConfigError),
    /// The edited demo configuration breaks rules (the demo writes no
    /// file, so nothing else would check them): one rule per line.
    #[error("{}", problem_lines(.0))]
    Invalid(Vec<Problem>),
    /// The file changed on disk since Settings opened: saving would
    /// overwrite a change the window never showed.
    #[error(
        "{} was changed by another program after Settings opened; nothing was saved. \
         Close Settings and open it again to edit the file's new version.",
        .0.display()
    )]
    ChangedOnDisk(PathBuf),
    /// The file could not be read to check it before saving.
    #[error("cannot read {} before saving: {source}", .path.display())]
    Check {
        /// The configuration file.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The CSV file could not be written.
    #[error("Export failed: {0}")]
    Export(#[from] csv::Error),
    /// The embedded broker or the simulated devices did not start.
    #[error("Could not start the demo: {0:#}")]
    Demo(anyhow::Error),
}

fn problem_lines(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| p.message.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs jobs off the UI thread and hands their results back to the panel.
pub(super) struct Jobs {
    /// Cloned into every job to send its result.
    results_tx: mpsc::Sender<Job>,
    /// Results waiting for the panel (drained every frame).
    results_rx: mpsc::Receiver<Job>,
    /// Woken once a result is waiting.
    ctx: egui::Context,
    /// Cloned into every job; `main` waits until all clones are dropped.
    shutdown_complete: tokio::sync::mpsc::Sender<()>,
}

impl Jobs {
    /// Jobs whose results wake `ctx`; each holds a clone of
    /// `shutdown_complete` while it runs.
    pub fn new(ctx: egui::Context, shutdown_complete: tokio::sync::mpsc::Sender<()>) -> Self {
        let (results_tx, results_rx) = mpsc::channel();
        Jobs {
            results_tx,
            results_rx,
            ctx,
            shutdown_complete,
        }
    }

    /// Runs `work` (file I/O) on a thread of its own.
    pub fn run(&self, work: impl FnOnce() -> Job + Send + 'static) {
        let finish = self.finisher();
        std::thread::spawn(move || finish(work()));
    }

    /// Runs `work` on `runtime`'s blocking pool, inside the runtime (it
    /// may spawn tasks, and may wait for a socket).
    #[cfg(feature = "demo")]
    pub fn run_on_runtime(
        &self,
        runtime: &tokio::runtime::Handle,
        work: impl FnOnce() -> Job + Send + 'static,
    ) {
        let finish = self.finisher();
        let inside = runtime.clone();
        runtime.spawn_blocking(move || {
            let _guard = inside.enter();
            finish(work());
        });
    }

    /// Watches the configuration file at `path`: a change on disk comes
    /// back as [`Job::FileChanged`].
    pub fn watch(&self, path: PathBuf, initial: Option<FileStamp>) -> FileWatch {
        let results_tx = self.results_tx.clone();
        let ctx = self.ctx.clone();
        let changed_path = path.clone();
        FileWatch::start(path, initial, move |_| {
            let sent = results_tx
                .send(Job::FileChanged(changed_path.clone()))
                .is_ok();
            ctx.request_repaint();
            sent
        })
    }

    /// A finished job, if one is waiting.
    pub fn try_recv(&self) -> Option<Job> {
        self.results_rx.try_recv().ok()
    }

    /// Sends a result and wakes the UI; holds a shutdown-complete sender
    /// until then.
    fn finisher(&self) -> impl FnOnce(Job) + Send + 'static {
        let results_tx = self.results_tx.clone();
        let ctx = self.ctx.clone();
        let shutdown_complete = self.shutdown_complete.clone();
        move |job| {
            let _ = results_tx.send(job);
            ctx.request_repaint();
            drop(shutdown_complete);
        }
    }
}

/// Where a save goes and what the file must still hold for it.
pub(super) struct SaveTo {
    /// The configuration file.
    pub path: PathBuf,
    /// Its contents when Settings opened (`None`: not known, not checked).
    pub expected: Option<FileStamp>,
    /// Updated to what was written, so the watch does not take the
    /// panel's own save for somebody else's edit.
    pub known: Option<Known>,
}

/// Saves `config` to a file — refused when the file no longer holds what
/// Settings showed — or for the demo (`None`) only checks it.
pub(super) fn save(config: Config, to: Option<SaveTo>) -> Job {
    let path = to.as_ref().map(|to| to.path.clone());
    let result = match to {
        Some(to) => save_checked(&config, &to),
        None => {
            let problems = config.validate();
            if problems.is_empty() {
                Ok(())
            } else {
                Err(JobError::Invalid(problems))
            }
        }
    };
    Job::Saved(result.map(|_| (config, path)))
}

fn save_checked(config: &Config, to: &SaveTo) -> Result<(), JobError> {
    // Read once: checked against what Settings showed, and the text the
    // new contents are rendered into.
    let existing = match std::fs::read(&to.path) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(JobError::Check {
                path: to.path.clone(),
                source,
            });
        }
    };
    let now = existing
        .as_deref()
        .map_or(FileStamp::MISSING, FileStamp::of_bytes);
    if to.expected.is_some_and(|expected| expected != now) {
        return Err(JobError::ChangedOnDisk(to.path.clone()));
    }
    // Known before written: the watch must never see the new contents as
    // somebody else's (`save` renders the same text from the same file).
    // (as `save` reads it: text that is not UTF-8 counts as empty)
    let existing = existing
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or_default();
    let written = FileStamp::of_bytes(config.render(&existing).as_bytes());
    let before = to.known.as_ref().map(|known| {
        known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(written)
    });
    let saved = config.save(&to.path);
    if saved.is_err()
        && let (Some(known), Some(before)) = (&to.known, before)
    {
        *known.lock().unwrap_or_else(|e| e.into_inner()) = before;
    }
    Ok(saved?)
}

/// Reads the configuration file again after it changed on disk.
pub(super) fn reload_changed(path: PathBuf) -> Job {
    let result = Config::load_stamped(&path).map_err(|e| e.to_string());
    Job::Changed(path, result)
}

/// Reads the configuration file again.
pub(super) fn reload(path: PathBuf) -> Job {
    match Config::load_stamped(&path) {
        Ok(loaded) => Job::Loaded(Source::File(path), Some(loaded)),
        Err(ConfigError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Job::Loaded(Source::Missing(path), None)
        }
        Err(e) => Job::Loaded(Source::Broken(path, e.to_string()), None),
    }
}

/// Writes the example configuration to `path` and loads it.
pub(super) fn create_example(path: PathBuf) -> Job {
    let result = config::write_atomically(&path, config::EXAMPLE.as_bytes())
        .map_err(|e| e.to_string())
        .and_then(|_| Config::load_stamped(&path).map_err(|e| e.to_string()));
    match result {
        Ok(loaded) => Job::Loaded(Source::File(path), Some(loaded)),
        Err(e) => Job::Loaded(Source::Broken(path, e), None),
    }
}

/// Writes `entries` to a new CSV file in the documents folder (else
/// `fallback_dir`, else the temporary directory).
pub(super) fn export_csv(entries: Vec<AuditEntry>, fallback_dir: Option<PathBuf>) -> Job {
    // Finding the documents folder reads ~/.config/user-dirs.dirs: off the
    // UI thread too.
    let dir = directories::UserDirs::new()
        .and_then(|d| d.document_dir().map(|p| p.to_path_buf()))
        .or(fallback_dir)
        .unwrap_or_else(std::env::temp_dir);
    let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
    let path = dir.join(format!("relay-panel-audit-{stamp}.csv"));
    Job::Exported(
        write_csv(&path, &entries)
            .map(|_| path)
            .map_err(JobError::from),
    )
}

/// Starts the embedded broker and the simulated devices (binding the
/// broker waits for its socket: run it with [`Jobs::run_on_runtime`]).
#[cfg(feature = "demo")]
pub(super) fn start_demo() -> Job {
    Job::DemoStarted(Box::new(crate::demo::start().map_err(JobError::Demo)))
}

/// Writes audit entries (newest first) as CSV.
pub fn write_csv(path: &Path, entries: &[AuditEntry]) -> Result<(), csv::Error> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut out = csv::Writer::from_path(path)?;
    out.write_record([
        "time", "relay", "action", "outcome", "evidence", "state", "rtt_ms", "detail", "operator",
    ])?;
    for e in entries {
        out.write_record([
            crate::relay::format_time(e.at),
            e.relay_id.clone(),
            e.action.as_str().to_owned(),
            e.outcome.code().to_owned(),
            e.evidence
                .map(|ev| ev.code().to_owned())
                .unwrap_or_default(),
            e.state.map(|s| s.as_str().to_owned()).unwrap_or_default(),
            e.rtt
                .map(|d| format!("{:.3}", d.as_secs_f64() * 1000.0))
                .unwrap_or_default(),
            e.detail.clone().unwrap_or_default(),
            e.operator.clone(),
        ])?;
    }
    out.flush()?;
    Ok(())
}
