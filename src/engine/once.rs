//! One request, start to end, for one-shot callers (`relayctl set`/`get`):
//! wait for the connection through reconnects, send, wait for the outcome.
//! Every wait is bounded.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::{ConnectionState, EngineHandle, Event, Events};
use crate::config::Config;
use crate::protocol::Action;
use crate::relay::Availability;
use crate::store::AuditEntry;

/// How long a one-shot request waits, once connected, for the retained
/// availability message of a relay's device before sending anyway
/// (availability unknown): brokers send retained messages right after the
/// SUBACK, so this is only spent on devices that never published one.
pub const AVAILABILITY_WAIT: Duration = Duration::from_millis(300);

/// Slack on top of a request's own timeout before giving up on the engine
/// ending it (it ends it at the timeout; this only bounds the wait).
pub const ANSWER_SLACK: Duration = Duration::from_secs(2);

/// Why a one-shot request ended without an outcome.
#[derive(Debug, thiserror::Error)]
pub enum OnceError {
    /// The connection failed for certain (wrong password…).
    #[error("{0}")]
    Failed(String),
    /// No connection within the wait.
    #[error("no connection to {url} within {:.1} s{}", waited.as_secs_f64(), last_reason.as_ref().map(|r| format!(": {r}")).unwrap_or_else(|| " (no answer from the broker)".to_owned()))]
    NoConnection {
        /// The broker URL.
        url: String,
        /// How long it waited.
        waited: Duration,
        /// What the last attempt saw.
        last_reason: Option<String>,
    },
    /// The engine stopped first.
    #[error("the engine stopped before {0}")]
    Stopped(&'static str),
    /// The engine did not end the request by its timeout and the slack.
    #[error("the engine did not end the request in time")]
    Overdue,
    /// The relay's device is offline (its last will says so): nothing was
    /// sent.
    #[error("{}", offline_text(*since, *retained))]
    Offline {
        /// When it was heard offline.
        since: SystemTime,
        /// Only "offline since before `since`" is known (a retained will).
        retained: bool,
    },
}

/// "device offline since 2026-12-04 10:42:07 (its last will says so);
/// nothing was sent".
fn offline_text(since: SystemTime, retained: bool) -> String {
    let before = if retained { "before " } else { "" };
    format!(
        "device offline since {before}{} (its last will says so); nothing was sent",
        crate::relay::format_time(since)
    )
}

/// Waits for the connection (up to `connect_wait`, through reconnects),
/// asks `action` of the relay at `relay`, and returns how it ended.
/// Warnings met on the way go to `on_warning`.
///
/// With `refuse_offline`, a relay whose device has a last-will topic is
/// first checked: its retained availability is awaited (at most
/// [`AVAILABILITY_WAIT`] after connecting), and a device known to be
/// offline gets nothing ([`OnceError::Offline`]); unknown sends.
#[allow(clippy::too_many_arguments)] // one call site per caller, each reads plainly
pub async fn request_once(
    handle: &EngineHandle,
    events: &mut Events,
    config: &Config,
    relay: usize,
    action: Action,
    connect_wait: Duration,
    refuse_offline: bool,
    mut on_warning: impl FnMut(String),
) -> Result<AuditEntry, OnceError> {
    // The engine retries on its own; only `Failed` (certain failure) or
    // the end of the wait stops the waiting.
    let connect_by = Instant::now() + connect_wait;
    let mut last_reason: Option<String> = None;
    let mut availability = Availability::Unknown;
    loop {
        let event = match tokio::time::timeout_at(connect_by, events.recv()).await {
            Ok(Some(event)) => event,
            Ok(None) => return Err(OnceError::Stopped("connecting")),
            Err(_) => {
                return Err(OnceError::NoConnection {
                    url: config.broker.url.clone(),
                    waited: connect_wait,
                    last_reason,
                });
            }
        };
        match event {
            Event::Connection(ConnectionState::Connected) => break,
            Event::Connection(ConnectionState::Reconnecting { reason, .. }) => {
                last_reason = Some(reason)
            }
            Event::Connection(ConnectionState::Failed { reason }) => {
                return Err(OnceError::Failed(reason));
            }
            Event::Warning(message) => on_warning(message),
            Event::Availability {
                relay: r,
                availability: known,
            } if r == relay => availability = known,
            _ => {}
        }
    }
    if refuse_offline && config.relays[relay].availability_topic().is_some() {
        let heard_by = Instant::now() + AVAILABILITY_WAIT;
        while availability == Availability::Unknown {
            match tokio::time::timeout_at(heard_by, events.recv()).await {
                Ok(Some(Event::Availability {
                    relay: r,
                    availability: known,
                })) if r == relay => availability = known,
                Ok(Some(Event::Warning(message))) => on_warning(message),
                Ok(Some(_)) => {}
                Ok(None) => return Err(OnceError::Stopped("availability was known")),
                Err(_) => break, // nothing retained: unknown, sent
            }
        }
        if let Availability::Offline { since, retained } = availability {
            return Err(OnceError::Offline { since, retained });
        }
    }
    handle.request(relay, action);
    // The engine ends the request at its timeout (or at a disconnect).
    let answer_by = Instant::now() + config.timeout(&config.relays[relay]) + ANSWER_SLACK;
    loop {
        match tokio::time::timeout_at(answer_by, events.recv()).await {
            Ok(Some(Event::Finished { relay: r, entry })) if r == relay => return Ok(entry),
            Ok(Some(Event::Warning(message))) => on_warning(message),
            Ok(Some(_)) => {}
            Ok(None) => return Err(OnceError::Stopped("the request ended")),
            Err(_) => return Err(OnceError::Overdue),
        }
    }
}

impl Events {
    /// After a shutdown: hands every remaining event to `each` until the
    /// engine has stopped, or `within` has passed.
    pub async fn drain_for(&mut self, within: Duration, mut each: impl FnMut(Event)) {
        let stop_by = Instant::now() + within;
        while let Ok(Some(event)) = tokio::time::timeout_at(stop_by, self.recv()).await {
            each(event);
        }
    }
}
