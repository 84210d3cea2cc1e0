//! The panel: its state (model, view state, the engine link, background
//! jobs), [`Panel::draw`], which draws every view and collects their
//! [`Intent`]s, and [`Panel::apply`], which carries an intent out after
//! drawing. The UI thread never blocks: the engine runs on tokio, file
//! writes in [`jobs`](super::jobs).
//!
//! (Over 400 lines: `apply` is one match over every intent, kept whole so
//! what each intent does is read in one place.)

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::intent::{Confirmation, GroupQuestion, Intent};
use super::jobs::{self, Job, Jobs};
use super::model::{Model, Row};
use super::prefs::Prefs;
use super::shortcuts::{self, Shortcut};
use super::source::Source;
use super::watch::FileWatch;
use super::{activity, detail, dialogs, first_run, relay_list, settings, top_bar};
use crate::config::{Config, FileStamp};
use crate::engine::{self, ConnectionState, EngineHandle, EngineOptions, Events};
use crate::protocol;

/// A running engine and its events.
struct EngineLink {
    /// Where requests go.
    handle: EngineHandle,
    /// What the engine reports (closed once it has stopped).
    events: Events,
}

/// Cached relay-list rows (recomputed when the filter, the folded groups
/// or the configuration change — not every frame).
#[derive(Default)]
struct RowCache {
    /// Filter, folded groups and configuration generation the rows are for.
    key: Option<(String, BTreeSet<String>, u64)>,
    /// The rows for `key`.
    rows: Vec<Row>,
}

/// How a new configuration was put to work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Applied {
    /// By the running engine: same connection, states kept.
    InPlace,
    /// By a new engine, which connects again.
    Reconnecting,
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
    /// Remembered preferences ([`PanelApp`](super::PanelApp) uses these
    /// only when its storage holds none).
    pub prefs: Prefs,
    /// Cloned into every engine being stopped and every background job:
    /// the process waits, before exiting, until all clones are dropped
    /// (stores flushed, files written).
    pub shutdown_complete: tokio::sync::mpsc::Sender<()>,
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
    /// The relay list's selection, focus and scroll, kept between frames.
    pub list: relay_list::ListView,
    /// Whether the list of keyboard shortcuts is open.
    pub shortcuts_open: bool,
    /// Relay-list rows, kept between frames.
    rows: RowCache,
    /// Directory of the store (the demo's lives in `demo/` under it).
    data_dir: Option<PathBuf>,
    /// The running engine, if any.
    engine: Option<EngineLink>,
    /// The runtime engines are spawned on.
    runtime: tokio::runtime::Handle,
    /// The window's context: the engine's wake-up repaints it.
    ctx: egui::Context,
    /// Background file work and the demo start.
    jobs: Jobs,
    /// Watches the configuration file for edits made by others.
    watch: Option<FileWatch>,
    /// What the file held when Settings opened: a save is refused if it
    /// holds something else by then.
    settings_base: Option<FileStamp>,
    /// The demo's broker and devices, while the demo runs.
    #[cfg(feature = "demo")]
    demo: Option<crate::demo::Demo>,
    /// Cloned into each engine being stopped (see [`PanelOptions`]).
    shutdown_complete: tokio::sync::mpsc::Sender<()>,
}

impl Panel {
    /// A panel drawn in `ctx` (which the engine and background jobs wake);
    /// starts the engine at once when a configuration is loaded, and the
    /// demo when the source is `Demo`.
    ///
    /// A test harness that steps frames itself may pass any context, e.g.
    /// `egui::Context::default()`.
    pub fn new(options: PanelOptions, ctx: egui::Context) -> Self {
        let loaded = options.config.is_some();
        let config = options.config.unwrap_or_else(|| Config::new(""));
        let jobs = Jobs::new(ctx.clone(), options.shutdown_complete.clone());
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
            list: relay_list::ListView::default(),
            shortcuts_open: false,
            rows: RowCache::default(),
            data_dir: options.data_dir,
            engine: None,
            runtime: options.runtime,
            ctx,
            jobs,
            watch: None,
            settings_base: None,
            #[cfg(feature = "demo")]
            demo: None,
            shutdown_complete: options.shutdown_complete,
        };
        match options.source {
            Source::File(_) if loaded => {
                panel.watch_file(None);
                panel.start_engine();
            }
            Source::Demo => panel.apply(Intent::OpenDemo),
            _ => {}
        }
        panel
    }

    fn start_engine(&mut self) {
        self.stop_engine();
        let data_dir = match self.source {
            Source::Demo => self.data_dir.as_ref().map(|d| d.join("demo")),
            _ => self.data_dir.clone(),
        };
        self.model.engine_starting(data_dir.is_some());
        let ctx = self.ctx.clone();
        let options = EngineOptions {
            config: self.model.config.clone(),
            data_dir,
            client_id_prefix: "relay-panel".to_owned(),
            client_id_suffix: false,
            wake: Arc::new(move || ctx.request_repaint()),
            history: engine::HISTORY_LEN,
            max_in_flight: crate::mqtt::MAX_IN_FLIGHT,
        };
        let _runtime = self.runtime.enter();
        match engine::spawn(options) {
            Ok((handle, events)) => {
                self.model.response_topic = handle.response_topic.to_string();
                self.engine = Some(EngineLink { handle, events });
            }
            Err(e) => {
                self.model.connection = ConnectionState::Failed {
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

    /// Asks the engine to stop; a task holding a shutdown-complete sender
    /// reads its last events until it has flushed its store and ended.
    fn stop_engine(&mut self) {
        if let Some(mut link) = self.engine.take() {
            link.handle.shutdown();
            let shutdown_complete = self.shutdown_complete.clone();
            self.runtime.spawn(async move {
                while link.events.recv().await.is_some() {}
                drop(shutdown_complete);
            });
        }
    }

    /// Applies every waiting engine event and finished background job
    /// (eframe calls this through `App::logic`, even while hidden).
    pub fn drain_events(&mut self) {
        /// Events drained at once after which freed memory is given back.
        const BURST: usize = 1000;
        if let Some(link) = &mut self.engine {
            let mut drained = 0usize;
            while let Some(event) = link.events.try_recv() {
                self.model.apply(event);
                drained += 1;
            }
            // A burst (the retained states and wills of thousands of
            // relays on subscribing) leaves freed memory behind.
            if drained >= BURST {
                crate::config::release_freed_memory();
            }
            // The engine thread is gone without saying why (it always says
            // why when it can): never keep showing "connected".
            if link.events.is_closed()
                && !matches!(
                    self.model.connection,
                    ConnectionState::Failed { .. } | ConnectionState::Stopped
                )
            {
                self.model.connection = ConnectionState::Failed {
                    reason: "internal error: the engine stopped; Retry starts it again".to_owned(),
                };
            }
        }
        while let Some(job) = self.jobs.try_recv() {
            self.finish_job(job);
        }
    }

    fn finish_job(&mut self, job: Job) {
        match job {
            Job::Saved(Ok((config, path))) => {
                let saved = match &path {
                    Some(p) => format!("Saved {}", p.display()),
                    None => "Applied (the demo configuration is not saved to a file)".to_owned(),
                };
                if let Some(path) = path {
                    self.source = Source::File(path);
                    self.watch_file(None);
                }
                self.settings = None;
                let how = match self.apply_config(config) {
                    Applied::InPlace => "; the connection and the states are kept",
                    Applied::Reconnecting => {
                        "; the broker settings changed, so the panel reconnects"
                    }
                };
                self.notice = Some((format!("{saved}{how}"), false));
            }
            Job::Saved(Err(e)) => {
                let e = e.to_string();
                if let Some(draft) = &mut self.settings {
                    draft.save_error = Some(e.clone());
                }
                self.notice = Some((e, true));
            }
            Job::Exported(Ok(path)) => {
                self.notice = Some((format!("Audit log exported to {}", path.display()), false));
            }
            Job::Exported(Err(e)) => self.notice = Some((e.to_string(), true)),
            Job::Loaded(source, loaded) => {
                self.source = source;
                if let Some((config, stamp)) = loaded {
                    self.watch_file(Some(stamp));
                    self.model.set_config(config);
                    self.start_engine();
                } else {
                    self.watch = None;
                    self.stop_engine();
                }
            }
            Job::FileChanged(path) => {
                if self.source.config_file() == Some(&path) && self.source.has_relays() {
                    self.jobs.run(move || jobs::reload_changed(path));
                }
            }
            Job::Changed(path, result) => self.file_changed(path, result),
            #[cfg(feature = "demo")]
            Job::DemoStarted(result) => match *result {
                Ok(demo) => {
                    self.notice = None;
                    self.source = Source::Demo;
                    self.model.set_config(demo.config.clone());
                    self.demo = Some(demo);
                    self.start_engine();
                }
                Err(e) => self.notice = Some((e.to_string(), true)),
            },
        }
    }

    /// Watches the configuration file of `Source::File` (a new watch when
    /// the file is another one), with `stamp` as its known contents.
    fn watch_file(&mut self, stamp: Option<FileStamp>) {
        match &self.source {
            Source::File(path) => match &self.watch {
                Some(watch) if watch.path == *path => {
                    if let Some(stamp) = stamp {
                        *watch.known.lock().unwrap_or_else(|e| e.into_inner()) = Some(stamp);
                    }
                }
                _ => self.watch = Some(self.jobs.watch(path.clone(), stamp)),
            },
            _ => self.watch = None,
        }
    }

    /// The configuration file changed on disk and was read again: run
    /// what it now holds, or keep the running configuration and say why
    /// the new one cannot be used. Settings, if open, shows an older
    /// version: it says so (and its Save is refused).
    fn file_changed(&mut self, path: PathBuf, result: Result<(Config, FileStamp), String>) {
        if self.source.config_file() != Some(&path) {
            return;
        }
        let name = path.display();
        match result {
            Ok((config, stamp)) => {
                self.watch_file(Some(stamp));
                if config == *self.model.config {
                    self.notice = Some((
                        format!("{name} changed on disk; nothing the panel uses changed"),
                        false,
                    ));
                } else {
                    let how = match self.apply_config(config) {
                        Applied::InPlace => "",
                        Applied::Reconnecting => {
                            "; the broker settings changed, so the panel reconnects"
                        }
                    };
                    self.notice = Some((format!("{name} changed on disk: reloaded{how}"), false));
                }
                if let Some(draft) = &mut self.settings {
                    draft.save_error = Some(format!(
                        "{name} was changed by another program and reloaded; Settings shows the \
                         version before. Close Settings and open it again to edit the new one."
                    ));
                }
            }
            Err(e) => {
                self.notice = Some((
                    format!(
                        "{name} changed on disk but cannot be used; the panel keeps running the \
                         configuration it loaded before. {e}"
                    ),
                    true,
                ));
            }
        }
    }

    /// Runs `config`: in place on the running engine when the broker and
    /// panel settings are the same (same connection, states kept), else on
    /// a new engine. Dialogs naming relays by index close.
    fn apply_config(&mut self, config: Config) -> Applied {
        self.confirmation = None;
        self.detail = None;
        // One copy, shared by the engine and the model (10,000 relays
        // are megabytes).
        let config = Arc::new(config);
        if let Some(link) = &self.engine {
            match link.handle.reconfigure(config.clone()) {
                Ok(()) => {
                    // Requests from here on use the new indices.
                    self.model.reconfigure(config);
                    return Applied::InPlace;
                }
                Err(e) => tracing::info!("starting a new engine: {e}"),
            }
        }
        self.model.set_config(config);
        self.start_engine();
        Applied::Reconnecting
    }

    /// Applies what is waiting, then draws: [`Self::drain_events`] and
    /// [`Self::draw`] in one call, for a harness without eframe (tests,
    /// benchmarks). The app calls them from `logic` and `ui`.
    pub fn show(&mut self, ui: &mut egui::Ui) {
        self.drain_events();
        self.draw(ui);
    }

    /// Draws the whole panel and applies what the technician asked.
    pub fn draw(&mut self, ui: &mut egui::Ui) {
        ui.ctx().set_theme(self.prefs.theme());
        let now = std::time::SystemTime::now();
        let has_relays = self.source.has_relays();
        // Keys first, before any widget sees them.
        let mut intents: Vec<Intent> = self.keys(ui.ctx());

        egui::Panel::top("top_bar").show(ui, |ui| {
            intents.extend(top_bar::show(
                ui,
                &self.model,
                &self.source,
                &mut self.filter,
                &self.prefs,
                &mut self.shortcuts_open,
            ));
        });
        // Notices and warnings come and go here, in a bar whose height
        // never changes: nothing under the pointer moves.
        egui::Panel::bottom("status_bar")
            .resizable(false)
            .exact_size(top_bar::STATUS_BAR_HEIGHT)
            .show(ui, |ui| {
                intents.extend(top_bar::status_bar(ui, &self.model, self.notice.as_ref()));
            });
        if has_relays && self.prefs.show_activity {
            // A quarter of the window at most to begin with: at 800×600 the
            // relays keep most of the room (the technician can drag it).
            let activity_height = (ui.available_height() * 0.25).clamp(100.0, 220.0);
            egui::Panel::bottom("activity")
                .resizable(true)
                .default_size(activity_height)
                .min_size(80.0)
                .show(ui, |ui| {
                    intents.extend(activity::show(ui, &self.model, &mut self.activity_filter));
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
                    let old_filter = self.rows.key.as_ref().map(|(filter, ..)| filter);
                    self.list.to_top |= old_filter.is_some_and(|old| *old != self.filter);
                    self.rows.rows = self.model.rows(&self.filter, &self.prefs.collapsed);
                    self.rows.key = Some(key);
                }
                intents.extend(relay_list::show(
                    ui,
                    &self.model,
                    &self.rows.rows,
                    &self.prefs.collapsed,
                    &mut self.list,
                    now,
                ));
            } else {
                intents.extend(first_run::show(ui, &self.source));
            }
        });
        let ctx = ui.ctx().clone();
        if let Some(confirmation) = &mut self.confirmation {
            intents.extend(dialogs::show(&ctx, &self.model, confirmation));
        }
        if let Some(relay) = self.detail {
            intents.extend(detail::show(&ctx, &self.model, relay));
        }
        if let Some(draft) = &mut self.settings {
            intents.extend(settings::show(&ctx, draft, &self.source));
        }
        if self.shortcuts_open {
            shortcuts::show(&ctx, &mut self.shortcuts_open);
        }
        for intent in intents {
            self.apply(intent);
        }
        // Repaint when a text on screen changes by itself: an age ("12 s
        // ago" each second, "5 min ago" each minute…) or a countdown, all on
        // the same whole second. Engine events wake the UI on their own;
        // nothing else repaints an idle panel.
        if has_relays
            && let Some(next) = self
                .model
                .next_tick(now, self.list.on_screen.iter().copied())
        {
            ctx.request_repaint_after(next.max(Duration::from_millis(50)));
        }
    }

    /// Reads this frame's keyboard shortcuts (none while a text field has
    /// the focus, or a dialog or the settings window is open) and carries
    /// out those of the list; returns the intents of the others.
    fn keys(&mut self, ctx: &egui::Context) -> Vec<Intent> {
        let blocked = self.confirmation.is_some()
            || self.settings.is_some()
            || ctx.memory(|m| m.top_modal_layer()).is_some();
        let mut intents = Vec::new();
        for shortcut in shortcuts::read(ctx, blocked, self.list.focused.is_some()) {
            match shortcut {
                Shortcut::Move(movement) => {
                    self.list.selected = shortcuts::moved(
                        &self.rows.rows,
                        self.list.selected,
                        movement,
                        self.list.page_rows,
                    );
                    self.list.reveal = true;
                    // In the buttons, the focus goes along to the same
                    // button of the newly selected row.
                    self.list.focus = self.list.focused.map(|(_, button)| button);
                }
                Shortcut::EnterRow => {
                    if self.list.selected.is_some() {
                        self.list.focus = Some(relay_list::RowButton::On);
                    } else {
                        self.list.selected =
                            shortcuts::moved(&self.rows.rows, None, shortcuts::Movement::Home, 1);
                    }
                    self.list.reveal = true;
                }
                Shortcut::RefreshAll => {
                    if self.model.connection.is_ready() {
                        intents.push(Intent::RefreshAll);
                    }
                }
                Shortcut::Help => self.shortcuts_open = !self.shortcuts_open,
                Shortcut::Escape => self.shortcuts_open = false,
            }
        }
        if !intents.is_empty() || self.list.reveal || self.list.focus.is_some() {
            ctx.request_repaint();
        }
        intents
    }

    /// Carries out one intent.
    pub fn apply(&mut self, intent: Intent) {
        match intent {
            Intent::Switch { relay, action } => {
                // A query changes nothing: it never asks, even offline.
                let switching = action != protocol::Action::Query;
                let confirm = self
                    .model
                    .config
                    .relays
                    .get(relay)
                    .is_some_and(|r| r.confirm);
                let offline = self
                    .model
                    .statuses
                    .get(relay)
                    .map(|s| s.availability)
                    .filter(|a| a.is_offline());
                if switching && (confirm || offline.is_some()) {
                    self.ask(Confirmation::Relay {
                        relay,
                        action,
                        offline,
                    });
                } else {
                    self.send(relay, action);
                }
            }
            Intent::GroupSwitch { group, action } => {
                if let Some(question) = self.group_question(group, action) {
                    self.ask(Confirmation::Group(question));
                }
            }
            Intent::Confirm => match self.confirmation.take() {
                Some(Confirmation::Relay { relay, action, .. }) => self.send(relay, action),
                Some(Confirmation::Group(question)) => {
                    // Exactly what the dialog promised, counted as sent.
                    let relays = question.chosen();
                    let name = self.model.groups[question.group].name.clone();
                    self.model.start_group_run(&name, question.action, &relays);
                    for relay in relays {
                        self.send(relay, question.action);
                    }
                }
                None => {}
            },
            Intent::Cancel => self.confirmation = None,
            Intent::ToggleGroup(name) => {
                if !self.prefs.collapsed.remove(&name) {
                    self.prefs.collapsed.insert(name);
                }
            }
            Intent::RefreshAll => {
                for relay in 0..self.model.config.relays.len() {
                    if self.model.config.relays[relay].can_query()
                        && !self.model.statuses[relay].is_pending()
                    {
                        self.send(relay, protocol::Action::Query);
                    }
                }
            }
            Intent::ShowDetail(relay) => self.detail = Some(relay),
            Intent::CloseDetail => self.detail = None,
            Intent::OpenSettings => {
                self.settings_base = self.watch.as_ref().and_then(FileWatch::known);
                self.settings = Some(settings::Draft::new(Config::clone(&self.model.config)))
            }
            Intent::CloseSettings => self.settings = None,
            Intent::SaveSettings(config) => {
                let to = self.source.config_file().map(|path| jobs::SaveTo {
                    path: path.clone(),
                    expected: self.settings_base,
                    known: self.watch.as_ref().map(|w| w.known.clone()),
                });
                self.jobs.run(move || jobs::save(*config, to));
            }
            Intent::OpenDemo => self.open_demo(),
            Intent::CreateExample => {
                if let Source::Missing(path) = &self.source {
                    let path = path.clone();
                    self.jobs.run(move || jobs::create_example(path));
                }
            }
            Intent::Retry => {
                // A fresh start on the same configuration: states come back
                // from the store, marked as from an earlier session.
                let config = (*self.model.config).clone();
                self.model.set_config(config);
                self.start_engine();
            }
            Intent::Reload => {
                if let Some(path) = self.source.config_file().cloned() {
                    self.jobs.run(move || jobs::reload(path));
                }
            }
            Intent::ExportCsv => {
                // What the activity panel shows (its button says so).
                let entries: Vec<_> = self
                    .model
                    .activity(&self.activity_filter)
                    .into_iter()
                    .cloned()
                    .collect();
                let fallback_dir = self.data_dir.clone();
                self.jobs
                    .run(move || jobs::export_csv(entries, fallback_dir));
            }
            Intent::ToggleActivity => self.prefs.show_activity = !self.prefs.show_activity,
            Intent::ToggleTheme => self.prefs.dark = !self.prefs.dark,
            Intent::DismissWarnings => self.model.warnings.clear(),
            Intent::DismissGroupRun => self.model.group_run = None,
            Intent::DismissNotice => self.notice = None,
        }
    }

    /// Opens a confirmation dialog. The focus leaves whatever had it, so
    /// that the dialog's default button takes it (Enter confirms).
    fn ask(&mut self, confirmation: Confirmation) {
        self.ctx.memory_mut(|m| {
            if let Some(id) = m.focused() {
                m.surrender_focus(id);
            }
        });
        self.confirmation = Some(confirmation);
    }

    /// What "All on" / "All off" of `group` would switch now: the relays
    /// its heading counts under the current filter, minus those with a
    /// request in flight; relays whose device is offline and `confirm =
    /// true` relays apart, each to be ticked.
    pub fn group_question(&self, group: usize, action: protocol::Action) -> Option<GroupQuestion> {
        let members = &self.model.groups.get(group)?.relays;
        let needle = self.filter.trim().to_lowercase();
        let mut question = GroupQuestion {
            group,
            action,
            relays: Vec::new(),
            ask_first: Vec::new(),
            include_ask_first: false,
            offline: Vec::new(),
            include_offline: false,
            hidden: 0,
            busy: 0,
        };
        for &relay in members {
            if !self.model.matches(relay, &needle) {
                question.hidden += 1;
            } else if self.model.statuses[relay].is_pending() {
                question.busy += 1;
            } else if self.model.statuses[relay].availability.is_offline() {
                question.offline.push(relay);
            } else if self.model.config.relays[relay].confirm {
                question.ask_first.push(relay);
            } else {
                question.relays.push(relay);
            }
        }
        Some(question)
    }

    fn send(&mut self, relay: usize, action: protocol::Action) {
        if let Some(link) = &self.engine {
            link.handle.request(relay, action);
        }
    }

    fn open_demo(&mut self) {
        #[cfg(feature = "demo")]
        {
            self.notice = Some(("Starting the demo broker and devices…".to_owned(), false));
            self.jobs.run_on_runtime(&self.runtime, jobs::start_demo);
        }
        #[cfg(not(feature = "demo"))]
        {
            self.notice = Some((
                "This build has no demo (built without the `demo` feature)".to_owned(),
                true,
            ));
        }
    }
}

impl Drop for Panel {
    fn drop(&mut self) {
        self.stop_engine();
    }
}
