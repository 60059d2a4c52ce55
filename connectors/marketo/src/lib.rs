//! audex-marketo: the Marketo static-list destination plugin.
//!
//! Marketo's shapes (lead ids, 300 records a call, its error codes, its rate
//! limits) stay inside this crate; the engine sees only audex-core's traits.

pub mod check;
pub mod client;
pub mod config;
pub mod destination;
pub mod endpoint;

use std::sync::Arc;

use audex_core::registry::{deserialize_block, DestinationPlugin};
use audex_core::{
    BuildContext, ConfigError, Destination, DestinationConfig, ExportSettings, ExportSpec, ListId,
};

pub use client::{ClientOptions, MarketoClient};
pub use config::MarketoConfig;
pub use destination::MarketoDestination;

/// Marketo static list ids are positive integers.
pub fn list_id(id: &ListId) -> Option<u64> {
    id.0.trim().parse::<u64>().ok().filter(|n| *n > 0)
}

impl DestinationConfig for MarketoConfig {
    fn settings(&self) -> &ExportSettings {
        &self.export
    }

    fn exports(&self) -> Vec<ExportSpec> {
        self.exports.specs(self.export.mode)
    }

    fn validate(&self) -> Vec<ConfigError> {
        self.check()
    }

    fn build(&self, _ctx: &BuildContext) -> audex_core::Result<Arc<dyn Destination>> {
        Ok(Arc::new(MarketoDestination::from_config(self)?))
    }

    fn daily_quota_reset(&self) -> Option<audex_core::DailyReset> {
        config::quota_reset()
    }
}

fn schema() -> schemars::Schema {
    schemars::schema_for!(MarketoConfig)
}

fn parse(value: serde_json::Value) -> Result<Box<dyn DestinationConfig>, Vec<ConfigError>> {
    let cfg: MarketoConfig = deserialize_block(value)?;
    Ok(Box::new(cfg))
}

pub const EXAMPLE: &str = r#"type: marketo
display_name: Marketo (production)
endpoint: 123-ABC-456.mktorest.com
client_id: ${MARKETO_CLIENT_ID}
client_secret: ${MARKETO_CLIENT_SECRET}
data_privacy_consent: true
export_user: maria@contoso.com
mapping:
  email: email
  firstName: first_name
  lastName: last_name
  city: city
  state: state
  country: country
list_id: 1001
mode: mirror
exports:
  - segment: high_value
max_profiles: 1000000
schedule: "0 3 * * *"
"#;

audex_core::inventory::submit! {
    DestinationPlugin {
        name: "marketo",
        description: "Marketo Engage static lists (REST API): upsert leads, mirror list membership",
        schema,
        example: EXAMPLE,
        parse,
    }
}
