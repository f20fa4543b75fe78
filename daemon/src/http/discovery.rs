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
//! `Authorization: Bearer <token>`. The document lists only what Hearth serves.

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

fn query(ty: &str, description: &str) -> Value {
    json!({"type": ty, "required": false, "description": description, "location": "query"})
}

fn query_default(ty: &str, default: &str, description: &str) -> Value {
    json!({
        "type": ty, "required": false, "default": default, "description": description,
        "location": "query",
    })
}

fn uuid_param(schema: &str) -> Value {
    json!({
        "type": "string", "required": true, "location": "path",
        "description": format!("The UUID of the {schema} in question."),
    })
}

fn select_param() -> Value {
    query("array", "Attributes of the record(s) to return (JSON array of names).")
}

fn list_params() -> Value {
    json!({
        "filters": query("array", "Conditions, as a JSON array of [attribute, operator, operand]."),
        "where": query("object", "Conditions, as a JSON object of attribute: value."),
        "order": query("array", "Sort order, as a JSON array of \"attribute asc|desc\"."),
        "select": select_param(),
        "distinct": query_default("boolean", "false", "Return each distinct selected record once."),
        "limit": query_default("integer", "100", "Maximum number of items to return."),
        "offset": query_default("integer", "0", "Number of items to skip before the first."),
        "count": query_default("string", "exact", "\"exact\" to count items_available, \"none\" to skip."),
        "cluster_id": query("string", "List records of this cluster (federation)."),
        "bypass_federation": query_default("boolean", "false", "Answer from this cluster only (admin)."),
        "include_trash": query_default("boolean", "false", "Include trashed records."),
    })
}

fn create_params() -> Value {
    json!({
        "select": select_param(),
        "ensure_unique_name": query_default(
            "boolean", "false",
            "Rename the new record (adding a suffix) if its name is taken in the owner project.",
        ),
        "cluster_id": query("string", "Create the record on this cluster (federation)."),
    })
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
    response: String,
}

fn method(s: Spec<'_>) -> Value {
    let scopes = if s.http == "GET" { json!([SCOPE_RW, SCOPE_RO]) } else { json!([SCOPE_RW]) };
    let order: Vec<&str> = if s.path.contains("{uuid}") { vec!["uuid"] } else { vec![] };
    let mut m = json!({
        "id": format!("arvados.{}.{}", s.resource, s.name),
        "path": s.path,
        "httpMethod": s.http,
        "description": s.description,
        "parameters": s.parameters,
        "parameterOrder": order,
        "response": {"$ref": s.response},
        "scopes": scopes,
    });
    if let (Some((wrapper, schema)), Some(obj)) = (s.request, m.as_object_mut()) {
        obj.insert("request".to_owned(), json!({"required": true, "properties": {wrapper: {"$ref": schema}}}));
    }
    m
}

#[derive(Clone, Copy, PartialEq)]
enum Op {
    Get,
    List,
    Create,
    Update,
    Delete,
}

/// The standard methods `ops` of `resource` (records of `schema`, bodies wrapped in `wrapper`).
fn crud(resource: &str, schema: &str, wrapper: &str, ops: &[Op]) -> Map<String, Value> {
    let one = format!("{resource}/{{uuid}}");
    let mut out = Map::new();
    for op in ops {
        let spec = match op {
            Op::Get => Spec {
                resource,
                name: "get",
                http: "GET",
                path: one.clone(),
                description: format!("Get a {schema} record by UUID."),
                parameters: json!({"uuid": uuid_param(schema), "select": select_param()}),
                request: None,
                response: schema.to_owned(),
            },
            Op::List => Spec {
                resource,
                name: "list",
                http: "GET",
                path: resource.to_owned(),
                description: format!("List {schema} records the caller can read."),
                parameters: list_params(),
                request: None,
                response: format!("{schema}List"),
            },
            Op::Create => Spec {
                resource,
                name: "create",
                http: "POST",
                path: resource.to_owned(),
                description: format!("Create a new {schema}."),
                parameters: create_params(),
                request: Some((wrapper, schema)),
                response: schema.to_owned(),
            },
            Op::Update => Spec {
                resource,
                name: "update",
                http: "PUT",
                path: one.clone(),
                description: format!("Update attributes of an existing {schema}."),
                parameters: json!({"uuid": uuid_param(schema), "select": select_param()}),
                request: Some((wrapper, schema)),
                response: schema.to_owned(),
            },
            Op::Delete => Spec {
                resource,
                name: "delete",
                http: "DELETE",
                path: one.clone(),
                description: format!("Delete an existing {schema}."),
                parameters: json!({"uuid": uuid_param(schema)}),
                request: None,
                response: schema.to_owned(),
            },
        };
        out.insert(spec.name.to_owned(), method(spec));
    }
    out
}

fn resources() -> Value {
    use Op::{Create, Delete, Get, List, Update};
    const ALL: &[Op] = &[Get, List, Create, Update, Delete];

    let mut users = crud("users", "User", "user", &[Get, List, Create, Update]);
    users.insert(
        "current".to_owned(),
        method(Spec {
            resource: "users",
            name: "current",
            http: "GET",
            path: "users/current".to_owned(),
            description: "Return the user the request's token belongs to.".to_owned(),
            parameters: json!({}),
            request: None,
            response: "User".to_owned(),
        }),
    );
    users.insert(
        "merge".to_owned(),
        method(Spec {
            resource: "users",
            name: "merge",
            http: "POST",
            path: "users/merge".to_owned(),
            description: "Move everything the old user owns to new_owner_uuid, and optionally \
                          redirect the old user to the new one. Returns the old user."
                .to_owned(),
            parameters: json!({
                "new_owner_uuid": {
                    "type": "string", "required": true, "location": "query",
                    "description": "The user or project (writable by the new user) that receives \
                                    the old user's objects.",
                },
                "new_user_token": query("string", "A token of the new user (token variant)."),
                "redirect_to_new_user": query_default(
                    "boolean", "false",
                    "Redirect the old user to the new one: its tokens and SSH keys move over.",
                ),
                "old_user_uuid": query("string", "The user to merge away (admin variant)."),
                "new_user_uuid": query("string", "The user to merge into (admin variant)."),
            }),
            request: None,
            response: "User".to_owned(),
        }),
    );

    let mut tokens = crud(
        "api_client_authorizations",
        "ApiClientAuthorization",
        "api_client_authorization",
        &[Get, List, Create, Delete],
    );
    tokens.insert(
        "current".to_owned(),
        method(Spec {
            resource: "api_client_authorizations",
            name: "current",
            http: "GET",
            path: "api_client_authorizations/current".to_owned(),
            description: "Return the token the request was made with.".to_owned(),
            parameters: json!({}),
            request: None,
            response: "ApiClientAuthorization".to_owned(),
        }),
    );

    let table: [(&str, Map<String, Value>); 7] = [
        ("users", users),
        ("api_client_authorizations", tokens),
        ("groups", crud("groups", "Group", "group", ALL)),
        ("collections", crud("collections", "Collection", "collection", ALL)),
        ("links", crud("links", "Link", "link", ALL)),
        ("authorized_keys", crud("authorized_keys", "AuthorizedKey", "authorized_key", ALL)),
        ("logs", crud("logs", "Log", "log", &[Get, List])),
    ];
    let mut out = Map::new();
    for (name, methods) in table {
        out.insert(name.to_owned(), json!({"methods": methods}));
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
                assert!(uuid.is_null(), "{res}.{name} has a uuid but no {{uuid}}");
            }
            assert!(!path.contains(['{', '}']) || path.ends_with("/{uuid}"));
        }
        assert_eq!(seen, 17, "methods with {{uuid}} in the path");
    }

    #[test]
    fn every_parameter_has_a_location_and_type() {
        // googleapiclient silently drops parameters without a location.
        let d = doc();
        for (name, p) in d["parameters"].as_object().unwrap() {
            assert_eq!(p["location"], "query", "global {name}");
        }
        for (res, name, m) in methods(&d) {
            assert_eq!(m["id"], json!(format!("arvados.{res}.{name}")));
            assert!(m["response"]["$ref"].is_string(), "{res}.{name} response");
            assert!(m["scopes"].as_array().is_some_and(|s| !s.is_empty()));
            for (pname, p) in m["parameters"].as_object().unwrap() {
                let loc = p["location"].as_str().unwrap_or("");
                let want = if pname == "uuid" { "path" } else { "query" };
                assert_eq!(loc, want, "{res}.{name}.{pname}");
                assert!(p["type"].is_string(), "{res}.{name}.{pname} type");
            }
            let body = matches!(m["httpMethod"].as_str(), Some("POST" | "PUT"));
            if body && name != "merge" {
                assert_eq!(m["request"]["required"], true, "{res}.{name}");
                assert_eq!(m["request"]["properties"].as_object().unwrap().len(), 1);
            } else {
                assert!(m["request"].is_null(), "{res}.{name} takes no body");
            }
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
        let want: &[(&str, &[&str])] = &[
            ("users", &["current", "get", "list", "create", "update", "merge"]),
            ("api_client_authorizations", &["current", "get", "list", "create", "delete"]),
            ("groups", &["get", "list", "create", "update", "delete"]),
            ("collections", &["get", "list", "create", "update", "delete"]),
            ("links", &["get", "list", "create", "update", "delete"]),
            ("authorized_keys", &["get", "list", "create", "update", "delete"]),
            ("logs", &["get", "list"]),
        ];
        assert_eq!(r.as_object().unwrap().len(), want.len());
        for (res, names) in want {
            let ms = r[*res]["methods"].as_object().unwrap();
            let mut have: Vec<&str> = ms.keys().map(String::as_str).collect();
            let mut expect = names.to_vec();
            have.sort_unstable();
            expect.sort_unstable();
            assert_eq!(have, expect, "{res}");
        }
        let merge = &r["users"]["methods"]["merge"];
        assert_eq!(merge["httpMethod"], "POST");
        assert_eq!(merge["path"], "users/merge");
        assert_eq!(merge["parameters"]["new_owner_uuid"]["required"], true);
        assert_eq!(merge["parameters"]["redirect_to_new_user"]["default"], "false");
        assert_eq!(r["groups"]["methods"]["create"]["request"]["properties"]["group"]["$ref"], "Group");
        assert_eq!(r["groups"]["methods"]["list"]["parameters"]["limit"]["default"], "100");
        assert_eq!(r["users"]["methods"]["current"]["path"], "users/current");
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
