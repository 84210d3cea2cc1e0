//! Confirmation dialogs: one relay with `confirm = true`, or a whole group.
//!
//! A group's dialog says exactly what "Switch" sends: the relays the
//! heading counts (the filter's hidden ones and those with a request in
//! flight are named as left alone), and every `confirm = true` relay by
//! name, switched only when ticked. The default button has the focus, so
//! Enter confirms and Escape cancels.

use egui::RichText;

use super::intent::{Confirmation, GroupQuestion, Intent};
use super::model::Model;

/// Names listed in a dialog before "… and N more".
const NAMES_LISTED: usize = 8;

/// Draws the open confirmation dialog (the technician may tick the
/// `confirm = true` relays of a group in it).
pub fn show(ctx: &egui::Context, model: &Model, confirmation: &mut Confirmation) -> Option<Intent> {
    let mut intent = None;
    let response = egui::Modal::new(egui::Id::unique("confirmation")).show(ctx, |ui| {
        ui.set_min_width(360.0);
        ui.set_max_width(560.0);
        let (yes, enabled) = match confirmation {
            Confirmation::Relay { relay, action } => {
                let relay = &model.config.relays[*relay];
                ui.heading("Confirm switch");
                ui.add_space(6.0);
                ui.label(format!(
                    "Switch {} ({}) {}?",
                    relay.display_name(),
                    relay.id,
                    action.as_str().to_uppercase()
                ));
                (format!("Switch {}", action.as_str()), true)
            }
            Confirmation::Group(question) => group_question(ui, model, question),
        };
        ui.add_space(10.0);
        ui.horizontal(|ui| {
            let button = ui.add_enabled(enabled, egui::Button::new(RichText::new(yes).strong()));
            // The default button: focused, so Enter presses it (Tab
            // reaches Cancel, Escape cancels).
            if enabled && ui.memory(|m| m.focused().is_none()) {
                button.request_focus();
            }
            if button.clicked() {
                intent = Some(Intent::Confirm);
            }
            if ui.button("Cancel").clicked() {
                intent = Some(Intent::Cancel);
            }
        });
    });
    if intent.is_none() && response.should_close() {
        intent = Some(Intent::Cancel);
    }
    intent
}

/// The group question's text and check box; the button's label and
/// whether there is anything to switch.
fn group_question(
    ui: &mut egui::Ui,
    model: &Model,
    question: &mut GroupQuestion,
) -> (String, bool) {
    let group = &model.groups[question.group];
    let action = question.action.as_str();
    let count = question.chosen().len();
    ui.heading(format!("All {action}"));
    ui.add_space(6.0);
    ui.label(format!(
        "Switch {count} relay{} in {} {}?",
        plural(count),
        group.title(),
        action.to_uppercase()
    ));
    let mut left_alone = Vec::new();
    if question.hidden > 0 {
        left_alone.push(format!("{} hidden by the filter", question.hidden));
    }
    if question.busy > 0 {
        left_alone.push(format!("{} with a request in flight", question.busy));
    }
    if !left_alone.is_empty() {
        ui.label(format!("Left alone: {}.", left_alone.join(", ")));
    }
    if !question.ask_first.is_empty() {
        ui.add_space(6.0);
        let n = question.ask_first.len();
        let names: Vec<&str> = question
            .ask_first
            .iter()
            .take(NAMES_LISTED)
            .map(|&r| model.config.relays[r].display_name())
            .collect();
        let more = n.saturating_sub(NAMES_LISTED);
        let more = if more > 0 {
            format!(" … and {more} more")
        } else {
            String::new()
        };
        ui.label(format!(
            "{} ask{} before every switch: {}{more}.",
            if n == 1 { "This relay" } else { "These relays" },
            if n == 1 { "s" } else { "" },
            names.join(", ")
        ));
        ui.checkbox(
            &mut question.include_ask_first,
            format!(
                "Also switch {} {}",
                if n == 1 { "it" } else { "these" },
                action.to_uppercase()
            ),
        );
    }
    (format!("Switch {count} {action}"), count > 0)
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
