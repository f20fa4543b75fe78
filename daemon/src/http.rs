//! HTTP: routing, the shared [`App`] state, request metrics. Handlers are thin: parse, call a
//! service, render. Status codes are chosen only in [`error`].

pub mod anonymous;
pub mod anonymous_pages;
pub mod arvados;
pub mod auth;
pub mod discovery;
pub mod error;
pub mod federation;
pub mod legacy;
pub mod login;
pub mod migration;
pub mod migration_pages;
pub mod oidc_pages;
pub mod ops;
pub mod pages;
pub mod params;
pub mod persons;
pub mod profiles;
pub mod return_to;
pub mod session;

use crate::accounts::{Accounts, Caller, Error};
use crate::config::Settings;
use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use federation_proto::{ClusterId, Token};
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;
use std::time::Instant;

use crate::store::records::{AuthorizedKey, Collection, Group, Link};

/// Everything a request handler may use.
pub struct App {
    /// The configuration in force.
    pub settings: Settings,
    /// Account services.
    pub accounts: Accounts,
    /// Peers, keys, notices, the remote cache.
    pub federation: Arc<crate::federation::Federation>,
    /// OpenID Connect providers.
    pub oidc: Arc<crate::oidc::Oidc>,
    /// Renders `/metrics` (none when another daemon in this process owns the recorder).
    pub metrics: Option<PrometheusHandle>,
    /// Mail to admins.
    pub notifier: crate::notify::Notifier,
    /// Permits to run list work ([`list_workers`] of them; see [`App::list_json`]).
    pub list_gate: Arc<tokio::sync::Semaphore>,
}

/// How many list requests scan at once: one core fewer than the machine has (at least one), so
/// that however many heavy lists are asked for, a core is left for the async runtime (`/healthz`,
/// logins, everything else). Further lists wait, in order, without holding a thread.
pub fn list_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
}

impl App {
    /// Runs list work `f` (scan, filters, sort) and the serialization of its answer on the
    /// blocking pool, once one of the [`list_workers`] permits is free. For every list-like request,
    /// whose cost grows with what is stored: none of it may hold up the async runtime, and no more
    /// of it runs at once than leaves a core to the runtime. The permit goes with the work, so a
    /// client that hangs up does not free it before the work is done.
    pub async fn list_json(
        self: &Arc<Self>,
        f: impl FnOnce(&App) -> Result<serde_json::Value, Error> + Send + 'static,
    ) -> error::ApiResult<RenderedJson> {
        let permit = self.list_gate.clone().acquire_owned().await.map_err(|_| {
            error::ApiError(Error::new(crate::accounts::ErrorKind::Internal, "shutdown", "the daemon is stopping"))
        })?;
        let app = self.clone();
        blocking(move || {
            let _permit = permit;
            let v = f(&app)?;
            serde_json::to_vec(&v)
                .map(RenderedJson)
                .map_err(|e| Error::new(crate::accounts::ErrorKind::Internal, "render", e.to_string()))
        })
        .await
    }

    /// The caller for a token issued by another cluster, validated at its home (or cached).
    pub async fn remote_caller(&self, token: &Token, issuer: &ClusterId) -> Result<Caller, Error> {
        self.federation.remote_caller(&self.accounts, token, issuer).await
    }
}

/// Runs blocking work (big merges, notice batches, list scans) off the async runtime. The one place
/// a handler hands work to the blocking pool ([`App::list_json`] builds on it).
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, Error> + Send + 'static) -> error::ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| {
            error::ApiError(Error::new(crate::accounts::ErrorKind::Internal, "join", "background task failed"))
        })?
        .map_err(error::ApiError)
}

/// A JSON body already serialized (on the blocking pool, by [`App::list_json`]).
pub struct RenderedJson(Vec<u8>);

impl axum::response::IntoResponse for RenderedJson {
    fn into_response(self) -> Response {
        use axum::http::{HeaderValue, header};
        let mut resp = Response::new(axum::body::Body::from(self.0));
        // Room for the security headers [`frame`] adds: the map is allocated once.
        *resp.headers_mut() = axum::http::HeaderMap::with_capacity(ANSWER_HEADERS);
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        resp
    }
}

/// How many headers an answer usually carries: its content type and the [security
/// headers](add_security_headers).
const ANSWER_HEADERS: usize = 8;

/// What every request goes through, in one middleware (each `from_fn` layer boxes a future and
/// clones the rest of the stack per request, which `users/current` measurably paid three times):
/// the anonymous fence ([`auth::anonymous_refusal`]), request metrics, and the [security
/// headers](add_security_headers).
async fn frame(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let mut resp = match auth::anonymous_refusal(&req) {
        Some(refused) => refused,
        None => next.run(req).await,
    };
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    request_metrics::record(&method, route, resp.status().as_u16(), started.elapsed().as_secs_f64());
    add_security_headers(&mut resp);
    resp
}

/// The request metrics: `hearth_http_requests_total{method, route, status}` and
/// `hearth_http_request_seconds{method, route}`.
mod request_metrics {
    use axum::http::Method;
    use metrics::{Counter, Histogram};
    use std::cell::RefCell;
    use std::collections::HashMap;

    /// One route's metric handles, by method (and status).
    #[derive(Default)]
    struct Route {
        counters: Vec<(&'static str, u16, Counter)>,
        histograms: Vec<(&'static str, Histogram)>,
    }

    thread_local! {
        /// The handles this thread has recorded into, by route. Looking a metric up in the
        /// recorder builds its key (labels as strings) and hashes it; a handle records straight
        /// into the same metric. Routes are the router's (and "unmatched"), methods the usual
        /// ones, statuses the few there are: a handful of entries each.
        static HANDLES: RefCell<HashMap<Box<str>, Route>> = RefCell::new(HashMap::new());
    }

    /// Records one request. The handles are the recorder's own, so a count is the same whichever
    /// thread answered; `hearth serve` installs the recorder before it listens.
    pub(super) fn record(method: &Method, route: &str, status: u16, seconds: f64) {
        let Some(method) = usual(method) else {
            // Methods outside the usual ones are rare: looked up every time.
            let (method, route) = (method.as_str().to_string(), route.to_string());
            let status = status.to_string();
            metrics::counter!("hearth_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status).increment(1);
            metrics::histogram!("hearth_http_request_seconds", "method" => method, "route" => route).record(seconds);
            return;
        };
        HANDLES.with(|cell| {
            let Ok(mut handles) = cell.try_borrow_mut() else { return };
            if !handles.contains_key(route) {
                handles.insert(route.into(), Route::default());
            }
            let Some(r) = handles.get_mut(route) else { return };
            let counter = match r.counters.iter().find(|(m, s, _)| *m == method && *s == status) {
                Some((_, _, c)) => c,
                None => {
                    let c = metrics::counter!("hearth_http_requests_total", "method" => method, "route" => route.to_string(), "status" => status.to_string());
                    r.counters.push((method, status, c));
                    &r.counters[r.counters.len() - 1].2
                }
            };
            counter.increment(1);
            let histogram = match r.histograms.iter().find(|(m, _)| *m == method) {
                Some((_, h)) => h,
                None => {
                    let h = metrics::histogram!("hearth_http_request_seconds", "method" => method, "route" => route.to_string());
                    r.histograms.push((method, h));
                    &r.histograms[r.histograms.len() - 1].1
                }
            };
            histogram.record(seconds);
        });
    }

    /// The usual methods' names.
    fn usual(m: &Method) -> Option<&'static str> {
        Some(match *m {
            Method::GET => "GET",
            Method::POST => "POST",
            Method::PUT => "PUT",
            Method::PATCH => "PATCH",
            Method::DELETE => "DELETE",
            Method::HEAD => "HEAD",
            Method::OPTIONS => "OPTIONS",
            _ => return None,
        })
    }
}

/// Headers every answer carries: pages may not be framed (clickjacking), the browser keeps to
/// HTTPS, answers that may carry a token are neither cached nor named in a `Referer`, and the
/// pages load nothing but their own inline style.
fn add_security_headers(resp: &mut Response) {
    use axum::http::{HeaderValue, header};
    let h = resp.headers_mut();
    h.reserve(ANSWER_HEADERS - 1);
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.entry(header::REFERRER_POLICY).or_insert(HeaderValue::from_static("no-referrer"));
    h.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
}

/// The refusal when a fixed document (the exported config) could not be rendered.
fn render_failed(e: &impl std::fmt::Display) -> error::ApiError {
    error::ApiError(Error::new(crate::accounts::ErrorKind::Internal, "render", e.to_string()))
}

/// All routes of one daemon.
pub fn router(app: Arc<App>) -> Router {
    use arvados::*;
    let api = Router::<Arc<App>>::new()
        .route("/arvados/v1/users/current", get(users_current))
        .route("/arvados/v1/users/system", get(users_system))
        .route("/arvados/v1/users/merge", post(users_merge))
        .route("/arvados/v1/users/setup", post(users_setup))
        .route("/arvados/v1/users/{uuid}/activate", post(users_activate))
        .route("/arvados/v1/users/{uuid}/unsetup", post(users_unsetup))
        .route("/arvados/v1/users", get(users_list).post(users_create))
        .route("/arvados/v1/users/{uuid}", get(users_get).put(users_update).patch(users_update))
        .route("/arvados/v1/api_client_authorizations/current", get(tokens_current))
        .route("/arvados/v1/api_client_authorizations", get(tokens_list).post(tokens_create))
        .route("/arvados/v1/api_client_authorizations/{uuid}", get(tokens_get).delete(tokens_delete))
        .route("/arvados/v1/groups", get(objects_list::<Group>).post(objects_create::<Group>))
        .route("/arvados/v1/groups/contents", get(groups_contents))
        .route("/arvados/v1/groups/shared", get(groups_shared))
        .route("/arvados/v1/groups/{uuid}/contents", get(groups_contents_of))
        .route("/arvados/v1/groups/{uuid}/trash", post(groups_trash))
        .route("/arvados/v1/groups/{uuid}/untrash", post(groups_untrash))
        .route("/arvados/v1/permissions/{uuid}", get(links_get_permissions))
        .route(
            "/arvados/v1/groups/{uuid}",
            get(objects_get::<Group>)
                .put(objects_update::<Group>)
                .patch(objects_update::<Group>)
                .delete(objects_delete::<Group>),
        )
        .route("/arvados/v1/collections", get(objects_list::<Collection>).post(objects_create::<Collection>))
        .route(
            "/arvados/v1/collections/{uuid}",
            get(objects_get::<Collection>)
                .put(objects_update::<Collection>)
                .patch(objects_update::<Collection>)
                .delete(objects_delete::<Collection>),
        )
        .route("/arvados/v1/links", get(objects_list::<Link>).post(objects_create::<Link>))
        .route(
            "/arvados/v1/links/{uuid}",
            get(objects_get::<Link>)
                .put(objects_update::<Link>)
                .patch(objects_update::<Link>)
                .delete(objects_delete::<Link>),
        )
        .route("/arvados/v1/authorized_keys", get(objects_list::<AuthorizedKey>).post(objects_create::<AuthorizedKey>))
        .route(
            "/arvados/v1/authorized_keys/{uuid}",
            get(objects_get::<AuthorizedKey>)
                .put(objects_update::<AuthorizedKey>)
                .patch(objects_update::<AuthorizedKey>)
                .delete(objects_delete::<AuthorizedKey>),
        )
        .route("/arvados/v1/logs", get(logs_list))
        .route("/arvados/v1/logs/{uuid}", get(logs_get));
    let cluster = app.settings.cluster.id.to_string();
    let public_url = app.settings.cluster.public_url.clone();
    let remote_hosts = app
        .settings
        .federation
        .peers
        .iter()
        .map(|p| (p.id.to_string(), p.url.trim_start_matches("https://").trim_end_matches('/').to_string()))
        .collect();
    let doc = Arc::new(discovery::document(&cluster, &public_url, &remote_hosts));
    // Both are public in Arvados: clients read them before they log in.
    let exported = Arc::new(
        serde_json::to_value(crate::config::export::ExportedConfig::from_settings(&app.settings, params::MAX_BODY))
            .map_err(|e| e.to_string()),
    );
    let vocabulary =
        Arc::new(serde_json::to_value(crate::config::export::Vocabulary::default()).map_err(|e| e.to_string()));
    Router::new()
        .merge(api)
        .route(
            "/discovery/v1/apis/arvados/v1/rest",
            get(move || {
                let doc = doc.clone();
                async move { axum::Json((*doc).clone()) }
            }),
        )
        .route(
            "/arvados/v1/config",
            get(move || {
                let exported = exported.clone();
                async move { (*exported).clone().map(axum::Json).map_err(|e| render_failed(&e)) }
            }),
        )
        .route(
            "/arvados/v1/vocabulary",
            get(move || {
                let vocabulary = vocabulary.clone();
                async move { (*vocabulary).clone().map(axum::Json).map_err(|e| render_failed(&e)) }
            }),
        )
        .route("/federation/v1/keys", get(federation::keys))
        .route("/federation/v1/notices", post(federation::notices))
        .route("/federation/v1/tokens/validate", post(federation::validate_token))
        .route("/hearth/v1/admin/peers", get(federation::admin_peers))
        .route("/federation/v1/users/lookup", post(federation::users_lookup))
        .route("/hearth/v1/admin/federation_report", get(federation::admin_report))
        .route("/hearth/v1/admin/migrate/plan", post(federation::admin_migrate_plan))
        .route("/hearth/v1/admin/migrate/merge", post(federation::admin_migrate_merge))
        .route("/hearth/v1/admin/keys/rotate", post(federation::admin_rotate_key))
        .route("/hearth/v1/migration_candidates", get(migration::candidates))
        .route("/hearth/v1/migrations", post(migration::start))
        .route("/hearth/v1/migrations/{uuid}/confirm", post(migration::confirm))
        .route("/hearth/v1/admin/legacy/import", post(legacy::import))
        .route("/hearth/v1/legacy_offers", get(legacy::offers))
        .route("/hearth/v1/legacy_offers/{legacy_id}/claim", post(legacy::claim))
        .route("/hearth/v1/legacy_offers/{legacy_id}/dismiss", post(legacy::dismiss))
        .route("/legacy/claim", post(legacy::claim_submit))
        .route("/legacy/dismiss", post(legacy::dismiss_submit))
        .route("/hearth/v1/persons", get(persons::list).post(persons::create))
        .route("/hearth/v1/persons/{uuid}", get(persons::get).put(persons::update).patch(persons::update))
        .route("/hearth/v1/persons/{uuid}/attach", post(persons::attach))
        .route("/hearth/v1/persons/{uuid}/claim", post(persons::claim))
        .route("/hearth/v1/claims", get(persons::mine))
        .route("/hearth/v1/admin/claims", get(persons::queue))
        .route("/hearth/v1/admin/claims/{uuid}/approve", post(persons::approve))
        .route("/hearth/v1/admin/claims/{uuid}/reject", post(persons::reject))
        .route("/persons/{uuid}", get(persons::person_page))
        .route("/persons/{uuid}/claim", post(persons::claim_submit))
        .route("/admin/claims", get(persons::queue_page))
        .route("/admin/claims/{uuid}/{decision}", post(persons::decide_submit))
        .route("/hearth/v1/profiles", get(profiles::list).post(profiles::create))
        .route(
            "/hearth/v1/profiles/{uuid}",
            axum::routing::put(profiles::update).patch(profiles::update).delete(profiles::delete),
        )
        .route("/hearth/v1/profiles/{uuid}/hand_over", post(profiles::hand_over))
        .route("/hearth/v1/login", post(login::api_login))
        .route("/hearth/v1/anonymous", post(anonymous::start))
        .route("/hearth/v1/anonymous_imports", post(anonymous::import))
        .route("/hearth/v1/anonymous_imports/discard", post(anonymous::discard))
        .route("/hearth/v1/users/{uuid}/password", post(login::set_password))
        .route("/login", get(pages::login_page).post(pages::login_submit))
        .route("/login/federated", get(pages::login_federated))
        .route("/login/oidc/{id}/start", get(oidc_pages::start))
        .route("/login/oidc/{id}/callback", get(oidc_pages::callback))
        .route("/account/identities/link", post(oidc_pages::link_submit))
        .route("/account/identities/unlink", post(oidc_pages::unlink_submit))
        .route("/hearth/v1/identities", get(oidc_pages::identities_json))
        .route("/hearth/v1/identities/unlink", post(oidc_pages::unlink_json))
        .route("/logout", get(pages::logout_get).post(pages::logout_submit))
        .route("/account", get(pages::account_page))
        .route("/collections", get(anonymous_pages::collections_page).post(anonymous_pages::create_submit))
        .route("/collections/{uuid}/delete", post(anonymous_pages::delete_submit))
        .route("/anonymous/import", get(anonymous_pages::offer_page).post(anonymous_pages::offer_submit))
        .route("/account/profiles", post(pages::profile_create_submit))
        .route("/account/switch", post(pages::switch_submit))
        .route("/account/switch_back", post(pages::switch_back_submit))
        .route("/migrations", post(migration_pages::start_submit))
        .route("/migrations/start", get(migration_pages::start_page))
        .route("/migrations/home", post(migration_pages::make_home_submit))
        .route("/migrations/dismiss", post(migration_pages::dismiss_submit))
        .route("/migrations/{uuid}/return", get(migration_pages::return_page))
        .route("/migrations/{uuid}/confirm", post(migration_pages::confirm_submit))
        .route("/", get(pages::root))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .fallback(no_route)
        .layer(middleware::from_fn(frame))
        .layer(axum::extract::DefaultBodyLimit::max(params::MAX_BODY))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(app)
}
