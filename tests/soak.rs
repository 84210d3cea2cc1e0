//! Short versions of the chaos soak (`relay-soak` runs the long one), over
//! relays of every kind: every state a request ends with checked against
//! what the simulated devices did — a correlated one against the device's
//! record of that request, a reported one against its published reports.

use relay_panel::outcome::Outcome;
use relay_testkit::soak::{SoakKind, SoakOptions, SoakReport, run};

/// Each kind ended requests the ways its devices and the faults make
/// them: confirmed only where the device answers tied to the request,
/// reported only where it reports (a Tasmota with MQTT 5 does both: its
/// report ends a request whose tied answer was spoiled), a device error
/// from the relay that always fails (and garbage), no response, and late
/// answers only where an answer is tied to its request.
fn assert_each_kind_ended_as_it_should(report: &SoakReport) {
    use Outcome::*;
    for kind in SoakKind::ALL {
        let k = &report.kinds[&kind];
        let (expected, never): (&[Outcome], &[Outcome]) = match kind {
            SoakKind::Mqtt5 | SoakKind::Shelly => (
                &[Confirmed, NoResponse, DeviceError, LateConfirmed],
                &[Reported],
            ),
            SoakKind::TasmotaMqtt5 => (&[Confirmed, NoResponse, DeviceError, LateConfirmed], &[]),
            SoakKind::Tasmota | SoakKind::State => (
                &[Reported, NoResponse, DeviceError],
                &[Confirmed, LateConfirmed, LateDeviceError],
            ),
        };
        for &outcome in expected {
            assert!(
                k.count(outcome) > 0,
                "{kind}: no {outcome}\n{}",
                report.render()
            );
        }
        for &outcome in never {
            assert_eq!(
                k.count(outcome),
                0,
                "{kind}: {outcome}\n{}",
                report.render()
            );
        }
        assert_eq!(k.false_confirmations, 0, "{kind}\n{}", report.render());
    }
}

/// Drops, duplicates, garbage, wrong correlation and late answers, on
/// every kind: no false confirmation, nothing left pending past its
/// timeout, every path taken.
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
    assert_each_kind_ended_as_it_should(&report);
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
    assert!(report.reports_published > 0 && report.reports_garbage > 0);
}

/// Mosquitto killed and restarted 10 times during a soak over every kind:
/// the engine is back within 2 s of each return, requests cut off end as
/// connection lost (never confirmed), and requests go on being confirmed
/// and reported.
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
    assert_eq!(report.overdue, 0);
    assert_each_kind_ended_as_it_should(&report);
}
