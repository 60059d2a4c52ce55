//! `audex-mailchimp-sim`: run the Mailchimp simulator as a process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use audex_mailchimp_sim::{
    FaultConfig, FaultKind, LatencyModel, RateWindow, SimConfig, Simulator, DEFAULT_API_KEY,
};
use clap::{Parser, ValueEnum};

/// The simulator builds a JSON tree per answer (hundreds of members a
/// call, a million contacts in a benchmark); glibc's malloc spent over half
/// of its CPU on them, which made the simulator, not its latency model, set
/// a benchmark's pace.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Latency {
    /// Answer at once.
    None,
    /// 0.4 s + 2 ms per member in the call (500 members ≈ 1.4 s), scaled.
    Realistic,
}

// No `Debug`: the arguments hold the API key.
/// A faithful Mailchimp Marketing API v3 simulator for tests and benchmarks (not Mailchimp).
#[derive(Parser)]
#[command(name = "audex-mailchimp-sim", version)]
struct Args {
    /// Port on --bind (0 = any free port).
    #[arg(long, default_value_t = 8081)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind: std::net::IpAddr,
    /// Shrink latencies, slow answers and the optional window by this factor.
    #[arg(long, default_value_t = 1.0)]
    time_scale: f64,
    /// Calls in flight at once for the account (429 beyond).
    #[arg(long, default_value_t = 10)]
    max_concurrency: usize,
    /// Optional rolling window: calls allowed per --rate-window-secs (off by default).
    #[arg(long)]
    rate_calls: Option<u32>,
    #[arg(long, default_value_t = 60)]
    rate_window_secs: u64,
    #[arg(long, value_enum, default_value_t = Latency::None)]
    latency: Latency,
    /// Probability of a fault per call (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    fault_rate: f64,
    #[arg(long, default_value_t = 0)]
    fault_seed: u64,
    /// Fault kinds, comma-separated (default: all): http_429, http_403,
    /// http_500, http_502, http_503, slow, close_before, close_after.
    #[arg(long, value_delimiter = ',')]
    fault_kinds: Vec<FaultKind>,
    /// How much later a `slow` fault answers, before scaling.
    #[arg(long, default_value_t = 130)]
    slow_answer_secs: u64,
    /// Email domains refused as fake, comma-separated (replaces the default list).
    #[arg(long, value_delimiter = ',')]
    fake_domains: Option<Vec<String>>,
    /// Write one JSON line per call to this file.
    #[arg(long)]
    request_log: Option<PathBuf>,
    /// The API key accepted (`<32 hex>-<dc>`).
    #[arg(long, env = "AUDEX_SIM_MAILCHIMP_KEY", default_value = DEFAULT_API_KEY, hide_env_values = true, hide_default_value = true)]
    api_key: String,
}

fn config(a: &Args) -> anyhow::Result<SimConfig> {
    if !(a.time_scale.is_finite() && a.time_scale > 0.0) {
        anyhow::bail!("--time-scale must be a positive number");
    }
    if !(0.0..=1.0).contains(&a.fault_rate) {
        anyhow::bail!("--fault-rate must be between 0 and 1");
    }
    let key_ok = a.api_key.split_once('-').is_some_and(|(hex, dc)| {
        hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()) && !dc.is_empty()
    });
    if !key_ok {
        anyhow::bail!("--api-key must look like <32 hex digits>-<dc>");
    }
    let defaults = SimConfig::default();
    Ok(SimConfig {
        api_key: a.api_key.clone(),
        time_scale: a.time_scale,
        max_concurrency: a.max_concurrency,
        rate_window: a.rate_calls.map(|calls| RateWindow {
            calls,
            window: Duration::from_secs(a.rate_window_secs),
        }),
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
        slow_answer: Duration::from_secs(a.slow_answer_secs),
        fake_domains: a
            .fake_domains
            .clone()
            .map(|d| {
                d.into_iter()
                    .map(|x| x.trim().to_ascii_lowercase())
                    .collect()
            })
            .unwrap_or(defaults.fake_domains.clone()),
        request_log: a.request_log.clone(),
        ..defaults
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
    tracing::info!(addr = %sim.addr(), "Mailchimp simulator listening (API under /3.0)");
    stop_signal().await;
    sim.shutdown().await;
    Ok(())
}
