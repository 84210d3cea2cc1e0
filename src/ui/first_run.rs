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
                let example = crate::config::EXAMPLE;
                // TOML lines are not sentences: they never wrap (the block scrolls).
                let text = egui::Label::new(RichText::new(example.trim_end()).monospace());
                code_block(ui, "Example", text.extend(), Some(example));
            }
            Source::Broken(path, error) => {
                ui.heading("The configuration has a problem");
                ui.add_space(8.0);
                ui.label(format!("{} could not be used:", path.display()));
                ui.add_space(4.0);
                let red = egui::Color32::from_rgb(220, 60, 60);
                let text = egui::Label::new(RichText::new(error).monospace().color(red));
                code_block(ui, "Error", text.wrap(), None);
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

/// Longest a code block gets before it scrolls.
const CODE_MAX_HEIGHT: f32 = 320.0;

/// `text` as a code block: every line starting at the frame's left edge
/// (the centred column around it would centre each line), in a frame
/// under `title`, scrolling when long; with a Copy button that puts `copy`
/// on the clipboard, when given.
fn code_block(ui: &mut egui::Ui, title: &str, text: egui::Label, copy: Option<&str>) {
    ui.with_layout(egui::Layout::top_down(egui::Align::Min), |ui| {
        let frame = egui::Frame::group(ui.style()).fill(ui.visuals().extreme_bg_color);
        frame.show(ui, |ui| {
            ui.set_width(ui.available_width());
            ui.horizontal(|ui| {
                ui.label(RichText::new(title).strong());
                if let Some(copy) = copy
                    && ui
                        .button("Copy")
                        .on_hover_text("Copy this text to the clipboard")
                        .clicked()
                {
                    ui.ctx().copy_text(copy.to_owned());
                }
            });
            egui::ScrollArea::both()
                .id_salt(title)
                .max_height(CODE_MAX_HEIGHT)
                .auto_shrink([false, true])
                .show(ui, |ui| ui.add(text.halign(egui::Align::Min)));
        });
    });
}
