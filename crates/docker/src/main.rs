//! `hostnet-docker`: Docker's remote network driver for hostnet networks,
//! serving Docker's plugin protocol on a Unix socket and carrying each
//! call out through hostnetd's API. See docs/docker.md.

mod driver;
mod server;
mod state;
mod translate;

use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use hostnet_api::Client;

#[derive(Parser)]
#[command(about = "Docker's remote network driver protocol for hostnet networks")]
struct Args {
    /// The plugin socket Docker finds the driver by (`-d hostnet`).
    #[arg(long, default_value = "/run/docker/plugins/hostnet.sock")]
    socket: PathBuf,
    /// hostnetd's API socket.
    #[arg(long, env = "HOSTNET_SOCKET", default_value = hostnet_api::DEFAULT_SOCKET)]
    hostnetd: PathBuf,
    /// Where the Docker-to-hostnet network records live.
    #[arg(long, default_value = "/run/hostnet/docker")]
    state_dir: PathBuf,
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    if let Err(e) = run(args) {
        eprintln!("hostnet-docker: {e}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<(), String> {
    let listener = hostnet_api::bind_socket(&args.socket, "driver")?;
    let driver = Arc::new(driver::Driver::new(
        Client::new(&args.hostnetd),
        args.state_dir,
    ));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    log::info!(
        "serving Docker's network driver protocol on {}",
        args.socket.display()
    );
    let served = runtime.block_on(async {
        let listener =
            tokio::net::UnixListener::from_std(listener).map_err(|e| format!("socket: {e}"))?;
        axum::serve(listener, server::router(driver))
            .with_graceful_shutdown(shutdown())
            .await
            .map_err(|e| format!("serving: {e}"))
    });
    let _ = std::fs::remove_file(&args.socket);
    served
}

async fn shutdown() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("signal handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
