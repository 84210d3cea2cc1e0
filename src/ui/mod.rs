//! The panel's views. [`Panel`] holds the state; each view is a function in
//! its own file that draws from the [`Model`] and returns an [`Action`],
//! which the panel applies after drawing. The UI thread never blocks: the
//! engine runs on tokio, file writes on background threads.

pub mod activity;
pub mod detail;
pub mod dialogs;
pub mod first_run;
mod model;
pub mod relay_list;
pub mod settings;
pub mod top_bar;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

pub use model::{AUDIT_KEPT, Group, GroupRun, Model, Row};

use crate::config::Config;
use crate::engine::{self, EngineHandle, EngineOptions, Events};
use crate::protocol;

/// Window title.
pub const TITLE: &str = "Relay Panel";

/// UI preferences remembered between runs (`#[serde(default)]`: adding a
/// field never resets the others).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Prefs {
    /// Whether the activity panel is shown.
    pub show_activity: bool,
    /// Dark theme (light when false).
    pub dark: bool,
    /// Groups the technician folded away.
    pub collapsed: BTreeSet<String>,
}

impl Default for Prefs {
    fn default() -> Self {
        Prefs {
            show_activity: true,
            dark: true,
            collapsed: BTreeSet::new(),
        }
    }
}

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

/// Something the technician asked for, applied after drawing.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub enum Action {
    /// Switch or query a relay (asks first for `confirm = true` relays).
    Switch {
        /// Index into `config.relays`.
        relay: usize,
        /// What to ask.
        action: protocol::Action,
    },
    /// "All on" / "All off" for a group (asks first).
    GroupSwitch {
        /// Index into `model.groups`.
        group: usize,
        /// On or off.
        action: protocol::Action,
    },
    /// The open confirmation dialog was accepted.
    Confirm,
    /// The open confirmation dialog was cancelled.
    Cancel,
    /// Fold or unfold a group.
    ToggleGroup(String),
    /// Query every relay that has a query payload.
    RefreshAll,
    /// Open a relay's detail window.
    ShowDetail(usize),
    /// Close the detail window.
    CloseDetail,
    /// Open the settings window.
    OpenSettings,
    /// Close the settings window without saving.
    CloseSettings,
    /// Save (or, in the demo, apply) a new configuration.
    SaveSettings(Box<Config>),
    /// Start the built-in demo.
    OpenDemo,
    /// Write the example configuration to the missing file and load it.
    CreateExample,
    /// Read the configuration file again.
    Reload,
    /// Start the engine again after it failed (wrong password fixed on
    /// the broker, an internal error).
    Retry,
    /// Write the audit log to a CSV file.
    ExportCsv,
    /// Show or hide the activity panel.
    ToggleActivity,
    /// Switch between dark and light.
    ToggleTheme,
    /// Dismiss the warnings.
    DismissWarnings,
    /// Dismiss a group action's summary.
    DismissGroupRun,
    /// Dismiss the notice line.
    DismissNotice,
}

/// A question the technician must answer before something switches.
#[derive(Debug, Clone, PartialEq)]
pub enum Confirmation {
    /// One relay with `confirm = true`.
    Relay {
        /// Index into `config.relays`.
        relay: usize,
        /// On or off.
        action: protocol::Action,
    },
    /// A whole group.
    Group {
        /// Index into `model.groups`.
        group: usize,
        /// On or off.
        action: protocol::Action,
    },
}

/// Results of background work (file writes, demo start).
enum Job {
    Saved(Result<(Config, Option<PathBuf>), String>),
    Exported(Result<PathBuf, String>),
    Loaded(Source, Option<Config>),
    #[cfg(feature = "demo")]
    DemoStarted(Box<Result<crate::demo::Demo, String>>),
}

/// A running engine and its events.
struct EngineLink {
    handle: EngineHandle,
    events: Events,
}

/// Cached relay-list rows (recomputed when the filter, the folded groups
/// or the configuration change — not every frame).
#[derive(Default)]
struct RowCache {
    key: Option<(String, BTreeSet<String>, u64)>,
    rows: Vec<Row>,
}

/// What the panel needs from its surroundings.
pub struct PanelOptions {
    /// Where the configuration comes from (a loaded config goes with it).
    pub source: Source,
    /// The loaded configuration for `Source::File`.
    pub config: Option<Config>,
    /// Directory of the store; `None` keeps nothing.
    pub data_dir: Option<PathBuf>,
    /// The runtime engines and background work run on.
    pub runtime: tokio::runtime::Handle,
    /// Remembered preferences.
    pub prefs: Prefs,
}

/// The whole panel: model, view state, engine link.
pub struct Panel {
    /// What the views show.
    pub model: Model,
    /// Remembered preferences.
    pub prefs: Prefs,
    /// Where the configuration comes from.
    pub source: Source,
    /// Relay filter text.
    pub filter: String,
    /// Activity filter text.
    pub activity_filter: String,
    /// Open confirmation dialog.
    pub confirmation: Option<Confirmation>,
    /// Relay whose detail window is open.
    pub detail: Option<usize>,
    /// Open settings window and its draft.
    pub settings: Option<settings::Draft>,
    /// One line of feedback (saved, exported, failed…), and whether it is an error.
    pub notice: Option<(String, bool)>,
    rows: RowCache,
    data_dir: Option<PathBuf>,
    engine: Option<EngineLink>,
    runtime: tokio::runtime::Handle,
    /// Filled on the first frame; the engine's wake-up callback reads it.
    ctx: Arc<OnceLock<egui::Context>>,
    jobs_tx: mpsc::Sender<Job>,
    jobs_rx: mpsc::Receiver<Job>,
    #[cfg(feature = "demo")]
    demo: Option<crate::demo::Demo>,
    /// Engines being shut down (main waits for them before exiting).
    closing: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Panel {
    /// A panel; starts the engine at once when a configuration is loaded,
    /// and the demo when the source is `Demo`.
    pub fn new(options: PanelOptions) -> Self {
        let (jobs_tx, jobs_rx) = mpsc::channel();
        let loaded = options.config.is_some();
        let config = options.config.unwrap_or_else(|| Config::new(""));
        let mut panel = Panel {
            model: Model::new(config),
            prefs: options.prefs,
            source: options.source.clone(),
            filter: String::new(),
            activity_filter: String::new(),
            confirmation: None,
            detail: None,
            settings: None,
            notice: None,
            rows: RowCache::default(),
            data_dir: options.data_dir,
            engine: None,
            runtime: options.runtime,
            ctx: Arc::new(OnceLock::new()),
            jobs_tx,
            jobs_rx,
            #[cfg(feature = "demo")]
            demo: None,
            closing: Arc::new(Mutex::new(Vec::new())),
        };
        match options.source {
            Source::File(_) if loaded => panel.start_engine(),
            Source::Demo => panel.apply(Action::OpenDemo),
            _ => {}
        }
        panel
    }

    /// Engines still shutting down; await them before the runtime ends.
    pub fn closing(&self) -> Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> {
        self.closing.clone()
    }

    fn wake(&self) -> engine::Wake {
        let ctx = self.ctx.clone();
        Arc::new(move || {
            if let Some(ctx) = ctx.get() {
                ctx.request_repaint();
            }
        })
    }

    fn start_engine(&mut self) {
        self.stop_engine();
        let data_dir = match self.source {
            Source::Demo => self.data_dir.as_ref().map(|d| d.join("demo")),
            _ => self.data_dir.clone(),
        };
        let options = EngineOptions {
            config: self.model.config.clone(),
            data_dir,
            client_id_prefix: "relay-panel".to_owned(),
            client_id_suffix: false,
            wake: self.wake(),
            history: engine::HISTORY_LEN,
        };
        let _runtime = self.runtime.enter();
        match engine::spawn(options) {
            Ok((handle, events)) => {
                self.model.response_topic = handle.response_topic.to_string();
                self.engine = Some(EngineLink { handle, events });
            }
            Err(e) => {
                self.model.connection = engine::ConnectionState::Failed {
                    reason: e.to_string(),
                };
            }
        }
    }

    /// Makes the running engine crash (see `EngineHandle::crash_for_test`).
    #[doc(hidden)]
    pub fn crash_engine_for_test(&self) {
        if let Some(link) = &self.engine {
            link.handle.crash_for_test();
        }
    }

    fn stop_engine(&mut self) {
        if let Some(mut link) = self.engine.take() {
            link.handle.shutdown();
            let done = self
                .runtime
                .spawn(async move { while link.events.recv().await.is_some() {} });
            if let Ok(mut closing) = self.closing.lock() {
                closing.push(done);
            }
        }
    }

    /// Drains every waiting engine event and background result.
    fn drain(&mut self) {
        if let Some(link) = &mut self.engine {
            while let Some(event) = link.events.try_recv() {
                self.model.apply(event);
            }
            // The engine thread is gone without saying why (it always says
            // why when it can): never keep showing "connected".
            if link.events.is_closed()
                && !matches!(
                    self.model.connection,
                    engine::ConnectionState::Failed { .. } | engine::ConnectionState::Stopped
                )
            {
                self.model.connection = engine::ConnectionState::Failed {
                    reason: "internal error: the engine stopped; Retry starts it again".to_owned(),
                };
            }
        }
        while let Ok(job) = self.jobs_rx.try_recv() {
            self.finish_job(job);
        }
    }

    fn finish_job(&mut self, job: Job) {
        match job {
            Job::Saved(Ok((config, path))) => {
                self.notice = Some((
                    match &path {
                        Some(p) => format!("Saved {}", p.display()),
                        None => {
                            "Applied (the demo configuration is not saved to a file)".to_owned()
                        }
                    },
                    false,
                ));
                if let Some(path) = path {
                    self.source = Source::File(path);
                }
                self.settings = None;
                self.model.set_config(config);
                self.start_engine();
            }
            Job::Saved(Err(e)) => {
                if let Some(draft) = &mut self.settings {
                    draft.save_error = Some(e.clone());
                }
                self.notice = Some((e, true));
            }
            Job::Exported(Ok(path)) => {
                self.notice = Some((format!("Audit log exported to {}", path.display()), false));
            }
            Job::Exported(Err(e)) => self.notice = Some((e, true)),
            Job::Loaded(source, config) => {
                self.source = source;
                if let Some(config) = config {
                    self.model.set_config(config);
                    self.start_engine();
                } else {
                    self.stop_engine();
                }
            }
            #[cfg(feature = "demo")]
            Job::DemoStarted(result) => match *result {
                Ok(demo) => {
                    self.notice = None;
                    self.source = Source::Demo;
                    self.model.set_config(demo.config.clone());
                    self.demo = Some(demo);
                    self.start_engine();
                }
                Err(e) => self.notice = Some((format!("Could not start the demo: {e}"), true)),
            },
        }
    }

    /// Draws the whole panel and applies what the technician asked.
    pub fn show(&mut self, ui: &mut egui::Ui) {
        let _ = self.ctx.set(ui.ctx().clone());
        self.drain();
        ui.ctx().set_theme(if self.prefs.dark {
            egui::ThemePreference::Dark
        } else {
            egui::ThemePreference::Light
        });
        let mut actions: Vec<Action> = Vec::new();
        let has_relays = matches!(self.source, Source::File(_) | Source::Demo);

        egui::Panel::top("top_bar").show(ui, |ui| {
            actions.extend(top_bar::show(
                ui,
                &self.model,
                &self.source,
                &mut self.filter,
                &self.prefs,
                self.notice.as_ref(),
            ));
        });
        if has_relays && self.prefs.show_activity {
            egui::Panel::bottom("activity")
                .resizable(true)
                .default_size(220.0)
                .min_size(80.0)
                .show(ui, |ui| {
                    actions.extend(activity::show(ui, &self.model, &mut self.activity_filter));
                });
        }
        egui::CentralPanel::default().show(ui, |ui| {
            if has_relays {
                let key = (
                    self.filter.clone(),
                    self.prefs.collapsed.clone(),
                    self.model.generation,
                );
                if self.rows.key.as_ref() != Some(&key) {
                    self.rows.rows = self.model.rows(&self.filter, &self.prefs.collapsed);
                    self.rows.key = Some(key);
                }
                actions.extend(relay_list::show(
                    ui,
                    &self.model,
                    &self.rows.rows,
                    &self.prefs.collapsed,
                ));
            } else {
                actions.extend(first_run::show(ui, &self.source));
            }
        });
        let ctx = ui.ctx().clone();
        if let Some(confirmation) = &self.confirmation {
            actions.extend(dialogs::show(&ctx, &self.model, confirmation));
        }
        if let Some(relay) = self.detail {
            actions.extend(detail::show(&ctx, &self.model, relay));
        }
        if let Some(draft) = &mut self.settings {
            actions.extend(settings::show(&ctx, draft, &self.source));
        }
        for action in actions {
            self.apply(action);
        }
        // Repaint when a visible text changes by itself: an age ("12 s ago"
        // each second, "5 min ago" each minute…) or a countdown. Engine
        // events wake the UI on their own; nothing else repaints an idle panel.
        if let Some(next) = self.model.next_tick(std::time::SystemTime::now()) {
            ui.ctx()
                .request_repaint_after(next.max(Duration::from_millis(50)));
        }
    }

    /// Applies one action.
    pub fn apply(&mut self, action: Action) {
        match action {
            Action::Switch { relay, action } => {
                let needs_confirm = self
                    .model
                    .config
                    .relays
                    .get(relay)
                    .is_some_and(|r| r.confirm)
                    && action != protocol::Action::Query;
                if needs_confirm {
                    self.confirmation = Some(Confirmation::Relay { relay, action });
                } else {
                    self.send(relay, action);
                }
            }
            Action::GroupSwitch { group, action } => {
                self.confirmation = Some(Confirmation::Group { group, action });
            }
            Action::Confirm => match self.confirmation.take() {
                Some(Confirmation::Relay { relay, action }) => self.send(relay, action),
                Some(Confirmation::Group { group, action }) => {
                    if let Some(group) = self.model.groups.get(group).cloned() {
                        let relays: Vec<usize> = group
                            .relays
                            .iter()
                            .copied()
                            .filter(|&r| !self.model.statuses[r].is_pending())
                            .collect();
                        self.model.start_group_run(&group.name, action, &relays);
                        for relay in relays {
                            self.send(relay, action);
                        }
                    }
                }
                None => {}
            },
            Action::Cancel => self.confirmation = None,
            Action::ToggleGroup(name) => {
                if !self.prefs.collapsed.remove(&name) {
                    self.prefs.collapsed.insert(name);
                }
            }
            Action::RefreshAll => {
                for relay in 0..self.model.config.relays.len() {
                    if self.model.config.relays[relay].payload_query.is_some()
                        && !self.model.statuses[relay].is_pending()
                    {
                        self.send(relay, protocol::Action::Query);
                    }
                }
            }
            Action::ShowDetail(relay) => self.detail = Some(relay),
            Action::CloseDetail => self.detail = None,
            Action::OpenSettings => {
                self.settings = Some(settings::Draft::new(Config::clone(&self.model.config)))
            }
            Action::CloseSettings => self.settings = None,
            Action::SaveSettings(config) => self.save(*config),
            Action::OpenDemo => self.open_demo(),
            Action::CreateExample => {
                if let Source::Missing(path) = &self.source {
                    let path = path.clone();
                    self.in_background(move || {
                        let result = crate::config::write_atomically(
                            &path,
                            crate::config::EXAMPLE.as_bytes(),
                        );
                        match result
                            .map_err(|e| e.to_string())
                            .and_then(|_| Config::load(&path).map_err(|e| e.to_string()))
                        {
                            Ok(config) => Job::Loaded(Source::File(path), Some(config)),
                            Err(e) => Job::Loaded(Source::Broken(path, e), None),
                        }
                    });
                }
            }
            Action::Retry => {
                // A fresh start on the same configuration: states come back
                // from the store, marked as from an earlier session.
                let config = (*self.model.config).clone();
                self.model.set_config(config);
                self.start_engine();
            }
            Action::Reload => {
                let Some(path) = self.config_file() else {
                    return;
                };
                self.in_background(move || match Config::load(&path) {
                    Ok(config) => Job::Loaded(Source::File(path), Some(config)),
                    Err(crate::config::ConfigError::Read { source, .. })
                        if source.kind() == std::io::ErrorKind::NotFound =>
                    {
                        Job::Loaded(Source::Missing(path), None)
                    }
                    Err(e) => Job::Loaded(Source::Broken(path, e.to_string()), None),
                });
            }
            Action::ExportCsv => self.export_csv(),
            Action::ToggleActivity => self.prefs.show_activity = !self.prefs.show_activity,
            Action::ToggleTheme => self.prefs.dark = !self.prefs.dark,
            Action::DismissWarnings => self.model.warnings.clear(),
            Action::DismissGroupRun => self.model.group_run = None,
            Action::DismissNotice => self.notice = None,
        }
    }

    fn send(&mut self, relay: usize, action: protocol::Action) {
        if let Some(link) = &self.engine {
            link.handle.request(relay, action);
        }
    }

    /// The configuration file, unless this is the demo.
    fn config_file(&self) -> Option<PathBuf> {
        match &self.source {
            Source::File(p) | Source::Missing(p) | Source::Broken(p, _) => Some(p.clone()),
            Source::Demo => None,
        }
    }

    /// Runs `work` (file I/O) on a thread of its own; its result comes back
    /// as a [`Job`] on the next frame, which the wake-up triggers.
    fn in_background(&self, work: impl FnOnce() -> Job + Send + 'static) {
        let tx = self.jobs_tx.clone();
        let wake = self.wake();
        std::thread::spawn(move || {
            let _ = tx.send(work());
            wake();
        });
    }

    fn save(&mut self, config: Config) {
        let path = self.config_file();
        self.in_background(move || {
            let result = match &path {
                Some(p) => config.save(p).map_err(|e| e.to_string()),
                None => {
                    let problems = config.validate();
                    if problems.is_empty() {
                        Ok(())
                    } else {
                        Err(problems
                            .iter()
                            .map(|p| p.message.clone())
                            .collect::<Vec<_>>()
                            .join("\n"))
                    }
                }
            };
            Job::Saved(result.map(|_| (config, path)))
        });
    }

    fn open_demo(&mut self) {
        #[cfg(feature = "demo")]
        {
            let tx = self.jobs_tx.clone();
            let wake = self.wake();
            let runtime = self.runtime.clone();
            self.notice = Some(("Starting the demo broker and devices…".to_owned(), false));
            // Binding the broker waits for its socket: off the UI thread.
            self.runtime.spawn_blocking(move || {
                let _guard = runtime.enter();
                let result = crate::demo::start().map_err(|e| format!("{e:#}"));
                let _ = tx.send(Job::DemoStarted(Box::new(result)));
                wake();
            });
        }
        #[cfg(not(feature = "demo"))]
        {
            self.notice = Some((
                "This build has no demo (built without the `demo` feature)".to_owned(),
                true,
            ));
        }
    }

    fn export_csv(&mut self) {
        let entries: Vec<_> = self.model.audit.iter().cloned().collect();
        let fallback = self.data_dir.clone();
        // Finding the documents folder reads ~/.config/user-dirs.dirs: off
        // the UI thread too.
        self.in_background(move || {
            let dir = directories::UserDirs::new()
                .and_then(|d| d.document_dir().map(|p| p.to_path_buf()))
                .or(fallback)
                .unwrap_or_else(std::env::temp_dir);
            let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
            let path = dir.join(format!("relay-panel-audit-{stamp}.csv"));
            let result = write_csv(&path, &entries)
                .map(|_| path)
                .map_err(|e| format!("Export failed: {e}"));
            Job::Exported(result)
        });
    }
}

impl Drop for Panel {
    fn drop(&mut self) {
        self.stop_engine();
    }
}

/// Writes audit entries (newest first) as CSV.
pub fn write_csv(
    path: &std::path::Path,
    entries: &[crate::store::AuditEntry],
) -> anyhow::Result<()> {
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

/// The eframe application: the panel plus persistence.
pub struct PanelApp {
    /// The panel.
    pub panel: Panel,
    /// Process start, to report the time to the first frame when
    /// `RELAY_PANEL_TIMING` is set (scripts/measure-gui.sh).
    pub started: Option<std::time::Instant>,
}

impl eframe::App for PanelApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.panel.show(ui);
        if let Some(started) = self.started.take()
            && std::env::var_os("RELAY_PANEL_TIMING").is_some()
        {
            eprintln!(
                "first frame after {:.1} ms",
                started.elapsed().as_secs_f64() * 1000.0
            );
        }
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, eframe::APP_KEY, &self.panel.prefs);
    }
}
