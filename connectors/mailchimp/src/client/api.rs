//! The operations audex makes (facts §2–§5): reach the account, read the
//! audience and its merge fields, batch subscribe, find, create, fill and
//! read tags (static segments).

use audex_core::{Error, ErrorClass, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::service::{ApiRequest, MailchimpClient};
use super::wire::{scrub, BatchSubscribeAnswer, MembersPage, SegmentBatchAnswer};

/// Members per batch subscribe, and per side of a segment batch.
pub const MAX_BATCH: usize = 500;
/// The largest `count` of a collection read.
pub const MAX_PAGE: usize = 1000;
/// Pages read from one collection at most (a million items): a server that
/// never stops answering full pages cannot keep audex reading forever.
const MAX_PAGES: usize = 1000;

/// An audience, as `GET /lists/{id}` tells it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Audience {
    pub id: String,
    pub name: String,
    pub double_optin: bool,
}

/// A merge field of the audience.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct MergeField {
    pub tag: String,
    pub name: String,
    #[serde(rename = "type")]
    pub field_type: String,
    pub required: bool,
}

/// A segment of the audience: a tag is a `static` one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct SegmentInfo {
    pub id: u64,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub member_count: Option<u64>,
}

impl SegmentInfo {
    /// A tag (static segment), which audex can fill.
    pub fn is_static(&self) -> bool {
        self.kind == "static"
    }
}

fn unexpected(op: &str, e: serde_json::Error) -> Error {
    Error::internal(format!("{op}: unexpected answer from Mailchimp ({e})"))
}

fn parse<T: serde::de::DeserializeOwned>(op: &str, v: Value) -> Result<T> {
    serde_json::from_value(v).map_err(|e| unexpected(op, e))
}

/// One page of a collection.
struct Collection<T> {
    items: Vec<T>,
    total_items: Option<u64>,
}

/// A collection answer: its items under `field`, leniently.
fn collection<T: serde::de::DeserializeOwned>(
    op: &str,
    mut v: Value,
    field: &str,
) -> Result<Collection<T>> {
    let items = v
        .get_mut(field)
        .map(Value::take)
        .unwrap_or(Value::Array(Vec::new()));
    let items: Vec<Value> = parse(op, items)?;
    Ok(Collection {
        items: items
            .into_iter()
            .filter_map(|i| serde_json::from_value(i).ok())
            .collect(),
        total_items: v.get("total_items").and_then(Value::as_u64),
    })
}

/// The parts of a batch subscribe answer the outcomes read.
const SUBSCRIBE_FIELDS: &str = "new_members.email_address,new_members.status,\
updated_members.email_address,updated_members.status,errors,error_count";

impl MailchimpClient {
    /// `GET /ping`: the key works.
    pub async fn ping(&self) -> Result<()> {
        let req = ApiRequest::get("ping", "/ping".into(), "API root".into());
        self.call(&req).await.map(|_| ())
    }

    /// `GET /lists/{id}`: the audience's name and double opt-in.
    pub async fn audience(&self, audience: &str) -> Result<Audience> {
        let req = ApiRequest::get(
            "get_audience",
            format!("/lists/{audience}"),
            format!("audience {audience:?}"),
        )
        .query("fields", "id,name,double_optin");
        parse("get_audience", self.call(&req).await?)
    }

    /// Every page of a collection under `path`, items under `field`.
    async fn all_pages<T: serde::de::DeserializeOwned>(
        &self,
        op: &'static str,
        path: String,
        subject: String,
        field: &str,
        extra: &[(&'static str, &str)],
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        for page in 0..MAX_PAGES {
            let mut req = ApiRequest::get(op, path.clone(), subject.clone())
                .query("count", MAX_PAGE.to_string())
                .query("offset", (page * MAX_PAGE).to_string());
            for (k, v) in extra {
                req = req.query(k, *v);
            }
            let c: Collection<T> = collection(op, self.call(&req).await?, field)?;
            let got = c.items.len();
            out.extend(c.items);
            let total = c.total_items.and_then(|t| usize::try_from(t).ok());
            if got < MAX_PAGE || total.is_some_and(|t| out.len() >= t) {
                return Ok(out);
            }
        }
        Err(Error::internal(format!(
            "{op}: Mailchimp kept answering full pages past {} items",
            MAX_PAGES * MAX_PAGE
        )))
    }

    /// `GET /lists/{id}/merge-fields`, every page.
    pub async fn merge_fields(&self, audience: &str) -> Result<Vec<MergeField>> {
        self.all_pages(
            "get_merge_fields",
            format!("/lists/{audience}/merge-fields"),
            format!("audience {audience:?}"),
            "merge_fields",
            &[],
        )
        .await
    }

    /// `POST /lists/{id}`: batch subscribe (at most [`MAX_BATCH`] members).
    pub async fn batch_subscribe(
        &self,
        audience: &str,
        body: &impl Serialize,
    ) -> Result<BatchSubscribeAnswer> {
        let req = ApiRequest::post(
            "batch_subscribe",
            format!("/lists/{audience}"),
            format!("audience {audience:?}"),
            body,
        )?
        // Only what the outcomes need: each member's email and status, and
        // the errors (a partial response; the whole member, merge fields
        // and all, is about ten times as much to send and read).
        .query("fields", SUBSCRIBE_FIELDS);
        parse("batch_subscribe", self.call(&req).await?)
    }

    /// `GET /lists/{id}/segments`, every page, every type (a saved segment
    /// holding a tag's name must be told apart from a missing tag).
    pub async fn segments(&self, audience: &str) -> Result<Vec<SegmentInfo>> {
        self.all_pages(
            "get_segments",
            format!("/lists/{audience}/segments"),
            format!("audience {audience:?}"),
            "segments",
            &[(
                "fields",
                "segments.id,segments.name,segments.type,segments.member_count,total_items",
            )],
        )
        .await
    }

    /// `GET /lists/{id}/segments/{seg}`.
    pub async fn segment(&self, audience: &str, seg: u64) -> Result<SegmentInfo> {
        let req = ApiRequest::get(
            "get_segment",
            format!("/lists/{audience}/segments/{seg}"),
            format!("tag (segment) with id {seg} in audience {audience:?}"),
        );
        parse("get_segment", self.call(&req).await?)
    }

    /// `POST /lists/{id}/segments {name, static_segment: []}`: a new, empty
    /// tag. Not idempotent (a second one with the name is refused), so
    /// never repeated once it may have run.
    pub async fn create_tag(&self, audience: &str, name: &str) -> Result<SegmentInfo> {
        let body = serde_json::json!({ "name": name, "static_segment": [] });
        let req = ApiRequest::post(
            "create_tag",
            format!("/lists/{audience}/segments"),
            format!("audience {audience:?}"),
            &body,
        )?
        .not_idempotent();
        parse("create_tag", self.call(&req).await?)
    }

    /// `POST /lists/{id}/segments/{seg}`: add and remove members by email
    /// (at most [`MAX_BATCH`] each). A saved segment is a config error.
    pub async fn segment_batch(
        &self,
        audience: &str,
        seg: u64,
        adds: &[&str],
        removes: &[&str],
    ) -> Result<SegmentBatchAnswer> {
        #[derive(Serialize)]
        struct Body<'a> {
            members_to_add: &'a [&'a str],
            members_to_remove: &'a [&'a str],
        }
        let req = ApiRequest::post(
            "segment_batch",
            format!("/lists/{audience}/segments/{seg}"),
            format!("tag (static segment) with id {seg} in audience {audience:?}"),
            &Body {
                members_to_add: adds,
                members_to_remove: removes,
            },
        )?
        // The outcomes are the errors; the members added and removed come
        // back whole otherwise.
        .query("fields", "errors,error_count,total_added,total_removed");
        match self.send(&req).await {
            Ok(v) => parse("segment_batch", v),
            Err(f)
                if f.status == Some(400)
                    && f.problem.detail.to_ascii_lowercase().contains("static segment") =>
            {
                Err(Error::new(
                    ErrorClass::Config,
                    format!(
                        "segment_batch: segment {seg} of audience {audience:?} is not a tag (static segment): {}",
                        scrub(&f.problem.detail)
                    ),
                )
                .with_hint("audex fills tags only; name a tag, not a saved segment"))
            }
            Err(f) => Err(f.into_error(&req)),
        }
    }

    /// One page of `GET /lists/{id}/segments/{seg}/members`, every status
    /// Mailchimp would otherwise hide (unsubscribed, cleaned, transactional).
    pub async fn segment_members(
        &self,
        audience: &str,
        seg: u64,
        offset: usize,
    ) -> Result<MembersPage> {
        let req = ApiRequest::get(
            "get_segment_members",
            format!("/lists/{audience}/segments/{seg}/members"),
            format!("tag (static segment) with id {seg} in audience {audience:?}"),
        )
        .query("count", MAX_PAGE.to_string())
        .query("offset", offset.to_string())
        .query("include_cleaned", "true")
        .query("include_transactional", "true")
        .query("include_unsubscribed", "true")
        .query(
            "fields",
            "members.id,members.email_address,members.status,total_items",
        );
        parse("get_segment_members", self.call(&req).await?)
    }
}
