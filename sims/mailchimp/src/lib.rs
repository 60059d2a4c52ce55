//! A Mailchimp Marketing API v3 simulator: a real HTTP server that behaves
//! as Mailchimp documents its API (auth, problem+json errors, members,
//! batch subscribe, merge fields, static segments = tags, the 10-calls-in-
//! flight limit), with seeded fault injection, a latency model, a time
//! scale, and a side channel under `/_sim/` for tests.
//! See `docs/connectors/mailchimp-sim.md`.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use audex_mailchimp_sim::{ContactStatus, SimConfig, Simulator, DEFAULT_AUDIENCE_ID};
//! let sim = Simulator::start(SimConfig::default()).await?;
//! let api = sim.api_root(); // http://127.0.0.1:PORT/3.0
//! sim.seed_contact(DEFAULT_AUDIENCE_ID, "gone@example.com", ContactStatus::Unsubscribed)
//!     .map_err(anyhow::Error::msg)?;
//! # let _ = api;
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

mod api;
mod batch;
mod config;
mod counters;
pub mod email;
pub mod faults;
mod handle;
mod limits;
mod members;
mod merge;
mod render;
mod reply;
mod request;
mod seed;
mod segments;
mod server;
mod side;
mod store;

pub use config::{
    FaultConfig, FaultKind, LatencyModel, MergeType, RateWindow, SimAudience, SimConfig,
    SimMergeField, DEFAULT_API_KEY, DEFAULT_AUDIENCE_ID,
};
pub use counters::Counters;
pub use seed::SimContact;
pub use server::{SimHandle, Simulator};
pub use store::Status as ContactStatus;
