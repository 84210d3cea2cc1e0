//! Short versions of the chaos soak (`relay-soak` runs the long one):
//! every confirmation checked against what the simulated devices did.

use relay_panel::outcome::Outcome;
use relay_testkit::soak::{SoakOptions, run};

/// Drops, duplicates, garbage, wrong correlation and late answers: no false
/// confirmation, nothing left pending past its timeout, every path taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_soak_has_no_false_confirmations() {
    let report = run(SoakOptions::new(20, 2000, 0, Some(7)), |_| {})
        .await
        .unwrap();
    print!("{}", report.render());
    assert!(report.passed(), "{}", report.render());
    assert_eq!(report.false_confirmations, 0);
    assert_eq!(report.overdue, 0);
    assert_eq!(report.requests, 2000);
    for outcome in [
        Outcome::Confirmed,
        Outcome::NoResponse,
        Outcome::DeviceError,
    ] {
        assert!(
            report.outcomes.get(&outcome).copied().unwrap_or(0) > 0,
            "no {outcome}: {}",
            report.render()
        );
    }
    assert!(
        report
            .late
            .get(&Outcome::LateConfirmed)
            .copied()
            .unwrap_or(0)
            > 0
    );
    for fault in [
        "dropped",
        "answered twice",
        "answered garbage",
        "wrong correlation",
    ] {
        assert!(
            report.device.get(fault).copied().unwrap_or(0) > 0,
            "no {fault}: {}",
            report.render()
        );
    }
}

/// Mosquitto killed and restarted 10 times during a soak: the engine is
/// back within 2 s of each return, requests cut off end as connection lost
/// (never confirmed), and requests go on being confirmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_survives_ten_broker_outages() {
    let report = run(SoakOptions::new(30, 3000, 10, Some(11)), |_| {})
        .await
        .unwrap();
    print!("{}", report.render());
    assert!(report.passed(), "{}", report.render());
    assert_eq!(report.reconnects.len(), 10);
    assert!(
        report.reconnects.iter().all(|d| d.as_secs_f64() <= 2.0),
        "{:?}",
        report.reconnects
    );
    assert!(
        report
            .outcomes
            .get(&Outcome::ConnectionLost)
            .copied()
            .unwrap_or(0)
            > 0,
        "{}",
        report.render()
    );
    assert_eq!(report.false_confirmations, 0);
}
