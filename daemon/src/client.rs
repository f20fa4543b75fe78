//! A small typed client of the Hearth HTTP API, used by the CLI's admin commands, the demo, the
//! benchmarks and the tests. It holds no business logic: every rule lives in the daemon.

use anyhow::{Context, bail};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

/// A client of one cluster.
#[derive(Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
    act_as: Option<String>,
}

/// An answer: status and JSON body (Null when the body was not JSON).
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: StatusCode,
    /// Parsed body.
    pub body: Value,
}

impl Answer {
    /// The body when the status is 2xx, else an error naming status and body.
    pub fn ok(self) -> anyhow::Result<Value> {
        if self.status.is_success() { Ok(self.body) } else { bail!("HTTP {}: {}", self.status, self.body) }
    }

    /// The Arvados error code (`error_code`) of a refusal.
    pub fn code(&self) -> &str {
        self.body.get("error_code").and_then(Value::as_str).unwrap_or("")
    }
}

impl Client {
    /// A client of `base_url` trusting only `ca_pem` when given (else the system roots).
    pub fn new(base_url: &str, ca_pem: Option<&[u8]>) -> anyhow::Result<Client> {
        let mut b =
            reqwest::Client::builder().timeout(Duration::from_secs(120)).redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = ca_pem {
            let cert = reqwest::Certificate::from_pem(pem).context("bad CA certificate")?;
            b = b.tls_certs_only([cert]);
        }
        Ok(Client { base: base_url.trim_end_matches('/').to_string(), http: b.build()?, token: None, act_as: None })
    }

    /// The same client, authenticating with `token`.
    pub fn with_token(&self, token: &str) -> Client {
        Client { base: self.base.clone(), http: self.http.clone(), token: Some(token.to_string()), act_as: None }
    }

    /// The same client, acting as managed profile `profile` (the header `X-Hearth-Act-As`, sent as
    /// given: the daemon judges it).
    pub fn acting_as(&self, profile: &str) -> Client {
        Client { act_as: Some(profile.to_string()), ..self.clone() }
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The underlying HTTP client.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Any request; `path` starts with `/` and may carry a query string.
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> anyhow::Result<Answer> {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(p) = &self.act_as {
            req = req.header("X-Hearth-Act-As", p);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let bytes = resp.bytes().await?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Answer { status, body })
    }

    /// `GET`.
    pub async fn get(&self, path: &str) -> anyhow::Result<Answer> {
        self.call(Method::GET, path, None).await
    }

    /// `POST` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Answer> {
        self.call(Method::POST, path, Some(body)).await
    }

    /// `PUT` with a JSON body.
    pub async fn put(&self, path: &str, body: &Value) -> anyhow::Result<Answer> {
        self.call(Method::PUT, path, Some(body)).await
    }

    /// `DELETE`.
    pub async fn delete(&self, path: &str) -> anyhow::Result<Answer> {
        self.call(Method::DELETE, path, None).await
    }

    /// `POST /hearth/v1/login`; returns (token, user).
    pub async fn login(&self, login: &str, password: &str, remote: Option<&str>) -> anyhow::Result<(String, Value)> {
        let mut body = json!({"login": login, "password": password});
        if let Some(r) = remote {
            body["remote"] = json!(r);
        }
        let v = self.post("/hearth/v1/login", &body).await?.ok()?;
        let token = v["api_token"].as_str().context("login answer has no api_token")?.to_string();
        Ok((token, v["user"].clone()))
    }

    /// Creates a user (admin) and sets its password; returns the user.
    pub async fn create_user(&self, attrs: Value, password: Option<&str>) -> anyhow::Result<Value> {
        let user = self.post("/arvados/v1/users", &json!({"user": attrs})).await?.ok()?;
        if let Some(pw) = password {
            let uuid = user["uuid"].as_str().context("no uuid")?;
            self.post(&format!("/hearth/v1/users/{uuid}/password"), &json!({"password": pw})).await?.ok()?;
        }
        Ok(user)
    }

    /// Waits until `/healthz` answers (up to `secs`).
    pub async fn wait_healthy(&self, secs: u64) -> anyhow::Result<()> {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            if let Ok(r) = self.get("/healthz").await
                && r.status.is_success()
            {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                bail!("{} did not become healthy within {secs} s", self.base);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
