//! Fitting text into the room there is: measuring it, cutting it with
//! "…" (the whole text on hover, once), and laying a part out in a cell
//! of its own that it cannot draw out of.

use egui::RichText;

/// Width of `text` on one line, uncut.
pub(super) fn text_width(ui: &egui::Ui, text: RichText, style: egui::TextStyle) -> f32 {
    egui::WidgetText::from(text)
        .into_galley(ui, Some(egui::TextWrapMode::Extend), f32::INFINITY, style)
        .size()
        .x
}

/// Width of a button with `text`, as drawn in `ui`.
pub(super) fn button_width(ui: &egui::Ui, text: &str) -> f32 {
    text_width(ui, RichText::new(text), egui::TextStyle::Button)
        + 2.0 * ui.spacing().button_padding.x
}

/// A one-line label cut with "…" to the room there is; its hover shows
/// the whole text (when cut) above `hover`, once.
pub(super) fn elided_label(
    ui: &mut egui::Ui,
    text: RichText,
    hover: Option<&str>,
) -> egui::Response {
    let full = text.text().to_owned();
    let cut = text_width(ui, text.clone(), egui::TextStyle::Body) > ui.available_width();
    let response = ui.add(
        egui::Label::new(text)
            .truncate()
            .show_tooltip_when_elided(false),
    );
    match (cut, hover) {
        (true, Some(hover)) => response.on_hover_text(format!("{full}\n{hover}")),
        (true, None) => response.on_hover_text(full),
        (false, Some(hover)) => response.on_hover_text(hover),
        (false, None) => response,
    }
}

/// Runs `add` in a child `Ui` over exactly `rect`, left to right and
/// vertically centred, clipped to it: a part never draws over its
/// neighbours, whatever its content.
pub(super) fn cell<R>(
    ui: &mut egui::Ui,
    rect: egui::Rect,
    add: impl FnOnce(&mut egui::Ui) -> R,
) -> R {
    let mut child = ui.new_child(
        egui::UiBuilder::new()
            .max_rect(rect)
            .layout(egui::Layout::left_to_right(egui::Align::Center)),
    );
    // A little slack for focus rings and button outlines.
    child.set_clip_rect(rect.expand(2.0).intersect(ui.clip_rect()));
    add(&mut child)
}
