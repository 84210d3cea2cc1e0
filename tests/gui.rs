//! The panel driven through egui_kittest (click by label, read text)
//! against a real Mosquitto and simulated devices; and the real eframe app
//! (start-up, preferences kept between runs, wake-ups).

mod common;
#[path = "common/gui_rig.rs"]
mod gui_rig;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use gui_rig::{GuiRig, badge, connected, frames, harness, has_text, wait_for};
use relay_panel::config::{Config, RelayConfig};
use relay_panel::protocol::RelayState;
use relay_panel::sim::{self, Faults};
use relay_panel::ui::{Intent, Panel, PanelApp, Prefs, Source};

/// Click "On": the row shows the request pending (badge unchanged), then ON
/// once the device confirmed.
#[test]
fn click_on_shows_pending_then_confirmed() {
    let faults = Faults {
        latency: Duration::from_millis(600),
        ..Faults::default()
    };
    let mut rig = GuiRig::start(1, Some(faults));
    let mut h = rig.panel();
    connected(&mut h);
    assert_eq!(badge(&h), "UNKNOWN");
    h.get_by_label("On").click();
    wait_for(&mut h, "pending", |h| has_text(h, "waiting for device"));
    assert_eq!(
        badge(&h),
        "UNKNOWN",
        "the badge keeps the last acknowledged state while pending"
    );
    wait_for(&mut h, "confirmed", |h| has_text(h, "confirmed in"));
    assert_eq!(badge(&h), "ON");
    assert!(has_text(&h, "last acknowledged"));
    assert_eq!(rig.devices().state("r0"), Some(RelayState::On));
    // The activity panel lists it.
    wait_for(&mut h, "audit entry", |h| has_text(h, "1 entry"));
}

/// With no device, the row says "no response" and the badge is unchanged.
#[test]
fn no_device_shows_no_response() {
    let mut rig = GuiRig::start_with(1, None, |config| config.relays[0].timeout_ms = Some(300));
    let mut h = rig.panel();
    connected(&mut h);
    h.get_by_label("Off").click();
    wait_for(&mut h, "no response", |h| {
        has_text(h, "no response after 0.3 s")
    });
    assert_eq!(badge(&h), "UNKNOWN");
}

/// A device error's text is shown in the row.
#[test]
fn device_error_text_is_shown() {
    let faults = Faults {
        fail: ["r0".to_owned()].into_iter().collect(),
        ..Faults::default()
    };
    let mut rig = GuiRig::start(1, Some(faults));
    let mut h = rig.panel();
    connected(&mut h);
    h.get_by_label("On").click();
    wait_for(&mut h, "device error", |h| has_text(h, sim::FAIL_TEXT));
    assert_eq!(badge(&h), "UNKNOWN");
}

/// The filter narrows the rows to matching names, ids, groups and topics.
#[test]
fn filter_narrows_rows() {
    let mut rig = GuiRig::offline(4, |config| config.relays[2].name = "Boiler feed".into());
    let mut h = rig.panel();
    h.step();
    assert!(has_text(&h, "Relay 0") && has_text(&h, "Boiler feed"));
    // Ctrl+F focuses the filter box; typing narrows the list.
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::F);
    h.step();
    h.event(egui::Event::Text("boiler".into()));
    frames(&mut h);
    assert_eq!(h.state().filter, "boiler");
    assert!(has_text(&h, "Boiler feed"));
    assert!(!has_text(&h, "Relay 0") && !has_text(&h, "Relay 1") && !has_text(&h, "Relay 3"));
    // By group name.
    h.state_mut().filter = "odd".into();
    h.step();
    assert!(has_text(&h, "Relay 1") && has_text(&h, "Relay 3"));
    assert!(!has_text(&h, "Boiler feed"));
}

/// "All on" asks for confirmation naming how many relays, then shows
/// progress and a summary.
#[test]
fn group_action_asks_then_reports() {
    let mut rig = GuiRig::start(4, Some(Faults::default()));
    let mut h = rig.panel();
    let devices = rig.devices();
    connected(&mut h);
    h.get_all_by_label("All on").next().unwrap().click();
    frames(&mut h);
    assert!(has_text(&h, "Switch 2 relays in Even ON?"));
    // Nothing switched before the answer.
    assert_eq!(devices.state("r0"), Some(RelayState::Off));
    h.get_by_label("Switch 2 on").click();
    wait_for(&mut h, "summary", |h| has_text(h, "done — 2 / 2 confirmed"));
    assert_eq!(devices.state("r0"), Some(RelayState::On));
    assert_eq!(devices.state("r2"), Some(RelayState::On));
    assert_eq!(
        devices.state("r1"),
        Some(RelayState::Off),
        "the other group is untouched"
    );
}

/// Cancelling the confirmation switches nothing; relays with
/// `confirm = true` ask before every switch.
#[test]
fn confirm_relay_asks_and_cancel_switches_nothing() {
    let mut rig = GuiRig::start_with(1, Some(Faults::default()), |config| {
        config.relays[0].confirm = true;
    });
    let mut h = rig.panel();
    let devices = rig.devices();
    connected(&mut h);
    h.get_by_label("On").click();
    frames(&mut h);
    assert!(has_text(&h, "Switch Relay 0 (r0) ON?"));
    h.get_by_label("Cancel").click();
    frames(&mut h);
    assert!(!has_text(&h, "Switch Relay 0 (r0) ON?"));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(devices.state("r0"), Some(RelayState::Off));
    h.get_by_label("On").click();
    frames(&mut h);
    h.get_by_label("Switch on").click();
    wait_for(&mut h, "confirmed", |h| has_text(h, "confirmed in"));
    assert_eq!(devices.state("r0"), Some(RelayState::On));
}

/// Evidence everywhere in the window: a reply tied to the request is
/// *confirmed* (filled badge), a state device's report is *reported*
/// (outlined badge), in the badge's label, the row, the activity log and
/// the Details window.
#[test]
fn badge_row_log_and_details_tell_confirmed_from_reported() {
    let mut rig = GuiRig::start_with(1, Some(Faults::default()), |config| {
        let run: u32 = rand::random();
        let mut bench = RelayConfig::state(
            "bench",
            &format!("test/{run:08x}/bench/set"),
            &format!("test/{run:08x}/bench/state"),
        );
        bench.name = "Bench".into();
        bench.group = "Even".into();
        config.relays.push(bench);
    });
    let mut h = rig.panel();
    connected(&mut h);
    h.get_all_by_label("On").next().unwrap().click();
    wait_for(&mut h, "r0 confirmed", |h| has_text(h, "confirmed in"));
    h.get_all_by_label("On").nth(1).unwrap().click();
    wait_for(&mut h, "bench reported", |h| has_text(h, "reported in"));
    assert!(h.query_by_label("State: ON, confirmed").is_some());
    assert!(h.query_by_label("State: ON, reported").is_some());
    assert!(has_text(&h, "last acknowledged"));
    assert!(has_text(&h, "last reported"));
    // The activity log names the outcome of each.
    assert!(h.query_by_label("confirmed").is_some());
    assert!(h.query_by_label("reported").is_some());
    h.get_all_by_label("Details").nth(1).unwrap().click();
    frames(&mut h);
    assert!(
        has_text(&h, "ON, reported at"),
        "Details says how it is known"
    );
    assert!(has_text(&h, "test/"), "Details shows the topics");
    assert_eq!(rig.devices().state("bench"), Some(RelayState::On));
}

/// After a restart the last acknowledged state comes back from the store.
#[test]
fn last_acknowledged_state_shown_after_restart() {
    let mut rig = GuiRig::start(1, Some(Faults::default()));
    {
        let mut h = rig.panel();
        connected(&mut h);
        h.get_by_label("On").click();
        wait_for(&mut h, "confirmed", |h| has_text(h, "confirmed in"));
        // Closing the window disconnects and flushes the store.
        rig.close(h);
    }
    let mut h = rig.panel();
    wait_for(&mut h, "restored state", |h| {
        h.query_by_label("State: ON, confirmed").is_some()
    });
    assert!(has_text(&h, "last acknowledged"));
    let status = &h.state().model.statuses[0];
    assert!(status.last_acknowledged.clone().unwrap().restored);
}

/// Settings: adding a relay and saving writes the file atomically and
/// the panel reloads with it.
#[test]
fn settings_edit_is_saved_and_reloaded() {
    let mut rig = GuiRig::start(1, None);
    let mut h = rig.panel();
    connected(&mut h);
    h.get_by_label("Settings").click();
    frames(&mut h);
    h.get_by_label("Add relay").click();
    frames(&mut h);
    h.get_by_label("Save").click();
    wait_for(&mut h, "saved", |h| has_text(h, "Saved "));
    let saved = Config::load(&rig.config_path()).unwrap();
    assert_eq!(saved.relays.len(), 2);
    assert_eq!(saved.relays[1].id, "relay-2");
    wait_for(&mut h, "new relay listed", |h| has_text(h, "relay-2"));
    connected(&mut h);
}

/// Settings refuse to save an invalid configuration and say why.
#[test]
fn settings_show_problems_and_refuse_to_save() {
    let mut rig = GuiRig::offline(1, |_| {});
    let mut h = rig.panel();
    h.step();
    h.get_by_label("Settings").click();
    h.step();
    if let Some(draft) = h.state_mut().settings.as_mut() {
        draft.config.relays[0].request_topic = "a/+/b".into();
        draft.problems = draft.config.validate();
    }
    frames(&mut h);
    assert!(has_text(&h, "wildcard"));
    h.get_by_label("Save").click();
    h.step();
    std::thread::sleep(Duration::from_millis(200));
    h.step();
    assert!(!has_text(&h, "Saved "));
    let on_disk = Config::load(&rig.config_path()).unwrap();
    assert_eq!(
        on_disk.relays[0].request_topic,
        rig.config.relays[0].request_topic
    );
}

/// With no configuration file the window explains where it goes and
/// offers the demo.
#[test]
fn first_run_explains_and_offers_demo() {
    let mut rig = GuiRig::offline(0, |_| {});
    let path = rig.dir.path().join("config.toml");
    let options = rig.options(Source::Missing(path.clone()), None);
    let mut h = harness(Panel::new(options, egui::Context::default()));
    h.step();
    assert!(has_text(&h, "No configuration yet"));
    assert!(has_text(&h, &path.display().to_string()));
    #[cfg(feature = "demo")]
    {
        h.get_by_label("Open demo").click();
        wait_for(&mut h, "demo connected", |h| {
            h.state().model.connection.is_ready()
        });
        assert!(has_text(&h, "Sump pump"));
        assert!(h.query_by_label("DEMO").is_some());
    }
}

/// A panel with fixed content for the snapshot (no engine, fixed ages).
#[cfg(feature = "demo")]
fn snapshot_panel(rig: &mut GuiRig) -> Panel {
    use relay_panel::engine::ConnectionState;
    use relay_panel::relay::{Acknowledgement, Phase, RelayStatus};
    use std::time::SystemTime;

    let config = relay_panel::demo::demo_config(1883);
    let mut options = rig.options(Source::File("/etc/relay-panel/config.toml".into()), None);
    options.data_dir = None;
    let mut panel = Panel::new(options, egui::Context::default());
    panel.model.set_config(config);
    panel.model.connection = ConnectionState::Connected;
    panel.model.response_topic = "relay-panel/relay-panel-0123456789ab/response".into();
    // Ages are shown on the clock's whole seconds: start just after one,
    // so they read as set (12 s, 5 min, 2 h) whenever the frames run.
    let since_epoch = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap();
    std::thread::sleep(
        Duration::from_secs(1) - Duration::from_nanos(since_epoch.subsec_nanos().into())
            + Duration::from_millis(20),
    );
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(since_epoch.as_secs() + 1);
    let ack = |state, secs: u64, rtt_us: u64| {
        Some(Acknowledgement {
            state,
            evidence: relay_panel::outcome::Evidence::Correlated,
            requested: now - Duration::from_secs(secs),
            at: now - Duration::from_secs(secs),
            rtt: Duration::from_micros(rtt_us),
            late: false,
            restored: false,
            operator: None,
        })
    };
    panel.model.statuses[0] = RelayStatus {
        phase: Phase::Confirmed {
            state: RelayState::On,
            evidence: relay_panel::outcome::Evidence::Correlated,
            at: now,
            rtt: Duration::from_micros(3100),
        },
        last_acknowledged: ack(RelayState::On, 12, 3100),
        ..RelayStatus::default()
    };
    panel.model.statuses[1].last_acknowledged = ack(RelayState::Off, 300, 2400);
    panel.model.statuses[3] = RelayStatus {
        phase: Phase::Failed {
            reason: relay_panel::relay::Failure::NoResponse {
                after: Duration::from_secs(3),
            },
            at: now,
            request: None,
        },
        last_acknowledged: ack(RelayState::Off, 7200, 1900),
        ..RelayStatus::default()
    };
    // A Tasmota without MQTT 5 answers: its state is reported, not
    // confirmed (the outlined badge).
    panel.model.statuses[6] = RelayStatus {
        phase: Phase::Confirmed {
            state: RelayState::On,
            evidence: relay_panel::outcome::Evidence::Reported,
            at: now,
            rtt: Duration::from_micros(41_000),
        },
        last_acknowledged: ack(RelayState::On, 40, 41_000).map(|ack| Acknowledgement {
            evidence: relay_panel::outcome::Evidence::Reported,
            ..ack
        }),
        ..RelayStatus::default()
    };
    // Switched at the device (a wall button) after a confirmation: the
    // device's report is shown (outlined), the older outcome is not.
    panel.model.statuses[4] = RelayStatus {
        phase: Phase::Confirmed {
            state: RelayState::Off,
            evidence: relay_panel::outcome::Evidence::Correlated,
            at: now - Duration::from_secs(300),
            rtt: Duration::from_micros(2700),
        },
        last_acknowledged: ack(RelayState::Off, 300, 2700),
        device_report: Some(relay_panel::relay::DeviceReport {
            state: RelayState::On,
            at: now - Duration::from_secs(120),
            source: Some("button".into()),
            retained: false,
            restored: false,
        }),
        ..RelayStatus::default()
    };
    // A device whose last will fired at 10:42 today (a fixed time of day,
    // so the snapshot reads the same whenever it runs).
    let at_1042 = chrono::Local::now()
        .date_naive()
        .and_hms_opt(10, 42, 0)
        .and_then(|t| t.and_local_timezone(chrono::Local).earliest())
        .map(SystemTime::from)
        .unwrap();
    panel.model.statuses[5] = RelayStatus {
        last_acknowledged: ack(RelayState::Off, 7200, 2200),
        availability: relay_panel::relay::Availability::Offline {
            since: at_1042,
            retained: false,
        },
        ..RelayStatus::default()
    };
    panel.prefs.show_activity = false;
    panel
}

/// An image snapshot of the main view catches visual regressions.
#[cfg(feature = "demo")]
#[test]
fn main_view_snapshot() {
    let mut rig = GuiRig::offline(0, |_| {});
    let mut h = Harness::builder()
        .with_size(egui::vec2(1100.0, 600.0))
        .wgpu()
        .build_ui_state(
            |ui, panel: &mut Panel| panel.show(ui),
            snapshot_panel(&mut rig),
        );
    h.run_steps(3);
    h.snapshot("main_view");
}

/// A broker outage is shown in the connection bar, then the recovery; a
/// relay switched afterwards is confirmed.
#[test]
fn outage_and_recovery_are_shown() {
    let mut rig = GuiRig::start(1, Some(Faults::default()));
    let mut h = rig.panel();
    connected(&mut h);
    assert!(has_text(&h, "connected"));
    rig.broker.as_mut().unwrap().stop();
    wait_for(&mut h, "outage shown", |h| {
        has_text(h, "reconnecting in") && has_text(h, "connection refused")
    });
    // While down, the switch buttons are disabled: nothing can be sent.
    assert!(!h.state().model.connection.is_ready());
    rig.broker.as_mut().unwrap().resume();
    connected(&mut h);
    assert!(!has_text(&h, "reconnecting in"));
    let devices = rig.devices.as_mut().unwrap();
    rig.rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(5), devices.ready())
            .await
            .unwrap()
    });
    h.get_by_label("On").click();
    wait_for(&mut h, "confirmed after recovery", |h| {
        has_text(h, "confirmed in")
    });
}

/// A corrupted store is set aside and the technician is told, in the window.
#[test]
fn corrupted_store_warning_is_shown() {
    let mut rig = GuiRig::start(1, None);
    let data = rig.dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join(relay_panel::store::STORE_FILE),
        b"garbage, not a database",
    )
    .unwrap();
    let mut h = rig.panel();
    wait_for(&mut h, "warning", |h| has_text(h, "was corrupted"));
    connected(&mut h);
}

/// A crash in the engine is shown in the connection bar (never a silent
/// "connected" window), with Retry; Retry starts a new engine that
/// connects and switches.
#[test]
fn engine_crash_is_shown_and_retry_recovers() {
    let mut rig = GuiRig::start(1, Some(Faults::default()));
    let mut h = rig.panel();
    connected(&mut h);
    assert!(
        h.query_by_label("Retry").is_none(),
        "no Retry while connected"
    );
    h.state().crash_engine_for_test();
    wait_for(&mut h, "crash shown", |h| has_text(h, "internal error"));
    assert!(!h.state().model.connection.is_ready());
    h.get_by_label("Retry").click();
    connected(&mut h);
    assert!(!has_text(&h, "internal error"));
    h.get_by_label("On").click();
    wait_for(&mut h, "confirmed after Retry", |h| {
        has_text(h, "confirmed in")
    });
}

/// eframe's storage, in memory (what eframe keeps in `app.ron`).
#[derive(Default)]
struct MemoryStorage(BTreeMap<String, String>);

impl eframe::Storage for MemoryStorage {
    fn get_string(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }

    fn set_string(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }

    fn remove_string(&mut self, key: &str) {
        self.0.remove(key);
    }

    fn flush(&mut self) {}
}

/// The real app under test.
type AppHarness = Harness<'static, PanelApp>;

impl GuiRig {
    /// The real `PanelApp`, built by `PanelApp::new` from the creation
    /// context `build_eframe` makes on the harness's own egui context (with
    /// a copy of `storage`), and driven as eframe drives it: `logic`, then
    /// `ui`, each frame.
    fn app(
        &mut self,
        storage: &MemoryStorage,
        source: Source,
        config: Option<Config>,
    ) -> AppHarness {
        let options = self.options(source, config);
        // The creation context borrows the storage for the harness's
        // lifetime ('static here): a copy, leaked (a few bytes per test).
        let storage: &'static MemoryStorage = Box::leak(Box::new(MemoryStorage(storage.0.clone())));
        Harness::builder()
            .with_size(egui::vec2(1100.0, 700.0))
            .build_eframe(move |cc| {
                cc.storage = Some(storage);
                PanelApp::new(cc, options)
            })
    }
}

/// The real app starts with the preferences it saved: the theme chosen in
/// one run (the top bar's button) is the theme of the next.
#[test]
fn app_remembers_the_theme_between_runs() {
    let mut rig = GuiRig::offline(1, |_| {});
    let mut storage = MemoryStorage::default();
    let mut h = rig.app(
        &storage,
        Source::File(rig.config_path()),
        Some(rig.config.clone()),
    );
    frames(&mut h);
    assert!(h.state().panel.prefs.dark, "dark on the first run");
    assert_eq!(h.ctx.theme(), egui::Theme::Dark);
    h.get_by_label("Light theme").click();
    frames(&mut h);
    assert_eq!(h.ctx.theme(), egui::Theme::Light);
    // eframe saves on exit (and every 30 s).
    eframe::App::save(h.state_mut(), &mut storage);
    rig.close(h);

    let mut h = rig.app(
        &storage,
        Source::File(rig.config_path()),
        Some(rig.config.clone()),
    );
    assert!(!h.state().panel.prefs.dark, "the stored preference is used");
    frames(&mut h);
    assert_eq!(h.ctx.theme(), egui::Theme::Light);
    assert!(h.query_by_label("Dark theme").is_some());
    // An empty storage (first run) falls back to the defaults.
    rig.close(h);
    let h = rig.app(
        &MemoryStorage::default(),
        Source::File(rig.config_path()),
        Some(rig.config.clone()),
    );
    assert_eq!(h.state().panel.prefs, Prefs::default());
}

/// The real app wakes its own window: a background job's result requests a
/// repaint of the context eframe built the app with (no frame runs until
/// then), and the next frame applies it. Here the first-run screen reads
/// the file that has appeared, and the engine it starts connects and
/// switches.
#[test]
fn app_is_woken_by_its_jobs_and_engine() {
    let mut rig = GuiRig::start(1, Some(Faults::default()));
    let storage = MemoryStorage::default();
    let mut h = rig.app(&storage, Source::Missing(rig.config_path()), None);
    frames(&mut h);
    assert!(has_text(&h, "No configuration yet"));
    let idle = Instant::now();
    while h.ctx.has_requested_repaint() {
        assert!(
            idle.elapsed() < Duration::from_secs(5),
            "the first-run screen never idles"
        );
        h.step();
    }
    rig.config.save(&rig.config_path()).unwrap();
    h.state_mut().panel.apply(Intent::Reload);
    let asked = Instant::now();
    while !h.ctx.has_requested_repaint() {
        assert!(
            asked.elapsed() < Duration::from_secs(10),
            "the loaded configuration never woke the window"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    h.step();
    assert!(!has_text(&h, "No configuration yet"));
    assert!(has_text(&h, "Relay 0"));
    wait_for(&mut h, "connected", |h| {
        h.state().panel.model.connection.is_ready()
    });
    h.get_by_label("On").click();
    wait_for(&mut h, "confirmed", |h| has_text(h, "confirmed in"));
    assert_eq!(rig.devices().state("r0"), Some(RelayState::On));
}

/// The log shown is the store's log, once: saving settings (which starts
/// a new engine when the broker settings change) and Retry never show the
/// entries twice, and Export CSV writes each once.
#[test]
fn activity_log_is_shown_once_after_saves() {
    let mut rig = GuiRig::start(2, Some(Faults::default()));
    let mut h = rig.panel();
    connected(&mut h);
    for (n, label) in ["On", "Off", "On"].into_iter().enumerate() {
        h.get_all_by_label(label).next().unwrap().click();
        wait_for(&mut h, "answered", |h| h.state().model.audit.len() == n + 1);
    }
    wait_for(&mut h, "three entries", |h| has_text(h, "3 entries"));
    for timeout in [2500, 2600] {
        h.get_by_label("Settings").click();
        frames(&mut h);
        h.state_mut()
            .settings
            .as_mut()
            .unwrap()
            .config
            .broker
            .request_timeout_ms = timeout;
        frames(&mut h);
        h.get_by_label("Save").click();
        wait_for(&mut h, "saved", |h| h.state().settings.is_none());
        assert!(has_text(&h, "Saved "));
        connected(&mut h);
        wait_for(&mut h, "the new engine's history", |h| {
            h.state().model.audit.len() >= 3
        });
        std::thread::sleep(Duration::from_millis(100));
        frames(&mut h);
        assert_eq!(h.state().model.audit.len(), 3, "after a save");
        assert!(has_text(&h, "3 entries"));
    }
    h.state().crash_engine_for_test();
    wait_for(&mut h, "crash shown", |h| has_text(h, "internal error"));
    h.get_by_label("Retry").click();
    connected(&mut h);
    wait_for(&mut h, "history after Retry", |h| {
        h.state().model.audit.len() >= 3
    });
    std::thread::sleep(Duration::from_millis(100));
    frames(&mut h);
    assert_eq!(h.state().model.audit.len(), 3, "after Retry");
}

/// A group action acts on what its heading counts: the filter's hidden
/// relays are left alone (and the dialog says so), a `confirm = true`
/// relay is named and switched only when ticked.
#[test]
fn group_action_switches_only_what_it_shows() {
    let mut rig = GuiRig::start_with(6, Some(Faults::default()), |config| {
        config.relays[4].confirm = true;
    });
    let mut h = rig.panel();
    connected(&mut h);
    // The filter shows one relay of Even: r0.
    h.state_mut().filter = "Relay 0".into();
    frames(&mut h);
    assert!(has_text(&h, "Even (1)"));
    h.get_by_label("All on").click();
    frames(&mut h);
    assert!(has_text(&h, "Switch 1 relay in Even ON?"));
    assert!(has_text(&h, "Left alone: 2 hidden by the filter."));
    h.get_by_label("Switch 1 on").click();
    wait_for(&mut h, "summary", |h| has_text(h, "done — 1 / 1 confirmed"));
    assert_eq!(rig.devices().state("r0"), Some(RelayState::On));
    let off = Some(RelayState::Off);
    assert_eq!(rig.devices().state("r2"), off, "hidden by the filter");
    assert_eq!(rig.devices().state("r4"), off, "hidden by the filter");

    // Unfiltered: r4 asks first, and is left alone unless ticked.
    h.state_mut().filter.clear();
    frames(&mut h);
    h.get_all_by_label("All on").next().unwrap().click();
    frames(&mut h);
    assert!(has_text(&h, "Switch 2 relays in Even ON?"));
    assert!(has_text(
        &h,
        "This relay asks before every switch: Relay 4."
    ));
    h.get_by_label("Switch 2 on").click();
    wait_for(&mut h, "summary", |h| has_text(h, "done — 2 / 2 confirmed"));
    assert_eq!(rig.devices().state("r2"), Some(RelayState::On));
    assert_eq!(rig.devices().state("r4"), off, "confirm = true, not ticked");

    h.get_all_by_label("All on").next().unwrap().click();
    frames(&mut h);
    h.get_by_label("Also switch it ON").click();
    frames(&mut h);
    h.get_by_label("Switch 3 on").click();
    wait_for(&mut h, "summary", |h| has_text(h, "done — 3 / 3 confirmed"));
    assert_eq!(rig.devices().state("r4"), Some(RelayState::On));
    assert_eq!(
        rig.devices().state("r1"),
        off,
        "the other group is untouched"
    );
}

/// "All off" while a request is in flight: the dialog's count is what is
/// sent and counted, even when that request has ended before the
/// technician clicks.
#[test]
fn group_action_sends_what_the_dialog_promised() {
    let faults = Faults {
        latency: Duration::from_millis(700),
        ..Faults::default()
    };
    let mut rig = GuiRig::start(6, Some(faults));
    let mut h = rig.panel();
    connected(&mut h);
    h.get_all_by_label("On").next().unwrap().click();
    wait_for(&mut h, "pending", |h| {
        h.state().model.statuses[0].is_pending()
    });
    h.get_all_by_label("All off").next().unwrap().click();
    frames(&mut h);
    assert!(has_text(&h, "Switch 2 relays in Even OFF?"));
    assert!(has_text(&h, "Left alone: 1 with a request in flight."));
    // The request in flight ends before the click.
    wait_for(&mut h, "r0 confirmed", |h| {
        h.state().model.statuses[0].last_acknowledged.is_some()
    });
    h.get_by_label("Switch 2 off").click();
    wait_for(&mut h, "summary", |h| has_text(h, "done — 2 / 2 confirmed"));
    assert_eq!(
        rig.devices().state("r0"),
        Some(RelayState::On),
        "left alone, as the dialog said"
    );
}

/// Enter presses a dialog's default button; Escape cancels.
#[test]
fn enter_confirms_and_escape_cancels_a_dialog() {
    let mut rig = GuiRig::start_with(1, Some(Faults::default()), |config| {
        config.relays[0].confirm = true;
    });
    let mut h = rig.panel();
    connected(&mut h);
    h.get_by_label("On").click();
    frames(&mut h);
    assert!(has_text(&h, "Switch Relay 0 (r0) ON?"));
    h.key_press(egui::Key::Escape);
    frames(&mut h);
    assert!(h.state().confirmation.is_none());
    assert!(!has_text(&h, "Switch Relay 0 (r0) ON?"));
    h.get_by_label("On").click();
    frames(&mut h);
    h.key_press(egui::Key::Enter);
    frames(&mut h);
    assert!(h.state().confirmation.is_none());
    wait_for(&mut h, "confirmed", |h| has_text(h, "confirmed in"));
    assert_eq!(rig.devices().state("r0"), Some(RelayState::On));
}

/// A late answer replaces the row's failure text with what happened.
#[test]
fn late_answer_replaces_the_failure_text() {
    let faults = Faults {
        latency: Duration::from_millis(1200),
        ..Faults::default()
    };
    let mut rig = GuiRig::start_with(1, Some(faults), |config| {
        config.relays[0].timeout_ms = Some(400);
    });
    let mut h = rig.panel();
    connected(&mut h);
    h.get_by_label("On").click();
    wait_for(&mut h, "no response", |h| {
        has_text(h, "no response after 0.4 s")
    });
    wait_for(&mut h, "late answer", |h| has_text(h, "answered ON"));
    assert!(has_text(&h, "s late"));
    assert!(
        !has_text(&h, "no response after"),
        "the old failure is gone"
    );
    assert_eq!(badge(&h), "ON");
}

/// An audit entry for relay `relay` with this outcome and detail.
fn entry(relay: &str, detail: Option<&str>) -> relay_panel::store::AuditEntry {
    relay_panel::store::AuditEntry {
        at: std::time::SystemTime::now(),
        relay_id: relay.to_owned(),
        action: relay_panel::protocol::Action::On,
        outcome: relay_panel::outcome::Outcome::DeviceError,
        state: None,
        evidence: Some(relay_panel::outcome::Evidence::Correlated),
        rtt: Some(Duration::from_millis(3)),
        detail: detail.map(str::to_owned),
        operator: "ana".to_owned(),
        correlation: None,
    }
}

/// The activity filter matches the names it shows, counts what it shows
/// and exports what it shows; a long detail never pushes the operator off
/// the window.
#[test]
fn activity_filter_matches_counts_and_exports_what_is_shown() {
    let mut rig = GuiRig::offline(3, |config| config.relays[1].name = "Boiler feed".into());
    let mut h = rig.panel();
    h.step();
    let long = "coil temperature above limit ".repeat(12);
    for (relay, detail) in [("r0", None), ("r1", Some(long.as_str())), ("r2", None)] {
        h.state_mut().model.apply(relay_panel::engine::Event::Late {
            relay: 0,
            entry: entry(relay, detail),
        });
    }
    frames(&mut h);
    assert!(has_text(&h, "3 entries"));
    let operator = h
        .get_all_by_label("by ana")
        .map(|n| n.rect())
        .collect::<Vec<_>>();
    assert_eq!(operator.len(), 3);
    for rect in operator {
        assert!(
            rect.right() <= 1100.0,
            "operator column on screen: {rect:?}"
        );
    }
    // By the name shown (the entry holds the id r1).
    h.state_mut().activity_filter = "boiler".into();
    frames(&mut h);
    assert!(has_text(&h, "1 of 3 entries"));
    assert_eq!(h.get_all_by_label("by ana").count(), 1);
    h.get_by_label("Export CSV (1 shown)").click();
    wait_for(&mut h, "exported", |h| {
        has_text(h, "Audit log exported to ")
    });
    let notice = h.state().notice.clone().unwrap().0;
    let path = notice
        .trim_start_matches("Audit log exported to ")
        .to_owned();
    let csv = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(
        csv.lines().count(),
        2,
        "header and the one entry shown:\n{csv}"
    );
    assert!(csv.contains(",r1,"));
}

/// Edits made to the file by hand while the panel runs are noticed and
/// run; a broken one is refused with its reason while the panel keeps
/// running; Settings never overwrites an edit it did not show.
#[test]
fn hand_edits_are_reloaded_and_never_overwritten() {
    let mut rig = GuiRig::offline(2, |_| {});
    let path = rig.config_path();
    let mut h = rig.panel();
    h.step();
    // The watch reads the file once to start with: give it that moment.
    std::thread::sleep(Duration::from_millis(300));
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("Relay 1", "Hand edited")).unwrap();
    wait_for(&mut h, "reloaded", |h| {
        has_text(h, "changed on disk: reloaded")
    });
    wait_for(&mut h, "new name listed", |h| has_text(h, "Hand edited"));

    // Settings open on that version; the file changes again underneath.
    h.get_by_label("Settings").click();
    frames(&mut h);
    let text = std::fs::read_to_string(&path).unwrap();
    let edited = text.replace("[broker]\n", "[broker]\nclient_id = \"desk-7\"\n");
    assert_ne!(edited, text);
    std::fs::write(&path, &edited).unwrap();
    h.state_mut().settings.as_mut().unwrap().config.relays[0].name = "From Settings".into();
    frames(&mut h);
    h.get_by_label("Save").click();
    wait_for(&mut h, "refused", |h| {
        has_text(h, "was changed by another program")
    });
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        edited,
        "the hand edit is kept"
    );
    wait_for(&mut h, "client id reloaded", |h| {
        h.state().model.config.broker.client_id.as_deref() == Some("desk-7")
    });

    // A broken edit: said so, and the panel keeps what it runs.
    h.get_by_label("Cancel").click();
    frames(&mut h);
    std::fs::write(&path, "[broker\nurl = ").unwrap();
    wait_for(&mut h, "broken edit shown", |h| {
        has_text(h, "changed on disk but cannot be used")
    });
    assert!(has_text(&h, "Hand edited"));
    assert_eq!(h.state().model.config.relays.len(), 2);
}

/// A save that changes nothing about the broker keeps the connection, the
/// response topic and the states confirmed in this session (none shows as
/// "from an earlier session"); one that does says the panel reconnects.
#[test]
fn save_keeps_the_session_unless_the_broker_changes() {
    let mut rig = GuiRig::start(3, Some(Faults::default()));
    let mut h = rig.panel();
    connected(&mut h);
    h.get_all_by_label("On").next().unwrap().click();
    wait_for(&mut h, "confirmed", |h| has_text(h, "confirmed in"));
    let topic = h.state().model.response_topic.clone();
    h.get_by_label("Settings").click();
    frames(&mut h);
    {
        let draft = h.state_mut().settings.as_mut().unwrap();
        draft.config.relays[1].name = "Renamed".into();
        // A new relay in front: every index moves.
        let mut first = draft.config.relays[2].clone();
        first.id = "r9".into();
        first.name = "New first".into();
        first.request_topic.push_str("/new");
        draft.config.relays.insert(0, first);
    }
    frames(&mut h);
    h.get_by_label("Save").click();
    let mut left_connected = false;
    wait_for(&mut h, "saved", |h| {
        h.state().settings.is_none() && h.state().model.config.relays.len() == 4
    });
    for _ in 0..20 {
        h.step();
        left_connected |= !h.state().model.connection.is_ready();
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(has_text(&h, "the connection and the states are kept"));
    assert!(!left_connected, "never left connected");
    assert_eq!(h.state().model.response_topic, topic);
    let status = &h.state().model.statuses[1];
    assert_eq!(h.state().model.config.relays[1].id, "r0");
    let ack = status
        .last_acknowledged
        .clone()
        .expect("r0's state kept at its new place");
    assert!(!ack.restored, "not from an earlier session");
    assert!(has_text(&h, "Renamed") && has_text(&h, "New first"));
    // The buttons now name relays by their new places (Even lists the
    // new relay, then r0).
    h.get_all_by_label("Off").nth(1).unwrap().click();
    wait_for(&mut h, "r0 switched again", |h| {
        h.state().model.audit.len() == 2
    });
    assert_eq!(h.state().model.audit[0].relay_id, "r0");
    assert_eq!(rig.devices().state("r0"), Some(RelayState::Off));

    h.get_by_label("Settings").click();
    frames(&mut h);
    h.state_mut()
        .settings
        .as_mut()
        .unwrap()
        .config
        .broker
        .request_timeout_ms = 2000;
    frames(&mut h);
    h.get_by_label("Save").click();
    wait_for(&mut h, "saved", |h| h.state().settings.is_none());
    assert!(has_text(
        &h,
        "the broker settings changed, so the panel reconnects"
    ));
    connected(&mut h);
    assert_ne!(h.state().model.response_topic, topic);
}

/// A new filter shows its first matches: the list scrolls to the top,
/// whatever the position before.
#[test]
fn new_filter_scrolls_to_the_top() {
    let mut rig = GuiRig::offline(300, |_| {});
    let mut h = rig.panel();
    frames(&mut h);
    assert!(h.query_by_label("Relay 0").is_some());
    h.key_press(egui::Key::End);
    frames(&mut h);
    assert!(h.query_by_label("Relay 0").is_none(), "scrolled to the end");
    // "Relay 1" matches Relay 1, 10–19, 100–199; the first row is group
    // Even's Relay 10.
    h.state_mut().filter = "Relay 1".into();
    frames(&mut h);
    assert!(
        h.query_by_label("Relay 10").is_some(),
        "the first match is on screen"
    );
}
