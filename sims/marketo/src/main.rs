//! `audex-marketo-sim`: run the Marketo simulator as a process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use audex_marketo_sim::{FaultConfig, FaultKind, LatencyModel, SimConfig, Simulator};
use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Latency {
    /// Answer at once.
    None,
    /// About 0.2 s + 2.7 ms per record (a 300-record upsert ≈ 1 s), scaled.
    Realistic,
}

/// A faithful Marketo REST API simulator for tests and benchmarks (not Marketo).
#[derive(Debug, Parser)]
#[command(name = "audex-marketo-sim", version)]
struct Args {
    /// Port on 127.0.0.1 (0 = any free port).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Address to bind instead of 127.0.0.1.
    #[arg(long, default_value = "127.0.0.1")]
    bind: std::net::IpAddr,
    /// Shrink windows, TTLs, latencies and import times by this factor.
    #[arg(long, default_value_t = 1.0)]
    time_scale: f64,
    #[arg(long, default_value_t = 100)]
    rate_calls: u32,
    #[arg(long, default_value_t = 20)]
    rate_window_secs: u64,
    #[arg(long, default_value_t = 10)]
    max_concurrency: usize,
    #[arg(long, default_value_t = 50_000)]
    daily_quota: u64,
    #[arg(long, value_enum, default_value_t = Latency::None)]
    latency: Latency,
    /// Probability of a fault per call (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    fault_rate: f64,
    #[arg(long, default_value_t = 0)]
    fault_seed: u64,
    /// Fault kinds, comma-separated (default: all): http_502, http_503,
    /// code_604, code_608, code_611, code_713, slow, close_connection, token_expiry.
    #[arg(long, value_delimiter = ',')]
    fault_kinds: Vec<FaultKind>,
    /// Write one JSON line per call to this file.
    #[arg(long)]
    request_log: Option<PathBuf>,
    #[arg(long, default_value_t = 3600)]
    token_ttl_secs: u64,
    #[arg(long, default_value = "sim-client-id")]
    client_id: String,
    #[arg(
        long,
        env = "AUDEX_SIM_CLIENT_SECRET",
        default_value = "sim-client-secret",
        hide_env_values = true
    )]
    client_secret: String,
    /// Accept the deprecated `access_token` query parameter (removed by Adobe on 2026-08-31).
    #[arg(long)]
    accept_query_token: bool,
}

fn config(a: &Args) -> anyhow::Result<SimConfig> {
    if !(a.time_scale.is_finite() && a.time_scale > 0.0) {
        anyhow::bail!("--time-scale must be a positive number");
    }
    if !(0.0..=1.0).contains(&a.fault_rate) {
        anyhow::bail!("--fault-rate must be between 0 and 1");
    }
    Ok(SimConfig {
        client_id: a.client_id.clone(),
        client_secret: a.client_secret.clone(),
        token_ttl: Duration::from_secs(a.token_ttl_secs),
        time_scale: a.time_scale,
        rate_calls: a.rate_calls,
        rate_window: Duration::from_secs(a.rate_window_secs),
        max_concurrency: a.max_concurrency,
        daily_quota: a.daily_quota,
        latency: match a.latency {
            Latency::None => LatencyModel::none(),
            Latency::Realistic => LatencyModel::realistic(),
        },
        faults: FaultConfig {
            seed: a.fault_seed,
            rate: a.fault_rate,
            kinds: if a.fault_kinds.is_empty() {
                FaultKind::ALL.to_vec()
            } else {
                a.fault_kinds.clone()
            },
        },
        request_log: a.request_log.clone(),
        accept_query_token: a.accept_query_token,
        ..SimConfig::default()
    })
}

async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let cfg = config(&args)?;
    let sim = Simulator::start_on(cfg, SocketAddr::new(args.bind, args.port))
        .await
        .context("starting the simulator")?;
    println!("{}", sim.base_url());
    stop_signal().await;
    sim.shutdown().await;
    Ok(())
}
