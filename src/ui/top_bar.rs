//! Top bar: broker, connection state, response topic, filter, global
//! actions; and the status bar at the bottom of the window, where notices
//! (saved, exported, failed…) and warnings appear without moving anything.
//!
//! Nothing here moves the relay list while the technician aims at it: a
//! notice or a warning comes and goes in the status bar, whose height never
//! changes. The connection's reason takes a line of its own from the first
//! failure until connected again (kept through the short *connecting…*
//! between retries), not once per retry.

use egui::{Color32, RichText};

use super::app::TITLE;
use super::fit::{button_width, elided_label, text_width};
use super::intent::Intent;
use super::model::Model;
use super::prefs::Prefs;
use super::source::Source;
use crate::engine::ConnectionState;

/// Height of the status bar, notice or not.
pub const STATUS_BAR_HEIGHT: f32 = 26.0;

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

/// The reason to show under the bar: the state's own, else (connecting
/// again after a failure) the last one seen, until connected.
fn shown_reason(ui: &egui::Ui, state: &ConnectionState) -> Option<String> {
    let id = egui::Id::unique("top_bar_last_reason");
    let (_, _, reason) = connection_text(state);
    match (&reason, state) {
        (Some(reason), _) => {
            ui.data_mut(|d| d.insert_temp(id, reason.clone()));
            Some(reason.clone())
        }
        (None, ConnectionState::Connecting | ConnectionState::Subscribing) => {
            ui.data(|d| d.get_temp::<String>(id))
        }
        (None, _) => {
            ui.data_mut(|d| d.remove::<String>(id));
            None
        }
    }
}

/// Draws the top bar. `shortcuts_open` is toggled by its "?" button.
pub fn show(
    ui: &mut egui::Ui,
    model: &Model,
    source: &Source,
    filter: &mut String,
    prefs: &Prefs,
    shortcuts_open: &mut bool,
) -> Option<Intent> {
    let mut intent = None;
    let has_relays = source.has_relays();
    ui.add_space(4.0);
    // The buttons on the right have their room first; the left part is cut
    // to what is left, so nothing runs under them. Tab still goes left to
    // right: the left part is added first.
    let activity = if prefs.show_activity {
        "Hide activity"
    } else {
        "Show activity"
    };
    let theme = if prefs.dark {
        "Light theme"
    } else {
        "Dark theme"
    };
    let mut right: Vec<&str> = Vec::new();
    if has_relays {
        right.extend([activity, "Settings"]);
    }
    right.extend([theme, "?"]);
    let spacing = ui.spacing().item_spacing.x;
    let right_width = right
        .iter()
        .map(|text| button_width(ui, text) + spacing)
        .sum::<f32>();
    let row_height = ui.spacing().interact_size.y.max(24.0);
    let (row, _) = ui.allocate_exact_size(
        egui::vec2(ui.available_width(), row_height),
        egui::Sense::hover(),
    );
    let left_rect =
        egui::Rect::from_min_max(row.min, egui::pos2(row.right() - right_width, row.bottom()));
    let right_rect = egui::Rect::from_min_max(egui::pos2(left_rect.right(), row.top()), row.max);
    let mut left = ui.new_child(
        egui::UiBuilder::new()
            .max_rect(left_rect)
            .layout(egui::Layout::left_to_right(egui::Align::Center)),
    );
    left.set_clip_rect(left_rect.intersect(ui.clip_rect()));
    left.heading(RichText::new(TITLE).strong());
    if *source == Source::Demo {
        left.label(
            RichText::new("DEMO")
                .strong()
                .color(Color32::BLACK)
                .background_color(Color32::from_rgb(250, 200, 60)),
        );
    }
    if has_relays {
        left.separator();
        let (colour, text, _) = connection_text(&model.connection);
        // The state and Retry keep their room; the URL is cut first.
        let retry = matches!(model.connection, ConnectionState::Failed { .. });
        let state_width = text_width(&left, RichText::new(&text), egui::TextStyle::Body)
            + 12.0
            + 3.0 * spacing
            + if retry {
                button_width(&left, "Retry") + spacing
            } else {
                0.0
            };
        let url_width = (left.available_width() - state_width).max(40.0);
        left.allocate_ui(egui::vec2(url_width, row_height), |ui| {
            elided_label(
                ui,
                RichText::new(&model.config.broker.url).monospace(),
                Some("Broker URL (from the configuration)"),
            );
        });
        let (dot, _) = left.allocate_exact_size(egui::vec2(12.0, 12.0), egui::Sense::hover());
        left.painter().circle_filled(dot.center(), 5.0, colour);
        left.label(RichText::new(text).color(colour));
        if retry
            && left
                .button("Retry")
                .on_hover_text("Connect again with the same settings")
                .clicked()
        {
            intent = Some(Intent::Retry);
        }
    }
    let mut buttons = ui.new_child(
        egui::UiBuilder::new()
            .max_rect(right_rect)
            .layout(egui::Layout::left_to_right(egui::Align::Center)),
    );
    if has_relays {
        if buttons.button(activity).clicked() {
            intent = Some(Intent::ToggleActivity);
        }
        if buttons.button("Settings").clicked() {
            intent = Some(Intent::OpenSettings);
        }
    }
    if buttons.button(theme).clicked() {
        intent = Some(Intent::ToggleTheme);
    }
    if buttons
        .button("?")
        .on_hover_text("Keyboard shortcuts (F1)")
        .clicked()
    {
        *shortcuts_open = !*shortcuts_open;
    }
    if has_relays && let Some(reason) = shown_reason(ui, &model.connection) {
        // "reconnecting in 0.4 s — <reason>", "not connected — <reason>":
        // the reason in full, wrapped, where the eye goes first.
        let (colour, _, _) = connection_text(&model.connection);
        ui.add(egui::Label::new(RichText::new(format!("— {reason}")).color(colour)).wrap());
    }
    if has_relays {
        ui.horizontal(|ui| {
            let search_id = egui::Id::unique("relay_filter");
            // A text field lets go of the focus on Escape before anyone
            // else sees the key: ask whether it had the focus.
            let escape_in_filter = ui.memory(|m| m.had_focus_last_frame(search_id))
                && ui.input(|i| i.key_pressed(egui::Key::Escape));
            let search = ui.add(
                egui::TextEdit::singleline(filter)
                    .id(search_id)
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
            // Escape clears the filter (and stays in it); on an empty
            // filter it leaves it, back to the list.
            if escape_in_filter && !filter.is_empty() {
                filter.clear();
                search.request_focus();
            }
            let queryable = model.config.relays.iter().any(|r| r.can_query());
            let refresh = ui
                .add_enabled(
                    queryable && model.connection.is_ready(),
                    egui::Button::new("Refresh all"),
                )
                .on_hover_text("Ask every relay that has a payload_query for its state (F5)")
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
            let copy_width = button_width(ui, "Copy") + ui.spacing().item_spacing.x;
            let topic_width = (ui.available_width() - copy_width).max(40.0);
            let topic = ui
                .allocate_ui(egui::vec2(topic_width, ui.available_height()), |ui| {
                    elided_label(
                        ui,
                        RichText::new(&model.response_topic).monospace(),
                        Some("Devices answer this panel here. Click to copy."),
                    )
                    .interact(egui::Sense::click())
                })
                .inner;
            if topic.clicked()
                || ui
                    .button("Copy")
                    .on_hover_text("Copy the response topic")
                    .clicked()
            {
                ui.ctx().copy_text(model.response_topic.clone());
            }
        });
    }
    ui.add_space(2.0);
    intent
}

/// Draws the status bar (a bottom panel of [`STATUS_BAR_HEIGHT`], drawn
/// whether or not there is something to say): the notice and the
/// warnings, each on one line cut to its share of the width (the whole
/// text on hover), with their Dismiss buttons.
pub fn status_bar(
    ui: &mut egui::Ui,
    model: &Model,
    notice: Option<&(String, bool)>,
) -> Option<Intent> {
    let mut intent = None;
    let spacing = ui.spacing().item_spacing.x;
    ui.horizontal_centered(|ui| {
        let parts = usize::from(notice.is_some()) + usize::from(!model.warnings.is_empty());
        if parts == 0 {
            ui.label(RichText::new("F1: keyboard shortcuts").weak());
            return;
        }
        let share = ui.available_width() / parts as f32;
        if let Some((text, is_error)) = notice {
            let colour = if *is_error {
                Color32::from_rgb(220, 60, 60)
            } else {
                ui.visuals().text_color()
            };
            let room = share - button_width(ui, "Dismiss") - 2.0 * spacing;
            one_line(
                ui,
                room,
                RichText::new(first_line(text)).color(colour),
                text,
            );
            if ui.button("Dismiss").clicked() {
                intent = Some(Intent::DismissNotice);
            }
        }
        if let Some(first) = model.warnings.first() {
            if notice.is_some() {
                ui.separator();
            }
            let mut shown = format!("Warning: {}", first_line(first));
            if model.warnings.len() > 1 {
                shown.push_str(&format!(" (+{} more)", model.warnings.len() - 1));
            }
            let all = model
                .warnings
                .iter()
                .map(|w| format!("Warning: {w}"))
                .collect::<Vec<_>>()
                .join("\n");
            let room = ui.available_width() - button_width(ui, "Dismiss warnings") - spacing;
            let amber = Color32::from_rgb(230, 160, 40);
            one_line(ui, room, RichText::new(shown).color(amber), &all);
            if ui.button("Dismiss warnings").clicked() {
                intent = Some(Intent::DismissWarnings);
            }
        }
    });
    intent
}

/// `shown` on one line `width` wide at most, cut with "…"; the whole
/// `text` on hover.
fn one_line(ui: &mut egui::Ui, width: f32, shown: RichText, text: &str) {
    ui.allocate_ui(egui::vec2(width.max(40.0), ui.available_height()), |ui| {
        ui.add(
            egui::Label::new(shown)
                .truncate()
                .show_tooltip_when_elided(false),
        )
        .on_hover_text(text);
    });
}

/// The first line of a text (a status bar line holds one).
fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}
