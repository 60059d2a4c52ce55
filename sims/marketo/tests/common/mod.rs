//! Helpers for talking to the simulator over real HTTP.
#![allow(dead_code)]

use audex_marketo_sim::{SimConfig, SimHandle, Simulator};
use serde_json::Value;

pub struct Api {
    pub sim: SimHandle,
    pub http: reqwest::Client,
    pub token: String,
}

impl Api {
    pub async fn start(cfg: SimConfig) -> Api {
        let sim = Simulator::start(cfg).await.expect("simulator starts");
        // No idle pool: its reaper timer would let a paused clock auto-advance.
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .expect("client");
        let mut api = Api {
            sim,
            http,
            token: String::new(),
        };
        api.token = api.fresh_token().await;
        api
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.sim.base_url(), path)
    }

    pub async fn fresh_token(&self) -> String {
        let cfg = self.sim.config();
        let v: Value = self
            .http
            .get(self.url("/identity/oauth/token"))
            .query(&[
                ("grant_type", "client_credentials"),
                ("client_id", cfg.client_id.as_str()),
                ("client_secret", cfg.client_secret.as_str()),
            ])
            .send()
            .await
            .expect("identity")
            .json()
            .await
            .expect("identity json");
        v["access_token"].as_str().expect("token").to_string()
    }

    pub async fn get(&self, path: &str) -> Value {
        self.http
            .get(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json")
    }

    pub async fn get_q(&self, path: &str, q: &[(&str, &str)]) -> Value {
        self.http
            .get(self.url(path))
            .bearer_auth(&self.token)
            .query(q)
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Value {
        self.http
            .post(self.url(path))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json")
    }

    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> Value {
        self.http
            .post(self.url(path))
            .bearer_auth(&self.token)
            .form(form)
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json")
    }

    pub async fn delete_json(&self, path: &str, body: &Value) -> Value {
        self.http
            .delete(self.url(path))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json")
    }

    /// Upsert leads by email; returns the ids in input order.
    pub async fn upsert(&self, emails: &[String]) -> Vec<u64> {
        let input: Vec<Value> = emails
            .iter()
            .map(|e| serde_json::json!({"email": e}))
            .collect();
        let v = self
            .post_json("/rest/v1/leads.json", &serde_json::json!({"input": input}))
            .await;
        assert_eq!(v["success"], true, "{v}");
        v["result"]
            .as_array()
            .expect("result")
            .iter()
            .map(|r| r["id"].as_u64().expect("id"))
            .collect()
    }
}

/// The response-level error code of a `success:false` answer.
pub fn err_code(v: &Value) -> &str {
    assert_eq!(v["success"], false, "expected a failure: {v}");
    v["errors"][0]["code"].as_str().expect("string code")
}

pub fn emails(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}@example.com")).collect()
}
