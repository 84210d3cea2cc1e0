//! GUI cost: time to build and tessellate one frame of the panel headless
//! (egui context, no GPU) with 100 and with 10,000 relays. Only visible
//! rows are laid out, so the ratio should stay small.
//!
//! `cargo bench --bench gui`

use std::time::{Duration, Instant, SystemTime};

use relay_panel::config::{Config, RelayConfig};
use relay_panel::engine::ConnectionState;
use relay_panel::protocol::RelayState;
use relay_panel::relay::{Acknowledgement, RelayStatus};
use relay_panel::ui::{Panel, PanelOptions, Prefs, Source};

fn config(n: usize) -> Config {
    let mut config = Config::new("mqtt://127.0.0.1:1883");
    for i in 0..n {
        let mut relay = RelayConfig::new(
            &format!("relay-{i}"),
            &format!("plant/device-{}/relay-{}", i / 8, i % 8),
        );
        relay.name = format!("Relay {i}");
        relay.group = format!("Cabinet {}", i / 50);
        relay.payload_query = Some("?".into());
        config.relays.push(relay);
    }
    config
}

fn panel(rt: &tokio::runtime::Runtime, n: usize) -> Panel {
    let mut panel = Panel::new(
        PanelOptions {
            source: Source::File("bench.toml".into()),
            config: None,
            data_dir: None,
            runtime: rt.handle().clone(),
            prefs: Prefs::default(),
            // Nothing here outlives the bench: nobody waits for the receiver.
            shutdown_complete: tokio::sync::mpsc::channel(1).0,
        },
        egui::Context::default(),
    );
    panel.model.set_config(config(n));
    panel.model.connection = ConnectionState::Connected;
    let now = SystemTime::now();
    for (i, status) in panel.model.statuses.iter_mut().enumerate() {
        *status = RelayStatus {
            last_acknowledged: Some(Acknowledgement {
                state: if i % 3 == 0 {
                    RelayState::On
                } else {
                    RelayState::Off
                },
                evidence: relay_panel::outcome::Evidence::Correlated,
                requested: now - Duration::from_secs(i as u64 % 600),
                at: now - Duration::from_secs(i as u64 % 600),
                rtt: Duration::from_micros(300 + i as u64 % 700),
                late: false,
                restored: false,
                operator: None,
            }),
            ..RelayStatus::default()
        };
    }
    panel
}

/// Mean time per frame (layout + tessellation) over `frames` frames.
fn frame_time(panel: &mut Panel, frames: usize) -> Duration {
    let ctx = egui::Context::default();
    let input = || egui::RawInput {
        screen_rect: Some(egui::Rect::from_min_size(
            egui::Pos2::ZERO,
            egui::vec2(1100.0, 700.0),
        )),
        ..Default::default()
    };
    for _ in 0..20 {
        let out = ctx.run_ui(input(), |ui| panel.show(ui));
        let _ = ctx.tessellate(out.shapes, out.pixels_per_point);
    }
    let started = Instant::now();
    for _ in 0..frames {
        let out = ctx.run_ui(input(), |ui| panel.show(ui));
        std::hint::black_box(ctx.tessellate(out.shapes, out.pixels_per_point));
    }
    started.elapsed() / frames as u32
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut small = panel(&rt, 100);
    let mut large = panel(&rt, 10_000);
    // Alternate to share the machine's noise.
    let (mut a, mut b) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..5 {
        a += frame_time(&mut small, 100);
        b += frame_time(&mut large, 100);
    }
    let (a, b) = (a / 5, b / 5);
    println!("| benchmark | Relay Panel | baseline (same run) | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| GUI frame (layout + tessellation), headless | 10,000 relays {:.3} ms | 100 relays {:.3} ms | {:.2}x (target <= 2x) |",
        b.as_secs_f64() * 1000.0,
        a.as_secs_f64() * 1000.0,
        b.as_secs_f64() / a.as_secs_f64()
    );
}
