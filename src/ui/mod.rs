//! The panel's window, one concept per file:
//!
//! - `app.rs`: [`PanelApp`], the `eframe::App`: built from eframe's
//!   creation context, applies engine events in `logic`, draws in `ui`,
//!   saves the preferences.
//! - `panel.rs`: [`Panel`], the state behind the window (model, view state,
//!   engine link); `draw` runs the views, `apply` carries out their intents.
//! - `intent.rs`: [`Intent`], what a view asks for (applied after drawing),
//!   and the [`Confirmation`] questions asked before switching.
//! - `model.rs`: [`Model`], what the views show, fed by engine events.
//! - `prefs.rs`: [`Prefs`], the preferences remembered between runs.
//! - `source.rs`: [`Source`], where the configuration came from.
//! - `watch.rs`: noticing the configuration file changed on disk.
//! - `jobs.rs`: background jobs (save, export, load, demo start) and
//!   [`write_csv`].
//! - The views, each a function drawing from the model and returning an
//!   [`Intent`]: [`top_bar`], [`relay_list`], [`activity`], [`detail`],
//!   [`dialogs`], [`settings`] (its relay table in `settings_table.rs`),
//!   [`first_run`].
//! - `row_layout.rs`: where a relay row's parts go at a given width;
//!   `fit.rs`: text measured, cut with "…" and kept in its cell.
//! - `shortcuts.rs`: the keyboard ([`shortcuts::read`]) and the list of
//!   keys it shows (F1 or ?).
//!
//! The UI thread never blocks: the engine runs on tokio, file writes on
//! background threads.

mod app;
mod fit;
mod intent;
mod jobs;
mod model;
mod panel;
mod prefs;
mod row_layout;
mod settings_table;
mod source;
mod watch;

pub mod activity;
pub mod detail;
pub mod dialogs;
pub mod first_run;
pub mod relay_list;
pub mod settings;
pub mod shortcuts;
pub mod top_bar;

pub use app::{PanelApp, TITLE};
pub use intent::{Confirmation, GroupQuestion, Intent};
pub use jobs::{JobError, write_csv};
pub use model::{AUDIT_KEPT, Group, GroupRun, Model, Row};
pub use panel::{Panel, PanelOptions};
pub use prefs::Prefs;
pub use source::Source;
