//! The engine: a tokio task that owns the MQTT 5 connection, sends
//! requests, matches responses by correlation data and keeps every relay's
//! [`RelayStatus`]. Callers hold a cloneable [`EngineHandle`] (commands in)
//! and an [`Events`] receiver (events out); after each event the engine
//! calls the wake-up callback (the GUI passes `ctx.request_repaint`).
//!
//! Rules it enforces (DESIGN.md): subscribe to the response topic and wait
//! for SUBACK before any request, again after every reconnect; one request
//! in flight per relay; a relay's state changes only on a response whose
//! correlation data matches a request this engine sent.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use rumqttc::v5::AsyncClient;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{PublishProperties, SubscribeReasonCode};
use tokio::sync::mpsc;

use crate::config::Config;
use crate::mqtt::{self, NetEvent};
use crate::outcome::Outcome;
use crate::pending::{AlreadyPending, PendingRequests, Resolution};
use crate::protocol::{self, Action, CorrelationId, RelayState, Reply};
use crate::relay::{Acknowledgement, Failure, RelayStatus};
use crate::store::{AuditEntry, Record, Store, StoreWriter, StoredAck};

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
    /// A relay's status changed (sent once per relay at start-up too).
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
    /// The newest audit entries from the store, newest first (at start-up).
    History(Vec<AuditEntry>),
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
}

impl EngineHandle {
    /// Asks for `action` on the relay at `relay`. Never blocks; the outcome
    /// arrives as events.
    pub fn request(&self, relay: usize, action: Action) {
        let _ = self.commands.send(Command::Request { relay, action });
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

/// Starts the engine on a thread of its own (callable from any thread,
/// with or without a tokio runtime).
pub fn spawn(options: EngineOptions) -> Result<(EngineHandle, Events), EngineError> {
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
    let (client, eventloop) = mqtt::client(&options.config.broker, &client_id)?;
    let (commands_tx, commands_rx) = mpsc::unbounded_channel();
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let operator = options
        .config
        .panel
        .operator
        .clone()
        .unwrap_or_else(crate::paths::os_user);
    let relays = options.config.relays.len();
    let engine = Engine {
        statuses: vec![RelayStatus::default(); relays],
        pending: PendingRequests::new(LATE_GRACE, MAX_REMEMBERED),
        connection: ConnectionState::Connecting,
        client,
        response_topic: response_topic.clone(),
        operator,
        events: events_tx,
        wake: options.wake,
        store: StoreSlot::Off,
        ignored: IgnoredLog::default(),
        outbox: Outbox::default(),
        config: options.config,
        resubscribe_at: None,
    };
    let crash_events = engine.events.clone();
    let crash_wake = engine.wake.clone();
    let label = client_id.clone();
    // Only an id used exactly as configured can be shared with another
    // client (a suffixed one is unique to this process).
    let fixed_client_id = engine.config.broker.client_id.is_some() && !options.client_id_suffix;
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
            let run = std::panic::AssertUnwindSafe(|| {
                runtime.block_on(engine.run(
                    eventloop,
                    label,
                    fixed_client_id,
                    commands_rx,
                    options.data_dir,
                    options.history,
                ))
            });
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
    Ok((
        EngineHandle {
            commands: commands_tx,
            client_id: client_id.into(),
            response_topic: response_topic.into(),
        },
        Events { rx: events_rx },
    ))
}

/// Counts ignored messages and logs them at a bounded rate, so a flood of
/// garbage cannot flood the log (or the event stream).
#[derive(Default)]
struct IgnoredLog {
    /// Start of the current one-second window.
    window: Option<Instant>,
    /// Lines logged in the window.
    logged: u32,
    /// Messages ignored but not logged in the window.
    suppressed: u64,
    /// Messages ignored since the last [`Event::Ignored`].
    unreported: u64,
    /// When the last [`Event::Ignored`] went out.
    reported: Option<Instant>,
}

impl IgnoredLog {
    const PER_SECOND: u32 = 10;

    /// Notes one ignored message; returns the summary to send as an event,
    /// at most one a second (later ones are counted into the next).
    fn note(&mut self, now: Instant, why: std::fmt::Arguments<'_>) -> Option<(u64, String)> {
        let second = Duration::from_secs(1);
        let fresh = self.window.is_none_or(|w| now.duration_since(w) >= second);
        if fresh {
            if self.suppressed > 0 {
                tracing::warn!("{} more ignored response(s) not logged", self.suppressed);
            }
            self.window = Some(now);
            self.logged = 0;
            self.suppressed = 0;
        }
        if self.logged < Self::PER_SECOND {
            self.logged += 1;
            tracing::warn!("ignored response: {why}");
        } else {
            self.suppressed += 1;
        }
        self.unreported += 1;
        if self
            .reported
            .is_none_or(|r| now.duration_since(r) >= second)
        {
            self.reported = Some(now);
            return Some((std::mem::take(&mut self.unreported), why.to_string()));
        }
        None
    }
}

/// Requests waiting to be handed to the MQTT client, and the count of
/// those handed over and not yet acknowledged by the broker.
///
/// Invariant: a request is handed to the client only while fewer than
/// `window` are unacknowledged, so the client writes it to the socket at
/// once (it never queues it behind a stalled broker), and only before its
/// deadline: a request that could not be delivered in time is never sent
/// at all (Message Expiry counts only from the broker's receipt).
#[derive(Default)]
struct Outbox {
    /// Waiting, oldest first.
    queue: std::collections::VecDeque<Held>,
    /// Correlation ids in `queue`, to tell at a deadline that a request
    /// was never sent.
    held: std::collections::HashSet<CorrelationId>,
    /// Handed to the client, not yet acknowledged by the broker.
    on_wire: usize,
    /// Most unacknowledged publishes at once: the broker's Receive
    /// Maximum, capped by ours (0 while disconnected).
    window: usize,
    /// Handed to the client, not yet seen going out (FIFO: the client
    /// sends in call order), to learn their packet ids.
    unsent: std::collections::VecDeque<CorrelationId>,
    /// Packet id of each request on the wire, so a PUBACK refusal (ACL)
    /// ends the right request at once. Bounded by the window.
    by_pkid: std::collections::HashMap<u16, CorrelationId>,
}

/// A request not yet handed to the client.
struct Held {
    id: CorrelationId,
    relay: usize,
    action: Action,
    deadline: Instant,
}

impl Outbox {
    fn hold(&mut self, held: Held) {
        self.held.insert(held.id);
        self.queue.push_back(held);
    }

    /// Puts back a request taken with [`Outbox::next`], first in line.
    fn hold_again(&mut self, held: Held) {
        self.held.insert(held.id);
        self.queue.push_front(held);
    }

    /// The next request that may be handed over now, if the window allows.
    fn next(&mut self) -> Option<Held> {
        if self.on_wire >= self.window {
            return None;
        }
        let held = self.queue.pop_front()?;
        self.held.remove(&held.id);
        Some(held)
    }

    /// Takes a request out of the queue if it is still there.
    fn take(&mut self, id: &CorrelationId) -> bool {
        if !self.held.remove(id) {
            return false;
        }
        self.queue.retain(|h| h.id != *id);
        true
    }

    fn handed_over(&mut self, id: CorrelationId) {
        self.on_wire += 1;
        self.unsent.push_back(id);
    }

    fn sent(&mut self, pkid: u16) {
        if let Some(id) = self.unsent.pop_front() {
            self.by_pkid.insert(pkid, id);
        }
    }

    /// The broker acknowledged (or refused) `pkid`; returns its request.
    fn acknowledged(&mut self, pkid: u16) -> Option<CorrelationId> {
        let id = self.by_pkid.remove(&pkid)?;
        self.on_wire = self.on_wire.saturating_sub(1);
        Some(id)
    }

    /// The connection is gone: everything on the wire is forgotten and the
    /// held requests are returned (they were never sent).
    fn disconnected(&mut self) -> Vec<Held> {
        self.on_wire = 0;
        self.window = 0;
        self.unsent.clear();
        self.by_pkid.clear();
        self.held.clear();
        self.queue.drain(..).collect()
    }
}

/// What the store held at start-up.
struct Loaded {
    store: Store,
    warning: Option<String>,
    acks: Vec<StoredAck>,
    history: Vec<AuditEntry>,
}

fn load_store(dir: &std::path::Path, history: usize) -> Result<Loaded, crate::store::StoreError> {
    let (store, warning) = Store::open_in(dir)?;
    let acks = store.last_acknowledged()?;
    let history = if history > 0 {
        store.recent_audit(history)?
    } else {
        Vec::new()
    };
    Ok(Loaded {
        store,
        warning,
        acks,
        history,
    })
}

/// Where records go.
enum StoreSlot {
    /// No store (none configured, or it could not be opened).
    Off,
    /// Opening; records wait here.
    Loading(Vec<Record>),
    /// Writing.
    Ready(StoreWriter),
}

struct Engine {
    /// Broker and relays; indices into `relays` name relays everywhere.
    config: Arc<Config>,
    /// Each relay's state machine, same order as `config.relays`.
    statuses: Vec<RelayStatus>,
    /// Requests in flight and recently ended.
    pending: PendingRequests,
    /// Current connection state (requests only when `Connected`).
    connection: ConnectionState,
    /// The way to publish and subscribe (the event loop runs elsewhere).
    client: AsyncClient,
    /// Where devices answer this engine.
    response_topic: String,
    /// Sent as the `operator` user property and kept in the audit log.
    operator: String,
    /// Events out.
    events: mpsc::UnboundedSender<Event>,
    /// Wakes the UI after events.
    wake: Wake,
    /// Durable writes, off the engine's thread.
    store: StoreSlot,
    /// Rate-limited log of ignored responses.
    ignored: IgnoredLog,
    /// Requests not yet handed to the client, and flow control.
    outbox: Outbox,
    /// When to try the response-topic subscription again (the client's
    /// queue refused it).
    resubscribe_at: Option<Instant>,
}

impl Engine {
    async fn run(
        mut self,
        eventloop: rumqttc::v5::EventLoop,
        label: String,
        fixed_client_id: bool,
        mut commands: mpsc::UnboundedReceiver<Command>,
        data_dir: Option<PathBuf>,
        history: usize,
    ) {
        self.emit(Event::Connection(ConnectionState::Connecting));
        // Connect and load the store at the same time: a one-shot command
        // must not pay for both in sequence.
        let mut network = Some(mqtt::spawn_event_loop(eventloop, label, fixed_client_id));
        let mut loading = data_dir.map(|dir| {
            self.store = StoreSlot::Loading(Vec::new());
            tokio::task::spawn_blocking(move || load_store(&dir, history))
        });
        loop {
            let deadline = self.pending.next_deadline();
            tokio::select! {
                biased;
                loaded = async { loading.as_mut().expect("guarded").await }, if loading.is_some() => {
                    loading = None;
                    self.store_loaded(loaded);
                }
                net = async { network.as_mut().expect("guarded").recv().await }, if network.is_some() => match net {
                    Some(net) => self.on_network(net),
                    None => {
                        // The event-loop task ended: after a fatal error (the
                        // state already says why) or because it crashed. The
                        // engine keeps serving commands (answering "not
                        // sent") and polls nothing more.
                        network = None;
                        self.network_ended();
                    }
                },
                command = commands.recv() => match command {
                    Some(Command::Request { relay, action }) => self.on_request(relay, action),
                    Some(Command::Crash) => panic!("crash requested by a test"),
                    Some(Command::Shutdown) | None => break,
                },
                _ = sleep_until(deadline), if deadline.is_some() => self.on_deadline(),
                _ = sleep_until(self.resubscribe_at), if self.resubscribe_at.is_some() => {
                    self.resubscribe_at = None;
                    self.subscribe();
                }
            }
        }
        if let Some(loading) = loading {
            self.store_loaded(loading.await);
        }
        self.shutdown(network).await;
    }

    /// Applies what the store held (restored states, history) and starts
    /// writing, including records made while it loaded.
    fn store_loaded(
        &mut self,
        loaded: Result<Result<Loaded, crate::store::StoreError>, tokio::task::JoinError>,
    ) {
        let buffered = match std::mem::replace(&mut self.store, StoreSlot::Off) {
            StoreSlot::Loading(records) => records,
            _ => Vec::new(),
        };
        match loaded {
            Ok(Ok(loaded)) => {
                if let Some(warning) = loaded.warning {
                    self.emit(Event::Warning(warning));
                }
                for ack in loaded.acks {
                    let Some(index) = self.config.relays.iter().position(|r| r.id == ack.relay_id)
                    else {
                        continue;
                    };
                    // Never over a state confirmed in this session.
                    if self.statuses[index].last_acknowledged.is_none() {
                        self.statuses[index].last_acknowledged = Some(Acknowledgement {
                            state: ack.state,
                            requested: ack.requested,
                            at: ack.at,
                            rtt: ack.rtt,
                            late: ack.late,
                            restored: true,
                        });
                        self.emit_status(index);
                    }
                }
                self.emit(Event::History(loaded.history));
                let events = self.events.clone();
                let wake = self.wake.clone();
                let writer = StoreWriter::spawn(loaded.store, move |message| {
                    let _ = events.send(Event::Warning(message));
                    wake();
                });
                for record in buffered {
                    writer.send(record);
                }
                self.store = StoreSlot::Ready(writer);
            }
            Ok(Err(e)) => {
                tracing::error!("{e}");
                self.emit(Event::Warning(format!(
                    "{e}. Nothing will be saved this session: states and the audit log are not kept."
                )));
            }
            Err(e) => tracing::error!("store task failed: {e}"),
        }
    }

    /// Ends every request in flight as "connection lost" (they stay
    /// answerable late), and every request never handed over as "not
    /// sent".
    fn connection_lost(&mut self) {
        self.resubscribe_at = None;
        for held in self.outbox.disconnected() {
            if self.pending.cancel(&held.id).is_some() {
                let reason = "the connection dropped before it could be sent".to_owned();
                self.finish_failed(
                    held.relay,
                    held.action,
                    Failure::NotSent { reason },
                    None,
                    Some(held.id),
                );
            }
        }
        for (id, request) in self.pending.abandon_all(Instant::now()) {
            self.finish_failed(
                request.relay,
                request.action,
                Failure::ConnectionLost,
                None,
                Some(id),
            );
        }
    }

    /// The event-loop task is gone for good.
    fn network_ended(&mut self) {
        self.connection_lost();
        if !matches!(
            self.connection,
            ConnectionState::Failed { .. } | ConnectionState::Stopped
        ) {
            self.set_connection(ConnectionState::Failed {
                reason: "internal error: the MQTT connection task stopped; Retry starts it again"
                    .to_owned(),
            });
        }
    }

    async fn shutdown(&mut self, network: Option<mpsc::Receiver<NetEvent>>) {
        self.connection_lost();
        if let Some(mut network) = network
            && self.client.try_disconnect().is_ok()
        {
            // Let the event loop put DISCONNECT on the wire (it returns once sent).
            let _ = tokio::time::timeout(Duration::from_millis(500), async {
                while network.recv().await.is_some() {}
            })
            .await;
        }
        if let StoreSlot::Ready(mut store) = std::mem::replace(&mut self.store, StoreSlot::Off) {
            let _ = tokio::task::spawn_blocking(move || store.close()).await;
        }
        self.set_connection(ConnectionState::Stopped);
    }

    fn emit(&self, event: Event) {
        if self.events.send(event).is_ok() {
            (self.wake)();
        }
    }

    fn emit_status(&self, relay: usize) {
        self.emit(Event::Relay {
            relay,
            status: self.statuses[relay].clone(),
        });
    }

    fn set_connection(&mut self, state: ConnectionState) {
        if self.connection != state {
            self.connection = state.clone();
            self.emit(Event::Connection(state));
        }
    }

    /// Subscribes to the response topic; if the client's queue refuses,
    /// tries again shortly (the connection itself is fine, so the state
    /// stays "subscribing").
    fn subscribe(&mut self) {
        if let Err(reason) = mqtt::subscribe(&self.client, &self.response_topic) {
            tracing::warn!("{reason}; trying again");
            self.resubscribe_at = Some(Instant::now() + RESUBSCRIBE_AFTER);
        }
    }

    fn on_network(&mut self, event: NetEvent) {
        match event {
            NetEvent::Connected(ack) => {
                tracing::info!(
                    "connected (session present: {}); subscribing to {}",
                    ack.session_present,
                    self.response_topic
                );
                let receive_max = ack
                    .properties
                    .as_ref()
                    .and_then(|p| p.receive_max)
                    .unwrap_or(u16::MAX);
                self.outbox.window = usize::from(receive_max.min(mqtt::MAX_IN_FLIGHT)).max(1);
                self.set_connection(ConnectionState::Subscribing);
                self.subscribe();
            }
            NetEvent::SubAck(ack) => {
                let refused = ack
                    .return_codes
                    .iter()
                    .find(|code| !matches!(code, SubscribeReasonCode::Success(_)));
                match refused {
                    None => {
                        self.set_connection(ConnectionState::Connected);
                        self.pump();
                    }
                    Some(code) => {
                        // Answers could never arrive: leave, and say what to fix.
                        let _ = self.client.try_disconnect();
                        self.connection_lost();
                        self.set_connection(ConnectionState::Failed {
                            reason: format!(
                                "the broker refused the subscription to this panel's response topic {} ({code:?}); \
                                 the broker's ACL must let this client subscribe to it",
                                self.response_topic
                            ),
                        });
                    }
                }
            }
            NetEvent::Publish(publish) => self.on_publish(publish),
            NetEvent::Sent(pkid) => self.outbox.sent(pkid),
            NetEvent::Acked(pkid) => {
                self.outbox.acknowledged(pkid);
                self.pump();
            }
            NetEvent::Refused { pkid, reason } => {
                if let Some(id) = self.outbox.acknowledged(pkid)
                    && let Some(request) = self.pending.cancel(&id)
                {
                    let topic = &self.config.relays[request.relay].request_topic;
                    let reason = format!(
                        "{reason} — the broker does not let this panel publish to {topic}; check its ACL"
                    );
                    tracing::warn!("request refused by the broker: {reason}");
                    self.finish_failed(
                        request.relay,
                        request.action,
                        Failure::Refused { reason },
                        None,
                        Some(id),
                    );
                }
                self.pump();
            }
            NetEvent::Down {
                reason,
                fatal,
                retry_in,
            } => {
                self.connection_lost();
                self.set_connection(if fatal {
                    ConnectionState::Failed { reason }
                } else {
                    ConnectionState::Reconnecting { reason, retry_in }
                });
            }
        }
    }

    fn on_request(&mut self, relay: usize, action: Action) {
        let Some(relay_config) = self.config.relays.get(relay) else {
            tracing::warn!("request for relay #{relay}, which is not configured");
            return;
        };
        if self.pending.is_pending(relay) {
            // One request in flight per relay: this one is not sent, and
            // says so at once (a caller waiting for its outcome must not
            // wait forever). The request in flight is untouched.
            tracing::info!("{}: a request is already in flight", relay_config.id);
            let detail = format!(
                "not sent: relay {} already has a request in flight",
                relay_config.id
            );
            let entry = self.audit(relay, action, Outcome::Busy, None, None, Some(detail));
            self.record(Record::Audit(entry.clone()));
            self.emit(Event::Finished { relay, entry });
            return;
        }
        if action.payload(relay_config).is_none() {
            let reason = format!(
                "relay {} has no payload_query configured, so it cannot be asked its state",
                relay_config.id
            );
            self.finish_failed(relay, action, Failure::NotSent { reason }, None, None);
            return;
        }
        if !self.connection.is_ready() {
            let reason = match &self.connection {
                ConnectionState::Failed { reason } => format!("not connected: {reason}"),
                ConnectionState::Reconnecting { reason, .. } => format!("not connected ({reason})"),
                _ => "not connected to the broker yet".to_owned(),
            };
            self.finish_failed(relay, action, Failure::NotSent { reason }, None, None);
            return;
        }
        let timeout = self.config.timeout(relay_config);
        let id = CorrelationId::random();
        let now = Instant::now();
        if let Err(AlreadyPending) = self.pending.start(id, relay, action, now, timeout) {
            return; // checked above
        }
        let _ = self.statuses[relay].begin(action, SystemTime::now(), timeout);
        tracing::debug!("{} <- {action} ({id:?})", relay_config.id);
        self.emit_status(relay);
        self.outbox.hold(Held {
            id,
            relay,
            action,
            deadline: now + timeout,
        });
        self.pump();
    }

    /// Hands waiting requests to the client while the broker's window has
    /// room, each with the time it has left as its expiry.
    fn pump(&mut self) {
        if !self.connection.is_ready() {
            return;
        }
        while let Some(held) = self.outbox.next() {
            if !self.pending.is_in_flight(&held.id) {
                continue; // ended already (it was reported then)
            }
            let now = Instant::now();
            let left = held.deadline.saturating_duration_since(now);
            if left.is_zero() {
                // Its deadline passes now: the timer ends it as never sent.
                self.outbox.hold_again(held);
                break;
            }
            let relay_config = &self.config.relays[held.relay];
            let payload = held.action.payload(relay_config).unwrap_or_default();
            let expires_at = chrono::DateTime::<chrono::Utc>::from(SystemTime::now() + left)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let properties = PublishProperties {
                response_topic: Some(self.response_topic.clone()),
                correlation_data: Some(Bytes::copy_from_slice(&held.id.0)),
                message_expiry_interval: Some(protocol::expiry_seconds(left)),
                user_properties: vec![
                    ("operator".to_owned(), self.operator.clone()),
                    (protocol::EXPIRES_AT.to_owned(), expires_at),
                ],
                ..Default::default()
            };
            let handed = self.client.try_publish_with_properties(
                relay_config.request_topic.clone(),
                QoS::AtLeastOnce,
                false,
                Bytes::copy_from_slice(payload.as_bytes()),
                properties,
            );
            match handed {
                Ok(()) => self.outbox.handed_over(held.id),
                Err(e) => {
                    let reason = format!("the MQTT client could not queue the request ({e})");
                    let _ = self.pending.cancel(&held.id);
                    self.finish_failed(
                        held.relay,
                        held.action,
                        Failure::NotSent { reason },
                        None,
                        Some(held.id),
                    );
                }
            }
        }
    }

    fn on_deadline(&mut self) {
        let now = Instant::now();
        for (id, request) in self.pending.expire(now) {
            let failure = if self.outbox.take(&id) {
                // Never handed to the broker, so no device can answer it.
                let _ = self.pending.resolve(&id, now);
                Failure::NotSent {
                    reason: HELD_PAST_DEADLINE.to_owned(),
                }
            } else {
                Failure::NoResponse {
                    after: request.deadline.duration_since(request.sent),
                }
            };
            self.finish_failed(request.relay, request.action, failure, None, Some(id));
        }
        self.pump();
    }

    fn ignore(&mut self, now: Instant, why: std::fmt::Arguments<'_>) {
        if let Some((count, reason)) = self.ignored.note(now, why) {
            self.emit(Event::Ignored { count, reason });
        }
    }

    fn on_publish(&mut self, publish: rumqttc::v5::mqttbytes::v5::Publish) {
        let now = Instant::now();
        if publish.topic.as_ref() != self.response_topic.as_bytes() {
            let topic = String::from_utf8_lossy(&publish.topic).into_owned();
            self.ignore(now, format_args!("message on foreign topic {topic:?}"));
            return;
        }
        if publish.retain {
            self.ignore(
                now,
                format_args!("retained message on the response topic (stale, not an answer)"),
            );
            return;
        }
        let correlation = publish
            .properties
            .as_ref()
            .and_then(|p| p.correlation_data.as_ref());
        let Some(correlation) = correlation else {
            self.ignore(now, format_args!("response without correlation data"));
            return;
        };
        let Some(id) = CorrelationId::from_bytes(correlation) else {
            let len = correlation.len();
            self.ignore(
                now,
                format_args!("correlation data of {len} bytes (this panel sends 16)"),
            );
            return;
        };
        match self.pending.resolve(&id, now) {
            Resolution::Current(request) => {
                let rtt = now.duration_since(request.sent);
                let relay_config = &self.config.relays[request.relay];
                match protocol::parse_reply(&publish.payload, relay_config) {
                    Reply::State(state) => {
                        self.finish_confirmed(request.relay, request.action, state, rtt, id)
                    }
                    Reply::DeviceError(text) => self.finish_failed(
                        request.relay,
                        request.action,
                        Failure::DeviceError { text },
                        Some(rtt),
                        Some(id),
                    ),
                }
            }
            Resolution::Late(request) => {
                let rtt = now.duration_since(request.sent);
                let relay_config = &self.config.relays[request.relay];
                let reply = protocol::parse_reply(&publish.payload, relay_config);
                self.on_late(request.relay, request.action, reply, rtt, id);
            }
            Resolution::Unknown => {
                self.ignore(
                    now,
                    format_args!("unknown, foreign or duplicate correlation {id:?}"),
                );
            }
        }
    }

    fn audit(
        &self,
        relay: usize,
        action: Action,
        outcome: Outcome,
        state: Option<RelayState>,
        rtt: Option<Duration>,
        detail: Option<String>,
    ) -> AuditEntry {
        AuditEntry {
            at: SystemTime::now(),
            relay_id: self.config.relays[relay].id.clone(),
            action,
            outcome,
            state,
            rtt,
            detail,
            operator: self.operator.clone(),
            correlation: None,
        }
    }

    fn record(&mut self, record: Record) {
        match &mut self.store {
            StoreSlot::Ready(store) => store.send(record),
            StoreSlot::Loading(buffer) => buffer.push(record),
            StoreSlot::Off => {}
        }
    }

    fn finish_confirmed(
        &mut self,
        relay: usize,
        action: Action,
        state: RelayState,
        rtt: Duration,
        id: CorrelationId,
    ) {
        let at = SystemTime::now();
        // The request's send time on the wall clock: the store orders by
        // it across processes.
        let requested = at.checked_sub(rtt).unwrap_or(at);
        let taken = self.statuses[relay].confirm(state, requested, at, rtt);
        let detail = match action {
            Action::On | Action::Off if Action::switch_to(state) != action => {
                Some(format!("asked {action}, device reports {state}"))
            }
            _ => None,
        };
        let mut entry = self.audit(
            relay,
            action,
            Outcome::Confirmed,
            Some(state),
            Some(rtt),
            detail,
        );
        entry.correlation = Some(id.to_hex());
        if taken {
            self.record(Record::Ack(StoredAck {
                relay_id: entry.relay_id.clone(),
                state,
                requested,
                at,
                rtt,
                late: false,
            }));
        }
        self.finish(relay, entry);
    }

    /// Audits a request that ended and tells the caller.
    fn finish(&mut self, relay: usize, entry: AuditEntry) {
        self.record(Record::Audit(entry.clone()));
        self.emit_status(relay);
        self.emit(Event::Finished { relay, entry });
    }

    fn finish_failed(
        &mut self,
        relay: usize,
        action: Action,
        failure: Failure,
        rtt: Option<Duration>,
        id: Option<CorrelationId>,
    ) {
        let detail = match &failure {
            Failure::DeviceError { text } => Some(text.clone()),
            Failure::NotSent { reason } | Failure::Refused { reason } => Some(reason.clone()),
            _ => None,
        };
        let mut entry = self.audit(relay, action, failure.outcome(), None, rtt, detail);
        entry.correlation = id.map(|id| id.to_hex());
        self.statuses[relay].fail(failure, entry.at);
        self.finish(relay, entry);
    }

    fn on_late(
        &mut self,
        relay: usize,
        action: Action,
        reply: Reply,
        rtt: Duration,
        id: CorrelationId,
    ) {
        let at = SystemTime::now();
        let requested = at.checked_sub(rtt).unwrap_or(at);
        match reply {
            Reply::State(state) => {
                let taken = self.statuses[relay].late(state, requested, at, rtt);
                let mut entry = self.audit(
                    relay,
                    action,
                    Outcome::LateConfirmed,
                    Some(state),
                    Some(rtt),
                    (!taken).then(|| {
                        "answers a request older than the last acknowledged state; not shown"
                            .to_owned()
                    }),
                );
                entry.correlation = Some(id.to_hex());
                tracing::info!("{}: late answer {state} after {rtt:?}", entry.relay_id);
                if taken {
                    self.record(Record::Ack(StoredAck {
                        relay_id: entry.relay_id.clone(),
                        state,
                        requested,
                        at,
                        rtt,
                        late: true,
                    }));
                    self.emit_status(relay);
                }
                self.record(Record::Audit(entry.clone()));
                self.emit(Event::Late { relay, entry });
            }
            Reply::DeviceError(text) => {
                let mut entry = self.audit(
                    relay,
                    action,
                    Outcome::LateDeviceError,
                    None,
                    Some(rtt),
                    Some(text),
                );
                entry.correlation = Some(id.to_hex());
                self.record(Record::Audit(entry.clone()));
                self.emit(Event::Late { relay, entry });
            }
        }
    }
}

/// Sleeps until `deadline`, or forever without one (a `select!` branch
/// that never fires).
pub(crate) async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}
