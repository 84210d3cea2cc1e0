//! Confirmation dialogs: one relay with `confirm = true` or whose device
//! is offline, or a whole group.
//!
//! A group's dialog says exactly what "Switch" sends: the relays the
//! heading counts (the filter's hidden ones, those with a request in
//! flight and those whose device is offline are named as left alone), and
//! every offline and every `confirm = true` relay by name, switched only
//! when ticked. The default button has the focus, so Enter presses it and
//! Escape cancels; when a device is offline the default is Cancel (the
//! command may never arrive: sending it must be a choice, not a reflex).

use std::time::SystemTime;

use egui::RichText;

use super::intent::{Confirmation, GroupQuestion, Intent};
use super::model::Model;
use super::relay_list::clock;
use crate::relay::Availability;

/// Names listed in a dialog before "… and N more".
const NAMES_LISTED: usize = 8;

/// Draws the open confirmation dialog (the technician may tick a group's
/// offline and `confirm = true` relays in it).
pub fn show(ctx: &egui::Context, model: &Model, confirmation: &mut Confirmation) -> Option<Intent> {
    let mut intent = None;
    let response = egui::Modal::new(egui::Id::unique("confirmation")).show(ctx, |ui| {
        ui.set_min_width(360.0);
        ui.set_max_width(560.0);
        let question = match confirmation {
            Confirmation::Relay {
                relay,
                action,
                offline,
            } => relay_question(ui, model, *relay, *action, *offline),
            Confirmation::Group(question) => group_question(ui, model, question),
        };
        ui.add_space(10.0);
        ui.horizontal(|ui| {
            let button = ui.add_enabled(
                question.enabled,
                egui::Button::new(RichText::new(question.yes).strong()),
            );
            let cancel = ui.button("Cancel");
            // The default button: focused, so Enter presses it (Tab
            // reaches the other, Escape cancels).
            if ui.memory(|m| m.focused().is_none()) {
                if question.enabled && !question.cancel_first {
                    button.request_focus();
                } else {
                    cancel.request_focus();
                }
            }
            if button.clicked() {
                intent = Some(Intent::Confirm);
            }
            if cancel.clicked() {
                intent = Some(Intent::Cancel);
            }
        });
    });
    if intent.is_none() && response.should_close() {
        intent = Some(Intent::Cancel);
    }
    intent
}

/// What a dialog asks: the label of its button, whether there is
/// anything to switch, and whether Cancel is the default.
struct Question {
    /// "Switch on", "Switch on anyway", "Switch 3 on".
    yes: String,
    /// Whether the button is enabled (something to switch).
    enabled: bool,
    /// Cancel has the focus (Enter cancels): a device is offline.
    cancel_first: bool,
}

/// One relay's question: `confirm = true`, its device offline, or both.
fn relay_question(
    ui: &mut egui::Ui,
    model: &Model,
    relay: usize,
    action: crate::protocol::Action,
    offline: Option<Availability>,
) -> Question {
    let config = &model.config.relays[relay];
    let state = action.as_str().to_uppercase();
    let Some(Availability::Offline { since, retained }) = offline else {
        ui.heading("Confirm switch");
        ui.add_space(6.0);
        ui.label(format!(
            "Switch {} ({}) {state}?",
            config.display_name(),
            config.id,
        ));
        return Question {
            yes: format!("Switch {}", action.as_str()),
            enabled: true,
            cancel_first: false,
        };
    };
    let before = if retained { "before " } else { "" };
    ui.heading("Device offline");
    ui.add_space(6.0);
    ui.label(format!(
        "{}'s device is offline since {before}{} (its last will). Switch it {state} anyway?",
        config.display_name(),
        clock(since, SystemTime::now()),
    ));
    ui.add_space(4.0);
    ui.label(
        RichText::new(format!(
            "The command may never arrive: a device that is not connected does not get it, \
             and one back after the {:.1} s timeout is not sent it (it expires), so it is \
             never switched later; the request then ends as no response.",
            model.config.timeout(config).as_secs_f32()
        ))
        .weak(),
    );
    if config.confirm {
        ui.label(format!(
            "{} also asks before every switch.",
            config.display_name()
        ));
    }
    Question {
        yes: format!("Switch {} anyway", action.as_str()),
        enabled: true,
        cancel_first: true,
    }
}

/// "Sump pump, Tank heater … and 3 more".
fn names(model: &Model, relays: &[usize]) -> String {
    let listed: Vec<&str> = relays
        .iter()
        .take(NAMES_LISTED)
        .map(|&r| model.config.relays[r].display_name())
        .collect();
    let more = relays.len().saturating_sub(NAMES_LISTED);
    if more > 0 {
        format!("{} … and {more} more", listed.join(", "))
    } else {
        listed.join(", ")
    }
}

/// The group question's text and check boxes.
fn group_question(ui: &mut egui::Ui, model: &Model, question: &mut GroupQuestion) -> Question {
    let group = &model.groups[question.group];
    let action = question.action.as_str();
    let state = action.to_uppercase();
    let count = question.chosen().len();
    ui.heading(format!("All {action}"));
    ui.add_space(6.0);
    ui.label(format!(
        "Switch {count} relay{} in {} {state}?",
        plural(count),
        group.title(),
    ));
    let mut left_alone = Vec::new();
    if question.hidden > 0 {
        left_alone.push(format!("{} hidden by the filter", question.hidden));
    }
    if question.busy > 0 {
        left_alone.push(format!("{} with a request in flight", question.busy));
    }
    if !question.offline.is_empty() && !question.include_offline {
        left_alone.push(format!("{} offline", question.offline.len()));
    }
    if !left_alone.is_empty() {
        ui.label(format!("Left alone: {}.", left_alone.join(", ")));
    }
    // Offline devices are named and left alone unless ticked, as the
    // `confirm = true` relays are (the same pattern twice, rather than a
    // rule of their own): a technician who knows a device is back, or
    // wants the attempt logged, can still send to it from here.
    if !question.offline.is_empty() {
        ui.add_space(6.0);
        let n = question.offline.len();
        ui.label(format!(
            "{} offline (last will): {}.",
            if n == 1 {
                "This relay's device is"
            } else {
                "These relays' devices are"
            },
            names(model, &question.offline)
        ));
        ui.checkbox(
            &mut question.include_offline,
            format!(
                "Also switch {} {state} anyway",
                if n == 1 { "it" } else { "these" }
            ),
        );
    }
    if !question.ask_first.is_empty() {
        ui.add_space(6.0);
        let n = question.ask_first.len();
        ui.label(format!(
            "{} ask{} before every switch: {}.",
            if n == 1 { "This relay" } else { "These relays" },
            if n == 1 { "s" } else { "" },
            names(model, &question.ask_first)
        ));
        ui.checkbox(
            &mut question.include_ask_first,
            format!(
                "Also switch {} {state}",
                if n == 1 { "it" } else { "these" },
            ),
        );
    }
    Question {
        yes: format!("Switch {count} {action}"),
        enabled: count > 0,
        cancel_first: false,
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
