//! Settings window: broker settings and the relay list, validated with the
//! same rules as the file, saved atomically.

use std::path::PathBuf;

use egui::RichText;

use super::intent::Intent;
use super::settings_table;
use super::source::Source;
use crate::config::{Config, Problem, RelayConfig};

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
