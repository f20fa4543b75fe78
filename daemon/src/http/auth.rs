//! The one extractor that authenticates API requests, and checks the token's scopes.
//!
//! Tokens come from `Authorization: Bearer …`, `Authorization: OAuth2 …` or the `api_token` query
//! parameter. Handlers that take [`Authed`] cannot run without a valid token whose scopes allow
//! the request; there is no other way to get a [`Caller`].
//!
//! An anonymous session's token is good for the collections API only: [`authenticate`] refuses it
//! everywhere else (401, "an anonymous session can only use collections"), and [`anonymous_refusal`]
//! does the same before routing for every endpoint that does not take [`Authed`] (pages, logins),
//! so that no handler can forget.
//! A request acts as a managed profile when its session was switched to one, or when it carries
//! [`ACT_AS_HEADER`] naming one (DESIGN §4.8); the caller it then gets is the profile, with the
//! token's user as its acting parent, as `Accounts::act_as` decides.

use super::App;
use super::error::ApiError;
use crate::accounts::anonymous::{anonymous_may, collections_only};
use crate::accounts::{Caller, Error, auth::Presented, auth::anonymous_token, auth::invalid_token};
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, Uri, header};
use axum::response::{IntoResponse, Response};
use federation_proto::{ClusterId, ObjectKind, ObjectUuid};
use std::borrow::Cow;
use std::sync::Arc;

/// The header naming the managed profile a request acts as: `X-Hearth-Act-As: <profile uuid>`.
pub const ACT_AS_HEADER: &str = "x-hearth-act-as";

/// An authenticated caller whose token allows this request.
pub struct Authed(pub Caller);

/// Paths where `?remote=<cluster>` makes the token count as salted for that cluster (Arvados).
const REMOTE_FORMS: &[&str] = &["/arvados/v1/users/current", "/arvados/v1/api_client_authorizations/current"];

/// Endpoints allowed under any scope.
const ANY_SCOPE: &[&str] = &["/arvados/v1/api_client_authorizations/current"];

/// Endpoints that serve anyone and read no token, open to an anonymous token too (the Arvados
/// SDK sends its token when it reads the discovery document).
const OPEN_TO_ANONYMOUS: &[&str] =
    &["/discovery/v1/apis/arvados/v1/rest", "/arvados/v1/config", "/arvados/v1/vocabulary", "/healthz", "/readyz"];

/// The raw token a request presents, if any.
pub fn presented_token(parts: &Parts) -> Option<String> {
    presented_in(&parts.headers, &parts.uri)
}

/// The raw token in these headers or this URI's `api_token`, if any.
pub fn presented_in(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    presented_ref(headers, uri).map(Cow::into_owned)
}

/// [`presented_in`], borrowed from the `Authorization` header when it is there (every request
/// reads it twice: in the fence and in [`Authed`]).
fn presented_ref<'a>(headers: &'a HeaderMap, uri: &Uri) -> Option<Cow<'a, str>> {
    if let Some(h) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let h = h.trim();
        for scheme in ["Bearer ", "OAuth2 ", "bearer ", "oauth2 "] {
            if let Some(t) = h.strip_prefix(scheme) {
                return Some(Cow::Borrowed(t.trim()));
            }
        }
        return Some(Cow::Borrowed(""));
    }
    query_in(uri, "api_token").map(Cow::Owned)
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
    query_in(&parts.uri, name)
}

fn query_in(uri: &Uri, name: &str) -> Option<String> {
    let q = uri.query()?;
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
        Presented::Anonymous(token) => {
            if !anonymous_may(method.as_str(), path) {
                return Err(collections_only());
            }
            app.accounts.authenticate_anonymous(&token)?
        }
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
        let raw = presented_ref(&parts.headers, &parts.uri)
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

/// Refuses, before routing, any request that presents an anonymous session's token to anything but
/// the collections API (and the few endpoints that read no token at all): 401, "an anonymous
/// session can only use collections". The token is not looked up: its form says what it is.
/// Every request passes here (in [`super::frame`]); `None` lets it through.
pub fn anonymous_refusal(req: &Request) -> Option<Response> {
    let path = req.uri().path();
    let anonymous = presented_ref(req.headers(), req.uri()).is_some_and(|raw| anonymous_token(&raw).is_some());
    if anonymous && !anonymous_may(req.method().as_str(), path) && !OPEN_TO_ANONYMOUS.contains(&path) {
        return Some(ApiError(collections_only()).into_response());
    }
    None
}
