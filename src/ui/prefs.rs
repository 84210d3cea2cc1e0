//! UI preferences remembered between runs (eframe's storage), kept apart
//! from the panel's runtime state.

use std::collections::BTreeSet;

/// UI preferences remembered between runs (`#[serde(default)]`: adding a
/// field never resets the others).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Prefs {
    /// Whether the activity panel is shown.
    pub show_activity: bool,
    /// Dark theme (light when false).
    pub dark: bool,
    /// Groups the technician folded away.
    pub collapsed: BTreeSet<String>,
}

impl Default for Prefs {
    fn default() -> Self {
        Prefs {
            show_activity: true,
            dark: true,
            collapsed: BTreeSet::new(),
        }
    }
}

impl Prefs {
    /// The egui theme these preferences ask for.
    pub fn theme(&self) -> egui::ThemePreference {
        if self.dark {
            egui::ThemePreference::Dark
        } else {
            egui::ThemePreference::Light
        }
    }
}
