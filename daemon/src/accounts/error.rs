//! Errors of the account services: a kind (which the HTTP layer alone maps to a status), a stable
//! code for tests and scripts, and a message for people.

use crate::store::StoreError;

/// What sort of refusal an error is. Only `http::error` turns this into a status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed (bad parameter, bad redirect target).
    BadRequest,
    /// No valid credentials.
    Unauthorized,
    /// Valid credentials, not allowed.
    Forbidden,
    /// No such object (or not visible to the caller).
    NotFound,
    /// Well-formed but refused by a rule (Arvados answers 422 here).
    Unprocessable,
    /// Too many attempts.
    Throttled,
    /// A peer could not be reached or answered nonsense.
    Upstream,
    /// Our own fault (storage).
    Internal,
}

/// A refusal or failure, with a stable code.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    /// The sort of error.
    pub kind: ErrorKind,
    /// Stable, machine-readable code, e.g. `merge_to_self`.
    pub code: &'static str,
    /// Human-readable message (Arvados clients show it).
    pub message: String,
    /// For `Throttled`: seconds to wait.
    pub retry_after: Option<u64>,
}

impl Error {
    /// An error of `kind` with a code and message.
    pub fn new(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        Error { kind, code, message: message.into(), retry_after: None }
    }
    /// 400.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, code, message)
    }
    /// 401.
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unauthorized, code, message)
    }
    /// 403.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, code, message)
    }
    /// 404.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, code, message)
    }
    /// 422.
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unprocessable, code, message)
    }

    /// A merge whose old user is already merged away (the local merge and a migration's merge).
    pub fn old_already_merged() -> Self {
        Self::unprocessable("merge_old_already_merged", "cannot merge an already merged user")
    }

    /// A merge into a user that is itself merged away.
    pub fn new_already_merged() -> Self {
        Self::unprocessable("merge_new_already_merged", "cannot merge to an already merged user")
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "storage error");
        Error::new(ErrorKind::Internal, "storage", "internal storage error")
    }
}

/// Result of account services.
pub type Result<T> = std::result::Result<T, Error>;
