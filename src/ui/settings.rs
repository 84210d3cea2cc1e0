//! Settings window: broker settings and the relay list, validated with the
//! same rules as the file, saved atomically.

use std::path::PathBuf;

use egui::RichText;

use super::intent::Intent;
use super::settings_table;
use super::source::Source;
use crate::config::{Config, Problem, RelayConfig};

/// The width of a broker setting's field. Also its least: in a grid
/// column other than the last a field gets only what the column had the
/// frame before, so one that took less would never grow.
const FIELD_WIDTH: f32 = 260.0;

/// The colour of validation's messages, and of the frame around a field
/// they are about.
pub(super) const PROBLEM_RED: egui::Color32 = egui::Color32::from_rgb(220, 60, 60);

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
                .desired_width(FIELD_WIDTH)
                .min_size(egui::vec2(FIELD_WIDTH, 0.0)),
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
                .desired_width(FIELD_WIDTH)
                .min_size(egui::vec2(FIELD_WIDTH, 0.0)),
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
    // As large as the screen allows, up to a size where the relay table
    // has every column on one line with room for long topics.
    let screen = ctx.content_rect().size();
    egui::Window::new("Settings")
        .id(egui::Id::unique("settings"))
        .open(&mut open)
        .default_width((screen.x - 32.0).clamp(400.0, 1600.0))
        .default_height((screen.y - 32.0).clamp(300.0, 900.0))
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
                changed |= broker_section(ui, &mut draft.config, screen.y);
                ui.separator();
                ui.horizontal(|ui| {
                    ui.heading(format!("Relays ({})", draft.config.relays.len()));
                    if ui.button("Add relay").clicked() {
                        add_relay(draft);
                        changed = true;
                    }
                });
                let (edited, remove) = settings_table::show(ui, draft, ui.available_height());
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

/// The broker settings under a heading that folds them away (the relay
/// table then gets their room); folded at first on a screen less than
/// 700 px high, where they would leave the table three rows. Folded, the
/// heading shows the broker URL. Returns whether a setting was edited.
fn broker_section(ui: &mut egui::Ui, config: &mut Config, screen_height: f32) -> bool {
    let id = ui.make_persistent_id("settings_broker");
    let state = egui::collapsing_header::CollapsingState::load_with_default_open(
        ui.ctx(),
        id,
        screen_height >= 700.0,
    );
    let open = state.is_open();
    let url = config.broker.url.clone();
    let mut changed = false;
    state
        .show_header(ui, |ui| {
            ui.heading("Broker");
            if !open {
                ui.weak(url);
            }
        })
        .body(|ui| changed = broker_grid(ui, config));
    changed
}

/// A broker setting: its label, and the field, which says whether it
/// was edited.
type Setting<'a> = (&'static str, Box<dyn FnMut(&mut egui::Ui) -> bool + 'a>);

/// The broker settings and the operator, in two columns side by side when
/// there is room (the relay table below gets the height), else in one;
/// returns whether one was edited.
fn broker_grid(ui: &mut egui::Ui, config: &mut Config) -> bool {
    let broker = &mut config.broker;
    let operator = &mut config.panel.operator;
    let mut settings: [Setting<'_>; 9] = [
        (
            "URL",
            Box::new(|ui| {
                ui.add(
                    egui::TextEdit::singleline(&mut broker.url)
                        .hint_text("mqtt://host:1883")
                        .desired_width(FIELD_WIDTH)
                        .min_size(egui::vec2(FIELD_WIDTH, 0.0)),
                )
                .changed()
            }),
        ),
        (
            "User name",
            Box::new(|ui| optional_text(ui, &mut broker.username, "none", false)),
        ),
        (
            "Password",
            Box::new(|ui| optional_text(ui, &mut broker.password, "none", true)),
        ),
        (
            "Client id",
            Box::new(|ui| {
                optional_text(
                    ui,
                    &mut broker.client_id,
                    "random per panel (recommended)",
                    false,
                )
            }),
        ),
        (
            "Operator",
            Box::new(|ui| optional_text(ui, operator, "OS user name", false)),
        ),
        (
            "CA file (mqtts)",
            Box::new(|ui| optional_path(ui, &mut broker.ca_file, "system roots")),
        ),
        (
            "Client certificate",
            Box::new(|ui| optional_path(ui, &mut broker.client_cert, "none")),
        ),
        (
            "Client key",
            Box::new(|ui| optional_path(ui, &mut broker.client_key, "none")),
        ),
        (
            "Request timeout",
            Box::new(|ui| {
                ui.add(
                    egui::DragValue::new(&mut broker.request_timeout_ms)
                        .range(1..=600_000)
                        .suffix(" ms"),
                )
                .changed()
            }),
        ),
    ];
    // Two columns of labels and 260 px fields, with a gap between them.
    let columns = if ui.available_width() >= 900.0 { 2 } else { 1 };
    let rows = settings.len().div_ceil(columns);
    let mut changed = false;
    // A grid per layout: each remembers its own column widths.
    egui::Grid::new(("broker_grid", columns))
        .num_columns(2 * columns)
        .show(ui, |ui| {
            for row in 0..rows {
                for column in 0..columns {
                    if let Some((label, field)) = settings.get_mut(column * rows + row) {
                        if column == 0 {
                            ui.label(*label);
                        } else {
                            ui.horizontal(|ui| {
                                ui.add_space(24.0);
                                ui.label(*label);
                            });
                        }
                        changed |= field(ui);
                    }
                }
                ui.end_row();
            }
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
    let red = PROBLEM_RED;
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
