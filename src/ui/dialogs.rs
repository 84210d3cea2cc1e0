//! Confirmation dialogs: one relay with `confirm = true`, or a whole group.

use super::intent::{Confirmation, Intent};
use super::model::Model;

/// Draws the open confirmation dialog.
pub fn show(ctx: &egui::Context, model: &Model, confirmation: &Confirmation) -> Option<Intent> {
    let mut intent = None;
    let (title, question, yes) = match confirmation {
        Confirmation::Relay { relay, action } => {
            let relay = &model.config.relays[*relay];
            (
                "Confirm switch".to_owned(),
                format!(
                    "Switch {} ({}) {}?",
                    relay.display_name(),
                    relay.id,
                    action.as_str().to_uppercase()
                ),
                format!("Switch {}", action.as_str()),
            )
        }
        Confirmation::Group { group, action } => {
            let group = &model.groups[*group];
            let busy = group
                .relays
                .iter()
                .filter(|&&r| model.statuses[r].is_pending())
                .count();
            let count = group.relays.len() - busy;
            let mut question = format!(
                "Switch all {count} relay{} in {} {}?",
                if count == 1 { "" } else { "s" },
                group.title(),
                action.as_str().to_uppercase()
            );
            if busy > 0 {
                question.push_str(&format!(
                    "\n({busy} with a request in flight are left alone.)"
                ));
            }
            (
                format!("All {}", action.as_str()),
                question,
                format!("Switch {count} {}", action.as_str()),
            )
        }
    };
    let response = egui::Modal::new(egui::Id::unique("confirmation")).show(ctx, |ui| {
        ui.set_min_width(320.0);
        ui.heading(title);
        ui.add_space(6.0);
        ui.label(question);
        ui.add_space(10.0);
        ui.horizontal(|ui| {
            if ui.button(yes).clicked() {
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
