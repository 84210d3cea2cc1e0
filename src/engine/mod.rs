//! The engine: a tokio task that owns the MQTT 5 connection, sends
//! requests, matches responses by correlation data and keeps every relay's
//! [`RelayStatus`]. Callers hold a cloneable [`EngineHandle`] (commands in)
//! and an [`Events`] receiver (events out); after each event the engine
//! calls the wake-up callback (the GUI passes `ctx.request_repaint`).
//!
//! Rules it enforces (DESIGN.md): subscribe to the response topic and wait
//! for SUBACK before any request, again after every reconnect; one request
//! in flight per relay; a relay's state changes only on a reply tied to a
//! request this engine sent (correlation data, or a Shelly RPC id to this
//! engine's `src`: *confirmed*), or on the device's own state message
//! after such a request was sent, never a retained one (*reported*).
//!
//! Layout: this file is the way in (options, commands, events, the handle,
//! [`spawn`]); `task.rs` is the task (I/O only) and `connection.rs` its
//! connection; `decide.rs` the pure
//! decision core; `screen.rs` what may be an answer and the rate-limited
//! log of what is not; `outbox.rs` flow control and deadlines;
//! `loading.rs` the store at start-up; `reconfigure.rs` a new list of
//! relays on the same connection; `once.rs` one request start to end for
//! one-shot callers; `kinds/` one file per kind of device; `reports.rs`
//! device reports waiting for a correlated answer that may follow.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::config::{BrokerConfig, Config, PanelConfig};
use crate::mqtt;
use crate::pending::PendingRequests;
use crate::protocol::{self, Action};
use crate::relay::{Availability, RelayStatus};
use crate::store::AuditEntry;

mod connection;
mod decide;
pub mod kinds;
mod loading;
mod once;
mod outbox;
mod reconfigure;
mod reports;
mod screen;
mod task;

pub use once::{ANSWER_SLACK, OnceError, request_once};
use task::Engine;

/// How long a request that ended unanswered stays recognisable, so that a
/// late answer still counts as the device's report.
pub const LATE_GRACE: Duration = Duration::from_secs(60);
/// Cap on remembered ended requests (bounds memory under floods).
pub const MAX_REMEMBERED: usize = 100_000;
/// Audit entries sent to the UI at start-up.
pub const HISTORY_LEN: usize = 500;
/// Pause before subscribing again when the client's queue refused.
const RESUBSCRIBE_AFTER: Duration = Duration::from_millis(100);
/// Why a request that waited for the broker's window past its deadline
/// was never sent.
const HELD_PAST_DEADLINE: &str = "the broker had not acknowledged earlier requests before this one's deadline \
     (is it stalled or overloaded?); it was never sent, so it cannot switch anything later";

/// Called after every event so a sleeping UI wakes up.
pub type Wake = Arc<dyn Fn() + Send + Sync>;

/// What the engine needs to start.
pub struct EngineOptions {
    /// Broker and relays (validated by [`spawn`]); shared, not copied,
    /// with the UI (10,000 relays are megabytes).
    pub config: Arc<Config>,
    /// Where the store lives; `None` keeps nothing on disk.
    pub data_dir: Option<PathBuf>,
    /// First part of the random client id (`relay-panel`, `relayctl`…).
    pub client_id_prefix: String,
    /// Add a random suffix to a client id fixed in the configuration, so
    /// this process never takes over the session of a panel configured with
    /// the same id (relayctl sets it; the panel uses the id as configured).
    pub client_id_suffix: bool,
    /// Wake-up callback.
    pub wake: Wake,
    /// Audit entries to read from the store and send as [`Event::History`]
    /// at start-up (0 for one-shot commands).
    pub history: usize,
    /// Most requests awaiting the broker's PUBACK at once (more wait in
    /// the outbox): [`mqtt::MAX_IN_FLIGHT`] for a panel that switches
    /// thousands of relays at once; a one-shot command sending one
    /// request needs a few (rumqttc sets aside a slot for each, at start).
    pub max_in_flight: u16,
}

impl EngineOptions {
    /// Options with no store and no wake-up callback.
    pub fn new(config: impl Into<Arc<Config>>) -> Self {
        EngineOptions {
            config: config.into(),
            data_dir: None,
            client_id_prefix: "relay-panel".to_owned(),
            client_id_suffix: false,
            wake: Arc::new(|| {}),
            history: HISTORY_LEN,
            max_in_flight: mqtt::MAX_IN_FLIGHT,
        }
    }
}

/// Requests to the engine.
#[derive(Debug, Clone)]
pub enum Command {
    /// Switch or query the relay at this index of the configuration.
    Request {
        /// Index into `config.relays`.
        relay: usize,
        /// What to ask.
        action: Action,
    },
    /// Use this configuration from now on, on the same connection
    /// (sent by [`EngineHandle::reconfigure`], which checks that it is
    /// valid and that only its relays changed).
    Reconfigure(Arc<Config>),
    /// Disconnect cleanly, flush the store and stop.
    Shutdown,
    /// Panic (see [`EngineHandle::crash_for_test`]).
    #[doc(hidden)]
    Crash,
}

/// The broker connection as the technician sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionState {
    /// Opening the connection (first attempt).
    Connecting,
    /// Connected; waiting for the response topic subscription.
    Subscribing,
    /// Connected and subscribed: requests can be sent.
    Connected,
    /// Connection lost or refused; retrying.
    Reconnecting {
        /// Why the last attempt failed.
        reason: String,
        /// Time until the next attempt.
        retry_in: Duration,
    },
    /// Retrying cannot help (wrong password, not MQTT 5, session taken
    /// over…): the engine stays disconnected until restarted.
    Failed {
        /// What to fix.
        reason: String,
    },
    /// Shut down.
    Stopped,
}

impl ConnectionState {
    /// Whether requests can be sent.
    pub fn is_ready(&self) -> bool {
        matches!(self, ConnectionState::Connected)
    }
}

/// What the engine reports.
#[derive(Debug, Clone)]
pub enum Event {
    /// The connection changed.
    Connection(ConnectionState),
    /// A relay's status changed (sent once per relay at start-up, and after
    /// [`Event::Reconfigured`], too).
    Relay {
        /// Index into `config.relays`.
        relay: usize,
        /// The new status.
        status: RelayStatus,
    },
    /// A request ended (also written to the audit log).
    Finished {
        /// Index into `config.relays`.
        relay: usize,
        /// The audit entry.
        entry: AuditEntry,
    },
    /// A device answered a request that had already ended (timed out or
    /// cut off); the entry is also in the audit log.
    Late {
        /// Index into `config.relays`.
        relay: usize,
        /// The audit entry.
        entry: AuditEntry,
    },
    /// A relay's device went online or offline, or was heard to be so for
    /// the first time (its last-will topic); the status event comes too.
    Availability {
        /// Index into `config.relays`.
        relay: usize,
        /// What is known now.
        availability: Availability,
    },
    /// The device published a state that no request of this panel
    /// explains: a change at the device (a wall button, another panel, an
    /// automation). The entry ([`crate::Outcome::ChangedAtDevice`], its
    /// source as the detail) is also in the audit log; the status event
    /// comes too.
    Changed {
        /// Index into `config.relays`.
        relay: usize,
        /// The audit entry.
        entry: AuditEntry,
    },
    /// The newest audit entries from the store, newest first (at start-up).
    History(Vec<AuditEntry>),
    /// The engine now uses this configuration (after
    /// [`EngineHandle::reconfigure`]); the connection is untouched. From
    /// this event on, every relay index refers to the new
    /// `config.relays`; events before it (already queued when it was
    /// applied, and the ends of removed relays' requests, sent just before
    /// it) use the old indices. It is followed by one [`Event::Relay`] per
    /// relay of the new configuration: kept relays (same `id`) keep their
    /// status and request in flight, new ones start unknown. No history and
    /// no connection event come with it.
    Reconfigured(Arc<Config>),
    /// Something the technician should know that is not a request outcome
    /// (a corrupted store set aside, a failed write).
    Warning(String),
    /// Messages on the response topic that answered nothing (unknown,
    /// foreign, duplicate or malformed), summarised: at most about one
    /// event a second, however many arrive.
    Ignored {
        /// Messages ignored since the previous `Ignored` event.
        count: u64,
        /// Why the latest one was ignored.
        reason: String,
    },
}

/// Cloneable way in to the engine.
#[derive(Clone)]
pub struct EngineHandle {
    /// Commands to the engine task.
    commands: mpsc::UnboundedSender<Command>,
    /// This engine's MQTT client id.
    pub client_id: Arc<str>,
    /// The topic devices answer on.
    pub response_topic: Arc<str>,
    /// This engine's JSON-RPC `src`: Shelly devices answer it on
    /// `<src>/rpc`.
    pub rpc_src: Arc<str>,
    /// The sections the engine was started with, which a reconfiguration
    /// must leave as they are (changing them needs a new connection).
    started: Arc<StartedWith>,
}

/// What of its configuration a running engine cannot change.
struct StartedWith {
    /// How it connects; its client id and response topic follow from it.
    broker: BrokerConfig,
    /// Its operator, sent with every request.
    panel: PanelConfig,
}

impl EngineHandle {
    /// Asks for `action` on the relay at `relay`. Never blocks; the outcome
    /// arrives as events.
    pub fn request(&self, relay: usize, action: Action) {
        let _ = self.commands.send(Command::Request { relay, action });
    }

    /// Applies `config` to the running engine, on the same connection (same
    /// client id and response topic): relays are matched by `id`, so kept
    /// relays keep their status and their request in flight; requests of
    /// removed relays end at once. Never blocks.
    ///
    /// Commands are handled in order, so every request sent after this
    /// returns `Ok` names relays by their index in `config`; events use the
    /// new indices from [`Event::Reconfigured`] on.
    ///
    /// Refused, with nothing sent, when `config` is invalid or its
    /// `[broker]` or `[panel]` section differs from the one the engine was
    /// started with: that needs a new engine.
    pub fn reconfigure(&self, config: Arc<Config>) -> Result<(), ReconfigureError> {
        let problems = config.validate();
        if !problems.is_empty() {
            let text: Vec<String> = problems.iter().map(|p| p.message.clone()).collect();
            return Err(ReconfigureError::Invalid(text.join("; ")));
        }
        if config.broker != self.started.broker {
            return Err(ReconfigureError::NeedsRestart { section: "broker" });
        }
        if config.panel != self.started.panel {
            return Err(ReconfigureError::NeedsRestart { section: "panel" });
        }
        self.commands
            .send(Command::Reconfigure(config))
            .map_err(|_| ReconfigureError::Stopped)
    }

    /// Asks the engine to disconnect and stop; [`Events`] ends afterwards.
    pub fn shutdown(&self) {
        let _ = self.commands.send(Command::Shutdown);
    }

    /// Makes the engine task panic, to test that a crash is reported (and
    /// recovered from) rather than leaving a silent window. Tests only.
    #[doc(hidden)]
    pub fn crash_for_test(&self) {
        let _ = self.commands.send(Command::Crash);
    }
}

/// The engine's event stream.
pub struct Events {
    rx: mpsc::UnboundedReceiver<Event>,
}

impl Events {
    /// Next event; `None` once the engine has stopped.
    pub async fn recv(&mut self) -> Option<Event> {
        self.rx.recv().await
    }

    /// An event if one is waiting (for the UI thread, which never blocks).
    pub fn try_recv(&mut self) -> Option<Event> {
        self.rx.try_recv().ok()
    }

    /// Whether the engine has stopped (no more events will come once the
    /// waiting ones are read).
    pub fn is_closed(&self) -> bool {
        self.rx.is_closed()
    }
}

/// The engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The configuration breaks a rule.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Client options could not be built (URL, TLS files).
    #[error(transparent)]
    Setup(#[from] mqtt::SetupError),
    /// The engine's thread could not be started.
    #[error("cannot start the engine thread: {0}")]
    Thread(std::io::Error),
}

/// A configuration could not be applied to the running engine; it still
/// runs with the one it had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReconfigureError {
    /// The configuration breaks a rule.
    #[error("invalid configuration: {0}")]
    Invalid(String),
    /// The `[broker]` or `[panel]` section changed: the panel must
    /// reconnect (start a new engine) to apply it.
    #[error(
        "the [{section}] settings changed, so the panel must reconnect to apply them \
         (a new connection, client id and response topic)"
    )]
    NeedsRestart {
        /// `"broker"` or `"panel"`.
        section: &'static str,
    },
    /// The engine has stopped (shut down or crashed): start a new one.
    #[error("the engine has stopped; start it again to apply the configuration")]
    Stopped,
}

/// The engine, made and not yet running: [`spawn`] runs it on a thread of
/// its own, [`start_here`] hands it to the caller's runtime.
struct Prepared {
    engine: Engine,
    eventloop: rumqttc::v5::EventLoop,
    label: String,
    fixed_client_id: bool,
    commands: mpsc::UnboundedReceiver<Command>,
    data_dir: Option<PathBuf>,
    history: usize,
}

impl Prepared {
    /// Runs the engine until it is shut down.
    async fn run(self) {
        self.engine
            .run(
                self.eventloop,
                self.label,
                self.fixed_client_id,
                self.commands,
                self.data_dir,
                self.history,
            )
            .await
    }
}

/// Starts the engine on a thread of its own (callable from any thread,
/// with or without a tokio runtime).
pub fn spawn(options: EngineOptions) -> Result<(EngineHandle, Events), EngineError> {
    let (handle, events, prepared) = prepare(options)?;
    let crash_events = prepared.engine.events.clone();
    let crash_wake = prepared.engine.wake.clone();
    // The engine and its event loop share one thread of their own: every
    // hand-over between them is a local wake-up, not a cross-thread one, and
    // nothing the caller's runtime does can delay a response.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(EngineError::Thread)?;
    std::thread::Builder::new()
        .name("relay-panel-engine".into())
        .spawn(move || {
            let run = std::panic::AssertUnwindSafe(|| runtime.block_on(prepared.run()));
            // A bug must not leave the window showing "connected" while
            // nothing happens: say so, and let the caller start a new engine.
            if let Err(panic) = std::panic::catch_unwind(run) {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".to_owned());
                tracing::error!("the engine stopped after an internal error: {what}");
                let reason = format!(
                    "internal error: the engine stopped ({what}); nothing is being switched or confirmed. \
                     Retry starts it again; the error is in the log"
                );
                let _ = crash_events.send(Event::Connection(ConnectionState::Failed { reason }));
                crash_wake();
            }
        })
        .map_err(EngineError::Thread)?;
    Ok((handle, events))
}

/// Makes the engine for the caller's current-thread runtime to run: the
/// returned future is the engine, to be polled alongside what uses the
/// handle (`tokio::join!`) until it ends after [`EngineHandle::shutdown`].
/// A one-shot command saves a thread and a runtime this way; a panic in
/// the engine is the caller's panic.
pub fn start_here(
    options: EngineOptions,
) -> Result<(EngineHandle, Events, impl std::future::Future<Output = ()>), EngineError> {
    let (handle, events, prepared) = prepare(options)?;
    Ok((handle, events, prepared.run()))
}

/// Validates the configuration and makes the engine, its handle and its
/// events.
fn prepare(options: EngineOptions) -> Result<(EngineHandle, Events, Prepared), EngineError> {
    let problems = options.config.validate();
    if !problems.is_empty() {
        let text: Vec<String> = problems.iter().map(|p| p.message.clone()).collect();
        return Err(EngineError::Config(text.join("; ")));
    }
    let client_id = match &options.config.broker.client_id {
        Some(id) if options.client_id_suffix => protocol::random_client_id(id),
        Some(id) => id.clone(),
        None => protocol::random_client_id(&options.client_id_prefix),
    };
    let response_topic = protocol::response_topic(&client_id);
    let rpc_src = protocol::rpc_src(&client_id);
    let routes = kinds::Routes::of(
        &options.config,
        &kinds::PanelTopics {
            response_topic: &response_topic,
            rpc_src: &rpc_src,
        },
    );
    let (client, eventloop) =
        mqtt::client_with(&options.config.broker, &client_id, options.max_in_flight)?;
    let (commands_tx, commands_rx) = mpsc::unbounded_channel();
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let operator = options
        .config
        .panel
        .operator
        .clone()
        .unwrap_or_else(crate::paths::os_user);
    let relays = options.config.relays.len();
    let started = Arc::new(StartedWith {
        broker: options.config.broker.clone(),
        panel: options.config.panel.clone(),
    });
    let engine = Engine {
        statuses: vec![RelayStatus::default(); relays],
        pending: PendingRequests::new(LATE_GRACE, MAX_REMEMBERED),
        connection: ConnectionState::Connecting,
        client,
        response_topic: response_topic.clone(),
        rpc_src: rpc_src.clone(),
        routes,
        held: reports::HeldReports::default(),
        subscribing: VecDeque::new(),
        operator,
        events: events_tx,
        wake: options.wake,
        store: loading::StoreSlot::Off,
        ignored: screen::IgnoredLog::default(),
        outbox: outbox::Outbox::default(),
        config: options.config,
        resubscribe_at: None,
    };
    let label = client_id.clone();
    // Only an id used exactly as configured can be shared with another
    // client (a suffixed one is unique to this process).
    let fixed_client_id = engine.config.broker.client_id.is_some() && !options.client_id_suffix;
    Ok((
        EngineHandle {
            commands: commands_tx,
            client_id: client_id.into(),
            response_topic: response_topic.into(),
            rpc_src: rpc_src.into(),
            started,
        },
        Events { rx: events_rx },
        Prepared {
            engine,
            eventloop,
            label,
            fixed_client_id,
            commands: commands_rx,
            data_dir: options.data_dir,
            history: options.history,
        },
    ))
}

/// Sleeps until `deadline`, or forever without one (a `select!` branch
/// that never fires).
pub async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}
