//! ejabberd's MQTT broker (`mod_mqtt`, MQTT 3.1.1 and 5) run as child
//! processes on free loopback ports: one node, or a cluster of nodes joined
//! with `join_cluster`. For the tests and benchmarks that prove the panel
//! on a clustered broker. Needs the `ejabberd` package (Debian 12: 23.01).
//!
//! Everything lives under one temporary directory: per node its
//! `ejabberd.yml`, Mnesia spool, logs and crash dump; the cluster's cookie
//! is on the command line and its epmd (the Erlang port mapper, which
//! nodes use to find each other) is a private one on a port of its own
//! (`ERL_EPMD_PORT`, nodes started with `-start_epmd false`). So a system
//! ejabberd started by the Debian package (its epmd on 4369, node
//! `ejabberd@localhost`, MQTT on 1883) neither sees nor disturbs these
//! nodes. `ejabberdctl` is not used: it switches to the `ejabberd` user and
//! reads `/etc/ejabberd/ejabberdctl.cfg`, which overrides `--config`.
//!
//! Nothing outlives the test process: dropping a [`LocalEjabberd`] (or the
//! process exiting, for one made [`shared`](LocalEjabberd::shared)) stops
//! every node and the epmd and deletes the directory. Should the process
//! die without that (SIGKILL, Ctrl-C), each node halts by itself when its
//! standard input, a pipe from the test process, reaches end of file, and
//! so does the epmd's guard shell.

use std::io;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};

use relay_panel::config::BrokerConfig;

/// The user name every client sends: ejabberd refuses a CONNECT without a
/// user name and a non-empty password (CONNACK 135, Not authorized) even
/// with anonymous authentication, which then accepts any pair.
pub const USERNAME: &str = "relay-test";
/// The password every client sends (any non-empty one does).
pub const PASSWORD: &str = "anonymous";

/// How long a node may take to start (about 1.3 s here, 2-3 s to join a
/// cluster; far more on a loaded CI machine).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a node may take to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// What the install hint says when ejabberd or Erlang is missing.
const INSTALL_HINT: &str = "install it: `apt-get install -y ejabberd` (Debian 12: ejabberd 23.01 and Erlang; \
     `bash .ci/run` does it). The tests start nodes of their own: a system ejabberd service the \
     package may start is not needed (`service ejabberd stop`)";

/// A running ejabberd: one node, or a cluster whose nodes 1.. joined
/// node 0. Nodes are numbered from 0.
pub struct LocalEjabberd {
    /// The nodes, each behind a lock so a shared cluster can restart one
    /// through `&self`.
    nodes: Vec<Mutex<Node>>,
    /// The private epmd (its guard shell).
    epmd: Mutex<Option<Child>>,
    /// The port of that epmd.
    epmd_port: u16,
    /// The Erlang cookie the nodes share (they refuse any other).
    cookie: String,
    /// Where the Erlang applications of ejabberd are (`ERL_LIBS`).
    libs: PathBuf,
    /// The `erl` executable.
    erl: PathBuf,
    /// Holds every node's files; deleted last.
    dir: tempfile::TempDir,
}

/// One ejabberd node.
struct Node {
    /// Its Erlang node name, `relayN@127.0.0.1`.
    name: String,
    /// Its MQTT port (kept across restarts).
    port: u16,
    /// Its configuration, spool and logs.
    dir: PathBuf,
    /// The running `beam.smp`, if it is running; its standard input is a
    /// pipe whose end of file halts it.
    child: Option<Child>,
}

/// A free loopback port (bound, then released for the child to take).
fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The directory holding ejabberd's Erlang applications (Debian:
/// `/usr/lib/<triplet>/ejabberd-23.01`, next to its dependencies), or
/// `$RELAY_PANEL_EJABBERD_LIBS` if set.
fn find_libs() -> io::Result<PathBuf> {
    let has_ejabberd = |dir: &Path| {
        std::fs::read_dir(dir).is_ok_and(|entries| {
            entries.flatten().any(|e| {
                e.file_name().to_string_lossy().starts_with("ejabberd-")
                    && e.path().join("ebin/ejabberd.app").exists()
            })
        })
    };
    if let Some(dir) = std::env::var_os("RELAY_PANEL_EJABBERD_LIBS") {
        let dir = PathBuf::from(dir);
        return if has_ejabberd(&dir) {
            Ok(dir)
        } else {
            Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "RELAY_PANEL_EJABBERD_LIBS={} holds no ejabberd-*/ebin/ejabberd.app; unset it, or {INSTALL_HINT}",
                    dir.display()
                ),
            ))
        };
    }
    let mut candidates = vec![PathBuf::from("/usr/lib"), PathBuf::from("/usr/local/lib")];
    if let Ok(entries) = std::fs::read_dir("/usr/lib") {
        candidates.extend(
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().ends_with("-linux-gnu")),
        );
    }
    candidates.into_iter().find(|dir| has_ejabberd(dir)).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("ejabberd is not installed (no /usr/lib/*/ejabberd-*/ebin/ejabberd.app); {INSTALL_HINT}"),
        )
    })
}

/// An executable of Erlang's (`erl`, `epmd`).
fn find_executable(name: &str) -> io::Result<PathBuf> {
    let mut dirs: Vec<PathBuf> = vec!["/usr/bin".into(), "/usr/local/bin".into()];
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| p.exists())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("Erlang's `{name}` is not installed; {INSTALL_HINT}"),
            )
        })
}

/// Polls every 20 ms until `done` says so (`Ok(true)`) or fails, `failed`
/// says why it never will, or [`START_TIMEOUT`] passes (then `what` did
/// not happen within it).
fn poll_until(
    what: &str,
    mut done: impl FnMut() -> Result<bool, String>,
    mut failed: impl FnMut() -> Option<String>,
) -> Result<(), String> {
    let started = Instant::now();
    loop {
        if done()? {
            return Ok(());
        }
        if let Some(why) = failed() {
            return Err(why);
        }
        if started.elapsed() > START_TIMEOUT {
            return Err(format!("{what} within {} s", START_TIMEOUT.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until `port` accepts a TCP connection, or `failed` says why not.
fn wait_for_port(port: u16, failed: impl FnMut() -> Option<String>) -> Result<(), String> {
    poll_until(
        &format!("port {port} did not accept"),
        || Ok(TcpStream::connect(("127.0.0.1", port)).is_ok()),
        failed,
    )
}

/// `ejabberd.yml` for a node listening on `port`: anonymous logins (any
/// user name with a non-empty password), one MQTT listener, `mod_mqtt` with
/// its defaults (session expiry capped at 300 s, topics of at most 8
/// levels).
fn config(port: u16) -> String {
    format!(
        "hosts: [localhost]\n\
         loglevel: info\n\
         log_rotate_count: 0\n\
         auth_method: anonymous\n\
         anonymous_protocol: login_anon\n\
         acme: {{auto: false}}\n\
         listen:\n  - port: {port}\n    ip: \"127.0.0.1\"\n    module: mod_mqtt\n\
         modules:\n  mod_mqtt: {{}}\n"
    )
}

/// Erlang code run first in every node: halt when standard input ends, so
/// a test process that dies without stopping its nodes takes them along.
const HALT_ON_EOF: &str = "spawn(fun() -> W = fun W() -> case io:get_line('') of \
     eof -> erlang:halt(0); {error, _} -> erlang:halt(0); _ -> W() end end, W() end)";

/// Every live [`LocalEjabberd::shared`] broker, stopped at process exit.
static SHARED: Mutex<Vec<&'static LocalEjabberd>> = Mutex::new(Vec::new());

extern "C" fn stop_shared() {
    let shared = std::mem::take(&mut *SHARED.lock().unwrap_or_else(|e| e.into_inner()));
    for broker in shared {
        broker.stop();
        let _ = std::fs::remove_dir_all(broker.dir.path());
    }
}

impl LocalEjabberd {
    /// Starts a single node and waits until its MQTT port accepts.
    pub fn start() -> io::Result<Self> {
        Self::start_cluster(1)
    }

    /// Starts `nodes` nodes, node 0 first; each other node joins node 0's
    /// cluster (`join_cluster`) before its MQTT port counts as ready.
    pub fn start_cluster(nodes: usize) -> io::Result<Self> {
        assert!(nodes >= 1, "a cluster has at least one node");
        let libs = find_libs()?;
        let erl = find_executable("erl")?;
        let epmd = find_executable("epmd")?;
        let dir = tempfile::Builder::new()
            .prefix("relay-ejabberd")
            .tempdir()?;
        let cookie: String = (0..24)
            .map(|_| char::from(b'a' + rand::random_range(0..26u8)))
            .collect();
        let epmd_port = free_port()?;
        let mut broker = LocalEjabberd {
            nodes: Vec::new(),
            epmd: Mutex::new(None),
            epmd_port,
            cookie,
            libs,
            erl,
            dir,
        };
        broker.start_epmd(&epmd)?;
        for index in 0..nodes {
            let node_dir = broker.dir.path().join(format!("node{}", index + 1));
            std::fs::create_dir_all(node_dir.join("spool"))?;
            std::fs::create_dir_all(node_dir.join("log"))?;
            let port = free_port()?;
            std::fs::write(node_dir.join("ejabberd.yml"), config(port))?;
            broker.nodes.push(Mutex::new(Node {
                name: format!("relay{}@127.0.0.1", index + 1),
                port,
                dir: node_dir,
                child: None,
            }));
            broker.start_node(index)?;
        }
        Ok(broker)
    }

    /// Keeps the broker running until the test process exits (then stops
    /// it and deletes its files): one broker shared by the tests of a file,
    /// behind a `OnceLock`.
    pub fn shared(self) -> &'static LocalEjabberd {
        static AT_EXIT: Once = Once::new();
        AT_EXIT.call_once(|| {
            // SAFETY: registers a plain `extern "C" fn()` without arguments.
            unsafe {
                libc::atexit(stop_shared);
            }
        });
        let broker: &'static LocalEjabberd = Box::leak(Box::new(self));
        SHARED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(broker);
        broker
    }

    /// How many nodes.
    pub fn nodes(&self) -> usize {
        self.nodes.len()
    }

    /// The MQTT port of `node`.
    pub fn port(&self, node: usize) -> u16 {
        self.node(node).port
    }

    /// `mqtt://127.0.0.1:PORT` of `node`.
    pub fn url(&self, node: usize) -> String {
        format!("mqtt://127.0.0.1:{}", self.port(node))
    }

    /// A `[broker]` for `node` with the credentials ejabberd needs.
    pub fn broker_config(&self, node: usize) -> BrokerConfig {
        let mut broker = relay_panel::config::Config::new(&self.url(node)).broker;
        broker.username = Some(USERNAME.to_owned());
        broker.password = Some(PASSWORD.to_owned());
        broker
    }

    /// What `node` logged so far (ejabberd's log, then the VM's own output),
    /// for test failure messages.
    pub fn log(&self, node: usize) -> String {
        let node = self.node(node);
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap_or_default();
        format!(
            "{}{}",
            read(node.dir.join("log/ejabberd.log")),
            read(node.dir.join("beam.out"))
        )
    }

    fn node(&self, node: usize) -> MutexGuard<'_, Node> {
        self.nodes[node].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts the private epmd under a guard shell that stops it when its
    /// standard input (a pipe from this process) ends.
    fn start_epmd(&mut self, epmd: &Path) -> io::Result<()> {
        let log = std::fs::File::create(self.dir.path().join("epmd.log"))?;
        let guard = Command::new("sh")
            .arg("-c")
            .arg("\"$1\" -port \"$2\" -address 127.0.0.1 & e=$!; cat >/dev/null; kill $e 2>/dev/null; wait $e")
            .arg("epmd-guard")
            .arg(epmd)
            .arg(self.epmd_port.to_string())
            .stdin(Stdio::piped())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        *self.epmd.get_mut().unwrap_or_else(|e| e.into_inner()) = Some(guard);
        let port = self.epmd_port;
        let dir = self.dir.path().to_owned();
        let epmd = self.epmd.get_mut().unwrap_or_else(|e| e.into_inner());
        wait_for_port(port, || match epmd.as_mut().map(|c| c.try_wait()) {
            Some(Ok(Some(status))) => Some(format!(
                "epmd exited ({status}): {}",
                std::fs::read_to_string(dir.join("epmd.log")).unwrap_or_default()
            )),
            _ => None,
        })
        .map_err(|why| io::Error::other(format!("the private epmd did not start: {why}")))
    }

    /// Starts `node` (again: same name, port, spool; a node that has not
    /// joined node 0's cluster yet joins it) and waits until its MQTT port
    /// accepts. Does nothing if it is running.
    pub fn start_node(&self, index: usize) -> io::Result<()> {
        let seed = self.node(0).name.clone();
        let mut node = self.node(index);
        if node.child.is_some() {
            return Ok(());
        }
        let joined = node.dir.join("joined");
        let join = index > 0 && !joined.exists();
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(node.dir.join("beam.out"))?;
        let mut command = Command::new(&self.erl);
        command
            .current_dir(&node.dir)
            .env("HOME", &node.dir)
            .env("ERL_LIBS", &self.libs)
            .env("ERL_EPMD_PORT", self.epmd_port.to_string())
            .env("ERL_CRASH_DUMP", node.dir.join("erl_crash.dump"))
            .env("EJABBERD_CONFIG_PATH", node.dir.join("ejabberd.yml"))
            .env("EJABBERD_LOG_PATH", node.dir.join("log/ejabberd.log"))
            // The developer's Erlang settings have no say here.
            .env_remove("ERL_FLAGS")
            .env_remove("ERL_AFLAGS")
            .env_remove("ERL_ZFLAGS")
            .env_remove("ERL_INETRC")
            .args(["-name", &node.name, "-setcookie", &self.cookie])
            .args(["-noshell", "-start_epmd", "false"])
            .arg("-mnesia")
            .arg("dir")
            .arg(format!("\"{}\"", node.dir.join("spool").display()))
            .args(["-eval", HALT_ON_EOF, "-s", "ejabberd"]);
        if join {
            // As `ejabberdctl join_cluster`: ejabberd stops, Mnesia copies
            // node 0's tables, ejabberd starts again; then the marker.
            // Written aside and renamed: the reader never sees a file
            // created but not yet written (read as an empty answer, that
            // failed a join that had worked).
            command.arg("-eval").arg(format!(
                "R = ejabberd_admin:join_cluster(<<\"{seed}\">>), \
                 ok = file:write_file(\"{0}.part\", io_lib:format(\"~p\", [R])), \
                 ok = file:rename(\"{0}.part\", \"{0}\")",
                joined.display()
            ));
        }
        let child = command
            .stdin(Stdio::piped())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot start {} ({e}); {INSTALL_HINT}", self.erl.display()),
                )
            })?;
        node.child = Some(child);
        let port = node.port;
        let name = node.name.clone();
        let ready = (|| {
            if join {
                // The port opens once before the join and again after it.
                poll_until(
                    &format!("join_cluster with {seed} did not end"),
                    || match std::fs::read_to_string(&joined) {
                        Ok(result) if result.trim() == "ok" => Ok(true),
                        Ok(result) if !result.trim().is_empty() => {
                            Err(format!("join_cluster with {seed} said {result}"))
                        }
                        _ => Ok(false),
                    },
                    || exited(&mut node),
                )?;
            }
            wait_for_port(port, || exited(&mut node))
        })();
        drop(node);
        ready.map_err(|why| {
            let log = self.log(index);
            self.stop_node(index);
            io::Error::other(format!(
                "ejabberd node {name} did not start: {why}\n--- its log ---\n{log}"
            ))
        })
    }

    /// Stops `node` as a service stop does (SIGTERM: Erlang shuts down in
    /// order, ~1 s), killing it if it takes longer than 10 s; its clients
    /// see their connections close. Its port and spool stay for
    /// [`start_node`](Self::start_node).
    pub fn stop_node(&self, index: usize) {
        let mut node = self.node(index);
        if let Some(mut child) = node.child.take() {
            // SAFETY: a plain signal to a child this process has not reaped.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
            }
            let started = Instant::now();
            while matches!(child.try_wait(), Ok(None)) {
                if started.elapsed() > STOP_TIMEOUT {
                    let _ = child.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.wait();
        }
    }

    /// Stops `node` and starts it again on the same port and spool.
    pub fn restart_node(&self, index: usize) -> io::Result<()> {
        self.stop_node(index);
        self.start_node(index)
    }

    /// Kills every node and the epmd at once (nothing needs saving).
    pub fn stop(&self) {
        for node in &self.nodes {
            let mut node = node.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let mut epmd = self.epmd.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mut guard) = epmd.take() {
            // End of its input: the guard stops epmd and exits.
            drop(guard.stdin.take());
            let started = Instant::now();
            while matches!(guard.try_wait(), Ok(None)) {
                if started.elapsed() > STOP_TIMEOUT {
                    let _ = guard.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = guard.wait();
        }
    }
}

/// Why the node's VM has exited, if it has.
fn exited(node: &mut Node) -> Option<String> {
    match node.child.as_mut()?.try_wait() {
        Ok(Some(status)) => Some(format!("the Erlang VM exited ({status})")),
        _ => None,
    }
}

impl Drop for LocalEjabberd {
    fn drop(&mut self) {
        self.stop();
    }
}
