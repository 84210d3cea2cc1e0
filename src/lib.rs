//! Relay Panel: switch relays over MQTT 5 and show only what devices confirmed.
//!
//! Layout of the crate (everything that does not draw pixels):
//! - [`config`]: the TOML configuration, its validation (errors name file, line
//!   and column) and atomic saving.
//! - [`protocol`]: the wire contract: correlation ids, request payloads and
//!   properties, response parsing.
//! - [`pending`]: correlation bookkeeping (which requests are in flight, which
//!   timed out recently), pure and clock-injected.
//! - [`relay`]: the per-relay state machine, pure and clock-injected.
//! - [`engine`]: the tokio task that owns the MQTT 5 connection; callers hold
//!   an [`engine::EngineHandle`] and read [`engine::Event`]s.
//! - [`store`]: last acknowledged states and the audit log (SQLite).
//! - [`sim`]: simulated devices that follow the contract, with fault injection.
//! - [`demo`]: an embedded MQTT 5 broker for `relay-panel --demo`.
//! - [`outcome`]: how a request ended ([`Outcome`]), as a type.
//! - [`ui`]: the egui views of the panel.
//!
//! Binaries in `src/bin/` and `src/main.rs` only parse arguments and call in.

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
