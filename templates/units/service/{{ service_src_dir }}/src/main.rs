//! Service entry point: `serve` (default) runs the HTTP server; `migrate` runs schema migrations
//! (the chart's optional pre-upgrade hook Job calls it with the same image and configuration).

mod app;
mod config;
mod telemetry;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;

use crate::app::AppState;
use crate::config::Config;

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            // Telemetry is not up yet: a plain line on stderr is what the pod log shows.
            eprintln!("configuration error: {err}");
            return ExitCode::from(2);
        }
    };
    let command = std::env::args().nth(1);
    if !matches!(command.as_deref(), None | Some("serve" | "migrate")) {
        eprintln!("usage: {} [serve|migrate]", env!("CARGO_PKG_NAME"));
        return ExitCode::from(2);
    }
    let telemetry = match telemetry::init(&config) {
        Ok(telemetry) => telemetry,
        Err(err) => {
            eprintln!("telemetry setup failed: {err:#}");
            return ExitCode::FAILURE;
        }
    };

    let result = match command.as_deref() {
        Some("migrate") => migrate(&config),
        _ => serve(config).await,
    };
    if let Err(err) = &result {
        tracing::error!(error = %format!("{err:#}"), "stopped with an error");
    }

    // Flush buffered spans and metrics; blocking, so off the async worker threads.
    if let Err(err) = tokio::task::spawn_blocking(move || telemetry.shutdown()).await {
        eprintln!("telemetry shutdown failed: {err}");
    }
    if result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let rollout = telemetry::rollout_span(&config);
    rollout.in_scope(|| tracing::info!("rollout.started"));

    let state = AppState::new(
        &config.service_name,
        &config.service_version,
        &config.environment,
    );
    let shutdown = shutdown_signal(state.clone(), config.shutdown_delay)?;
    let address = SocketAddr::new(config.listen_address, config.port);
    let listener = match tokio::net::TcpListener::bind(address).await {
        Ok(listener) => listener,
        Err(err) => {
            rollout.in_scope(|| tracing::error!(error = %err, "rollout.failed"));
            return Err(err).with_context(|| format!("cannot listen on {address}"));
        }
    };
    state.set_ready(true);
    rollout.in_scope(|| tracing::info!(address = %address, "rollout.completed"));
    drop(rollout);

    axum::serve(listener, app::router(state.clone()))
        .with_graceful_shutdown(shutdown)
        .await
        .context("HTTP server failed")?;
    tracing::info!("HTTP server stopped");
    Ok(())
}

/// Schema migrations run by the chart's pre-install/pre-upgrade hook. This service has no schema yet.
fn migrate(config: &Config) -> anyhow::Result<()> {
    let span = tracing::info_span!("migrate", deployment.version = %config.service_version);
    let _entered = span.enter();
    tracing::info!("no migrations to apply");
    Ok(())
}

/// Registers the SIGTERM (Kubernetes) and Ctrl-C handlers now, so a signal arriving at any moment after start
/// drains instead of killing the process. The returned future resolves on either signal once readiness is off
/// and `delay` has passed; the server then stops accepting and finishes the requests in flight.
fn shutdown_signal(
    state: AppState,
    delay: Duration,
) -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    #[cfg(unix)]
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("cannot listen for SIGINT")?;
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = terminate.recv() => {},
            _ = interrupt.recv() => {},
        }
        #[cfg(not(unix))]
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
        state.set_ready(false);
        tracing::info!(
            delay_seconds = delay.as_secs(),
            "shutdown requested; readiness off, draining"
        );
        // Endpoints controllers need a moment to drop this pod before the listener closes.
        tokio::time::sleep(delay).await;
    })
}
