//! The window when devices speak for themselves, through egui_kittest
//! against a real Mosquitto and simulated devices: a device cut off from
//! the network, whose last will the broker publishes (its row, the
//! question before switching it, a group action that leaves it alone),
//! and a wall button pressed at the device (its row, the activity log,
//! Details). A retained last will the panel finds on subscribing is
//! published on the wire ([`common::Wire`]), as a broker would keep it.

mod common;
#[path = "common/gui_rig.rs"]
mod gui_rig;

use std::time::{Duration, SystemTime};

use common::Wire;
use egui_kittest::kittest::{NodeT, Queryable};
use gui_rig::{GuiRig, PanelHarness, badge_label, connected, frames, has_text, wait_for};
use relay_panel::config::{Config, RelayConfig};
use relay_panel::protocol::RelayState;
use relay_panel::relay::Availability;
use relay_panel::sim::Faults;

/// A rig whose only relay is a Shelly's switch 0 ("Porch light", device
/// `shelly-<run>`), served by the simulator.
fn shelly_rig() -> (GuiRig, String) {
    let device = format!("shelly-{:08x}", rand::random::<u32>());
    let rig = GuiRig::start_with(0, Some(Faults::default()), |config| {
        let mut porch = RelayConfig::shelly("porch", &device, 0);
        porch.name = "Porch light".into();
        porch.group = "Outside".into();
        config.relays.push(porch);
    });
    (rig, device)
}

/// A client on the rig's broker, standing in for the devices' own messages.
fn wire(rig: &GuiRig) -> Wire {
    let url = rig.broker.as_ref().expect("a broker").url();
    rig.rt.block_on(Wire::connect(&url))
}

/// Publishes on the wire from the test's thread.
fn publish(rig: &GuiRig, wire: &mut Wire, topic: &str, payload: &str, retain: bool) {
    rig.rt.block_on(wire.publish(topic, payload, retain));
}

/// "10:42": the time of day a row shows for `at` (today).
fn hhmm(at: SystemTime) -> String {
    chrono::DateTime::<chrono::Local>::from(at)
        .format("%H:%M")
        .to_string()
}

/// Whether one label holds every one of `parts`.
fn has_label_with(h: &PanelHarness, parts: &[&str]) -> bool {
    h.query_all_by_label_contains(parts[0]).any(|node| {
        let text = node
            .accesskit_node()
            .label()
            .or(node.value())
            .unwrap_or_default();
        parts.iter().all(|part| text.contains(part))
    })
}

/// Clicks the only button labelled `label`, then lets the window settle.
fn click(h: &mut PanelHarness, label: &str) {
    h.get_by_label(label).click();
    frames(h);
}

/// A device cut off from the network: once the broker publishes its last
/// will, its row reads *offline since HH:MM* beside its last known state
/// (the outcome of the request before is old news); On asks first
/// (Cancel sends nothing; "anyway" sends, and the request ends as no
/// response), Refresh asks the device without a dialog, and back online
/// the row says nothing more.
#[test]
fn offline_row_reads_offline_since_and_switching_it_asks_first() {
    let (mut rig, _) = shelly_rig();
    rig.config.relays[0].timeout_ms = Some(400);
    let mut h = rig.panel();
    connected(&mut h);
    click(&mut h, "On");
    wait_for(&mut h, "confirmed", |h| has_text(h, "confirmed in"));
    assert!(!has_text(&h, "offline since"), "nothing said while online");

    assert!(rig.devices().set_online("porch", false));
    wait_for(&mut h, "offline shown", |h| has_text(h, "offline since "));
    let Availability::Offline { since, retained } = h.state().model.statuses[0].availability else {
        panic!("offline in the model");
    };
    assert!(!retained, "heard live: the panel was subscribed");
    assert!(has_text(&h, &format!("offline since {}", hhmm(since))));
    assert_eq!(
        badge_label(&h),
        "State: ON, confirmed",
        "the last known state stays"
    );
    assert!(
        !has_text(&h, "confirmed in"),
        "the outcome from before the device went offline is old news"
    );

    // Off: the dialog asks, Cancel has the focus and sends nothing.
    click(&mut h, "Off");
    let question = format!(
        "Porch light's device is offline since {} (its last will). Switch it OFF anyway?",
        hhmm(since)
    );
    assert!(has_text(&h, &question), "the dialog asks");
    let cancel = h.get_by_label("Cancel");
    assert!(cancel.is_focused(), "Cancel is the default");
    cancel.click();
    frames(&mut h);
    assert!(h.state().confirmation.is_none());
    std::thread::sleep(Duration::from_millis(300));
    frames(&mut h);
    assert_eq!(h.state().model.audit.len(), 1, "nothing was sent");

    // "Switch off anyway" sends; the device, off the network, never
    // answers.
    click(&mut h, "Off");
    click(&mut h, "Switch off anyway");
    wait_for(&mut h, "no response", |h| {
        has_text(h, "no response after 0.4 s")
    });
    assert!(has_text(&h, "offline since "), "still offline");
    assert_eq!(badge_label(&h), "State: ON, confirmed");
    assert_eq!(rig.devices().state("porch"), Some(RelayState::On));

    // Refresh changes nothing: it asks no question.
    click(&mut h, "Refresh");
    assert!(h.state().confirmation.is_none(), "no dialog for a query");
    wait_for(&mut h, "queried", |h| h.state().model.audit.len() == 3);

    // Back online: the row says nothing more, and Off switches at once.
    assert!(rig.devices().set_online("porch", true));
    wait_for(&mut h, "online", |h| !has_text(h, "offline since"));
    click(&mut h, "Off");
    assert!(h.state().confirmation.is_none(), "online: no question");
    wait_for(&mut h, "confirmed off", |h| {
        h.query_by_label("State: OFF, confirmed").is_some()
    });
}

/// A retained last will found on subscribing (the device went offline
/// before the panel started): *offline since before HH:MM*, as the
/// broker cannot say since when.
#[test]
fn retained_last_will_reads_offline_since_before() {
    let (mut rig, device) = shelly_rig();
    let mut wire = wire(&rig);
    // Cut off first (the simulator's presence would say online again).
    assert!(rig.devices().set_online("porch", false));
    publish(&rig, &mut wire, &format!("{device}/online"), "false", true);
    let mut h = rig.panel();
    connected(&mut h);
    wait_for(&mut h, "offline shown", |h| {
        has_text(h, "offline since before ")
    });
    let Availability::Offline { since, retained } = h.state().model.statuses[0].availability else {
        panic!("offline in the model");
    };
    assert!(retained);
    assert!(has_text(
        &h,
        &format!("offline since before {}", hhmm(since))
    ));
}

/// Keyboard: Enter on the On button of an offline relay opens the
/// question with Cancel focused, so a second Enter cancels: nothing is
/// sent by two reflexive presses.
#[test]
fn enter_on_an_offline_relay_asks_and_enter_again_cancels() {
    let (mut rig, _) = shelly_rig();
    let mut h = rig.panel();
    connected(&mut h);
    assert!(rig.devices().set_online("porch", false));
    wait_for(&mut h, "offline shown", |h| has_text(h, "offline since "));
    h.key_press(egui::Key::ArrowDown);
    frames(&mut h);
    h.key_press(egui::Key::Enter);
    frames(&mut h);
    assert!(h.get_by_label("On").is_focused());
    h.key_press(egui::Key::Enter);
    frames(&mut h);
    assert!(has_text(&h, "Switch it ON anyway?"));
    assert!(h.get_by_label("Cancel").is_focused());
    h.key_press(egui::Key::Enter);
    frames(&mut h);
    assert!(h.state().confirmation.is_none(), "Enter cancelled");
    std::thread::sleep(Duration::from_millis(300));
    frames(&mut h);
    assert!(h.state().model.audit.is_empty(), "nothing was sent");
}

/// Four plain relays whose devices have a last-will topic
/// (`availability_topic`, payloads `online` / `offline`).
fn relays_with_wills(config: &mut Config) {
    for relay in &mut config.relays {
        relay.availability_topic = format!("{}/status", relay.request_topic);
    }
}

/// "All on" counts the group's offline relays ("1 offline"), names them,
/// and switches the rest; ticked, the offline one is sent to too (and,
/// off the network, never answers).
#[test]
fn group_action_counts_offline_relays_and_leaves_them_alone() {
    let mut rig = GuiRig::start_with(4, Some(Faults::default()), |config| {
        relays_with_wills(config);
        config.relays[2].timeout_ms = Some(400);
    });
    let mut h = rig.panel();
    connected(&mut h);
    assert!(rig.devices().set_online("r2", false));
    wait_for(&mut h, "r2 offline", |h| has_text(h, "offline since "));

    h.get_all_by_label("All on").next().unwrap().click();
    frames(&mut h);
    assert!(has_text(&h, "Switch 1 relay in Even ON?"));
    assert!(has_text(&h, "Left alone: 1 offline."));
    assert!(has_text(
        &h,
        "This relay's device is offline (last will): Relay 2."
    ));
    click(&mut h, "Switch 1 on");
    wait_for(&mut h, "summary", |h| has_text(h, "done — 1 / 1 confirmed"));
    assert_eq!(rig.devices().state("r0"), Some(RelayState::On));
    assert_eq!(
        rig.devices().state("r2"),
        Some(RelayState::Off),
        "offline: left alone"
    );

    h.get_all_by_label("All on").next().unwrap().click();
    frames(&mut h);
    click(&mut h, "Also switch it ON anyway");
    assert!(!has_text(&h, "Left alone:"), "ticked: nothing left alone");
    click(&mut h, "Switch 2 on");
    // The device off the network never answers.
    wait_for(&mut h, "summary", |h| {
        has_text(h, "done — 1 / 2 confirmed, 1 no response")
    });
    assert_eq!(rig.devices().state("r2"), Some(RelayState::Off));
    assert_eq!(
        rig.devices().state("r1"),
        Some(RelayState::Off),
        "the other group is untouched"
    );
}

/// A wall button pressed at the device: the row reads *reported by the
/// device just now (button)* with an outlined badge, the older request's
/// *confirmed in …* is gone from the row, the activity log says *at the
/// device* with the source, and Details names the report, the last
/// confirmation (by whom) and the availability.
#[test]
fn change_at_the_device_reads_in_row_activity_and_details() {
    let (mut rig, device) = shelly_rig();
    rig.config.panel.operator = Some("alice".into());
    let mut h = rig.panel();
    connected(&mut h);
    click(&mut h, "On");
    wait_for(&mut h, "confirmed", |h| has_text(h, "confirmed in"));

    // Someone presses the wall button: OFF, which no request explains.
    assert!(rig.devices().press("porch"));
    wait_for(&mut h, "change shown", |h| {
        has_text(h, "reported by the device just now (button)")
    });
    assert_eq!(badge_label(&h), "State: OFF, reported");
    assert!(
        !has_text(&h, "confirmed in"),
        "the older request's outcome would read as if OFF were confirmed"
    );
    assert!(has_text(&h, "at the device"), "who, in the activity log");
    assert!(h.query_by_label("changed at device").is_some());
    assert!(
        h.query_by_label("button").is_some(),
        "the source, as detail"
    );
    assert!(has_text(&h, "by alice"), "the request before it");

    click(&mut h, "Details");
    assert!(
        has_label_with(&h, &["OFF at ", "(button)"]),
        "the device's report"
    );
    assert!(
        has_label_with(&h, &["ON, confirmed at ", ", by alice"]),
        "the last confirmation, by whom"
    );
    assert!(
        has_label_with(&h, &["online since ", &format!("on {device}/online)")]),
        "the availability, with its topic"
    );
}

/// The demo is lively but calm: its Tank heater's device goes off the
/// network at the start (its last will, published by the embedded
/// broker: *offline since …*), and a few seconds in someone presses the
/// Hall lights' wall button (*reported by the device … (button)*, logged
/// *at the device*); every other device is online by its last will.
#[cfg(feature = "demo")]
#[test]
fn demo_shows_an_offline_device_and_a_wall_button() {
    use relay_panel::ui::{Panel, Source};

    let mut rig = GuiRig::offline(0, |_| {});
    let options = rig.options(Source::Demo, None);
    let mut h = gui_rig::harness(Panel::new(options, egui::Context::default()));
    connected(&mut h);
    wait_for(&mut h, "the heater offline", |h| {
        has_text(h, "offline since ")
    });
    let heater = h.state().model.relay_index("heater-1").unwrap();
    assert!(h.state().model.statuses[heater].availability.is_offline());
    let online = |id: &str| {
        h.state().model.statuses[h.state().model.relay_index(id).unwrap()]
            .availability
            .online()
    };
    assert_eq!(online("light-hall"), Some(true), "the others are online");
    assert_eq!(online("pump-1"), Some(true), "an mqtt5 relay's last will");
    assert_eq!(online("pump-2"), Some(true), "a Tasmota's last will");
    assert_eq!(online("bench-1"), Some(true), "a state relay's last will");
    wait_for(&mut h, "the wall button", |h| {
        has_text(h, "(button)") && has_text(h, "at the device")
    });
    assert!(has_text(&h, "reported by the device "));
}
