//! OpenID Connect providers (DESIGN §4.10): discovery, the authorization-code flow with PKCE, and
//! the checks of the ID token. What a checked token means for accounts is `accounts::identities`.
//!
//! - **Discovery** reads `<issuer>/.well-known/openid-configuration` and the JWKS at start (a few
//!   seconds at most) and, for a provider that could not be reached, again in the background with
//!   a growing pause (up to a minute). Until then its login button says it is unavailable and
//!   `/readyz` names it. An ID token signed with a key the JWKS does not hold makes us fetch the
//!   JWKS again, at most once a minute per provider (keys rotate; made-up key ids cost nothing).
//! - **The flow** is the authorization code flow with PKCE (S256), a `state` and a `nonce`, all
//!   bound to the browser that started it: the browser holds a random secret (the `hearth_oidc`
//!   cookie) whose SHA-256 keys the pending record in the store, and the first callback presenting
//!   it takes the record (single use) whatever the outcome.
//! - **The ID token** is checked by the `openidconnect` crate: signature with the provider's JWKS
//!   (asymmetric algorithms only; `none` and HMAC are refused), `iss`, `aud`, `azp`, `exp`, the
//!   `nonce` of this login, and `iat` within ten minutes before and five after now. An `iss` on the
//!   callback (RFC 9207) must be the provider's. Claims are read from the ID token only.
//!
//! HTTP to providers goes through our own reqwest client (rustls with ring, the provider's
//! `ca_cert` when configured, no redirects, bounded answers), handed to `openidconnect` as its
//! async HTTP client. No HTTP types of the server reach this module.

use crate::accounts::identities::{ProviderInfo, VerifiedIdentity};
use crate::accounts::{Error, ErrorKind, random_secret};
use crate::config::{ConfigError, OidcProviderSettings, Settings};
use crate::store::Store;
use crate::store::records::{IdentityClaims, OidcPending, OidcPurpose};
use federation_proto::SecretHash;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreClientAuthMethod, CoreIdTokenVerifier, CoreJsonWebKeySet,
    CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AuthType, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken, HttpRequest, HttpResponse,
    IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, SignatureVerificationError,
    TokenResponse,
};
use std::sync::RwLock;
use std::time::{Duration, Instant};

/// How long a started login may take, from leaving for the provider to coming back.
pub const PENDING_SECS: i64 = 600;
/// The shortest time between two JWKS fetches a key id we do not know may cause.
pub const JWKS_REFETCH_SECS: u64 = 60;
/// Largest answer read from a provider.
const MAX_ANSWER: usize = 1 << 20;

/// Why a provider's HTTP call failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(String);

/// One configured provider.
pub struct Provider {
    /// Its settings.
    pub settings: OidcProviderSettings,
    issuer: String,
    issuer_url: IssuerUrl,
    secret: String,
    http: reqwest::Client,
    state: RwLock<State>,
    /// When an unknown key id last made us fetch the JWKS.
    refetched: tokio::sync::Mutex<Option<Instant>>,
}

enum State {
    /// Not discovered yet: the last error.
    Unavailable(String),
    /// Discovered.
    Ready(Box<Discovered>),
}

struct Discovered {
    metadata: CoreProviderMetadata,
    jwks: CoreJsonWebKeySet,
}

/// A provider as the login page lists it.
#[derive(Debug, Clone)]
pub struct Button {
    /// Configured id.
    pub id: String,
    /// Name for people.
    pub display_name: String,
    /// Discovered and usable.
    pub available: bool,
}

/// A login about to leave for the provider.
pub struct Started {
    /// The provider's authorization URL to send the browser to.
    pub url: String,
    /// The secret the browser keeps (its `hearth_oidc` cookie).
    pub browser_secret: String,
}

/// What the provider's redirect back carried.
#[derive(Debug, Default, Clone)]
pub struct Callback {
    /// `code`.
    pub code: String,
    /// `state`.
    pub state: String,
    /// `iss` (RFC 9207), when sent.
    pub iss: Option<String>,
    /// `error`, when the provider refused.
    pub error: Option<String>,
    /// `error_description`.
    pub error_description: Option<String>,
}

fn refused(code: &'static str, message: impl Into<String>) -> Error {
    Error::forbidden(code, message)
}

fn upstream(code: &'static str, message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Upstream, code, message)
}

async fn send(http: reqwest::Client, req: HttpRequest) -> Result<HttpResponse, HttpError> {
    let (parts, body) = req.into_parts();
    let mut resp = http
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await
        .map_err(|e| HttpError(format!("{e:#}")))?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| HttpError(format!("{e:#}")))? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_ANSWER {
            return Err(HttpError(format!("answer longer than {MAX_ANSWER} bytes")));
        }
    }
    let mut out = openidconnect::http::Response::new(body);
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    Ok(out)
}

impl Provider {
    fn new(i: usize, p: &OidcProviderSettings) -> anyhow::Result<Provider> {
        let key = |k: &str| format!("login.oidc[{i}].{k}");
        let secret = match (&p.client_secret, &p.client_secret_file) {
            (Some(s), _) => s.clone(),
            (None, Some(path)) => {
                let s = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError::invalid(&key("client_secret_file"), format!("{}: {e}", path.display()))
                })?;
                let s = s.trim().to_string();
                if s.is_empty() {
                    return Err(ConfigError::invalid(
                        &key("client_secret_file"),
                        format!("{} is empty", path.display()),
                    )
                    .into());
                }
                s
            }
            (None, None) => return Err(ConfigError::invalid(&key("client_secret"), "is required").into()),
        };
        let mut b = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none());
        if let Some(path) = &p.ca_cert {
            let certs = crate::tls::read_ca_certs(path)
                .map_err(|e| ConfigError::invalid(&key("ca_cert"), format!("{e:#}")))?
                .iter()
                .map(|c| reqwest::Certificate::from_der(c))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ConfigError::invalid(&key("ca_cert"), format!("{e:#}")))?;
            b = b.tls_certs_only(certs);
        }
        let http = b.build().map_err(|e| ConfigError::invalid(&key("ca_cert"), format!("{e:#}")))?;
        let issuer_url = IssuerUrl::new(p.issuer()).map_err(|e| ConfigError::invalid(&key("issuer"), e.to_string()))?;
        Ok(Provider {
            issuer_url,
            issuer: p.issuer(),
            settings: p.clone(),
            secret,
            http,
            state: RwLock::new(State::Unavailable("not discovered yet".into())),
            refetched: tokio::sync::Mutex::new(None),
        })
    }

    /// The configured id.
    pub fn id(&self) -> &str {
        &self.settings.id
    }

    fn info(&self) -> ProviderInfo {
        ProviderInfo {
            id: self.settings.id.clone(),
            issuer: self.issuer.clone(),
            display_name: self.settings.display_name(),
            trusted_email: self.settings.trusted_email,
            orcid: self.settings.subjects_are_orcid(),
        }
    }

    /// Whether discovery succeeded.
    pub fn available(&self) -> bool {
        matches!(*self.state.read().unwrap_or_else(|p| p.into_inner()), State::Ready(_))
    }

    /// `ready`, or why the provider is unavailable.
    pub fn status(&self) -> String {
        match &*self.state.read().unwrap_or_else(|p| p.into_inner()) {
            State::Ready(_) => "ready".into(),
            State::Unavailable(why) => format!("unavailable: {why}"),
        }
    }

    /// Fetches the discovery document and the JWKS; the issuer they name must be the configured one.
    pub async fn discover(&self) -> Result<(), String> {
        let issuer = self.issuer_url.clone();
        let http = self.http.clone();
        let call = move |req: HttpRequest| send(http.clone(), req);
        let result = CoreProviderMetadata::discover_async(issuer, &call).await;
        metrics::counter!("hearth_oidc_jwks_fetches_total", "provider" => self.settings.id.clone()).increment(1);
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(metadata) => {
                let jwks = metadata.jwks().clone();
                *state = State::Ready(Box::new(Discovered { metadata, jwks }));
                Ok(())
            }
            Err(e) => {
                let why = format!("discovery at {} failed: {}", self.issuer, error_chain(&e));
                if !matches!(*state, State::Ready(_)) {
                    *state = State::Unavailable(why.clone());
                }
                Err(why)
            }
        }
    }

    fn metadata(&self) -> Result<(CoreProviderMetadata, CoreJsonWebKeySet), Error> {
        match &*self.state.read().unwrap_or_else(|p| p.into_inner()) {
            State::Ready(d) => Ok((d.metadata.clone(), d.jwks.clone())),
            State::Unavailable(why) => Err(upstream(
                "oidc_unavailable",
                format!("{} is unavailable at the moment ({why}); try again later", self.settings.display_name()),
            )),
        }
    }

    /// Fetches the JWKS again unless an unknown key id already did less than a minute ago.
    /// Returns whether it fetched a new set.
    async fn refetch_jwks(&self) -> bool {
        let mut last = self.refetched.lock().await;
        if last.is_some_and(|t| t.elapsed() < Duration::from_secs(JWKS_REFETCH_SECS)) {
            return false;
        }
        *last = Some(Instant::now());
        let Ok((metadata, _)) = self.metadata() else { return false };
        let http = self.http.clone();
        let call = move |req: HttpRequest| send(http.clone(), req);
        let fetched = CoreJsonWebKeySet::fetch_async(metadata.jwks_uri(), &call).await;
        metrics::counter!("hearth_oidc_jwks_fetches_total", "provider" => self.settings.id.clone()).increment(1);
        match fetched {
            Ok(jwks) => {
                if let State::Ready(d) = &mut *self.state.write().unwrap_or_else(|p| p.into_inner()) {
                    d.jwks = jwks;
                }
                tracing::info!(provider = %self.settings.id, "fetched the provider's keys again (unknown key id)");
                true
            }
            Err(e) => {
                tracing::warn!(provider = %self.settings.id, error = %error_chain(&e), "fetching the provider's keys failed");
                false
            }
        }
    }

    fn client(
        &self,
        metadata: CoreProviderMetadata,
        redirect: RedirectUrl,
    ) -> openidconnect::core::CoreClient<
        openidconnect::EndpointSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointMaybeSet,
        openidconnect::EndpointMaybeSet,
    > {
        let basic_ok = metadata
            .token_endpoint_auth_methods_supported()
            .is_none_or(|m| m.contains(&CoreClientAuthMethod::ClientSecretBasic));
        let auth = if basic_ok { AuthType::BasicAuth } else { AuthType::RequestBody };
        CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.settings.client_id.clone()),
            Some(ClientSecret::new(self.secret.clone())),
        )
        .set_redirect_uri(redirect)
        .set_auth_type(auth)
    }

    fn verifier(&self, jwks: CoreJsonWebKeySet) -> CoreIdTokenVerifier<'static> {
        use CoreJwsSigningAlgorithm as A;
        // A public-client verifier holds no client secret, so an HMAC-signed token cannot verify;
        // the allowed list names asymmetric algorithms only, and `none` is never accepted.
        CoreIdTokenVerifier::new_public_client(
            ClientId::new(self.settings.client_id.clone()),
            self.issuer_url.clone(),
            jwks,
        )
        .set_allowed_algs([
            A::RsaSsaPkcs1V15Sha256,
            A::RsaSsaPkcs1V15Sha384,
            A::RsaSsaPkcs1V15Sha512,
            A::RsaSsaPssSha256,
            A::RsaSsaPssSha384,
            A::RsaSsaPssSha512,
            A::EcdsaP256Sha256,
            A::EcdsaP384Sha384,
            A::EdDsa,
        ])
        .set_issue_time_verifier_fn(|iat| {
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let at = iat.timestamp();
            if at > now + 300 {
                Err(format!("issued in the future ({at}, now {now})"))
            } else if at < now - 600 {
                Err(format!("issued too long ago ({at}, now {now})"))
            } else {
                Ok(())
            }
        })
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// The providers of one cluster.
pub struct Oidc {
    providers: Vec<Provider>,
    public_url: String,
    store: Option<Store>,
}

impl Oidc {
    /// The configured providers, with their secrets and CA certificates read (a file that cannot
    /// be used stops the start, naming its key). Writes nothing; nothing is fetched yet.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Oidc> {
        let providers =
            settings.login.oidc.iter().enumerate().map(|(i, p)| Provider::new(i, p)).collect::<anyhow::Result<_>>()?;
        Ok(Oidc { providers, public_url: settings.cluster.public_url.trim_end_matches('/').to_string(), store: None })
    }

    /// Where pending logins are kept.
    pub fn with_store(mut self, store: Store) -> Oidc {
        self.store = Some(store);
        self
    }

    fn store(&self) -> Result<&Store, Error> {
        self.store.as_ref().ok_or_else(|| Error::new(ErrorKind::Internal, "oidc_store", "no store"))
    }

    /// Whether any provider is configured.
    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
    }

    /// The providers.
    pub fn providers(&self) -> &[Provider] {
        &self.providers
    }

    /// The login buttons, in configuration order.
    pub fn buttons(&self) -> Vec<Button> {
        self.providers
            .iter()
            .map(|p| Button {
                id: p.settings.id.clone(),
                display_name: p.settings.display_name(),
                available: p.available(),
            })
            .collect()
    }

    /// The provider `id`.
    pub fn provider(&self, id: &str) -> Result<&Provider, Error> {
        self.providers
            .iter()
            .find(|p| p.settings.id == id)
            .ok_or_else(|| Error::not_found("oidc_unknown_provider", format!("no login provider {id:?} here")))
    }

    /// The provider `id` as the account rules see it.
    pub fn info(&self, id: &str) -> Result<ProviderInfo, Error> {
        Ok(self.provider(id)?.info())
    }

    /// Discovers every provider, waiting at most `patience` (each provider not ready by then is
    /// left to [`Oidc::keep_discovering`]).
    pub async fn discover_all(self: &std::sync::Arc<Self>, patience: Duration) {
        let mut set = tokio::task::JoinSet::new();
        for i in 0..self.providers.len() {
            let me = self.clone();
            set.spawn(async move {
                let Some(p) = me.providers.get(i) else { return };
                match tokio::time::timeout(patience, p.discover()).await {
                    Ok(Ok(())) => tracing::info!(provider = %p.id(), "OpenID Connect provider discovered"),
                    Ok(Err(why)) => {
                        tracing::warn!(provider = %p.id(), %why, "OpenID Connect provider unavailable; retrying in the background")
                    }
                    Err(_) => {
                        let why = format!("no answer from {} within {} s", p.issuer, patience.as_secs());
                        *p.state.write().unwrap_or_else(|e| e.into_inner()) = State::Unavailable(why.clone());
                        tracing::warn!(provider = %p.id(), %why, "OpenID Connect provider unavailable; retrying in the background");
                    }
                }
            });
        }
        while set.join_next().await.is_some() {}
    }

    /// Discovers the providers still unavailable, again and again (2 s, doubling, at most 60 s
    /// apart), and forgets expired pending logins once a minute (on the replica holding the
    /// background jobs' lease). Runs until the daemon stops.
    pub async fn keep_discovering(&self) {
        let mut pause = Duration::from_secs(2);
        let mut pruned = Instant::now();
        loop {
            tokio::time::sleep(pause).await;
            let mut missing = false;
            for p in self.providers.iter().filter(|p| !p.available()) {
                match p.discover().await {
                    Ok(()) => tracing::info!(provider = %p.id(), "OpenID Connect provider discovered"),
                    Err(why) => {
                        missing = true;
                        tracing::debug!(provider = %p.id(), %why, "OpenID Connect provider still unavailable");
                    }
                }
            }
            pause = if missing { (pause * 2).min(Duration::from_secs(60)) } else { Duration::from_secs(60) };
            if pruned.elapsed() >= Duration::from_secs(60)
                && let Ok(store) = self.store()
            {
                pruned = Instant::now();
                // One replica of the cluster prunes (the holder of the background jobs' lease), off
                // the runtime: the prune reads every pending login.
                let store = store.clone();
                let pruning = tokio::task::spawn_blocking(move || {
                    store.runs_background_jobs().and_then(|ours| {
                        if ours { store.prune_oidc_pending(time::OffsetDateTime::now_utc()) } else { Ok(0) }
                    })
                })
                .await;
                match pruning {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "pruning pending OpenID Connect logins failed"),
                    Err(e) => tracing::warn!(error = %e, "pruning pending OpenID Connect logins stopped"),
                }
            }
        }
    }

    fn redirect_url(&self, id: &str) -> Result<RedirectUrl, Error> {
        RedirectUrl::new(format!("{}/login/oidc/{id}/callback", self.public_url))
            .map_err(|e| Error::new(ErrorKind::Internal, "oidc_redirect_url", e.to_string()))
    }

    /// Starts a login (or a link) at provider `id`: the authorization URL (PKCE S256, state, nonce)
    /// and the secret that binds it to this browser. The pending record is stored under the
    /// secret's hash.
    pub fn start(&self, id: &str, purpose: OidcPurpose) -> Result<Started, Error> {
        let p = self.provider(id)?;
        let (metadata, _) = p.metadata()?;
        let client = p.client(metadata, self.redirect_url(id)?);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut req = client
            .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
            .set_pkce_challenge(challenge);
        for s in p.settings.scopes().into_iter().filter(|s| s != "openid") {
            req = req.add_scope(Scope::new(s));
        }
        let (url, state, nonce) = req.url();
        let browser_secret = random_secret();
        let pending = OidcPending {
            provider: id.to_string(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
            purpose,
            expires_at: time::OffsetDateTime::now_utc() + time::Duration::seconds(PENDING_SECS),
        };
        self.store()?.put_oidc_pending(&SecretHash::of(&browser_secret).to_hex(), &pending)?;
        Ok(Started { url: url.to_string(), browser_secret })
    }

    /// Takes the pending login this browser's secret names (single use: it is gone afterwards,
    /// whatever happens next). Refused when there is none or it expired.
    pub fn take(&self, browser_secret: Option<&str>) -> Result<OidcPending, Error> {
        let not_here = || {
            refused(
                "oidc_not_started_here",
                "this sign-in was not started in this browser, or it was already used or expired; nothing was changed, please start again",
            )
        };
        let secret = browser_secret.filter(|s| s.len() >= 32).ok_or_else(not_here)?;
        let pending = self.store()?.take_oidc_pending(&SecretHash::of(secret).to_hex())?.ok_or_else(not_here)?;
        if pending.expires_at < time::OffsetDateTime::now_utc() {
            return Err(not_here());
        }
        Ok(pending)
    }

    /// Finishes a login at the callback of provider `id`: the `state` must be the pending one's,
    /// the code is exchanged (with the PKCE verifier) and the ID token checked. Returns who the
    /// provider says the person is.
    pub async fn finish(
        &self,
        id: &str,
        pending: &OidcPending,
        cb: &Callback,
    ) -> Result<(ProviderInfo, VerifiedIdentity), Error> {
        use subtle::ConstantTimeEq;
        let p = self.provider(id)?;
        if pending.provider != id {
            return Err(refused("oidc_wrong_provider", "this sign-in was started with another provider"));
        }
        if !bool::from(pending.state.as_bytes().ct_eq(cb.state.as_bytes())) {
            return Err(refused(
                "oidc_state_mismatch",
                "the provider's answer does not belong to this sign-in (state)",
            ));
        }
        if let Some(err) = &cb.error {
            let more = cb.error_description.as_deref().map(|d| format!(": {d}")).unwrap_or_default();
            return Err(refused("oidc_provider_refused", format!("{} said {err}{more}", p.settings.display_name())));
        }
        if let Some(iss) = &cb.iss
            && iss != &p.issuer
        {
            return Err(refused("oidc_issuer_mismatch", "the answer names another issuer"));
        }
        if cb.code.is_empty() {
            return Err(refused("oidc_no_code", "the provider sent no authorization code"));
        }
        let (metadata, _) = p.metadata()?;
        let client = p.client(metadata, self.redirect_url(id)?);
        let http = p.http.clone();
        let call = move |req: HttpRequest| send(http.clone(), req);
        let token = client
            .exchange_code(AuthorizationCode::new(cb.code.clone()))
            .map_err(|e| upstream("oidc_no_token_endpoint", e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
            .request_async(&call)
            .await
            .map_err(|e| {
                refused("oidc_token_exchange", format!("the code exchange at {} failed: {}", p.issuer, error_chain(&e)))
            })?;
        let id_token =
            token.id_token().ok_or_else(|| refused("oidc_no_id_token", "the provider sent no ID token"))?.clone();
        let nonce = Nonce::new(pending.nonce.clone());
        let mut retried = false;
        let claims = loop {
            let (_, jwks) = p.metadata()?;
            let verifier = p.verifier(jwks);
            match id_token.claims(&verifier, &nonce) {
                Ok(c) => break c.clone(),
                Err(ClaimsVerificationError::SignatureVerification(SignatureVerificationError::NoMatchingKey))
                    if !retried =>
                {
                    retried = true;
                    if !p.refetch_jwks().await {
                        return Err(refused(
                            "oidc_id_token_refused",
                            "the ID token is signed with a key the provider does not publish",
                        ));
                    }
                }
                Err(e) => return Err(refused("oidc_id_token_refused", format!("the ID token was refused: {e}"))),
            }
        };
        let name = |c: Option<&openidconnect::LocalizedClaim<openidconnect::EndUserName>>| {
            c.and_then(|n| n.get(None)).map(|n| n.as_str().to_string())
        };
        let who = VerifiedIdentity {
            subject: claims.subject().as_str().to_string(),
            claims: IdentityClaims {
                email: claims.email().map(|e| e.as_str().to_string()),
                email_verified: claims.email_verified(),
                name: name(claims.name()),
                given_name: claims.given_name().and_then(|n| n.get(None)).map(|n| n.as_str().to_string()),
                family_name: claims.family_name().and_then(|n| n.get(None)).map(|n| n.as_str().to_string()),
                preferred_username: claims.preferred_username().map(|u| u.as_str().to_string()),
            },
        };
        Ok((p.info(), who))
    }
}
