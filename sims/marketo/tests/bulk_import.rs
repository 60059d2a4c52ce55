//! Bulk lead import (facts §9): multipart, status over (paused) time, list
//! membership, failures/warnings files, queue limits 1016/1019, 10 MB limit.
mod common;

use std::time::Duration;

use audex_marketo_sim::SimConfig;
use common::{err_code, Api};
use serde_json::Value;

async fn import(api: &Api, query: &str, file: &str, extra: &[(&str, &str)]) -> Value {
    let mut form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(file.as_bytes().to_vec())
            .file_name("leads.csv")
            .mime_str("text/csv")
            .expect("mime"),
    );
    for (k, v) in extra {
        form = form.text((*k).to_string(), (*v).to_string());
    }
    api.http
        .post(api.url(&format!("/bulk/v1/leads.json{query}")))
        .bearer_auth(&api.token)
        .multipart(form)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json")
}

async fn status(api: &Api, id: u64) -> Value {
    let v = api.get(&format!("/bulk/v1/leads/batch/{id}.json")).await;
    assert_eq!(v["success"], true, "{v}");
    v["result"][0].clone()
}

fn batch_id(v: &Value) -> u64 {
    assert_eq!(v["success"], true, "{v}");
    v["result"][0]["batchId"].as_u64().expect("batchId")
}

const FILE: &str = "firstName,lastName,email,company\nAble,Baker,ablebaker@example.com,Marketo\nCid,Dee,cid@example.com,X\nBad,Row,not-an-email,Y\nEve,Eff,eve@example.com,Z\n";

#[tokio::test(start_paused = true)]
async fn import_runs_queued_importing_complete_and_adds_members() {
    let api = Api::start(SimConfig::default()).await;
    let v = import(&api, "?format=csv&listId=1001", FILE, &[]).await;
    let id = batch_id(&v);
    assert_eq!(v["result"][0]["importId"], id.to_string());
    assert_eq!(v["result"][0]["status"], "Queued");
    let s = status(&api, id).await;
    assert_eq!(s["status"], "Importing");
    assert_eq!(
        api.sim.lead_count(),
        0,
        "nothing applied before the job finishes"
    );
    tokio::time::advance(Duration::from_secs(6)).await;
    let s = status(&api, id).await;
    assert_eq!(s["status"], "Complete");
    assert_eq!(s["numOfLeadsProcessed"], 3);
    assert_eq!(s["numOfRowsFailed"], 1);
    assert_eq!(s["numOfRowsWithWarning"], 0);
    assert_eq!(
        s["message"],
        "Import completed with errors, 3 records imported (3 members), 1 failed"
    );
    assert_eq!(api.sim.lead_count(), 3);
    assert_eq!(api.sim.list_members(1001).len(), 3);
    let eve = api.sim.lead_by_email("EVE@example.com").expect("eve");
    assert_eq!(eve.fields["company"], "Z");
    // The failures file is text in the job's format with an appended reason column.
    let r = api
        .http
        .get(api.url(&format!("/bulk/v1/leads/batch/{id}/failures.json")))
        .bearer_auth(&api.token)
        .send()
        .await
        .expect("send");
    assert!(r.headers()["content-type"]
        .to_str()
        .expect("ct")
        .starts_with("text/csv"));
    let text = r.text().await.expect("text");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "firstName,lastName,email,company,Import Failure Reason"
    );
    assert_eq!(
        lines[1],
        "Bad,Row,not-an-email,Y,Invalid value for field 'email'"
    );
    assert_eq!(lines.len(), 2);
    let w = api
        .http
        .get(api.url(&format!("/bulk/v1/leads/batch/{id}/warnings.json")))
        .bearer_auth(&api.token)
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("text");
    assert_eq!(w.lines().count(), 1, "header only: {w}");
}

#[tokio::test(start_paused = true)]
async fn params_as_form_fields_tsv_and_warnings() {
    let api = Api::start(SimConfig::default()).await;
    let long = "c".repeat(300);
    let file = format!("email\tcity\nt@example.com\t{long}\nu@example.com\tOslo\n");
    let v = import(&api, "", &file, &[("format", "tsv")]).await;
    let id = batch_id(&v);
    tokio::time::advance(Duration::from_secs(10)).await;
    let s = status(&api, id).await;
    assert_eq!(s["status"], "Complete");
    assert_eq!(s["numOfRowsWithWarning"], 1);
    assert_eq!(s["message"], "Import succeeded, 2 records imported");
    let w = api
        .http
        .get(api.url(&format!("/bulk/v1/leads/batch/{id}/warnings.json")))
        .bearer_auth(&api.token)
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("text");
    assert!(w.starts_with("email\tcity\tImport Warning Reason\n"), "{w}");
}

#[tokio::test(start_paused = true)]
async fn one_import_per_list_and_at_most_ten_queued() {
    let api = Api::start(SimConfig::default()).await;
    let first = import(&api, "?format=csv&listId=1001", FILE, &[]).await;
    batch_id(&first);
    let v = import(&api, "?format=csv&listId=1001", FILE, &[]).await;
    assert_eq!(err_code(&v), "1019");
    let mut ids = vec![];
    for _ in 0..9 {
        ids.push(batch_id(&import(&api, "?format=csv", FILE, &[]).await));
    }
    let v = import(&api, "?format=csv", FILE, &[]).await;
    assert_eq!(err_code(&v), "1016");
    assert_eq!(v["errors"][0]["message"], "Too many imports");
    // Two process at once; the rest wait.
    assert_eq!(status(&api, ids[0]).await["status"], "Importing");
    assert_eq!(status(&api, ids[1]).await["status"], "Queued");
    tokio::time::advance(Duration::from_secs(60)).await;
    for id in ids {
        assert_eq!(status(&api, id).await["status"], "Complete");
    }
    assert!(batch_id(&import(&api, "?format=csv&listId=1001", FILE, &[]).await) > 0);
}

#[tokio::test(start_paused = true)]
async fn failed_job_for_unknown_column() {
    let api = Api::start(SimConfig::default()).await;
    let id = batch_id(
        &import(
            &api,
            "?format=csv",
            "email,shoeSize\na@example.com,44\n",
            &[],
        )
        .await,
    );
    tokio::time::advance(Duration::from_secs(10)).await;
    let s = status(&api, id).await;
    assert_eq!(s["status"], "Failed");
    assert!(s["message"].as_str().expect("msg").contains("shoeSize"));
    assert_eq!(api.sim.lead_count(), 0);
}

#[tokio::test]
async fn refusals_at_submission() {
    let api = Api::start(SimConfig {
        bulk_max_body_bytes: 2_000,
        ..SimConfig::default()
    })
    .await;
    assert_eq!(
        err_code(&import(&api, "?format=csv", "", &[]).await),
        "1003"
    );
    assert_eq!(
        err_code(&import(&api, "?format=csv", "\n\n", &[]).await),
        "1003"
    );
    assert_eq!(err_code(&import(&api, "", FILE, &[]).await), "701");
    assert_eq!(
        err_code(&import(&api, "?format=xml", FILE, &[]).await),
        "1003"
    );
    assert_eq!(
        err_code(&import(&api, "?format=csv&listId=2001", FILE, &[]).await),
        "1013"
    );
    assert_eq!(
        err_code(&import(&api, "?format=csv&listId=4444", FILE, &[]).await),
        "1013"
    );
    assert_eq!(
        err_code(&api.get("/bulk/v1/leads/batch/1.json").await),
        "1013"
    );
    let big = format!("email\n{}", "a@example.com\n".repeat(200));
    let r = api
        .http
        .post(api.url("/bulk/v1/leads.json?format=csv"))
        .bearer_auth(&api.token)
        .multipart(reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(big.into_bytes()).file_name("l.csv"),
        ))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 413);
    // Not multipart at all.
    let v = api
        .post_json("/bulk/v1/leads.json?format=csv", &serde_json::json!({}))
        .await;
    assert_eq!(err_code(&v), "612");
}
