//! Settings window: broker settings and the relay list, validated with the
//! same rules as the file, saved atomically.

use std::path::PathBuf;

use egui::RichText;

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
}

impl Draft {
    /// A draft of `config`.
    pub fn new(config: Config) -> Self {
        let problems = config.validate();
        Draft {
            config,
            problems,
            save_error: None,
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
        .default_width(900.0)
        .default_height(560.0)
        .show(ctx, |ui| {
            ui.heading("Broker");
            let broker = &mut draft.config.broker;
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
                    changed |=
                        optional_text(ui, &mut draft.config.panel.operator, "OS user name", false);
                    ui.end_row();
                });
            ui.separator();
            ui.horizontal(|ui| {
                ui.heading(format!("Relays ({})", draft.config.relays.len()));
                if ui.button("Add relay").clicked() {
                    let n = draft.config.relays.len() + 1;
                    let mut id = format!("relay-{n}");
                    let mut k = n;
                    while draft.config.relays.iter().any(|r| r.id == id) {
                        k += 1;
                        id = format!("relay-{k}");
                    }
                    let topic = format!("device/{id}");
                    draft.config.relays.push(RelayConfig::new(&id, &topic));
                    changed = true;
                }
            });
            let headers = [
                "Id",
                "Name",
                "Group",
                "Request topic",
                "On",
                "Off",
                "Query",
                "Timeout ms",
                "Confirm",
                "",
            ];
            let mut remove = None;
            let row_height = ui.spacing().interact_size.y + 4.0;
            egui::ScrollArea::both()
                .id_salt("relay_table")
                .max_height(ui.available_height() - 90.0)
                .auto_shrink([false, true])
                .show_rows(ui, row_height, draft.config.relays.len(), |ui, range| {
                    egui::Grid::new("relay_grid")
                        .num_columns(headers.len())
                        .striped(true)
                        .show(ui, |ui| {
                            for h in headers {
                                ui.label(RichText::new(h).strong());
                            }
                            ui.end_row();
                            for index in range {
                                let relay = &mut draft.config.relays[index];
                                ui.push_id(index, |ui| {
                                    let edit =
                                        |ui: &mut egui::Ui,
                                         text: &mut String,
                                         width: f32,
                                         hint: &str| {
                                            ui.add(
                                                egui::TextEdit::singleline(text)
                                                    .desired_width(width)
                                                    .hint_text(hint),
                                            )
                                            .changed()
                                        };
                                    changed |= edit(ui, &mut relay.id, 90.0, "id");
                                    changed |= edit(ui, &mut relay.name, 140.0, "name");
                                    changed |= edit(ui, &mut relay.group, 100.0, "group");
                                    changed |=
                                        edit(ui, &mut relay.request_topic, 170.0, "request topic");
                                    changed |= edit(ui, &mut relay.payload_on, 40.0, "on");
                                    changed |= edit(ui, &mut relay.payload_off, 40.0, "off");
                                    let mut query = relay.payload_query.clone().unwrap_or_default();
                                    if edit(ui, &mut query, 40.0, "none") {
                                        relay.payload_query = (!query.is_empty()).then_some(query);
                                        changed = true;
                                    }
                                    let mut timeout = relay.timeout_ms.unwrap_or(0);
                                    if ui
                                        .add(egui::DragValue::new(&mut timeout).range(0..=600_000))
                                        .on_hover_text("0 = the broker's request timeout")
                                        .changed()
                                    {
                                        relay.timeout_ms = (timeout > 0).then_some(timeout);
                                        changed = true;
                                    }
                                    changed |= ui
                                        .checkbox(&mut relay.confirm, "ask")
                                        .on_hover_text("Ask before every switch")
                                        .changed();
                                    if ui.small_button("Remove").clicked() {
                                        remove = Some(index);
                                    }
                                });
                                ui.end_row();
                            }
                        });
                });
            if let Some(index) = remove {
                draft.config.relays.remove(index);
                changed = true;
            }
            ui.separator();
            if changed {
                draft.problems = draft.config.validate();
                draft.save_error = None;
            }
            for problem in draft.problems.iter().take(5) {
                ui.label(
                    RichText::new(problem.to_string()).color(egui::Color32::from_rgb(220, 60, 60)),
                );
            }
            if draft.problems.len() > 5 {
                ui.label(format!("… and {} more problems", draft.problems.len() - 5));
            }
            if let Some(error) = &draft.save_error {
                ui.label(RichText::new(error).color(egui::Color32::from_rgb(220, 60, 60)));
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
        });
    if !open {
        intent = Some(Intent::CloseSettings);
    }
    intent
}
