//! Simulator configuration. Defaults are real Marketo's documented limits
//! (docs/connectors/marketo-sim.md) at time scale 1.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Everything a simulator instance can be told at start.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The one LaunchPoint service the simulator accepts.
    pub client_id: String,
    pub client_secret: String,
    /// Reported as `scope` by Identity (the API-only user owning the service).
    pub scope: String,
    /// Token lifetime at scale 1 (Marketo: 3600 s).
    pub token_ttl: Duration,
    /// 1.0 = real time. 20.0 makes windows, TTLs, latencies and import times
    /// 20 times shorter, so benchmarks finish while keeping the same shape.
    pub time_scale: f64,
    /// Calls allowed per rolling window (606 beyond).
    pub rate_calls: u32,
    pub rate_window: Duration,
    /// Calls in flight at once (615 beyond).
    pub max_concurrency: usize,
    /// Calls per day (607 beyond). Resets at midnight CST (UTC-6), on a day
    /// shortened by the time scale.
    pub daily_quota: u64,
    /// Records (or lead ids) per Lead Database call.
    pub max_batch: usize,
    /// Matches a filtered lead read may hit before 1003 "Too many results".
    pub max_filter_matches: usize,
    /// REST body limit (HTTP 413 beyond).
    pub max_body_bytes: usize,
    /// Request line limit, path plus query (HTTP 414 beyond).
    pub max_url_bytes: usize,
    /// Bulk import body limit (HTTP 413 beyond).
    pub bulk_max_body_bytes: usize,
    /// Bulk imports processing at once.
    pub bulk_max_processing: usize,
    /// Bulk imports queued, the processing ones included (1016 beyond).
    pub bulk_max_queued: usize,
    /// Time an import takes: fixed part plus a cost per row (scaled).
    pub bulk_job_base: Duration,
    pub bulk_row_cost: Duration,
    pub latency: LatencyModel,
    pub faults: FaultConfig,
    /// How much later a `Slow` fault answers (scaled).
    pub slow_answer: Duration,
    pub lists: Vec<SimList>,
    pub custom_fields: Vec<SimField>,
    pub folders: Vec<SimFolder>,
    /// One JSON line per call: time, method, path, status, code, records, duration.
    pub request_log: Option<PathBuf>,
    /// Accept the deprecated `access_token` query parameter. Off by default:
    /// Adobe removed it on 2026-08-31 (facts §1), so a client relying on it
    /// must fail here before it fails against Marketo.
    pub accept_query_token: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            client_id: "sim-client-id".to_string(),
            client_secret: "sim-client-secret".to_string(),
            scope: "apis@audex-sim.invalid".to_string(),
            token_ttl: Duration::from_secs(3600),
            time_scale: 1.0,
            rate_calls: 100,
            rate_window: Duration::from_secs(20),
            max_concurrency: 10,
            daily_quota: 50_000,
            max_batch: 300,
            max_filter_matches: 1000,
            max_body_bytes: 1024 * 1024,
            max_url_bytes: 8 * 1024,
            bulk_max_body_bytes: 10 * 1024 * 1024,
            bulk_max_processing: 2,
            bulk_max_queued: 10,
            bulk_job_base: Duration::from_secs(5),
            bulk_row_cost: Duration::from_micros(500),
            latency: LatencyModel::default(),
            faults: FaultConfig::default(),
            slow_answer: Duration::from_secs(30),
            lists: vec![
                SimList::new(1001, "Quickstart", true),
                SimList::new(1002, "Static list 1002", true),
                SimList::new(1003, "Static list 1003", true),
                SimList::new(2001, "Smart list 2001", false),
            ],
            custom_fields: Vec::new(),
            folders: vec![SimFolder {
                id: 12,
                name: "Group Lists".to_string(),
            }],
            request_log: None,
            accept_query_token: false,
        }
    }
}

impl SimConfig {
    /// A real duration shrunk by the time scale.
    pub fn scaled(&self, d: Duration) -> Duration {
        if self.time_scale > 0.0 && self.time_scale.is_finite() {
            Duration::from_secs_f64(d.as_secs_f64() / self.time_scale)
        } else {
            d
        }
    }
}

/// How long the simulator takes to answer an admitted call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyModel {
    pub base: Duration,
    pub per_record: Duration,
}

impl LatencyModel {
    /// No latency at all (the default, for fast tests).
    pub fn none() -> Self {
        LatencyModel::default()
    }

    /// About what real Marketo shows: a 300-record upsert takes about a
    /// second (0.2 s + 300 × 2.7 ms ≈ 1.01 s) at scale 1.
    pub fn realistic() -> Self {
        LatencyModel {
            base: Duration::from_millis(200),
            per_record: Duration::from_micros(2700),
        }
    }

    pub fn for_records(&self, records: u64) -> Duration {
        let per = self
            .per_record
            .saturating_mul(u32::try_from(records).unwrap_or(u32::MAX));
        self.base.saturating_add(per)
    }
}

/// Seeded fault injection: call number `n` (counted from 0 over all Marketo
/// calls, Identity excluded) gets a fault with probability `rate`, its kind
/// picked from `kinds`; both draws depend only on `seed` and `n`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultConfig {
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub rate: f64,
    #[serde(default)]
    pub kinds: Vec<FaultKind>,
}

impl FaultConfig {
    /// No faults.
    pub fn none() -> Self {
        FaultConfig::default()
    }

    /// Every kind of fault at `rate`.
    pub fn all(seed: u64, rate: f64) -> Self {
        FaultConfig {
            seed,
            rate,
            kinds: FaultKind::ALL.to_vec(),
        }
    }
}

/// What can go wrong with one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FaultKind {
    /// HTTP 502 after the operation ran (a gateway timeout: the work may be done).
    #[serde(rename = "http_502")]
    Http502,
    /// HTTP 503, nothing executed.
    #[serde(rename = "http_503")]
    Http503,
    /// Response-level 604 "Request timed out", nothing executed, not counted.
    #[serde(rename = "code_604")]
    Code604,
    /// Response-level 608 "API Temporarily Unavailable", nothing executed, not counted.
    #[serde(rename = "code_608")]
    Code608,
    /// Response-level 611 "System error", nothing executed, not counted.
    #[serde(rename = "code_611")]
    Code611,
    /// Response-level 713 "Transient Error", nothing executed.
    #[serde(rename = "code_713")]
    Code713,
    /// The answer comes `slow_answer` (scaled) later than usual.
    #[serde(rename = "slow")]
    Slow,
    /// The operation runs, then the connection closes without a reply.
    #[serde(rename = "close_connection")]
    CloseConnection,
    /// The presented token expires now: answer 602.
    #[serde(rename = "token_expiry")]
    TokenExpiry,
}

impl FaultKind {
    pub const ALL: [FaultKind; 9] = [
        FaultKind::Http502,
        FaultKind::Http503,
        FaultKind::Code604,
        FaultKind::Code608,
        FaultKind::Code611,
        FaultKind::Code713,
        FaultKind::Slow,
        FaultKind::CloseConnection,
        FaultKind::TokenExpiry,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Http502 => "http_502",
            FaultKind::Http503 => "http_503",
            FaultKind::Code604 => "code_604",
            FaultKind::Code608 => "code_608",
            FaultKind::Code611 => "code_611",
            FaultKind::Code713 => "code_713",
            FaultKind::Slow => "slow",
            FaultKind::CloseConnection => "close_connection",
            FaultKind::TokenExpiry => "token_expiry",
        }
    }
}

impl FromStr for FaultKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase();
        FaultKind::ALL
            .iter()
            .copied()
            .find(|k| k.name() == wanted)
            .ok_or_else(|| {
                let known: Vec<&str> = FaultKind::ALL.iter().map(|k| k.name()).collect();
                format!("unknown fault kind '{s}'; known: {}", known.join(", "))
            })
    }
}

/// A list present at start. `static_list: false` makes it a smart list,
/// which membership calls refuse.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimList {
    pub id: u64,
    pub name: String,
    pub static_list: bool,
}

impl SimList {
    pub fn new(id: u64, name: &str, static_list: bool) -> Self {
        SimList {
            id,
            name: name.to_string(),
            static_list,
        }
    }
}

/// A custom lead field added to describe. `data_type` is one of Marketo's
/// types: string, text, email, integer, float, boolean, date, datetime,
/// currency, percent, score, phone, url, reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimField {
    pub name: String,
    pub display_name: String,
    pub data_type: String,
    pub length: Option<u32>,
}

impl SimField {
    pub fn new(name: &str, data_type: &str) -> Self {
        let length = match data_type {
            "string" | "email" | "phone" | "url" => Some(255),
            "text" => Some(30_000),
            _ => None,
        };
        SimField {
            name: name.to_string(),
            display_name: name.to_string(),
            data_type: data_type.to_string(),
            length,
        }
    }
}

/// An asset folder static lists can be created in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimFolder {
    pub id: u64,
    pub name: String,
}
