//! TLS (rustls) with a CA file and user/password against a Mosquitto TLS
//! listener; certificates are made at test time with openssl.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Mosquitto, TestEngine, config, devices};
use relay_panel::config::Config;
use relay_panel::engine::ConnectionState;
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

fn tls_broker(dir: &Path) -> Mosquitto {
    make_certificates(dir);
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
        dir.join("server.pem").display(),
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
    assert_eq!(entry.outcome, "confirmed");
}

/// A certificate not signed by the configured CA: a clear TLS message, no retry loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_wrong_ca_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let broker = tls_broker(dir.path());
    let config = tls_config(&broker, dir.path(), "other-ca.pem", "s3cret");
    let mut engine = TestEngine::start(&config);
    let state = engine
        .wait_connection(Duration::from_secs(10), |s| {
            matches!(s, ConnectionState::Failed { .. })
        })
        .await;
    let ConnectionState::Failed { reason } = state else {
        unreachable!()
    };
    assert!(reason.contains("not signed by ca_file"), "{reason}");
}

/// A wrong password: the broker's refusal is named, and it is not retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let broker = tls_broker(dir.path());
    let config = tls_config(&broker, dir.path(), "ca.pem", "Zq9-not-the-password");
    let mut engine = TestEngine::start(&config);
    let state = engine
        .wait_connection(Duration::from_secs(10), |s| {
            matches!(s, ConnectionState::Failed { .. })
        })
        .await;
    let ConnectionState::Failed { reason } = state else {
        unreachable!()
    };
    assert!(reason.contains("user name or password"), "{reason}");
    assert!(
        !reason.contains("Zq9-not-the-password"),
        "the password never appears in messages: {reason}"
    );
}
