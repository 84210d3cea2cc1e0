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

use crate::config::{self, Config, ConfigError, Problem};
use crate::store::AuditEntry;

use super::source::Source;

/// The result of a background job.
pub(super) enum Job {
    /// The configuration was saved (or, for the demo, checked): the new
    /// configuration and the file it went to (`None` for the demo).
    Saved(Result<(Config, Option<PathBuf>), JobError>),
    /// The audit log was written to this CSV file.
    Exported(Result<PathBuf, JobError>),
    /// The configuration was (re)read: where it stands now, and the
    /// configuration when it loaded.
    Loaded(Source, Option<Config>),
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

/// Saves `config` to `path`, or for the demo (`None`) only checks it.
pub(super) fn save(config: Config, path: Option<PathBuf>) -> Job {
    let result = match &path {
        Some(p) => config.save(p).map_err(JobError::from),
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

/// Reads the configuration file again.
pub(super) fn reload(path: PathBuf) -> Job {
    match Config::load(&path) {
        Ok(config) => Job::Loaded(Source::File(path), Some(config)),
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
        .and_then(|_| Config::load(&path).map_err(|e| e.to_string()));
    match result {
        Ok(config) => Job::Loaded(Source::File(path), Some(config)),
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
        "time", "relay", "action", "outcome", "state", "rtt_ms", "detail", "operator",
    ])?;
    for e in entries {
        out.write_record([
            crate::relay::format_time(e.at),
            e.relay_id.clone(),
            e.action.as_str().to_owned(),
            e.outcome.code().to_owned(),
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
