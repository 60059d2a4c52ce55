//! Simulator configuration. `Default` is real Mailchimp's documented limits
//! (docs/connectors/mailchimp-sim.md) at time scale 1.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The API key the simulator accepts by default (`<32 hex>-<dc>`).
pub const DEFAULT_API_KEY: &str = "0123456789abcdef0123456789abcdef-us6";

/// The audience present at start by default.
pub const DEFAULT_AUDIENCE_ID: &str = "a1b2c3d4e5";

/// Everything a simulator instance can be told at start.
#[derive(Clone)]
pub struct SimConfig {
    /// The one API key accepted (Basic password or Bearer token). A secret:
    /// `Debug` and the request log never show it.
    pub api_key: String,
    /// 1.0 = real time. 20.0 makes latencies, slow answers and the optional
    /// rate window 20 times shorter.
    pub time_scale: f64,
    /// Calls in flight at once for the account (429 beyond). Mailchimp: 10.
    pub max_concurrency: usize,
    /// An optional rolling window: at most `calls` admitted per `window`
    /// (429 beyond). Off by default: Mailchimp documents none.
    pub rate_window: Option<RateWindow>,
    /// Members per batch subscribe call and per side of a segment batch (500).
    pub max_batch: usize,
    /// Largest `count` of a collection read (1000).
    pub max_count: usize,
    /// Body limit in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// Email domains refused as "looks fake or invalid" (lowercase). Real
    /// Mailchimp also refuses example.com; it is left out of the default so
    /// generated test data passes (see the docs page).
    pub fake_domains: Vec<String>,
    pub latency: LatencyModel,
    pub faults: FaultConfig,
    /// How much later a `slow` fault answers (scaled): past the official
    /// client's 120 s timeout.
    pub slow_answer: Duration,
    pub audiences: Vec<SimAudience>,
    /// One JSON line per call: time, method, path, status, title, records, duration.
    pub request_log: Option<PathBuf>,
}

impl fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimConfig")
            .field("api_key", &"<redacted>")
            .field("time_scale", &self.time_scale)
            .field("max_concurrency", &self.max_concurrency)
            .field("rate_window", &self.rate_window)
            .field("max_batch", &self.max_batch)
            .field("max_count", &self.max_count)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("fake_domains", &self.fake_domains)
            .field("latency", &self.latency)
            .field("faults", &self.faults)
            .field("slow_answer", &self.slow_answer)
            .field("audiences", &self.audiences)
            .field("request_log", &self.request_log)
            .finish()
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            api_key: DEFAULT_API_KEY.to_string(),
            time_scale: 1.0,
            max_concurrency: 10,
            rate_window: None,
            max_batch: 500,
            max_count: 1000,
            max_body_bytes: 10 * 1024 * 1024,
            fake_domains: [
                "gmil.com",
                "gmial.com",
                "gamil.com",
                "hotmial.com",
                "yaho.com",
            ]
            .iter()
            .map(|d| (*d).to_string())
            .collect(),
            latency: LatencyModel::none(),
            faults: FaultConfig::none(),
            slow_answer: Duration::from_secs(130),
            audiences: vec![SimAudience::new(DEFAULT_AUDIENCE_ID, "audex sim audience")],
            request_log: None,
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

    /// The data center: the key's suffix after its last `-` (`us6`).
    pub fn data_center(&self) -> &str {
        self.api_key.rsplit_once('-').map_or("us1", |(_, dc)| dc)
    }
}

/// At most `calls` admitted calls per rolling `window` (scaled).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RateWindow {
    pub calls: u32,
    pub window: Duration,
}

/// How long the simulator takes to answer an admitted call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyModel {
    pub base: Duration,
    pub per_member: Duration,
}

impl LatencyModel {
    /// No latency at all (the default, for fast tests).
    pub fn none() -> Self {
        LatencyModel::default()
    }

    /// About what real Mailchimp shows: 0.4 s + 2 ms per member in the call
    /// (a 500-member batch ≈ 1.4 s) at scale 1.
    pub fn realistic() -> Self {
        LatencyModel {
            base: Duration::from_millis(400),
            per_member: Duration::from_millis(2),
        }
    }

    /// The delay for a call carrying `members` members (unscaled).
    pub fn for_members(&self, members: u64) -> Duration {
        let per = self
            .per_member
            .saturating_mul(u32::try_from(members).unwrap_or(u32::MAX));
        self.base.saturating_add(per)
    }
}

/// Seeded fault injection: call number `n` (counted from 0 over all
/// authenticated `/3.0` calls) gets a fault with probability `rate`, its kind
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

    /// One kind on every call (tests).
    pub fn always(kind: FaultKind) -> Self {
        FaultConfig {
            seed: 0,
            rate: 1.0,
            kinds: vec![kind],
        }
    }
}

/// What can go wrong with one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// HTTP 429 with no body (Mailchimp under high volume), nothing applied.
    #[serde(rename = "http_429")]
    Http429,
    /// HTTP 403 with no body, nothing applied.
    #[serde(rename = "http_403")]
    Http403,
    /// HTTP 500 problem+json, nothing applied.
    #[serde(rename = "http_500")]
    Http500,
    /// The call runs, then HTTP 502 with an HTML body (a CDN timeout).
    #[serde(rename = "http_502")]
    Http502,
    /// HTTP 503 problem+json, nothing applied.
    #[serde(rename = "http_503")]
    Http503,
    /// The call runs, then answers `slow_answer` (scaled) later.
    Slow,
    /// The connection closes without an answer before anything is applied.
    CloseBefore,
    /// The call runs, then the connection closes without an answer.
    CloseAfter,
}

impl FaultKind {
    /// Every kind, in CLI order.
    pub const ALL: [FaultKind; 8] = [
        FaultKind::Http429,
        FaultKind::Http403,
        FaultKind::Http500,
        FaultKind::Http502,
        FaultKind::Http503,
        FaultKind::Slow,
        FaultKind::CloseBefore,
        FaultKind::CloseAfter,
    ];

    /// The name used by the CLI, the side channel and the counters.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Http429 => "http_429",
            FaultKind::Http403 => "http_403",
            FaultKind::Http500 => "http_500",
            FaultKind::Http502 => "http_502",
            FaultKind::Http503 => "http_503",
            FaultKind::Slow => "slow",
            FaultKind::CloseBefore => "close_before",
            FaultKind::CloseAfter => "close_after",
        }
    }

    /// Whether the operation is applied before the fault shows.
    pub fn applies(self) -> bool {
        matches!(
            self,
            FaultKind::Http502 | FaultKind::Slow | FaultKind::CloseAfter
        )
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

/// A merge field's type (Mailchimp's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MergeType {
    Text,
    Number,
    Address,
    Phone,
    Date,
    Url,
    Imageurl,
    Radio,
    Dropdown,
    Birthday,
    Zip,
}

impl MergeType {
    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            MergeType::Text => "text",
            MergeType::Number => "number",
            MergeType::Address => "address",
            MergeType::Phone => "phone",
            MergeType::Date => "date",
            MergeType::Url => "url",
            MergeType::Imageurl => "imageurl",
            MergeType::Radio => "radio",
            MergeType::Dropdown => "dropdown",
            MergeType::Birthday => "birthday",
            MergeType::Zip => "zip",
        }
    }
}

/// A merge field of an audience.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimMergeField {
    pub tag: String,
    pub name: String,
    #[serde(rename = "type")]
    pub field_type: MergeType,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub default_value: String,
    #[serde(default = "yes")]
    pub public: bool,
    /// The allowed values of a radio or dropdown field.
    #[serde(default)]
    pub choices: Vec<String>,
}

fn yes() -> bool {
    true
}

impl SimMergeField {
    /// An optional, public field.
    pub fn new(tag: &str, name: &str, field_type: MergeType) -> Self {
        SimMergeField {
            tag: tag.to_string(),
            name: name.to_string(),
            field_type,
            required: false,
            default_value: String::new(),
            public: true,
            choices: Vec::new(),
        }
    }

    /// The same field, required.
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }

    /// The same field with these radio/dropdown choices.
    pub fn with_choices(mut self, choices: &[&str]) -> Self {
        self.choices = choices.iter().map(|c| (*c).to_string()).collect();
        self
    }

    /// Mailchimp's defaults for a new audience: FNAME, LNAME (text), ADDRESS
    /// (address), PHONE (phone).
    pub fn defaults() -> Vec<SimMergeField> {
        vec![
            SimMergeField::new("FNAME", "First Name", MergeType::Text),
            SimMergeField::new("LNAME", "Last Name", MergeType::Text),
            SimMergeField::new("ADDRESS", "Address", MergeType::Address),
            SimMergeField::new("PHONE", "Phone Number", MergeType::Phone),
        ]
    }
}

/// An audience (list) present at start or created through the side channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimAudience {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub double_optin: bool,
    #[serde(default = "SimMergeField::defaults")]
    pub merge_fields: Vec<SimMergeField>,
}

impl SimAudience {
    /// A single opt-in audience with the default merge fields.
    pub fn new(id: &str, name: &str) -> Self {
        SimAudience {
            id: id.to_string(),
            name: name.to_string(),
            double_optin: false,
            merge_fields: SimMergeField::defaults(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_key() {
        let cfg = SimConfig::default();
        let shown = format!("{cfg:?}");
        assert!(!shown.contains(DEFAULT_API_KEY), "{shown}");
        assert!(shown.contains("<redacted>"));
        assert_eq!(cfg.data_center(), "us6");
    }

    #[test]
    fn kinds_round_trip_by_name() {
        for k in FaultKind::ALL {
            assert_eq!(
                serde_json::to_value(k).ok(),
                Some(serde_json::json!(k.name()))
            );
            assert_eq!(k.name().parse::<FaultKind>(), Ok(k));
        }
        assert!("gremlins".parse::<FaultKind>().is_err());
    }

    #[test]
    fn realistic_latency_for_500_members_is_about_1_4_s() {
        assert_eq!(
            LatencyModel::realistic().for_members(500),
            Duration::from_millis(1400)
        );
    }
}
