//! `MailchimpDestination`: audex-core's [`Destination`] over the Mailchimp
//! client. Records become contacts of one audience (batch subscribe by
//! email), members become tagged contacts (static segment batches).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use audex_core::{
    Capabilities, CheckResult, ConfigError, Destination, EmailKey, Error, FieldSpec, FieldType,
    FieldValue, KeyRule, Limits, ListId, Member, MemberId, MemberOutcome, RecordKey, RecordOutcome,
    RecordView, Records, RemoteMember, Result,
};
use futures::stream::{self, BoxStream, StreamExt};
use serde::ser::{Serialize, SerializeMap, Serializer};
use tokio::sync::{Mutex, OnceCell};

use crate::account;
use crate::client::{ClientOptions, MailchimpClient, MergeField, MAX_BATCH, MAX_PAGE};
use crate::config::{MailchimpConfig, StatusIfNew, TagRef, EMAIL_FIELD};
use crate::outcomes::{self, subscriber_hash};

/// The most members read back from one tag: a server that never stops
/// answering full pages cannot keep audex reading forever.
const MAX_READ_MEMBERS: usize = 100_000_000;

/// Mailchimp's acceptance of non-ASCII addresses is not documented: the
/// stricter rule holds.
pub(crate) fn email_key() -> EmailKey {
    EmailKey::new().ascii_only(
        "Mailchimp does not document accepting non-ASCII addresses, so audex sends ASCII ones only",
    )
}

/// One audience's tags as an audex destination.
#[derive(Debug)]
pub struct MailchimpDestination {
    client: Arc<MailchimpClient>,
    audience: String,
    status_if_new: StatusIfNew,
    create_tag: bool,
    tag_owned: bool,
    /// The status new contacts get, resolved once (`auto` asks the audience).
    resolved_status: OnceCell<&'static str>,
    /// Tag names already looked up (or created): their segment ids. Held
    /// across the lookup, so concurrent calls never create a tag twice.
    tags: Mutex<HashMap<String, u64>>,
}

impl MailchimpDestination {
    /// Build from a validated config. Makes no call.
    pub fn from_config(cfg: &MailchimpConfig) -> Result<MailchimpDestination> {
        MailchimpDestination::with_options(cfg, ClientOptions::default())
    }

    /// Build with client tuning (timeouts, backoff), e.g. for tests.
    pub fn with_options(
        cfg: &MailchimpConfig,
        opts: ClientOptions,
    ) -> Result<MailchimpDestination> {
        let audience = cfg.audience_id.trim();
        if audience.is_empty() || !audience.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(Error::config(vec![ConfigError::new(
                "audience_id",
                "must be letters and digits only",
            )]));
        }
        let root = account::resolve(cfg.api_key.expose(), cfg.base_url.as_deref())
            .map_err(|(path, message)| Error::config(vec![ConfigError::new(path, message)]))?;
        let client = MailchimpClient::new(
            root,
            cfg.api_key.clone(),
            cfg.rate_limit.max_concurrency,
            opts,
        )?;
        Ok(MailchimpDestination {
            client: Arc::new(client),
            audience: audience.to_string(),
            status_if_new: cfg.status_if_new,
            create_tag: cfg.create_tag,
            tag_owned: cfg.tag_owned,
            resolved_status: OnceCell::new(),
            tags: Mutex::new(HashMap::new()),
        })
    }

    /// The underlying client, for Mailchimp-specific calls.
    pub fn client(&self) -> &Arc<MailchimpClient> {
        &self.client
    }

    /// The audience id.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// Whether a missing tag named by `tag` is created.
    pub fn creates_tags(&self) -> bool {
        self.create_tag
    }

    /// The configured `status_if_new`.
    pub fn status_if_new(&self) -> StatusIfNew {
        self.status_if_new
    }

    /// The status a new contact gets: the configured one, or for `auto`
    /// the audience's (`pending` with double opt-in, else `subscribed`),
    /// asked once.
    pub async fn new_contact_status(&self) -> Result<&'static str> {
        match self.status_if_new {
            StatusIfNew::Subscribed => Ok("subscribed"),
            StatusIfNew::Pending => Ok("pending"),
            StatusIfNew::Transactional => Ok("transactional"),
            StatusIfNew::Auto => self
                .resolved_status
                .get_or_try_init(|| async {
                    let a = self.client.audience(&self.audience).await?;
                    Ok::<_, Error>(if a.double_optin {
                        "pending"
                    } else {
                        "subscribed"
                    })
                })
                .await
                .copied(),
        }
    }

    /// The segment id of a target: a `tag_id` as is; a tag name looked up
    /// once (and created when `create_tag` allows and `create` asks).
    /// `None`: the tag does not exist (and was not created).
    pub async fn segment_id(&self, list: &ListId, create: bool) -> Result<Option<u64>> {
        let tag = TagRef::parse(list).ok_or_else(|| {
            Error::config(vec![ConfigError::new(
                "tag",
                format!("{:?} names no Mailchimp tag", list.0),
            )])
        })?;
        let name = match tag {
            TagRef::Id(id) => return Ok(Some(id)),
            TagRef::Name(name) => name,
        };
        let mut known = self.tags.lock().await;
        if let Some(id) = known.get(&name) {
            return Ok(Some(*id));
        }
        let found = self
            .client
            .segments(&self.audience)
            .await?
            .into_iter()
            .find(|s| s.name == name);
        let id = match found {
            Some(s) if s.is_static() => s.id,
            Some(s) => {
                return Err(Error::config(vec![ConfigError::new(
                    "tag",
                    format!(
                        "{name:?} is a {} segment of the audience, not a tag; audex fills tags (static segments) only",
                        s.kind
                    ),
                )]))
            }
            None if create && self.create_tag => self.create(&name).await?,
            None => return Ok(None),
        };
        known.insert(name, id);
        Ok(Some(id))
    }

    /// Create the tag `name`. When the call fails, another process (or a
    /// call of ours that timed out but ran) may have created it meanwhile:
    /// a tag of that name found afterwards is the one.
    async fn create(&self, name: &str) -> Result<u64> {
        match self.client.create_tag(&self.audience, name).await {
            Ok(s) => {
                tracing::info!(tag = %name, id = s.id, "created the Mailchimp tag");
                Ok(s.id)
            }
            Err(e) => {
                let found = self
                    .client
                    .segments(&self.audience)
                    .await
                    .ok()
                    .and_then(|all| all.into_iter().find(|s| s.name == name && s.is_static()));
                found.map(|s| s.id).ok_or(e)
            }
        }
    }

    /// The segment id of a target that must exist now (or be created).
    async fn segment_for_write(&self, list: &ListId) -> Result<u64> {
        self.segment_id(list, true)
            .await?
            .ok_or_else(|| missing_tag(list))
    }

    async fn change(
        &self,
        list: &ListId,
        adds: &[Member],
        removes: &[Member],
    ) -> Result<Vec<MemberOutcome>> {
        if adds.len() > MAX_BATCH || removes.len() > MAX_BATCH {
            return Err(Error::internal(format!(
                "{} adds and {} removes in one call; Mailchimp takes at most {MAX_BATCH} of each",
                adds.len(),
                removes.len()
            )));
        }
        if adds.is_empty() && removes.is_empty() {
            return Ok(Vec::new());
        }
        let seg = self.segment_for_write(list).await?;
        let emails = |ms: &'_ [Member]| -> Vec<String> {
            ms.iter().map(|m| m.key.as_str().to_string()).collect()
        };
        let (add, remove) = (emails(adds), emails(removes));
        let add: Vec<&str> = add.iter().map(String::as_str).collect();
        let remove: Vec<&str> = remove.iter().map(String::as_str).collect();
        let answer = self
            .client
            .segment_batch(&self.audience, seg, &add, &remove)
            .await?;
        Ok(outcomes::segment(adds, removes, &answer))
    }
}

/// The error for a tag that is not there and may not be created.
pub(crate) fn missing_tag(list: &ListId) -> Error {
    let shown = TagRef::parse(list).map_or_else(|| list.0.clone(), |t| t.to_string());
    Error::config(vec![ConfigError::new(
        "tag",
        format!("the audience has no {shown}"),
    )
    .with_hint(
        "create the tag in Mailchimp, or set create_tag: true to let audex create it",
    )])
}

/// A merge field's type as core's.
pub(crate) fn field_type(t: &str) -> (FieldType, Option<usize>) {
    match t {
        // Mailchimp truncates text to 255 bytes itself.
        "text" => (FieldType::String, Some(255)),
        "number" => (FieldType::Float, None),
        "phone" => (FieldType::Phone, None),
        "date" => (FieldType::Date, None),
        "url" | "imageurl" => (FieldType::Url, Some(255)),
        other => (FieldType::Other(other.to_string()), None),
    }
}

pub(crate) fn field_specs(fields: &[MergeField]) -> Vec<FieldSpec> {
    let mut out = vec![FieldSpec {
        name: EMAIL_FIELD.to_string(),
        data_type: FieldType::Email,
        max_length: None,
        writable: true,
    }];
    out.extend(fields.iter().map(|f| {
        let (data_type, max_length) = field_type(&f.field_type);
        FieldSpec {
            name: f.tag.clone(),
            data_type,
            max_length,
            writable: true,
        }
    }));
    out
}

/// A value as a merge-field value. Merge fields have no boolean: it goes
/// as text. (Nulls and non-finite floats are left out before: see
/// [`has_value`]; were one to reach here, it would go as "".)
struct MergeValue<'a>(&'a FieldValue);

impl Serialize for MergeValue<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self.0 {
            FieldValue::Null => s.serialize_str(""),
            FieldValue::Bool(b) => s.serialize_str(if *b { "true" } else { "false" }),
            FieldValue::Int(i) => s.serialize_i64(*i),
            FieldValue::Float(f) if f.is_finite() => s.serialize_f64(*f),
            FieldValue::Float(_) => s.serialize_str(""),
            FieldValue::Text(t) => s.serialize_str(t),
        }
    }
}

/// Whether a value is sent at all: a null (or a float with no JSON form)
/// leaves the contact's value as it is, rather than clearing it.
fn has_value(v: &FieldValue) -> bool {
    match v {
        FieldValue::Null => false,
        FieldValue::Float(f) => f.is_finite(),
        _ => true,
    }
}

/// The record's merge fields: every field but the email that has a value.
struct MergeFields<'a>(RecordView<'a>);

impl MergeFields<'_> {
    fn entries(&self) -> impl Iterator<Item = (&str, &FieldValue)> + '_ {
        self.0
            .fields()
            .filter(|(n, v)| *n != EMAIL_FIELD && has_value(v))
    }
}

impl Serialize for MergeFields<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        for (name, value) in self.entries() {
            map.serialize_entry(name, &MergeValue(value))?;
        }
        map.end()
    }
}

/// One member of a batch subscribe, serialized straight from the record.
struct MemberInput<'a> {
    record: RecordView<'a>,
    status_if_new: &'a str,
}

impl Serialize for MemberInput<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let merge = MergeFields(self.record);
        let has_merge = merge.entries().next().is_some();
        let mut map = s.serialize_map(Some(2 + usize::from(has_merge)))?;
        // The key, as normalised: the address Mailchimp hashes.
        map.serialize_entry("email_address", self.record.key().as_str())?;
        map.serialize_entry("status_if_new", self.status_if_new)?;
        if has_merge {
            map.serialize_entry("merge_fields", &merge)?;
        }
        map.end()
    }
}

#[derive(serde::Serialize)]
struct BatchSubscribe<'a> {
    members: Vec<MemberInput<'a>>,
    update_existing: bool,
}

#[async_trait]
impl Destination for MailchimpDestination {
    fn limits(&self) -> Limits {
        Limits::new(MAX_BATCH)
            .with_adds_and_removes_together()
            .with_max_concurrency(self.client.cap().size())
    }

    fn capabilities(&self) -> Capabilities {
        if self.tag_owned {
            Capabilities::new()
        } else {
            Capabilities::new().sharing_lists()
        }
    }

    fn lookup_field(&self) -> &str {
        EMAIL_FIELD
    }

    fn key_rule(&self) -> Arc<dyn KeyRule> {
        Arc::new(email_key())
    }

    async fn check(&self, lists: &[ListId], mapped_fields: &[String]) -> Vec<CheckResult> {
        crate::check::run(self, lists, mapped_fields).await
    }

    async fn fields(&self) -> Result<Vec<FieldSpec>> {
        let fields = self.client.merge_fields(&self.audience).await?;
        // Known before the plan, so the run can say what new contacts get.
        self.new_contact_status().await?;
        Ok(field_specs(&fields))
    }

    fn notices(&self, _list: &ListId, new_records: u64) -> Vec<String> {
        let pending = match self.status_if_new {
            StatusIfNew::Pending => true,
            StatusIfNew::Auto => self.resolved_status.get() == Some(&"pending"),
            StatusIfNew::Subscribed | StatusIfNew::Transactional => false,
        };
        if !pending || new_records == 0 {
            return Vec::new();
        }
        let why = match self.status_if_new {
            StatusIfNew::Auto => "the audience is double opt-in and status_if_new is auto",
            _ => "status_if_new is pending",
        };
        vec![format!(
            "up to {new_records} contacts new to the audience join as pending: Mailchimp sends each a \
             confirmation email and subscribes only those who confirm ({why})"
        )]
    }

    async fn upsert(&self, records: &Records) -> Result<Vec<RecordOutcome>> {
        if records.len() > MAX_BATCH {
            return Err(Error::internal(format!(
                "{} records in one call; Mailchimp takes at most {MAX_BATCH}",
                records.len()
            )));
        }
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let status_if_new = self.new_contact_status().await?;
        let body = BatchSubscribe {
            members: records
                .iter()
                .map(|record| MemberInput {
                    record,
                    status_if_new,
                })
                .collect(),
            update_existing: true,
        };
        let answer = self.client.batch_subscribe(&self.audience, &body).await?;
        Ok(outcomes::upsert(records, &answer))
    }

    async fn add_members(&self, list: &ListId, members: &[Member]) -> Result<Vec<MemberOutcome>> {
        self.change(list, members, &[]).await
    }

    async fn remove_members(
        &self,
        list: &ListId,
        members: &[Member],
    ) -> Result<Vec<MemberOutcome>> {
        self.change(list, &[], members).await
    }

    async fn change_members(
        &self,
        list: &ListId,
        adds: &[Member],
        removes: &[Member],
    ) -> Result<Vec<MemberOutcome>> {
        self.change(list, adds, removes).await
    }

    fn read_members<'a>(&'a self, list: &'a ListId) -> BoxStream<'a, Result<Vec<RemoteMember>>> {
        enum Cursor {
            Start,
            At { seg: u64, offset: usize },
            Done,
        }
        stream::try_unfold(Cursor::Start, move |cursor| async move {
            let (seg, offset) = match cursor {
                Cursor::Done => return Ok(None),
                Cursor::At { seg, offset } => (seg, offset),
                Cursor::Start => match self.segment_id(list, false).await? {
                    Some(seg) => (seg, 0),
                    // A tag audex may create but has not yet: empty.
                    None if self.create_tag => return Ok(None),
                    None => return Err(missing_tag(list)),
                },
            };
            let page = self
                .client
                .segment_members(&self.audience, seg, offset)
                .await?;
            let got = page.members.len();
            if got == 0 {
                return Ok(None);
            }
            let members: Vec<RemoteMember> = page
                .members
                .into_iter()
                .map(|m| {
                    // The key rule the engine maps with, so a member read
                    // back has the key its row was sent under.
                    let key = email_key()
                        .normalise(&m.email_address)
                        .ok()
                        .map(RecordKey::new);
                    let id = match &key {
                        Some(k) => subscriber_hash(k),
                        None => MemberId(m.id.to_ascii_lowercase()),
                    };
                    RemoteMember { id, key }
                })
                .collect();
            let next = offset + got;
            if next > MAX_READ_MEMBERS {
                return Err(Error::internal(format!(
                    "get_segment_members: Mailchimp kept answering pages past {MAX_READ_MEMBERS} members"
                )));
            }
            let total = page.total_items.and_then(|t| usize::try_from(t).ok());
            let cursor = if got < MAX_PAGE || total.is_some_and(|t| next >= t) {
                Cursor::Done
            } else {
                Cursor::At { seg, offset: next }
            };
            Ok(Some((members, cursor)))
        })
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use audex_core::Record;

    #[test]
    fn a_member_serializes_from_the_record_with_its_key_as_address() {
        let records = Records::new(
            ["email", "FNAME", "SCORE", "LNAME", "VIP"]
                .map(String::from)
                .to_vec()
                .into(),
            vec![Record {
                key: RecordKey::new("ada@example.com"),
                values: vec![
                    FieldValue::Text(" Ada@Example.com".into()),
                    FieldValue::Text("Ada".into()),
                    FieldValue::Float(f64::NAN),
                    FieldValue::Null,
                    FieldValue::Bool(true),
                ],
            }],
        );
        let record = records.iter().next().expect("one record");
        let v = serde_json::to_value(MemberInput {
            record,
            status_if_new: "pending",
        })
        .expect("serializes");
        assert_eq!(
            v,
            serde_json::json!({
                "email_address": "ada@example.com",
                "status_if_new": "pending",
                "merge_fields": {"FNAME": "Ada", "VIP": "true"},
            })
        );
    }

    #[test]
    fn merge_field_types_map_to_core_types() {
        let specs = field_specs(&[
            MergeField {
                tag: "FNAME".into(),
                field_type: "text".into(),
                ..MergeField::default()
            },
            MergeField {
                tag: "ADDRESS".into(),
                field_type: "address".into(),
                ..MergeField::default()
            },
        ]);
        let got: Vec<(&str, &FieldType)> = specs
            .iter()
            .map(|s| (s.name.as_str(), &s.data_type))
            .collect();
        assert_eq!(
            got,
            [
                ("email", &FieldType::Email),
                ("FNAME", &FieldType::String),
                ("ADDRESS", &FieldType::Other("address".into())),
            ]
        );
    }
}
