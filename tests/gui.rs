//! The panel driven through egui_kittest (click by label, read text)
//! against a real Mosquitto and simulated devices.

mod common;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use common::{Mosquitto, config};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use relay_panel::config::Config;
use relay_panel::engine::ConnectionState;
use relay_panel::protocol::RelayState;
use relay_panel::relay::{Acknowledgement, Phase, RelayStatus};
use relay_panel::sim::{self, Faults, SimHandle, SimOptions};
use relay_panel::ui::{Panel, PanelOptions, Prefs, Source};

/// A runtime for the engine and the devices, outside the UI thread.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn start_devices(rt: &tokio::runtime::Runtime, config: &Config, faults: Faults) -> SimHandle {
    let _guard = rt.enter();
    let (mut handle, _) = sim::spawn(SimOptions {
        config: config.clone(),
        faults,
        client_id: None,
    })
    .unwrap();
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), handle.ready())
            .await
            .unwrap()
    });
    handle
}

fn panel(rt: &tokio::runtime::Runtime, config: &Config, dir: &Path) -> Panel {
    let path = dir.join("panel.toml");
    config.save(&path).unwrap();
    Panel::new(PanelOptions {
        source: Source::File(path),
        config: Some(config.clone()),
        data_dir: Some(dir.join("data")),
        runtime: rt.handle().clone(),
        prefs: Prefs::default(),
    })
}

fn harness(panel: Panel) -> Harness<'static, Panel> {
    Harness::builder()
        .with_size(egui::vec2(1100.0, 700.0))
        .build_ui_state(|ui, panel: &mut Panel| panel.show(ui), panel)
}

/// Steps frames until `done` holds (events arrive from other threads).
fn wait_for(
    h: &mut Harness<'static, Panel>,
    what: &str,
    done: impl Fn(&Harness<'static, Panel>) -> bool,
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
fn frames(h: &mut Harness<'static, Panel>) {
    for _ in 0..4 {
        h.step();
    }
}

/// The state badge of the only relay shown, as read by a screen reader.
fn badge(h: &Harness<'static, Panel>) -> String {
    let badges: Vec<String> = ["ON", "OFF", "UNKNOWN"]
        .iter()
        .filter(|state| h.query_by_label(&format!("State: {state}")).is_some())
        .map(|s| s.to_string())
        .collect();
    assert_eq!(badges.len(), 1, "{badges:?}");
    badges[0].clone()
}

fn has_text(h: &Harness<'static, Panel>, text: &str) -> bool {
    h.query_all_by_label_contains(text).next().is_some()
}

fn connected(h: &mut Harness<'static, Panel>) {
    wait_for(h, "connected", |h| h.state().model.connection.is_ready());
}

/// Click "On": the row shows the request pending (badge unchanged), then ON
/// once the device confirmed.
#[test]
fn click_on_shows_pending_then_confirmed() {
    let rt = runtime();
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let config = config(&broker.url(), 1);
    let faults = Faults {
        latency: Duration::from_millis(600),
        ..Faults::default()
    };
    let devices = start_devices(&rt, &config, faults);
    let mut h = harness(panel(&rt, &config, dir.path()));
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
    assert_eq!(devices.state("r0"), Some(RelayState::On));
    // The activity panel lists it.
    wait_for(&mut h, "audit entry", |h| has_text(h, "1 entries"));
}

/// With no device, the row says "no response" and the badge is unchanged.
#[test]
fn no_device_shows_no_response() {
    let rt = runtime();
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&broker.url(), 1);
    config.relays[0].timeout_ms = Some(300);
    let mut h = harness(panel(&rt, &config, dir.path()));
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
    let rt = runtime();
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let config = config(&broker.url(), 1);
    let faults = Faults {
        fail: ["r0".to_owned()].into_iter().collect(),
        ..Faults::default()
    };
    let _devices = start_devices(&rt, &config, faults);
    let mut h = harness(panel(&rt, &config, dir.path()));
    connected(&mut h);
    h.get_by_label("On").click();
    wait_for(&mut h, "device error", |h| has_text(h, sim::FAIL_TEXT));
    assert_eq!(badge(&h), "UNKNOWN");
}

/// The filter narrows the rows to matching names, ids, groups and topics.
#[test]
fn filter_narrows_rows() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let mut config = config("mqtt://127.0.0.1:1", 4);
    config.relays[2].name = "Boiler feed".into();
    let mut h = harness(panel(&rt, &config, dir.path()));
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
    let rt = runtime();
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let config = config(&broker.url(), 4);
    let devices = start_devices(&rt, &config, Faults::default());
    let mut h = harness(panel(&rt, &config, dir.path()));
    connected(&mut h);
    h.get_all_by_label("All on").next().unwrap().click();
    frames(&mut h);
    assert!(has_text(&h, "Switch all 2 relays in Even ON?"));
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
    let rt = runtime();
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&broker.url(), 1);
    config.relays[0].confirm = true;
    let devices = start_devices(&rt, &config, Faults::default());
    let mut h = harness(panel(&rt, &config, dir.path()));
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

/// After a restart the last acknowledged state comes back from the store.
#[test]
fn last_acknowledged_state_shown_after_restart() {
    let rt = runtime();
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let config = config(&broker.url(), 1);
    let _devices = start_devices(&rt, &config, Faults::default());
    {
        let mut h = harness(panel(&rt, &config, dir.path()));
        connected(&mut h);
        h.get_by_label("On").click();
        wait_for(&mut h, "confirmed", |h| has_text(h, "confirmed in"));
        let closing = h.state().closing();
        drop(h);
        // Closing the window disconnects and flushes the store.
        let tasks: Vec<_> = closing.lock().unwrap().drain(..).collect();
        rt.block_on(async {
            for task in tasks {
                task.await.unwrap();
            }
        });
    }
    let mut h = harness(panel(&rt, &config, dir.path()));
    wait_for(&mut h, "restored state", |h| {
        h.query_by_label("State: ON").is_some()
    });
    assert!(has_text(&h, "last acknowledged"));
    let status = &h.state().model.statuses[0];
    assert!(status.last_acknowledged.unwrap().restored);
}

/// Settings: adding a relay and saving writes the file atomically and
/// the panel reloads with it.
#[test]
fn settings_edit_is_saved_and_reloaded() {
    let rt = runtime();
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let config = config(&broker.url(), 1);
    let mut h = harness(panel(&rt, &config, dir.path()));
    connected(&mut h);
    h.get_by_label("Settings").click();
    frames(&mut h);
    h.get_by_label("Add relay").click();
    frames(&mut h);
    h.get_by_label("Save").click();
    wait_for(&mut h, "saved", |h| has_text(h, "Saved "));
    let saved = Config::load(&dir.path().join("panel.toml")).unwrap();
    assert_eq!(saved.relays.len(), 2);
    assert_eq!(saved.relays[1].id, "relay-2");
    wait_for(&mut h, "new relay listed", |h| has_text(h, "relay-2"));
    connected(&mut h);
}

/// Settings refuse to save an invalid configuration and say why.
#[test]
fn settings_show_problems_and_refuse_to_save() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let config = config("mqtt://127.0.0.1:1", 1);
    let mut h = harness(panel(&rt, &config, dir.path()));
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
    let on_disk = Config::load(&dir.path().join("panel.toml")).unwrap();
    assert_eq!(
        on_disk.relays[0].request_topic,
        config.relays[0].request_topic
    );
}

/// With no configuration file the window explains where it goes and
/// offers the demo.
#[test]
fn first_run_explains_and_offers_demo() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let panel = Panel::new(PanelOptions {
        source: Source::Missing(path.clone()),
        config: None,
        data_dir: Some(dir.path().join("data")),
        runtime: rt.handle().clone(),
        prefs: Prefs::default(),
    });
    let mut h = harness(panel);
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
fn snapshot_panel(rt: &tokio::runtime::Runtime) -> Panel {
    let config = relay_panel::demo::demo_config(1883);
    let mut panel = Panel::new(PanelOptions {
        source: Source::File("/etc/relay-panel/config.toml".into()),
        config: None,
        data_dir: None,
        runtime: rt.handle().clone(),
        prefs: Prefs::default(),
    });
    panel.model.set_config(config);
    panel.model.connection = ConnectionState::Connected;
    panel.model.response_topic = "relay-panel/relay-panel-0123456789ab/response".into();
    let now = SystemTime::now();
    let ack = |state, secs: u64, rtt_us: u64| {
        Some(Acknowledgement {
            state,
            requested: now - Duration::from_secs(secs),
            at: now - Duration::from_secs(secs),
            rtt: Duration::from_micros(rtt_us),
            late: false,
            restored: false,
        })
    };
    panel.model.statuses[0] = RelayStatus {
        phase: Phase::Confirmed {
            state: RelayState::On,
            at: now,
            rtt: Duration::from_micros(3100),
        },
        last_acknowledged: ack(RelayState::On, 12, 3100),
    };
    panel.model.statuses[1].last_acknowledged = ack(RelayState::Off, 300, 2400);
    panel.model.statuses[3] = RelayStatus {
        phase: Phase::Failed {
            reason: relay_panel::relay::Failure::NoResponse {
                after: Duration::from_secs(3),
            },
            at: now,
        },
        last_acknowledged: ack(RelayState::Off, 7200, 1900),
    };
    panel.prefs.show_activity = false;
    panel
}

/// An image snapshot of the main view catches visual regressions.
#[cfg(feature = "demo")]
#[test]
fn main_view_snapshot() {
    let rt = runtime();
    let mut h = Harness::builder()
        .with_size(egui::vec2(1100.0, 520.0))
        .wgpu()
        .build_ui_state(|ui, panel: &mut Panel| panel.show(ui), snapshot_panel(&rt));
    h.run_steps(3);
    h.snapshot("main_view");
}

/// A broker outage is shown in the connection bar, then the recovery; a
/// relay switched afterwards is confirmed.
#[test]
fn outage_and_recovery_are_shown() {
    let rt = runtime();
    let mut broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let config = config(&broker.url(), 1);
    let mut devices = start_devices(&rt, &config, Faults::default());
    let mut h = harness(panel(&rt, &config, dir.path()));
    connected(&mut h);
    assert!(has_text(&h, "connected"));
    broker.stop();
    wait_for(&mut h, "outage shown", |h| {
        has_text(h, "reconnecting in") && has_text(h, "connection refused")
    });
    // While down, the switch buttons are disabled: nothing can be sent.
    assert!(!h.state().model.connection.is_ready());
    broker.resume();
    connected(&mut h);
    assert!(!has_text(&h, "reconnecting in"));
    rt.block_on(async {
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
    let rt = runtime();
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::write(
        dir.path().join("data").join(relay_panel::store::STORE_FILE),
        b"garbage, not a database",
    )
    .unwrap();
    let config = config(&broker.url(), 1);
    let mut h = harness(panel(&rt, &config, dir.path()));
    wait_for(&mut h, "warning", |h| has_text(h, "was corrupted"));
    connected(&mut h);
}

/// A crash in the engine is shown in the connection bar (never a silent
/// "connected" window), with Retry; Retry starts a new engine that
/// connects and switches.
#[test]
fn engine_crash_is_shown_and_retry_recovers() {
    let rt = runtime();
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let config = config(&broker.url(), 1);
    let _devices = start_devices(&rt, &config, Faults::default());
    let mut h = harness(panel(&rt, &config, dir.path()));
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
