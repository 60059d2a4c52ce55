//! The Marketo operations audex uses, in Marketo's own terms (lead ids,
//! ≤300 records a call, reason codes). `crate::destination` translates them
//! to audex-core's records and members.

use std::collections::HashMap;
use std::time::Duration;

use audex_core::{Error, FieldSpec, FieldType, Rejection, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::classify::record as record_codes;
use super::request::{ApiRequest, Body, Method};
use super::retry::Idempotency;
use super::service::MarketoClient;
use super::wire::{scrub, ApiError, Envelope};

/// Records (or lead ids) per Lead Database call (facts §3).
pub const MAX_BATCH: usize = 300;

/// A static list, as `GET /rest/v1/lists/{id}.json` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListInfo {
    pub id: u64,
    pub name: String,
}

/// What a list id turned out to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListLookup {
    Static(ListInfo),
    /// A smart list: membership calls do not work on it.
    Smart {
        name: String,
    },
    Missing,
}

/// One upserted lead's result, in input order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpsertResult {
    Created(u64),
    Updated(u64),
    Skipped(Rejection),
}

/// A lead id's result in a list add or remove.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MembershipResult {
    Done,
    Skipped(Rejection),
}

/// A lead as a members page or a filter read returns it.
#[derive(Clone, PartialEq, Eq)]
pub struct LeadRef {
    pub id: u64,
    /// Do not log.
    pub email: Option<String>,
}

impl std::fmt::Debug for LeadRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeadRef")
            .field("id", &self.id)
            .field("email", &self.email.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// One page of a paged read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass back to get the next page; `None` at the end.
    pub next: Option<String>,
}

/// A bulk import job's state (facts §9).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportStatus {
    pub batch_id: u64,
    /// `Queued`, `Importing`, `Complete` or `Failed`.
    pub status: String,
    #[serde(default)]
    pub num_of_leads_processed: u64,
    #[serde(default)]
    pub num_of_rows_failed: u64,
    #[serde(default)]
    pub num_of_rows_with_warning: u64,
    #[serde(default)]
    pub message: Option<String>,
}

impl ImportStatus {
    pub fn is_finished(&self) -> bool {
        matches!(self.status.as_str(), "Complete" | "Failed")
    }

    /// Whether the status is one Marketo documents; polling a job in any
    /// other state could go on forever.
    pub fn is_known(&self) -> bool {
        matches!(
            self.status.as_str(),
            "Queued" | "Importing" | "Complete" | "Failed"
        )
    }
}

#[derive(Deserialize)]
struct Reason {
    #[serde(default)]
    reasons: Vec<ApiError>,
    /// The Swagger's singular form; real answers use `reasons`.
    #[serde(default)]
    reason: Option<ApiError>,
}

fn rejection(item: &Value) -> Rejection {
    let parsed: Option<Reason> = serde_json::from_value(item.clone()).ok();
    let first = parsed.and_then(|r| r.reasons.into_iter().next().or(r.reason));
    match first {
        Some(e) => Rejection::new(scrub(&e.code), scrub(&e.message)),
        None => Rejection::new("skipped", "Marketo skipped the record without a reason"),
    }
}

fn check_batch(op: &str, n: usize) -> Result<()> {
    if n > MAX_BATCH {
        return Err(Error::internal(format!(
            "{op}: {n} records in one call; Marketo takes at most {MAX_BATCH}"
        )));
    }
    Ok(())
}

fn unexpected(op: &str, what: &str) -> Error {
    Error::internal(format!("{op}: unexpected answer from Marketo ({what})"))
}

fn field_type(data_type: &str) -> FieldType {
    match data_type {
        "string" => FieldType::String,
        "text" => FieldType::Text,
        "email" => FieldType::Email,
        "integer" => FieldType::Integer,
        "float" => FieldType::Float,
        "boolean" => FieldType::Boolean,
        "date" => FieldType::Date,
        "datetime" => FieldType::Datetime,
        "currency" => FieldType::Currency,
        "percent" => FieldType::Percent,
        "phone" => FieldType::Phone,
        "url" => FieldType::Url,
        other => FieldType::Other(other.to_string()),
    }
}

/// A describe.json item as a [`FieldSpec`]; `None` for fields REST cannot see.
fn describe_item(item: &Value) -> Option<FieldSpec> {
    let rest = item.get("rest")?;
    let name = rest.get("name")?.as_str()?.to_string();
    let read_only = rest
        .get("readOnly")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let data_type = item
        .get("dataType")
        .and_then(Value::as_str)
        .unwrap_or("string");
    Some(FieldSpec {
        name,
        data_type: field_type(data_type),
        max_length: item
            .get("length")
            .and_then(Value::as_u64)
            .and_then(|n| usize::try_from(n).ok()),
        writable: !read_only,
    })
}

fn lead_ref(item: &Value) -> Option<LeadRef> {
    Some(LeadRef {
        id: item.get("id")?.as_u64()?,
        email: item
            .get("email")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

/// The leads of a members page or a filter read. An item without a numeric
/// id is not a lead we can act on and is left out.
pub(crate) fn parse_leads(env: &Envelope) -> Vec<LeadRef> {
    env.result.iter().filter_map(lead_ref).collect()
}

/// A members page: its leads, and the token of the next page. No
/// `moreResult` here: the end is a missing token or an empty page.
pub(crate) fn parse_members_page(env: Envelope) -> Page<LeadRef> {
    let items = parse_leads(&env);
    let next = env
        .next_page_token
        .filter(|t| !t.is_empty() && !items.is_empty());
    Page { items, next }
}

/// The fields of a describe answer.
pub(crate) fn parse_describe(env: &Envelope) -> Vec<FieldSpec> {
    env.result.iter().filter_map(describe_item).collect()
}

/// The `name` of the first item, if the answer has one.
pub(crate) fn first_name(env: &Envelope) -> Option<String> {
    env.result.first().map(|item| {
        item.get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    })
}

/// Sync Leads results for `n` records, in input order: same length, each
/// `created`/`updated` with a lead id, or `skipped` with a reason.
pub(crate) fn parse_upsert(op: &str, n: usize, env: &Envelope) -> Result<Vec<UpsertResult>> {
    if env.result.len() != n {
        return Err(unexpected(
            op,
            &format!("{} results for {n} records", env.result.len()),
        ));
    }
    env.result
        .iter()
        .map(|item| {
            let status = item.get("status").and_then(Value::as_str).unwrap_or("");
            let id = item.get("id").and_then(Value::as_u64);
            match (status, id) {
                ("created", Some(id)) => Ok(UpsertResult::Created(id)),
                ("updated", Some(id)) => Ok(UpsertResult::Updated(id)),
                ("skipped", _) => Ok(UpsertResult::Skipped(rejection(item))),
                ("created" | "updated", None) => Err(unexpected(
                    op,
                    &format!("status {status:?} without a lead id"),
                )),
                _ => Err(unexpected(op, &format!("status {:?}", scrub(status)))),
            }
        })
        .collect()
}

/// A list add (`Method::Post`) or remove (`Method::Delete`) result for
/// `ids`: one entry per id asked for, or an error.
pub(crate) fn parse_membership(
    op: &str,
    method: Method,
    ids: &[u64],
    env: &Envelope,
) -> Result<HashMap<u64, MembershipResult>> {
    let mut out = HashMap::with_capacity(ids.len());
    for item in &env.result {
        let Some(id) = item.get("id").and_then(Value::as_u64) else {
            continue;
        };
        let status = item.get("status").and_then(Value::as_str).unwrap_or("");
        let result = match status {
            "added" | "removed" => MembershipResult::Done,
            "skipped" => {
                let r = rejection(item);
                if method == Method::Delete && r.code == record_codes::NOT_IN_LIST {
                    MembershipResult::Done
                } else {
                    MembershipResult::Skipped(r)
                }
            }
            other => return Err(unexpected(op, &format!("status {:?}", scrub(other)))),
        };
        out.insert(id, result);
    }
    if let Some(missing) = ids.iter().find(|id| !out.contains_key(id)) {
        return Err(unexpected(op, &format!("no result for lead {missing}")));
    }
    Ok(out)
}

/// The bulk import job in an answer: its first result item.
pub(crate) fn parse_job(op: &str, env: Envelope) -> Result<ImportStatus> {
    let item = env
        .result
        .into_iter()
        .next()
        .ok_or_else(|| unexpected(op, "no job in the answer"))?;
    serde_json::from_value(item).map_err(|_| {
        unexpected(
            op,
            "a job without a numeric batchId and status, or with counts that are not whole numbers",
        )
    })
}

impl MarketoClient {
    /// The lead fields REST can see: `GET /rest/v1/leads/describe.json`.
    pub async fn describe(&self) -> Result<Vec<FieldSpec>> {
        let env = self
            .call(ApiRequest::get("describe", "/rest/v1/leads/describe.json"))
            .await?;
        Ok(parse_describe(&env))
    }

    /// Find a list by id: static (usable), smart (not usable), or missing.
    /// `GET /rest/v1/lists/{id}.json` serves static lists only; an id it
    /// does not know is looked up among smart lists (Asset API) so the
    /// user hears what the id really is.
    pub async fn get_list(&self, id: u64) -> Result<ListLookup> {
        let found = self
            .call(ApiRequest::get(
                "get_list",
                format!("/rest/v1/lists/{id}.json"),
            ))
            .await;
        match found {
            Ok(env) => {
                if let Some(name) = first_name(&env) {
                    return Ok(ListLookup::Static(ListInfo { id, name }));
                }
            }
            // 1013 "object not found" is classified as a config error.
            Err(e) if e.is_config() => {}
            Err(e) => return Err(e),
        }
        let smart = self
            .call(ApiRequest::get(
                "get_smart_list",
                format!("/rest/asset/v1/smartList/{id}.json"),
            ))
            .await;
        match smart {
            Ok(env) => Ok(match first_name(&env) {
                Some(name) => ListLookup::Smart { name },
                None => ListLookup::Missing,
            }),
            // Without asset permissions we cannot tell; the list is not a
            // usable static list either way.
            Err(e) if e.class() == audex_core::ErrorClass::Auth => Ok(ListLookup::Missing),
            Err(e) if e.is_config() => Ok(ListLookup::Missing),
            Err(e) => Err(e),
        }
    }

    /// createOrUpdate up to 300 leads by `lookup_field`; results in input
    /// order (facts §6: same order, same length; skipped entries may lack an
    /// id). Each input item serializes as one lead object.
    pub async fn upsert_leads<T: Serialize>(
        &self,
        lookup_field: &str,
        input: &[T],
    ) -> Result<Vec<UpsertResult>> {
        let op = "sync_leads";
        check_batch(op, input.len())?;
        if input.is_empty() {
            return Ok(Vec::new());
        }
        let n = input.len();
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct SyncLeads<'a, T> {
            action: &'static str,
            lookup_field: &'a str,
            input: &'a [T],
        }
        let body = SyncLeads {
            action: "createOrUpdate",
            lookup_field,
            input,
        };
        let env = self
            .call(ApiRequest::post_json(op, "/rest/v1/leads.json", &body))
            .await?;
        parse_upsert(op, n, &env)
    }

    /// Add up to 300 leads to a static list. Re-adding a member answers
    /// `added` again (facts §8), so this is idempotent.
    pub async fn add_to_list(
        &self,
        list: u64,
        ids: &[u64],
    ) -> Result<HashMap<u64, MembershipResult>> {
        self.membership("add_to_list", Method::Post, list, ids)
            .await
    }

    /// Remove up to 300 leads from a static list. A lead that is not a
    /// member (1015) counts as removed.
    pub async fn remove_from_list(
        &self,
        list: u64,
        ids: &[u64],
    ) -> Result<HashMap<u64, MembershipResult>> {
        self.membership("remove_from_list", Method::Delete, list, ids)
            .await
    }

    async fn membership(
        &self,
        op: &'static str,
        method: Method,
        list: u64,
        ids: &[u64],
    ) -> Result<HashMap<u64, MembershipResult>> {
        check_batch(op, ids.len())?;
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        // The JSON body form (facts §8): no URL length to worry about.
        #[derive(Serialize)]
        struct Id {
            id: u64,
        }
        #[derive(Serialize)]
        struct Input {
            input: Vec<Id>,
        }
        let body = Input {
            input: ids.iter().map(|&id| Id { id }).collect(),
        };
        let mut req = ApiRequest::post_json(op, format!("/rest/v1/lists/{list}/leads.json"), &body);
        req.method = method;
        let env = self.call(req).await?;
        parse_membership(op, method, ids, &env)
    }

    /// One page of a static list's members (`id` and `email`), 300 a page.
    pub async fn list_members_page(&self, list: u64, token: Option<&str>) -> Result<Page<LeadRef>> {
        let mut req = ApiRequest::get(
            "get_list_members",
            format!("/rest/v1/lists/{list}/leads.json"),
        )
        .query("fields", "id,email")
        .query("batchSize", MAX_BATCH.to_string());
        if let Some(t) = token {
            req = req.query("nextPageToken", t);
        }
        let env = self.call(req).await?;
        Ok(parse_members_page(env))
    }

    /// Leads whose email is one of `emails` (at most 300). Reads every page;
    /// the URL switches to POST `_method=GET` when it would be too long.
    pub async fn leads_by_email(&self, emails: &[String]) -> Result<Vec<LeadRef>> {
        let op = "get_leads_by_filter";
        check_batch(op, emails.len())?;
        if emails.is_empty() {
            return Ok(Vec::new());
        }
        if emails.iter().any(|e| e.contains(',')) {
            return Err(Error::rejected(format!(
                "{op}: an email value contains a comma, which the filter cannot carry"
            )));
        }
        let values = emails.join(",");
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut req = ApiRequest::get(op, "/rest/v1/leads.json")
                .query("filterType", "email")
                .query("filterValues", values.clone())
                .query("fields", "id,email")
                .query("batchSize", MAX_BATCH.to_string());
            if let Some(t) = &token {
                req = req.query("nextPageToken", t.clone());
            }
            let env = self.call(req).await?;
            let page = parse_leads(&env);
            let done = page.is_empty();
            out.extend(page);
            match env.next_page_token.filter(|t| !t.is_empty()) {
                // A token that does not move would page forever.
                Some(t) if token.as_deref() == Some(t.as_str()) => {
                    return Err(unexpected(op, "the same nextPageToken twice"))
                }
                Some(t) if !done => token = Some(t),
                _ => return Ok(out),
            }
        }
    }

    /// Submit a bulk lead import (CSV whose header row holds REST field
    /// names); the leads also join `list`. Not retried once it may have
    /// reached Marketo: a second submission would queue a second job.
    pub async fn bulk_import(
        &self,
        csv: Vec<u8>,
        list: Option<u64>,
        lookup_field: &str,
    ) -> Result<ImportStatus> {
        let op = "bulk_import";
        let mut req = ApiRequest::get(op, "/bulk/v1/leads.json")
            .query("format", "csv")
            .query("lookupField", lookup_field);
        if let Some(l) = list {
            req = req.query("listId", l.to_string());
        }
        req.method = Method::Post;
        req.idempotency = Idempotency::NotIdempotent;
        req.body = Body::File {
            field: "file",
            filename: "leads.csv".to_string(),
            content_type: "text/csv",
            bytes: csv,
        };
        let env = self.call(req).await?;
        parse_job(op, env)
    }

    pub async fn import_status(&self, batch_id: u64) -> Result<ImportStatus> {
        let op = "bulk_import_status";
        let env = self
            .call(ApiRequest::get(
                op,
                format!("/bulk/v1/leads/batch/{batch_id}.json"),
            ))
            .await?;
        parse_job(op, env)
    }

    /// Poll until the job is `Complete` or `Failed`. A status Marketo does
    /// not document ends the wait with an error rather than polling forever.
    pub async fn wait_for_import(&self, batch_id: u64, every: Duration) -> Result<ImportStatus> {
        loop {
            let status = self.import_status(batch_id).await?;
            if status.is_finished() {
                return Ok(status);
            }
            if !status.is_known() {
                return Err(unexpected(
                    "bulk_import_status",
                    &format!("job status {:?}", scrub(&status.status)),
                ));
            }
            tokio::time::sleep(every).await;
        }
    }

    /// The failed rows of a finished import: the original CSV columns plus
    /// a reason column. Holds customer data; do not log.
    pub async fn import_failures(&self, batch_id: u64) -> Result<String> {
        self.call_text(ApiRequest::get(
            "bulk_import_failures",
            format!("/bulk/v1/leads/batch/{batch_id}/failures.json"),
        ))
        .await
    }

    /// The rows of a finished import that produced warnings.
    pub async fn import_warnings(&self, batch_id: u64) -> Result<String> {
        self.call_text(ApiRequest::get(
            "bulk_import_warnings",
            format!("/bulk/v1/leads/batch/{batch_id}/warnings.json"),
        ))
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn describe_items_become_field_specs() {
        let item = json!({"id":2,"displayName":"Company Name","dataType":"string","length":255,
            "rest":{"name":"company","readOnly":false},"soap":{"name":"Company","readOnly":false}});
        assert_eq!(
            describe_item(&item),
            Some(FieldSpec {
                name: "company".into(),
                data_type: FieldType::String,
                max_length: Some(255),
                writable: true
            })
        );
        let ro = json!({"id":1,"dataType":"integer","rest":{"name":"id","readOnly":true}});
        assert_eq!(describe_item(&ro).map(|f| f.writable), Some(false));
        let soap_only = json!({"id":9,"dataType":"string","soap":{"name":"X","readOnly":false}});
        assert_eq!(describe_item(&soap_only), None);
    }

    #[test]
    fn rejection_reads_reasons_and_scrubs() {
        let item = json!({"status":"skipped","reasons":[{"code":"1003","message":"Invalid value for field 'email' x@y.com"}]});
        assert_eq!(
            rejection(&item),
            Rejection::new("1003", "Invalid value for field 'email' <redacted>")
        );
        let singular =
            json!({"status":"skipped","reason":{"code":"1004","message":"Lead not found"}});
        assert_eq!(rejection(&singular).code, "1004");
        assert_eq!(rejection(&json!({"status":"skipped"})).code, "skipped");
    }
}
