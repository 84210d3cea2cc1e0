//! The window under a technician's hands, through egui_kittest: rows that
//! stay readable from 800×600 to 2560×1440 (nothing cut to "…" that has
//! room, nothing drawn over anything else), notices that move nothing,
//! and a relay list worked from the keyboard.

mod common;
#[path = "common/gui_rig.rs"]
mod gui_rig;

use std::time::{Duration, SystemTime};

use egui_kittest::Node;
use egui_kittest::kittest::{NodeT, Queryable};
use gui_rig::{GuiRig, PanelHarness, connected, frames, harness_sized, has_text, wait_for};
use relay_panel::config::Config;
use relay_panel::engine::{ConnectionState, Event};
use relay_panel::protocol::{Action, RelayState};
use relay_panel::relay::{
    Acknowledgement, Availability, DeviceReport, Failure, Phase, RelayStatus,
};
use relay_panel::sim::{self, Faults};
use relay_panel::ui::{Panel, Source};

/// A 60-character relay name.
const LONG_NAME: &str = "Basement north wing circulation pump 3, emergency override A";

/// Width of `text` on one line in the body font, uncut.
fn natural_width(h: &PanelHarness, text: &str) -> f32 {
    let font = egui::TextStyle::Body.resolve(&h.ctx.global_style());
    h.ctx
        .fonts_mut(|f| f.layout_no_wrap(text.to_owned(), font, egui::Color32::WHITE))
        .size()
        .x
}

/// The label whose text contains `text` (exactly one).
fn label<'h>(h: &'h PanelHarness, text: &'h str) -> Node<'h> {
    let mut found: Vec<Node<'_>> = h.get_all_by_label_contains(text).collect();
    assert_eq!(found.len(), 1, "one label with {text:?}");
    found.remove(0)
}

/// Asserts that `text` is shown whole (not cut to "…") inside the window.
fn shown_whole(h: &PanelHarness, text: &str, window: egui::Rect) {
    let node = label(h, text);
    let full = node
        .accesskit_node()
        .label()
        .or(node.value())
        .unwrap_or_default();
    let rect = node.rect();
    assert!(
        rect.width() + 0.5 >= natural_width(h, &full),
        "{full:?} is cut: {:.0} px shown of {:.0}",
        rect.width(),
        natural_width(h, &full)
    );
    assert!(
        window.contains_rect(rect),
        "{full:?} at {rect:?} is outside {window:?}"
    );
}

/// The rectangles of every button labelled `text`.
fn buttons(h: &PanelHarness, text: &str) -> Vec<egui::Rect> {
    h.query_all_by_role_and_label(egui::accesskit::Role::Button, text)
        .map(|n| n.rect())
        .collect()
}

/// The rectangles of every row button (On, Off, Refresh, Details).
fn row_buttons(h: &PanelHarness) -> Vec<egui::Rect> {
    ["On", "Off", "Refresh", "Details"]
        .iter()
        .flat_map(|b| buttons(h, b))
        .collect()
}

/// Whether two rectangles share more than an edge.
fn overlap(a: egui::Rect, b: egui::Rect) -> bool {
    a.intersect(b).is_positive() && a.intersect(b).area() > 1.0
}

/// The label of the focused widget, if any.
fn focused(h: &PanelHarness) -> Option<String> {
    h.query_all_by(|n| n.is_focused())
        .next()
        .map(|n| n.accesskit_node().label().unwrap_or_default())
}

/// A panel with no engine, showing `config` as connected, with statuses
/// set by the test (nothing changes them).
fn fixed_panel(rig: &mut GuiRig, config: Config, size: egui::Vec2) -> PanelHarness {
    let mut options = rig.options(Source::File(rig.config_path()), None);
    options.data_dir = None;
    let mut panel = Panel::new(options, egui::Context::default());
    panel.model.set_config(config);
    panel.model.connection = ConnectionState::Connected;
    panel.model.response_topic = "relay-panel/relay-panel-0123456789ab/response".into();
    panel.prefs.show_activity = false;
    let mut h = harness_sized(panel, size);
    frames(&mut h);
    h
}

/// A relay in each state a row can show: confirmed, waiting (spinner and
/// countdown), a device error, no response; and one with a 60-character
/// name.
fn every_state(h: &mut PanelHarness) {
    let now = SystemTime::now();
    let ack = |state, secs| {
        Some(Acknowledgement {
            state,
            requested: now - Duration::from_secs(secs),
            at: now - Duration::from_secs(secs),
            rtt: Duration::from_micros(2100),
            late: false,
            restored: false,
            evidence: relay_panel::outcome::Evidence::Correlated,
            operator: None,
        })
    };
    let statuses = &mut h.state_mut().model.statuses;
    statuses[0] = RelayStatus {
        phase: Phase::Confirmed {
            state: RelayState::On,
            at: now,
            rtt: Duration::from_micros(2100),
            evidence: relay_panel::outcome::Evidence::Correlated,
        },
        last_acknowledged: ack(RelayState::On, 12),
        ..RelayStatus::default()
    };
    statuses[1] = RelayStatus {
        phase: Phase::Pending {
            requested: Action::Off,
            since: now,
            deadline: now + Duration::from_secs(30),
        },
        last_acknowledged: ack(RelayState::On, 300),
        ..RelayStatus::default()
    };
    statuses[2] = RelayStatus {
        phase: Phase::Failed {
            reason: Failure::DeviceError {
                text: sim::FAIL_TEXT.to_owned(),
            },
            at: now,
            request: None,
        },
        last_acknowledged: ack(RelayState::Off, 7300),
        ..RelayStatus::default()
    };
    statuses[3] = RelayStatus {
        phase: Phase::Failed {
            reason: Failure::NoResponse {
                after: Duration::from_secs(3),
            },
            at: now,
            request: None,
        },
        last_acknowledged: None,
        ..RelayStatus::default()
    };
    // The long name's device is offline (a retained last will heard on
    // subscribing), its request's outcome older than that.
    statuses[4] = RelayStatus {
        phase: Phase::Failed {
            reason: Failure::NoResponse {
                after: Duration::from_secs(3),
            },
            at: now - Duration::from_secs(900),
            request: None,
        },
        last_acknowledged: ack(RelayState::Off, 3600),
        availability: Availability::Offline {
            since: now - Duration::from_secs(600),
            retained: true,
        },
        ..RelayStatus::default()
    };
    // Switched at the device (a wall button) after a confirmation.
    statuses[5] = RelayStatus {
        phase: Phase::Confirmed {
            state: RelayState::On,
            at: now - Duration::from_secs(60),
            rtt: Duration::from_micros(2100),
            evidence: relay_panel::outcome::Evidence::Correlated,
        },
        last_acknowledged: ack(RelayState::On, 60),
        device_report: Some(DeviceReport {
            state: RelayState::Off,
            at: now - Duration::from_secs(30),
            source: Some("button".into()),
            retained: false,
            restored: false,
        }),
        ..RelayStatus::default()
    };
    frames(h);
}

fn config_with_long_name(n: usize) -> Config {
    let mut config = common::config("mqtt://127.0.0.1:1", n);
    config.relays[4].name = LONG_NAME.to_owned();
    config
}

/// At 800×600, with real devices: a device error, *no response* and the
/// countdown are shown whole, inside the window, over no button, and the
/// spinner is drawn beside the On button, not over it.
#[test]
fn narrow_window_shows_whole_outcomes_over_no_button() {
    let faults = Faults {
        fail: ["r0".to_owned()].into_iter().collect(),
        ..Faults::default()
    };
    let mut rig = GuiRig::start(3, Some(faults));
    // r1 and r2 on topics no device listens to: r1 times out at once,
    // r2 waits (spinner, countdown) for a long time.
    rig.config.relays[1].request_topic.push_str("/nobody");
    rig.config.relays[1].timeout_ms = Some(300);
    rig.config.relays[2].request_topic.push_str("/nobody");
    rig.config.relays[2].timeout_ms = Some(60_000);
    let size = egui::vec2(800.0, 600.0);
    let window = egui::Rect::from_min_size(egui::Pos2::ZERO, size);
    let mut h = rig.panel_sized(size);
    connected(&mut h);
    for relay in ["r0", "r1", "r2"] {
        let index = h.state().model.relay_index(relay).unwrap();
        h.state_mut().apply(relay_panel::ui::Intent::Switch {
            relay: index,
            action: Action::On,
        });
    }
    wait_for(&mut h, "all three outcomes", |h| {
        has_text(h, sim::FAIL_TEXT)
            && has_text(h, "no response after 0.3 s")
            && has_text(h, "waiting for device")
    });
    let texts = [
        format!("device error: {}", sim::FAIL_TEXT),
        "no response after 0.3 s".to_owned(),
        "waiting for device".to_owned(),
    ];
    let row_buttons = row_buttons(&h);
    for text in &texts {
        shown_whole(&h, text, window);
        let rect = label(&h, text).rect();
        for button in &row_buttons {
            assert!(
                !overlap(rect, *button),
                "{text:?} {rect:?} over a button {button:?}"
            );
        }
    }
    let spinner = h
        .get_by_role(egui::accesskit::Role::ProgressIndicator)
        .rect();
    for on in buttons(&h, "On") {
        assert!(!overlap(spinner, on), "spinner {spinner:?} over On {on:?}");
    }
}

/// At every window size from 800×600 to 2560×1440, no widget is drawn
/// over another, every one lies inside the window, and the outcomes are
/// whole, an offline device's *offline since before …* and a change at
/// the device's *reported by the device … (button)* too (the outcomes
/// older than them are not shown); from 1920 px on, a 60-character name
/// is whole too.
#[test]
fn rows_are_readable_at_every_size() {
    let sizes = [
        (800.0, 600.0),
        (1024.0, 768.0),
        (1100.0, 700.0),
        (1280.0, 800.0),
        (1920.0, 1080.0),
        (2560.0, 1440.0),
    ];
    for (width, height) in sizes {
        let mut rig = GuiRig::offline(0, |_| {});
        let size = egui::vec2(width, height);
        let window = egui::Rect::from_min_size(egui::Pos2::ZERO, size);
        let mut h = fixed_panel(&mut rig, config_with_long_name(6), size);
        every_state(&mut h);
        for text in [
            format!("device error: {}", sim::FAIL_TEXT),
            "no response after 3.0 s".to_owned(),
            "waiting for device".to_owned(),
            "confirmed in".to_owned(),
            "last acknowledged 2 h ago".to_owned(),
            "offline since before ".to_owned(),
            "reported by the device ".to_owned(),
        ] {
            shown_whole(&h, &text, window);
        }
        assert_eq!(
            h.query_all_by_label_contains("no response after").count(),
            1,
            "the offline relay's older failure is not shown"
        );
        if width >= 1920.0 {
            shown_whole(&h, LONG_NAME, window);
        }
        // The scroll bar floats over the list's right edge: no row
        // button under it.
        let bar = h.ctx.global_style().spacing.scroll;
        let list_right =
            width - 8.0 - (bar.bar_inner_margin + bar.bar_width + bar.bar_outer_margin);
        for button in row_buttons(&h) {
            assert!(
                button.right() <= list_right + 0.5,
                "{width}×{height}: a row button at {button:?} is under the scroll bar (from {list_right})"
            );
        }
        nothing_overlaps(&h, window, &format!("{width}×{height}"));
    }
}

/// Every leaf widget's name and rectangle (buttons, labels, spinners).
fn leaves(h: &PanelHarness) -> Vec<(String, egui::Rect)> {
    h.query_all_by(|n| {
        matches!(
            n.role(),
            egui::accesskit::Role::Button
                | egui::accesskit::Role::Label
                | egui::accesskit::Role::ProgressIndicator
        )
    })
    .map(|n| {
        let name = n.accesskit_node().label().or(n.value()).unwrap_or_default();
        (name, n.rect())
    })
    .collect()
}

/// Asserts that no two leaves overlap and all lie inside `window`.
fn nothing_overlaps(h: &PanelHarness, window: egui::Rect, what: &str) {
    let leaves = leaves(h);
    for (i, (a, ra)) in leaves.iter().enumerate() {
        assert!(
            window.contains_rect(*ra),
            "{what}: {a:?} at {ra:?} is outside the window"
        );
        for (b, rb) in &leaves[i + 1..] {
            assert!(
                !overlap(*ra, *rb),
                "{what}: {a:?} {ra:?} and {b:?} {rb:?} overlap"
            );
        }
    }
}

/// A long broker URL and a failed connection with a long reason: the top
/// bar's left part is cut before its buttons, the reason wraps on a line
/// of its own (whole, no tooltip repeating it), at 800 and 1100 px.
#[test]
fn top_bar_fits_a_long_url_and_reason() {
    let reason = "connection to broker broker.plant-north.example.com:8883 refused: \
                  not authorised (check the user name and password in Settings)";
    for width in [800.0, 1100.0] {
        let mut rig = GuiRig::offline(0, |_| {});
        let size = egui::vec2(width, 700.0);
        let mut config = common::config("mqtts://broker.plant-north.example.com:8883", 4);
        config.broker.url = "mqtts://broker.plant-north.example.com:8883".into();
        let mut h = fixed_panel(&mut rig, config, size);
        h.state_mut().model.connection = ConnectionState::Failed {
            reason: reason.to_owned(),
        };
        frames(&mut h);
        nothing_overlaps(
            &h,
            egui::Rect::from_min_size(egui::Pos2::ZERO, size),
            &format!("{width} px"),
        );
        let shown = label(&h, "not authorised");
        assert!(shown.rect().height() > 0.0);
        shown.hover();
        frames(&mut h);
        assert_eq!(
            h.query_all_by_label_contains("not authorised").count(),
            1,
            "{width} px: the reason is shown more than once on hover"
        );
        assert!(h.query_by_label("Retry").is_some());
    }
}

/// At 1920 px the long name is whole and its buttons sit right after it,
/// not across an empty screen.
#[test]
fn wide_window_keeps_the_buttons_by_the_name() {
    let mut rig = GuiRig::offline(0, |_| {});
    let size = egui::vec2(1920.0, 1080.0);
    let mut h = fixed_panel(&mut rig, config_with_long_name(6), size);
    let name = label(&h, LONG_NAME).rect();
    let on = buttons(&h, "On")
        .into_iter()
        .find(|b| (b.center().y - name.center().y).abs() < 8.0)
        .expect("an On button on the name's line");
    assert!(
        on.left() - name.right() < 40.0,
        "On at {on:?}, name ends at {:.0}",
        name.right()
    );
    // A short name does not push them away either: the name column is as
    // wide as the widest name needs.
    h.state_mut()
        .model
        .set_config(common::config("mqtt://127.0.0.1:1", 6));
    frames(&mut h);
    let on = buttons(&h, "On")[0];
    assert!(on.left() < 500.0, "On at {on:?} with short names");
}

/// A notice (here *Saved*, through Settings → Save) and a warning appear
/// without moving a row: a click aimed at one lands on it.
#[test]
fn notices_and_warnings_move_no_row() {
    let mut rig = GuiRig::start(4, None);
    let mut h = rig.panel();
    connected(&mut h);
    let before = buttons(&h, "On");
    h.get_by_label("Settings").click();
    frames(&mut h);
    h.get_by_label("Save").click();
    wait_for(&mut h, "saved", |h| has_text(h, "Saved "));
    connected(&mut h);
    frames(&mut h);
    assert_eq!(buttons(&h, "On"), before, "the Saved notice moved the rows");
    h.state_mut()
        .model
        .apply(Event::Warning("the store is read-only".into()));
    frames(&mut h);
    assert!(has_text(&h, "the store is read-only"));
    assert_eq!(buttons(&h, "On"), before, "a warning moved the rows");
    h.get_by_label("Dismiss").click();
    h.get_by_label("Dismiss warnings").click();
    frames(&mut h);
    assert!(!has_text(&h, "Saved "));
    assert_eq!(buttons(&h, "On"), before, "dismissing moved the rows");
}

/// Tab goes left to right within a row: On → Off → Refresh → Details.
#[test]
fn tab_goes_left_to_right_within_a_row() {
    let mut rig = GuiRig::offline(0, |_| {});
    let mut h = fixed_panel(
        &mut rig,
        config_with_long_name(6),
        egui::vec2(1100.0, 700.0),
    );
    h.state_mut().model.connection = ConnectionState::Connected;
    h.get_all_by_label("On").next().unwrap().focus();
    frames(&mut h);
    let mut order = vec![focused(&h).unwrap()];
    for _ in 0..3 {
        h.key_press(egui::Key::Tab);
        frames(&mut h);
        order.push(focused(&h).unwrap());
    }
    assert_eq!(order, ["On", "Off", "Refresh", "Details"]);
}

/// ↓ ↑ Page Down/Up, Home and End move a visible selection through 300
/// relays and scroll it into view; group headings are skipped.
#[test]
fn keys_move_the_selection_and_scroll_to_it() {
    let mut rig = GuiRig::offline(0, |_| {});
    let mut h = fixed_panel(
        &mut rig,
        common::config("mqtt://127.0.0.1:1", 300),
        egui::vec2(1100.0, 700.0),
    );
    let selected = |h: &PanelHarness| h.state().list.selected;
    let list_top = h.get_by_label("Refresh all").rect().bottom();
    let list_bottom = h.get_by_label("F1: keyboard shortcuts").rect().top();
    // The selected relay's name is on screen (rows off screen are not laid out).
    let in_view = |h: &PanelHarness, relay: usize| {
        let name = format!("Relay {relay}");
        h.query_by_label(&name)
            .is_some_and(|n| n.rect().top() > list_top && n.rect().bottom() <= list_bottom)
    };
    assert_eq!(selected(&h), None);
    h.key_press(egui::Key::ArrowDown);
    frames(&mut h);
    assert_eq!(selected(&h), Some(0), "↓ selects the first relay");
    h.key_press(egui::Key::ArrowDown);
    frames(&mut h);
    assert_eq!(
        selected(&h),
        Some(2),
        "the next relay of the group (Even: 0, 2, 4…)"
    );
    h.key_press(egui::Key::End);
    frames(&mut h);
    assert_eq!(selected(&h), Some(299));
    assert!(in_view(&h, 299), "End scrolls to the last relay");
    h.key_press(egui::Key::Home);
    frames(&mut h);
    assert_eq!(selected(&h), Some(0));
    assert!(in_view(&h, 0));
    h.key_press(egui::Key::PageDown);
    frames(&mut h);
    let page = selected(&h).unwrap();
    assert!(page > 20, "Page Down moves a screenful, got to {page}");
    assert!(in_view(&h, page));
    for _ in 0..3 {
        h.key_press(egui::Key::PageDown);
    }
    frames(&mut h);
    let far = selected(&h).unwrap();
    assert!(in_view(&h, far), "Page Down ×3 to {far}");
    h.key_press(egui::Key::PageUp);
    h.key_press(egui::Key::ArrowUp);
    frames(&mut h);
    let back = selected(&h).unwrap();
    assert!(back < far && in_view(&h, back));
}

/// Tab onto a row below the viewport scrolls it into view (and selects it).
#[test]
fn focus_on_a_row_below_the_viewport_scrolls_to_it() {
    let mut rig = GuiRig::offline(0, |_| {});
    let mut h = fixed_panel(
        &mut rig,
        common::config("mqtt://127.0.0.1:1", 300),
        egui::vec2(1100.0, 700.0),
    );
    let list_bottom = h.get_by_label("F1: keyboard shortcuts").rect().top();
    let last_whole = h
        .get_all_by_label("Details")
        .filter(|n| n.rect().bottom() <= list_bottom)
        .max_by(|a, b| a.rect().top().total_cmp(&b.rect().top()))
        .unwrap();
    last_whole.focus();
    frames(&mut h);
    assert_eq!(focused(&h).as_deref(), Some("Details"));
    h.key_press(egui::Key::Tab);
    frames(&mut h);
    let focus = h.query_all_by(|n| n.is_focused()).next().unwrap();
    assert_eq!(focus.accesskit_node().label().as_deref(), Some("On"));
    assert!(
        focus.rect().bottom() <= list_bottom,
        "the focused On at {:?} is below the list (ends at {list_bottom})",
        focus.rect()
    );
    assert!(h.state().list.selected.is_some());
}

/// Enter goes to the selected row's buttons (On first) and presses one;
/// after On the focus is not thrown to the top bar: the next Enter does
/// not hide the activity panel, it goes back to the row.
#[test]
fn enter_works_the_selected_row_and_focus_stays_there() {
    let faults = Faults {
        latency: Duration::from_millis(300),
        ..Faults::default()
    };
    let mut rig = GuiRig::start(2, Some(faults));
    let mut h = rig.panel();
    connected(&mut h);
    h.key_press(egui::Key::ArrowDown);
    frames(&mut h);
    h.key_press(egui::Key::Enter);
    frames(&mut h);
    assert_eq!(focused(&h).as_deref(), Some("On"));
    h.key_press(egui::Key::Enter);
    wait_for(&mut h, "pending", |h| has_text(h, "waiting for device"));
    assert_ne!(focused(&h).as_deref(), Some("Hide activity"));
    h.key_press(egui::Key::Enter);
    frames(&mut h);
    assert!(
        h.state().prefs.show_activity,
        "Enter hid the activity panel"
    );
    wait_for(&mut h, "confirmed", |h| has_text(h, "confirmed in"));
    assert_eq!(rig.devices().state("r0"), Some(RelayState::On));
    // Escape leaves the buttons; Enter comes back to the row's On.
    h.key_press(egui::Key::Escape);
    frames(&mut h);
    assert_eq!(focused(&h), None);
    h.key_press(egui::Key::Enter);
    frames(&mut h);
    assert_eq!(focused(&h).as_deref(), Some("On"));
    // → to Off, ↓ keeps the column in the next relay's row.
    h.key_press(egui::Key::ArrowRight);
    frames(&mut h);
    assert_eq!(focused(&h).as_deref(), Some("Off"));
    h.key_press(egui::Key::ArrowDown);
    frames(&mut h);
    assert_eq!(focused(&h).as_deref(), Some("Off"));
    let r0 = h.state().model.relay_index("r0");
    assert_ne!(h.state().list.selected, r0, "↓ moved the selection");
}

/// F5 and Ctrl+R refresh all: every relay is asked and confirmed.
#[test]
fn f5_and_ctrl_r_refresh_all() {
    let mut rig = GuiRig::start(3, Some(Faults::default()));
    let mut h = rig.panel();
    connected(&mut h);
    h.key_press(egui::Key::F5);
    wait_for(&mut h, "all confirmed by F5", |h| {
        h.query_all_by_label("State: OFF, confirmed").count() == 3
    });
    h.state_mut()
        .model
        .statuses
        .iter_mut()
        .for_each(|s| *s = RelayStatus::default());
    frames(&mut h);
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::R);
    wait_for(&mut h, "all confirmed by Ctrl+R", |h| {
        h.query_all_by_label("State: OFF, confirmed").count() == 3
    });
}

/// F1 and `?` open the list of keys; Escape closes it.
#[test]
fn f1_and_question_mark_show_the_keys() {
    let mut rig = GuiRig::offline(0, |_| {});
    let mut h = fixed_panel(
        &mut rig,
        common::config("mqtt://127.0.0.1:1", 4),
        egui::vec2(1100.0, 700.0),
    );
    h.key_press(egui::Key::F1);
    frames(&mut h);
    assert!(has_text(&h, "Refresh all (relays with a query payload)"));
    h.key_press(egui::Key::Escape);
    frames(&mut h);
    assert!(!has_text(&h, "Refresh all (relays with a query payload)"));
    h.event(egui::Event::Text("?".into()));
    frames(&mut h);
    assert!(has_text(&h, "Refresh all (relays with a query payload)"));
}

/// Escape in the filter clears it; keys typed there are text, not
/// shortcuts; and no key acts while a confirmation dialog is open.
#[test]
fn keys_leave_text_fields_and_dialogs_alone() {
    let mut rig = GuiRig::offline(0, |_| {});
    let mut config = common::config("mqtt://127.0.0.1:1", 4);
    config.relays[0].confirm = true;
    let mut h = fixed_panel(&mut rig, config, egui::vec2(1100.0, 700.0));
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::F);
    frames(&mut h);
    h.event(egui::Event::Text("relay?".into()));
    h.key_press(egui::Key::ArrowDown);
    h.key_press(egui::Key::End);
    frames(&mut h);
    assert_eq!(h.state().filter, "relay?");
    assert_eq!(
        h.state().list.selected,
        None,
        "arrows in the filter moved the selection"
    );
    assert!(
        !has_text(&h, "Keyboard shortcuts"),
        "? in the filter opened the help"
    );
    h.key_press(egui::Key::Escape);
    frames(&mut h);
    assert_eq!(h.state().filter, "", "Escape clears the filter");
    // A second Escape leaves the empty filter: the keys work the list again.
    h.key_press(egui::Key::Escape);
    frames(&mut h);
    h.key_press(egui::Key::ArrowDown);
    frames(&mut h);
    assert_eq!(h.state().list.selected, Some(0));
    // On for a relay with confirm = true: the dialog asks; ↓ and F5 do nothing.
    h.get_all_by_label("On").next().unwrap().click();
    frames(&mut h);
    assert!(has_text(&h, "Switch Relay 0 (r0) ON?"));
    h.key_press(egui::Key::ArrowDown);
    h.key_press(egui::Key::F1);
    frames(&mut h);
    assert_eq!(h.state().list.selected, Some(0));
    assert!(!has_text(&h, "Keyboard shortcuts"));
}
