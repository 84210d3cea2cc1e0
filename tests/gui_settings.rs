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

/// The rectangles of the relay table's cells in the column headed
/// `heading` (each cell's field is labelled by its heading), top to bottom.
fn column_cells(h: &PanelHarness, heading: &str) -> Vec<(egui::Rect, String)> {
    let mut cells: Vec<(egui::Rect, String)> = h
        .query_all(By::new().label(heading).role(Role::TextInput))
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
/// field, and the headings stay above the rows, over their columns.
#[test]
fn settings_table_headings_rows_and_new_relay() {
    let mut rig = GuiRig::offline(0, |_| {});
    let mut config = config(&rig.config.broker.url, 10_000);
    config.relays[0].payload_on = "SWITCH_ON_NOW".into();
    let mut h = panel_on(&mut rig, config);
    open_settings(&mut h);

    let check_columns = |h: &PanelHarness, row_slack: f32| {
        for heading in [
            "Id",
            "Request topic",
            "Payload on",
            "Payload off",
            "Payload query",
        ] {
            let title = heading_rect(h, heading);
            let cells = column_cells(h, heading);
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
