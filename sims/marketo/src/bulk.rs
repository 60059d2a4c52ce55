//! Bulk lead import (facts §9): multipart upload, a queue of at most
//! `bulk_max_queued` jobs of which `bulk_max_processing` run at once, one job
//! per list at a time, status driven by (scaled) time, failures and warnings
//! as delimited text with an appended reason column.
//!
//! Jobs are scheduled when they are submitted (their durations are known
//! then), and their effects are applied lazily, in finish order, whenever the
//! simulator is next touched at or after the finish time. No background task.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{FromRequest, Multipart};
use axum::http::Request;
use serde_json::{json, Map, Value};
use tokio::time::Instant;

use crate::envelope::{lead_err, lead_ok, Payload, Reply};
use crate::request::SimRequest;
use crate::server::Ctx;
use crate::store::{Action, Lookup, Outcome, Store};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Tsv,
    Ssv,
}

impl Format {
    fn parse(s: &str) -> Option<Format> {
        match s.to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "tsv" => Some(Format::Tsv),
            "ssv" => Some(Format::Ssv),
            _ => None,
        }
    }

    fn delimiter(self) -> u8 {
        match self {
            Format::Csv => b',',
            Format::Tsv => b'\t',
            Format::Ssv => b';',
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv;charset=UTF-8",
            Format::Tsv => "text/tab-separated-values;charset=UTF-8",
            Format::Ssv => "text/plain;charset=UTF-8",
        }
    }
}

#[derive(Debug)]
struct Done {
    failed_message: Option<String>,
    processed: u64,
    failed: u64,
    warned: u64,
    members: u64,
    failures: String,
    warnings: String,
}

#[derive(Debug)]
struct Job {
    id: u64,
    list_id: Option<u64>,
    format: Format,
    lookup: Lookup,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    start: Instant,
    finish: Instant,
    done: Option<Done>,
}

#[derive(Debug, Default)]
pub struct Bulk {
    jobs: BTreeMap<u64, Job>,
    next_id: u64,
    /// When each processing slot next falls free.
    slots: Vec<Instant>,
}

impl Bulk {
    pub fn new() -> Bulk {
        Bulk {
            jobs: BTreeMap::new(),
            next_id: 3401,
            slots: Vec::new(),
        }
    }

    /// Apply every job that finished by `now`, in finish order.
    pub fn advance(&mut self, now: Instant, store: &mut Store) {
        let mut due: Vec<(Instant, u64)> = self
            .jobs
            .values()
            .filter(|j| j.done.is_none() && j.finish <= now)
            .map(|j| (j.finish, j.id))
            .collect();
        due.sort();
        for (_, id) in due {
            if let Some(job) = self.jobs.get_mut(&id) {
                let done = apply(job, store);
                job.done = Some(done);
                // The rows are no longer needed once the outcome is recorded.
                job.rows = Vec::new();
            }
        }
    }

    fn pending(&self) -> impl Iterator<Item = &Job> {
        self.jobs.values().filter(|j| j.done.is_none())
    }

    pub fn list_busy(&self, list_id: u64, _now: Instant) -> bool {
        self.pending().any(|j| j.list_id == Some(list_id))
    }

    pub fn job_count(&self) -> usize {
        self.jobs.len()
    }
}

/// Apply one job's rows to the store.
fn apply(job: &Job, store: &mut Store) -> Done {
    let failed = |msg: String| Done {
        failed_message: Some(msg),
        processed: 0,
        failed: 0,
        warned: 0,
        members: 0,
        failures: String::new(),
        warnings: String::new(),
    };
    for name in &job.header {
        match store.cat.lookup(name) {
            None => return failed(format!("Field '{name}' not found")),
            Some(ix)
                if store.cat.def(ix).read_only && !(name == "id" && job.lookup == Lookup::Id) =>
            {
                return failed(format!("Field '{name}' is read only"))
            }
            Some(_) => {}
        }
    }
    let key = job.lookup.name();
    if !job.header.iter().any(|h| h == key) {
        return failed(format!("Lookup field '{key}' not found in file header"));
    }
    let action = match job.lookup {
        Lookup::Email => Action::CreateOrUpdate,
        Lookup::Id => Action::UpdateOnly,
    };
    let mut failures = writer(job.format, &job.header, "Import Failure Reason");
    let mut warnings = writer(job.format, &job.header, "Import Warning Reason");
    let (mut processed, mut nfailed, mut warned, mut members) = (0u64, 0u64, 0u64, 0u64);
    for row in &job.rows {
        let reason = if row.len() != job.header.len() {
            Some(format!(
                "Expected {} columns, found {}",
                job.header.len(),
                row.len()
            ))
        } else {
            let rec: Map<String, Value> = job
                .header
                .iter()
                .zip(row)
                .filter(|(_, v)| !v.is_empty())
                .map(|(h, v)| (h.clone(), Value::String(v.clone())))
                .collect();
            let r = store.sync_one(action, job.lookup, &rec);
            match r.outcome {
                Outcome::Created(id) | Outcome::Updated(id) => {
                    processed += 1;
                    if let Some(list) = job.list_id {
                        store.add_members(list, &[id]);
                        members += 1;
                    }
                    if !r.truncated.is_empty() {
                        warned += 1;
                        let msg =
                            format!("Value for field '{}' truncated", r.truncated.join("', '"));
                        write_row(&mut warnings, row, &msg);
                    }
                    None
                }
                Outcome::Skipped(_, msg) => Some(msg),
            }
        };
        if let Some(msg) = reason {
            nfailed += 1;
            write_row(&mut failures, row, &msg);
        }
    }
    Done {
        failed_message: None,
        processed,
        failed: nfailed,
        warned,
        members,
        failures: finish_writer(failures),
        warnings: finish_writer(warnings),
    }
}

fn writer(format: Format, header: &[String], reason: &str) -> csv::Writer<Vec<u8>> {
    let mut w = csv::WriterBuilder::new()
        .delimiter(format.delimiter())
        .flexible(true)
        .from_writer(Vec::new());
    let mut h: Vec<&str> = header.iter().map(String::as_str).collect();
    h.push(reason);
    // Writing to a Vec cannot fail.
    let _ = w.write_record(&h);
    w
}

fn write_row(w: &mut csv::Writer<Vec<u8>>, row: &[String], reason: &str) {
    let mut r: Vec<&str> = row.iter().map(String::as_str).collect();
    r.push(reason);
    let _ = w.write_record(&r);
}

fn finish_writer(w: csv::Writer<Vec<u8>>) -> String {
    w.into_inner()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Parameters arrive as query params (Swagger, [PY], [SEG]) or form fields (Adobe's curl).
struct Upload {
    file: Option<Vec<u8>>,
    fields: Vec<(String, String)>,
}

async fn read_multipart(req: &SimRequest) -> Result<Upload, &'static str> {
    let mut builder = Request::builder().method("POST").uri("/");
    if let Some(ct) = req.headers.get(axum::http::header::CONTENT_TYPE) {
        builder = builder.header(axum::http::header::CONTENT_TYPE, ct);
    }
    let http_req = builder
        .body(Body::from(req.body.clone()))
        .map_err(|_| "613")?;
    let mut mp = Multipart::from_request(http_req, &())
        .await
        .map_err(|_| "613")?;
    let mut up = Upload {
        file: None,
        fields: Vec::new(),
    };
    loop {
        match mp.next_field().await {
            Ok(Some(field)) => {
                let name = field.name().unwrap_or("").to_string();
                let data = field.bytes().await.map_err(|_| "613")?;
                if name == "file" {
                    up.file = Some(data.to_vec());
                } else {
                    up.fields
                        .push((name, String::from_utf8_lossy(&data).into_owned()));
                }
            }
            Ok(None) => break,
            Err(_) => return Err("613"),
        }
    }
    Ok(up)
}

pub async fn create(req: &SimRequest, ctx: &Ctx<'_>) -> Reply {
    let rid = ctx.rid.as_str();
    if req.content_type != "multipart/form-data" {
        return lead_err(rid, "612", "Invalid Content Type");
    }
    let up = match read_multipart(req).await {
        Ok(u) => u,
        Err(code) => return lead_err(rid, code, "Invalid multipart request"),
    };
    let param = |name: &str| -> Option<String> {
        req.param(name)
            .map(str::to_string)
            .or_else(|| {
                up.fields
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            })
            .filter(|v| !v.is_empty())
    };
    // Swagger marks `format` required; Adobe's prose defaults it to CSV. The
    // stricter reading applies.
    let Some(format_raw) = param("format") else {
        return lead_err(rid, "701", "format cannot be blank");
    };
    let Some(format) = Format::parse(&format_raw) else {
        return lead_err(
            rid,
            "1003",
            &format!("Invalid format '{format_raw}': csv, tsv or ssv"),
        );
    };
    let lookup = match param("lookupField") {
        None => Lookup::Email,
        Some(f) => match Lookup::parse(&f) {
            Some(l) => l,
            None => {
                return lead_err(
                    rid,
                    "1011",
                    &format!("Field '{f}' not supported for lookup"),
                )
            }
        },
    };
    let list_id = match param("listId") {
        None => None,
        Some(l) => match l.trim().parse::<u64>() {
            Ok(id) => Some(id),
            Err(_) => return lead_err(rid, "1013", "Static list not found"),
        },
    };
    if let Some(p) = param("partitionName") {
        if p != "Default" {
            return lead_err(rid, "1003", "Invalid partition name");
        }
    }
    let Some(file) = up.file else {
        return lead_err(rid, "701", "file cannot be blank");
    };
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(format.delimiter())
        .has_headers(false)
        .flexible(true)
        .from_reader(file.as_slice());
    let mut records: Vec<Vec<String>> = Vec::new();
    for rec in rdr.records() {
        match rec {
            Ok(r) => {
                let row: Vec<String> = r.iter().map(str::to_string).collect();
                if row.iter().all(|c| c.trim().is_empty()) {
                    continue;
                }
                records.push(row);
            }
            Err(_) => return lead_err(rid, "1003", "Invalid file: not readable as delimited text"),
        }
    }
    if records.is_empty() {
        return lead_err(rid, "1003", "Empty File");
    }
    let header: Vec<String> = records
        .remove(0)
        .into_iter()
        .map(|h| h.trim().to_string())
        .collect();
    let rows = records;
    let nrows = rows.len();
    let cfg = ctx.cfg;
    let now = ctx.now;
    ctx.with_world(|w| {
        if let Some(l) = list_id {
            if w.store.static_list(l).is_none() {
                return lead_err(rid, "1013", "Static list not found");
            }
        }
        if w.bulk.pending().count() >= cfg.bulk_max_queued {
            return lead_err(rid, "1016", "Too many imports");
        }
        if let Some(l) = list_id {
            if w.bulk.list_busy(l, now) {
                return lead_err(rid, "1019", "Import in progress");
            }
        }
        let slots = cfg.bulk_max_processing.max(1);
        if w.bulk.slots.len() != slots {
            w.bulk.slots = vec![now; slots];
        }
        let (slot_ix, free_at) = w
            .bulk
            .slots
            .iter()
            .copied()
            .enumerate()
            .min_by_key(|(_, t)| *t)
            .unwrap_or((0, now));
        let start = free_at.max(now);
        let cost = cfg.bulk_job_base.saturating_add(
            cfg.bulk_row_cost
                .saturating_mul(u32::try_from(nrows).unwrap_or(u32::MAX)),
        );
        let finish = start + cfg.scaled(cost);
        w.bulk.slots[slot_ix] = finish;
        let id = w.bulk.next_id;
        w.bulk.next_id += 1;
        w.bulk.jobs.insert(
            id,
            Job {
                id,
                list_id,
                format,
                lookup,
                header,
                rows,
                start,
                finish,
                done: None,
            },
        );
        lead_ok(
            rid,
            vec![json!({"batchId": id, "importId": id.to_string(), "status": "Queued"})],
        )
    })
    .with_records(nrows)
}

fn status_json(job: &Job, now: Instant) -> Value {
    let (status, processed, failed, warned, message) = match &job.done {
        None if now < job.start => ("Queued", 0, 0, 0, "Queued for processing".to_string()),
        None => ("Importing", 0, 0, 0, "Import in progress".to_string()),
        Some(d) => match &d.failed_message {
            Some(m) => ("Failed", 0, 0, 0, m.clone()),
            None => {
                let members = if job.list_id.is_some() {
                    format!(" ({} members)", d.members)
                } else {
                    String::new()
                };
                let msg = if d.failed == 0 {
                    format!(
                        "Import succeeded, {} records imported{members}",
                        d.processed
                    )
                } else {
                    format!(
                        "Import completed with errors, {} records imported{members}, {} failed",
                        d.processed, d.failed
                    )
                };
                ("Complete", d.processed, d.failed, d.warned, msg)
            }
        },
    };
    json!({
        "batchId": job.id,
        "importId": job.id.to_string(),
        "status": status,
        "numOfLeadsProcessed": processed,
        "numOfRowsFailed": failed,
        "numOfRowsWithWarning": warned,
        "message": message,
    })
}

pub fn status(id: u64, ctx: &Ctx<'_>) -> Reply {
    let rid = ctx.rid.as_str();
    ctx.with_world(|w| match w.bulk.jobs.get(&id) {
        Some(job) => lead_ok(rid, vec![status_json(job, ctx.now)]),
        None => lead_err(rid, "1013", "Import batch not found"),
    })
}

/// The failures (or warnings) file: text in the job's format, not JSON.
pub fn file(id: u64, warnings: bool, ctx: &Ctx<'_>) -> Reply {
    let rid = ctx.rid.as_str();
    ctx.with_world(|w| match w.bulk.jobs.get(&id) {
        None => lead_err(rid, "1013", "Import batch not found"),
        Some(Job { done: None, .. }) => lead_err(rid, "1003", "Import not complete"),
        Some(job @ Job { done: Some(d), .. }) => Reply {
            payload: Payload::Text {
                content_type: job.format.content_type(),
                text: if warnings {
                    d.warnings.clone()
                } else {
                    d.failures.clone()
                },
            },
            ..Reply::json(Value::Null)
        },
    })
}
