//! The Arvados discovery document (`GET /discovery/v1/apis/arvados/v1/rest`).
//!
//! The Arvados Python SDK (`arvados-python-client`) builds its client from this document with
//! googleapiclient: `rootUrl` + `servicePath` give the base URL, each method's `path`,
//! `httpMethod` and `parameters` decide what a call sends, and every `$ref` must name an entry of
//! `schemas` (the client renders them into docstrings when a method is first used). Parameters
//! without a `location` are silently not sent, so every one has one: `{uuid}` is a path
//! parameter, everything else goes in the query string. The SDK sends arrays and objects
//! (`filters`, `where`, `order`, `select`) as JSON text, booleans as `"true"`/`"false"`, always
//! adds `alt=json`, wraps request bodies as `{"<resource>": {...}}` and authenticates with
//! `Authorization: Bearer <token>`. The document lists only what Hearth serves, and for each method
//! exactly the parameters Arvados' own document declares for it (a test compares them with
//! `discovery/arvados_expectations.txt`, derived from Arvados' document): a parameter Hearth has
//! no use for is accepted and does what Arvados does when it changes nothing, or is refused with
//! a clear 422 (see the README).

use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// OAuth2 scope names that Arvados publishes; googleapiclient only shows them in docstrings.
const SCOPE_RW: &str = "https://api.arvados.org/auth/arvados";
const SCOPE_RO: &str = "https://api.arvados.org/auth/arvados.readonly";

/// Builds the discovery document for the cluster `cluster_id` served at `public_url`
/// (e.g. `https://127.0.0.1:8443`). `remote_hosts` maps peer cluster ids to their `host:port`.
pub fn document(cluster_id: &str, public_url: &str, remote_hosts: &BTreeMap<String, String>) -> Value {
    let root_url = format!("{}/", public_url.trim_end_matches('/'));
    let base_url = format!("{root_url}arvados/v1/");
    json!({
        "kind": "discovery#restDescription",
        "discoveryVersion": "v1",
        "id": "arvados:v1",
        "name": "arvados",
        "version": "v1",
        "revision": "20250101",
        "title": "Arvados API (Hearth)",
        "description": "The Arvados-compatible API of a Hearth cluster: users, tokens, groups, \
                        collections, links, SSH keys and the audit log.",
        "documentationLink": "https://doc.arvados.org/api/index.html",
        "protocol": "rest",
        "rootUrl": root_url,
        "servicePath": "arvados/v1/",
        "basePath": "/arvados/v1/",
        "baseUrl": base_url,
        "batchPath": "batch",
        "uuidPrefix": cluster_id,
        "defaultCollectionReplication": 2,
        "blobSignatureTtl": 1_209_600,
        "maxRequestSize": 134_217_728,
        "remoteHosts": remote_hosts,
        "remoteHostsViaDNS": false,
        "websocketUrl": "",
        "workbenchUrl": "",
        "workbench2Url": "",
        "parameters": global_parameters(),
        "auth": {"oauth2": {"scopes": {
            SCOPE_RW: {"description": "View and manage objects"},
            SCOPE_RO: {"description": "View objects"},
        }}},
        "schemas": schemas(),
        "resources": resources(),
    })
}

/// Parameters googleapiclient merges into every method.
fn global_parameters() -> Value {
    json!({
        "alt": {
            "type": "string", "description": "Data format for the response.", "default": "json",
            "enum": ["json"], "enumDescriptions": ["Responses with Content-Type of application/json"],
            "location": "query",
        },
        "fields": {
            "type": "string", "location": "query",
            "description": "Selector specifying which fields to include in a partial response.",
        },
        "key": {
            "type": "string", "location": "query",
            "description": "API key. Not used by Hearth; send a token instead.",
        },
        "oauth_token": {
            "type": "string", "location": "query",
            "description": "OAuth 2.0 token for the current user.",
        },
        "prettyPrint": {
            "type": "boolean", "default": "true", "location": "query",
            "description": "Returns response with indentations and line breaks.",
        },
        "quotaUser": {
            "type": "string", "location": "query",
            "description": "Available to use for quota purposes for server-side applications.",
        },
        "userIp": {
            "type": "string", "location": "query",
            "description": "IP address of the site where the request originates.",
        },
    })
}

// ---------------------------------------------------------------- schemas

fn string() -> Value {
    json!({"type": "string"})
}
fn datetime() -> Value {
    json!({"type": "string", "format": "date-time"})
}
fn boolean() -> Value {
    json!({"type": "boolean"})
}
fn integer() -> Value {
    json!({"type": "integer"})
}
fn object() -> Value {
    json!({"type": "object"})
}
fn strings() -> Value {
    json!({"type": "array", "items": {"type": "string"}})
}

/// An object schema: the fields every Arvados record has, then `fields`.
fn record_schema(id: &str, description: &str, fields: Vec<(&str, Value)>) -> Value {
    let mut props = Map::new();
    for (name, ty) in [
        ("kind", string()),
        ("etag", string()),
        ("uuid", string()),
        ("owner_uuid", string()),
        ("created_at", datetime()),
        ("modified_at", datetime()),
        ("modified_by_user_uuid", string()),
    ] {
        props.insert(name.to_owned(), ty);
    }
    for (name, ty) in fields {
        props.insert(name.to_owned(), ty);
    }
    json!({
        "id": id,
        "description": description,
        "type": "object",
        "uuidPrefix": uuid_type(id),
        "properties": props,
    })
}

/// The five-character type infix of a record kind's uuids.
fn uuid_type(schema: &str) -> &'static str {
    match schema {
        "User" => "tpzed",
        "ApiClientAuthorization" => "gj3su",
        "Group" => "j7d0g",
        "Collection" => "4zz18",
        "Link" => "o0j2j",
        "AuthorizedKey" => "fngyi",
        _ => "57u5n", // Log
    }
}

/// The `<Item>List` schema of a list answer.
fn list_schema(item: &str) -> Value {
    json!({
        "id": format!("{item}List"),
        "description": format!("A page of {item} records."),
        "type": "object",
        "properties": {
            "kind": {"type": "string", "default": format!("arvados#{}List", lower_camel(item))},
            "etag": string(),
            "self_link": string(),
            "offset": integer(),
            "limit": integer(),
            "items_available": integer(),
            "items": {"type": "array", "items": {"$ref": item}},
        },
    })
}

/// `ApiClientAuthorization` → `apiClientAuthorization` (Arvados' `kind` spelling).
fn lower_camel(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn schemas() -> Value {
    let records = [
        record_schema(
            "User",
            "An account on this cluster, or a cached account of another cluster.",
            vec![
                ("email", string()),
                ("email_verified", boolean()),
                ("username", string()),
                ("first_name", string()),
                ("last_name", string()),
                ("full_name", string()),
                ("identity_url", string()),
                ("is_active", boolean()),
                ("is_admin", boolean()),
                ("is_invited", boolean()),
                ("prefs", object()),
                ("redirect_to_user_uuid", string()),
                ("last_login_at", datetime()),
                ("home_cluster", string()),
                ("writable_by", strings()),
                ("can_write", boolean()),
                ("can_manage", boolean()),
            ],
        ),
        record_schema(
            "ApiClientAuthorization",
            "An API token. `api_token` is shown only when the token is created.",
            vec![
                ("api_token", string()),
                ("user_uuid", string()),
                ("scopes", strings()),
                ("expires_at", datetime()),
                ("refreshes_at", datetime()),
                ("created_by_ip_address", string()),
                ("last_used_at", datetime()),
                ("token_kind", string()),
            ],
        ),
        record_schema(
            "Group",
            "A project, role or filter group.",
            vec![
                ("name", string()),
                ("description", string()),
                ("group_class", string()),
                ("properties", object()),
                ("trash_at", datetime()),
                ("is_trashed", boolean()),
                ("writable_by", strings()),
                ("can_write", boolean()),
                ("can_manage", boolean()),
            ],
        ),
        record_schema(
            "Collection",
            "A named set of files (manifest) with properties.",
            vec![
                ("name", string()),
                ("description", string()),
                ("properties", object()),
                ("manifest_text", string()),
                ("portable_data_hash", string()),
                ("trash_at", datetime()),
                ("is_trashed", boolean()),
            ],
        ),
        record_schema(
            "Link",
            "A relation between two objects, e.g. a permission (link_class \"permission\", \
             name can_read/can_write/can_manage) from a user or group (tail) to an object (head).",
            vec![
                ("link_class", string()),
                ("name", string()),
                ("head_uuid", string()),
                ("head_kind", string()),
                ("tail_uuid", string()),
                ("tail_kind", string()),
                ("properties", object()),
            ],
        ),
        record_schema(
            "AuthorizedKey",
            "An SSH public key of a user.",
            vec![
                ("name", string()),
                ("key_type", string()),
                ("public_key", string()),
                ("authorized_user_uuid", string()),
                ("expires_at", datetime()),
            ],
        ),
        record_schema(
            "Log",
            "An audit log entry.",
            vec![
                ("object_uuid", string()),
                ("object_owner_uuid", string()),
                ("object_kind", string()),
                ("event_type", string()),
                ("event_at", datetime()),
                ("summary", string()),
                ("properties", object()),
            ],
        ),
    ];
    let mut out = Map::new();
    for record in records {
        let id = record["id"].as_str().unwrap_or_default().to_owned();
        out.insert(format!("{id}List"), list_schema(&id));
        out.insert(id, record);
    }
    Value::Object(out)
}

// ---------------------------------------------------------------- methods

/// One parameter: its type, whether it is required, its default (as Arvados writes it, a
/// string), where it goes (`{uuid}` in the path, everything else in the query string).
fn param(ty: &str, required: bool, default: Option<&str>, description: &str) -> Value {
    let mut p = json!({"type": ty, "required": required, "description": description, "location": "query"});
    if let (Some(d), Some(obj)) = (default, p.as_object_mut()) {
        obj.insert("default".into(), json!(d));
    }
    p
}

fn uuid_param(schema: &str) -> Value {
    json!({
        "type": "string", "required": true, "location": "path",
        "description": format!("The UUID of the {schema} in question."),
    })
}

fn select_param() -> Value {
    param("array", false, None, "Attributes of the record(s) to return (JSON array of names).")
}

fn bypass_federation() -> Value {
    param(
        "boolean",
        false,
        Some("false"),
        "Answer from this cluster only (admins). Hearth always does: it forwards no list or update to a peer.",
    )
}

fn include_trash(what: &str) -> Value {
    param("boolean", false, Some("false"), &format!("Include {what} whose `is_trashed` attribute is true."))
}

fn ensure_unique_name() -> Value {
    param(
        "boolean",
        false,
        Some("false"),
        "If the name is taken in the owner project, add \" (<last 15 characters of the uuid>)\" to it, as Arvados does.",
    )
}

fn cluster_id(what: &str) -> Value {
    param(
        "string",
        false,
        None,
        &format!(
            "{what} this cluster (its own id, or none). Hearth forwards nothing to a peer: another id is refused."
        ),
    )
}

/// A parameter list, in the order given.
fn params(entries: Vec<(&str, Value)>) -> Value {
    Value::Object(entries.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

/// Arvados' list parameters, then `extra`.
fn list_params(extra: Vec<(&str, Value)>) -> Value {
    let mut entries = vec![
        ("filters", param("array", false, None, "Conditions, as a JSON array of [attribute, operator, operand].")),
        (
            "where",
            param("object", false, None, "Conditions, as a JSON object of attribute: value (or list of values)."),
        ),
        ("order", param("array", false, None, "Sort order, as a JSON array of \"attribute asc|desc\".")),
        ("select", select_param()),
        ("distinct", param("boolean", false, Some("false"), "Return each distinct selected record once.")),
        ("limit", param("integer", false, Some("100"), "Maximum number of items to return.")),
        ("offset", param("integer", false, Some("0"), "Number of items to skip before the first.")),
        (
            "count",
            param("string", false, Some("exact"), "\"exact\" to count items_available, \"none\" to leave it out."),
        ),
        ("cluster_id", cluster_id("List records of")),
        ("bypass_federation", bypass_federation()),
    ];
    entries.extend(extra);
    params(entries)
}

/// What a method needs to be described.
struct Spec<'a> {
    resource: &'a str,
    name: &'a str,
    http: &'a str,
    path: String,
    description: String,
    parameters: Value,
    /// (body wrapper key, schema) of a method that takes a request body.
    request: Option<(&'a str, &'a str)>,
    /// The schema of the answer (`None`: a free-form object, as `configs.get` answers).
    response: Option<String>,
}

fn method(s: Spec<'_>) -> Value {
    let scopes = if s.http == "GET" { json!([SCOPE_RW, SCOPE_RO]) } else { json!([SCOPE_RW]) };
    let order: Vec<&str> = if s.path.contains("{uuid}") { vec!["uuid"] } else { vec![] };
    let response = match &s.response {
        Some(schema) => json!({"$ref": schema}),
        None => json!({}),
    };
    let mut m = json!({
        "id": format!("arvados.{}.{}", s.resource, s.name),
        "path": s.path,
        "httpMethod": s.http,
        "description": s.description,
        "parameters": s.parameters,
        "parameterOrder": order,
        "response": response,
        "scopes": scopes,
    });
    if let (Some((wrapper, schema)), Some(obj)) = (s.request, m.as_object_mut()) {
        obj.insert("request".to_owned(), json!({"required": true, "properties": {wrapper: {"$ref": schema}}}));
    }
    m
}

/// A resource's methods, being built.
struct Resource<'a> {
    name: &'a str,
    schema: &'a str,
    wrapper: &'a str,
    methods: Map<String, Value>,
}

impl<'a> Resource<'a> {
    fn new(name: &'a str, schema: &'a str, wrapper: &'a str) -> Self {
        Resource { name, schema, wrapper, methods: Map::new() }
    }

    /// Adds a method (`path` relative to `arvados/v1/`).
    #[allow(clippy::too_many_arguments)]
    fn add(
        mut self,
        name: &str,
        http: &str,
        path: &str,
        description: &str,
        parameters: Value,
        body: bool,
        response: Option<String>,
    ) -> Self {
        let spec = Spec {
            resource: self.name,
            name,
            http,
            path: path.to_owned(),
            description: description.to_owned(),
            parameters,
            request: body.then_some((self.wrapper, self.schema)),
            response,
        };
        self.methods.insert(name.to_owned(), method(spec));
        self
    }

    fn one(&self) -> String {
        format!("{}/{{uuid}}", self.name)
    }

    fn get(self, extra: Vec<(&str, Value)>) -> Self {
        let mut p = vec![("uuid", uuid_param(self.schema)), ("select", select_param())];
        p.extend(extra);
        let (path, desc, resp) = (self.one(), format!("Get a {} record by UUID.", self.schema), self.schema.to_owned());
        self.add("get", "GET", &path, &desc, params(p), false, Some(resp))
    }

    fn list(self, extra: Vec<(&str, Value)>) -> Self {
        let (path, desc) = (self.name.to_owned(), format!("List {} records the caller can read.", self.schema));
        let resp = format!("{}List", self.schema);
        self.add("list", "GET", &path, &desc, list_params(extra), false, Some(resp))
    }

    fn create(self, extra: Vec<(&str, Value)>) -> Self {
        let mut p = vec![
            ("select", select_param()),
            ("ensure_unique_name", ensure_unique_name()),
            ("cluster_id", cluster_id("Create the record on")),
        ];
        p.extend(extra);
        let (path, desc, resp) =
            (self.name.to_owned(), format!("Create a new {}.", self.schema), self.schema.to_owned());
        self.add("create", "POST", &path, &desc, params(p), true, Some(resp))
    }

    fn update(self, extra: Vec<(&str, Value)>) -> Self {
        let mut p = vec![("uuid", uuid_param(self.schema)), ("select", select_param())];
        p.extend(extra);
        let (path, resp) = (self.one(), self.schema.to_owned());
        let desc = format!("Update attributes of an existing {}.", self.schema);
        self.add("update", "PUT", &path, &desc, params(p), true, Some(resp))
    }

    fn delete(self) -> Self {
        let p = params(vec![("uuid", uuid_param(self.schema))]);
        let (path, desc, resp) = (self.one(), format!("Delete an existing {}.", self.schema), self.schema.to_owned());
        self.add("delete", "DELETE", &path, &desc, p, false, Some(resp))
    }

    /// A method on one record: `POST <resource>/{uuid}/<name>`.
    fn on_one(self, name: &str, description: &str) -> Self {
        let p = params(vec![("uuid", uuid_param(self.schema))]);
        let (path, resp) = (format!("{}/{name}", self.one()), self.schema.to_owned());
        self.add(name, "POST", &path, description, p, false, Some(resp))
    }
}

fn replace_param(what: &str) -> Value {
    let mut p = param(
        "object",
        false,
        None,
        &format!("Arvados' {what} edits of the manifest: refused here (Hearth keeps no file data)."),
    );
    if let Some(obj) = p.as_object_mut() {
        obj.insert("properties".into(), json!({}));
        obj.insert("additionalProperties".into(), json!({"type": "string"}));
    }
    p
}

fn async_param() -> Value {
    param(
        "boolean",
        false,
        Some("false"),
        "Accepted for Arvados' clients; Hearth always updates permissions at once and answers the record.",
    )
}

fn resources() -> Value {
    let users = Resource::new("users", "User", "user")
        .get(vec![])
        .list(vec![])
        .create(vec![])
        .update(vec![("bypass_federation", bypass_federation())])
        .add(
            "current",
            "GET",
            "users/current",
            "Return the user the request's token belongs to.",
            json!({}),
            false,
            Some("User".into()),
        )
        .add("system", "GET", "users/system", "Return this cluster's system (root) user.", json!({}), false, Some("User".into()))
        .on_one(
            "activate",
            "Set is_active on the caller (or, for admins, the user named): a user must have been set up (invited).",
        )
        .add(
            "setup",
            "POST",
            "users/setup",
            "Admins: set up (invite) an existing user, or create one from `user` and set it up.",
            params(vec![
                ("uuid", param("string", false, None, "The existing user to set up.")),
                ("user", param("object", false, None, "Attributes of a new user to create and set up (email required).")),
                ("repo_name", param("string", false, None, "Obsolete in Arvados; ignored.")),
                ("vm_uuid", param("string", false, None, "A virtual machine to grant a login on: refused here (no virtual machines).")),
                ("send_notification_email", param("boolean", false, Some("false"), "Accepted; Hearth sends no welcome mail.")),
            ]),
            false,
            Some("User".into()),
        )
        .on_one(
            "unsetup",
            "Admins: deactivate a user and delete its tokens, SSH keys, permissions and preferences.",
        )
        .add(
            "merge",
            "POST",
            "users/merge",
            "Move everything the old user owns to new_owner_uuid, and optionally redirect the old user to the new one. Returns the old user.",
            params(vec![
                (
                    "new_owner_uuid",
                    param(
                        "string",
                        true,
                        None,
                        "The user or project (writable by the new user) that receives the old user's objects.",
                    ),
                ),
                ("new_user_token", param("string", false, None, "A token of the new user (token variant).")),
                (
                    "redirect_to_new_user",
                    param(
                        "boolean",
                        false,
                        Some("false"),
                        "Redirect the old user to the new one: its tokens and SSH keys move over.",
                    ),
                ),
                ("old_user_uuid", param("string", false, None, "The user to merge away (admin variant).")),
                ("new_user_uuid", param("string", false, None, "The user to merge into (admin variant).")),
            ]),
            false,
            Some("User".into()),
        );

    let tokens = Resource::new("api_client_authorizations", "ApiClientAuthorization", "api_client_authorization")
        .get(vec![])
        .list(vec![])
        .create(vec![])
        .delete()
        .add(
            "current",
            "GET",
            "api_client_authorizations/current",
            "Return the token the request was made with.",
            json!({}),
            false,
            Some("ApiClientAuthorization".into()),
        );

    let contents_extra = vec![
        ("include_trash", include_trash("items")),
        (
            "uuid",
            param(
                "string",
                false,
                Some(""),
                "List what this user or group owns (default: everything the caller can read).",
            ),
        ),
        ("recursive", param("boolean", false, Some("false"), "Include the contents of subprojects, recursively.")),
        (
            "include",
            param(
                "array",
                false,
                None,
                "Referenced objects to return in `included`: \"owner_uuid\" (others are refused).",
            ),
        ),
        ("include_old_versions", param("boolean", false, Some("false"), "Accepted; Hearth keeps no old versions.")),
        (
            "exclude_home_project",
            param(
                "boolean",
                false,
                Some("false"),
                "Leave out what the caller's own home project holds: what is shared with the caller.",
            ),
        ),
    ];
    let shared_extra = vec![
        ("include_trash", include_trash("groups")),
        ("include", param("string", false, None, "\"owner_uuid\": return the groups' owners in `included`.")),
    ];
    let groups = Resource::new("groups", "Group", "group")
        .get(vec![("include_trash", include_trash("the group even"))])
        .list(vec![("include_trash", include_trash("groups"))])
        .create(vec![("async", async_param())])
        .update(vec![("async", async_param())])
        .delete()
        .add(
            "contents",
            "GET",
            "groups/contents",
            "List the projects and collections a user or group owns (or all the caller can read).",
            list_params(contents_extra),
            false,
            Some("Group".into()),
        )
        .add(
            "shared",
            "GET",
            "groups/shared",
            "List the projects shared with the caller that its own projects do not contain.",
            list_params(shared_extra),
            false,
            Some("Group".into()),
        )
        .on_one("trash", "Move a project to the trash (it and what it holds disappear from lists).")
        .on_one("untrash", "Take a project out of the trash.");

    let collections = Resource::new("collections", "Collection", "collection")
        .get(vec![("include_trash", include_trash("the collection even"))])
        .list(vec![
            ("include_trash", include_trash("collections")),
            ("include_old_versions", param("boolean", false, Some("false"), "Accepted; Hearth keeps no old versions.")),
        ])
        .create(vec![
            ("replace_files", replace_param("replace_files")),
            ("replace_segments", replace_param("replace_segments")),
        ])
        .update(vec![
            ("replace_files", replace_param("replace_files")),
            ("replace_segments", replace_param("replace_segments")),
        ])
        .delete();

    let links =
        Resource::new("links", "Link", "link").get(vec![]).list(vec![]).create(vec![]).update(vec![]).delete().add(
            "get_permissions",
            "GET",
            "permissions/{uuid}",
            "List the permission links whose head is this object (needs can_manage on it).",
            params(vec![("uuid", uuid_param("object"))]),
            false,
            Some("Link".into()),
        );

    let keys = Resource::new("authorized_keys", "AuthorizedKey", "authorized_key")
        .get(vec![])
        .list(vec![])
        .create(vec![])
        .update(vec![])
        .delete();

    let logs = Resource::new("logs", "Log", "log").get(vec![]).list(vec![]);

    let configs = Resource::new("configs", "", "").add(
        "get",
        "GET",
        "config",
        "The public part of this cluster's configuration, as Arvados exports it.",
        json!({}),
        false,
        None,
    );
    let vocabularies = Resource::new("vocabularies", "", "").add(
        "get",
        "GET",
        "vocabulary",
        "The vocabulary of properties (none is configured: properties are free).",
        json!({}),
        false,
        None,
    );

    let mut out = Map::new();
    for r in [users, tokens, groups, collections, links, keys, logs, configs, vocabularies] {
        out.insert(r.name.to_owned(), json!({"methods": r.methods}));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn doc() -> Value {
        let mut peers = BTreeMap::new();
        peers.insert("bbbbb".to_owned(), "127.0.0.1:8444".to_owned());
        document("aaaaa", "https://127.0.0.1:8443", &peers)
    }

    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    if k == "$ref" {
                        out.push(x.as_str().expect("$ref is a string").to_owned());
                    } else {
                        refs(x, out);
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }

    fn methods(d: &Value) -> Vec<(String, String, Value)> {
        let mut out = Vec::new();
        for (res, r) in d["resources"].as_object().unwrap() {
            for (name, m) in r["methods"].as_object().unwrap() {
                out.push((res.clone(), name.clone(), m.clone()));
            }
        }
        out
    }

    #[test]
    fn every_ref_names_a_schema() {
        let d = doc();
        let mut found = Vec::new();
        refs(&d, &mut found);
        assert!(found.len() > 40, "expected many $refs, got {}", found.len());
        let schemas = d["schemas"].as_object().unwrap();
        for r in &found {
            assert!(schemas.contains_key(r), "$ref {r} has no schema");
        }
        for (id, s) in schemas {
            assert_eq!(s["id"], json!(id), "schema id");
            assert_eq!(s["type"], "object");
            assert!(s["properties"].is_object(), "{id} has properties");
        }
    }

    #[test]
    fn uuid_paths_declare_a_uuid_path_parameter() {
        let d = doc();
        let mut seen = 0;
        for (res, name, m) in methods(&d) {
            let path = m["path"].as_str().unwrap();
            let uuid = &m["parameters"]["uuid"];
            if path.contains("{uuid}") {
                seen += 1;
                assert_eq!(uuid["location"], "path", "{res}.{name}");
                assert_eq!(uuid["required"], true, "{res}.{name}");
                assert_eq!(m["parameterOrder"], json!(["uuid"]), "{res}.{name}");
            } else {
                // groups.contents and users.setup take a uuid in the query string, as in Arvados.
                assert!(uuid.is_null() || uuid["location"] == "query", "{res}.{name}: uuid without {{uuid}}");
            }
            let templated = path.matches('{').count();
            assert!(templated == 0 || (templated == 1 && path.contains("{uuid}")), "{res}.{name}: {path}");
        }
        assert_eq!(seen, 22, "methods with {{uuid}} in the path");
    }

    #[test]
    fn every_parameter_has_a_location_and_type() {
        // googleapiclient silently drops parameters without a location.
        let d = doc();
        for (name, p) in d["parameters"].as_object().unwrap() {
            assert_eq!(p["location"], "query", "global {name}");
        }
        let free_form = ["configs", "vocabularies"];
        let bodiless_posts = ["merge", "activate", "setup", "unsetup", "trash", "untrash"];
        for (res, name, m) in methods(&d) {
            assert_eq!(m["id"], json!(format!("arvados.{res}.{name}")));
            if free_form.contains(&res.as_str()) {
                assert_eq!(m["response"], json!({}), "{res}.{name}: a free-form answer, parsed as JSON");
            } else {
                assert!(m["response"]["$ref"].is_string(), "{res}.{name} response");
            }
            assert!(m["scopes"].as_array().is_some_and(|s| !s.is_empty()));
            let path = m["path"].as_str().unwrap();
            for (pname, p) in m["parameters"].as_object().unwrap() {
                let loc = p["location"].as_str().unwrap_or("");
                let want = if pname == "uuid" && path.contains("{uuid}") { "path" } else { "query" };
                assert_eq!(loc, want, "{res}.{name}.{pname}");
                assert!(p["type"].is_string(), "{res}.{name}.{pname} type");
                assert!(p["required"].is_boolean(), "{res}.{name}.{pname} required");
            }
            let body = matches!(m["httpMethod"].as_str(), Some("POST" | "PUT"));
            if body && !bodiless_posts.contains(&name.as_str()) {
                assert_eq!(m["request"]["required"], true, "{res}.{name}");
                assert_eq!(m["request"]["properties"].as_object().unwrap().len(), 1);
            } else {
                assert!(m["request"].is_null(), "{res}.{name} takes no body");
            }
        }
    }

    /// One method of Arvados' own discovery document, as `discovery/arvados_expectations.txt`
    /// records it: (http method, path, parameter → "type:location:required|optional").
    type Expected = (String, String, BTreeMap<String, String>);

    fn arvados_expectations() -> BTreeMap<String, Expected> {
        let mut out = BTreeMap::new();
        for line in include_str!("discovery/arvados_expectations.txt").lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let mut words = line.split_whitespace();
            let (id, http, path) = (words.next().unwrap(), words.next().unwrap(), words.next().unwrap());
            let params = words
                .map(|w| {
                    let (name, rest) = w.split_once(':').unwrap();
                    (name.to_owned(), rest.to_owned())
                })
                .collect();
            out.insert(id.to_owned(), (http.to_owned(), path.to_owned(), params));
        }
        out
    }

    /// The methods Hearth serves are exactly the expectations' methods, each at Arvados' path and
    /// HTTP method, with every parameter Arvados declares for it, of the same type, in the same
    /// place, as required as in Arvados.
    #[test]
    fn methods_and_parameters_are_arvados_own() {
        let d = doc();
        let want = arvados_expectations();
        assert!(want.len() > 40, "expectations read: {}", want.len());
        let have: BTreeMap<String, Value> =
            methods(&d).into_iter().map(|(res, name, m)| (format!("{res}.{name}"), m)).collect();
        assert_eq!(have.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "resource.method names");
        for (id, (http, path, params)) in &want {
            let m = &have[id];
            assert_eq!(m["httpMethod"], json!(http), "{id}");
            assert_eq!(m["path"], json!(path), "{id}");
            let declared = m["parameters"].as_object().unwrap();
            for (name, shape) in params {
                let p = declared.get(name).unwrap_or_else(|| panic!("{id} does not declare {name}"));
                let required = if p["required"] == true { "required" } else { "optional" };
                let got = format!("{}:{}:{required}", p["type"].as_str().unwrap(), p["location"].as_str().unwrap());
                assert_eq!(&got, shape, "{id}.{name}");
            }
            let extra: Vec<&String> = declared.keys().filter(|k| !params.contains_key(*k)).collect();
            assert!(extra.is_empty(), "{id} declares parameters Arvados does not: {extra:?}");
        }
    }

    #[test]
    fn arrays_in_schemas_have_items() {
        // googleapiclient's docstring builder indexes schema["items"] of every array.
        fn check(v: &Value, at: &str) {
            if let Value::Object(m) = v {
                if m.get("type") == Some(&json!("array")) {
                    assert!(m.contains_key("items"), "array without items at {at}");
                }
                for (k, x) in m {
                    check(x, &format!("{at}.{k}"));
                }
            }
        }
        check(&doc()["schemas"], "schemas");
    }

    #[test]
    fn the_required_methods_are_there() {
        let d = doc();
        let r = &d["resources"];
        let merge = &r["users"]["methods"]["merge"];
        assert_eq!(merge["httpMethod"], "POST");
        assert_eq!(merge["path"], "users/merge");
        assert_eq!(merge["parameters"]["new_owner_uuid"]["required"], true);
        assert_eq!(merge["parameters"]["redirect_to_new_user"]["default"], "false");
        assert_eq!(r["groups"]["methods"]["create"]["request"]["properties"]["group"]["$ref"], "Group");
        assert_eq!(r["groups"]["methods"]["list"]["parameters"]["limit"]["default"], "100");
        assert_eq!(r["groups"]["methods"]["contents"]["parameters"]["uuid"]["default"], "");
        assert_eq!(r["users"]["methods"]["current"]["path"], "users/current");
        assert_eq!(r["configs"]["methods"]["get"]["path"], "config");
        assert_eq!(r["vocabularies"]["methods"]["get"]["path"], "vocabulary");
        assert_eq!(r["links"]["methods"]["get_permissions"]["path"], "permissions/{uuid}");
    }

    #[test]
    fn urls_and_cluster_facts() {
        let d = doc();
        assert_eq!(d["rootUrl"], "https://127.0.0.1:8443/");
        assert_eq!(d["baseUrl"], "https://127.0.0.1:8443/arvados/v1/");
        assert_eq!(d["servicePath"], "arvados/v1/");
        assert_eq!(d["uuidPrefix"], "aaaaa");
        assert_eq!(d["remoteHosts"], json!({"bbbbb": "127.0.0.1:8444"}));
        let again = document("aaaaa", "https://h.example:1/", &BTreeMap::new());
        assert_eq!(again["rootUrl"], "https://h.example:1/");
        assert_eq!(again["remoteHosts"], json!({}));
        assert_eq!(d["schemas"]["UserList"]["properties"]["kind"]["default"], "arvados#userList");
        assert_eq!(
            d["schemas"]["ApiClientAuthorizationList"]["properties"]["kind"]["default"],
            "arvados#apiClientAuthorizationList"
        );
    }
}
