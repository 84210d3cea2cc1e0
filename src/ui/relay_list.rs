//! The relay list: group headings with group actions, and one row per
//! relay. Only the rows on screen are laid out (`show_rows`), so 10,000
//! relays scroll as smoothly as ten.
//!
//! Every row has the same height (`show_rows` needs it), chosen from the
//! list's width by [`RowLayout`] (`row_layout.rs`): one line when the
//! outcome has room beside the badge, name, buttons and age; two lines
//! otherwise. Each part is laid out in a cell of its own and cut with "…"
//! to it (`fit.rs`; the hover shows the whole text), so nothing is ever
//! drawn over anything else.
//!
//! The keyboard's cursor is the selection in [`ListView`] (moved by
//! [`shortcuts`](super::shortcuts)); Enter puts the focus on the selected
//! row's buttons, in Tab order left to right.
//!
//! (Over 400 lines: a relay row draws, in one function, its parts, its
//! highlight and its share of the keyboard's focus, kept together so that
//! what a row does is read in one place.)

use std::collections::BTreeSet;
use std::time::SystemTime;

use egui::{Color32, RichText};

use super::fit::{cell, elided_label};
use super::intent::Intent;
use super::model::{Model, Row, whole_second};
use super::row_layout::{BADGE_WIDTH, buttons_width, widest_name};
use crate::config::RelayConfig;
use crate::outcome::Evidence;
use crate::protocol::{self, RelayState};
use crate::relay::{
    Acknowledgement, Availability, DeviceReport, Failure, LateAnswer, Phase, RelayStatus, Shown,
    format_age, format_rtt, format_time,
};

pub use super::row_layout::{ROW_HEIGHT, RowCells, RowLayout, TWO_LINE_ROW_HEIGHT};

/// Badge colour for a state: green ON, blue-grey OFF, grey UNKNOWN (with text, never colour alone).
pub fn badge_colour(state: Option<RelayState>) -> Color32 {
    match state {
        Some(RelayState::On) => Color32::from_rgb(46, 125, 50),
        Some(RelayState::Off) => Color32::from_rgb(69, 90, 120),
        None => Color32::from_rgb(110, 110, 110),
    }
}

/// Badge text for a state.
pub fn badge_text(state: Option<RelayState>) -> &'static str {
    match state {
        Some(RelayState::On) => "ON",
        Some(RelayState::Off) => "OFF",
        None => "UNKNOWN",
    }
}

/// Draws the badge of a relay's last acknowledged state: filled when a
/// reply tied to the request confirmed it, outlined when the device only
/// reported it (`evidence`); its accessible label says which.
pub fn badge(
    ui: &mut egui::Ui,
    state: Option<RelayState>,
    evidence: Option<Evidence>,
) -> egui::Response {
    let (rect, response) =
        ui.allocate_exact_size(egui::vec2(BADGE_WIDTH, 22.0), egui::Sense::hover());
    let colour = badge_colour(state);
    let painter = ui.painter();
    if evidence == Some(Evidence::Reported) {
        let inner = rect.shrink(1.0);
        painter.rect_filled(inner, 4.0, colour.gamma_multiply(0.35));
        painter.rect_stroke(
            inner,
            4.0,
            egui::Stroke::new(2.0, colour),
            egui::StrokeKind::Inside,
        );
    } else {
        painter.rect_filled(rect, 4.0, colour);
    }
    painter.text(
        rect.center(),
        egui::Align2::CENTER_CENTER,
        badge_text(state),
        egui::FontId::proportional(13.0),
        Color32::WHITE,
    );
    response.widget_info(|| {
        egui::WidgetInfo::labeled(egui::Role::Label, true, badge_label(state, evidence))
    });
    response
}

/// The badge's accessible label: "State: ON, confirmed" / "State: ON,
/// reported" / "State: UNKNOWN".
pub fn badge_label(state: Option<RelayState>, evidence: Option<Evidence>) -> String {
    match (state, evidence) {
        (Some(_), Some(evidence)) => {
            format!("State: {}, {}", badge_text(state), evidence.verb())
        }
        _ => format!("State: {}", badge_text(state)),
    }
}

/// "last acknowledged 12 s ago" (or "reported by the device 2 min ago
/// (button)" when the device's own report is the newest evidence) and its
/// hover text, which names both facts the panel holds: the last
/// acknowledgement of a request, and the device's own report.
pub fn ack_text(status: &RelayStatus, now: SystemTime) -> (String, String) {
    let age = |at: SystemTime| format_age(now.duration_since(at).unwrap_or_default());
    let report_line = |report: &DeviceReport| {
        let state = report.state.as_str().to_uppercase();
        if report.retained {
            format!(
                "Reported {state} in a retained message heard at {} (published before; time unknown).",
                format_time(report.at)
            )
        } else {
            format!(
                "Reported {state} at {}{}: the device published it by itself; no request of this panel explains it.",
                format_time(report.at),
                report.from_source()
            )
        }
    };
    let ack_line = |ack: &Acknowledgement| {
        format!(
            "Last {} {} at {}{}.",
            ack.evidence.verb(),
            ack.state.as_str().to_uppercase(),
            format_time(ack.at),
            ack.by_whom()
        )
    };
    match status.shown() {
        None => (
            "never acknowledged".to_owned(),
            "No device has confirmed a state for this relay yet.".to_owned(),
        ),
        Some(Shown::Device(report)) => {
            let text = if report.retained {
                "reported (retained; time unknown)".to_owned()
            } else {
                format!(
                    "reported by the device {}{}",
                    age(report.at),
                    report.from_source()
                )
            };
            let mut hover = report_line(report);
            if report.restored {
                hover.push_str("\nFrom an earlier session. Refresh to ask the device.");
            }
            match &status.last_acknowledged {
                Some(ack) => {
                    hover.push('\n');
                    hover.push_str(&ack_line(ack));
                }
                None => hover.push_str("\nNo request of this panel has been answered yet."),
            }
            (text, hover)
        }
        Some(Shown::Acknowledged(ack)) => {
            let mut text = match ack.evidence {
                Evidence::Correlated => format!("last acknowledged {}", age(ack.at)),
                Evidence::Reported => format!("last reported {}", age(ack.at)),
            };
            if ack.late {
                text.push_str(" (late)");
            }
            let (verb, why) = match ack.evidence {
                Evidence::Correlated => (
                    "Confirmed",
                    "The device's reply to this very request (its correlation data or RPC id).",
                ),
                Evidence::Reported => (
                    "Reported",
                    "The device published this state after the command, but nothing ties that message to the request.",
                ),
            };
            let mut hover = format!(
                "{verb} {}{} — round trip {}\n{why}",
                format_time(ack.at),
                ack.by_whom(),
                format_rtt(ack.rtt)
            );
            if ack.restored {
                hover.push_str("\nFrom an earlier session: not confirmed since this panel started. Refresh to ask the device.");
            }
            if ack.late {
                hover.push_str("\nThe answer arrived after its request had timed out or the connection dropped.");
            }
            if let Some(report) = &status.device_report {
                hover.push('\n');
                hover.push_str(&report_line(report));
            }
            (text, hover)
        }
    }
}

/// A time of day for a row, local: "10:42" today, "2026-12-03 10:42" on
/// another day (a device offline since yesterday must not read as today).
pub fn clock(at: SystemTime, now: SystemTime) -> String {
    let at: chrono::DateTime<chrono::Local> = at.into();
    let today: chrono::DateTime<chrono::Local> = now.into();
    if at.date_naive() == today.date_naive() {
        at.format("%H:%M").to_string()
    } else {
        at.format("%Y-%m-%d %H:%M").to_string()
    }
}

/// What a row says about its device's availability, and the hover that
/// says what it means: *offline since 10:42* ("since before" when only a
/// retained last will was heard). `None` when online or unknown: a row
/// stays calm unless something is wrong (Details tells every case).
pub fn availability_text(
    relay: &RelayConfig,
    availability: Availability,
    now: SystemTime,
) -> Option<(String, String)> {
    let Availability::Offline { since, retained } = availability else {
        return None;
    };
    let topic = relay.availability_topic().unwrap_or_default();
    let (text, heard) = if retained {
        (
            format!("offline since before {}", clock(since, now)),
            format!(
                "Offline since before {}: a retained last will on {topic} was heard when the \
                 panel subscribed (when the device went offline is unknown).",
                format_time(since)
            ),
        )
    } else {
        (
            format!("offline since {}", clock(since, now)),
            format!(
                "Offline since {}: its last will on {topic} was published.",
                format_time(since)
            ),
        )
    };
    let hover = format!(
        "{heard}\nIts last will says it lost its connection to the broker; commands may never \
         arrive. The state shown is the last one known. On and Off ask before sending."
    );
    Some((text, hover))
}

/// When the latest request ended (`None` while idle or in flight).
fn request_ended(phase: &Phase) -> Option<SystemTime> {
    match phase {
        Phase::Idle | Phase::Pending { .. } => None,
        Phase::Confirmed { at, .. } | Phase::Failed { at, .. } | Phase::Late { at, .. } => {
            Some(*at)
        }
    }
}

/// Whether the latest request's outcome is old news, hidden from the row:
/// the device said something newer by itself after the request ended (a
/// report no request explains, or its last will).
///
/// Hidden rather than dimmed: beside an outlined ON *reported by the
/// device 2 min ago (button)*, an older *confirmed in 3 ms* (of a request
/// that switched it OFF) reads as if ON had been confirmed, dimmed or
/// not, and a row that explains itself in two tenses is not calm. The
/// outcome is not lost: the badge's hover names the last confirmation
/// (when, by whom), and the activity log and Details keep every request.
pub fn outcome_superseded(status: &RelayStatus) -> bool {
    let Some(ended) = request_ended(&status.phase) else {
        return false;
    };
    let reported_after = matches!(status.shown(), Some(Shown::Device(report)) if report.at > ended);
    let offline_after = matches!(
        status.availability,
        Availability::Offline { since, .. } if since > ended
    );
    reported_after || offline_after
}

/// What the status column says, and its colour (`None`: normal text).
pub fn phase_text(status: &RelayStatus, now: SystemTime) -> Option<(String, Option<Color32>)> {
    let red = Color32::from_rgb(220, 60, 60);
    let amber = Color32::from_rgb(230, 160, 40);
    let colour = match &status.phase {
        Phase::Idle => return None,
        Phase::Pending { deadline, .. } => {
            let left = deadline.duration_since(now).unwrap_or_default();
            return Some((
                format!(
                    "waiting for device… {:.0} s left",
                    left.as_secs_f32().ceil()
                ),
                None,
            ));
        }
        Phase::Confirmed { .. } => None,
        Phase::Failed { reason, .. } => match reason {
            Failure::NoResponse { .. } | Failure::DeviceError { .. } => Some(red),
            Failure::ConnectionLost | Failure::NotSent { .. } | Failure::Refused { .. } => {
                Some(amber)
            }
        },
        Phase::Late { answer, .. } => match answer {
            LateAnswer::State(_) => Some(amber),
            LateAnswer::DeviceError(_) => Some(red),
        },
    };
    Some((status.phase.to_string(), colour))
}

/// A button in a relay's row, in Tab order (left to right).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowButton {
    /// Switch on.
    On,
    /// Switch off.
    Off,
    /// Ask the device for its state.
    Refresh,
    /// Open the detail window.
    Details,
}

impl RowButton {
    /// Every button, left to right.
    pub const ALL: [RowButton; 4] = [
        RowButton::On,
        RowButton::Off,
        RowButton::Refresh,
        RowButton::Details,
    ];

    /// The button's text.
    pub fn label(self) -> &'static str {
        match self {
            RowButton::On => "On",
            RowButton::Off => "Off",
            RowButton::Refresh => "Refresh",
            RowButton::Details => "Details",
        }
    }
}

/// The relay list's view state, kept by the panel between frames: the
/// keyboard's selection, and what the last frame showed (for scrolling a
/// page, and for the ages that repaint the window).
#[derive(Debug, Default)]
pub struct ListView {
    /// The selected relay (index into `config.relays`): highlighted, and
    /// what the keys act on. Kept while the filter hides it.
    pub selected: Option<usize>,
    /// Scroll the selected row into view on the next draw (set when the
    /// selection moved, or a row button got the focus by Tab).
    pub reveal: bool,
    /// Give the keyboard focus to this button of the selected row on the
    /// next draw (the next enabled one to its right when it is disabled).
    pub focus: Option<RowButton>,
    /// The row button that had the keyboard focus in the last frame.
    pub focused: Option<(usize, RowButton)>,
    /// Relays whose rows the last frame laid out: the on-screen ones (and
    /// the one just below), whose ages and countdowns repaint the window.
    pub on_screen: Vec<usize>,
    /// Whole rows the last frame's viewport held (Page Up / Page Down).
    pub page_rows: usize,
    /// Scroll to the top on the next draw: the filter changed, and a new
    /// filter shows its first matches, not the old position.
    pub to_top: bool,
    /// Scroll offset and viewport height of the last frame, to scroll the
    /// selection into view.
    scroll: Option<(f32, f32)>,
    /// The widest relay name's width, for the configuration generation it
    /// was measured for: the name column is as wide as the names need, so
    /// the buttons stay near them.
    widest_name: Option<(u64, f32)>,
}

/// Draws the list. `view` is the list's state between frames (selection,
/// focus, scroll); `now` the frame's clock.
pub fn show(
    ui: &mut egui::Ui,
    model: &Model,
    rows: &[Row],
    collapsed: &BTreeSet<String>,
    view: &mut ListView,
    now: SystemTime,
) -> Option<Intent> {
    let mut intent = None;
    view.on_screen.clear();
    if model.config.relays.is_empty() {
        ui.label("This configuration has no relays. Add some in Settings.");
        return None;
    }
    if rows.is_empty() {
        ui.label("No relay matches the filter.");
        return None;
    }
    let connected = model.connection.is_ready();
    // The scroll bar's room is kept out of the rows whether it shows or
    // not: egui's bars float over the content, and would cover Details.
    let bar = ui.spacing().scroll;
    let width =
        ui.available_width() - (bar.bar_inner_margin + bar.bar_width + bar.bar_outer_margin);
    let widest = match view.widest_name {
        Some((generation, widest)) if generation == model.generation => widest,
        _ => {
            let widest = widest_name(ui, model);
            view.widest_name = Some((model.generation, widest));
            widest
        }
    };
    let layout = RowLayout::new(
        width,
        widest,
        buttons_width(ui),
        ui.spacing().item_spacing.x,
    );
    let pitch = layout.height + ui.spacing().item_spacing.y;
    let mut area = egui::ScrollArea::vertical()
        .id_salt("relay_list")
        .auto_shrink([false, false]);
    if std::mem::take(&mut view.reveal)
        && let Some(index) = rows
            .iter()
            .position(|row| Some(*row) == view.selected.map(Row::Relay))
    {
        let top = index as f32 * pitch;
        let (offset, height) = view.scroll.unwrap_or_default();
        let wanted = if top < offset || height <= 0.0 {
            top
        } else if top + layout.height > offset + height {
            top + layout.height - height
        } else {
            offset
        };
        if wanted != offset {
            area = area.vertical_scroll_offset(wanted);
        }
    }
    if std::mem::take(&mut view.to_top) {
        area = area.vertical_scroll_offset(0.0);
    }
    let focus = view.focus.take();
    let mut focused = None;
    let output = area.show_rows(ui, layout.height, rows.len(), |ui, range| {
        for row in &rows[range] {
            let chosen = match *row {
                Row::Group(g, matching) => {
                    group_row(ui, model, g, matching, collapsed, connected, layout.height)
                }
                Row::Relay(r) => {
                    view.on_screen.push(r);
                    let selected = view.selected == Some(r);
                    let row = RowContext {
                        model,
                        relay: r,
                        now,
                        connected,
                        layout: &layout,
                        selected,
                        focus: focus.filter(|_| selected),
                    };
                    let drawn = ui
                        .push_id(&model.config.relays[r].id, |ui| relay_row(ui, &row))
                        .inner;
                    if drawn.clicked {
                        view.selected = Some(r);
                    }
                    if let Some(button) = drawn.focused {
                        focused = Some((r, button));
                    }
                    if drawn.gained_focus && !selected {
                        // Tab reached a row (maybe the one below the
                        // viewport): it becomes the selection, in view.
                        view.selected = Some(r);
                        view.reveal = true;
                        ui.ctx().request_repaint();
                    }
                    drawn.intent
                }
            };
            if chosen.is_some() {
                intent = chosen;
            }
        }
    });
    view.focused = focused;
    let height = output.inner_rect.height();
    view.scroll = Some((output.state.clamped_offset().y, height));
    view.page_rows = ((height / pitch).floor() as usize).max(1);
    intent
}

fn group_row(
    ui: &mut egui::Ui,
    model: &Model,
    g: usize,
    matching: usize,
    collapsed: &BTreeSet<String>,
    connected: bool,
    height: f32,
) -> Option<Intent> {
    let group = &model.groups[g];
    let mut intent = None;
    ui.push_id(("group", &group.name), |ui| {
        ui.allocate_ui(egui::vec2(ui.available_width(), height), |ui| {
            ui.set_min_height(height);
            ui.horizontal_centered(|ui| {
                let open = !collapsed.contains(&group.name);
                let title = format!("{} ({matching})", group.title());
                let (icon, icon_response) =
                    ui.allocate_exact_size(egui::vec2(14.0, 14.0), egui::Sense::click());
                disclosure_triangle(ui, icon, open);
                let hint = if open {
                    "Fold this group"
                } else {
                    "Unfold this group"
                };
                let title_response = ui
                    .add(egui::Button::new(RichText::new(title).strong().size(15.0)).frame(false))
                    .on_hover_text(hint);
                if title_response.clicked() || icon_response.clicked() {
                    intent = Some(Intent::ToggleGroup(group.name.clone()));
                }
                let on = ui.add_enabled(connected, egui::Button::new("All on"));
                if on
                    .on_disabled_hover_text("Not connected to the broker")
                    .clicked()
                {
                    intent = Some(Intent::GroupSwitch {
                        group: g,
                        action: protocol::Action::On,
                    });
                }
                let off = ui.add_enabled(connected, egui::Button::new("All off"));
                if off
                    .on_disabled_hover_text("Not connected to the broker")
                    .clicked()
                {
                    intent = Some(Intent::GroupSwitch {
                        group: g,
                        action: protocol::Action::Off,
                    });
                }
                if let Some(run) = model
                    .group_run
                    .as_ref()
                    .filter(|run| run.group == group.name)
                {
                    let text = if run.done() {
                        format!("All {}: done — {}", run.action, run.progress())
                    } else {
                        format!("All {}: {}", run.action, run.progress())
                    };
                    if !run.done() {
                        ui.spinner();
                    }
                    let colour = if run.done() && run.confirmed < run.total {
                        Color32::from_rgb(230, 160, 40)
                    } else {
                        ui.visuals().text_color()
                    };
                    if run.done() && ui.small_button("Dismiss").clicked() {
                        intent = Some(Intent::DismissGroupRun);
                    }
                    elided_label(ui, RichText::new(text).color(colour), None);
                }
            });
        });
    });
    intent
}

/// A triangle pointing down (open) or right (folded); drawn, so it needs no
/// font glyph.
fn disclosure_triangle(ui: &egui::Ui, rect: egui::Rect, open: bool) {
    let c = rect.center();
    let r = 5.0;
    let points = if open {
        vec![
            c + egui::vec2(-r, -r * 0.6),
            c + egui::vec2(r, -r * 0.6),
            c + egui::vec2(0.0, r * 0.7),
        ]
    } else {
        vec![
            c + egui::vec2(-r * 0.6, -r),
            c + egui::vec2(-r * 0.6, r),
            c + egui::vec2(r * 0.7, 0.0),
        ]
    };
    let colour = ui.visuals().text_color();
    ui.painter().add(egui::Shape::convex_polygon(
        points,
        colour,
        egui::Stroke::NONE,
    ));
}

/// What one relay row needs to draw itself.
struct RowContext<'a> {
    model: &'a Model,
    /// Index into `config.relays`.
    relay: usize,
    /// The frame's clock (ages read it on whole seconds).
    now: SystemTime,
    /// Whether requests can be sent.
    connected: bool,
    layout: &'a RowLayout,
    /// Whether this is the keyboard's selection.
    selected: bool,
    /// The button to give the keyboard focus to (selected row only).
    focus: Option<RowButton>,
}

/// What happened in a relay row this frame.
#[derive(Default)]
struct DrawnRow {
    /// What the technician asked for.
    intent: Option<Intent>,
    /// The row (or one of its buttons) was clicked.
    clicked: bool,
    /// The row button that has the keyboard focus.
    focused: Option<RowButton>,
    /// One of the row's buttons got the keyboard focus this frame.
    gained_focus: bool,
}

fn relay_row(ui: &mut egui::Ui, row: &RowContext<'_>) -> DrawnRow {
    let model = row.model;
    let r = row.relay;
    let relay = &model.config.relays[r];
    let status = &model.statuses[r];
    let mut drawn = DrawnRow::default();
    // The row itself senses clicks (to select it); registered first, so
    // the buttons drawn over it get their own clicks. Not a Tab stop: the
    // keyboard reaches rows by the selection, and their buttons by Tab.
    let mut sense = egui::Sense::click();
    sense -= egui::Sense::FOCUSABLE;
    let (rect, background) =
        ui.allocate_exact_size(egui::vec2(row.layout.width, row.layout.height), sense);
    drawn.clicked = background.clicked();
    let visuals = ui.visuals();
    if row.selected {
        ui.painter()
            .rect_filled(rect, 3.0, visuals.selection.bg_fill.gamma_multiply(0.35));
        ui.painter().rect_filled(
            egui::Rect::from_min_size(rect.min, egui::vec2(3.0, rect.height())),
            1.0,
            visuals.selection.bg_fill,
        );
    } else if background.contains_pointer() {
        ui.painter().rect_filled(
            rect,
            3.0,
            visuals.widgets.hovered.weak_bg_fill.gamma_multiply(0.5),
        );
    }
    let cells = row.layout.cells(rect);
    cell(ui, cells.badge, |ui| {
        let shown = status.shown();
        let badge = badge(ui, shown.map(|s| s.state()), shown.map(|s| s.evidence()));
        // How the state is known: a reply to the request, or a report.
        badge.on_hover_ui(|ui| {
            ui.label(ack_text(status, row.now).1);
        });
    });
    cell(ui, cells.name, |ui| {
        // An offline device's row is greyed (its name here, the words
        // "offline since …" in the outcome); its badge keeps its colour:
        // the last known state stays readable.
        let mut name = RichText::new(relay.display_name()).strong();
        if status.availability.is_offline() {
            name = name.color(ui.visuals().weak_text_color());
        }
        elided_label(
            ui,
            name,
            Some(&format!(
                "id: {} ({})\ntopic: {}",
                relay.id,
                relay.kind,
                relay.topic_label()
            )),
        );
    });
    cell(ui, cells.buttons, |ui| {
        let idle = row.connected && !status.is_pending();
        let query = relay.can_query();
        let enabled = |b: RowButton| match b {
            RowButton::On | RowButton::Off => idle,
            RowButton::Refresh => idle && query,
            RowButton::Details => true,
        };
        // Focus goes to the asked button, or the next enabled one to its
        // right (Details always is).
        let focus = row.focus.and_then(|wanted| {
            RowButton::ALL
                .into_iter()
                .skip_while(|b| *b != wanted)
                .find(|b| enabled(*b))
        });
        let why = if status.is_pending() {
            "A request is in flight"
        } else {
            "Not connected to the broker"
        };
        let offline = status.availability.is_offline();
        for button in RowButton::ALL {
            let response = ui.add_enabled(enabled(button), egui::Button::new(button.label()));
            let response = match button {
                RowButton::On | RowButton::Off if offline => response
                    .on_hover_text(
                        "The device is offline (its last will): asks before sending, as the \
                         command may never arrive",
                    )
                    .on_disabled_hover_text(why),
                RowButton::On | RowButton::Off => response.on_disabled_hover_text(why),
                RowButton::Refresh => response
                    .on_hover_text("Ask the device for its state")
                    .on_disabled_hover_text(if query {
                        why
                    } else {
                        "No payload_query configured for this relay"
                    }),
                RowButton::Details => {
                    response.on_hover_text("Settings, round trips and history of this relay")
                }
            };
            if focus == Some(button) {
                response.request_focus();
            }
            if response.has_focus() {
                drawn.focused = Some(button);
            }
            drawn.gained_focus |= response.gained_focus();
            if response.clicked() {
                drawn.clicked = true;
                drawn.intent = Some(match button {
                    RowButton::On => Intent::Switch {
                        relay: r,
                        action: protocol::Action::On,
                    },
                    RowButton::Off => Intent::Switch {
                        relay: r,
                        action: protocol::Action::Off,
                    },
                    RowButton::Refresh => Intent::Switch {
                        relay: r,
                        action: protocol::Action::Query,
                    },
                    RowButton::Details => Intent::ShowDetail(r),
                });
            }
        }
    });
    cell(ui, cells.ack, |ui| {
        // Ages read the clock on whole seconds: every age on screen
        // changes at the same instant (see `Model::next_tick`).
        let (ack, hover) = ack_text(status, whole_second(row.now));
        let ack = RichText::new(ack);
        let ack = match status.shown() {
            Some(shown) if shown.restored() => ack.italics().weak(),
            _ => ack,
        };
        elided_label(ui, ack, Some(&hover));
    });
    cell(ui, cells.outcome, |ui| {
        // The device's availability first: it is about now, the outcome
        // about the last request. Greyed, in words (never colour alone).
        if let Some((text, hover)) = availability_text(relay, status.availability, row.now) {
            elided_label(ui, RichText::new(text).weak(), Some(&hover));
        }
        if status.is_pending() {
            ui.add(egui::Spinner::new().size(16.0));
        }
        if outcome_superseded(status) {
            return;
        }
        if let Some((text, colour)) = phase_text(status, row.now) {
            let mut text = RichText::new(text);
            if let Some(colour) = colour {
                text = text.color(colour);
            }
            elided_label(ui, text, None);
        }
    });
    drawn
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A relay whose request to switch off, asked by alice, was confirmed
    /// at `at` (3 ms round trip).
    fn confirmed_off_by_alice(at: SystemTime) -> RelayStatus {
        let mut status = RelayStatus::default();
        status
            .begin(crate::protocol::Action::Off, at, Duration::from_secs(3))
            .unwrap();
        status.confirm(
            RelayState::Off,
            Evidence::Correlated,
            at,
            at,
            Duration::from_millis(3),
            "alice",
        );
        status
    }

    /// The age and its hover say how the state is known.
    #[test]
    fn ack_text_names_the_evidence() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let status = |evidence| RelayStatus {
            phase: Phase::Idle,
            last_acknowledged: Some(Acknowledgement {
                state: RelayState::On,
                evidence,
                requested: at,
                at,
                rtt: Duration::from_millis(41),
                late: false,
                restored: false,
                operator: Some("alice".into()),
            }),
            ..RelayStatus::default()
        };
        let now = at + Duration::from_secs(12);
        let (text, hover) = ack_text(&status(Evidence::Correlated), now);
        assert_eq!(text, "last acknowledged 12 s ago");
        assert!(hover.starts_with("Confirmed "), "{hover}");
        assert!(hover.contains("this very request"), "{hover}");
        let (text, hover) = ack_text(&status(Evidence::Reported), now);
        assert_eq!(text, "last reported 12 s ago");
        assert!(hover.starts_with("Reported "), "{hover}");
        assert!(hover.contains("nothing ties that message"), "{hover}");
        assert_eq!(
            ack_text(&RelayStatus::default(), now).0,
            "never acknowledged"
        );
    }

    /// A change at the device, newer than the last confirmation, is what
    /// the row says; the hover names both facts, with who asked and what
    /// switched it.
    #[test]
    fn ack_text_tells_a_change_at_the_device() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut status = confirmed_off_by_alice(at);
        let pressed = at + Duration::from_secs(180);
        status.device_reported(RelayState::On, Some("button".into()), pressed, false, false);
        let now = pressed + Duration::from_secs(120);
        let (text, hover) = ack_text(&status, now);
        assert_eq!(text, "reported by the device 2 min ago (button)");
        assert!(hover.starts_with("Reported ON at "), "{hover}");
        assert!(hover.contains("(button)"), "{hover}");
        assert!(hover.contains("Last confirmed OFF at "), "{hover}");
        assert!(hover.contains(" by alice."), "{hover}");
        // A retained state heard on subscribing: time unknown.
        let mut fresh = RelayStatus::default();
        fresh.device_reported(RelayState::Off, None, now, true, false);
        assert_eq!(ack_text(&fresh, now).0, "reported (retained; time unknown)");
        // A confirmation after it wins again.
        status
            .begin(crate::protocol::Action::Off, now, Duration::from_secs(3))
            .unwrap();
        let later = now + Duration::from_secs(1);
        status.confirm(
            RelayState::Off,
            Evidence::Correlated,
            now,
            later,
            Duration::from_millis(3),
            "bob",
        );
        let (text, hover) = ack_text(&status, later);
        assert_eq!(text, "last acknowledged just now");
        assert!(
            hover.contains("Confirmed ") && hover.contains(" by bob"),
            "{hover}"
        );
        assert!(hover.contains("Reported ON at "), "{hover}");
    }

    /// An offline device reads "offline since 10:42" (local time; "since
    /// before" for a retained last will, a date on another day); online
    /// and unknown add nothing to the row.
    #[test]
    fn availability_text_tells_offline_only() {
        let relay = RelayConfig::shelly("porch", "shelly-1", 0);
        let now = SystemTime::now();
        let since = now - Duration::from_secs(60);
        let hhmm = chrono::DateTime::<chrono::Local>::from(since)
            .format("%H:%M")
            .to_string();
        let (text, hover) = availability_text(
            &relay,
            Availability::Offline {
                since,
                retained: false,
            },
            now,
        )
        .unwrap();
        // Just after midnight a minute ago is yesterday: the date shows.
        assert!(
            text.starts_with("offline since ") && text.ends_with(&hhmm),
            "{text}"
        );
        assert!(hover.contains("shelly-1/online"), "{hover}");
        assert!(hover.contains("commands may never arrive"), "{hover}");
        let (text, _) = availability_text(
            &relay,
            Availability::Offline {
                since,
                retained: true,
            },
            now,
        )
        .unwrap();
        assert!(text.starts_with("offline since before "), "{text}");
        let days_ago = now - Duration::from_secs(3 * 86_400);
        let (text, _) = availability_text(
            &relay,
            Availability::Offline {
                since: days_ago,
                retained: false,
            },
            now,
        )
        .unwrap();
        let date = chrono::DateTime::<chrono::Local>::from(days_ago)
            .format("%Y-%m-%d %H:%M")
            .to_string();
        assert_eq!(text, format!("offline since {date}"));
        for quiet in [
            Availability::Unknown,
            Availability::Online {
                since,
                retained: false,
            },
        ] {
            assert_eq!(availability_text(&relay, quiet, now), None);
        }
    }

    /// The last request's outcome is hidden once the device said
    /// something newer by itself (a change at the device, its last will);
    /// never while it is in flight, nor for news older than its end.
    #[test]
    fn outcome_is_hidden_by_newer_device_news() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let confirmed = || confirmed_off_by_alice(at);
        assert!(!outcome_superseded(&confirmed()));
        assert!(!outcome_superseded(&RelayStatus::default()));
        // A wall button two minutes later.
        let mut pressed = confirmed();
        pressed.device_reported(
            RelayState::On,
            Some("button".into()),
            at + Duration::from_secs(120),
            false,
            false,
        );
        assert!(outcome_superseded(&pressed));
        // Offline after the request ended; offline before it (the request
        // failed because of it: its outcome stays).
        let mut gone = confirmed();
        gone.set_availability(false, at + Duration::from_secs(5), false);
        assert!(outcome_superseded(&gone));
        let mut failed = RelayStatus::default();
        failed.set_availability(false, at, true);
        failed
            .begin(crate::protocol::Action::On, at, Duration::from_secs(3))
            .unwrap();
        assert!(!outcome_superseded(&failed), "in flight");
        failed.fail(
            Failure::NoResponse {
                after: Duration::from_secs(3),
            },
            at + Duration::from_secs(3),
            None,
        );
        assert!(!outcome_superseded(&failed));
        // Back online says nothing against the outcome.
        failed.set_availability(true, at + Duration::from_secs(9), false);
        assert!(!outcome_superseded(&failed));
    }
}
