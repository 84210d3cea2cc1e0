//! Activity panel: the audit log, newest first, filterable, exportable.

use egui::{Color32, RichText};

use super::intent::Intent;
use super::model::Model;
use crate::outcome::Outcome;
use crate::relay::{format_rtt, format_time};
use crate::store::AuditEntry;

/// Colour of an outcome word.
pub fn outcome_colour(outcome: Outcome) -> Option<Color32> {
    match outcome {
        Outcome::Confirmed | Outcome::LateConfirmed => Some(Color32::from_rgb(60, 180, 75)),
        // Not the confirmed green: nothing ties a report to the request.
        Outcome::Reported | Outcome::ChangedAtDevice => Some(Color32::from_rgb(70, 150, 210)),
        Outcome::NoResponse | Outcome::DeviceError | Outcome::LateDeviceError => {
            Some(Color32::from_rgb(220, 60, 60))
        }
        Outcome::ConnectionLost | Outcome::NotSent | Outcome::Refused => {
            Some(Color32::from_rgb(230, 160, 40))
        }
        Outcome::Busy => None,
    }
}

/// Who the entry says acted: "by alice" for a request, "at the device"
/// for a change at the device (nobody this panel knows asked for it; what
/// switched it, when the device says, is in the detail column).
pub fn who(entry: &AuditEntry) -> String {
    match entry.outcome {
        Outcome::ChangedAtDevice => "at the device".to_owned(),
        _ => format!("by {}", entry.operator),
    }
}

/// Draws the activity panel: the entries matching `filter` (as shown:
/// names, not only ids), how many of how many, and an export of what is
/// shown.
pub fn show(ui: &mut egui::Ui, model: &Model, filter: &mut String) -> Option<Intent> {
    let mut intent = None;
    let entries = model.activity(filter);
    let filtered = !filter.trim().is_empty();
    let mut new_filter = false;
    ui.add_space(4.0);
    ui.horizontal(|ui| {
        ui.strong("Activity");
        let edit = ui.add(
            egui::TextEdit::singleline(filter)
                .hint_text("Filter activity")
                .desired_width(200.0),
        );
        new_filter = edit.changed();
        // (A text field gives up its focus on Escape, in the same frame.)
        if (edit.has_focus() || edit.lost_focus())
            && ui.input(|i| i.key_pressed(egui::Key::Escape))
        {
            filter.clear();
            new_filter = true;
        }
        let (label, hover) = if filtered {
            (
                format!("Export CSV ({} shown)", entries.len()),
                "Write the entries shown (those matching the filter) to a CSV file in your documents folder",
            )
        } else {
            (
                "Export CSV".to_owned(),
                "Write the audit log to a CSV file in your documents folder",
            )
        };
        if ui
            .add_enabled(!entries.is_empty(), egui::Button::new(label))
            .on_hover_text(hover)
            .clicked()
        {
            intent = Some(Intent::ExportCsv);
        }
        let count = if filtered {
            format!("{} of {} entries", entries.len(), model.audit.len())
        } else {
            match model.audit.len() {
                1 => "1 entry".to_owned(),
                n => format!("{n} entries"),
            }
        };
        ui.label(RichText::new(count).weak());
    });
    let row_height = ui.text_style_height(&egui::TextStyle::Body) + 4.0;
    let mut scroll = egui::ScrollArea::vertical()
        .id_salt("activity")
        .auto_shrink([false, false]);
    if new_filter {
        // A new filter shows its first matches, not the old position.
        scroll = scroll.vertical_scroll_offset(0.0);
    }
    scroll.show_rows(ui, row_height, entries.len(), |ui, range| {
        egui::Grid::new("activity_grid")
            .num_columns(8)
            .striped(true)
            .show(ui, |ui| {
                for entry in &entries[range] {
                    row(ui, model, entry);
                    ui.end_row();
                }
            });
    });
    intent
}

/// One entry. The detail (a device's free text) comes last and is elided
/// with a hover, so a long one never pushes the other columns away.
fn row(ui: &mut egui::Ui, model: &Model, entry: &AuditEntry) {
    ui.label(RichText::new(format_time(entry.at)).monospace());
    ui.label(model.relay_name(entry))
        .on_hover_text(&entry.relay_id);
    ui.label(entry.action.as_str());
    let mut outcome = RichText::new(entry.outcome.code());
    if let Some(colour) = outcome_colour(entry.outcome) {
        outcome = outcome.color(colour);
    }
    ui.label(outcome);
    ui.label(
        entry
            .state
            .map(|s| s.as_str().to_uppercase())
            .unwrap_or_default(),
    );
    ui.label(entry.rtt.map(format_rtt).unwrap_or_else(|| "—".to_owned()));
    ui.label(RichText::new(who(entry)).weak());
    if let Some(detail) = &entry.detail {
        let size = egui::vec2(
            ui.available_width().max(120.0),
            ui.spacing().interact_size.y,
        );
        ui.allocate_ui_with_layout(
            size,
            egui::Layout::left_to_right(egui::Align::Center),
            |ui| {
                ui.add(egui::Label::new(RichText::new(detail).weak()).truncate())
                    .on_hover_text(detail);
            },
        );
    } else {
        ui.label("");
    }
}
