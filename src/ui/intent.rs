//! What the technician asked for in a view, as an [`Intent`] the panel
//! applies after drawing (views never change the panel themselves).
//!
//! Not to be confused with [`protocol::Action`], what a request asks a
//! device to do: [`Intent::Switch`] carries one.

use crate::config::Config;
use crate::protocol;
use crate::relay::Availability;

/// Something the technician asked for, applied after drawing.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub enum Intent {
    /// Switch or query a relay (a switch asks first for `confirm = true`
    /// relays and relays whose device is offline).
    Switch {
        /// Index into `config.relays`.
        relay: usize,
        /// What to ask the device.
        action: protocol::Action,
    },
    /// "All on" / "All off" for a group (asks first).
    GroupSwitch {
        /// Index into `model.groups`.
        group: usize,
        /// On or off.
        action: protocol::Action,
    },
    /// The open confirmation dialog was accepted.
    Confirm,
    /// The open confirmation dialog was cancelled.
    Cancel,
    /// Fold or unfold a group.
    ToggleGroup(String),
    /// Query every relay that has a query payload.
    RefreshAll,
    /// Open a relay's detail window.
    ShowDetail(usize),
    /// Close the detail window.
    CloseDetail,
    /// Open the settings window.
    OpenSettings,
    /// Close the settings window without saving.
    CloseSettings,
    /// Save (or, in the demo, apply) a new configuration.
    SaveSettings(Box<Config>),
    /// Start the built-in demo.
    OpenDemo,
    /// Write the example configuration to the missing file and load it.
    CreateExample,
    /// Read the configuration file again.
    Reload,
    /// Start the engine again after it failed (wrong password fixed on
    /// the broker, an internal error).
    Retry,
    /// Write the audit log to a CSV file.
    ExportCsv,
    /// Show or hide the activity panel.
    ToggleActivity,
    /// Switch between dark and light.
    ToggleTheme,
    /// Dismiss the warnings.
    DismissWarnings,
    /// Dismiss a group action's summary.
    DismissGroupRun,
    /// Dismiss the notice line.
    DismissNotice,
}

/// A question the technician must answer before something switches.
#[derive(Debug, Clone, PartialEq)]
pub enum Confirmation {
    /// One relay with `confirm = true`, or whose device is offline.
    Relay {
        /// Index into `config.relays`.
        relay: usize,
        /// On or off.
        action: protocol::Action,
        /// The device's availability when the dialog opened, when it was
        /// offline (`None` otherwise): the dialog says since when, and its
        /// default button is Cancel. Fixed when it opened, as a group's
        /// relays are, so the question does not change under the pointer.
        offline: Option<Availability>,
    },
    /// A group's "All on" / "All off": exactly the relays it names, fixed
    /// when it opened, are what is sent and counted.
    Group(GroupQuestion),
}

/// What "All on" / "All off" will switch, worked out when the dialog opens.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupQuestion {
    /// Index into `model.groups`.
    pub group: usize,
    /// On or off.
    pub action: protocol::Action,
    /// Relays switched on "Switch": shown, idle, online or of unknown
    /// availability, not `confirm = true`.
    pub relays: Vec<usize>,
    /// Shown, idle relays with `confirm = true`: switched only when the
    /// technician ticks them too (a second, explicit confirmation).
    pub ask_first: Vec<usize>,
    /// Whether the `ask_first` relays are ticked.
    pub include_ask_first: bool,
    /// Shown, idle relays whose device is offline (its last will): named,
    /// and left alone unless the technician ticks them too, as the
    /// `confirm = true` ones (whether or not they are also `confirm =
    /// true`: the tick names them, which is that relay's confirmation).
    pub offline: Vec<usize>,
    /// Whether the `offline` relays are ticked.
    pub include_offline: bool,
    /// Relays of the group the filter hides (left alone).
    pub hidden: usize,
    /// Shown relays with a request in flight (left alone).
    pub busy: usize,
}

impl GroupQuestion {
    /// The relays "Switch" sends to, in order.
    pub fn chosen(&self) -> Vec<usize> {
        let mut relays = self.relays.clone();
        if self.include_ask_first {
            relays.extend_from_slice(&self.ask_first);
        }
        if self.include_offline {
            relays.extend_from_slice(&self.offline);
        }
        relays
    }
}
