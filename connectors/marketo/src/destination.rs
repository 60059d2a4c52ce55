//! `MarketoDestination`: audex-core's [`Destination`] over the Marketo client.
//! Records become leads (createOrUpdate by email), members become lead ids on
//! a static list.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use audex_core::{
    Capabilities, CheckResult, Destination, Error, FieldSpec, FieldValue, Limits, ListId, Member,
    MemberId, MemberOutcome, RecordKey, RecordOutcome, RecordView, Records, Rejection,
    RemoteMember, Result,
};
use audex_core::{EmailKey, KeyRule};
use futures::stream::{self, BoxStream, StreamExt};
use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::client::{
    ClientOptions, LimitSettings, MarketoClient, MembershipResult, UpsertResult, MAX_BATCH,
};
use crate::config::MarketoConfig;
use crate::endpoint::Endpoint;

/// Marketo static lists as an audex destination.
#[derive(Debug)]
pub struct MarketoDestination {
    client: Arc<MarketoClient>,
    limits: LimitSettings,
    lookup_field: String,
}

impl MarketoDestination {
    /// Build from a validated config. Makes no call.
    pub fn from_config(cfg: &MarketoConfig) -> Result<MarketoDestination> {
        MarketoDestination::with_options(cfg, ClientOptions::default())
    }

    /// Build with client tuning (timeouts, backoff), e.g. for tests.
    pub fn with_options(cfg: &MarketoConfig, opts: ClientOptions) -> Result<MarketoDestination> {
        let endpoint = Endpoint::parse(&cfg.endpoint)
            .map_err(|e| Error::config(vec![audex_core::ConfigError::new("endpoint", e)]))?;
        let limits = LimitSettings {
            calls: cfg.rate_limit.calls.max(1),
            window: rate_window(cfg.rate_limit.window_secs)?,
            max_concurrency: cfg.rate_limit.max_concurrency.max(1),
            daily_budget: cfg.rate_limit.daily_call_budget,
        };
        let client =
            MarketoClient::new(endpoint, &cfg.client_id, &cfg.client_secret, limits, opts)?;
        Ok(MarketoDestination {
            client: Arc::new(client),
            limits,
            lookup_field: cfg.lookup_field.clone(),
        })
    }

    /// The underlying client, for Marketo-specific operations (bulk import,
    /// lookups by email).
    pub fn client(&self) -> &Arc<MarketoClient> {
        &self.client
    }
}

/// `rate_limit.window_secs` as a window: at least a millisecond, and a
/// config error (not a panic) for a value no duration can hold (infinite,
/// or more than about 5.8e11 years).
fn rate_window(secs: f64) -> Result<Duration> {
    // `max` also turns NaN into the floor.
    Duration::try_from_secs_f64(secs.max(0.001)).map_err(|_| {
        Error::config(vec![audex_core::ConfigError::new(
            "rate_limit.window_secs",
            "must be a positive, finite number of seconds",
        )])
    })
}

/// Marketo's lead key: an email address, ASCII only (Marketo refuses
/// others).
fn email_key() -> EmailKey {
    EmailKey::new().ascii_only("Marketo accepts ASCII only")
}

/// A user-given list id as Marketo's positive integer.
fn marketo_list(list: &ListId) -> Result<u64> {
    crate::list_id(list).ok_or_else(|| {
        Error::config(vec![audex_core::ConfigError::new(
            "list_id",
            format!(
                "{:?} is not a Marketo static list id (a positive integer)",
                list.0
            ),
        )])
    })
}

/// A field value as JSON: a float that is not finite has no JSON form and
/// is sent as null (empty).
struct JsonField<'a>(&'a FieldValue);

impl Serialize for JsonField<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self.0 {
            FieldValue::Null => s.serialize_unit(),
            FieldValue::Bool(b) => s.serialize_bool(*b),
            FieldValue::Int(i) => s.serialize_i64(*i),
            FieldValue::Float(f) if f.is_finite() => s.serialize_f64(*f),
            FieldValue::Float(_) => s.serialize_unit(),
            FieldValue::Text(t) => s.serialize_str(t),
        }
    }
}

/// A record as a Sync Leads input object, serialized straight from the
/// record (no intermediate JSON tree). The lookup field always carries the
/// record's key, so the lead Marketo matches is the one we keyed.
struct LeadInput<'a> {
    lookup_field: &'a str,
    record: RecordView<'a>,
}

impl Serialize for LeadInput<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let others = || {
            self.record
                .fields()
                .filter(|(n, _)| *n != self.lookup_field)
        };
        let mut map = s.serialize_map(Some(others().count() + 1))?;
        for (name, value) in others() {
            map.serialize_entry(name, &JsonField(value))?;
        }
        // The key, as normalised: the lookup value Marketo matches on.
        map.serialize_entry(self.lookup_field, self.record.key().as_str())?;
        map.end()
    }
}

fn bad_id(id: &MemberId) -> Rejection {
    Rejection::new(
        "invalid_member_id",
        format!("{id:?} is not a Marketo lead id"),
    )
}

impl MarketoDestination {
    async fn change_members(
        &self,
        list: &ListId,
        members: &[Member],
        add: bool,
    ) -> Result<Vec<MemberOutcome>> {
        let list = marketo_list(list)?;
        if members.len() > MAX_BATCH {
            return Err(Error::internal(format!(
                "{} members in one call; Marketo takes at most {MAX_BATCH}",
                members.len()
            )));
        }
        let parsed: Vec<Option<u64>> = members
            .iter()
            .map(|m| m.id.0.trim().parse::<u64>().ok())
            .collect();
        let mut ids: Vec<u64> = parsed.iter().flatten().copied().collect();
        ids.sort_unstable();
        ids.dedup();
        let results = if add {
            self.client.add_to_list(list, &ids).await?
        } else {
            self.client.remove_from_list(list, &ids).await?
        };
        Ok(members
            .iter()
            .zip(parsed)
            .map(|(m, id)| {
                let result = match id.and_then(|id| results.get(&id)) {
                    Some(MembershipResult::Done) => Ok(()),
                    Some(MembershipResult::Skipped(r)) => Err(r.clone()),
                    None => Err(bad_id(&m.id)),
                };
                MemberOutcome {
                    key: m.key.clone(),
                    result,
                }
            })
            .collect())
    }
}

#[async_trait]
impl Destination for MarketoDestination {
    fn limits(&self) -> Limits {
        Limits::new(MAX_BATCH)
            .with_rate(self.limits.calls, self.limits.window)
            .with_max_concurrency(self.limits.max_concurrency)
            .with_daily_budget(self.limits.daily_budget)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new()
    }

    fn lookup_field(&self) -> &str {
        &self.lookup_field
    }

    fn key_rule(&self) -> Arc<dyn KeyRule> {
        Arc::new(email_key())
    }

    async fn check(&self, lists: &[ListId], mapped_fields: &[String]) -> Vec<CheckResult> {
        crate::check::run(&self.client, lists, mapped_fields).await
    }

    async fn fields(&self) -> Result<Vec<FieldSpec>> {
        self.client.describe().await
    }

    async fn upsert(&self, records: &Records) -> Result<Vec<RecordOutcome>> {
        let input: Vec<LeadInput<'_>> = records
            .iter()
            .map(|record| LeadInput {
                lookup_field: &self.lookup_field,
                record,
            })
            .collect();
        let results = self.client.upsert_leads(&self.lookup_field, &input).await?;
        Ok(records
            .iter()
            .zip(results)
            .map(|(r, res)| RecordOutcome {
                key: r.key().clone(),
                result: match res {
                    UpsertResult::Created(id) | UpsertResult::Updated(id) => {
                        Ok(MemberId(id.to_string()))
                    }
                    UpsertResult::Skipped(rej) => Err(rej),
                },
            })
            .collect())
    }

    async fn add_members(&self, list: &ListId, members: &[Member]) -> Result<Vec<MemberOutcome>> {
        self.change_members(list, members, true).await
    }

    async fn remove_members(
        &self,
        list: &ListId,
        members: &[Member],
    ) -> Result<Vec<MemberOutcome>> {
        self.change_members(list, members, false).await
    }

    fn read_members<'a>(&'a self, list: &'a ListId) -> BoxStream<'a, Result<Vec<RemoteMember>>> {
        enum Cursor {
            Start,
            Next(String),
            Done,
        }
        stream::try_unfold(Cursor::Start, move |cursor| async move {
            let token = match cursor {
                Cursor::Done => return Ok(None),
                Cursor::Start => None,
                Cursor::Next(t) => Some(t),
            };
            let list = marketo_list(list)?;
            let page = self
                .client
                .list_members_page(list, token.as_deref())
                .await?;
            // A token that does not move would page forever.
            if page.next.is_some() && page.next == token {
                return Err(Error::internal(
                    "get_list_members: unexpected answer from Marketo (the same nextPageToken twice)",
                ));
            }
            let members: Vec<RemoteMember> = page
                .items
                .into_iter()
                .map(|l| RemoteMember {
                    id: MemberId(l.id.to_string()),
                    // The key rule the engine maps with, so a member read
                    // back has the key its row was sent under; an address
                    // it would refuse cannot be one of ours (the id names it).
                    key: l
                        .email
                        .and_then(|e| email_key().normalise(&e).ok())
                        .map(RecordKey::new),
                })
                .collect();
            let next = match page.next {
                Some(t) => Cursor::Next(t),
                None => Cursor::Done,
            };
            if members.is_empty() {
                return Ok(None);
            }
            Ok(Some((members, next)))
        })
        .boxed()
    }
}

/// Kept for callers that want the fields as a name → spec map.
pub fn fields_by_name(fields: Vec<FieldSpec>) -> BTreeMap<String, FieldSpec> {
    fields.into_iter().map(|f| (f.name.clone(), f)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_window_secs_is_a_window_or_a_config_error() {
        assert_eq!(rate_window(20.0).ok(), Some(Duration::from_secs(20)));
        for small in [0.0, -5.0, f64::NAN, f64::NEG_INFINITY] {
            assert_eq!(rate_window(small).ok(), Some(Duration::from_millis(1)));
        }
        for huge in [f64::INFINITY, 1e20, f64::MAX] {
            let err = rate_window(huge).expect_err("no duration holds it");
            assert!(err.is_config());
            assert_eq!(err.config_errors()[0].path, "rate_limit.window_secs");
        }
    }

    #[test]
    fn lead_input_carries_the_key_as_lookup_value() {
        let records = Records::new(
            ["email", "firstName", "score"]
                .map(String::from)
                .to_vec()
                .into(),
            vec![audex_core::Record {
                key: RecordKey::new("ada@example.com"),
                values: vec![
                    FieldValue::Text("Ada@Example.com ".into()),
                    FieldValue::Text("Ada".into()),
                    FieldValue::Float(f64::NAN),
                ],
            }],
        );
        let record = records.iter().next().expect("one record");
        let obj = serde_json::to_value(LeadInput {
            lookup_field: "email",
            record,
        })
        .expect("serializes");
        assert_eq!(obj["email"], "ada@example.com");
        assert_eq!(obj["firstName"], "Ada");
        assert_eq!(obj["score"], serde_json::Value::Null);
        assert_eq!(obj.as_object().map(|o| o.len()), Some(3));
    }
}
