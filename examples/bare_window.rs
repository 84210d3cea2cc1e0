//! A bare eframe window with the same renderer and features as the panel:
//! the baseline for the panel's memory and idle CPU (scripts/measure-gui.sh).

fn main() -> eframe::Result {
    eframe::run_ui_native(
        "bare-window",
        eframe::NativeOptions::default(),
        |ui, _frame| {
            egui::CentralPanel::default().show(ui, |ui| {
                ui.label("bare eframe window");
            });
        },
    )
}
