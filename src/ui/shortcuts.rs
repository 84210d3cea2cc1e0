//! The main window's keyboard: [`read`] takes this frame's shortcuts
//! before the views draw (none while a text field has the focus or a
//! dialog is open), [`moved`] moves the list's selection, and [`show`]
//! draws the window that lists the keys (F1 or `?`).
//!
//! The list is keyboard-first: ↑ ↓ Page Up/Down Home End move the
//! selection (and scroll it into view); Enter or Space goes to the
//! selected row's buttons (On, Off, Refresh, Details, left to right:
//! ← → or Tab between them, Enter or Space presses one, Escape goes back
//! to the list); F5 or Ctrl+R refreshes all.

use egui::{Key, Modifiers};

use super::model::Row;

/// A key the window acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shortcut {
    /// Move the list's selection.
    Move(Movement),
    /// Enter or Space with nothing focused: to the selected row's buttons.
    EnterRow,
    /// F5 or Ctrl+R: ask every relay that has a query payload.
    RefreshAll,
    /// F1 or `?`: open or close the list of keys.
    Help,
    /// Escape with nothing focused: close the list of keys.
    Escape,
}

/// Where a key moves the list's selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Movement {
    /// ↑: the relay above.
    Up,
    /// ↓: the relay below.
    Down,
    /// Page Up: a screenful up.
    PageUp,
    /// Page Down: a screenful down.
    PageDown,
    /// Home: the first relay.
    Home,
    /// End: the last relay.
    End,
}

/// The keys and what they do, as the help window lists them.
pub const KEYS: &[(&str, &str)] = &[
    ("Up / Down arrow", "Select the relay above / below"),
    ("Page Up / Page Down", "Select a screenful up / down"),
    ("Home / End", "Select the first / last relay"),
    (
        "Enter or Space",
        "Go to the selected relay's buttons (On, Off, Refresh, Details)",
    ),
    (
        "Left / Right arrow, Tab",
        "Between the buttons (Shift+Tab: back)",
    ),
    (
        "Enter or Space on a button",
        "Press it (relays marked confirm ask first)",
    ),
    ("Escape", "Back from the buttons to the list"),
    ("F5 or Ctrl+R", "Refresh all (relays with a query payload)"),
    ("Ctrl+F", "Filter relays (Escape clears the filter)"),
    ("F1 or ?", "This list"),
];

/// Takes this frame's shortcuts out of the input (so no widget also acts
/// on them). Nothing while a text field has the focus or `blocked` (a
/// dialog or the settings window is open). The selection keys work when
/// nothing has the focus or `in_row` (a row button has it: the focus then
/// follows the selection, so egui's own arrow-key move is cancelled).
pub fn read(ctx: &egui::Context, blocked: bool, in_row: bool) -> Vec<Shortcut> {
    if blocked || ctx.text_edit_focused() {
        return Vec::new();
    }
    let nothing_focused = ctx.memory(|m| m.focused()).is_none();
    let mut keys = Vec::new();
    ctx.input_mut(|input| {
        if nothing_focused || in_row {
            for (key, movement) in [
                (Key::ArrowUp, Movement::Up),
                (Key::ArrowDown, Movement::Down),
                (Key::PageUp, Movement::PageUp),
                (Key::PageDown, Movement::PageDown),
                (Key::Home, Movement::Home),
                (Key::End, Movement::End),
            ] {
                for _ in 0..input.count_and_consume_key(Modifiers::NONE, key) {
                    keys.push(Shortcut::Move(movement));
                }
            }
        }
        if nothing_focused {
            if input.consume_key(Modifiers::NONE, Key::Enter)
                | input.consume_key(Modifiers::NONE, Key::Space)
            {
                keys.push(Shortcut::EnterRow);
            }
            // Looked at, not taken: the filter clears on Escape after
            // egui has already taken its focus away.
            if input.key_pressed(Key::Escape) {
                keys.push(Shortcut::Escape);
            }
        }
        if input.consume_key(Modifiers::NONE, Key::F5)
            | input.consume_key(Modifiers::COMMAND, Key::R)
        {
            keys.push(Shortcut::RefreshAll);
        }
        // `?` arrives as text, and on most layouts as a key press too.
        let mut help = input.consume_key(Modifiers::NONE, Key::F1);
        help |= input.consume_key(Modifiers::NONE, Key::Questionmark);
        let before = input.events.len();
        input
            .events
            .retain(|event| !matches!(event, egui::Event::Text(text) if text == "?"));
        help |= input.events.len() != before;
        if help {
            keys.push(Shortcut::Help);
        }
    });
    if in_row && keys.iter().any(|k| matches!(k, Shortcut::Move(_))) {
        ctx.memory_mut(|m| m.move_focus(egui::FocusDirection::None));
    }
    keys
}

/// The relay selected after `movement` from `selected` in `rows` (group
/// headings are skipped); `page` is how many rows a screenful holds.
/// From no selection, or one the rows no longer show, every key but End
/// starts at the first relay. `None` only when no row is a relay.
pub fn moved(
    rows: &[Row],
    selected: Option<usize>,
    movement: Movement,
    page: usize,
) -> Option<usize> {
    let relay_at = |i: usize| match rows.get(i) {
        Some(Row::Relay(r)) => Some(*r),
        _ => None,
    };
    let first = (0..rows.len()).find_map(relay_at);
    let last = (0..rows.len()).rev().find_map(relay_at);
    let Some(current) = selected.and_then(|s| rows.iter().position(|row| *row == Row::Relay(s)))
    else {
        return if movement == Movement::End {
            last
        } else {
            first
        };
    };
    // The nearest relay at or after `i` going down, at or before it going up.
    let down_from = |i: usize| (i.min(rows.len())..rows.len()).find_map(relay_at);
    let up_from = |i: usize| (0..=i.min(rows.len() - 1)).rev().find_map(relay_at);
    let page = page.max(1);
    let target = match movement {
        Movement::Up => current.checked_sub(1).and_then(up_from),
        Movement::Down => down_from(current + 1),
        Movement::PageUp => up_from(current.saturating_sub(page)).or(first),
        Movement::PageDown => down_from(current + page).or(last),
        Movement::Home => first,
        Movement::End => last,
    };
    target.or(relay_at(current))
}

/// Draws the list of keys while `open`; its close button and Escape
/// (read by [`read`]) close it.
pub fn show(ctx: &egui::Context, open: &mut bool) {
    egui::Window::new("Keyboard shortcuts")
        .id(egui::Id::unique("keyboard_shortcuts"))
        .open(open)
        .collapsible(false)
        .resizable(false)
        .anchor(egui::Align2::CENTER_CENTER, egui::Vec2::ZERO)
        .show(ctx, |ui| {
            egui::Grid::new("keyboard_shortcuts_grid")
                .num_columns(2)
                .spacing([24.0, 6.0])
                .striped(true)
                .show(ui, |ui| {
                    for (keys, what) in KEYS {
                        ui.label(egui::RichText::new(*keys).strong());
                        ui.label(*what);
                        ui.end_row();
                    }
                });
            ui.add_space(6.0);
            ui.label(
                egui::RichText::new(
                    "Keys do nothing while a text field has the focus or a dialog is open.",
                )
                .weak(),
            );
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two groups: heading, relays 0 and 2; heading, relays 1 and 3.
    fn rows() -> Vec<Row> {
        vec![
            Row::Group(0, 2),
            Row::Relay(0),
            Row::Relay(2),
            Row::Group(1, 2),
            Row::Relay(1),
            Row::Relay(3),
        ]
    }

    /// Every key from every place, headings skipped, ends held.
    #[test]
    fn selection_moves_table() {
        use Movement::*;
        let rows = rows();
        let cases = [
            // (from, key, page, to)
            (None, Down, 3, Some(0)),
            (None, Up, 3, Some(0)),
            (None, End, 3, Some(3)),
            (Some(0), Down, 3, Some(2)),
            (Some(2), Down, 3, Some(1)),
            (Some(1), Up, 3, Some(2)),
            (Some(0), Up, 3, Some(0)),
            (Some(3), Down, 3, Some(3)),
            (Some(0), PageDown, 3, Some(1)),
            (Some(0), PageDown, 30, Some(3)),
            (Some(3), PageUp, 3, Some(2)),
            (Some(3), PageUp, 30, Some(0)),
            (Some(1), Home, 3, Some(0)),
            (Some(0), End, 3, Some(3)),
            // A selection the filter hides starts again at the top.
            (Some(7), Down, 3, Some(0)),
        ];
        for (from, key, page, to) in cases {
            assert_eq!(moved(&rows, from, key, page), to, "{from:?} {key:?} {page}");
        }
        assert_eq!(moved(&[Row::Group(0, 0)], None, Down, 3), None);
        assert_eq!(moved(&[], Some(1), Down, 3), None);
    }
}
