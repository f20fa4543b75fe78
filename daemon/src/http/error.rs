//! The one place where errors become HTTP statuses and Arvados-shaped bodies.
//!
//! Body: `{"errors": ["<message>"], "error_token": "<unix>+<8 hex>", "error_code": "<stable code>"}`.
//! Deterministic refusals never use 408, 409, 423 or 5xx, which the Arvados client retries.

use crate::accounts::{Error, ErrorKind};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rand::RngExt;
use serde_json::json;

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError(e.into())
    }
}

impl ApiError {
    /// 400 with a code.
    pub fn bad_request(code: &'static str, msg: impl Into<String>) -> Self {
        ApiError(Error::bad_request(code, msg))
    }
}

/// The status each kind of error gets.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
        ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::Throttled => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Upstream => StatusCode::BAD_GATEWAY,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A fresh `error_token`, as Arvados makes them: `<unix seconds>+<8 hex>`.
pub fn error_token() -> String {
    let secs = time::OffsetDateTime::now_utc().unix_timestamp();
    format!("{secs}+{:08x}", rand::rng().random::<u32>())
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = self.0;
        let status = status_of(e.kind);
        let body = json!({"errors": [e.message], "error_token": error_token(), "error_code": e.code});
        let mut resp = (status, axum::Json(body)).into_response();
        if let Some(secs) = e.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

/// Result of handlers.
pub type ApiResult<T> = Result<T, ApiError>;
