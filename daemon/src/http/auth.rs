//! The one extractor that authenticates API requests, and checks the token's scopes.
//!
//! Tokens come from `Authorization: Bearer …`, `Authorization: OAuth2 …` or the `api_token` query
//! parameter. Handlers that take [`Authed`] cannot run without a valid token whose scopes allow
//! the request; there is no other way to get a [`Caller`].

use super::App;
use super::error::ApiError;
use crate::accounts::{Caller, Error, auth::Presented, auth::invalid_token};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, header};
use federation_proto::ClusterId;
use std::sync::Arc;

/// An authenticated caller whose token allows this request.
pub struct Authed(pub Caller);

/// Paths where `?remote=<cluster>` makes the token count as salted for that cluster (Arvados).
const REMOTE_FORMS: &[&str] = &["/arvados/v1/users/current", "/arvados/v1/api_client_authorizations/current"];

/// Endpoints allowed under any scope.
const ANY_SCOPE: &[&str] = &["/arvados/v1/api_client_authorizations/current"];

/// The raw token a request presents, if any.
pub fn presented_token(parts: &Parts) -> Option<String> {
    if let Some(h) = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let h = h.trim();
        for scheme in ["Bearer ", "OAuth2 ", "bearer ", "oauth2 "] {
            if let Some(t) = h.strip_prefix(scheme) {
                return Some(t.trim().to_string());
            }
        }
        return Some(String::new());
    }
    query_param(parts, "api_token")
}

/// One query parameter.
pub fn query_param(parts: &Parts, name: &str) -> Option<String> {
    let q = parts.uri.query()?;
    serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok()?.into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// Authenticates `raw` for a request to `method path` (scopes checked), possibly on the `?remote=` form.
pub async fn authenticate(
    app: &Arc<App>,
    raw: &str,
    method: &Method,
    path: &str,
    remote: Option<&str>,
) -> Result<Caller, Error> {
    if app.accounts.is_system_root_token(raw) {
        return app.accounts.system_root_caller();
    }
    let caller = match app.accounts.parse_presented(raw)? {
        Presented::Local(token) => match remote {
            Some(r) if *method == Method::GET && REMOTE_FORMS.contains(&path) => {
                let r: ClusterId =
                    r.parse().map_err(|_| Error::bad_request("invalid_remote", "Invalid remote cluster id"))?;
                if &r == app.accounts.cluster() {
                    app.accounts.authenticate_local(&token)?
                } else {
                    app.accounts.authenticate_salted(&token, &r)?
                }
            }
            _ => app.accounts.authenticate_local(&token)?,
        },
        Presented::Remote(token, issuer) => app.remote_caller(&token, &issuer).await?,
    };
    if !ANY_SCOPE.contains(&path) && !caller.scopes.allows(method.as_str(), path) {
        return Err(Error::forbidden("scope_forbids", format!("token scope does not allow {method} {path}")));
    }
    Ok(caller)
}

impl FromRequestParts<Arc<App>> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Self::Rejection> {
        let raw = presented_token(parts)
            .ok_or_else(|| ApiError(Error::unauthorized("not_logged_in", "Not logged in: no API token")))?;
        if raw.is_empty() {
            return Err(ApiError(invalid_token()));
        }
        let remote = query_param(parts, "remote");
        let caller = authenticate(app, &raw, &parts.method, parts.uri.path(), remote.as_deref()).await?;
        Ok(Authed(caller))
    }
}
