//! `relay-panel`: the desktop control panel.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use relay_panel::config::{Config, ConfigError};
use relay_panel::paths;
use relay_panel::ui::{PanelApp, PanelOptions, Prefs, Source, TITLE};

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

/// How long the process waits at exit for engines to flush their stores
/// and for background jobs to finish writing.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

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
    // Every engine being stopped and every background job holds a clone of
    // this sender; once the window is closed, `recv` returns `None` when
    // they are all done (stores flushed, files written).
    let (shutdown_complete, mut all_done) = tokio::sync::mpsc::channel::<()>(1);
    let panel_options = PanelOptions {
        source,
        config,
        data_dir,
        runtime: runtime.handle().clone(),
        prefs: Prefs::default(),
        shutdown_complete: shutdown_complete.clone(),
    };
    let result = eframe::run_native(
        "relay-panel",
        options,
        Box::new(move |cc| {
            let mut app = PanelApp::new(cc, panel_options);
            app.panel.model.warnings.extend(startup_warnings);
            app.started = Some(started);
            Ok(Box::new(app))
        }),
    );
    // The window is closed and the app dropped: its engine is
    // disconnecting and flushing the store. Give it a moment to finish.
    drop(shutdown_complete);
    runtime.block_on(async {
        let _ = tokio::time::timeout(SHUTDOWN_WAIT, all_done.recv()).await;
    });
    result.map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))?;
    Ok(())
}
