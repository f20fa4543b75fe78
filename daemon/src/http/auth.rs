//! The one extractor that authenticates API requests, and checks the token's scopes.
//!
//! Tokens come from `Authorization: Bearer …`, `Authorization: OAuth2 …` or the `api_token` query
//! parameter. Handlers that take [`Authed`] cannot run without a valid token whose scopes allow
//! the request; there is no other way to get a [`Caller`].
//!
//! A request acts as a managed profile when its session was switched to one, or when it carries
//! [`ACT_AS_HEADER`] naming one (DESIGN §4.8); the caller it then gets is the profile, with the
//! token's user as its acting parent, as `Accounts::act_as` decides.

use super::App;
use super::error::ApiError;
use crate::accounts::{Caller, Error, auth::Presented, auth::invalid_token};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, header};
use federation_proto::{ClusterId, ObjectKind, ObjectUuid};
use std::sync::Arc;

/// The header naming the managed profile a request acts as: `X-Hearth-Act-As: <profile uuid>`.
pub const ACT_AS_HEADER: &str = "x-hearth-act-as";

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

/// The profile a request names in [`ACT_AS_HEADER`]: none, or exactly one user uuid. Anything
/// else — the header twice, an empty value, a malformed uuid or one of another kind — is a malformed
/// request (400), told apart from a well-formed uuid one may not act as (403), which says nothing
/// about whether that user exists.
pub fn act_as_header(parts: &Parts) -> Result<Option<ObjectUuid>, Error> {
    let mut values = parts.headers.get_all(ACT_AS_HEADER).iter();
    let Some(v) = values.next() else { return Ok(None) };
    let bad = |why: &str| Error::bad_request("invalid_act_as", format!("X-Hearth-Act-As: {why}"));
    if values.next().is_some() {
        return Err(bad("give the header once, naming one profile"));
    }
    let raw = v.to_str().map_err(|_| bad("the value must be a user uuid, <cluster>-tpzed-<15 characters>"))?.trim();
    let uuid: ObjectUuid = raw
        .parse()
        .map_err(|_| bad(&format!("{raw:?} is not a user uuid (<cluster>-tpzed-<15 characters of [a-z0-9]>)")))?;
    if uuid.kind() != ObjectKind::User {
        return Err(bad(&format!("{uuid} is not a user uuid (<cluster>-tpzed-…)")));
    }
    Ok(Some(uuid))
}

/// One query parameter.
pub fn query_param(parts: &Parts, name: &str) -> Option<String> {
    let q = parts.uri.query()?;
    serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok()?.into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// Authenticates `raw` for a request to `method path` (scopes checked), possibly on the `?remote=`
/// form, acting as the profile its session switched to or `act_as` names, if any.
pub async fn authenticate(
    app: &Arc<App>,
    raw: &str,
    method: &Method,
    path: &str,
    remote: Option<&str>,
    act_as: Option<&ObjectUuid>,
) -> Result<Caller, Error> {
    let caller = credentials(app, raw, method, path, remote).await?;
    app.accounts.effective_caller(caller, act_as)
}

/// The caller `raw` authenticates as itself (before any profile is acted as), its scopes checked
/// for `method path`.
async fn credentials(
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
        let caller = credentials(app, &raw, &parts.method, parts.uri.path(), remote.as_deref()).await?;
        // The header is judged once the credentials are: a request without them is told only that.
        let act_as = act_as_header(parts)?;
        let caller = app.accounts.effective_caller(caller, act_as.as_ref())?;
        Ok(Authed(caller))
    }
}
