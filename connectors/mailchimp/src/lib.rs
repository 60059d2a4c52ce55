//! audex-mailchimp: the Mailchimp destination plugin. A segment fills a
//! tag (static segment) of one audience: profiles become contacts (batch
//! subscribe, keyed by the subscriber hash of their email), segment members
//! become tagged contacts.
//!
//! Mailchimp's shapes (subscriber hashes, 500 members a call, its error
//! texts and compliance states, the 10-connection cap) stay inside this
//! crate; the engine sees only audex-core's traits.

pub mod account;
pub mod check;
pub mod client;
pub mod config;
pub mod destination;
pub mod outcomes;

use std::sync::Arc;

use audex_core::registry::{deserialize_block, DestinationPlugin};
use audex_core::{
    BuildContext, ConfigError, Destination, DestinationConfig, ExportSettings, ExportSpec,
};

pub use client::{ClientOptions, MailchimpClient};
pub use config::{MailchimpConfig, MailchimpTarget, StatusIfNew, TagRef};
pub use destination::MailchimpDestination;

impl DestinationConfig for MailchimpConfig {
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
        Ok(Arc::new(MailchimpDestination::from_config(self)?))
    }
}

fn schema() -> schemars::Schema {
    schemars::schema_for!(MailchimpConfig)
}

fn parse(value: serde_json::Value) -> Result<Box<dyn DestinationConfig>, Vec<ConfigError>> {
    let cfg: MailchimpConfig = deserialize_block(value)?;
    Ok(Box::new(cfg))
}

/// An example block, shown in the docs; the conformance kit checks that it
/// parses and validates.
pub const EXAMPLE: &str = r#"type: mailchimp
display_name: Mailchimp (production)
api_key: ${MAILCHIMP_API_KEY}
base_url: https://us6.api.mailchimp.com/3.0
audience_id: 5d2a8e41c7
tag: VIP customers
create_tag: true
tag_owned: false
status_if_new: auto
data_privacy_consent: true
export_user: maria@contoso.com
mapping:
  email: email
  FNAME: first_name
  LNAME: last_name
mode: mirror
exports:
  - segment: high_value
  - segment: all_customers
    tag: All customers
schedule: "0 3 * * *"
"#;

audex_core::inventory::submit! {
    DestinationPlugin {
        name: "mailchimp",
        description: "Mailchimp audiences (Marketing API v3): upsert contacts, mirror a segment into a tag",
        schema,
        example: EXAMPLE,
        parse,
    }
}
