//! `relay-panel`: the desktop control panel.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use relay_panel::config::{Config, ConfigError};
use relay_panel::paths;
use relay_panel::ui::{Panel, PanelApp, PanelOptions, Prefs, Source, TITLE};

/// Switch relays over MQTT 5 and see each relay's state only once its
/// device has confirmed it.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Configuration file (default: $RELAY_PANEL_CONFIG, else config.toml in the platform config dir).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Directory of the store (default: $RELAY_PANEL_DATA_DIR, else the platform data dir).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Run the built-in demo: an embedded MQTT 5 broker and simulated relays.
    #[arg(long)]
    demo: bool,
}

fn main() -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,rumqttd=off,wgpu=error,naga=error".into()),
        )
        .init();
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("relay-panel-io")
        .build()?;
    let path = paths::config_path(args.config.clone());
    let mut startup_warnings = Vec::new();
    let (source, config) = if args.demo {
        (Source::Demo, None)
    } else {
        // A local file read; no network before the first frame.
        match Config::load(&path) {
            Ok(config) => {
                if let Some(warning) = config.permission_warning(&path) {
                    eprintln!("relay-panel: warning: {warning}");
                    startup_warnings.push(warning);
                }
                (Source::File(path), Some(config))
            }
            Err(ConfigError::Read { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                (Source::Missing(path), None)
            }
            Err(e) => {
                eprintln!("relay-panel: {e}");
                (Source::Broken(path, e.to_string()), None)
            }
        }
    };
    let data_dir = Some(paths::data_dir(args.data_dir.clone()));
    let icon = eframe::icon_data::from_png_bytes(include_bytes!("../assets/icon.png"))
        .context("app icon")?;
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title(TITLE)
            .with_app_id("relay-panel")
            .with_inner_size([1100.0, 700.0])
            .with_min_inner_size([640.0, 360.0])
            .with_icon(icon),
        ..Default::default()
    };
    let handle = runtime.handle().clone();
    let closing = std::sync::Arc::new(std::sync::Mutex::new(None));
    let closing_slot = closing.clone();
    eframe::run_native(
        "relay-panel",
        options,
        Box::new(move |cc| {
            let prefs: Prefs = cc
                .storage
                .and_then(|s| eframe::get_value(s, eframe::APP_KEY))
                .unwrap_or_default();
            let mut panel = Panel::new(PanelOptions {
                source,
                config,
                data_dir,
                runtime: handle,
                prefs,
            });
            panel.model.warnings.extend(startup_warnings);
            if let Ok(mut slot) = closing_slot.lock() {
                *slot = Some(panel.closing());
            }
            Ok(Box::new(PanelApp {
                panel,
                started: Some(started),
            }))
        }),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))?;
    // The window is closed and the panel dropped: its engine is
    // disconnecting and flushing the store. Give it a moment to finish.
    let pending = closing.lock().ok().and_then(|mut c| c.take());
    if let Some(pending) = pending {
        let tasks: Vec<_> = pending
            .lock()
            .map(|mut t| t.drain(..).collect())
            .unwrap_or_default();
        runtime.block_on(async {
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                for task in tasks {
                    let _ = task.await;
                }
            })
            .await;
        });
    }
    Ok(())
}
