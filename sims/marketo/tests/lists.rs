//! Static lists: lookup, add/remove/members/ismember with every id form,
//! paging, smart and unknown lists, asset static lists (facts §8).
mod common;

use audex_marketo_sim::SimConfig;
use common::{emails, err_code, Api};
use serde_json::{json, Value};

fn statuses(v: &Value) -> Vec<String> {
    v["result"]
        .as_array()
        .unwrap_or_else(|| panic!("no result: {v}"))
        .iter()
        .map(|r| r["status"].as_str().expect("status").to_string())
        .collect()
}

#[tokio::test]
async fn lists_by_id_and_all_lists_are_static_only() {
    let api = Api::start(SimConfig::default()).await;
    let v = api.get("/rest/v1/lists.json").await;
    let ids: Vec<u64> = v["result"]
        .as_array()
        .expect("r")
        .iter()
        .map(|l| l["id"].as_u64().expect("id"))
        .collect();
    assert_eq!(
        ids,
        vec![1001, 1002, 1003],
        "the smart list 2001 is not listed"
    );
    let v = api
        .get_q("/rest/v1/lists.json", &[("id", "1002"), ("id", "1003")])
        .await;
    assert_eq!(v["result"].as_array().expect("r").len(), 2);
    let v = api
        .get_q("/rest/v1/lists.json", &[("name", "Quickstart")])
        .await;
    assert_eq!(v["result"][0]["id"], 1001);
    let v = api
        .get_q("/rest/v1/lists.json", &[("batchSize", "2")])
        .await;
    let tok = v["nextPageToken"].as_str().expect("page token").to_string();
    let v = api
        .get_q(
            "/rest/v1/lists.json",
            &[("batchSize", "2"), ("nextPageToken", &tok)],
        )
        .await;
    assert_eq!(v["result"][0]["id"], 1003);
    assert_eq!(err_code(&api.get("/rest/v1/lists/4242.json").await), "1013");
    assert_eq!(err_code(&api.get("/rest/v1/lists/2001.json").await), "1013");
}

#[tokio::test]
async fn add_with_every_id_form_and_re_add_is_added_again() {
    let api = Api::start(SimConfig::default()).await;
    let ids = api.upsert(&emails("a", 6)).await;
    // Repeated id= [A].
    let v = api
        .post_json(
            &format!("/rest/v1/lists/1001/leads.json?id={}&id={}", ids[0], ids[1]),
            &json!({}),
        )
        .await;
    assert_eq!(statuses(&v), ["added", "added"]);
    // Comma-separated [SW-mapi][SEG].
    let v: Value = api
        .http
        .post(api.url(&format!(
            "/rest/v1/lists/1001/leads.json?id={},{}",
            ids[2], ids[3]
        )))
        .bearer_auth(&api.token)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(statuses(&v), ["added", "added"]);
    // JSON body [PY][NODE][GRP]; re-adding an existing member answers `added` [GRP].
    let v = api
        .post_json(
            "/rest/v1/lists/1001/leads.json",
            &json!({"input": [{"id": ids[4]}, {"id": ids[0]}, {"id": 987_654}]}),
        )
        .await;
    assert_eq!(v["result"][0], json!({"id": ids[4], "status": "added"}));
    assert_eq!(v["result"][1], json!({"id": ids[0], "status": "added"}));
    assert_eq!(v["result"][2]["status"], "skipped");
    assert_eq!(
        v["result"][2]["reasons"][0],
        json!({"code": "1004", "message": "Lead not found"})
    );
    let mut want = ids[..5].to_vec();
    want.sort();
    assert_eq!(api.sim.list_members(1001), want);
    assert_eq!(api.sim.times_added(1001, ids[0]), 2);
    let c = api.sim.counters();
    assert_eq!(c.calls("add_to_list"), 3);
    assert_eq!(c.route("POST /rest/v1/lists/{id}/leads.json"), 3);
    assert_eq!(c.list_adds[&1001].leads_added_more_than_once, 1);
}

#[tokio::test]
async fn remove_with_delete_and_post_method_override() {
    let api = Api::start(SimConfig::default()).await;
    let ids = api.upsert(&emails("r", 3)).await;
    api.post_json(
        "/rest/v1/lists/1002/leads.json",
        &json!({"input": ids.iter().map(|i| json!({"id": i})).collect::<Vec<_>>()}),
    )
    .await;
    // DELETE with query ids.
    let v: Value = api
        .http
        .delete(api.url(&format!("/rest/v1/lists/1002/leads.json?id={}", ids[0])))
        .bearer_auth(&api.token)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(statuses(&v), ["removed"]);
    // DELETE with a JSON body [PY].
    let v = api
        .delete_json(
            "/rest/v1/lists/1002/leads.json",
            &json!({"input": [{"id": ids[1]}]}),
        )
        .await;
    assert_eq!(statuses(&v), ["removed"]);
    // POST ?_method=DELETE with a JSON body; a non-member is skipped 1015 [GRP].
    let v = api
        .post_json(
            "/rest/v1/lists/1002/leads.json?_method=DELETE",
            &json!({"input": [{"id": ids[2]}, {"id": ids[0]}]}),
        )
        .await;
    assert_eq!(v["result"][0]["status"], "removed");
    assert_eq!(
        v["result"][1]["reasons"][0],
        json!({"code": "1015", "message": "Lead not in list"})
    );
    assert!(api.sim.list_members(1002).is_empty());
}

#[tokio::test]
async fn ismember_get_and_post_override() {
    let api = Api::start(SimConfig::default()).await;
    let ids = api.upsert(&emails("i", 2)).await;
    api.post_json(
        &format!("/rest/v1/lists/1003/leads.json?id={}", ids[0]),
        &json!({}),
    )
    .await;
    let v = api
        .get(&format!(
            "/rest/v1/lists/1003/leads/ismember.json?id={},{},5555555",
            ids[0], ids[1]
        ))
        .await;
    assert_eq!(statuses(&v), ["memberof", "notmemberof", "skipped"]);
    // [PY] member_of_list: POST ?_method=GET + JSON body.
    let v = api
        .post_json(
            "/rest/v1/lists/1003/leads/ismember.json?_method=GET",
            &json!({"input": [{"id": ids[0]}]}),
        )
        .await;
    assert_eq!(statuses(&v), ["memberof"]);
    assert_eq!(api.sim.counters().calls("is_member"), 2);
}

#[tokio::test]
async fn smart_and_unknown_lists_are_refused_for_membership() {
    let api = Api::start(SimConfig::default()).await;
    let ids = api.upsert(&emails("s", 1)).await;
    for list in [2001, 7777] {
        let path = format!("/rest/v1/lists/{list}/leads.json");
        assert_eq!(
            err_code(
                &api.post_json(&path, &json!({"input": [{"id": ids[0]}]}))
                    .await
            ),
            "1013"
        );
        assert_eq!(err_code(&api.get(&path).await), "1013");
        assert_eq!(
            err_code(
                &api.delete_json(&path, &json!({"input": [{"id": ids[0]}]}))
                    .await
            ),
            "1013"
        );
    }
    // The Asset API tells a smart list from a missing one.
    let v = api.get("/rest/asset/v1/smartList/2001.json").await;
    assert_eq!(v["result"][0]["id"], 2001);
    let v = api.get("/rest/asset/v1/smartList/1001.json").await;
    assert!(v.get("result").is_none());
}

#[tokio::test]
async fn more_than_300_ids_refused() {
    let api = Api::start(SimConfig::default()).await;
    let input: Vec<Value> = (1..=301).map(|i| json!({"id": i})).collect();
    let v = api
        .post_json("/rest/v1/lists/1001/leads.json", &json!({"input": input}))
        .await;
    assert_eq!(err_code(&v), "1003");
    let v = api
        .post_json("/rest/v1/lists/1001/leads.json", &json!({}))
        .await;
    assert_eq!(err_code(&v), "701");
}

#[tokio::test]
async fn members_paging_with_next_page_token_and_legacy_alias() {
    let api = Api::start(SimConfig::default()).await;
    let ids = api.upsert(&emails("p", 7)).await;
    for id in &ids {
        assert!(api.sim.add_member(1001, *id));
    }
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut calls = 0;
    loop {
        let mut q = vec![
            ("batchSize", "3".to_string()),
            ("fields", "email,firstName".to_string()),
        ];
        if let Some(t) = &token {
            q.push(("nextPageToken", t.clone()));
        }
        let q: Vec<(&str, &str)> = q.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let v = api.get_q("/rest/v1/lists/1001/leads.json", &q).await;
        calls += 1;
        let page = v["result"].as_array().expect("result");
        for l in page {
            seen.push(l["id"].as_u64().expect("id"));
            assert!(l["email"].as_str().expect("email").starts_with('p'));
        }
        match v.get("nextPageToken").and_then(Value::as_str) {
            Some(t) if !page.is_empty() => {
                assert!(t.ends_with('=') || t.len() % 8 == 0, "padded base32: {t}");
                token = Some(t.to_string());
            }
            _ => break,
        }
    }
    assert_eq!(seen, ids);
    assert_eq!(calls, 3);
    // [PY] get_multiple_leads_by_list_id: POST /rest/v1/list/{id}/leads.json?_method=GET with a form body.
    let v = api
        .post_form(
            "/rest/v1/list/1001/leads.json?_method=GET",
            &[("batchSize", "300")],
        )
        .await;
    assert_eq!(v["result"].as_array().expect("r").len(), 7);
    // Empty list: result [] [GRP].
    let v = api.get("/rest/v1/lists/1002/leads.json").await;
    assert_eq!(v["result"], json!([]));
    assert_eq!(
        err_code(
            &api.get_q("/rest/v1/lists/1001/leads.json", &[("batchSize", "301")])
                .await
        ),
        "1003"
    );
    assert_eq!(
        err_code(
            &api.get_q(
                "/rest/v1/lists/1001/leads.json",
                &[("nextPageToken", "AAAA")]
            )
            .await
        ),
        "1003"
    );
}

#[tokio::test]
async fn asset_static_lists_create_by_name_by_id() {
    let api = Api::start(SimConfig::default()).await;
    let v = api
        .post_form(
            "/rest/asset/v1/staticLists.json",
            &[
                ("folder", r#"{"id":12,"type":"Folder"}"#),
                ("name", "(test) High Value"),
            ],
        )
        .await;
    assert_eq!(v["success"], true);
    assert_eq!(v["errors"], json!([]));
    assert_eq!(v["warnings"], json!([]));
    let item = &v["result"][0];
    let id = item["id"].as_u64().expect("id");
    assert!(item["createdAt"]
        .as_str()
        .expect("created")
        .ends_with("Z+0000"));
    assert_eq!(item["folder"], json!({"id": 12, "type": "Folder"}));
    assert_eq!(
        item["computedUrl"],
        format!("https://app-sim.marketo.com/#ST{id}A1")
    );
    // The new list is a static list for the Lead DB API too.
    assert_eq!(
        api.get(&format!("/rest/v1/lists/{id}.json")).await["result"][0]["name"],
        "(test) High Value"
    );
    let v = api
        .get_q(
            "/rest/asset/v1/staticList/byName.json",
            &[("name", "(test) High Value")],
        )
        .await;
    assert_eq!(v["result"][0]["id"], id);
    // A byName miss: success with a string warning and no result [GRP].
    let v = api
        .get_q("/rest/asset/v1/staticList/byName.json", &[("name", "nope")])
        .await;
    assert_eq!(v["success"], true);
    assert_eq!(
        v["warnings"],
        json!(["No assets found for the given search criteria."])
    );
    assert!(v.get("result").is_none());
    assert_eq!(
        api.get(&format!("/rest/asset/v1/staticList/{id}.json"))
            .await["result"][0]["id"],
        id
    );
    // Duplicate name and bad folder.
    let v = api
        .post_form(
            "/rest/asset/v1/staticLists.json",
            &[
                ("folder", r#"{"id":12,"type":"Folder"}"#),
                ("name", "(test) High Value"),
            ],
        )
        .await;
    assert_eq!(err_code(&v), "709");
    assert_eq!(
        v["warnings"],
        json!([]),
        "asset errors keep the asset envelope"
    );
    let v = api
        .post_form(
            "/rest/asset/v1/staticLists.json",
            &[
                ("folder", r#"{"id":99,"type":"Folder"}"#),
                ("name", "other"),
            ],
        )
        .await;
    assert_eq!(err_code(&v), "710");
    // Folder lookup, list of lists, delete.
    let v = api
        .get_q(
            "/rest/asset/v1/folder/byName.json",
            &[("name", "Group Lists")],
        )
        .await;
    assert_eq!(v["result"][0]["id"], 12);
    let v = api
        .get_q("/rest/asset/v1/staticLists.json", &[("maxReturn", "200")])
        .await;
    assert_eq!(v["result"].as_array().expect("r").len(), 4);
    let v = api
        .post_form(&format!("/rest/asset/v1/staticList/{id}/delete.json"), &[])
        .await;
    assert_eq!(v["result"][0]["id"], id);
    assert_eq!(
        err_code(&api.get(&format!("/rest/v1/lists/{id}.json")).await),
        "1013"
    );
}
