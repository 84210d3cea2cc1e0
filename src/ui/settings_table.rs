//! The Settings window's relay table: one row per relay, its kind chosen
//! in a combo box and that kind's own keys ([`Kind::own_keys`]) in the
//! row. An *Address* column holds where the device is (two fields by
//! kind) and a *last will…* button whose popup holds the device's
//! availability topic and its two payloads (editable for `mqtt5` and
//! `state`, shown greyed for the kinds that fix them); payloads a kind
//! fixes are shown greyed, not editable.
//!
//! The last will's three fields live in a popup rather than in columns
//! of their own: at 800×600 the address column has some 200 px, which two
//! more topics and two payloads cannot share, and the payloads are rarely
//! changed from `online` / `offline`. The button's face says whether a
//! topic is set, and it is framed red when one of its fields is wrong.
//!
//! The table goes on one line per relay when the window is wide enough
//! for every column, and on two (two fields stacked in each column) when
//! it is not, so every field stays on screen from 800×600 up.

use std::collections::HashMap;

use egui::{Align, RichText};
use egui_extras::{Column, TableBuilder};

use super::fit::{button_width, text_width};
use super::settings::Draft;
use crate::config::{Kind, Place, RelayConfig};

/// What a cell of the table edits; its heading names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Id,
    Name,
    Group,
    Kind,
    Address,
    PayloadOn,
    PayloadOff,
    PayloadQuery,
    Timeout,
    Confirm,
    Remove,
}

/// How many [`Field`]s there are (each has a heading).
const FIELDS: usize = 11;

impl Field {
    /// The column heading, which also names the field for a screen
    /// reader (except the address fields, named one by one).
    fn heading(self) -> &'static str {
        match self {
            Field::Id => "Id",
            Field::Name => "Name",
            Field::Group => "Group",
            Field::Kind => "Kind",
            Field::Address => "Address",
            Field::PayloadOn => "Payload on",
            Field::PayloadOff => "Payload off",
            Field::PayloadQuery => "Payload query",
            Field::Timeout => "Timeout ms",
            Field::Confirm => "Confirm",
            Field::Remove => "",
        }
    }

    /// The heading's hover, where its name alone does not say enough.
    fn about(self) -> Option<&'static str> {
        match self {
            Field::Kind => Some("How the device is spoken to (hover a kind in its list)"),
            Field::Address => Some(
                "Where the device is, by kind:\n\
                 mqtt5: the request topic, then the state topic (optional: where the device \
                 publishes its state by itself)\n\
                 shelly: the device's topic prefix and the switch id\n\
                 tasmota: the device's %topic% and n of POWERn (empty: POWER)\n\
                 state: the command topic, then the state topic\n\
                 last will…: the device's availability topic and its payloads (set for mqtt5 \
                 and state; fixed for shelly and tasmota)",
            ),
            Field::PayloadQuery => Some(
                "Asks the state without changing it. Opt-in for mqtt5 and state; \
                 shelly and tasmota can always be asked",
            ),
            _ => None,
        }
    }

    /// The index of this field's heading id.
    fn slot(self) -> usize {
        self as usize
    }
}

/// A column: the fields of each of its cells, top to bottom, and the
/// narrowest the column gets.
type ColumnSpec = (&'static [Field], f32);

/// The address column takes what the others leave, this much at least
/// on one line (room for two topics side by side: a command and a state
/// topic of some 25 characters each, or a Shelly's device id and switch,
/// and the *last will…* button). The table goes on one line per relay
/// only when the address gets it.
const ADDRESS_NARROWEST: f32 = 500.0;

/// The text of the button that opens a relay's last-will fields.
const LAST_WILL: &str = "last will…";

/// One line per relay, a column per field. Payloads such as `TOGGLE`
/// must show whole: 80 px at least.
const WIDE: [ColumnSpec; 11] = [
    (&[Field::Id], 70.0),
    (&[Field::Name], 100.0),
    (&[Field::Group], 80.0),
    (&[Field::Kind], 80.0),
    (&[Field::Address], ADDRESS_NARROWEST),
    (&[Field::PayloadOn], 80.0),
    (&[Field::PayloadOff], 80.0),
    (&[Field::PayloadQuery], 80.0),
    (&[Field::Timeout], 100.0),
    (&[Field::Confirm], 40.0),
    (&[Field::Remove], 60.0),
];

/// Two lines per relay, two fields stacked in each column but the
/// address (whose second field, if any, goes on the second line).
const NARROW: [ColumnSpec; 6] = [
    (&[Field::Id, Field::Name], 100.0),
    (&[Field::Group, Field::Kind], 90.0),
    (&[Field::Address], 180.0),
    (&[Field::PayloadOn, Field::PayloadOff], 80.0),
    (&[Field::PayloadQuery, Field::Timeout], 100.0),
    (&[Field::Confirm, Field::Remove], 60.0),
];

/// One field of an address or of a last will: which key it edits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    RequestTopic,
    Device,
    Switch,
    Power,
    CommandTopic,
    StateTopic,
    AvailabilityTopic,
    PayloadAvailable,
    PayloadNotAvailable,
}

impl Part {
    /// The key in the file (and in validation's messages).
    fn key(self) -> &'static str {
        match self {
            Part::RequestTopic => "request_topic",
            Part::Device => "device",
            Part::Switch => "switch",
            Part::Power => "power",
            Part::CommandTopic => "command_topic",
            Part::StateTopic => "state_topic",
            Part::AvailabilityTopic => "availability_topic",
            Part::PayloadAvailable => "payload_available",
            Part::PayloadNotAvailable => "payload_not_available",
        }
    }

    /// The field's accessible name.
    fn name(self) -> &'static str {
        match self {
            Part::RequestTopic => "Request topic",
            Part::Device => "Device",
            Part::Switch => "Switch id",
            Part::Power => "Power",
            Part::CommandTopic => "Command topic",
            Part::StateTopic => "State topic",
            Part::AvailabilityTopic => "Availability topic",
            Part::PayloadAvailable => "Payload available",
            Part::PayloadNotAvailable => "Payload not available",
        }
    }

    /// The greyed hint of an empty field.
    fn hint(self, kind: Kind) -> &'static str {
        match (self, kind) {
            (Part::RequestTopic, _) => "request topic",
            (Part::Device, Kind::Tasmota) => "%topic%",
            (Part::Device, _) => "device topic prefix",
            (Part::Switch, _) => "0",
            (Part::Power, _) => "–",
            (Part::CommandTopic, _) => "command topic",
            (Part::StateTopic, Kind::Mqtt5) => "state topic (optional)",
            (Part::StateTopic, _) => "state topic",
            (Part::AvailabilityTopic, _) => "none (availability unknown)",
            (Part::PayloadAvailable, _) => crate::config::DEFAULT_PAYLOAD_AVAILABLE,
            (Part::PayloadNotAvailable, _) => crate::config::DEFAULT_PAYLOAD_NOT_AVAILABLE,
        }
    }

    /// What the field is, for its hover.
    fn about(self, kind: Kind) -> &'static str {
        match (self, kind) {
            (Part::RequestTopic, _) => {
                "Request topic: the topic the device listens on (unique, no wildcards)"
            }
            (Part::Device, Kind::Tasmota) => "Device: the Tasmota's %topic% (its Topic setting)",
            (Part::Device, _) => {
                "Device: the Shelly's MQTT topic prefix (its device id unless changed in its \
                 MQTT settings)"
            }
            (Part::Switch, _) => "Switch id: which output of the Shelly (switch:0, switch:1, …)",
            (Part::Power, _) => {
                "Power: n of POWERn (1 to 32) on a device with several relays; \
                 empty for a one-relay device (POWER)"
            }
            (Part::CommandTopic, _) => {
                "Command topic: where the panel publishes the payloads on, off and query"
            }
            (Part::StateTopic, Kind::Mqtt5) => {
                "State topic (optional): where the device publishes its state by itself \
                 (payload on / off). A state there that no request explains shows as a change \
                 at the device; answers still come to the panel's response topic"
            }
            (Part::StateTopic, _) => {
                "State topic: where the device publishes its state (payload on / off)"
            }
            (Part::AvailabilityTopic, _) => {
                "Availability topic (optional): the device's last will. The broker publishes \
                 the offline payload there when the device's connection drops; the panel then \
                 shows the relay offline and asks before switching it. Empty: availability \
                 unknown"
            }
            (Part::PayloadAvailable, _) => {
                "Payload available: what the device publishes on its availability topic when \
                 it is online"
            }
            (Part::PayloadNotAvailable, _) => {
                "Payload not available: its last will's payload, published when it goes offline"
            }
        }
    }
}

/// The last-will fields a kind lets be chosen (in the *last will…*
/// popup); none for the kinds whose firmware fixes them.
fn will_parts(kind: Kind) -> &'static [Part] {
    match kind {
        Kind::Mqtt5 | Kind::State => &[
            Part::AvailabilityTopic,
            Part::PayloadAvailable,
            Part::PayloadNotAvailable,
        ],
        Kind::Shelly | Kind::Tasmota => &[],
    }
}

/// What the firmware of a kind that fixes its last will publishes there:
/// (topic, online, offline), shown greyed in the popup.
fn fixed_will(relay: &RelayConfig) -> Option<(String, &'static str, &'static str)> {
    let topic = relay.availability_topic().unwrap_or_default();
    match relay.kind {
        Kind::Mqtt5 | Kind::State => None,
        Kind::Shelly => Some((topic, "true", "false")),
        Kind::Tasmota => Some((topic, "Online", "Offline")),
    }
}

/// The payloads a kind fixes, as shown greyed (value, hint) for on, off
/// and query, and what they are; `None` for kinds whose payloads are
/// edited.
fn fixed_payloads(kind: Kind) -> Option<([(&'static str, &'static str); 3], &'static str)> {
    match kind {
        Kind::Mqtt5 | Kind::State => None,
        Kind::Shelly => Some((
            [("true", ""), ("false", ""), ("", "GetStatus")],
            "Fixed for kind shelly: Switch.Set with \"on\": true or false; \
             the state is asked with Switch.GetStatus",
        )),
        Kind::Tasmota => Some((
            [("ON", ""), ("OFF", ""), ("", "(empty)")],
            "Fixed for kind tasmota: POWERn ON or OFF; the state is asked with an empty POWERn",
        )),
    }
}

/// What drawing the rows did: whether a field was edited, and the row
/// whose Remove was clicked.
#[derive(Default)]
struct Edits {
    changed: bool,
    remove: Option<usize>,
}

/// What every row's cells need besides their relay.
struct Cells {
    /// Each field's heading, which names it (indexed by [`Field::slot`]).
    headings: [egui::Id; FIELDS],
    /// Validation's messages by relay index and key: the field is framed
    /// red and its hover says why.
    problems: HashMap<(usize, &'static str), String>,
    /// The broker's request timeout, what an empty timeout means.
    broker_timeout: u64,
    /// The greyed hint of an empty timeout.
    timeout_hint: String,
    /// One line per relay (else two).
    wide: bool,
    /// The row being drawn.
    index: usize,
}

/// The relays as a table: a header that stays while the body scrolls,
/// columns as wide as their widest visible cell and resizable, and only
/// the visible rows drawn (10,000 relays cost what 20 do). Returns whether
/// a cell was edited, and the row whose Remove was clicked.
///
/// Fields take their widget ids from their row's index and key
/// ([`Cells::field_id`]), not from the relay id as elsewhere: here the id
/// is itself being edited, and a widget id that changed with every
/// keystroke would lose the focus.
pub(super) fn show(ui: &mut egui::Ui, draft: &mut Draft, height: f32) -> (bool, Option<usize>) {
    let width_id = ui.scope_id().with("relay_table_wide_width");
    let wide = ui.available_width() >= wide_width_needed(ui, width_id);
    let columns: &[ColumnSpec] = if wide { &WIDE } else { &NARROW };
    let lines = if wide { 1.0 } else { 2.0 };
    let line_height = ui.spacing().interact_size.y;
    let row_height = lines * line_height + (lines - 1.0) * ui.spacing().item_spacing.y + 4.0;
    let header_height = lines * line_height + (lines - 1.0) * ui.spacing().item_spacing.y;
    let body_height = height - header_height - ui.spacing().item_spacing.y;

    let mut problems: HashMap<(usize, &'static str), String> = HashMap::new();
    for problem in &draft.problems {
        if let Place::Relay(index, key) = problem.place {
            problems
                .entry((index, key))
                .and_modify(|text| {
                    text.push('\n');
                    text.push_str(&problem.message);
                })
                .or_insert_with(|| problem.message.clone());
        }
    }
    let broker_timeout = draft.config.broker.request_timeout_ms;
    let mut cells = Cells {
        headings: [egui::Id::NULL; FIELDS],
        problems,
        broker_timeout,
        timeout_hint: format!("{broker_timeout} (broker)"),
        wide,
        index: 0,
    };
    let relays = &mut draft.config.relays;
    let reveal = &mut draft.reveal;

    let mut table = TableBuilder::new(ui)
        // A table of its own per layout: they have different columns, and
        // each keeps its own widths.
        .id_salt(if wide {
            "relay_table_wide"
        } else {
            "relay_table_narrow"
        })
        .striped(true)
        .resizable(true)
        .cell_layout(egui::Layout::left_to_right(Align::Center))
        .min_scrolled_height(0.0)
        .max_scroll_height(body_height);
    for (fields, narrowest) in columns {
        let column = if fields.contains(&Field::Address) {
            // Fills the width left, so the table never needs a horizontal
            // scroll bar (which would put the vertical one out of sight);
            // recomputed as the window is resized, hence not resizable.
            Column::remainder().resizable(false)
        } else {
            Column::auto()
        };
        table = table.column(column.at_least(*narrowest).clip(true));
    }
    if let Some(row) = *reveal {
        table = table.scroll_to_row(row, Some(Align::Center));
    }
    let mut edits = Edits::default();
    table
        .header(header_height, |mut header| {
            for (fields, _) in columns {
                header.col(|ui| {
                    stacked(ui, fields.len(), |ui| {
                        for field in *fields {
                            let mut heading = ui.strong(field.heading());
                            if let Some(about) = field.about() {
                                heading = heading.on_hover_text(about);
                            }
                            cells.headings[field.slot()] = heading.id;
                        }
                    });
                });
            }
        })
        .body(|mut body| {
            if wide {
                let widths = body.widths().to_vec();
                remember_wide_width(body.ui_mut(), width_id, &widths);
            }
            body.rows(row_height, relays.len(), |mut row| {
                let index = row.index();
                cells.index = index;
                let relay = &mut relays[index];
                let focus_id = *reveal == Some(index);
                if focus_id {
                    *reveal = None;
                }
                // Set when the kind changes: its first address field takes
                // the cursor (the address column comes after the kind's).
                let mut focus_address = false;
                for (fields, _) in columns {
                    row.col(|ui| {
                        stacked(ui, fields.len(), |ui| {
                            for field in *fields {
                                match field {
                                    Field::Address => {
                                        edits.changed |= address(ui, &cells, relay, focus_address);
                                    }
                                    Field::Kind => {
                                        if kind_cell(ui, &cells, relay) {
                                            edits.changed = true;
                                            focus_address = true;
                                        }
                                    }
                                    Field::Remove => {
                                        if ui.small_button("Remove").clicked() {
                                            edits.remove = Some(index);
                                        }
                                    }
                                    field => {
                                        edits.changed |=
                                            plain_cell(ui, &cells, relay, *field, focus_id);
                                    }
                                }
                            }
                        });
                    });
                }
            });
        });
    (edits.changed, edits.remove)
}

/// Lays `count` fields out in a cell: in a line (one), or stacked
/// top to bottom (two lines per row).
fn stacked(ui: &mut egui::Ui, count: usize, add: impl FnOnce(&mut egui::Ui)) {
    if count > 1 {
        ui.vertical(add);
    } else {
        add(ui);
    }
}

/// The width the table needs to go on one line per relay (kept under
/// `id`): its columns as they were last drawn so, with the address at its
/// narrowest; before the first time, their narrowest with some room for
/// content.
fn wide_width_needed(ui: &egui::Ui, id: egui::Id) -> f32 {
    ui.data(|d| d.get_temp::<f32>(id)).unwrap_or_else(|| {
        let narrowest: f32 = WIDE.iter().map(|(_, w)| w).sum();
        narrowest + gaps(ui, WIDE.len()) + 100.0
    })
}

/// The spacing between `columns` columns, and the scroll bar's room.
fn gaps(ui: &egui::Ui, columns: usize) -> f32 {
    (columns - 1) as f32 * ui.spacing().item_spacing.x + ui.spacing().scroll.allocated_width()
}

/// Keeps under `id` the width the one-line table needs, from the column
/// widths it has this frame (those that fit their content, and that the
/// technician may have dragged wider). Once it no longer fits, the table
/// goes to two lines until the window is that wide again.
fn remember_wide_width(ui: &mut egui::Ui, id: egui::Id, widths: &[f32]) {
    if widths.len() != WIDE.len() || ui.is_sizing_pass() {
        return;
    }
    let others: f32 = WIDE
        .iter()
        .zip(widths)
        .filter(|((fields, _), _)| !fields.contains(&Field::Address))
        .map(|(_, width)| width)
        .sum();
    let needed = others + ADDRESS_NARROWEST + gaps(ui, WIDE.len());
    ui.data_mut(|d| d.insert_temp(id, needed));
}

impl Cells {
    /// The heading naming `field`.
    fn heading(&self, field: Field) -> egui::Id {
        self.headings[field.slot()]
    }

    /// The widget id of the row's field for `key`: from the row's index
    /// (not the relay id, which is being edited) and the key, not from
    /// the cell it is drawn in, so that a field keeps the cursor and
    /// what is typed when the table goes from one line per relay to two.
    fn field_id(&self, key: &str) -> egui::Id {
        egui::Id::unique(("settings_relay_field", self.index, key))
    }

    /// What validation says about `key` of the row being drawn.
    fn problem(&self, key: &'static str) -> Option<&str> {
        self.problems.get(&(self.index, key)).map(String::as_str)
    }
}

/// The kind as a combo box offering every kind, each explained on hover;
/// returns whether it changed. A change goes through
/// [`RelayConfig::set_kind`]: id, name, group, timeout and confirm stay,
/// the new kind's keys start at their defaults.
fn kind_cell(ui: &mut egui::Ui, cells: &Cells, relay: &mut RelayConfig) -> bool {
    let mut chosen = None;
    let combo = egui::ComboBox::from_id_salt("kind")
        .selected_text(relay.kind.as_str())
        .width(ui.available_width().min(120.0))
        .show_ui(ui, |ui| {
            for kind in Kind::ALL {
                if ui
                    .selectable_label(relay.kind == kind, kind.as_str())
                    .on_hover_text(kind.summary())
                    .clicked()
                {
                    chosen = Some(kind);
                }
            }
        });
    combo
        .response
        .labelled_by(cells.heading(Field::Kind))
        .on_hover_text(relay.kind.summary());
    match chosen {
        Some(kind) if kind != relay.kind => {
            relay.set_kind(kind);
            true
        }
        _ => false,
    }
}

/// A field every kind has, or a payload; returns whether it was edited.
/// `focus`: the cursor goes into the Id field (a relay just added).
fn plain_cell(
    ui: &mut egui::Ui,
    cells: &Cells,
    relay: &mut RelayConfig,
    field: Field,
    focus: bool,
) -> bool {
    let heading = cells.heading(field);
    let text_field = |ui: &mut egui::Ui, text: &mut String, hint: &str, key: &'static str| {
        let response = edit(ui, cells.field_id(key), text, hint, None).labelled_by(heading);
        marked(ui, response, None, cells.problem(key))
    };
    let payload = match field {
        Field::PayloadOn => Some(0),
        Field::PayloadOff => Some(1),
        Field::PayloadQuery => Some(2),
        _ => None,
    };
    if let (Some(which), Some((fixed, about))) = (payload, fixed_payloads(relay.kind)) {
        let (value, hint) = fixed[which];
        let mut shown = value.to_owned();
        ui.add_enabled(false, sized_edit(ui, &mut shown, hint, None))
            .labelled_by(heading)
            .on_disabled_hover_text(about);
        return false;
    }
    match field {
        Field::Id => {
            let response = text_field(ui, &mut relay.id, "id", "id");
            if focus {
                response.request_focus();
            }
            response.changed()
        }
        Field::Name => text_field(ui, &mut relay.name, "name", "name").changed(),
        Field::Group => text_field(ui, &mut relay.group, "group", "group").changed(),
        Field::PayloadOn => text_field(ui, &mut relay.payload_on, "on", "payload_on").changed(),
        Field::PayloadOff => text_field(ui, &mut relay.payload_off, "off", "payload_off").changed(),
        Field::PayloadQuery => {
            let mut query = relay.payload_query.clone().unwrap_or_default();
            let changed = text_field(ui, &mut query, "none", "payload_query").changed();
            if changed {
                relay.payload_query = (!query.is_empty()).then_some(query);
            }
            changed
        }
        Field::Timeout => {
            // Empty means the broker's timeout, shown greyed as the hint.
            let mut timeout = relay
                .timeout_ms
                .map(|ms| ms.to_string())
                .unwrap_or_default();
            let about = format!(
                "Empty: the broker's request timeout ({} ms)",
                cells.broker_timeout
            );
            let id = cells.field_id("timeout_ms");
            let response =
                edit(ui, id, &mut timeout, &cells.timeout_hint, None).labelled_by(heading);
            let response = marked(
                ui,
                response,
                Some(about.as_str()),
                cells.problem("timeout_ms"),
            );
            if response.changed() {
                relay.timeout_ms = parse_number(&timeout).map(|n| n.unwrap_or(u64::MAX));
            }
            response.changed()
        }
        Field::Confirm => ui
            .checkbox(&mut relay.confirm, "ask")
            .on_hover_text("Ask before every switch")
            .changed(),
        Field::Kind | Field::Address | Field::Remove => false,
    }
}

/// Where the relay's device is: its kind's two address fields and the
/// *last will…* button, side by side (one line per relay), or the first
/// field and the button on the first line and the second field under them
/// (two lines). Each field is named for a screen reader, explained on
/// hover with the topic the panel will publish to, and framed red with
/// validation's message when wrong. `focus`: the first field takes the
/// cursor (the kind just changed).
fn address(ui: &mut egui::Ui, cells: &Cells, relay: &mut RelayConfig, focus: bool) -> bool {
    let gap = ui.spacing().item_spacing.x;
    let width = ui.available_width();
    let (first, joint, second) = address_parts(relay.kind);
    let joint_width = text_width(ui, RichText::new(joint).weak(), egui::TextStyle::Body);
    let will_width = button_width(ui, LAST_WILL);
    // A switch id or a POWER number is a digit or two; two topics share
    // the room.
    let second_width = match second {
        Part::StateTopic if cells.wide => (width - joint_width - will_width - 3.0 * gap) / 2.0,
        Part::StateTopic => width - joint_width - gap,
        _ => 36.0,
    };
    let first_width = if cells.wide {
        width - joint_width - second_width - will_width - 3.0 * gap
    } else {
        width - will_width - gap
    };
    let mut changed = false;
    let first_line = |ui: &mut egui::Ui, relay: &mut RelayConfig| {
        part(ui, cells, relay, first, Some(first_width.max(40.0)), focus)
    };
    let second_line = |ui: &mut egui::Ui, relay: &mut RelayConfig| {
        ui.label(RichText::new(joint).weak());
        part(
            ui,
            cells,
            relay,
            second,
            Some(second_width.max(30.0)),
            false,
        )
    };
    if cells.wide {
        changed |= first_line(ui, relay);
        changed |= second_line(ui, relay);
        changed |= last_will(ui, cells, relay);
    } else {
        ui.vertical(|ui| {
            ui.horizontal(|ui| {
                changed |= first_line(ui, relay);
                changed |= last_will(ui, cells, relay);
            });
            ui.horizontal(|ui| changed |= second_line(ui, relay));
        });
    }
    changed
}

/// A kind's address fields: the first, and the second with the word
/// shown before it.
fn address_parts(kind: Kind) -> (Part, &'static str, Part) {
    match kind {
        Kind::Mqtt5 => (Part::RequestTopic, "state", Part::StateTopic),
        Kind::Shelly => (Part::Device, "switch", Part::Switch),
        Kind::Tasmota => (Part::Device, "POWER", Part::Power),
        Kind::State => (Part::CommandTopic, "state", Part::StateTopic),
    }
}

/// The *last will…* button and, while it is open, its popup with the
/// device's availability topic and payloads (greyed where the kind fixes
/// them); returns whether a field was edited. The button is framed red
/// when validation has a problem with one of them, its hover saying which.
fn last_will(ui: &mut egui::Ui, cells: &Cells, relay: &mut RelayConfig) -> bool {
    let topic = relay.availability_topic();
    let about = match &topic {
        Some(topic) => format!("The device's last will (availability): {topic}"),
        None => {
            "No last-will topic: the device's availability is unknown. Click to set one".to_owned()
        }
    };
    let problems: Vec<&str> = [
        Part::AvailabilityTopic,
        Part::PayloadAvailable,
        Part::PayloadNotAvailable,
    ]
    .into_iter()
    .filter_map(|p| cells.problem(p.key()))
    .collect();
    let problem = (!problems.is_empty()).then(|| problems.join("\n"));
    // A weak face when no topic is set: the row says at a glance which
    // devices tell their availability.
    let face = RichText::new(LAST_WILL);
    let face = if topic.is_some() { face } else { face.weak() };
    let button = ui.add(egui::Button::new(face));
    let button = marked(ui, button, Some(about.as_str()), problem.as_deref());
    let mut changed = false;
    egui::Popup::from_toggle_button_response(&button)
        // Clicks into its fields keep it open.
        .close_behavior(egui::PopupCloseBehavior::CloseOnClickOutside)
        .show(|ui| {
            ui.set_max_width(420.0);
            ui.strong(format!("Last will of {}", relay.display_name()));
            let fields = [
                Part::AvailabilityTopic,
                Part::PayloadAvailable,
                Part::PayloadNotAvailable,
            ];
            match fixed_will(relay) {
                Some((topic, online, offline)) => {
                    ui.label(format!(
                        "Fixed for kind {}: the device publishes {online} / {offline} on \
                         {topic} (its last will says {offline}).",
                        relay.kind
                    ));
                    egui::Grid::new("last_will_fixed").show(ui, |ui| {
                        for (which, value) in
                            fields.into_iter().zip([topic.as_str(), online, offline])
                        {
                            ui.label(which.name());
                            let mut shown = value.to_owned();
                            ui.add_enabled(false, sized_edit(ui, &mut shown, "", Some(240.0)))
                                .accessible_name(which.name());
                            ui.end_row();
                        }
                    });
                }
                None => {
                    ui.label(
                        "The broker publishes the offline payload on this topic when the \
                         device's connection drops (its last will); the device publishes the \
                         online payload when it connects. Empty: availability unknown.",
                    );
                    egui::Grid::new("last_will_fields").show(ui, |ui| {
                        for which in will_parts(relay.kind) {
                            ui.label(which.name());
                            changed |= part(ui, cells, relay, *which, Some(240.0), false);
                            ui.end_row();
                        }
                    });
                }
            }
        });
    changed
}

/// One address field, `width` wide; returns whether it was edited.
fn part(
    ui: &mut egui::Ui,
    cells: &Cells,
    relay: &mut RelayConfig,
    which: Part,
    width: Option<f32>,
    focus: bool,
) -> bool {
    let kind = relay.kind;
    let mut about = which.about(kind).to_owned();
    let publish = relay.publish_topic();
    if !publish.is_empty() && matches!(which, Part::Device | Part::Switch | Part::Power) {
        about.push_str(&format!("\nCommands go to {publish}"));
    }
    if kind == Kind::Tasmota {
        about.push_str(&format!(
            "\nReports come on {}",
            relay.report_topics().join(" and ")
        ));
    }
    let hint = which.hint(kind);
    let id = cells.field_id(which.key());
    let response = match which {
        Part::RequestTopic => edit(ui, id, &mut relay.request_topic, hint, width),
        Part::Device => edit(ui, id, &mut relay.device, hint, width),
        Part::CommandTopic => edit(ui, id, &mut relay.command_topic, hint, width),
        Part::StateTopic => edit(ui, id, &mut relay.state_topic, hint, width),
        Part::AvailabilityTopic => edit(ui, id, &mut relay.availability_topic, hint, width),
        Part::PayloadAvailable => edit(ui, id, &mut relay.payload_available, hint, width),
        Part::PayloadNotAvailable => edit(ui, id, &mut relay.payload_not_available, hint, width),
        Part::Switch => {
            // Switch 0, the default, shows as the hint: the field can be
            // emptied and typed into like the others.
            let mut text = match relay.switch {
                0 => String::new(),
                n => n.to_string(),
            };
            let response = edit(ui, id, &mut text, hint, width);
            if response.changed() {
                // Empty is switch 0, the default; too large to read stays
                // too large.
                relay.switch = parse_number(&text).map_or(0, |n| {
                    n.and_then(|n| u32::try_from(n).ok()).unwrap_or(u32::MAX)
                });
            }
            response
        }
        Part::Power => {
            let mut text = relay.power.map(|n| n.to_string()).unwrap_or_default();
            let response = edit(ui, id, &mut text, hint, width);
            if response.changed() {
                // Empty: a one-relay device; out of range is named by
                // validation.
                relay.power = parse_number(&text)
                    .map(|n| n.and_then(|n| u32::try_from(n).ok()).unwrap_or(u32::MAX));
            }
            response
        }
    };
    let response = response.accessible_name(which.name());
    if focus {
        response.request_focus();
    }
    let edited = response.changed();
    marked(
        ui,
        response,
        Some(about.as_str()),
        cells.problem(which.key()),
    );
    edited
}

/// Frames `response`'s field red when validation has a `problem` with it,
/// and gives it a hover: `about`, then the problem.
fn marked(
    ui: &egui::Ui,
    response: egui::Response,
    about: Option<&str>,
    problem: Option<&str>,
) -> egui::Response {
    if problem.is_some() {
        ui.painter().rect_stroke(
            response.rect,
            ui.visuals().widgets.inactive.corner_radius,
            egui::Stroke::new(1.5, super::settings::PROBLEM_RED),
            egui::StrokeKind::Inside,
        );
    }
    let hover = [about, problem]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("\n");
    if hover.is_empty() {
        response
    } else {
        response.on_hover_text(hover)
    }
}

/// A number as typed: `None` when empty (or no digit), `Some(None)` when
/// too large to read (so validation names it), else the number.
fn parse_number(text: &str) -> Option<Option<u64>> {
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    (!digits.is_empty()).then(|| digits.parse().ok())
}

/// A text field `width` wide, or filling its cell (see [`sized_edit`]),
/// with widget id `id`.
fn edit(
    ui: &mut egui::Ui,
    id: egui::Id,
    text: &mut String,
    hint: &str,
    width: Option<f32>,
) -> egui::Response {
    let field = sized_edit(ui, text, hint, width).id(id);
    ui.add(field)
}

/// A text field `width` wide, or filling its table cell. While the table
/// measures its columns (a sizing pass) it is as wide as its text, or its
/// hint when empty, so each column takes the width of its widest visible
/// cell (a minimum size, as a field never gets wider than the cell
/// otherwise).
fn sized_edit<'t>(
    ui: &egui::Ui,
    text: &'t mut String,
    hint: &str,
    width: Option<f32>,
) -> egui::TextEdit<'t> {
    let width = if ui.is_sizing_pass() {
        let shown = if text.is_empty() { hint } else { text.as_str() };
        text_width(ui, RichText::new(shown), egui::TextStyle::Body)
            + 2.0 * ui.spacing().button_padding.x
            + 8.0
    } else {
        width.unwrap_or_else(|| ui.available_width())
    };
    egui::TextEdit::singleline(text)
        .hint_text(hint)
        .desired_width(width)
        .min_size(egui::vec2(width, 0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Numbers as typed: empty is none, digits are read, too large stays
    /// too large.
    #[test]
    fn numbers_as_typed() {
        assert_eq!(parse_number(""), None);
        assert_eq!(parse_number("x"), None);
        assert_eq!(parse_number("12"), Some(Some(12)));
        assert_eq!(parse_number(" 1a2"), Some(Some(12)));
        assert_eq!(parse_number("99999999999999999999999"), Some(None));
    }

    /// Every kind's own keys are in its row: the address fields and, where
    /// the kind lets them be chosen, the payload fields and the last will's
    /// (in its popup).
    #[test]
    fn each_kind_edits_its_own_keys() {
        for kind in Kind::ALL {
            let (first, _, second) = address_parts(kind);
            let mut edited: Vec<&str> = [first, second]
                .into_iter()
                .chain(will_parts(kind).iter().copied())
                .map(Part::key)
                .collect();
            if fixed_payloads(kind).is_none() {
                edited.extend(["payload_on", "payload_off", "payload_query"]);
            }
            edited.sort_unstable();
            let mut own = kind.own_keys().to_vec();
            own.sort_unstable();
            assert_eq!(edited, own, "{kind}");
        }
    }
}
