//! The relay list: group headings with group actions, and one row per
//! relay. Only the rows on screen are laid out (`show_rows`), so 10,000
//! relays scroll as smoothly as ten.

use std::collections::BTreeSet;
use std::time::SystemTime;

use egui::{Color32, RichText};

use super::intent::Intent;
use super::model::{Model, Row};
use crate::protocol::{self, RelayState};
use crate::relay::{Failure, LateAnswer, Phase, RelayStatus, format_age, format_rtt, format_time};

/// Height of one row.
pub const ROW_HEIGHT: f32 = 30.0;
const BADGE_WIDTH: f32 = 84.0;
const NAME_WIDTH: f32 = 210.0;
const ACK_WIDTH: f32 = 230.0;

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

/// Draws the badge of a relay's last acknowledged state.
pub fn badge(ui: &mut egui::Ui, state: Option<RelayState>) -> egui::Response {
    let (rect, response) =
        ui.allocate_exact_size(egui::vec2(BADGE_WIDTH, 22.0), egui::Sense::hover());
    ui.painter().rect_filled(rect, 4.0, badge_colour(state));
    ui.painter().text(
        rect.center(),
        egui::Align2::CENTER_CENTER,
        badge_text(state),
        egui::FontId::proportional(13.0),
        Color32::WHITE,
    );
    response.widget_info(|| {
        egui::WidgetInfo::labeled(
            egui::Role::Label,
            true,
            format!("State: {}", badge_text(state)),
        )
    });
    response
}

/// "last acknowledged 12 s ago" and its hover text.
pub fn ack_text(status: &RelayStatus, now: SystemTime) -> (String, String) {
    match &status.last_acknowledged {
        None => (
            "never acknowledged".to_owned(),
            "No device has confirmed a state for this relay yet.".to_owned(),
        ),
        Some(ack) => {
            let age = format_age(now.duration_since(ack.at).unwrap_or_default());
            let mut text = format!("last acknowledged {age}");
            if ack.late {
                text.push_str(" (late)");
            }
            let mut hover = format!(
                "Acknowledged {} — round trip {}",
                format_time(ack.at),
                format_rtt(ack.rtt)
            );
            if ack.restored {
                hover.push_str("\nFrom an earlier session: not confirmed since this panel started. Refresh to ask the device.");
            }
            if ack.late {
                hover.push_str("\nThe answer arrived after its request had timed out or the connection dropped.");
            }
            (text, hover)
        }
    }
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

/// Draws the list.
pub fn show(
    ui: &mut egui::Ui,
    model: &Model,
    rows: &[Row],
    collapsed: &BTreeSet<String>,
) -> Option<Intent> {
    let mut intent = None;
    if model.config.relays.is_empty() {
        ui.label("This configuration has no relays. Add some in Settings.");
        return None;
    }
    if rows.is_empty() {
        ui.label("No relay matches the filter.");
        return None;
    }
    let now = SystemTime::now();
    let connected = model.connection.is_ready();
    egui::ScrollArea::vertical()
        .id_salt("relay_list")
        .auto_shrink([false, false])
        .show_rows(ui, ROW_HEIGHT, rows.len(), |ui, range| {
            for row in &rows[range] {
                let chosen = match *row {
                    Row::Group(g, matching) => {
                        group_row(ui, model, g, matching, collapsed, connected)
                    }
                    Row::Relay(r) => {
                        ui.push_id(&model.config.relays[r].id, |ui| {
                            relay_row(ui, model, r, now, connected)
                        })
                        .inner
                    }
                };
                if chosen.is_some() {
                    intent = chosen;
                }
            }
        });
    intent
}

fn group_row(
    ui: &mut egui::Ui,
    model: &Model,
    g: usize,
    matching: usize,
    collapsed: &BTreeSet<String>,
    connected: bool,
) -> Option<Intent> {
    let group = &model.groups[g];
    let mut intent = None;
    ui.push_id(("group", &group.name), |ui| {
        ui.allocate_ui(egui::vec2(ui.available_width(), ROW_HEIGHT), |ui| {
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
                    ui.label(RichText::new(text).color(colour));
                    if run.done() && ui.small_button("Dismiss").clicked() {
                        intent = Some(Intent::DismissGroupRun);
                    }
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

/// Lays out `add` left-aligned in a column of exactly `width`.
fn fixed_width(ui: &mut egui::Ui, width: f32, add: impl FnOnce(&mut egui::Ui)) {
    ui.allocate_ui_with_layout(
        egui::vec2(width, ROW_HEIGHT),
        egui::Layout::left_to_right(egui::Align::Center),
        |ui| {
            ui.set_width(width);
            add(ui);
        },
    );
}

fn relay_row(
    ui: &mut egui::Ui,
    model: &Model,
    r: usize,
    now: SystemTime,
    connected: bool,
) -> Option<Intent> {
    let relay = &model.config.relays[r];
    let status = &model.statuses[r];
    let mut intent = None;
    ui.allocate_ui(egui::vec2(ui.available_width(), ROW_HEIGHT), |ui| {
        ui.horizontal_centered(|ui| {
            ui.add_space(18.0);
            badge(ui, status.last_acknowledged.map(|a| a.state));
            fixed_width(ui, NAME_WIDTH, |ui| {
                ui.add(egui::Label::new(RichText::new(relay.display_name()).strong()).truncate())
                    .on_hover_text(format!(
                        "id: {}\nrequest topic: {}",
                        relay.id, relay.request_topic
                    ));
            });
            let (ack, hover) = ack_text(status, now);
            let ack_label = RichText::new(ack);
            let ack_label = match status.last_acknowledged {
                Some(a) if a.restored => ack_label.italics().weak(),
                _ => ack_label,
            };
            fixed_width(ui, ACK_WIDTH, |ui| {
                ui.add(egui::Label::new(ack_label).truncate())
                    .on_hover_text(hover);
            });
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                if ui
                    .button("Details")
                    .on_hover_text("Settings, round trips and history of this relay")
                    .clicked()
                {
                    intent = Some(Intent::ShowDetail(r));
                }
                let idle = connected && !status.is_pending();
                let why = if status.is_pending() {
                    "A request is in flight"
                } else {
                    "Not connected to the broker"
                };
                let query = relay.payload_query.is_some();
                let refresh = ui
                    .add_enabled(idle && query, egui::Button::new("Refresh"))
                    .on_hover_text("Ask the device for its state")
                    .on_disabled_hover_text(if query {
                        why
                    } else {
                        "No payload_query configured for this relay"
                    });
                if refresh.clicked() {
                    intent = Some(Intent::Switch {
                        relay: r,
                        action: protocol::Action::Query,
                    });
                }
                if ui
                    .add_enabled(idle, egui::Button::new("Off"))
                    .on_disabled_hover_text(why)
                    .clicked()
                {
                    intent = Some(Intent::Switch {
                        relay: r,
                        action: protocol::Action::Off,
                    });
                }
                if ui
                    .add_enabled(idle, egui::Button::new("On"))
                    .on_disabled_hover_text(why)
                    .clicked()
                {
                    intent = Some(Intent::Switch {
                        relay: r,
                        action: protocol::Action::On,
                    });
                }
                ui.with_layout(egui::Layout::left_to_right(egui::Align::Center), |ui| {
                    if status.is_pending() {
                        ui.spinner();
                    }
                    if let Some((text, colour)) = phase_text(status, now) {
                        let mut text = RichText::new(text);
                        if let Some(colour) = colour {
                            text = text.color(colour);
                        }
                        ui.add(egui::Label::new(text).truncate());
                    }
                });
            });
        });
    });
    intent
}
