//! The eframe application, [`PanelApp`]: the [`Panel`] built from eframe's
//! `CreationContext` (its egui context and stored preferences), engine
//! events applied in `App::logic` (which runs whenever a repaint was
//! requested, even while the window is hidden), the panel drawn in
//! `App::ui`, and the preferences saved in `App::save`.

use std::time::Instant;

use super::panel::{Panel, PanelOptions};
use super::prefs::Prefs;

/// Window title.
pub const TITLE: &str = "Relay Panel";

/// The eframe application: the panel plus persistence.
pub struct PanelApp {
    /// The panel.
    pub panel: Panel,
    /// Process start, to report the time to the first frame when
    /// `RELAY_PANEL_TIMING` is set (scripts/measure-gui.sh).
    pub started: Option<Instant>,
    /// Frames drawn since the last report, and when that was: with
    /// `RELAY_PANEL_TIMING` set, the frame rate goes to stderr every few
    /// seconds (what an idle window costs is its repaints).
    frames: Option<(u32, Instant)>,
}

impl PanelApp {
    /// The app drawn in `cc`'s context, with the preferences from `cc`'s
    /// storage (`options.prefs` when it holds none: first run, or a build
    /// without persistence).
    pub fn new(cc: &eframe::CreationContext<'_>, mut options: PanelOptions) -> Self {
        if let Some(prefs) = cc
            .storage
            .and_then(|s| eframe::get_value::<Prefs>(s, eframe::APP_KEY))
        {
            options.prefs = prefs;
        }
        PanelApp {
            panel: Panel::new(options, cc.egui_ctx.clone()),
            started: None,
            frames: std::env::var_os("RELAY_PANEL_TIMING").map(|_| (0, Instant::now())),
        }
    }
}

impl eframe::App for PanelApp {
    fn logic(&mut self, _ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.panel.drain_events();
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.panel.draw(ui);
        if let Some(started) = self.started.take()
            && std::env::var_os("RELAY_PANEL_TIMING").is_some()
        {
            eprintln!(
                "first frame after {:.1} ms",
                started.elapsed().as_secs_f64() * 1000.0
            );
        }
        if let Some((frames, since)) = &mut self.frames {
            *frames += 1;
            let elapsed = since.elapsed();
            if elapsed.as_secs() >= 5 {
                eprintln!(
                    "{:.1} frames/s over {:.0} s",
                    f64::from(*frames) / elapsed.as_secs_f64(),
                    elapsed.as_secs_f64()
                );
                *frames = 0;
                *since = Instant::now();
            }
        }
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, eframe::APP_KEY, &self.panel.prefs);
    }
}
