//! `halosync sim`: the Graph + Halo simulator as a standalone server, for
//! trying halosync without a Microsoft tenant or a Halo instance.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::exit;
use crate::sim::server::RunningSimulator;

#[derive(Debug, Args)]
pub struct SimArgs {
    /// Address to serve on.
    #[arg(long, default_value = "127.0.0.1:8900", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// A JSON file in the shape of `POST /_sim/seed` to load at start.
    #[arg(long, value_name = "FILE")]
    pub seed: Option<PathBuf>,
}

pub fn run(args: &SimArgs) -> ExitCode {
    super::block_on(serve(args))
}

async fn serve(args: &SimArgs) -> ExitCode {
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("halosync: cannot listen on {}: {e}", args.listen);
            return ExitCode::from(exit::FAILURE);
        }
    };
    let running = match RunningSimulator::start(listener) {
        Ok(running) => running,
        Err(e) => {
            eprintln!("halosync: cannot start the simulator: {e}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    let simulator = &running.simulator;
    if let Some(path) = &args.seed {
        let seeded = std::fs::read(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))
            .and_then(|body| simulator.seed_json(&body));
        if let Err(message) = seeded {
            eprintln!("halosync: seed {}: {message}", path.display());
            return ExitCode::from(exit::CONFIG);
        }
    }
    println!("simulator listening on {}", simulator.base_url());
    println!("  identity platform  {}", simulator.login_url());
    println!("  Microsoft Graph    {}", simulator.graph_url());
    println!("  HaloITSM           {}", simulator.halo_url());
    println!(
        "  control API        {}_sim/ (see docs/simulator.md)",
        simulator.base_url()
    );
    println!(
        "\nconfig for halosync (export HALOSYNC_SIM_SECRET=anything):\n\n{}",
        simulator.config_snippet()
    );
    wait_for_stop_signal().await;
    match running.stop().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("halosync: simulator stopped with an error: {e}");
            ExitCode::from(exit::FAILURE)
        }
    }
}

/// Ctrl-C in a terminal, SIGTERM from systemd or `kill`.
async fn wait_for_stop_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
