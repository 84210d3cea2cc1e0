//! Settings window: broker settings and the relay list, validated with the
//! same rules as the file, saved atomically.

use std::path::PathBuf;

use egui::{Align, RichText};
use egui_extras::{Column, TableBuilder};

use super::intent::Intent;
use super::source::Source;
use crate::config::{Config, Problem, RelayConfig};

/// The configuration being edited.
pub struct Draft {
    /// The edited configuration.
    pub config: Config,
    /// Broken rules of `config` (recomputed on every edit).
    pub problems: Vec<Problem>,
    /// Why the last save failed.
    pub save_error: Option<String>,
    /// A relay just added: the table scrolls to its row and focuses its Id
    /// field, then forgets it (the row may only be drawn a frame later,
    /// once the table has scrolled).
    pub reveal: Option<usize>,
}

impl Draft {
    /// A draft of `config`.
    pub fn new(config: Config) -> Self {
        let problems = config.validate();
        Draft {
            config,
            problems,
            save_error: None,
            reveal: None,
        }
    }
}

fn optional_text(
    ui: &mut egui::Ui,
    value: &mut Option<String>,
    hint: &str,
    password: bool,
) -> bool {
    let mut text = value.clone().unwrap_or_default();
    let changed = ui
        .add(
            egui::TextEdit::singleline(&mut text)
                .hint_text(hint)
                .password(password)
                .desired_width(260.0),
        )
        .changed();
    if changed {
        *value = (!text.is_empty()).then_some(text);
    }
    changed
}

fn optional_path(ui: &mut egui::Ui, value: &mut Option<PathBuf>, hint: &str) -> bool {
    let mut text = value
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let changed = ui
        .add(
            egui::TextEdit::singleline(&mut text)
                .hint_text(hint)
                .desired_width(260.0),
        )
        .changed();
    if changed {
        *value = (!text.is_empty()).then(|| PathBuf::from(text));
    }
    changed
}

/// Draws the settings window.
pub fn show(ctx: &egui::Context, draft: &mut Draft, source: &Source) -> Option<Intent> {
    let mut intent = None;
    let mut open = true;
    let mut changed = false;
    egui::Window::new("Settings")
        .id(egui::Id::unique("settings"))
        .open(&mut open)
        .default_width(1000.0)
        .default_height(620.0)
        .show(ctx, |ui| {
            // The buttons and problems first, as a panel at the bottom: the
            // table then takes exactly the height left. (Guessing the
            // footer's height instead made the window grow each frame the
            // guess was short: a window grows to fit its content.)
            egui::Panel::bottom("settings_footer")
                .frame(egui::Frame::NONE)
                .show(ui, |ui| intent = footer(ui, draft, source));
            // A scope of its own, so the table's column lines end at the
            // table, not at the bottom of the footer.
            ui.scope(|ui| {
                ui.heading("Broker");
                changed |= broker_grid(ui, &mut draft.config);
                ui.separator();
                ui.horizontal(|ui| {
                    ui.heading(format!("Relays ({})", draft.config.relays.len()));
                    if ui.button("Add relay").clicked() {
                        add_relay(draft);
                        changed = true;
                    }
                });
                let (edited, remove) = relay_table(ui, draft, ui.available_height());
                changed |= edited;
                if let Some(index) = remove {
                    draft.config.relays.remove(index);
                    // The row to reveal may be gone, or moved up one.
                    draft.reveal = None;
                    changed = true;
                }
            });
        });
    if changed {
        draft.problems = draft.config.validate();
        draft.save_error = None;
        // The footer (problems, Save) was drawn before the edit.
        ctx.request_repaint();
    }
    if !open {
        intent = Some(Intent::CloseSettings);
    }
    intent
}

/// The broker settings and the operator; returns whether one was edited.
fn broker_grid(ui: &mut egui::Ui, config: &mut Config) -> bool {
    let mut changed = false;
    let broker = &mut config.broker;
    egui::Grid::new("broker_grid")
        .num_columns(2)
        .show(ui, |ui| {
            ui.label("URL");
            changed |= ui
                .add(
                    egui::TextEdit::singleline(&mut broker.url)
                        .hint_text("mqtt://host:1883")
                        .desired_width(260.0),
                )
                .changed();
            ui.end_row();
            ui.label("User name");
            changed |= optional_text(ui, &mut broker.username, "none", false);
            ui.end_row();
            ui.label("Password");
            changed |= optional_text(ui, &mut broker.password, "none", true);
            ui.end_row();
            ui.label("Client id");
            changed |= optional_text(
                ui,
                &mut broker.client_id,
                "random per panel (recommended)",
                false,
            );
            ui.end_row();
            ui.label("CA file (mqtts)");
            changed |= optional_path(ui, &mut broker.ca_file, "system roots");
            ui.end_row();
            ui.label("Client certificate");
            changed |= optional_path(ui, &mut broker.client_cert, "none");
            ui.end_row();
            ui.label("Client key");
            changed |= optional_path(ui, &mut broker.client_key, "none");
            ui.end_row();
            ui.label("Request timeout");
            changed |= ui
                .add(
                    egui::DragValue::new(&mut broker.request_timeout_ms)
                        .range(1..=600_000)
                        .suffix(" ms"),
                )
                .changed();
            ui.end_row();
            ui.label("Operator");
            changed |= optional_text(ui, &mut config.panel.operator, "OS user name", false);
            ui.end_row();
        });
    changed
}

/// Appends a relay with a fresh id and topic (nothing else set, so saving
/// writes only those two keys), and has the table reveal it.
fn add_relay(draft: &mut Draft) {
    let relays = &mut draft.config.relays;
    let mut n = relays.len() + 1;
    let mut id = format!("relay-{n}");
    while relays.iter().any(|r| r.id == id) {
        n += 1;
        id = format!("relay-{n}");
    }
    let topic = format!("device/{id}");
    relays.push(RelayConfig::new(&id, &topic));
    draft.reveal = Some(relays.len() - 1);
}

/// Problems, the save error, Save (Apply in the demo) and Cancel.
fn footer(ui: &mut egui::Ui, draft: &Draft, source: &Source) -> Option<Intent> {
    let mut intent = None;
    let red = egui::Color32::from_rgb(220, 60, 60);
    ui.separator();
    for problem in draft.problems.iter().take(5) {
        ui.label(RichText::new(problem.to_string()).color(red));
    }
    if draft.problems.len() > 5 {
        ui.label(format!("… and {} more problems", draft.problems.len() - 5));
    }
    if let Some(error) = &draft.save_error {
        ui.label(RichText::new(error).color(red));
    }
    ui.horizontal(|ui| {
        let label = if *source == Source::Demo {
            "Apply"
        } else {
            "Save"
        };
        let hover = match source {
            Source::File(path) | Source::Missing(path) | Source::Broken(path, _) => {
                format!("Write to {}", path.display())
            }
            Source::Demo => {
                "The demo configuration is applied to this session, not saved".to_owned()
            }
        };
        if ui
            .add_enabled(draft.problems.is_empty(), egui::Button::new(label))
            .on_hover_text(hover)
            .on_disabled_hover_text("Fix the problems listed above first")
            .clicked()
        {
            intent = Some(Intent::SaveSettings(Box::new(draft.config.clone())));
        }
        if ui.button("Cancel").clicked() {
            intent = Some(Intent::CloseSettings);
        }
    });
    intent
}

/// The relay table's columns: heading, and the narrowest the column gets
/// (payloads such as `TOGGLE` must show whole: 80 px at least). The
/// request topic takes what the others leave.
const COLUMNS: [(&str, f32); 10] = [
    ("Id", 70.0),
    ("Name", 100.0),
    ("Group", 80.0),
    ("Request topic", 150.0),
    ("Payload on", 80.0),
    ("Payload off", 80.0),
    ("Payload query", 80.0),
    ("Timeout ms", 100.0),
    ("Confirm", 40.0),
    ("", 60.0),
];

/// The relays as a table: a header that stays while the body scrolls,
/// columns as wide as their widest visible cell and resizable, and only
/// the visible rows drawn (10,000 relays cost what 20 do). Returns whether
/// a cell was edited, and the row whose Remove was clicked.
///
/// Rows take their widget ids from their index (the table does that), not
/// from the relay id as elsewhere: here the id is itself being edited, and
/// a widget id that changed with every keystroke would lose the focus.
fn relay_table(ui: &mut egui::Ui, draft: &mut Draft, height: f32) -> (bool, Option<usize>) {
    let mut changed = false;
    let mut remove = None;
    let broker_timeout = draft.config.broker.request_timeout_ms;
    let timeout_hint = format!("{broker_timeout} (broker)");
    let relays = &mut draft.config.relays;
    let reveal = &mut draft.reveal;
    let row_height = ui.spacing().interact_size.y + 4.0;
    let body_height = height - row_height - ui.spacing().item_spacing.y;
    let mut table = TableBuilder::new(ui)
        .id_salt("relay_table")
        .striped(true)
        .resizable(true)
        .cell_layout(egui::Layout::left_to_right(Align::Center))
        .min_scrolled_height(0.0)
        .max_scroll_height(body_height);
    for (title, narrowest) in COLUMNS {
        let column = if title == "Request topic" {
            // Fills the width left, so the table never needs a horizontal
            // scroll bar (which would put the vertical one out of sight);
            // recomputed as the window is resized, hence not resizable.
            Column::remainder().resizable(false)
        } else {
            Column::auto()
        };
        table = table.column(column.at_least(narrowest).clip(true));
    }
    if let Some(row) = *reveal {
        table = table.scroll_to_row(row, Some(Align::Center));
    }
    let mut headings = [egui::Id::NULL; COLUMNS.len()];
    table
        .header(row_height, |mut header| {
            for ((title, _), id) in COLUMNS.iter().zip(&mut headings) {
                header.col(|ui| *id = ui.strong(*title).id);
            }
        })
        .body(|body| {
            body.rows(row_height, relays.len(), |mut row| {
                let index = row.index();
                let relay = &mut relays[index];
                // Each field is named by its column's heading.
                let mut text_cell = |row: &mut egui_extras::TableRow<'_, '_>,
                                     column: usize,
                                     text: &mut String,
                                     hint: &str,
                                     focus: bool| {
                    let mut edited = false;
                    row.col(|ui| {
                        let response = cell_edit(ui, text, hint).labelled_by(headings[column]);
                        if focus {
                            response.request_focus();
                        }
                        edited = response.changed();
                    });
                    changed |= edited;
                    edited
                };
                let focus = *reveal == Some(index);
                if focus {
                    *reveal = None;
                }
                text_cell(&mut row, 0, &mut relay.id, "id", focus);
                text_cell(&mut row, 1, &mut relay.name, "name", false);
                text_cell(&mut row, 2, &mut relay.group, "group", false);
                let topic = &mut relay.request_topic;
                text_cell(&mut row, 3, topic, "request topic", false);
                text_cell(&mut row, 4, &mut relay.payload_on, "on", false);
                text_cell(&mut row, 5, &mut relay.payload_off, "off", false);
                let mut query = relay.payload_query.clone().unwrap_or_default();
                if text_cell(&mut row, 6, &mut query, "none", false) {
                    relay.payload_query = (!query.is_empty()).then_some(query);
                }
                // Empty means the broker's timeout, shown greyed as the hint.
                let mut timeout = relay
                    .timeout_ms
                    .map(|ms| ms.to_string())
                    .unwrap_or_default();
                row.col(|ui| {
                    let response = cell_edit(ui, &mut timeout, &timeout_hint)
                        .labelled_by(headings[7])
                        .on_hover_ui(|ui| {
                            ui.label(format!(
                                "Empty: the broker's request timeout ({broker_timeout} ms)"
                            ));
                        });
                    if response.changed() {
                        relay.timeout_ms = parse_timeout(&timeout);
                        changed = true;
                    }
                });
                row.col(|ui| {
                    changed |= ui
                        .checkbox(&mut relay.confirm, "ask")
                        .on_hover_text("Ask before every switch")
                        .changed();
                });
                row.col(|ui| {
                    if ui.small_button("Remove").clicked() {
                        remove = Some(index);
                    }
                });
            });
        });
    (changed, remove)
}

/// A relay's timeout as typed: empty (or no digit) is the broker's; a
/// number too large to read stays too large, so validation names it.
fn parse_timeout(text: &str) -> Option<u64> {
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    (!digits.is_empty()).then(|| digits.parse().unwrap_or(u64::MAX))
}

/// A text field filling its table cell. While the table measures its
/// columns (a sizing pass) it is as wide as its text, or its hint when
/// empty, so each column takes the width of its widest visible cell (a
/// minimum size, as a field never gets wider than the cell otherwise).
fn cell_edit(ui: &mut egui::Ui, text: &mut String, hint: &str) -> egui::Response {
    let width = if ui.is_sizing_pass() {
        let shown = if text.is_empty() { hint } else { text.as_str() };
        let font = egui::TextStyle::Body.resolve(ui.style());
        let galley =
            ui.fonts_mut(|f| f.layout_no_wrap(shown.to_owned(), font, egui::Color32::PLACEHOLDER));
        galley.size().x + 2.0 * ui.spacing().button_padding.x + 8.0
    } else {
        ui.available_width()
    };
    ui.add(
        egui::TextEdit::singleline(text)
            .hint_text(hint)
            .desired_width(width)
            .min_size(egui::vec2(width, 0.0)),
    )
}
