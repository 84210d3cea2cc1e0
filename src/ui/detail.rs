//! A relay's detail window: configuration, the device's availability (its
//! last will), its latest report of its own, the last acknowledgement,
//! round-trip plot and recent history.

use egui::RichText;

use super::activity::who;
use super::intent::Intent;
use super::model::Model;
use crate::config::{Kind, RelayConfig};
use crate::outcome::Outcome;
use crate::relay::{Acknowledgement, Availability, DeviceReport, format_rtt, format_time};

/// Gap between the detail window and the edges of the panel's window.
const MARGIN: f32 = 12.0;
/// The widest a value gets before it wraps (the window stays some 480 px
/// wide, room beside it at 800×600).
const VALUE_WIDTH: f32 = 330.0;

/// Draws the detail window of `relay`.
pub fn show(ctx: &egui::Context, model: &Model, relay: usize) -> Option<Intent> {
    let (Some(config), Some(status)) = (model.config.relays.get(relay), model.statuses.get(relay))
    else {
        return Some(Intent::CloseDetail);
    };
    let mut intent = None;
    let mut open = true;
    // First shown in the bottom-right corner, clear of the top bar (the
    // connection state, Settings) that a technician watches while the
    // window is open; moved from there, it stays where it was put.
    let corner = ctx.content_rect().right_bottom() - egui::vec2(MARGIN, MARGIN);
    egui::Window::new(format!("{} — details", config.display_name()))
        .id(egui::Id::unique("relay_detail"))
        .open(&mut open)
        .collapsible(false)
        .default_width(460.0)
        // On a low screen (800×600) the window is as high as the screen
        // and its content scrolls: the recent activity stays reachable.
        .vscroll(true)
        .pivot(egui::Align2::RIGHT_BOTTOM)
        .default_pos(corner)
        .show(ctx, |ui| {
            // Long values (an availability with its topic, a retained
            // report) wrap in their column instead of widening the window
            // past the screen's edge.
            egui::Grid::new("detail_grid")
                .num_columns(2)
                .max_col_width(VALUE_WIDTH)
                .show(ui, |ui| {
                    let rows: [(&str, String); 11] = [
                        ("Id", config.id.clone()),
                        ("Group", config.group.clone()),
                        ("Kind", config.kind.to_string()),
                        ("Topic", config.topic_label()),
                        (
                            "Payload on / off",
                            format!("{:?} / {:?}", config.payload_on, config.payload_off),
                        ),
                        (
                            "Payload query",
                            match (&config.payload_query, config.kind) {
                                (Some(q), _) => format!("{q:?}"),
                                (None, Kind::Shelly) => "Switch.GetStatus".into(),
                                (None, Kind::Tasmota) => "an empty POWER command".into(),
                                (None, _) => "none (queries off)".into(),
                            },
                        ),
                        (
                            "Timeout",
                            format!("{:.1} s", model.config.timeout(config).as_secs_f32()),
                        ),
                        (
                            "Asks before switching",
                            if config.confirm {
                                "yes".into()
                            } else {
                                "no".into()
                            },
                        ),
                        (
                            "Availability",
                            availability_line(config, status.availability),
                        ),
                        (
                            "Device's own report",
                            status
                                .device_report
                                .as_ref()
                                .map_or_else(|| "none heard".to_owned(), report_line),
                        ),
                        (
                            "Last acknowledged",
                            status
                                .last_acknowledged
                                .as_ref()
                                .map_or_else(|| "never".to_owned(), ack_line),
                        ),
                    ];
                    for (key, value) in rows {
                        ui.label(RichText::new(key).weak());
                        ui.add(egui::Label::new(value).wrap());
                        ui.end_row();
                    }
                });
            ui.separator();
            let rtts = &model.rtts[relay];
            ui.label(RichText::new(format!("Round trips (last {})", rtts.len())).strong());
            rtt_plot(ui, rtts.iter().copied().collect::<Vec<f32>>().as_slice());
            ui.separator();
            ui.label(RichText::new("Recent activity").strong());
            egui::ScrollArea::vertical()
                .max_height(160.0)
                .show(ui, |ui| {
                    for entry in model
                        .audit
                        .iter()
                        .filter(|e| e.relay_id == config.id)
                        .take(50)
                    {
                        // A change at the device has no round trip: what
                        // switched it (its source) instead.
                        let after = match entry.outcome {
                            Outcome::ChangedAtDevice => match &entry.detail {
                                Some(source) => format!("{}, {source}", who(entry)),
                                None => who(entry),
                            },
                            _ => entry.rtt.map(format_rtt).unwrap_or_default(),
                        };
                        ui.label(format!(
                            "{}  {:<5} {}{}  {after}",
                            format_time(entry.at),
                            entry.action.as_str(),
                            entry.outcome,
                            entry
                                .state
                                .map(|s| format!(": {}", s.as_str().to_uppercase()))
                                .unwrap_or_default(),
                        ));
                    }
                });
        });
    if !open {
        intent = Some(Intent::CloseDetail);
    }
    intent
}

/// The device's availability, with the topic it comes from: "offline
/// since … (its last will on <topic>)", "unknown: nothing heard on
/// <topic>", "no last-will topic configured".
pub fn availability_line(config: &RelayConfig, availability: Availability) -> String {
    let Some(topic) = config.availability_topic() else {
        return "unknown: no last-will topic configured (availability_topic)".to_owned();
    };
    match availability {
        Availability::Unknown => format!("unknown: nothing heard on {topic}"),
        Availability::Online { since, retained } => {
            if retained {
                format!(
                    "online since before {} (retained, on {topic})",
                    format_time(since)
                )
            } else {
                format!("online since {} (on {topic})", format_time(since))
            }
        }
        Availability::Offline { since, retained } => {
            if retained {
                format!(
                    "offline since before {} (a retained last will on {topic}); commands may \
                     never arrive",
                    format_time(since)
                )
            } else {
                format!(
                    "offline since {} (its last will on {topic}); commands may never arrive",
                    format_time(since)
                )
            }
        }
    }
}

/// The device's own latest report: "ON at … (button)", or a retained
/// one whose time is unknown.
pub fn report_line(report: &DeviceReport) -> String {
    let state = report.state.as_str().to_uppercase();
    let mut line = if report.retained {
        format!(
            "{state}, a retained message heard at {} (published before; time unknown)",
            format_time(report.at)
        )
    } else {
        format!("{state} at {}", format_time(report.at))
    };
    line.push_str(&report.from_source());
    if report.restored {
        line.push_str(", from an earlier session");
    }
    line
}

/// The last acknowledgement: its state, how it is known, when, the round
/// trip and who asked.
pub fn ack_line(ack: &Acknowledgement) -> String {
    let mut line = format!(
        "{}, {} at {} (round trip {})",
        ack.state.as_str().to_uppercase(),
        ack.evidence.verb(),
        format_time(ack.at),
        format_rtt(ack.rtt),
    );
    let by = ack.by_whom();
    if !by.is_empty() {
        line.push(',');
        line.push_str(&by);
    }
    if ack.late {
        line.push_str(", late");
    }
    if ack.restored {
        line.push_str(", from an earlier session");
    }
    line
}

/// A small line plot of round trips in milliseconds, with its range.
pub fn rtt_plot(ui: &mut egui::Ui, values: &[f32]) {
    let (response, painter) = ui.allocate_painter(
        egui::vec2(ui.available_width().max(200.0), 80.0),
        egui::Sense::hover(),
    );
    let rect = response.rect;
    painter.rect_stroke(
        rect,
        2.0,
        ui.visuals().widgets.noninteractive.bg_stroke,
        egui::StrokeKind::Inside,
    );
    if values.is_empty() {
        painter.text(
            rect.center(),
            egui::Align2::CENTER_CENTER,
            "no round trips yet",
            egui::FontId::proportional(12.0),
            ui.visuals().weak_text_color(),
        );
        return;
    }
    let hi = values.iter().copied().fold(0.0f32, f32::max).max(0.001) * 1.1;
    let n = (values.len().max(2) - 1) as f32;
    let points: Vec<egui::Pos2> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            egui::pos2(
                egui::remap(i as f32, 0.0..=n, rect.x_range().shrink(4.0)),
                egui::remap(*v, 0.0..=hi, rect.y_range().shrink(4.0)).max(rect.top()),
            )
        })
        .map(|p| egui::pos2(p.x, rect.bottom() - (p.y - rect.top())))
        .collect();
    let stroke = egui::Stroke::new(1.5, egui::Color32::from_rgb(90, 160, 230));
    if points.len() == 1 {
        painter.circle_filled(points[0], 2.5, stroke.color);
    } else {
        painter.line(points, stroke);
    }
    let font = egui::FontId::proportional(11.0);
    let colour = ui.visuals().weak_text_color();
    painter.text(
        rect.left_top() + egui::vec2(4.0, 2.0),
        egui::Align2::LEFT_TOP,
        format!("{:.1} ms", hi / 1.1),
        font.clone(),
        colour,
    );
    painter.text(
        rect.left_bottom() + egui::vec2(4.0, -2.0),
        egui::Align2::LEFT_BOTTOM,
        "0",
        font,
        colour,
    );
    response.on_hover_text(format!(
        "min {:.2} ms, max {:.2} ms, last {:.2} ms",
        values.iter().copied().fold(f32::MAX, f32::min),
        values.iter().copied().fold(0.0, f32::max),
        values.last().copied().unwrap_or(0.0)
    ));
}
