//! TLS (rustls) with a CA file and user/password against a Mosquitto TLS
//! listener; certificates are made at test time with openssl.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Mosquitto, TestEngine, config, devices};
use relay_panel::config::Config;
use relay_panel::outcome::Outcome;
use relay_panel::protocol::Action;
use relay_panel::sim::Faults;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1 signed by it, and a second,
/// unrelated CA.
fn make_certificates(dir: &Path) {
    for ca in ["ca", "other-ca"] {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN=Test {ca}"),
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.pem"),
            ],
        );
    }
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.pem",
        ],
    );
}

/// A server certificate for 127.0.0.1, signed by the test CA, that expired
/// in 2021 (`openssl ca` can back-date; `x509 -req` cannot).
fn make_expired_certificate(dir: &Path) {
    std::fs::write(
        dir.join("ca.cnf"),
        "[ca]\ndefault_ca = test\n[test]\ndir = .\ndatabase = index.txt\nnew_certs_dir = .\nserial = serial\n\
         default_md = sha256\npolicy = any\ncopy_extensions = copy\n[any]\ncommonName = supplied\n",
    )
    .unwrap();
    std::fs::write(dir.join("index.txt"), "").unwrap();
    std::fs::write(dir.join("serial"), "1000\n").unwrap();
    openssl(
        dir,
        &[
            "ca",
            "-batch",
            "-config",
            "ca.cnf",
            "-cert",
            "ca.pem",
            "-keyfile",
            "ca.key",
            "-in",
            "server.csr",
            "-out",
            "expired.pem",
            "-startdate",
            "20200101000000Z",
            "-enddate",
            "20210101000000Z",
            "-extfile",
            "san.ext",
        ],
    );
}

fn tls_broker(dir: &Path) -> Mosquitto {
    make_certificates(dir);
    tls_broker_with(dir, "server.pem")
}

fn tls_broker_with(dir: &Path, certificate: &str) -> Mosquitto {
    let passwords = dir.join("passwords");
    let out = Command::new("mosquitto_passwd")
        .args(["-b", "-c"])
        .arg(&passwords)
        .args(["panel", "s3cret"])
        .output()
        .expect("mosquitto_passwd");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Mosquitto::start_with(&format!(
        "allow_anonymous false\npassword_file {}\ncafile {}\ncertfile {}\nkeyfile {}\n",
        passwords.display(),
        dir.join("ca.pem").display(),
        dir.join(certificate).display(),
        dir.join("server.key").display(),
    ))
}

fn tls_config(broker: &Mosquitto, dir: &Path, ca: &str, password: &str) -> Config {
    let mut config = config(&format!("mqtts://127.0.0.1:{}", broker.port), 1);
    config.broker.ca_file = Some(dir.join(ca));
    config.broker.username = Some("panel".into());
    config.broker.password = Some(password.into());
    config
}

/// With the right CA and password the panel connects over TLS and a relay
/// is confirmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_ca_and_password_confirms() {
    let dir = tempfile::tempdir().unwrap();
    let broker = tls_broker(dir.path());
    let config = tls_config(&broker, dir.path(), "ca.pem", "s3cret");
    let (_devices, _) = devices(&config, Faults::default()).await;
    let mut engine = TestEngine::start(&config);
    engine.connected().await;
    let entry = engine.request(0, Action::On).await;
    assert_eq!(entry.outcome, Outcome::Confirmed);
}

/// A certificate not signed by the configured CA: a clear TLS message, no retry loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_wrong_ca_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let broker = tls_broker(dir.path());
    let config = tls_config(&broker, dir.path(), "other-ca.pem", "s3cret");
    let mut engine = TestEngine::start(&config);
    let reason = engine.failure(Duration::from_secs(10)).await;
    assert!(reason.contains("not signed by ca_file"), "{reason}");
}

/// An expired server certificate: said so, not a generic TLS error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_expired_certificate_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    make_certificates(dir.path());
    make_expired_certificate(dir.path());
    let broker = tls_broker_with(dir.path(), "expired.pem");
    let config = tls_config(&broker, dir.path(), "ca.pem", "s3cret");
    let mut engine = TestEngine::start(&config);
    let reason = engine.failure(Duration::from_secs(10)).await;
    assert!(reason.contains("has expired"), "{reason}");
}

/// A wrong password: the broker's refusal is named, and it is not retried.
/// The failed engine still serves its caller: a request is answered "not
/// sent" at once with the reason, and shutting down ends it (it used to
/// spin on a closed channel and never read another command).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let broker = tls_broker(dir.path());
    let config = tls_config(&broker, dir.path(), "ca.pem", "Zq9-not-the-password");
    let mut engine = TestEngine::start(&config);
    let reason = engine.failure(Duration::from_secs(10)).await;
    assert!(reason.contains("user name or password"), "{reason}");
    assert!(
        !reason.contains("Zq9-not-the-password"),
        "the password never appears in messages: {reason}"
    );
    engine.handle.request(0, Action::On);
    let entry = engine.finished(0, Duration::from_secs(1)).await;
    assert_eq!(entry.outcome, Outcome::NotSent);
    assert!(
        entry.detail.unwrap().contains("user name or password"),
        "the reason is given"
    );
    let rest = engine.stop().await;
    assert!(
        rest.iter().any(|e| matches!(
            e,
            relay_panel::engine::Event::Connection(relay_panel::engine::ConnectionState::Stopped)
        )),
        "shut down cleanly: {rest:?}"
    );
}

/// TLS handshakes cut off (a broker restarting behind its TLS port: TCP
/// accepted, then closed) are I/O errors, not certificate problems: the
/// engine retries, and connects once the broker is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_handshake_cut_off_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = tls_broker(dir.path());
    let config = tls_config(&broker, dir.path(), "ca.pem", "s3cret");
    let port = broker.port;
    broker.stop();
    let cutter = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    cutter.set_nonblocking(true).unwrap();
    let closer = std::thread::spawn(move || {
        let until = std::time::Instant::now() + Duration::from_secs(2);
        let mut cut = 0;
        while std::time::Instant::now() < until {
            match cutter.accept() {
                Ok((stream, _)) => {
                    drop(stream);
                    cut += 1;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        cut
    });
    let mut engine = TestEngine::start(&config);
    let cut = tokio::task::spawn_blocking(move || closer.join().unwrap())
        .await
        .unwrap();
    assert!(cut >= 2, "the engine kept trying: {cut}");
    broker.resume();
    let (_devices, _) = devices(&config, Faults::default()).await;
    engine
        .wait_connection(Duration::from_secs(15), |s| match s {
            relay_panel::engine::ConnectionState::Failed { reason } => {
                panic!("a cut-off handshake is retried: {reason}")
            }
            s => s.is_ready(),
        })
        .await;
    assert_eq!(
        engine.request(0, Action::On).await.outcome,
        Outcome::Confirmed
    );
}

/// ACL with least privilege: the panel may publish only to its relays'
/// request topics and subscribe only to its own response topic; devices the
/// converse. The panel works under it, and a request to a topic the ACL
/// denies ends at once with the broker's refusal, not a timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_least_privilege_works_and_denied_topic_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let passwords = dir.path().join("passwords");
    for (i, (user, password)) in [("panel", "panel-pw"), ("device", "device-pw")]
        .iter()
        .enumerate()
    {
        let mut cmd = Command::new("mosquitto_passwd");
        cmd.arg("-b");
        if i == 0 {
            cmd.arg("-c");
        }
        let out = cmd.arg(&passwords).args([user, password]).output().unwrap();
        assert!(out.status.success());
    }
    let mut config = config("mqtt://127.0.0.1:1", 2);
    let allowed = config.relays[0].request_topic.clone();
    let acl = dir.path().join("acl");
    std::fs::write(
        &acl,
        format!(
            "user panel\ntopic write {allowed}\npattern read relay-panel/%c/response\n\n\
             user device\ntopic read {}\ntopic read {allowed}\ntopic write relay-panel/+/response\n",
            config.relays[1].request_topic
        ),
    )
    .unwrap();
    let broker = Mosquitto::start_with(&format!(
        "allow_anonymous false\npassword_file {}\nacl_file {}\n",
        passwords.display(),
        acl.display()
    ));
    config.broker.url = broker.url();
    config.broker.request_timeout_ms = 2000;
    let mut device_config = config.clone();
    device_config.broker.username = Some("device".into());
    device_config.broker.password = Some("device-pw".into());
    let (_devices, _) = devices(&device_config, Faults::default()).await;
    // The panel's password comes from the environment, not the file.
    config.broker.username = Some("panel".into());
    config.broker.password_env = Some("RELAY_PANEL_TEST_ACL_PASSWORD".into());
    // SAFETY: set before the engine (the only reader) starts; tests in this
    // binary do not read this variable elsewhere.
    unsafe { std::env::set_var("RELAY_PANEL_TEST_ACL_PASSWORD", "panel-pw") };
    let mut engine = TestEngine::start(&config);
    engine.connected().await;
    let ok = engine.request(0, Action::On).await;
    assert_eq!(ok.outcome, Outcome::Confirmed);
    let started = std::time::Instant::now();
    let denied = engine.request(1, Action::On).await;
    assert_eq!(denied.outcome, Outcome::Refused, "{denied:?}");
    let detail = denied.detail.unwrap_or_default();
    assert!(
        detail.contains("NotAuthorized") && detail.contains("ACL"),
        "{detail}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "refused at once, not after the timeout"
    );
}

/// A missing password variable is named in a clear error, before connecting.
#[test]
fn missing_password_env_is_explained() {
    let mut config = config("mqtt://127.0.0.1:1", 1);
    config.broker.username = Some("panel".into());
    config.broker.password_env = Some("RELAY_PANEL_TEST_NOT_SET".into());
    let error = match relay_panel::engine::spawn(relay_panel::engine::EngineOptions::new(config)) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("must not start without its password"),
    };
    assert!(error.contains("RELAY_PANEL_TEST_NOT_SET"), "{error}");
}
