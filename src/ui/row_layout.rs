//! Where a relay row's parts go: one line when the list is wide enough
//! for the outcome beside the badge, name, buttons and age, two lines
//! otherwise (the relay and its buttons, then its age and outcome). Pure
//! arithmetic on the list's width, tested at every window size.

use egui::RichText;

use super::fit::{button_width, text_width};
use super::model::Model;
use super::relay_list::RowButton;

/// Height of a row when the list is wide enough for one line per relay.
pub const ROW_HEIGHT: f32 = 30.0;
/// Height of a row when the list is narrow: the relay and its buttons on
/// the first line, its age and outcome on the second.
pub const TWO_LINE_ROW_HEIGHT: f32 = 50.0;
/// Space before the badge (group headings' triangles sit there).
const INDENT: f32 = 18.0;
/// Width of the state badge ("UNKNOWN" fits).
pub(super) const BADGE_WIDTH: f32 = 84.0;
/// The name never gets less than this on one line: the row takes two
/// lines first.
const NAME_MIN: f32 = 160.0;
/// Beyond this a name has what it needs; the outcome gets the rest.
const NAME_MAX: f32 = 720.0;
/// Share of the free width a name may take (the rest goes to the outcome).
const NAME_SHARE: f32 = 0.45;
/// How many of the longest names (by characters) are measured to find
/// the widest: measuring all 10,000 would cost a frame.
const NAMES_MEASURED: usize = 8;
/// Width of "reported by the device 59 min ago (button)" (249 px in the
/// default font; "last acknowledged 59 min ago (late)" takes 208).
const ACK_WIDTH: f32 = 260.0;
/// Room for "device error: …", "no response after 3.0 s" or the
/// countdown with its spinner; less and the row takes two lines.
const OUTCOME_MIN: f32 = 260.0;
/// Height of the first line of a two-line row.
const FIRST_LINE: f32 = 28.0;

/// Where a relay row's parts go at a given list width (pure arithmetic,
/// so it is tested at every window size without drawing).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowLayout {
    /// The whole row's width.
    pub width: f32,
    /// Whether the age and outcome go on a second line.
    pub two_lines: bool,
    /// Every row's height, [`ROW_HEIGHT`] or [`TWO_LINE_ROW_HEIGHT`].
    pub height: f32,
    /// Width of the name.
    pub name: f32,
    /// Width of the four buttons side by side.
    pub buttons: f32,
    /// Width of the outcome (spinner and text).
    pub outcome: f32,
    /// Space between two parts.
    pub gap: f32,
}

/// The rectangles of one relay row's parts (see [`RowLayout::cells`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowCells {
    /// The state badge.
    pub badge: egui::Rect,
    /// The relay's name.
    pub name: egui::Rect,
    /// On, Off, Refresh, Details.
    pub buttons: egui::Rect,
    /// "last acknowledged 12 s ago", "reported by the device 2 min ago
    /// (button)".
    pub ack: egui::Rect,
    /// "offline since 10:42" when the device is, then the spinner and the
    /// outcome of the latest request.
    pub outcome: egui::Rect,
}

impl RowLayout {
    /// The layout for a list `width` wide whose widest relay name is
    /// `widest_name` and whose row buttons take `buttons` side by side,
    /// with `gap` between parts.
    pub fn new(width: f32, widest_name: f32, buttons: f32, gap: f32) -> Self {
        let fixed = INDENT + BADGE_WIDTH + buttons + ACK_WIDTH + 4.0 * gap;
        let free = width - fixed;
        if free >= NAME_MIN + OUTCOME_MIN {
            let most = (free * NAME_SHARE)
                .clamp(NAME_MIN, NAME_MAX)
                .min(free - OUTCOME_MIN);
            let name = widest_name.clamp(NAME_MIN, most);
            RowLayout {
                width,
                two_lines: false,
                height: ROW_HEIGHT,
                name,
                buttons,
                outcome: free - name,
                gap,
            }
        } else {
            RowLayout {
                width,
                two_lines: true,
                height: TWO_LINE_ROW_HEIGHT,
                name: (width - INDENT - BADGE_WIDTH - buttons - 2.0 * gap).max(0.0),
                buttons,
                outcome: (width - INDENT - BADGE_WIDTH - ACK_WIDTH - 2.0 * gap).max(0.0),
                gap,
            }
        }
    }

    /// The parts of the row drawn in `row` (whose width is [`Self::width`]).
    pub fn cells(&self, row: egui::Rect) -> RowCells {
        let cell =
            |x: f32, width: f32, y: egui::Rangef| egui::Rect::from_x_y_ranges(x..=x + width, y);
        let first = if self.two_lines {
            egui::Rangef::new(row.top(), row.top() + FIRST_LINE)
        } else {
            row.y_range()
        };
        let second = if self.two_lines {
            egui::Rangef::new(row.top() + FIRST_LINE, row.bottom())
        } else {
            row.y_range()
        };
        let badge = cell(row.left() + INDENT, BADGE_WIDTH, first);
        let name = cell(badge.right() + self.gap, self.name, first);
        let buttons = cell(name.right() + self.gap, self.buttons, first);
        let ack_left = if self.two_lines {
            name.left()
        } else {
            buttons.right() + self.gap
        };
        let ack = cell(ack_left, ACK_WIDTH, second);
        let outcome = cell(ack.right() + self.gap, self.outcome, second);
        RowCells {
            badge,
            name,
            buttons,
            ack,
            outcome,
        }
    }
}

/// Width of the row buttons side by side, as drawn in `ui`.
pub(super) fn buttons_width(ui: &egui::Ui) -> f32 {
    RowButton::ALL
        .iter()
        .map(|b| button_width(ui, b.label()))
        .sum::<f32>()
        + ui.spacing().item_spacing.x * (RowButton::ALL.len() - 1) as f32
}

/// Width of the widest name in `model`'s configuration, measured on the
/// longest few by characters.
pub(super) fn widest_name(ui: &egui::Ui, model: &Model) -> f32 {
    let mut names: Vec<&str> = model
        .config
        .relays
        .iter()
        .map(|r| r.display_name())
        .collect();
    let longest = NAMES_MEASURED.min(names.len());
    if longest > 0 && longest < names.len() {
        names.select_nth_unstable_by_key(longest - 1, |n| std::cmp::Reverse(n.chars().count()));
    }
    names[..longest]
        .iter()
        .map(|name| text_width(ui, RichText::new(*name).strong(), egui::TextStyle::Body))
        .fold(0.0, f32::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Roughly what four buttons take in the default style.
    const BUTTONS: f32 = 235.0;
    const GAP: f32 = 8.0;

    /// From 640 to 2560 px: the parts follow each other left to right
    /// without overlapping, inside the row, and the outcome always has
    /// its room (on the second line when narrow); a 60-character name
    /// (about 420 px) is whole from 1,600 px on.
    #[test]
    fn row_parts_never_overlap_at_any_width() {
        let row_height = |layout: &RowLayout| layout.height;
        for width in (640..=2560).step_by(10) {
            let width = width as f32;
            let layout = RowLayout::new(width, 420.0, BUTTONS, GAP);
            let row = egui::Rect::from_min_size(egui::pos2(0.0, 100.0), egui::vec2(width, 50.0));
            let row = egui::Rect::from_min_size(row.min, egui::vec2(width, row_height(&layout)));
            let c = layout.cells(row);
            let parts = [c.badge, c.name, c.buttons, c.ack, c.outcome];
            for (i, a) in parts.iter().enumerate() {
                assert!(row.contains_rect(*a), "{width}: {a:?} outside {row:?}");
                for b in &parts[i + 1..] {
                    assert!(
                        !a.intersects(*b) || a.intersect(*b).area() == 0.0,
                        "{width}: {a:?} {b:?}"
                    );
                }
            }
            assert!(
                c.outcome.width() >= 260.0,
                "{width}: outcome {:?}",
                c.outcome
            );
            assert!(
                c.buttons.left() - c.name.right() <= GAP + 0.01,
                "buttons by the name"
            );
            if width >= 1600.0 {
                assert!(
                    !layout.two_lines && layout.name >= 420.0,
                    "{width}: {layout:?}"
                );
            }
        }
        assert!(RowLayout::new(800.0, 420.0, BUTTONS, GAP).two_lines);
        assert!(!RowLayout::new(1100.0, 420.0, BUTTONS, GAP).two_lines);
    }

    /// Short names keep the name column narrow, so the buttons stay near
    /// the names however wide the window.
    #[test]
    fn name_column_is_as_wide_as_the_names_need() {
        let layout = RowLayout::new(2560.0, 90.0, BUTTONS, GAP);
        assert_eq!(layout.name, NAME_MIN);
        let layout = RowLayout::new(2560.0, 2000.0, BUTTONS, GAP);
        assert_eq!(layout.name, NAME_MAX);
    }
}
