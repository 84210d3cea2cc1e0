//! Relay Panel: switch relays over MQTT 5 and show only what devices confirmed.
//!
//! Layout of the crate, top (what the technician touches) to bottom; each
//! layer uses only the ones below it:
//! - [`ui`]: the window. Views (`ui/*.rs`, one per view) draw the
//!   [`ui::Model`] and return [`ui::Intent`]s; [`ui::Panel`] applies them
//!   through an [`engine::EngineHandle`]; [`ui::PanelApp`] is the
//!   `eframe::App` (events drained in `logic`, drawing in `ui`).
//! - [`engine`] (a folder): the handle, commands and events (`mod.rs`); the
//!   task doing only I/O (`task.rs`, `connection.rs`); the pure decision
//!   core (`decide.rs`); response screening (`screen.rs`); flow control
//!   (`outbox.rs`); relay kinds, one file each (`kinds/`).
//! - [`mqtt`]: client options, the event-loop driver with reconnect
//!   backoff and technician-readable errors, packet-id bookkeeping.
//! - [`relay`] and [`pending`]: the per-relay state machine and the
//!   correlation table, pure and clock-injected.
//! - [`protocol`] and [`outcome`]: the wire contract (correlation ids,
//!   payloads, replies) and how a request ended, as types.
//! - [`store`]: last acknowledged states and the audit log (SQLite, WAL).
//! - [`config`] (a folder): the TOML schema and loading, validation rules
//!   with file:line:col, comment-keeping atomic writes; [`paths`]: default
//!   locations.
//! - [`sim`]: simulated devices that follow the contract, with fault
//!   injection (relay-sim, the demo, the tests); [`demo`]: an embedded
//!   MQTT 5 broker for `relay-panel --demo`.
//!
//! Binaries in `src/bin/` and `src/main.rs` only parse arguments and call
//! in. Test tools (a child-process Mosquitto, the chaos soak) live in the
//! workspace member `relay-testkit`, not here.

pub mod config;
pub mod engine;
pub mod mqtt;
pub mod outcome;
pub mod paths;
pub mod pending;
pub mod protocol;
pub mod relay;
pub mod sim;
pub mod store;
pub mod ui;

#[cfg(feature = "demo")]
pub mod demo;

pub use config::Config;
pub use engine::{Command, EngineHandle, Event};
pub use outcome::{Evidence, Outcome};
pub use protocol::{Action, CorrelationId, RelayState};
