//! A Mosquitto broker run as a child process on a free loopback port: for
//! the tests, the benchmarks and `relay-soak` (which kills and restarts
//! it to simulate outages). Needs the `mosquitto` package.

use std::io;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A Mosquitto on `127.0.0.1:port`, killed when dropped.
pub struct LocalMosquitto {
    /// The running broker, if it is running.
    child: Option<Child>,
    /// The port it listens on (kept across restarts).
    pub port: u16,
    /// Holds the configuration file and the log.
    dir: tempfile::TempDir,
}

fn binary() -> PathBuf {
    [
        "/usr/sbin/mosquitto",
        "/usr/local/sbin/mosquitto",
        "/usr/bin/mosquitto",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .unwrap_or_else(|| "mosquitto".into())
}

impl LocalMosquitto {
    /// Starts a broker (TCP_NODELAY, no persistence, anonymous unless
    /// `extra` says otherwise) with `extra` configuration lines for its
    /// listener, and waits until it accepts connections.
    pub fn start_with(extra: &str) -> io::Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = tempfile::tempdir()?;
        let mut settings = String::new();
        // Started as root, Mosquitto drops to the `mosquitto` user, which
        // cannot read key files in a private temporary directory.
        let as_root = {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata("/proc/self")
                .map(|m| m.uid() == 0)
                .unwrap_or(false)
        };
        if as_root {
            settings.push_str("user root\n");
        }
        if !extra.contains("allow_anonymous") {
            settings.push_str("allow_anonymous true\n");
        }
        let conf = format!(
            "listener {port} 127.0.0.1\n{settings}persistence false\nset_tcp_nodelay true\n\
             max_inflight_messages 1000\nmax_queued_messages 100000\n{extra}\n"
        );
        std::fs::write(dir.path().join("mosquitto.conf"), conf)?;
        let mut broker = LocalMosquitto {
            child: None,
            port,
            dir,
        };
        broker.resume()?;
        Ok(broker)
    }

    /// `mqtt://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Kills the broker (clients see the connection drop).
    pub fn stop(&mut self) {
        let _ = self.unpause();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// What the broker logged so far (for test failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    /// Freezes the broker (SIGSTOP): connections stay open, nothing is read
    /// or answered, as with a broker stalled by a full disk or a debugger.
    pub fn pause(&self) -> io::Result<()> {
        self.signal("-STOP")
    }

    /// Lets a paused broker run again (SIGCONT).
    pub fn unpause(&self) -> io::Result<()> {
        self.signal("-CONT")
    }

    fn signal(&self, signal: &str) -> io::Result<()> {
        let child = self
            .child
            .as_ref()
            .ok_or_else(|| io::Error::other("the broker is not running"))?;
        let status = Command::new("kill")
            .arg(signal)
            .arg(child.id().to_string())
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!("kill {signal} failed: {status}")))
        }
    }

    /// Starts the broker again on the same port and waits until it accepts.
    pub fn resume(&mut self) -> io::Result<()> {
        let log_path = self.dir.path().join("mosquitto.log");
        let child = Command::new(binary())
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path)?)
            .spawn()
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "cannot start mosquitto ({e}); install it: apt-get install -y mosquitto"
                    ),
                )
            })?;
        self.child = Some(child);
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if started.elapsed() > Duration::from_secs(10) {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                self.stop();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("mosquitto did not listen on port {}: {log}", self.port),
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }
}

impl Drop for LocalMosquitto {
    fn drop(&mut self) {
        self.stop();
    }
}
