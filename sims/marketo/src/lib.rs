//! A Marketo REST API simulator: a real HTTP server that behaves as Adobe
//! documents Marketo Engage's REST API (identity, envelopes, error codes,
//! limits, leads, static lists, bulk import), with seeded fault injection, a
//! latency model, a time scale, and a side channel under `/_sim/` for tests.
//! See `docs/connectors/marketo-sim.md`.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use audex_marketo_sim::{SimConfig, Simulator};
//! let sim = Simulator::start(SimConfig::default()).await?;
//! let endpoint = sim.base_url(); // http://127.0.0.1:PORT
//! # let _ = endpoint;
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

mod api;
mod bulk;
mod config;
mod envelope;
pub mod faults;
mod fields;
mod gate;
mod request;
mod server;
mod side;
mod store;

pub use config::{FaultConfig, FaultKind, LatencyModel, SimConfig, SimField, SimFolder, SimList};
pub use server::{Counters, SimHandle, SimLead, Simulator};
pub use store::AddStats;
