//! A bare eframe window with the same renderer and features as the panel:
//! the baseline for the panel's memory and idle CPU (scripts/measure-gui.sh).

fn main() -> eframe::Result {
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default().with_inner_size([1100.0, 700.0]),
        ..Default::default()
    };
    eframe::run_ui_native("bare-window", options, |ui, _frame| {
        egui::CentralPanel::default().show(ui, |ui| {
            ui.label("bare eframe window");
        });
    })
}
