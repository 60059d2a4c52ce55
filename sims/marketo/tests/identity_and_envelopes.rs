//! Identity, tokens and the two envelope styles (facts §1, §5, §7).
mod common;

use audex_marketo_sim::SimConfig;
use common::{err_code, Api};
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::test]
async fn identity_accepts_get_query_and_post_form_and_reuses_the_token() {
    let api = Api::start(SimConfig::default()).await;
    // GET with query params [A:authentication].
    let r = api
        .http
        .get(api.url("/identity/oauth/token?grant_type=client_credentials&client_id=sim-client-id&client_secret=sim-client-secret"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let a: Value = r.json().await.expect("json");
    assert_eq!(a["token_type"], "bearer");
    assert!(a["access_token"].as_str().expect("token").ends_with(":int"));
    assert!(a["scope"].is_string());
    // POST form-encoded [SEG]: the same token, with remaining life [GRP].
    let b = api
        .post_form(
            "/identity/oauth/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "sim-client-id"),
                ("client_secret", "sim-client-secret"),
            ],
        )
        .await;
    assert_eq!(a["access_token"], b["access_token"]);
    assert!(b["expires_in"].as_u64().expect("expires_in") <= 3600);
    // Identity calls are not counted against limits [SW-id].
    assert_eq!(api.sim.counters().quota_calls, 0);
}

#[tokio::test(start_paused = true)]
async fn expires_in_falls_and_an_expired_token_answers_602() {
    let api = Api::start(SimConfig {
        token_ttl: Duration::from_secs(100),
        ..SimConfig::default()
    })
    .await;
    tokio::time::advance(Duration::from_secs(40)).await;
    let again = api.fresh_token().await;
    assert_eq!(again, api.token);
    let v = api.get("/rest/v1/leads/describe.json").await;
    assert_eq!(v["success"], true);
    tokio::time::advance(Duration::from_secs(61)).await;
    let v = api.get("/rest/v1/leads/describe.json").await;
    assert_eq!(err_code(&v), "602");
    let fresh = api.fresh_token().await;
    assert_ne!(fresh, api.token, "an expired token is replaced");
    // 601/602 answers do not count against the quota [A:error-codes].
    assert_eq!(api.sim.counters().quota_calls, 1);
}

#[tokio::test]
async fn bad_credentials_get_http_401_oauth_body() {
    let api = Api::start(SimConfig::default()).await;
    let r = api
        .http
        .get(api.url("/identity/oauth/token"))
        .query(&[
            ("grant_type", "client_credentials"),
            ("client_id", "sim-client-id"),
            ("client_secret", "wrong"),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.expect("json");
    assert!(["invalid_client", "unauthorized"].contains(&v["error"].as_str().expect("error")));
    assert!(
        !v.to_string().contains("wrong"),
        "the secret is never echoed"
    );
}

#[tokio::test]
async fn missing_unknown_and_query_param_tokens_answer_601() {
    let api = Api::start(SimConfig::default()).await;
    let none: Value = api
        .http
        .get(api.url("/rest/v1/leads/describe.json"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(err_code(&none), "601");
    assert!(none.get("result").is_none(), "failures omit result");
    let bogus: Value = api
        .http
        .get(api.url("/rest/v1/leads/describe.json"))
        .bearer_auth("nope:int")
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(err_code(&bogus), "601");
    // The deprecated access_token query param is refused by default (removed 2026-08-31).
    let q: Value = api
        .http
        .get(api.url("/rest/v1/leads/describe.json"))
        .query(&[("access_token", api.token.as_str())])
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(err_code(&q), "601");
}

#[tokio::test]
async fn query_token_accepted_only_when_enabled() {
    let api = Api::start(SimConfig {
        accept_query_token: true,
        ..SimConfig::default()
    })
    .await;
    let q: Value = api
        .http
        .get(api.url("/rest/v1/leads/describe.json"))
        .query(&[("access_token", api.token.as_str())])
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(q["success"], true);
}

#[tokio::test]
async fn expire_tokens_side_channel() {
    let api = Api::start(SimConfig::default()).await;
    api.sim.expire_tokens();
    assert_eq!(
        err_code(&api.get("/rest/v1/leads/describe.json").await),
        "602"
    );
    let r = api
        .http
        .post(api.url("/_sim/tokens/expire"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn lead_db_envelope_has_no_errors_or_warnings_and_request_id_form() {
    let api = Api::start(SimConfig::default()).await;
    let r = api
        .http
        .get(api.url("/rest/v1/lists/1001.json"))
        .bearer_auth(&api.token)
        .send()
        .await
        .expect("send");
    assert_eq!(
        r.headers()["content-type"],
        "application/json;charset=UTF-8"
    );
    assert_eq!(r.headers()["server"], "nginx");
    let v: Value = r.json().await.expect("json");
    let obj = v.as_object().expect("object");
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["requestId", "result", "success"]);
    let rid = v["requestId"].as_str().expect("rid");
    let (a, b) = rid.split_once('#').expect("hex#hex");
    assert!(
        u64::from_str_radix(a, 16).is_ok() && u64::from_str_radix(b, 16).is_ok(),
        "{rid}"
    );
    assert_eq!(v["result"][0]["name"], "Quickstart");
    assert_eq!(v["result"][0]["workspaceName"], "Default");
}

#[tokio::test]
async fn describe_and_describe2() {
    let api = Api::start(SimConfig {
        custom_fields: vec![audex_marketo_sim::SimField::new("loyaltyTier", "string")],
        ..SimConfig::default()
    })
    .await;
    let v = api.get("/rest/v1/leads/describe.json").await;
    let fields = v["result"].as_array().expect("result");
    let by_name = |n: &str| {
        fields
            .iter()
            .find(|f| f["rest"]["name"] == n)
            .unwrap_or_else(|| panic!("{n} missing"))
            .clone()
    };
    for n in [
        "email",
        "firstName",
        "lastName",
        "city",
        "state",
        "country",
        "postalCode",
        "company",
        "loyaltyTier",
    ] {
        let f = by_name(n);
        assert_eq!(f["rest"]["readOnly"], false, "{n}");
    }
    assert_eq!(by_name("email")["dataType"], "email");
    assert_eq!(by_name("company")["length"], 255);
    for n in ["id", "createdAt", "updatedAt"] {
        assert_eq!(by_name(n)["rest"]["readOnly"], true, "{n}");
    }
    let v2 = api.get("/rest/v1/leads/describe2.json").await;
    let r0 = &v2["result"][0];
    assert_eq!(r0["name"], "API Lead");
    assert_eq!(r0["searchableFields"][0], json!(["email"]));
    let f2 = r0["fields"].as_array().expect("fields");
    let id = f2.iter().find(|f| f["name"] == "id").expect("id");
    assert_eq!(id["updateable"], false);
    assert!(f2
        .iter()
        .any(|f| f["name"] == "loyaltyTier" && f["updateable"] == true));
}

#[tokio::test]
async fn unknown_path_is_610_and_wrong_method_605() {
    let api = Api::start(SimConfig::default()).await;
    assert_eq!(err_code(&api.get("/rest/v1/nothing.json").await), "610");
    // A double slash is not a valid path (facts §2).
    assert_eq!(
        err_code(&api.get("/rest/v1//leads/describe.json").await),
        "610"
    );
    let v: Value = api
        .http
        .put(api.url("/rest/v1/leads.json"))
        .bearer_auth(&api.token)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(err_code(&v), "605");
}
