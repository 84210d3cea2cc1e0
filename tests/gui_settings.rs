//! The settings window, the first-run screen and the detail window's
//! placement, driven through egui_kittest (click by label, read the
//! accessibility tree's text and rectangles); a real Mosquitto where the
//! connection state matters.

mod common;

#[path = "common/gui_rig.rs"]
mod gui_rig;

use common::config;
use egui::accesskit::Role;
use egui_kittest::kittest::{By, NodeT, Queryable};
use gui_rig::{GuiRig, PanelHarness, harness, has_text, wait_for};
use relay_panel::config::{Config, EXAMPLE};
use relay_panel::ui::{Panel, Source};

/// A panel on `text` written to `panel.toml` and loaded.
fn panel_on_file(rig: &mut GuiRig, text: &str) -> PanelHarness {
    std::fs::write(rig.config_path(), text).unwrap();
    let config = Config::load(&rig.config_path()).unwrap();
    let options = rig.options(Source::File(rig.config_path()), Some(config));
    harness(Panel::new(options, egui::Context::default()))
}

/// A panel on `config`, saved to `panel.toml`.
fn panel_on(rig: &mut GuiRig, config: Config) -> PanelHarness {
    rig.config = config;
    rig.panel()
}

/// Runs frames enough for windows and tables to lay out and a scroll to
/// animate (twice the rig's [`gui_rig::frames`]).
fn frames(h: &mut PanelHarness) {
    gui_rig::frames(h);
    gui_rig::frames(h);
}

/// Opens the settings window.
fn open_settings(h: &mut PanelHarness) {
    h.step();
    h.get_by_label("Settings").click();
    frames(h);
}

/// The rectangles and texts of the relay table's fields named `name`
/// (most are named by their column's heading), top to bottom.
fn column_cells(h: &PanelHarness, name: &str) -> Vec<(egui::Rect, String)> {
    let mut cells: Vec<(egui::Rect, String)> = h
        .query_all(By::new().label(name).role(Role::TextInput))
        .map(|node| (node.rect(), node.value().unwrap_or_default()))
        .collect();
    cells.sort_by(|a, b| a.0.top().total_cmp(&b.0.top()));
    cells
}

/// The relay table's heading `heading`.
fn heading_rect(h: &PanelHarness, heading: &str) -> egui::Rect {
    h.get(By::new().label(heading).role(Role::Label).include_labels())
        .rect()
}

/// A hand-written configuration: no default spelled out except one, a
/// comment, a literal string.
const HAND_WRITTEN: &str = "# the lab\n[broker]\nurl = \"mqtt://127.0.0.1:1\"\n\n[[relay]]\nid = \"pump\" # basement\nrequest_topic = 'dev/pump'\n\n[[relay]]\nid = \"fan\"\nrequest_topic = \"dev/fan\"\npayload_off = \"0\"\n";

/// Saving from the settings window writes only what changed: the file
/// stays as written, and the relay added there gets its id and request
/// topic, no default payloads and no default timeout.
#[test]
fn settings_save_writes_only_what_changed() {
    let mut rig = GuiRig::offline(0, |_| {});
    let mut h = panel_on_file(&mut rig, HAND_WRITTEN);
    open_settings(&mut h);
    h.get_by_label("Add relay").click();
    frames(&mut h);
    h.get_by_label("Save").click();
    wait_for(&mut h, "saved", |h| has_text(h, "Saved "));
    let text = std::fs::read_to_string(rig.config_path()).unwrap();
    assert_eq!(
        text,
        format!(
            "{HAND_WRITTEN}\n[[relay]]\nid = \"relay-3\"\nrequest_topic = \"device/relay-3\"\n"
        )
    );
}

/// A relay without its own timeout shows an empty field whose greyed hint
/// is the broker's timeout (not "0"); one with a timeout shows it (and no
/// hint: egui shows the hint only in an empty field).
#[test]
fn settings_default_timeout_shows_the_broker_timeout() {
    let mut rig = GuiRig::offline(0, |_| {});
    let mut config = config(&rig.config.broker.url, 2);
    config.broker.request_timeout_ms = 2500;
    config.relays[1].timeout_ms = Some(700);
    let mut h = panel_on(&mut rig, config);
    open_settings(&mut h);
    let timeouts: Vec<_> = h
        .query_all(By::new().label("Timeout ms").role(Role::TextInput))
        .map(|node| {
            let hint = node.accesskit_node().placeholder().map(str::to_owned);
            (node.value().unwrap_or_default(), hint)
        })
        .collect();
    assert_eq!(
        timeouts,
        [
            (String::new(), Some("2500 (broker)".to_owned())),
            ("700".to_owned(), None)
        ]
    );
}

/// The table of 10,000 relays draws only the rows in view, under headings
/// that sit over their columns; payloads show whole (80 px at least).
/// "Add relay" scrolls to the new row and puts the cursor in its Id
/// field, and the headings stay above the rows, over their columns; with
/// two lines per relay and with one.
#[test]
fn settings_table_headings_rows_and_new_relay() {
    // Two lines per relay, then one.
    for size in [egui::vec2(1100.0, 700.0), egui::vec2(1600.0, 900.0)] {
        headings_rows_and_new_relay(size);
    }
}

/// [`settings_table_headings_rows_and_new_relay`] in a window of `size`.
fn headings_rows_and_new_relay(size: egui::Vec2) {
    let mut rig = GuiRig::offline(0, |_| {});
    let mut config = config(&rig.config.broker.url, 10_000);
    config.relays[0].payload_on = "SWITCH_ON_NOW".into();
    rig.config = config;
    let mut h = rig.panel_sized(size);
    open_settings(&mut h);

    let check_columns = |h: &PanelHarness, row_slack: f32| {
        // Each column's heading, and the name of its fields (the address
        // fields are named by what they are: here all request topics).
        for (heading, field) in [
            ("Id", "Id"),
            ("Address", "Request topic"),
            ("Payload on", "Payload on"),
            ("Payload off", "Payload off"),
            ("Payload query", "Payload query"),
        ] {
            let title = heading_rect(h, heading);
            let cells = column_cells(h, field);
            assert!(!cells.is_empty(), "cells under {heading}");
            assert!(
                cells.len() < 60,
                "{} rows drawn: not virtualised",
                cells.len()
            );
            for (cell, value) in &cells {
                assert!(
                    (cell.left() - title.left()).abs() <= 8.0,
                    "{heading:?} at x {} but its cell {value:?} at x {}",
                    title.left(),
                    cell.left()
                );
                // Scrolled, the top row may be half under the headings.
                assert!(
                    title.bottom() <= cell.top() + row_slack,
                    "the heading {heading:?} at {title:?} is above its row {cell:?}"
                );
                if heading.starts_with("Payload") {
                    assert!(cell.width() >= 80.0, "{heading} cell {value:?}: {cell:?}");
                }
            }
        }
    };
    check_columns(&h, 0.0);
    let headings = heading_rect(&h, "Id");
    // The long payload is not cut: its text ends inside its field.
    let long = h.get(By::new().value("SWITCH_ON_NOW").role(Role::TextInput));
    let field = long.rect();
    for run in long
        .children()
        .filter(|c| c.accesskit_node().role() == Role::TextRun)
    {
        assert!(
            run.rect().right() <= field.right(),
            "{:?} in {field:?}",
            run.rect()
        );
    }

    h.get_by_label("Add relay").click();
    frames(&mut h);
    let new_id = h.get(By::new().value("relay-10001").role(Role::TextInput));
    assert!(
        new_id.is_focused(),
        "the new relay's Id field has the cursor"
    );
    let new_row = new_id.rect();
    assert!(
        headings.bottom() <= new_row.top(),
        "the new row is below the headings"
    );
    assert_eq!(
        heading_rect(&h, "Id"),
        headings,
        "the headings stay put while the rows scroll"
    );
    check_columns(&h, new_row.height());
    // What the technician types goes into the new relay's id.
    h.event(egui::Event::Text("-x".into()));
    frames(&mut h);
    let draft = h.state().settings.as_ref().expect("settings open");
    assert_eq!(draft.config.relays[10_000].id, "relay-10001-x");
}

/// The detail window opens clear of the top bar's connection state.
#[test]
fn detail_window_leaves_the_connection_state_visible() {
    let mut rig = GuiRig::start(0, None);
    let three = config(&rig.config.broker.url, 3);
    let mut h = panel_on(&mut rig, three);
    wait_for(&mut h, "connected", |h| {
        h.state().model.connection.is_ready()
    });
    h.get_all_by_label("Details").next().unwrap().click();
    frames(&mut h);
    let window = h
        .get(By::new().role(Role::Window).label("Relay 0 — details"))
        .rect();
    for covered in ["connected", "Settings"] {
        let label = h.get_by_label(covered).rect();
        assert!(
            !window.intersects(label),
            "the detail window {window:?} covers {covered:?} at {label:?}"
        );
    }
}

/// With no configuration file, the example is a code block whose lines all
/// start at the same left edge (not centred one by one), and Copy puts the
/// whole example on the clipboard.
#[test]
fn first_run_example_is_a_left_aligned_code_block_with_copy() {
    let mut rig = GuiRig::offline(0, |_| {});
    let path = rig.dir.path().join("config.toml");
    let options = rig.options(Source::Missing(path), None);
    let mut h = harness(Panel::new(options, egui::Context::default()));
    frames(&mut h);
    let block = h.get_by_label(EXAMPLE.trim_end());
    let lefts: Vec<f32> = block
        .children()
        .filter(|run| run.accesskit_node().role() == Role::TextRun)
        .filter(|run| !run.value().unwrap_or_default().trim().is_empty())
        .map(|run| run.rect().left())
        .collect();
    assert!(lefts.len() >= 8, "one text run per line: {lefts:?}");
    assert!(
        lefts.iter().all(|left| (left - lefts[0]).abs() < 0.5),
        "every line starts at the same x: {lefts:?}"
    );
    let title = h.get_by_label("Example").rect();
    assert!(
        (block.rect().left() - title.left()).abs() < 0.5,
        "the block starts at the frame's left edge, under its title"
    );

    h.get_by_label("Copy").click();
    h.step();
    let copied: Vec<&str> = h
        .output()
        .platform_output
        .commands
        .iter()
        .filter_map(|command| match command {
            egui::OutputCommand::CopyText(text) => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(copied, [EXAMPLE]);
}

/// A hand-written plant with a relay of every kind, each with keys of its
/// own, comments and a relay of a kind left at its defaults.
const ALL_KINDS: &str = r#"# the plant, one relay per kind
[broker]
url = "mqtt://127.0.0.1:1"

[[relay]]
id = "pump-1"
name = "Sump pump"
group = "Own contract (mqtt5)"
request_topic = "plant/pump-1/relay" # on the pump's board
payload_query = "?"
timeout_ms = 5000

[[relay]]
id = "light-hall"
name = "Hall lights"
group = "Shelly"
kind = "shelly"
device = "shellypro2-c8f09e8a1b2c"
switch = 1

[[relay]]
id = "ahu-1"
name = "Air handler"
group = "Tasmota"
kind = "tasmota"
device = "tasmota_8A3F21"
power = 2
confirm = true

[[relay]]
id = "lamp"
kind = "tasmota"
device = "tasmota_lamp"

[[relay]]
id = "door-1"
name = "Loading door"
group = "Command/state"
kind = "state"
command_topic = "plant/door-1/set"
state_topic = "plant/door-1/state"
payload_on = "OPEN"
payload_off = "CLOSE"
payload_query = "?"
"#;

/// A panel in a window of `size` on `text` written to `panel.toml`.
fn panel_on_file_sized(rig: &mut GuiRig, text: &str, size: egui::Vec2) -> PanelHarness {
    std::fs::write(rig.config_path(), text).unwrap();
    let config = Config::load(&rig.config_path()).unwrap();
    let options = rig.options(Source::File(rig.config_path()), Some(config));
    gui_rig::harness_sized(Panel::new(options, egui::Context::default()), size)
}

/// The node named `name` in the row of the relay whose Id field reads
/// `id`: the first below that field's top (a row's second line, when the
/// table has two, comes before the next row).
fn in_row<'h>(h: &'h PanelHarness, id: &str, name: &'h str) -> egui_kittest::Node<'h> {
    let top = h
        .get(By::new().value(id).role(Role::TextInput))
        .rect()
        .top();
    h.query_all(By::new().label(name))
        .filter(|node| node.rect().top() >= top - 1.0)
        .min_by(|a, b| a.rect().top().total_cmp(&b.rect().top()))
        .unwrap_or_else(|| panic!("no {name:?} in the row of {id:?}"))
}

/// Whether the row of relay `id` has a field named `name`.
fn row_has(h: &PanelHarness, id: &str, name: &str) -> bool {
    let top = h
        .get(By::new().value(id).role(Role::TextInput))
        .rect()
        .top();
    let next_row = h
        .query_all(By::new().label("Id").role(Role::TextInput))
        .map(|node| node.rect().top())
        .filter(|t| *t > top + 1.0)
        .fold(f32::INFINITY, f32::min);
    h.query_all(By::new().label(name))
        .any(|node| node.rect().top() >= top - 1.0 && node.rect().top() < next_row)
}

/// Picks `kind` in the Kind combo box of relay `id`'s row.
fn choose_kind(h: &mut PanelHarness, id: &str, kind: &str) {
    in_row(h, id, "Kind").click();
    frames(h);
    // The list's entry, not a row's word "state" before its state topic.
    h.query_all(By::new().label(kind))
        .find(|node| node.accesskit_node().role() != Role::Label)
        .unwrap_or_else(|| panic!("{kind} in the Kind list"))
        .click();
    frames(h);
}

/// Clicks relay `id`'s field `name` and types `text` over what it holds.
fn retype(h: &mut PanelHarness, id: &str, name: &str, text: &str) {
    in_row(h, id, name).click();
    frames(h);
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    h.key_press(egui::Key::Backspace);
    if !text.is_empty() {
        in_row(h, id, name).type_text(text);
    }
    frames(h);
}

/// The Settings window's relay: new relays made a Shelly, a Tasmota and a
/// command/state relay in their Kind box show that kind's fields at once
/// (the first with the cursor in it, the payloads a kind fixes greyed),
/// keep the name typed before the change, and are saved with their kind
/// and only its keys; the panel runs the file it wrote.
#[test]
fn settings_new_relays_of_each_kind_are_saved_with_their_keys() {
    let mut rig = GuiRig::offline(0, |_| {});
    let mut h = panel_on_file(&mut rig, HAND_WRITTEN);
    open_settings(&mut h);
    let kinds = [
        (
            "relay-3",
            "shelly",
            [("Device", "shelly-porch"), ("Switch id", "1")],
        ),
        (
            "relay-4",
            "tasmota",
            [("Device", "tasmota_8A3F21"), ("Power", "2")],
        ),
        (
            "relay-5",
            "state",
            [
                ("Command topic", "bench/set"),
                ("State topic", "bench/state"),
            ],
        ),
    ];
    for (id, kind, fields) in kinds {
        h.get_by_label("Add relay").click();
        frames(&mut h);
        retype(&mut h, id, "Name", &format!("New {kind}"));
        assert!(row_has(&h, id, "Request topic"), "a new relay is mqtt5");
        choose_kind(&mut h, id, kind);
        assert!(
            !row_has(&h, id, "Request topic"),
            "{kind}: no request topic"
        );
        let first = in_row(&h, id, fields[0].0);
        assert!(
            first.is_focused(),
            "{kind}: the cursor is in {}",
            fields[0].0
        );
        for (name, text) in fields {
            retype(&mut h, id, name, text);
        }
        let payload_on = in_row(&h, id, "Payload on");
        let fixed = kind != "state";
        assert_eq!(
            payload_on.accesskit_node().is_disabled(),
            fixed,
            "{kind}: payload on editable only where the kind lets it be chosen"
        );
        let draft = h.state().settings.as_ref().expect("settings open");
        let relay = draft.config.relays.last().unwrap();
        assert_eq!(relay.kind.as_str(), kind);
        assert_eq!(relay.name, format!("New {kind}"), "the name stays");
    }
    assert_eq!(in_row(&h, "relay-3", "Payload on").value().unwrap(), "true");
    assert_eq!(in_row(&h, "relay-4", "Payload off").value().unwrap(), "OFF");
    assert_eq!(in_row(&h, "relay-5", "Payload on").value().unwrap(), "ON");

    h.get_by_label("Save").click();
    wait_for(&mut h, "saved", |h| has_text(h, "Saved "));
    let text = std::fs::read_to_string(rig.config_path()).unwrap();
    assert_eq!(
        text,
        format!(
            "{HAND_WRITTEN}\
             \n[[relay]]\nid = \"relay-3\"\nname = \"New shelly\"\nkind = \"shelly\"\ndevice = \"shelly-porch\"\nswitch = 1\n\
             \n[[relay]]\nid = \"relay-4\"\nname = \"New tasmota\"\nkind = \"tasmota\"\ndevice = \"tasmota_8A3F21\"\npower = 2\n\
             \n[[relay]]\nid = \"relay-5\"\nname = \"New state\"\nkind = \"state\"\ncommand_topic = \"bench/set\"\nstate_topic = \"bench/state\"\n"
        )
    );
    let saved = Config::load(&rig.config_path()).unwrap();
    let topics: Vec<_> = saved.relays.iter().map(|r| r.topic_label()).collect();
    assert_eq!(
        topics,
        [
            "dev/pump",
            "dev/fan",
            "shelly-porch/rpc switch:1",
            "cmnd/tasmota_8A3F21/POWER2",
            "bench/set (state: bench/state)",
        ]
    );
    assert_eq!(
        *h.state().model.config,
        saved,
        "the panel runs what it saved"
    );
}

/// Changing an existing relay's kind drops the old kind's keys from the
/// file (its request topic, a payload spelled out at its default) and
/// writes the new kind's; comments on the keys that stay are kept.
#[test]
fn settings_kind_change_writes_only_the_new_kinds_keys() {
    let mut rig = GuiRig::offline(0, |_| {});
    let mut h = panel_on_file(&mut rig, HAND_WRITTEN);
    open_settings(&mut h);
    choose_kind(&mut h, "fan", "shelly");
    retype(&mut h, "fan", "Device", "shellyplus1-fan");
    h.get_by_label("Save").click();
    wait_for(&mut h, "saved", |h| has_text(h, "Saved "));
    let text = std::fs::read_to_string(rig.config_path()).unwrap();
    assert_eq!(
        text,
        "# the lab\n[broker]\nurl = \"mqtt://127.0.0.1:1\"\n\n[[relay]]\nid = \"pump\" # basement\nrequest_topic = 'dev/pump'\n\n[[relay]]\nid = \"fan\"\nkind = \"shelly\"\ndevice = \"shellyplus1-fan\"\n"
    );
}

/// A file with every kind survives an edit and a Save unchanged but for
/// the edit: every relay keeps its kind, its own keys and their comments.
#[test]
fn settings_edit_keeps_every_kind_and_its_keys() {
    let mut rig = GuiRig::offline(0, |_| {});
    let mut h = panel_on_file_sized(&mut rig, ALL_KINDS, egui::vec2(1400.0, 1000.0));
    open_settings(&mut h);
    retype(&mut h, "door-1", "State topic", "plant/door-1/status");
    h.get_by_label("Save").click();
    wait_for(&mut h, "saved", |h| has_text(h, "Saved "));
    let text = std::fs::read_to_string(rig.config_path()).unwrap();
    assert_eq!(
        text,
        ALL_KINDS.replace("\"plant/door-1/state\"", "\"plant/door-1/status\"")
    );
    let mut expected = Config::parse(ALL_KINDS, std::path::Path::new("p.toml")).unwrap();
    expected.relays[4].state_topic = "plant/door-1/status".into();
    assert_eq!(Config::load(&rig.config_path()).unwrap(), expected);
}

/// A kind's own keys are checked as in the file: a Shelly without a
/// device and a Tasmota with POWER40 are named in the problems, with the
/// relay and the key, and Save stays disabled until they are fixed.
#[test]
fn settings_name_a_kinds_broken_keys() {
    let mut rig = GuiRig::offline(0, |_| {});
    let mut h = panel_on_file(&mut rig, HAND_WRITTEN);
    open_settings(&mut h);
    h.get_by_label("Add relay").click();
    frames(&mut h);
    choose_kind(&mut h, "relay-3", "shelly");
    let empty_device = "relay \"relay-3\": device is empty or missing (kind shelly needs the \
                        device's MQTT topic prefix)";
    assert!(has_text(&h, empty_device), "the empty device is named");
    assert!(h.get_by_label("Save").accesskit_node().is_disabled());
    retype(&mut h, "relay-3", "Device", "shelly-1");
    assert!(!has_text(&h, empty_device));
    assert!(!h.get_by_label("Save").accesskit_node().is_disabled());

    choose_kind(&mut h, "relay-3", "tasmota");
    assert_eq!(
        in_row(&h, "relay-3", "Device").value().unwrap(),
        "shelly-1",
        "the device stays from shelly to tasmota"
    );
    retype(&mut h, "relay-3", "Power", "40");
    assert!(has_text(
        &h,
        "relay \"relay-3\": power = 40 is out of range (1 to 32: POWER1 to POWER32; omit it for \
         a one-relay device)"
    ));
    assert!(h.get_by_label("Save").accesskit_node().is_disabled());
    retype(&mut h, "relay-3", "Power", "");
    let draft = h.state().settings.as_ref().expect("settings open");
    assert_eq!(
        draft.config.relays[2].power, None,
        "empty: a one-relay device"
    );
    assert!(draft.problems.is_empty(), "{:?}", draft.problems);
}

/// At 800×600 the table goes to two lines per relay and at 1920×1080 to
/// one; at both, every field, box and button of the Settings window is
/// inside the window and the screen, none on another, each wide enough
/// for a digit or two.
#[test]
fn settings_table_fits_small_and_large_windows() {
    for (size, lines) in [
        (egui::vec2(800.0, 600.0), 2),
        (egui::vec2(1920.0, 1080.0), 1),
    ] {
        let mut rig = GuiRig::offline(0, |_| {});
        let mut h = panel_on_file_sized(&mut rig, ALL_KINDS, size);
        open_settings(&mut h);
        let id = h
            .get(By::new().value("pump-1").role(Role::TextInput))
            .rect();
        let kind = in_row(&h, "pump-1", "Kind").rect();
        let two_lines = kind.top() >= id.bottom();
        assert_eq!(
            two_lines,
            lines == 2,
            "at {size:?}: Id {id:?}, Kind {kind:?}"
        );
        let window = h.get(By::new().role(Role::Window).label("Settings"));
        let frame = window.rect();
        let screen = egui::Rect::from_min_size(egui::Pos2::ZERO, size);
        let widgets: Vec<(egui::Rect, Role, String)> = window
            .query_all(By::new().predicate(|node| {
                matches!(
                    node.role(),
                    Role::TextInput | Role::ComboBox | Role::Button | Role::CheckBox
                )
            }))
            .map(|node| {
                let what = format!(
                    "{:?} {:?}",
                    node.accesskit_node().label().unwrap_or_default(),
                    node.value().unwrap_or_default()
                );
                (node.rect(), node.accesskit_node().role(), what)
            })
            .collect();
        // A row half scrolled out of sight reaches under the footer, where
        // the table's clip hides it.
        let footer_top = h.get_by_label("Save").rect().top() - 8.0;
        let widgets: Vec<_> = widgets
            .into_iter()
            .filter(|(rect, _, what)| {
                rect.bottom() <= footer_top || what.contains("Save") || what.contains("Cancel")
            })
            .collect();
        assert!(widgets.len() > 40, "{} widgets", widgets.len());
        for (i, (rect, role, what)) in widgets.iter().enumerate() {
            assert!(
                frame.contains_rect(*rect) && screen.contains_rect(*rect),
                "at {size:?}: {what} at {rect:?} is outside the window {frame:?}"
            );
            if matches!(role, Role::TextInput | Role::ComboBox) {
                assert!(rect.width() >= 30.0, "at {size:?}: {what} is {rect:?}");
            }
            for (other, _, other_what) in &widgets[i + 1..] {
                let overlap = rect.intersect(*other);
                assert!(
                    !overlap.is_positive() || overlap.area() < 1.0,
                    "at {size:?}: {what} at {rect:?} overlaps {other_what} at {other:?}"
                );
            }
        }
    }
}

/// A field being typed into keeps the cursor and its text when the
/// window narrows and the table goes from one line per relay to two.
#[test]
fn settings_field_keeps_the_cursor_when_the_table_goes_to_two_lines() {
    let mut rig = GuiRig::offline(0, |_| {});
    let mut h = panel_on_file_sized(&mut rig, ALL_KINDS, egui::vec2(1920.0, 1080.0));
    open_settings(&mut h);
    let one_line = |h: &PanelHarness| {
        let id = h
            .get(By::new().value("door-1").role(Role::TextInput))
            .rect();
        in_row(h, "door-1", "Kind").rect().top() < id.bottom()
    };
    assert!(one_line(&h));
    in_row(&h, "door-1", "State topic").click();
    frames(&mut h);
    h.key_press(egui::Key::End);
    in_row(&h, "door-1", "State topic").type_text("-a");
    frames(&mut h);
    h.set_size(egui::vec2(800.0, 600.0));
    frames(&mut h);
    assert!(!one_line(&h), "two lines at 800×600");
    assert!(in_row(&h, "door-1", "State topic").is_focused());
    in_row(&h, "door-1", "State topic").type_text("b");
    frames(&mut h);
    let draft = h.state().settings.as_ref().expect("settings open");
    assert_eq!(draft.config.relays[4].state_topic, "plant/door-1/state-ab");
}

/// The only text field named `name` (the last will's popup holds one of
/// each), clicked and typed into over what it holds.
fn retype_field(h: &mut PanelHarness, name: &str, text: &str) {
    let field = By::new().label(name).role(Role::TextInput);
    h.get(field.clone()).click();
    frames(h);
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    h.key_press(egui::Key::Backspace);
    if !text.is_empty() {
        h.get(field).type_text(text);
    }
    frames(h);
}

/// The new keys are edited in the table and saved: an `mqtt5` relay's
/// optional state topic beside its request topic, and its last will (the
/// availability topic and its two payloads) in the popup of its *last
/// will…* button; a wrong one is named and frames the button red (Save
/// disabled) until fixed. A Shelly's popup shows the last will its
/// firmware fixes, greyed.
#[test]
fn settings_edit_and_save_state_topic_and_last_will() {
    let mut rig = GuiRig::offline(0, |_| {});
    let mut h = panel_on_file_sized(&mut rig, ALL_KINDS, egui::vec2(1280.0, 800.0));
    open_settings(&mut h);
    retype(&mut h, "pump-1", "State topic", "plant/pump-1/state");

    in_row(&h, "pump-1", "last will…").click();
    frames(&mut h);
    assert!(has_text(&h, "Last will of Sump pump"));
    retype_field(&mut h, "Availability topic", "plant/pump-1/+");
    assert!(
        has_text(&h, "availability_topic"),
        "the wildcard is named in the problems"
    );
    assert!(h.get_by_label("Save").accesskit_node().is_disabled());
    retype_field(&mut h, "Availability topic", "plant/pump-1/status");
    retype_field(&mut h, "Payload available", "up");
    retype_field(&mut h, "Payload not available", "down");
    assert!(!h.get_by_label("Save").accesskit_node().is_disabled());
    // A click outside closes the popup.
    h.get_by_label("Relays (5)").click();
    frames(&mut h);
    assert!(!has_text(&h, "Last will of Sump pump"));

    in_row(&h, "light-hall", "last will…").click();
    frames(&mut h);
    let topic = h.get(By::new().label("Availability topic").role(Role::TextInput));
    assert!(topic.accesskit_node().is_disabled(), "fixed for a Shelly");
    assert_eq!(topic.value().unwrap(), "shellypro2-c8f09e8a1b2c/online");
    h.get_by_label("Relays (5)").click();
    frames(&mut h);

    h.get_by_label("Save").click();
    wait_for(&mut h, "saved", |h| has_text(h, "Saved "));
    let text = std::fs::read_to_string(rig.config_path()).unwrap();
    assert!(
        text.contains(
            "state_topic = \"plant/pump-1/state\"\navailability_topic = \"plant/pump-1/status\"\n\
             payload_available = \"up\"\npayload_not_available = \"down\"\n"
        ),
        "{text}"
    );
    let saved = Config::load(&rig.config_path()).unwrap();
    let pump = &saved.relays[0];
    assert_eq!(
        pump.availability_topic().as_deref(),
        Some("plant/pump-1/status")
    );
    assert_eq!(pump.read_availability(b"down"), Some(false));
    assert_eq!(pump.report_topics(), ["plant/pump-1/state"]);
    assert_eq!(*h.state().model.config, saved, "the panel runs it");
}
