//! Helpers for talking to the simulator over real HTTP.
#![allow(dead_code)]

use audex_mailchimp_sim::{email, SimConfig, SimHandle, Simulator, DEFAULT_AUDIENCE_ID};
use reqwest::Method;
use serde_json::Value;

/// The default audience.
pub const LIST: &str = DEFAULT_AUDIENCE_ID;

/// One answer.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub content_type: String,
    pub request_id: Option<String>,
    pub text: String,
    pub json: Value,
}

pub struct Api {
    pub sim: SimHandle,
    pub http: reqwest::Client,
    pub key: String,
}

impl Api {
    pub async fn start(cfg: SimConfig) -> Api {
        let sim = Simulator::start(cfg).await.expect("simulator starts");
        // No idle pool: every call gets its own connection, as concurrent clients do.
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .expect("client");
        let key = sim.api_key().to_string();
        Api { sim, http, key }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.sim.api_root(), path)
    }

    pub async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Resp {
        let mut rb = self
            .http
            .request(method, self.url(path))
            .basic_auth("anystring", Some(&self.key));
        if let Some(b) = body {
            rb = rb.json(b);
        }
        resp(rb.send().await.expect("send")).await
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.send(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Resp {
        self.send(Method::PUT, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Resp {
        self.send(Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.send(Method::DELETE, path, None).await
    }

    /// `PUT /lists/LIST/members/{hash}` with this body (its email hashed).
    pub async fn upsert(&self, body: &Value) -> Resp {
        let e = body["email_address"].as_str().expect("email_address");
        self.put(&member_path(e), body).await
    }
}

pub async fn resp(r: reqwest::Response) -> Resp {
    let status = r.status().as_u16();
    let content_type = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let request_id = r
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = r.text().await.expect("body");
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Resp {
        status,
        content_type,
        request_id,
        text,
        json,
    }
}

pub fn member_path(e: &str) -> String {
    format!("/lists/{LIST}/members/{}", email::hash_hex(e))
}

pub fn emails(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}@example.com")).collect()
}

/// Asserts a problem document with this status and title.
pub fn assert_problem(r: &Resp, status: u16, title: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    assert!(
        r.content_type.starts_with("application/problem+json"),
        "{}",
        r.content_type
    );
    assert_eq!(r.json["title"], title, "{}", r.text);
    assert_eq!(r.json["status"], status);
    assert!(r.json["type"]
        .as_str()
        .is_some_and(|t| t.starts_with("https://")));
    assert!(r.json["detail"].is_string());
    assert_eq!(r.json["instance"].as_str(), r.request_id.as_deref());
}
