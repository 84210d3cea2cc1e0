//! First run (no configuration yet) and a broken configuration file.

use egui::RichText;

use super::intent::Intent;
use super::source::Source;

/// Draws the explanation and the ways forward.
pub fn show(ui: &mut egui::Ui, source: &Source) -> Option<Intent> {
    let mut intent = None;
    ui.add_space(24.0);
    ui.vertical_centered(|ui| {
        ui.set_max_width(640.0);
        match source {
            Source::Missing(path) => {
                ui.heading("No configuration yet");
                ui.add_space(8.0);
                ui.label(format!(
                    "Relay Panel reads the broker and the list of relays from\n{}\n\n\
                     Create that file (\"Create example configuration\" writes a starting point), \
                     point RELAY_PANEL_CONFIG at another file, or start with --config FILE.\n\
                     The demo runs a broker and simulated relays inside this window: nothing to install.",
                    path.display()
                ));
                ui.add_space(12.0);
                ui.horizontal(|ui| {
                    if ui.button(RichText::new("Open demo").strong()).clicked() {
                        intent = Some(Intent::OpenDemo);
                    }
                    if ui.button("Create example configuration").clicked() {
                        intent = Some(Intent::CreateExample);
                    }
                    if ui.button("Reload").clicked() {
                        intent = Some(Intent::Reload);
                    }
                });
                ui.add_space(12.0);
                ui.label("Example:");
                ui.code(crate::config::EXAMPLE);
            }
            Source::Broken(path, error) => {
                ui.heading("The configuration has a problem");
                ui.add_space(8.0);
                ui.label(format!("{} could not be used:", path.display()));
                ui.add_space(4.0);
                ui.label(RichText::new(error).monospace().color(egui::Color32::from_rgb(220, 60, 60)));
                ui.add_space(12.0);
                ui.horizontal(|ui| {
                    if ui.button("Reload").on_hover_text("Read the file again after fixing it").clicked() {
                        intent = Some(Intent::Reload);
                    }
                    if ui.button("Open demo").clicked() {
                        intent = Some(Intent::OpenDemo);
                    }
                });
            }
            Source::File(_) | Source::Demo => {}
        }
    });
    intent
}
