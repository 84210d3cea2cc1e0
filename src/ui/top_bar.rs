//! Top bar: broker, connection state, response topic, filter, global actions.

use egui::{Color32, RichText};

use super::app::TITLE;
use super::intent::Intent;
use super::model::Model;
use super::prefs::Prefs;
use super::source::Source;
use crate::engine::ConnectionState;

/// Colour, a short word for the bar, and the reason (shown in full on a
/// line of its own: reasons are sentences a technician acts on).
pub fn connection_text(state: &ConnectionState) -> (Color32, String, Option<String>) {
    let amber = Color32::from_rgb(230, 160, 40);
    match state {
        ConnectionState::Connecting => (amber, "connecting…".to_owned(), None),
        ConnectionState::Subscribing => (amber, "subscribing…".to_owned(), None),
        ConnectionState::Connected => {
            (Color32::from_rgb(60, 180, 75), "connected".to_owned(), None)
        }
        ConnectionState::Reconnecting { reason, retry_in } => (
            amber,
            format!("reconnecting in {:.1} s", retry_in.as_secs_f32()),
            Some(reason.clone()),
        ),
        ConnectionState::Failed { reason } => (
            Color32::from_rgb(220, 60, 60),
            "not connected".to_owned(),
            Some(reason.clone()),
        ),
        ConnectionState::Stopped => (Color32::GRAY, "stopped".to_owned(), None),
    }
}

/// Draws the top bar.
pub fn show(
    ui: &mut egui::Ui,
    model: &Model,
    source: &Source,
    filter: &mut String,
    prefs: &Prefs,
    notice: Option<&(String, bool)>,
) -> Option<Intent> {
    let mut intent = None;
    let has_relays = source.has_relays();
    ui.add_space(4.0);
    ui.horizontal(|ui| {
        ui.heading(RichText::new(TITLE).strong());
        if *source == Source::Demo {
            ui.label(
                RichText::new("DEMO")
                    .strong()
                    .color(Color32::BLACK)
                    .background_color(Color32::from_rgb(250, 200, 60)),
            );
        }
        if has_relays {
            ui.separator();
            ui.label(RichText::new(&model.config.broker.url).monospace())
                .on_hover_text("Broker URL (from the configuration)");
            let (colour, text, _) = connection_text(&model.connection);
            let (dot, _) = ui.allocate_exact_size(egui::vec2(12.0, 12.0), egui::Sense::hover());
            ui.painter().circle_filled(dot.center(), 5.0, colour);
            if matches!(model.connection, ConnectionState::Failed { .. })
                && ui
                    .button("Retry")
                    .on_hover_text("Connect again with the same settings")
                    .clicked()
            {
                intent = Some(Intent::Retry);
            }
            ui.label(RichText::new(text).color(colour));
        }
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            let theme = if prefs.dark {
                "Light theme"
            } else {
                "Dark theme"
            };
            if ui.button(theme).clicked() {
                intent = Some(Intent::ToggleTheme);
            }
            if has_relays {
                if ui.button("Settings").clicked() {
                    intent = Some(Intent::OpenSettings);
                }
                let activity = if prefs.show_activity {
                    "Hide activity"
                } else {
                    "Show activity"
                };
                if ui.button(activity).clicked() {
                    intent = Some(Intent::ToggleActivity);
                }
            }
        });
    });
    if has_relays && let (colour, _, Some(reason)) = connection_text(&model.connection) {
        // "reconnecting in 0.4 s — <reason>", "not connected — <reason>":
        // the reason in full, wrapped, where the eye goes first.
        ui.add(egui::Label::new(RichText::new(format!("— {reason}")).color(colour)).wrap());
    }
    if has_relays {
        ui.horizontal(|ui| {
            let search = ui.add(
                egui::TextEdit::singleline(filter)
                    .hint_text("Filter relays (Ctrl+F)")
                    .desired_width(240.0),
            );
            if ui.input_mut(|i| {
                i.consume_shortcut(&egui::KeyboardShortcut::new(
                    egui::Modifiers::COMMAND,
                    egui::Key::F,
                ))
            }) {
                search.request_focus();
            }
            if search.has_focus() && ui.input(|i| i.key_pressed(egui::Key::Escape)) {
                filter.clear();
            }
            let queryable = model
                .config
                .relays
                .iter()
                .any(|r| r.payload_query.is_some());
            let refresh = ui
                .add_enabled(
                    queryable && model.connection.is_ready(),
                    egui::Button::new("Refresh all"),
                )
                .on_hover_text("Ask every relay that has a payload_query for its state")
                .on_disabled_hover_text(if queryable {
                    "Not connected to the broker"
                } else {
                    "No relay has payload_query configured"
                });
            if refresh.clicked() {
                intent = Some(Intent::RefreshAll);
            }
            ui.separator();
            ui.label("Response topic:");
            let topic = ui
                .add(
                    egui::Label::new(RichText::new(&model.response_topic).monospace())
                        .sense(egui::Sense::click()),
                )
                .on_hover_text("Devices answer this panel here. Click to copy.");
            if topic.clicked()
                || ui
                    .small_button("Copy")
                    .on_hover_text("Copy the response topic")
                    .clicked()
            {
                ui.ctx().copy_text(model.response_topic.clone());
            }
        });
    }
    if let Some((text, is_error)) = notice {
        ui.horizontal(|ui| {
            let colour = if *is_error {
                Color32::from_rgb(220, 60, 60)
            } else {
                ui.visuals().text_color()
            };
            ui.label(RichText::new(text).color(colour));
            if ui.small_button("Dismiss").clicked() {
                intent = Some(Intent::DismissNotice);
            }
        });
    }
    if !model.warnings.is_empty() {
        ui.horizontal_wrapped(|ui| {
            for warning in &model.warnings {
                ui.label(
                    RichText::new(format!("Warning: {warning}"))
                        .color(Color32::from_rgb(230, 160, 40)),
                );
            }
            if ui.small_button("Dismiss warnings").clicked() {
                intent = Some(Intent::DismissWarnings);
            }
        });
    }
    ui.add_space(2.0);
    intent
}
