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
        Outcome::NoResponse | Outcome::DeviceError | Outcome::LateDeviceError => {
            Some(Color32::from_rgb(220, 60, 60))
        }
        Outcome::ConnectionLost | Outcome::NotSent | Outcome::Refused => {
            Some(Color32::from_rgb(230, 160, 40))
        }
        Outcome::Busy => None,
    }
}

fn matches(entry: &AuditEntry, needle: &str) -> bool {
    needle.is_empty()
        || [
            entry.relay_id.as_str(),
            entry.outcome.code(),
            entry.action.as_str(),
            entry.operator.as_str(),
        ]
        .iter()
        .chain(entry.detail.as_deref().iter())
        .any(|f| f.to_lowercase().contains(needle))
}

/// Draws the activity panel.
pub fn show(ui: &mut egui::Ui, model: &Model, filter: &mut String) -> Option<Intent> {
    let mut intent = None;
    ui.add_space(4.0);
    ui.horizontal(|ui| {
        ui.strong("Activity");
        ui.add(
            egui::TextEdit::singleline(filter)
                .hint_text("Filter activity")
                .desired_width(200.0),
        );
        if ui
            .add_enabled(!model.audit.is_empty(), egui::Button::new("Export CSV"))
            .on_hover_text("Write the audit log to a CSV file in your documents folder")
            .clicked()
        {
            intent = Some(Intent::ExportCsv);
        }
        ui.label(RichText::new(format!("{} entries", model.audit.len())).weak());
    });
    let needle = filter.trim().to_lowercase();
    let entries: Vec<&AuditEntry> = model.audit.iter().filter(|e| matches(e, &needle)).collect();
    let row_height = ui.text_style_height(&egui::TextStyle::Body) + 4.0;
    egui::ScrollArea::vertical()
        .id_salt("activity")
        .auto_shrink([false, false])
        .show_rows(ui, row_height, entries.len(), |ui, range| {
            egui::Grid::new("activity_grid")
                .num_columns(7)
                .striped(true)
                .show(ui, |ui| {
                    for entry in &entries[range] {
                        ui.label(RichText::new(format_time(entry.at)).monospace());
                        let name = model
                            .relay_index(&entry.relay_id)
                            .map(|i| model.config.relays[i].display_name().to_owned())
                            .unwrap_or_else(|| entry.relay_id.clone());
                        ui.label(name).on_hover_text(&entry.relay_id);
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
                        let detail = entry.detail.clone().unwrap_or_default();
                        ui.label(RichText::new(format!("{detail}  by {}", entry.operator)).weak());
                        ui.end_row();
                    }
                });
        });
    intent
}
