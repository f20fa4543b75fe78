//! The exported configuration (`GET /arvados/v1/config`): the public subset of an Arvados
//! cluster's configuration, with values that are true for this Hearth cluster.
//!
//! Arvados publishes, to anyone and without a token, the keys its `lib/config/export.go` marks
//! safe, in the shape of its Go `Cluster` struct (PascalCase keys, durations as Go strings such as
//! `"5m"`, URLs with a trailing `/`, string sets as objects). Clients read it: the Python SDK's
//! `api.config()` (`Collections`, `StorageClasses`, `ClusterID`), `arv-federation-migrate`
//! (`ClusterID`, `Login.LoginCluster`), Workbench (`Services`, `Login`, `Workbench`). Every key of
//! that public subset is here, so that a client indexing one never fails; a feature Hearth does
//! not have is described as absent (no login method of Arvados' own is enabled: logins go through
//! `/login`; no containers, volumes or blob signing). `Login.TrustedClients` is not exported, as in
//! Arvados, which classes it as private.

use super::Settings;
use serde::Serialize;
use std::collections::BTreeMap;

/// A Go-style duration string, the way Arvados' `Duration` marshals: `"0s"`, `"90s"` → `"1m30s"`,
/// `"300s"` → `"5m"`, `"1209600s"` → `"336h"`.
pub fn go_duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let raw = if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    };
    raw.replacen("m0s", "m", 1).replacen("h0m", "h", 1)
}

/// The empty object Go's `map[string]struct{}` members marshal to.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Empty {}

/// The whole document.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExportedConfig {
    /// This cluster's id.
    #[serde(rename = "ClusterID")]
    pub cluster_id: String,
    /// Request limits.
    #[serde(rename = "API")]
    pub api: Api,
    /// Collections (Hearth keeps their metadata only).
    pub collections: Collections,
    /// Containers (Hearth runs none).
    pub containers: Containers,
    /// Instance types (none).
    pub instance_types: BTreeMap<String, Empty>,
    /// How people log in.
    pub login: Login,
    /// The peers, as Arvados names its federation.
    pub remote_clusters: BTreeMap<String, RemoteCluster>,
    /// Where each service is reached.
    pub services: BTreeMap<&'static str, Service>,
    /// Storage classes.
    pub storage_classes: BTreeMap<String, StorageClass>,
    /// TLS as the cluster's own services use it.
    #[serde(rename = "TLS")]
    pub tls: Tls,
    /// Users.
    pub users: Users,
    /// Volumes (none).
    pub volumes: BTreeMap<String, Empty>,
    /// What Workbench shows.
    pub workbench: Workbench,
}

/// `API`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Api {
    /// The largest `limit` a list honours (`policy.max_list_limit`).
    pub max_items_per_response: u64,
    /// The largest request body.
    pub max_request_size: usize,
    /// No request is timed out by the server (`"0s"`).
    pub request_timeout: String,
    /// No answer is timed out by the server (`"0s"`).
    pub send_timeout: String,
    /// Projects cannot be frozen here.
    pub freeze_project_requires_description: bool,
    /// Properties a project needs to be frozen (none).
    pub freeze_project_requires_properties: BTreeMap<String, Empty>,
    /// Projects cannot be frozen here.
    pub unfreeze_project_requires_admin: bool,
}

/// `Collections`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Collections {
    /// No blocks, so no signatures.
    pub blob_signing: bool,
    /// The signature lifetime the discovery document also states.
    #[serde(rename = "BlobSigningTTL")]
    pub blob_signing_ttl: String,
    /// No versions are kept.
    pub collection_versioning: bool,
    /// The replication the discovery document also states.
    pub default_replication: u32,
    /// How long a trashed project stays untrashable (`delete_at` − `trash_at`).
    pub default_trash_lifetime: String,
    /// `/` in names is not substituted.
    pub forward_slash_name_substitution: String,
    /// No managed properties.
    pub managed_properties: BTreeMap<String, Empty>,
    /// No versions are kept.
    pub preserve_version_if_idle: String,
    /// No S3 gateway.
    pub s3_folder_objects: bool,
    /// Content is not trusted across users.
    pub trust_all_content: bool,
}

/// `Containers`: Hearth runs no containers.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Containers {
    /// No cloud dispatcher.
    pub always_use_preemptible_instances: bool,
    /// No containers.
    #[serde(rename = "DefaultKeepCacheRAM")]
    pub default_keep_cache_ram: u64,
    /// No containers.
    pub maximum_price_factor: f64,
    /// No containers.
    pub max_retry_attempts: u32,
    /// No containers.
    pub min_retry_period: String,
    /// No containers.
    pub max_running_containers_per_instance: u32,
    /// No containers.
    #[serde(rename = "ReserveExtraRAM")]
    pub reserve_extra_ram: u64,
    /// No container engine.
    pub runtime_engine: String,
    /// No shell access to containers.
    pub shell_access: ShellAccess,
    /// No images.
    pub supported_docker_image_formats: BTreeMap<String, Empty>,
}

/// `Containers.ShellAccess`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ShellAccess {
    /// Admins.
    pub admin: bool,
    /// Users.
    pub user: bool,
}

/// `Login`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Login {
    /// Arvados' Google login: off.
    pub google: Enable,
    /// Arvados' LDAP login: off.
    #[serde(rename = "LDAP")]
    pub ldap: Enable,
    /// No cluster logs everyone in: each user logs in at their home cluster.
    pub login_cluster: String,
    /// Arvados' OpenID Connect login: off.
    pub open_id_connect: Enable,
    /// Arvados' PAM login: off.
    #[serde(rename = "PAM")]
    pub pam: Enable,
    /// How long a peer's validated token is trusted here (`federation.remote_token_refresh_secs`).
    pub remote_token_refresh: String,
    /// Arvados' test login: off.
    pub test: Enable,
}

/// `{"Enable": …}`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Enable {
    /// Whether the method is on.
    pub enable: bool,
}

/// `RemoteClusters.<id>`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RemoteCluster {
    /// `host:port`.
    pub host: String,
    /// Object requests are not proxied to the peer (its tokens are still validated there).
    pub proxy: bool,
    /// `https`.
    pub scheme: String,
    /// TLS is verified (against the peer's pinned CA).
    pub insecure: bool,
    /// The peer's users are active here when their home says they are.
    pub activate_users: bool,
}

/// `Services.<name>`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Service {
    /// Where clients reach it (`""` for a service Hearth does not run).
    #[serde(rename = "ExternalURL")]
    pub external_url: String,
}

/// `StorageClasses.<name>`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct StorageClass {
    /// The default class.
    pub default: bool,
    /// Its priority.
    pub priority: i32,
}

/// `TLS`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tls {
    /// Certificates are verified.
    pub insecure: bool,
}

/// `Users`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Users {
    /// No shared anonymous token (Hearth's anonymous sessions each have their own).
    pub anonymous_user_token: String,
    /// Any active user may create role groups.
    pub can_create_role_groups: bool,
    /// None configured.
    pub support_email_address: String,
    /// No account sync.
    pub sync_ignored_groups: Vec<String>,
    /// No account sync.
    pub sync_required_groups: Vec<String>,
    /// No account sync.
    pub sync_user_accounts: bool,
    /// No account sync.
    #[serde(rename = "SyncUserAPITokens")]
    pub sync_user_api_tokens: bool,
    /// No account sync.
    pub sync_user_groups: bool,
    /// No account sync.
    #[serde(rename = "SyncUserSSHKeys")]
    pub sync_user_ssh_keys: bool,
}

/// `Workbench` (Hearth serves its own pages; no Workbench is configured).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Workbench {
    /// Arvados' documentation.
    pub arvados_docsite: String,
    /// None.
    #[serde(rename = "ArvadosPublicDataDocURL")]
    pub arvados_public_data_doc_url: String,
    /// Sharing links are not offered.
    #[serde(rename = "DisableSharingURLsUI")]
    pub disable_sharing_urls_ui: bool,
    /// None.
    #[serde(rename = "FileViewersConfigURL")]
    pub file_viewers_config_url: String,
    /// No user agreements.
    pub show_user_agreement_inline: bool,
    /// The cluster's name as pages show it.
    pub site_name: String,
    /// Default theme.
    pub theme: String,
    /// No profile form.
    pub user_profile_form_fields: BTreeMap<String, Empty>,
    /// No profile form.
    pub user_profile_form_message: String,
    /// None.
    #[serde(rename = "WelcomePageHTML")]
    pub welcome_page_html: String,
    /// None.
    #[serde(rename = "InactivePageHTML")]
    pub inactive_page_html: String,
    /// No shell access.
    #[serde(rename = "SSHHelpPageHTML")]
    pub ssh_help_page_html: String,
    /// No shell access.
    #[serde(rename = "SSHHelpHostSuffix")]
    pub ssh_help_host_suffix: String,
    /// Sessions are not ended for idleness by Workbench.
    pub idle_timeout: String,
    /// No banner.
    #[serde(rename = "BannerUUID")]
    pub banner_uuid: String,
}

/// How long a trashed project can still be untrashed (Arvados' default, two weeks).
pub const DEFAULT_TRASH_LIFETIME_SECS: u64 = 1_209_600;

/// The replication and signature lifetime the discovery document states too.
pub const DEFAULT_REPLICATION: u32 = 2;

/// Arvados' service names (each has an `ExternalURL`); Hearth is the controller.
const SERVICES: &[&str] = &[
    "Composer",
    "ContainerWebServices",
    "Controller",
    "DispatchCloud",
    "DispatchLSF",
    "DispatchSLURM",
    "Health",
    "Keepbalance",
    "Keepproxy",
    "Keepstore",
    "RailsAPI",
    "WebDAV",
    "WebDAVDownload",
    "WebShell",
    "Websocket",
    "Workbench1",
    "Workbench2",
];

/// `https://host:port` → `host:port`.
pub fn host_of(url: &str) -> String {
    url.trim_start_matches("https://").trim_start_matches("http://").trim_end_matches('/').to_string()
}

impl ExportedConfig {
    /// The exported configuration of the cluster `s` configures.
    pub fn from_settings(s: &Settings, max_request_size: usize) -> ExportedConfig {
        let no = Enable { enable: false };
        let mut remote_clusters: BTreeMap<String, RemoteCluster> = s
            .federation
            .peers
            .iter()
            .map(|p| {
                let rc = RemoteCluster {
                    host: host_of(&p.url),
                    proxy: false,
                    scheme: "https".into(),
                    insecure: false,
                    activate_users: true,
                };
                (p.id.to_string(), rc)
            })
            .collect();
        remote_clusters.insert(
            "*".into(),
            RemoteCluster {
                host: String::new(),
                proxy: false,
                scheme: "https".into(),
                insecure: false,
                activate_users: false,
            },
        );
        let controller = format!("{}/", s.cluster.public_url.trim_end_matches('/'));
        let services = SERVICES
            .iter()
            .map(|&name| {
                let url = if name == "Controller" { controller.clone() } else { String::new() };
                (name, Service { external_url: url })
            })
            .collect();
        let mut storage_classes = BTreeMap::new();
        storage_classes.insert("default".to_string(), StorageClass { default: true, priority: 0 });
        ExportedConfig {
            cluster_id: s.cluster.id.to_string(),
            api: Api {
                max_items_per_response: s.policy.max_list_limit,
                max_request_size,
                request_timeout: go_duration(0),
                send_timeout: go_duration(0),
                freeze_project_requires_description: false,
                freeze_project_requires_properties: BTreeMap::new(),
                unfreeze_project_requires_admin: false,
            },
            collections: Collections {
                blob_signing: false,
                blob_signing_ttl: go_duration(1_209_600),
                collection_versioning: false,
                default_replication: DEFAULT_REPLICATION,
                default_trash_lifetime: go_duration(DEFAULT_TRASH_LIFETIME_SECS),
                forward_slash_name_substitution: String::new(),
                managed_properties: BTreeMap::new(),
                preserve_version_if_idle: go_duration(0),
                s3_folder_objects: false,
                trust_all_content: false,
            },
            containers: Containers {
                always_use_preemptible_instances: false,
                default_keep_cache_ram: 0,
                maximum_price_factor: 0.0,
                max_retry_attempts: 0,
                min_retry_period: go_duration(0),
                max_running_containers_per_instance: 0,
                reserve_extra_ram: 0,
                runtime_engine: String::new(),
                shell_access: ShellAccess { admin: false, user: false },
                supported_docker_image_formats: BTreeMap::new(),
            },
            instance_types: BTreeMap::new(),
            login: Login {
                google: no.clone(),
                ldap: no.clone(),
                login_cluster: String::new(),
                open_id_connect: no.clone(),
                pam: no.clone(),
                remote_token_refresh: go_duration(s.federation.remote_token_refresh_secs),
                test: no,
            },
            remote_clusters,
            services,
            storage_classes,
            tls: Tls { insecure: false },
            users: Users {
                anonymous_user_token: String::new(),
                can_create_role_groups: true,
                support_email_address: String::new(),
                sync_ignored_groups: Vec::new(),
                sync_required_groups: Vec::new(),
                sync_user_accounts: false,
                sync_user_api_tokens: false,
                sync_user_groups: false,
                sync_user_ssh_keys: false,
            },
            volumes: BTreeMap::new(),
            workbench: Workbench {
                arvados_docsite: "https://doc.arvados.org".into(),
                arvados_public_data_doc_url: String::new(),
                disable_sharing_urls_ui: true,
                file_viewers_config_url: String::new(),
                show_user_agreement_inline: false,
                site_name: format!("Hearth {}", s.cluster.id),
                theme: "default".into(),
                user_profile_form_fields: BTreeMap::new(),
                user_profile_form_message: String::new(),
                welcome_page_html: String::new(),
                inactive_page_html: String::new(),
                ssh_help_page_html: String::new(),
                ssh_help_host_suffix: String::new(),
                idle_timeout: go_duration(0),
                banner_uuid: String::new(),
            },
        }
    }
}

/// The vocabulary (`GET /arvados/v1/vocabulary`): none is configured, so properties are free, as
/// in an Arvados cluster without `API.VocabularyPath`.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Vocabulary {
    /// Keys outside the vocabulary are allowed.
    pub strict_tags: bool,
    /// No tags are defined.
    pub tags: BTreeMap<String, Empty>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn durations_read_as_arvados_writes_them() {
        for (secs, want) in [
            (0, "0s"),
            (5, "5s"),
            (90, "1m30s"),
            (300, "5m"),
            (3600, "1h"),
            (5400, "1h30m"),
            (3661, "1h1m1s"),
            (1_209_600, "336h"),
        ] {
            assert_eq!(go_duration(secs), want, "{secs}");
        }
    }
}
