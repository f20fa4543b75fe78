//! Typed settings, loaded once at start and validated with messages that name the key.
//!
//! The file is TOML read through the `config` crate; every key can be overridden by an environment
//! variable `HEARTH_<SECTION>__<KEY>` (for example `HEARTH_CLUSTER__LISTEN`). Unknown keys and bad
//! values stop the start: [`Settings::load`] returns an error whose message names the key.

pub mod export;

use federation_proto::ClusterId;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or parsed, or a key is unknown or has the wrong type.
    #[error("config: {0}")]
    Load(String),
    /// A value parsed but is not acceptable.
    #[error("config: {key}: {message}")]
    Invalid {
        /// The dotted key, e.g. `cluster.public_url`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

impl ConfigError {
    /// A refusal of the value of `key` (also for files a key names that cannot be used).
    pub fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid { key: key.to_string(), message: message.into() }
    }
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::invalid(key, message)
}

/// All settings of one cluster's daemon.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `[cluster]`: who we are and where we listen.
    pub cluster: ClusterSettings,
    /// `[tls]`: the server certificate.
    #[serde(default)]
    pub tls: TlsSettings,
    /// `[http]`: connection limits of the HTTPS server.
    #[serde(default)]
    pub http: HttpSettings,
    /// `[store]`: the embedded database.
    #[serde(default)]
    pub store: StoreSettings,
    /// `[federation]`: signing key and peers.
    #[serde(default)]
    pub federation: FederationSettings,
    /// `[login]`: passwords, sessions and redirects.
    #[serde(default)]
    pub login: LoginSettings,
    /// `[policy]`: limits and operator choices.
    #[serde(default)]
    pub policy: PolicySettings,
    /// `[log]`: log format and filter.
    #[serde(default)]
    pub log: LogSettings,
    /// `[anonymous]`: work done before logging in.
    #[serde(default)]
    pub anonymous: AnonymousSettings,
    /// `[notify]`: email to admins (new person claims).
    #[serde(default)]
    pub notify: NotifySettings,
}

/// `[notify]`: where admins are told about work waiting for them (a new pending person claim).
/// Without `smtp_url` and `admin_emails` the admin queue page is the only notice.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NotifySettings {
    /// `smtp://host:port` (plain, for a relay on the host), `smtp://…?tls=required` (STARTTLS) or
    /// `smtps://host:port`; user and password may be given as `smtp://user:pass@host`.
    #[serde(default)]
    pub smtp_url: Option<String>,
    /// Who receives the notices.
    #[serde(default)]
    pub admin_emails: Vec<String>,
    /// The sender address (default `hearth@<cluster id>.invalid`).
    #[serde(default)]
    pub from: Option<String>,
}

/// `[cluster]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSettings {
    /// The 5-character cluster id.
    pub id: ClusterId,
    /// Address to listen on, e.g. `127.0.0.1:8443` (port 0 picks a free port).
    pub listen: String,
    /// The URL clients and peers use, e.g. `https://aaaaa.example.org`.
    pub public_url: String,
    /// Directory for the sled store (with `store.backend = "sled"`), the signing key and TLS files.
    pub data_dir: PathBuf,
    /// A token with full admin power, for operators' scripts (optional).
    #[serde(default)]
    pub system_root_token: Option<String>,
}

/// `[tls]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM certificate chain.
    pub cert: Option<PathBuf>,
    /// PEM private key.
    pub key: Option<PathBuf>,
    /// Generate a self-signed certificate (into the data dir) when none is configured.
    #[serde(default)]
    pub self_signed: bool,
}

/// `[http]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Seconds a client has to complete the TLS handshake, and then to send each request's headers
    /// (on HTTP/1.1 the wait for the next request of a kept-alive connection counts too, so this is
    /// also how long an idle connection stays open).
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout_secs: u64,
}

/// `[store]`: the database.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    /// Which database holds the data.
    #[serde(default)]
    pub backend: StoreBackend,
    /// MiB of sled's page cache, [`MIN_STORE_CACHE_MIB`] to [`MAX_STORE_CACHE_MIB`]. The daemon's
    /// resident memory is about this plus a few tens of MiB; lists read through indexes and need
    /// little of it. sled only.
    #[serde(default = "default_store_cache_mib")]
    pub cache_mib: u64,
    /// The PostgreSQL connection URL (`postgresql://user@host:port/db`, `?sslmode=require` for
    /// TLS); required with `backend = "postgres"`.
    #[serde(default)]
    pub url: Option<String>,
    /// Connections in the PostgreSQL pool, [`MIN_STORE_POOL_SIZE`] to [`MAX_STORE_POOL_SIZE`].
    #[serde(default = "default_store_pool_size")]
    pub pool_size: usize,
}

/// `store.backend`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// sled, embedded, in `cluster.data_dir`.
    #[default]
    Sled,
    /// A PostgreSQL server (`store.url`).
    Postgres,
}

/// Smallest `store.pool_size`.
pub const MIN_STORE_POOL_SIZE: usize = 1;
/// Largest `store.pool_size`.
pub const MAX_STORE_POOL_SIZE: usize = 64;

fn default_store_pool_size() -> usize {
    8
}

/// Smallest `store.cache_mib`.
pub const MIN_STORE_CACHE_MIB: u64 = 8;
/// Largest `store.cache_mib` (64 GiB).
pub const MAX_STORE_CACHE_MIB: u64 = 65_536;

fn default_store_cache_mib() -> u64 {
    crate::store::DEFAULT_CACHE_BYTES >> 20
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            backend: StoreBackend::Sled,
            cache_mib: default_store_cache_mib(),
            url: None,
            pool_size: default_store_pool_size(),
        }
    }
}

impl StoreSettings {
    /// How the store is opened.
    pub fn options(&self) -> crate::store::StoreOptions {
        let postgres = match (self.backend, &self.url) {
            (StoreBackend::Postgres, Some(url)) => {
                Some(crate::store::PostgresOptions { url: url.clone(), pool_size: self.pool_size })
            }
            _ => None,
        };
        crate::store::StoreOptions { cache_bytes: self.cache_mib << 20, postgres }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if !(MIN_STORE_CACHE_MIB..=MAX_STORE_CACHE_MIB).contains(&self.cache_mib) {
            return Err(invalid(
                "store.cache_mib",
                format!("must be from {MIN_STORE_CACHE_MIB} to {MAX_STORE_CACHE_MIB}"),
            ));
        }
        if !(MIN_STORE_POOL_SIZE..=MAX_STORE_POOL_SIZE).contains(&self.pool_size) {
            return Err(invalid(
                "store.pool_size",
                format!("must be from {MIN_STORE_POOL_SIZE} to {MAX_STORE_POOL_SIZE}"),
            ));
        }
        match (self.backend, &self.url) {
            (StoreBackend::Postgres, None) => {
                Err(invalid("store.url", "is required with store.backend = \"postgres\""))
            }
            (StoreBackend::Postgres, Some(url)) => {
                crate::store::parse_postgres_url(url).map(|_| ()).map_err(|m| invalid("store.url", m))
            }
            (StoreBackend::Sled, Some(_)) => {
                Err(invalid("store.url", "is only for store.backend = \"postgres\" (the backend is sled)"))
            }
            (StoreBackend::Sled, None) => Ok(()),
        }
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings { header_read_timeout_secs: default_header_read_timeout() }
    }
}

/// One peer cluster.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerSettings {
    /// The peer's cluster id.
    pub id: ClusterId,
    /// The peer's base URL (`https://…`).
    pub url: String,
    /// The peer's pinned verify key, `ed25519:<base64>`.
    pub public_key: String,
    /// A CA certificate (PEM) that signs the peer's server certificate; without it the system roots are used.
    #[serde(default)]
    pub ca_cert: Option<PathBuf>,
}

/// `[federation]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederationSettings {
    /// Signing key file; generated at first start when missing. Default: `<data_dir>/signing.key`.
    #[serde(default)]
    pub signing_key: Option<PathBuf>,
    /// Peers.
    #[serde(default)]
    pub peers: Vec<PeerSettings>,
    /// How long a validated remote token is trusted before it is checked again.
    #[serde(default = "default_remote_token_refresh")]
    pub remote_token_refresh_secs: u64,
    /// Upper bound of the notice sender's retry backoff.
    #[serde(default = "default_backoff_cap")]
    pub retry_backoff_cap_secs: u64,
    /// `[federation.validation]`: what tokens we cannot check locally may make us ask of peers.
    #[serde(default)]
    pub validation: ValidationSettings,
}

impl Default for FederationSettings {
    fn default() -> Self {
        FederationSettings {
            signing_key: None,
            peers: Vec::new(),
            remote_token_refresh_secs: default_remote_token_refresh(),
            retry_backoff_cap_secs: default_backoff_cap(),
            validation: ValidationSettings::default(),
        }
    }
}

/// `[federation.validation]`: a token bucket per issuing peer bounds the validation round trips
/// we send it (new tokens and refreshes alike); a request beyond it is answered 429.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidationSettings {
    /// Validations per second each peer's bucket regains.
    #[serde(default = "default_validations_per_sec")]
    pub per_peer_per_sec: u32,
    /// Validations a peer's bucket holds (the largest burst).
    #[serde(default = "default_validation_burst")]
    pub per_peer_burst: u32,
}

impl Default for ValidationSettings {
    fn default() -> Self {
        ValidationSettings {
            per_peer_per_sec: default_validations_per_sec(),
            per_peer_burst: default_validation_burst(),
        }
    }
}

/// `[login]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginSettings {
    /// Origins (`https://host[:port]`) that `return_to` may point at besides our own.
    #[serde(default)]
    pub trusted_origins: Vec<String>,
    /// Lifetime of tokens issued by a login, in seconds.
    #[serde(default = "default_token_lifetime")]
    pub token_lifetime_secs: u64,
    /// Failed password attempts allowed per account, and per source address, inside the window.
    #[serde(default = "default_max_failures")]
    pub max_failures: u32,
    /// The throttling window in seconds.
    #[serde(default = "default_failure_window")]
    pub failure_window_secs: u64,
    /// When an unknown login's verified email is cached from a peer, send the person there at once
    /// (true) instead of offering "continue at <cluster>" (false).
    #[serde(default)]
    pub redirect_to_home: bool,
    /// `[[login.oidc]]`: OpenID Connect providers people may log in with.
    #[serde(default)]
    pub oidc: Vec<OidcProviderSettings>,
    /// A first login with an identity no account holds creates an account (else it is refused).
    #[serde(default = "default_true")]
    pub oidc_create_users: bool,
}

/// The ORCID preset's issuer.
pub const ORCID_ISSUER: &str = "https://orcid.org";

/// One `[[login.oidc]]` provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcProviderSettings {
    /// Short name in URLs (`/login/oidc/<id>/…`): 1–32 of `[a-z0-9_-]`.
    pub id: String,
    /// What the login button says ("Log in with <display_name>"). Default: the preset's name, or `id`.
    #[serde(default)]
    pub display_name: Option<String>,
    /// `orcid`: issuer `https://orcid.org`, scopes `openid`, and the subject is the ORCID iD.
    #[serde(default)]
    pub preset: Option<String>,
    /// The issuer URL (`https://…`); discovery reads `<issuer>/.well-known/openid-configuration`.
    #[serde(default)]
    pub issuer: Option<String>,
    /// The client id registered at the provider.
    pub client_id: String,
    /// The client secret, or
    #[serde(default)]
    pub client_secret: Option<String>,
    /// a file holding it (trimmed), read at start.
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// Scopes to ask for. Default: `openid email profile` (`openid` for ORCID); `openid` is always asked.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// The provider's `email_verified: true` counts as verified here (false: it never does).
    #[serde(default)]
    pub trusted_email: bool,
    /// A CA certificate (PEM) to trust for the provider's TLS instead of the system roots.
    #[serde(default)]
    pub ca_cert: Option<PathBuf>,
    /// The provider's subjects are ORCID iDs (implied by `preset = "orcid"`).
    #[serde(default)]
    pub orcid: bool,
}

impl OidcProviderSettings {
    fn is_orcid_preset(&self) -> bool {
        self.preset.as_deref() == Some("orcid")
    }

    /// The issuer URL (the preset's when none is set).
    pub fn issuer(&self) -> String {
        match (&self.issuer, self.is_orcid_preset()) {
            (Some(i), _) => i.clone(),
            (None, true) => ORCID_ISSUER.to_string(),
            (None, false) => String::new(),
        }
    }

    /// What the login button names.
    pub fn display_name(&self) -> String {
        match (&self.display_name, self.is_orcid_preset()) {
            (Some(d), _) => d.clone(),
            (None, true) => "ORCID".to_string(),
            (None, false) => self.id.clone(),
        }
    }

    /// The scopes asked for, `openid` first.
    pub fn scopes(&self) -> Vec<String> {
        let default: &[&str] = if self.is_orcid_preset() { &["openid"] } else { &["openid", "email", "profile"] };
        let mut out = vec!["openid".to_string()];
        let chosen = self.scopes.clone().unwrap_or_else(|| default.iter().map(|s| s.to_string()).collect());
        out.extend(chosen.into_iter().filter(|s| s != "openid"));
        out
    }

    /// Whether subjects are ORCID iDs.
    pub fn subjects_are_orcid(&self) -> bool {
        self.orcid || self.is_orcid_preset()
    }
}

impl Default for LoginSettings {
    fn default() -> Self {
        LoginSettings {
            trusted_origins: Vec::new(),
            token_lifetime_secs: default_token_lifetime(),
            max_failures: default_max_failures(),
            failure_window_secs: default_failure_window(),
            redirect_to_home: false,
            oidc: Vec::new(),
            oidc_create_users: true,
        }
    }
}

/// `[policy]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySettings {
    /// Longest lifetime a non-admin may give a token it creates (0 = no limit).
    #[serde(default)]
    pub max_token_lifetime_secs: u64,
    /// Users created by an admin are active unless the request says otherwise.
    #[serde(default = "default_true")]
    pub new_users_active: bool,
    /// Largest `limit` a list request may ask for.
    #[serde(default = "default_max_list_limit")]
    pub max_list_limit: u64,
}

impl Default for PolicySettings {
    fn default() -> Self {
        PolicySettings { max_token_lifetime_secs: 0, new_users_active: true, max_list_limit: default_max_list_limit() }
    }
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// `text` or `json`.
    #[serde(default = "default_log_format")]
    pub format: String,
    /// A tracing filter, e.g. `info` or `hearth=debug`.
    #[serde(default = "default_log_filter")]
    pub filter: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings { format: default_log_format(), filter: default_log_filter() }
    }
}

fn default_header_read_timeout() -> u64 {
    10
}

/// `[anonymous]`: sessions of browsers and scripts that are not logged in, and their collections.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AnonymousSettings {
    /// New anonymous sessions one source address may start per hour (beyond: 429).
    #[serde(default = "default_anon_sessions_per_source")]
    pub max_sessions_per_source_per_hour: u32,
    /// Collections one anonymous session may hold (beyond: 422).
    #[serde(default = "default_anon_max_collections")]
    pub max_collections: u32,
    /// An anonymous session, with its collections, goes this many seconds after its last use.
    #[serde(default = "default_anon_lifetime")]
    pub lifetime_secs: u64,
}

impl Default for AnonymousSettings {
    fn default() -> Self {
        AnonymousSettings {
            max_sessions_per_source_per_hour: default_anon_sessions_per_source(),
            max_collections: default_anon_max_collections(),
            lifetime_secs: default_anon_lifetime(),
        }
    }
}

fn default_anon_sessions_per_source() -> u32 {
    20
}
fn default_anon_max_collections() -> u32 {
    100
}
fn default_anon_lifetime() -> u64 {
    7 * 24 * 3600
}
fn default_remote_token_refresh() -> u64 {
    300
}
fn default_backoff_cap() -> u64 {
    300
}
fn default_validations_per_sec() -> u32 {
    50
}
fn default_validation_burst() -> u32 {
    100
}
fn default_token_lifetime() -> u64 {
    14 * 24 * 3600
}
fn default_max_failures() -> u32 {
    10
}
fn default_failure_window() -> u64 {
    300
}
fn default_true() -> bool {
    true
}
fn default_max_list_limit() -> u64 {
    1000
}
fn default_log_format() -> String {
    "text".into()
}
fn default_log_filter() -> String {
    "info".into()
}

impl Settings {
    /// Reads `path` (TOML) with `HEARTH_…` overrides, then validates.
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        let built = config::Config::builder()
            .add_source(config::File::from(path).format(config::FileFormat::Toml))
            .add_source(
                config::Environment::with_prefix("HEARTH")
                    .prefix_separator("_")
                    .separator("__")
                    .try_parsing(true)
                    .source(Some(setting_overrides(std::env::vars()))),
            )
            .build()
            .map_err(|e| ConfigError::Load(e.to_string()))?;
        let settings: Settings = built.try_deserialize().map_err(|e| ConfigError::Load(e.to_string()))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Parses settings from a TOML string (no environment), then validates. Used by tests and the demo.
    pub fn from_toml(text: &str) -> Result<Settings, ConfigError> {
        let built = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .map_err(|e| ConfigError::Load(e.to_string()))?;
        let settings: Settings = built.try_deserialize().map_err(|e| ConfigError::Load(e.to_string()))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks what types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.cluster.listen.parse::<SocketAddr>().is_err() {
            return Err(invalid("cluster.listen", "must be an address like 127.0.0.1:8443"));
        }
        check_https_origin_url("cluster.public_url", &self.cluster.public_url)?;
        if let Some(t) = &self.cluster.system_root_token
            && t.len() < 32
        {
            return Err(invalid("cluster.system_root_token", "must be at least 32 characters"));
        }
        match (&self.tls.cert, &self.tls.key, self.tls.self_signed) {
            (Some(_), Some(_), _) | (None, None, true) => {}
            (Some(_), None, _) => {
                return Err(invalid("tls.key", "tls.cert is set but tls.key is not"));
            }
            (None, Some(_), _) => {
                return Err(invalid("tls.cert", "tls.key is set but tls.cert is not"));
            }
            (None, None, false) => {
                return Err(invalid("tls", "set tls.cert and tls.key, or tls.self_signed = true"));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, p) in self.federation.peers.iter().enumerate() {
            let key = format!("federation.peers[{i}]");
            if p.id == self.cluster.id {
                return Err(invalid(&format!("{key}.id"), "a cluster cannot be its own peer"));
            }
            if !seen.insert(p.id.clone()) {
                return Err(invalid(&format!("{key}.id"), format!("peer {} is listed twice", p.id)));
            }
            check_https_origin_url(&format!("{key}.url"), &p.url)?;
            if p.public_key.parse::<federation_proto::VerifyKey>().is_err() {
                return Err(invalid(&format!("{key}.public_key"), "must be ed25519:<unpadded base64 of 32 bytes>"));
            }
        }
        for (i, o) in self.login.trusted_origins.iter().enumerate() {
            check_https_origin_url(&format!("login.trusted_origins[{i}]"), o)?;
        }
        self.validate_oidc()?;
        if self.login.max_failures == 0 {
            return Err(invalid("login.max_failures", "must be at least 1"));
        }
        if self.login.failure_window_secs == 0 {
            return Err(invalid("login.failure_window_secs", "must be at least 1"));
        }
        if self.http.header_read_timeout_secs == 0 {
            return Err(invalid("http.header_read_timeout_secs", "must be at least 1"));
        }
        self.store.validate()?;
        if self.federation.retry_backoff_cap_secs == 0 {
            return Err(invalid("federation.retry_backoff_cap_secs", "must be at least 1"));
        }
        if self.federation.validation.per_peer_per_sec == 0 {
            return Err(invalid("federation.validation.per_peer_per_sec", "must be at least 1"));
        }
        if self.federation.validation.per_peer_burst == 0 {
            return Err(invalid("federation.validation.per_peer_burst", "must be at least 1"));
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return Err(invalid("log.format", "must be \"text\" or \"json\""));
        }
        if let Some(u) = &self.notify.smtp_url {
            let parsed = url::Url::parse(u).map_err(|e| invalid("notify.smtp_url", format!("not a URL: {e}")))?;
            if !matches!(parsed.scheme(), "smtp" | "smtps") || parsed.host_str().is_none() {
                return Err(invalid("notify.smtp_url", "must be smtp://host[:port] or smtps://host[:port]"));
            }
        }
        for (i, e) in self.notify.admin_emails.iter().enumerate() {
            if crate::accounts::users::parse_email(e).is_err() {
                return Err(invalid(&format!("notify.admin_emails[{i}]"), "not an email address"));
            }
        }
        if let Some(f) = &self.notify.from
            && crate::accounts::users::parse_email(f).is_err()
        {
            return Err(invalid("notify.from", "not an email address"));
        }
        if self.anonymous.max_sessions_per_source_per_hour == 0 {
            return Err(invalid("anonymous.max_sessions_per_source_per_hour", "must be at least 1"));
        }
        if self.anonymous.max_collections == 0 {
            return Err(invalid("anonymous.max_collections", "must be at least 1"));
        }
        // At least two minutes: last use is refreshed at most once a minute.
        if !(120..=10 * 365 * 24 * 3600).contains(&self.anonymous.lifetime_secs) {
            return Err(invalid("anonymous.lifetime_secs", "must be between 120 and 315360000 (ten years)"));
        }
        if self.policy.max_list_limit == 0 {
            return Err(invalid("policy.max_list_limit", "must be at least 1"));
        }
        Ok(())
    }

    fn validate_oidc(&self) -> Result<(), ConfigError> {
        let mut ids = std::collections::BTreeSet::new();
        for (i, p) in self.login.oidc.iter().enumerate() {
            let key = |k: &str| format!("login.oidc[{i}].{k}");
            let id_ok = !p.id.is_empty()
                && p.id.len() <= 32
                && p.id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
            if !id_ok {
                return Err(invalid(&key("id"), "must be 1 to 32 of a-z, 0-9, - and _"));
            }
            if !ids.insert(p.id.as_str()) {
                return Err(invalid(&key("id"), format!("provider {} is listed twice", p.id)));
            }
            match p.preset.as_deref() {
                None | Some("orcid") => {}
                Some(other) => {
                    return Err(invalid(&key("preset"), format!("unknown preset {other:?} (known: \"orcid\")")));
                }
            }
            if p.issuer.is_none() && p.preset.is_none() {
                return Err(invalid(&key("issuer"), "is required (or a preset)"));
            }
            let issuer = p.issuer();
            check_https_origin_url(&key("issuer"), &issuer)?;
            if reqwest::Url::parse(&issuer).is_ok_and(|u| u.query().is_some() || u.fragment().is_some()) {
                return Err(invalid(&key("issuer"), "must not have a query or fragment"));
            }
            if p.client_id.trim().is_empty() {
                return Err(invalid(&key("client_id"), "must not be empty"));
            }
            match (&p.client_secret, &p.client_secret_file) {
                (Some(_), Some(_)) => {
                    return Err(invalid(&key("client_secret"), "set client_secret or client_secret_file, not both"));
                }
                (None, None) => {
                    return Err(invalid(&key("client_secret"), "set client_secret or client_secret_file"));
                }
                (Some(s), None) if s.is_empty() => return Err(invalid(&key("client_secret"), "must not be empty")),
                _ => {}
            }
            if let Some(scopes) = &p.scopes
                && let Some(bad) = scopes
                    .iter()
                    .find(|s| s.is_empty() || !s.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\'))
            {
                return Err(invalid(&key("scopes"), format!("{bad:?} is not a scope")));
            }
            if p.display_name.as_ref().is_some_and(|d| d.trim().is_empty() || d.len() > 64) {
                return Err(invalid(&key("display_name"), "must be 1 to 64 bytes"));
            }
        }
        Ok(())
    }

    /// The signing key file.
    pub fn signing_key_path(&self) -> PathBuf {
        self.federation.signing_key.clone().unwrap_or_else(|| self.cluster.data_dir.join("signing.key"))
    }

    /// Our public origin, `https://host[:port]`, without a trailing slash.
    pub fn public_origin(&self) -> String {
        origin_of(&self.cluster.public_url).unwrap_or_else(|| self.cluster.public_url.trim_end_matches('/').to_string())
    }

    /// The peer with this id, if configured.
    pub fn peer(&self, id: &ClusterId) -> Option<&PeerSettings> {
        self.federation.peers.iter().find(|p| &p.id == id)
    }
}

/// The environment variables that override settings: `HEARTH_<SECTION>__<KEY>` only. Other
/// `HEARTH_…` variables (the admin CLI's `HEARTH_URL`, `HEARTH_TOKEN`, test and bench knobs) are not
/// settings and must not stop a daemon from starting.
pub fn setting_overrides(vars: impl Iterator<Item = (String, String)>) -> config::Map<String, String> {
    vars.filter(|(k, _)| k.strip_prefix("HEARTH_").is_some_and(|rest| rest.contains("__") && !rest.starts_with('_')))
        .collect()
}

/// The origin (`scheme://host[:port]`) of a URL, or `None` when it is not an absolute http(s) URL.
pub fn origin_of(url: &str) -> Option<String> {
    let u = reqwest::Url::parse(url).ok()?;
    if !matches!(u.scheme(), "http" | "https") {
        return None;
    }
    let host = u.host_str()?;
    Some(match u.port() {
        Some(p) => format!("{}://{}:{}", u.scheme(), host, p),
        None => format!("{}://{}", u.scheme(), host),
    })
}

fn check_https_origin_url(key: &str, url: &str) -> Result<(), ConfigError> {
    let u = reqwest::Url::parse(url).map_err(|e| invalid(key, format!("not a URL: {e}")))?;
    if u.scheme() != "https" {
        return Err(invalid(key, "must be an https:// URL"));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(invalid(key, "must not contain user info"));
    }
    if u.host_str().is_none() {
        return Err(invalid(key, "must name a host"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    const BASE: &str = "[cluster]\nid = \"zzzzz\"\nlisten = \"127.0.0.1:0\"\npublic_url = \"https://127.0.0.1:1\"\n\
                        data_dir = \"/tmp/hearth-test\"\n[tls]\nself_signed = true\n";

    /// `[anonymous]` has defaults, and a bad or unknown key stops the start naming it.
    #[test]
    fn the_anonymous_section_has_defaults_and_names_bad_keys() {
        let s = Settings::from_toml(BASE).unwrap();
        assert_eq!(
            s.anonymous,
            AnonymousSettings { max_sessions_per_source_per_hour: 20, max_collections: 100, lifetime_secs: 604_800 }
        );
        let s =
            Settings::from_toml(&format!("{BASE}[anonymous]\nmax_collections = 3\nlifetime_secs = 3600\n")).unwrap();
        assert_eq!((s.anonymous.max_collections, s.anonymous.lifetime_secs), (3, 3600));
        refused_naming(
            "anonymous",
            &[
                ("max_sessions_per_source_per_hour = 0", "anonymous.max_sessions_per_source_per_hour"),
                ("max_collections = 0", "anonymous.max_collections"),
                ("lifetime_secs = 60", "anonymous.lifetime_secs"),
                ("max_collections = -1", "max_collections"),
                ("lifetime = 5", "lifetime"),
            ],
        );
    }

    /// Each `(lines, key)`: the section with those lines stops the start with a message naming the key.
    fn refused_naming(section: &str, cases: &[(&str, &str)]) {
        for (extra, key) in cases {
            let e = Settings::from_toml(&format!("{BASE}[{section}]\n{extra}\n")).unwrap_err();
            assert!(e.to_string().contains(key), "{extra}: {e}");
        }
    }

    /// `[store]` defaults to sled; postgres needs a URL its driver parses, and every bad value
    /// stops the start naming its key.
    #[test]
    fn the_store_section_checks_its_backend_url_and_pool() {
        let s = Settings::from_toml(BASE).unwrap();
        assert_eq!((s.store.backend, s.store.pool_size), (StoreBackend::Sled, 8));
        assert!(s.store.options().postgres.is_none());
        let pg =
            "[store]\nbackend = \"postgres\"\nurl = \"postgresql://hearth@127.0.0.1:5432/hearth\"\npool_size = 3\n";
        let s = Settings::from_toml(&format!("{BASE}{pg}")).unwrap();
        let opts = s.store.options().postgres.expect("postgres options");
        assert_eq!((opts.url.as_str(), opts.pool_size), ("postgresql://hearth@127.0.0.1:5432/hearth", 3));
        refused_naming(
            "store",
            &[
                ("backend = \"postgres\"", "store.url"),
                ("backend = \"postgres\"\nurl = \"postgresql://h:notaport/db\"", "store.url"),
                ("url = \"postgresql://h/db\"", "store.url"),
                ("pool_size = 0", "store.pool_size"),
                ("pool_size = 65", "store.pool_size"),
                ("backend = \"mysql\"", "backend"),
            ],
        );
    }
}
