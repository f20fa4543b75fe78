//! Request parameters the way Arvados clients send them: query string, JSON body or form body,
//! with resource attributes wrapped in the resource name (`{"group": {...}}`) or given as a JSON
//! string in a form field (`group={"name":...}`).

use super::error::{ApiError, ApiResult};
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Largest request body accepted (with the other bounds, in [`bounds`](crate::accounts::bounds)).
pub const MAX_BODY: usize = crate::accounts::bounds::MAX_REQUEST_BODY_BYTES;

/// Query and body parameters of one request.
#[derive(Debug, Default, Clone)]
pub struct Params {
    query: BTreeMap<String, String>,
    body: Map<String, Value>,
    /// The body was a JSON object (not a form).
    json_body: bool,
}

/// Names of Arvados' method parameters (and googleapiclient's global ones): never resource
/// attributes, so left out when a JSON body carries the attributes unwrapped.
const METHOD_PARAMETERS: &[&str] = &[
    "select",
    "ensure_unique_name",
    "cluster_id",
    "async",
    "bypass_federation",
    "replace_files",
    "replace_segments",
    "include_trash",
    "alt",
    "fields",
    "key",
    "oauth_token",
    "prettyPrint",
    "quotaUser",
    "userIp",
    "api_token",
];

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let query: BTreeMap<String, String> = req
            .uri()
            .query()
            .map(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).unwrap_or_default().into_iter().collect())
            .unwrap_or_default();
        let content_type =
            req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::bad_request("body_unreadable", format!("could not read the request body: {e}")))?;
        let body = parse_body(&content_type, &bytes)?;
        let json_body = !body.is_empty() && !content_type.starts_with("application/x-www-form-urlencoded");
        Ok(Params { query, body, json_body })
    }
}

fn parse_body(content_type: &str, bytes: &[u8]) -> ApiResult<Map<String, Value>> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(Map::new());
    }
    if content_type.starts_with("application/x-www-form-urlencoded") {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(bytes)
            .map_err(|e| ApiError::bad_request("malformed_form", format!("malformed form body: {e}")))?;
        return Ok(pairs.into_iter().map(|(k, v)| (k, Value::String(v))).collect());
    }
    // JSON, whether or not the client said so.
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::bad_request("malformed_json", "request body must be a JSON object")),
        Err(e) => Err(ApiError::bad_request("malformed_json", format!("malformed JSON body: {e}"))),
    }
}

impl Params {
    /// Parameters from a JSON object (used by the JSON-only Hearth endpoints' tests and the pages).
    pub fn from_parts(query: BTreeMap<String, String>, body: Map<String, Value>) -> Self {
        let json_body = !body.is_empty();
        Params { query, body, json_body }
    }

    /// A scalar parameter as a string: query first, then body (strings, numbers and booleans).
    pub fn get(&self, name: &str) -> Option<String> {
        if let Some(v) = self.query.get(name) {
            return Some(v.clone());
        }
        match self.body.get(name)? {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            Value::Bool(b) => Some(b.to_string()),
            Value::Number(n) => Some(n.to_string()),
            other => Some(other.to_string()),
        }
    }

    /// A parameter that must be a string if present; a JSON object or array in the body is refused.
    pub fn get_str(&self, name: &str) -> ApiResult<Option<String>> {
        if let Some(v) = self.query.get(name) {
            return Ok(Some(v.clone()));
        }
        match self.body.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => {
                Err(ApiError(crate::accounts::Error::unprocessable("wrong_type", format!("{name} must be a string"))))
            }
        }
    }

    /// The whole JSON body.
    pub fn body(&self) -> &Map<String, Value> {
        &self.body
    }

    /// Resource attributes as Arvados takes them from a create or update: [`Params::attrs`], or,
    /// when neither the body nor the query carries `resource`, a JSON body's own members other
    /// than method parameters (Rails wraps such a body in the resource name; Arvados' admin tools
    /// send some bodies that way, e.g. `arv-federation-migrate` its subproject).
    pub fn resource_attrs(&self, resource: &str) -> ApiResult<Map<String, Value>> {
        if self.json_body && !self.body.contains_key(resource) && !self.query.contains_key(resource) {
            return Ok(self
                .body
                .iter()
                .filter(|(k, _)| !METHOD_PARAMETERS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect());
        }
        self.attrs(resource)
    }

    /// Resource attributes: `body[resource]` (an object, or a JSON string of one), else the query
    /// parameter `resource` as JSON. 422 when missing or not an object.
    pub fn attrs(&self, resource: &str) -> ApiResult<Map<String, Value>> {
        let missing = || {
            ApiError(crate::accounts::Error::unprocessable(
                "missing_attributes",
                format!("request must carry the {resource} attributes as {{\"{resource}\": {{...}}}}"),
            ))
        };
        let raw = match self.body.get(resource) {
            Some(v) => v.clone(),
            None => match self.query.get(resource) {
                Some(s) => Value::String(s.clone()),
                None => return Err(missing()),
            },
        };
        let v = match raw {
            Value::String(s) => serde_json::from_str::<Value>(&s)
                .map_err(|e| ApiError::bad_request("malformed_json", format!("{resource}: malformed JSON: {e}")))?,
            v => v,
        };
        match v {
            Value::Object(m) => Ok(m),
            _ => Err(ApiError(crate::accounts::Error::unprocessable(
                "wrong_type",
                format!("{resource} must be a JSON object"),
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn bodies() {
        assert!(parse_body("application/json", b"{\"a\":1}").unwrap().contains_key("a"));
        assert!(parse_body("application/json", b"{bad").is_err());
        assert!(parse_body("application/json", b"[1]").is_err());
        let f = parse_body("application/x-www-form-urlencoded", b"group=%7B%22name%22%3A%22x%22%7D").unwrap();
        let p = Params { query: BTreeMap::new(), body: f, json_body: false };
        assert_eq!(p.attrs("group").unwrap()["name"], "x");
        assert!(p.attrs("collection").is_err());
        assert!(p.resource_attrs("collection").is_err(), "a form body is never taken unwrapped");
        let j = parse_body("application/json", br#"{"name":"x","ensure_unique_name":true}"#).unwrap();
        let p = Params { query: BTreeMap::new(), body: j, json_body: true };
        assert_eq!(
            p.resource_attrs("group").unwrap(),
            serde_json::from_str::<Map<String, Value>>(r#"{"name":"x"}"#).unwrap()
        );
    }
}
