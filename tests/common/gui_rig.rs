//! The GUI tests' rig, shared by `tests/gui.rs`, `tests/gui_keyboard.rs` and `tests/gui_settings.rs`
//! (each includes it with `#[path]`, next to `mod common`): a broker,
//! simulated devices, a runtime and a store directory per test, the panel
//! in an `egui_kittest` harness, and helpers to step frames and read text.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
use relay_panel::config::Config;
use relay_panel::sim::{self, Faults, SimHandle, SimOptions};
use relay_panel::ui::{Panel, PanelOptions, Prefs, Source};
use tokio::sync::mpsc;

use crate::common::{Mosquitto, config};

/// The panel under test, drawn by `Panel::show` (no eframe).
pub type PanelHarness = Harness<'static, Panel>;

/// What a GUI test runs against: a runtime for the engine and the devices
/// (outside the UI thread), a directory for the configuration and the
/// store, and unless offline a broker and simulated devices. Fields drop
/// in this order, after the harness (declared later in each test).
pub struct GuiRig {
    /// The simulated devices (`None`: nothing answers).
    pub devices: Option<SimHandle>,
    /// Holds `panel.toml` and the store (`data/`).
    pub dir: tempfile::TempDir,
    /// The broker (`None` offline: the configuration points at a closed port).
    pub broker: Option<Mosquitto>,
    /// What the panels start with (saved to `panel.toml` by [`GuiRig::panel`]).
    pub config: Config,
    /// Ends (`recv` gives `None`) once the last panel built and everything
    /// it left running are done: see [`GuiRig::close`].
    pub shutdown_complete: Option<mpsc::Receiver<()>>,
    /// Runs the engines and the devices.
    pub rt: tokio::runtime::Runtime,
}

impl GuiRig {
    /// A broker and, unless `faults` is `None`, simulated devices for
    /// `relays` relays (subscribed before this returns).
    pub fn start(relays: usize, faults: Option<Faults>) -> GuiRig {
        GuiRig::start_with(relays, faults, |_| {})
    }

    /// Like [`GuiRig::start`], with the configuration edited first.
    pub fn start_with(
        relays: usize,
        faults: Option<Faults>,
        edit: impl FnOnce(&mut Config),
    ) -> GuiRig {
        let broker = Mosquitto::start();
        let mut config = config(&broker.url(), relays);
        edit(&mut config);
        let mut rig = GuiRig::new(config, Some(broker));
        rig.devices = faults.map(|faults| rig.start_devices(faults));
        rig
    }

    /// No broker: the configuration points at a closed port.
    pub fn offline(relays: usize, edit: impl FnOnce(&mut Config)) -> GuiRig {
        let mut config = config("mqtt://127.0.0.1:1", relays);
        edit(&mut config);
        GuiRig::new(config, None)
    }

    pub fn new(config: Config, broker: Option<Mosquitto>) -> GuiRig {
        GuiRig {
            devices: None,
            dir: tempfile::tempdir().unwrap(),
            broker,
            config,
            shutdown_complete: None,
            rt: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap(),
        }
    }

    pub fn start_devices(&self, faults: Faults) -> SimHandle {
        let _guard = self.rt.enter();
        let (mut handle, _) = sim::spawn(SimOptions {
            config: self.config.clone(),
            faults,
            client_id: None,
        })
        .unwrap();
        self.rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(10), handle.ready())
                .await
                .unwrap()
        });
        handle
    }

    /// The simulated devices.
    pub fn devices(&self) -> &SimHandle {
        self.devices.as_ref().expect("a rig started with devices")
    }

    /// Where [`GuiRig::panel`] saves the configuration.
    pub fn config_path(&self) -> std::path::PathBuf {
        self.dir.path().join("panel.toml")
    }

    /// Options for a panel on this rig's runtime and store.
    pub fn options(&mut self, source: Source, config: Option<Config>) -> PanelOptions {
        let (shutdown_complete, all_done) = mpsc::channel(1);
        self.shutdown_complete = Some(all_done);
        PanelOptions {
            source,
            config,
            data_dir: Some(self.dir.path().join("data")),
            runtime: self.rt.handle().clone(),
            prefs: Prefs::default(),
            shutdown_complete,
        }
    }

    /// The panel on the rig's configuration, saved to `panel.toml` (its
    /// engine starts at once).
    pub fn panel(&mut self) -> PanelHarness {
        self.panel_sized(egui::vec2(1100.0, 700.0))
    }

    /// Like [`GuiRig::panel`], in a window of `size`.
    pub fn panel_sized(&mut self, size: egui::Vec2) -> PanelHarness {
        self.config.save(&self.config_path()).unwrap();
        let options = self.options(Source::File(self.config_path()), Some(self.config.clone()));
        harness_sized(Panel::new(options, egui::Context::default()), size)
    }

    /// Closes the window (drops the harness) and waits, as `main` does,
    /// until its engine has disconnected and flushed the store.
    pub fn close<S>(&mut self, h: Harness<'static, S>) {
        drop(h);
        let mut all_done = self.shutdown_complete.take().expect("a panel was built");
        self.rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(10), all_done.recv())
                .await
                .expect("engines and jobs finished after the window closed")
        });
    }
}

/// The panel drawn by `Panel::show`; the harness steps frames itself (see
/// [`wait_for`]), so the panel's wake-ups go to a context of its own.
pub fn harness(panel: Panel) -> PanelHarness {
    harness_sized(panel, egui::vec2(1100.0, 700.0))
}

/// Like [`harness`], in a window of `size`.
pub fn harness_sized(panel: Panel, size: egui::Vec2) -> PanelHarness {
    Harness::builder()
        .with_size(size)
        .build_ui_state(|ui, panel: &mut Panel| panel.show(ui), panel)
}

/// Steps frames until `done` holds (events arrive from other threads).
pub fn wait_for<S>(
    h: &mut Harness<'static, S>,
    what: &str,
    done: impl Fn(&Harness<'static, S>) -> bool,
) {
    let started = Instant::now();
    loop {
        h.step();
        if done(h) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs a few frames (windows and modals lay out over two frames).
pub fn frames<S>(h: &mut Harness<'static, S>) {
    for _ in 0..4 {
        h.step();
    }
}

/// The state badge of the only relay shown, as read by a screen reader:
/// `ON`, `OFF` or `UNKNOWN` (see [`badge_label`] for its evidence).
pub fn badge<S>(h: &Harness<'static, S>) -> String {
    let label = badge_label(h);
    let state = label.trim_start_matches("State: ");
    state.split(',').next().unwrap_or_default().to_owned()
}

/// The whole label of the only relay's badge: `State: ON, confirmed`,
/// `State: OFF, reported`, `State: UNKNOWN`.
pub fn badge_label<S>(h: &Harness<'static, S>) -> String {
    let labels: Vec<String> = h
        .query_all_by_label_contains("State: ")
        // A `Role::Label` node keeps its text as its value.
        .map(|n| n.accesskit_node().label().or(n.value()).unwrap_or_default())
        .filter(|label| label.starts_with("State: "))
        .collect();
    assert_eq!(labels.len(), 1, "{labels:?}");
    labels[0].clone()
}

pub fn has_text<S>(h: &Harness<'static, S>, text: &str) -> bool {
    h.query_all_by_label_contains(text).next().is_some()
}

pub fn connected(h: &mut PanelHarness) {
    wait_for(h, "connected", |h| h.state().model.connection.is_ready());
}
