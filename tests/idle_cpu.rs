//! CPU use of an engine that cannot do anything: failed for certain (a
//! wrong password), or waiting for a broker that is down. Alone in its test
//! binary, so the process's CPU time is the engine's.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Mosquitto, TestEngine, config};

/// CPU seconds (user + system) this process has used, from /proc.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name in parentheses: utime is the 14th
    // field of the line, stime the 15th.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

async fn cpu_over(window: Duration) -> f64 {
    let before = cpu_seconds();
    tokio::time::sleep(window).await;
    cpu_seconds() - before
}

/// A failed engine (wrong password) and a reconnecting one (broker down)
/// both sit idle: well under a tenth of a core, where the old failed
/// engine spun a whole core on a closed channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_that_cannot_work_uses_no_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let passwords = dir.path().join("passwords");
    let made = Command::new("mosquitto_passwd")
        .args(["-b", "-c"])
        .arg(&passwords)
        .args(["panel", "right"])
        .output()
        .expect("mosquitto_passwd");
    assert!(made.status.success());
    let mut broker = Mosquitto::start_with(&format!(
        "allow_anonymous false\npassword_file {}\n",
        passwords.display()
    ));
    let mut config = config(&broker.url(), 1);
    config.broker.username = Some("panel".into());
    config.broker.password = Some("wrong".into());
    let mut failed = TestEngine::start(&config);
    failed.failure(Duration::from_secs(10)).await;
    let window = Duration::from_secs(2);
    let used = cpu_over(window).await;
    assert!(
        used < 0.2,
        "a failed engine used {used:.2} s of CPU in {window:?}"
    );

    broker.stop();
    config.broker.password = Some("right".into());
    let mut waiting = TestEngine::start(&config);
    waiting
        .wait_connection(Duration::from_secs(5), |s| {
            matches!(s, relay_panel::engine::ConnectionState::Reconnecting { .. })
        })
        .await;
    let used = cpu_over(window).await;
    assert!(
        used < 0.2,
        "an engine waiting for a broker used {used:.2} s of CPU in {window:?}"
    );
}
