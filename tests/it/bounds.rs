//! Bounds on what users store and what lists ask for (security issue 10, finding 3: "any logged-in
//! user can freeze a daemon"). Past a bound, on create and on update, of every kind of object:
//! 422 `too_long` naming the field, and nothing created or changed; at the bound: accepted. `like`
//! answers rightly for tricky and pathological patterns, and `/healthz` answers while heavy lists
//! run. (How fast is the benchmark's business: `cargo bench --bench lists`.)

use crate::harness::single;
use hearth::accounts::bounds::*;
use hearth::client::Client;
use reqwest::StatusCode;
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// About 4 MB: what the finding stored, still within the request body limit.
const HUGE: usize = 4_000_000;

fn x(n: usize) -> String {
    "x".repeat(n)
}

/// An object of `n` bytes serialized, every entry within the per-entry bounds.
fn props_of_len(n: usize) -> Value {
    let mut m = Map::new();
    let mut i = 0;
    loop {
        let now = serde_json::to_string(&m).unwrap().len();
        // Adding `"kN":"…"` costs its key, 5 bytes of quotes and colon, and a comma after the first.
        let key = format!("k{i}");
        let overhead = key.len() + 5 + usize::from(!m.is_empty());
        let room = n - now;
        let value_len = (room - overhead).min(MAX_PROPERTY_VALUE_BYTES - 2);
        m.insert(key, json!(x(value_len)));
        if value_len < MAX_PROPERTY_VALUE_BYTES - 2 {
            break;
        }
        i += 1;
    }
    let v = Value::Object(m);
    assert_eq!(serde_json::to_string(&v).unwrap().len(), n);
    v
}

/// One bounded attribute: a value at its bound, values past it, and how the refusal names it.
#[derive(Clone)]
struct Field {
    name: &'static str,
    at_limit: Value,
    over: Vec<Value>,
    named: &'static str,
}

fn chars(name: &'static str, max: usize) -> Field {
    // Multi-byte characters: the bound counts characters, not bytes.
    Field {
        name,
        at_limit: json!("é".repeat(max)),
        over: vec![json!("é".repeat(max + 1)), json!(x(HUGE))],
        named: name,
    }
}

fn bytes(name: &'static str, max: usize) -> Field {
    Field { name, at_limit: json!(x(max)), over: vec![json!(x(max + 1)), json!(x(HUGE))], named: name }
}

fn properties(name: &'static str) -> Vec<Field> {
    let value_at = MAX_PROPERTY_VALUE_BYTES - 2;
    vec![
        Field {
            name,
            at_limit: json!({"k": x(value_at)}),
            over: vec![json!({"k": x(value_at + 1)}), json!({"k": x(HUGE)})],
            named: name,
        },
        Field {
            name,
            at_limit: json!({x(MAX_PROPERTY_KEY_CHARS): 1}),
            over: vec![json!({x(MAX_PROPERTY_KEY_CHARS + 1): 1}), json!({x(HUGE): 1})],
            named: name,
        },
        Field {
            name,
            at_limit: props_of_len(MAX_PROPERTIES_BYTES),
            over: vec![props_of_len(MAX_PROPERTIES_BYTES + 1)],
            named: name,
        },
    ]
}

fn assert_too_long(r: &hearth::client::Answer, named: &str, what: &str) {
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {}", r.body);
    assert_eq!(r.code(), "too_long", "{what}: {}", r.body);
    let msg = r.body["errors"][0].as_str().unwrap();
    assert!(msg.starts_with(named), "{what}: message {msg:?} does not name {named}");
    assert!(msg.len() < 300, "{what}: the refusal echoes the value back ({} bytes)", msg.len());
    assert!(r.body["error_token"].is_string(), "{what}: {}", r.body);
}

async fn count(client: &Client, path: &str) -> u64 {
    client.get(&format!("{path}?limit=0")).await.unwrap().ok().unwrap()["items_available"].as_u64().unwrap()
}

/// Past every bound of `fields`: create refused and nothing created; update refused and the
/// object unchanged. At every bound: create and update accepted, and the value stored.
async fn check_kind(client: &Client, path: &str, resource: &str, base: Value, fields: Vec<Field>) {
    let existing = client.post(path, &json!({resource: base})).await.unwrap().ok().unwrap();
    let existing_path = format!("{path}/{}", existing["uuid"].as_str().unwrap());
    let before = count(client, path).await;
    for f in &fields {
        for over in &f.over {
            let mut attrs = base.clone();
            attrs[f.name] = over.clone();
            let what = format!("create {resource} with a long {}", f.name);
            assert_too_long(&client.post(path, &json!({resource: attrs})).await.unwrap(), f.named, &what);
            let what = format!("update {resource} with a long {}", f.name);
            let r = client.put(&existing_path, &json!({resource: {f.name: over}})).await.unwrap();
            assert_too_long(&r, f.named, &what);
        }
    }
    assert_eq!(count(client, path).await, before, "a refused create of {resource} created something");
    assert_eq!(client.get(&existing_path).await.unwrap().ok().unwrap(), existing, "a refused update changed it");
    for f in &fields {
        let mut attrs = base.clone();
        attrs[f.name] = f.at_limit.clone();
        let r = client.post(path, &json!({resource: attrs})).await.unwrap();
        assert_eq!(r.status, StatusCode::OK, "create {resource} with {} at its bound: {}", f.name, r.body);
        assert_eq!(r.body[f.name], f.at_limit, "{resource}.{} at its bound is stored as given", f.name);
        // Names are unique per owner: the one just made gives the name back for the update.
        let made = format!("{path}/{}", r.body["uuid"].as_str().unwrap());
        assert_eq!(client.delete(&made).await.unwrap().status, StatusCode::OK);
        let r = client.put(&existing_path, &json!({resource: {f.name: f.at_limit}})).await.unwrap();
        assert_eq!(r.status, StatusCode::OK, "update {resource} with {} at its bound: {}", f.name, r.body);
    }
}

#[tokio::test]
async fn every_kind_of_object_refuses_long_attributes_and_accepts_them_at_the_bound() {
    let fed = single().await;
    let c = &fed.clusters[0];
    let alice = c.user("alice").await;
    let group_fields =
        [vec![chars("name", MAX_NAME_CHARS), bytes("description", MAX_DESCRIPTION_BYTES)], properties("properties")]
            .concat();
    check_kind(&alice.client, "/arvados/v1/groups", "group", json!({"name": "g"}), group_fields).await;
    let collection_fields = [
        vec![
            chars("name", MAX_NAME_CHARS),
            bytes("description", MAX_DESCRIPTION_BYTES),
            Field {
                name: "manifest_text",
                at_limit: json!(x(MAX_MANIFEST_TEXT_BYTES)),
                over: vec![json!(x(MAX_MANIFEST_TEXT_BYTES + 1)), json!(x(HUGE))],
                named: "manifest_text",
            },
        ],
        properties("properties"),
    ]
    .concat();
    check_kind(&alice.client, "/arvados/v1/collections", "collection", json!({"name": "c"}), collection_fields).await;
    let link_fields =
        [vec![chars("link_class", MAX_LINK_CLASS_CHARS), chars("name", MAX_NAME_CHARS)], properties("properties")]
            .concat();
    let link = json!({"link_class": "tag", "name": "t", "head_uuid": alice.uuid});
    check_kind(&alice.client, "/arvados/v1/links", "link", link, link_fields).await;
    let key_prefix = "ssh-ed25519 ";
    let public_key = |n: usize| json!(format!("{key_prefix}{}", "A".repeat(n - key_prefix.len())));
    let key_fields = vec![
        chars("name", MAX_NAME_CHARS),
        chars("key_type", MAX_KEY_TYPE_CHARS),
        Field {
            name: "public_key",
            at_limit: public_key(MAX_PUBLIC_KEY_BYTES),
            over: vec![public_key(MAX_PUBLIC_KEY_BYTES + 1), public_key(HUGE)],
            named: "public_key",
        },
    ];
    let key = json!({"name": "laptop", "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBc alice@laptop"});
    check_kind(&alice.client, "/arvados/v1/authorized_keys", "authorized_key", key, key_fields).await;
}

/// U+0000 anywhere in a stored value (a name, a key or a nested value of `properties`, a user's
/// name): 422 `nul_character` naming the attribute, on create and on update, and nothing created or
/// changed. (PostgreSQL cannot store it; what sled takes PostgreSQL must take too.)
#[tokio::test]
async fn a_nul_character_is_refused_anywhere_in_what_is_stored() {
    let fed = single().await;
    let c = &fed.clusters[0];
    let alice = c.user("alice").await;
    let bad = [
        ("name", json!("a\u{0}b")),
        ("properties", json!({"k": "x\u{0}"})),
        ("properties", json!({"k\u{0}": 1})),
        ("properties", json!({"deep": [1, {"deeper": ["\u{0}"]}]})),
    ];
    let kinds = [
        ("/arvados/v1/groups", "group", json!({"name": "g", "group_class": "project"})),
        ("/arvados/v1/collections", "collection", json!({"name": "c"})),
        ("/arvados/v1/links", "link", json!({"link_class": "tag", "name": "t", "head_uuid": alice.uuid})),
    ];
    for (path, resource, base) in kinds {
        let existing = alice.client.post(path, &json!({resource: base})).await.unwrap().ok().unwrap();
        let existing_path = format!("{path}/{}", existing["uuid"].as_str().unwrap());
        let before = count(&alice.client, path).await;
        for (field, value) in &bad {
            let mut attrs = base.clone();
            attrs[*field] = value.clone();
            for r in [
                alice.client.post(path, &json!({resource: attrs})).await.unwrap(),
                alice.client.put(&existing_path, &json!({resource: {*field: value}})).await.unwrap(),
            ] {
                assert_eq!(
                    (r.status, r.code()),
                    (StatusCode::UNPROCESSABLE_ENTITY, "nul_character"),
                    "{resource}.{field}: {}",
                    r.body
                );
                assert!(r.body["errors"][0].as_str().unwrap().contains(field), "{}", r.body);
            }
        }
        assert_eq!(count(&alice.client, path).await, before, "a refused create of {resource} created something");
        assert_eq!(
            alice.client.get(&existing_path).await.unwrap().ok().unwrap(),
            existing,
            "a refused update changed it"
        );
        // The same text with the escape spelled out is an ordinary string.
        let fine =
            alice.client.put(&existing_path, &json!({resource: {"properties": {"k": "a\\u0000b"}}})).await.unwrap();
        assert_eq!(fine.status, StatusCode::OK, "{}", fine.body);
    }
    let me = format!("/arvados/v1/users/{}", alice.uuid);
    let before = alice.client.get(&me).await.unwrap().ok().unwrap();
    let r = alice.client.put(&me, &json!({"user": {"first_name": "Al\u{0}ice"}})).await.unwrap();
    assert_eq!((r.status, r.code()), (StatusCode::UNPROCESSABLE_ENTITY, "nul_character"), "{}", r.body);
    assert_eq!(alice.client.get(&me).await.unwrap().ok().unwrap()["first_name"], before["first_name"]);
}

#[tokio::test]
async fn users_refuse_long_attributes_on_create_and_update() {
    let fed = single().await;
    let c = &fed.clusters[0];
    let alice = c.user("alice").await;
    // A valid address of n bytes (RFC 5321: a local part of at most 64, labels of at most 63).
    let email = |n: usize| {
        let last = n - 64 - 1 - 2 * 64 - ".org".len();
        json!(format!("{}@{}.{}.{}.org", "a".repeat(64), "b".repeat(63), "c".repeat(63), "d".repeat(last)))
    };
    let username = |n: usize| json!(format!("u{}", "1".repeat(n - 1)));
    let admin_fields = vec![
        Field {
            name: "email",
            at_limit: email(MAX_EMAIL_BYTES),
            over: vec![email(MAX_EMAIL_BYTES + 1), email(HUGE)],
            named: "email",
        },
        Field {
            name: "username",
            at_limit: username(MAX_USERNAME_CHARS),
            over: vec![username(MAX_USERNAME_CHARS + 1), username(HUGE)],
            named: "username",
        },
    ];
    let self_fields = [
        vec![chars("first_name", MAX_PERSON_NAME_CHARS), chars("last_name", MAX_PERSON_NAME_CHARS)],
        properties("prefs"),
    ]
    .concat();
    let me = format!("/arvados/v1/users/{}", alice.uuid);
    let before_users = count(&c.root, "/arvados/v1/users").await;
    let before_alice = alice.client.get(&me).await.unwrap().ok().unwrap();
    for f in self_fields.iter().chain(&admin_fields) {
        for over in &f.over {
            let r = c.root.post("/arvados/v1/users", &json!({"user": {f.name: over}})).await.unwrap();
            assert_too_long(&r, f.named, &format!("create a user with a long {}", f.name));
            // The admin changes any field; alice only her own names and prefs.
            let r = c.root.put(&me, &json!({"user": {f.name: over}})).await.unwrap();
            assert_too_long(&r, f.named, &format!("an admin sets a long {}", f.name));
        }
    }
    for f in &self_fields {
        for over in &f.over {
            let r = alice.client.put(&me, &json!({"user": {f.name: over}})).await.unwrap();
            assert_too_long(&r, f.named, &format!("alice sets a long {}", f.name));
        }
    }
    assert_eq!(count(&c.root, "/arvados/v1/users").await, before_users, "a refused create made a user");
    assert_eq!(alice.client.get(&me).await.unwrap().ok().unwrap(), before_alice, "a refused update changed alice");
    for f in self_fields.iter().chain(&admin_fields) {
        let r = c.root.post("/arvados/v1/users", &json!({"user": {f.name: f.at_limit}})).await.unwrap();
        assert_eq!(r.status, StatusCode::OK, "a user with {} at its bound: {}", f.name, r.body);
        assert_eq!(r.body[f.name], f.at_limit);
    }
    for f in &self_fields {
        let r = alice.client.put(&me, &json!({"user": {f.name: f.at_limit}})).await.unwrap();
        assert_eq!(r.status, StatusCode::OK, "alice sets {} at its bound: {}", f.name, r.body);
    }
}

#[tokio::test]
async fn tokens_and_list_parameters_are_bounded() {
    let fed = single().await;
    let c = &fed.clusters[0];
    let alice = c.user("alice").await;
    let tokens = "/arvados/v1/api_client_authorizations";
    let before = count(&alice.client, tokens).await;
    let scope = |n: usize| format!("GET /{}", x(n - "GET /".len()));
    let many = vec![scope(10); MAX_SCOPES + 1];
    for (attrs, named) in [
        (json!({"scopes": many}), "scopes"),
        (json!({"scopes": [scope(MAX_SCOPE_BYTES + 1)]}), "scopes"),
        (json!({"scopes": [x(HUGE)]}), "scopes"),
        (json!({"expires_at": x(MAX_TIME_BYTES + 1)}), "expires_at"),
        (json!({"expires_at": x(HUGE)}), "expires_at"),
    ] {
        let r = alice.client.post(tokens, &json!({"api_client_authorization": attrs})).await.unwrap();
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert!(r.body["errors"][0].as_str().unwrap().starts_with(named), "{}", r.body);
    }
    assert_eq!(count(&alice.client, tokens).await, before, "a refused token was made");
    let r = alice
        .client
        .post(tokens, &json!({"api_client_authorization": {"scopes": vec![scope(MAX_SCOPE_BYTES); MAX_SCOPES]}}))
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::OK, "scopes at their bounds: {}", r.body);

    let list = |q: Vec<(&'static str, String)>| {
        let client = alice.client.clone();
        async move { client.get(&format!("/arvados/v1/groups?{}", serde_urlencoded::to_string(q).unwrap())).await }
    };
    let filter = json!(["name", "like", "%"]);
    let r = list(vec![("filters", json!(vec![filter.clone(); MAX_FILTERS]).to_string())]).await.unwrap();
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = list(vec![("filters", json!(vec![filter; MAX_FILTERS + 1]).to_string())]).await.unwrap();
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.code(), "too_many");
    assert!(r.body["errors"][0].as_str().unwrap().starts_with("filters"), "{}", r.body);
    for operand in [json!(x(MAX_FILTER_OPERAND_CHARS + 1)), json!(vec!["a"; MAX_FILTER_LIST + 1])] {
        // Long list parameters come in the body.
        let body = json!({"filters": [["name", "=", "g"], ["name", "in", operand]]});
        let r = alice.client.call(reqwest::Method::GET, "/arvados/v1/groups", Some(&body)).await.unwrap();
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert!(r.body["errors"][0].as_str().unwrap().starts_with("filters[1] operand"), "{}", r.body);
    }
    let r = list(vec![("order", vec!["name"; 17].join(","))]).await.unwrap();
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body["errors"][0].as_str().unwrap().starts_with("order"), "{}", r.body);
}

async fn names_matching(client: &Client, project: &str, filters: Value) -> Vec<String> {
    let mut all = vec![json!(["owner_uuid", "=", project])];
    all.extend(filters.as_array().unwrap().iter().cloned());
    let body = json!({"filters": all, "limit": 1000});
    let r = client.call(reqwest::Method::GET, "/arvados/v1/collections", Some(&body)).await.unwrap().ok().unwrap();
    let mut names: Vec<String> =
        r["items"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap().to_string()).collect();
    names.sort();
    names
}

#[tokio::test]
async fn like_answers_rightly_for_tricky_and_pathological_patterns() {
    let fed = single().await;
    let c = &fed.clusters[0];
    let alice = c.user("alice").await;
    let p = alice.client.post("/arvados/v1/groups", &json!({"group": {"name": "like"}})).await.unwrap().ok().unwrap();
    let project = p["uuid"].as_str().unwrap();
    let long = x(MAX_NAME_CHARS);
    let names = ["Report_2024", "Report-2024", "report-2024", "50% off", "back\\slash", "ab", "grün", long.as_str()];
    for n in names {
        alice
            .client
            .post("/arvados/v1/collections", &json!({"collection": {"name": n, "owner_uuid": project}}))
            .await
            .unwrap()
            .ok()
            .unwrap();
    }
    let q = |f: Value| names_matching(&alice.client, project, f);
    assert_eq!(q(json!([["name", "like", "Report_2024"]])).await, ["Report-2024", "Report_2024"]);
    assert_eq!(q(json!([["name", "like", "Report\\_2024"]])).await, ["Report_2024"]);
    assert_eq!(q(json!([["name", "ilike", "report_2024"]])).await, ["Report-2024", "Report_2024", "report-2024"]);
    assert_eq!(q(json!([["name", "like", "50\\%%"]])).await, ["50% off"]);
    assert_eq!(q(json!([["name", "like", "%\\\\%"]])).await, ["back\\slash"]);
    assert_eq!(q(json!([["name", "like", "__"]])).await, ["ab"]);
    assert_eq!(q(json!([["name", "like", "gr_n"]])).await, ["grün"]);
    assert_eq!(q(json!([["name", "like", "%"]])).await.len(), names.len());
    // A lone escape at the end is refused, naming the problem.
    let r = alice
        .client
        .call(reqwest::Method::GET, "/arvados/v1/collections", Some(&json!({"filters": [["name", "like", "ab\\"]]})))
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(r.body["errors"][0].as_str().unwrap().contains("escape"), "{}", r.body);
    // Pathological patterns: 200 wildcards against the longest name, many times over.
    let many = format!("{}%", "%x".repeat(200));
    assert_eq!(q(json!([["name", "like", many]])).await, std::slice::from_ref(&long));
    assert_eq!(q(json!(vec![json!(["name", "like", many]); MAX_FILTERS - 1])).await, std::slice::from_ref(&long));
    assert!(q(json!([["name", "like", format!("{}%", "%x".repeat(256))]])).await.is_empty());
    assert!(q(json!([["name", "like", format!("{}y", "%x".repeat(200))]])).await.is_empty());
    let underscores = format!("%{}%", "_".repeat(MAX_NAME_CHARS));
    assert_eq!(q(json!([["name", "ilike", underscores]])).await, [long]);
}

/// Makes `n` collections whose names and descriptions are at their bounds and end in `y`.
async fn heavy_collections(client: &Client, n: usize) {
    for i in 0..n {
        // Names are unique per owner: told apart by a number before the final y.
        let name = format!("{}{i:03}y", x(MAX_NAME_CHARS - 4));
        let attrs = json!({"name": name, "description": format!("{}y", x(MAX_DESCRIPTION_BYTES - 1))});
        client.post("/arvados/v1/collections", &json!({"collection": attrs})).await.unwrap().ok().unwrap();
    }
}

/// Heavy lists run on the blocking pool: while more of them run than the runtime has worker
/// threads, `/healthz` still answers, before any of them does. (On the runtime, the lists held
/// every worker and `/healthz` waited for one of them to finish.)
#[tokio::test]
async fn healthz_answers_while_heavy_lists_run() {
    let fed = single().await;
    let c = &fed.clusters[0];
    let alice = c.user("alice").await;
    heavy_collections(&alice.client, 4).await;
    // Each filter passes (so every one is evaluated) only after scanning a whole description.
    let pattern = format!("%{}y%", "_".repeat(MAX_FILTER_OPERAND_CHARS - 3));
    let filters = json!(vec![json!(["description", "like", pattern]); 8]);
    let body = Arc::new(json!({"filters": filters, "limit": 1}));
    let lists = 2 * std::thread::available_parallelism().map_or(2, |n| n.get());
    let done = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..lists {
        let (client, body, done) = (alice.client.clone(), body.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let r = client.call(reqwest::Method::GET, "/arvados/v1/collections", Some(&body)).await.unwrap();
            done.fetch_add(1, Ordering::SeqCst);
            r
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let asked = std::time::Instant::now();
    let health = c.anon.get("/healthz").await.unwrap();
    let finished_first = done.load(Ordering::SeqCst);
    eprintln!("/healthz answered in {:?}", asked.elapsed());
    assert_eq!(health.status, StatusCode::OK);
    for t in tasks {
        let r = t.await.unwrap().ok().unwrap();
        eprintln!("a heavy list answered {:?} after /healthz was asked", asked.elapsed());
        assert_eq!(r["items_available"], 4, "every heavy collection matches");
    }
    assert_eq!(finished_first, 0, "{finished_first} of {lists} heavy lists answered before /healthz did");
}
