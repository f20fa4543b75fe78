//! List requests: Arvados `filters`, `order`, `limit`, `offset`, applied to the API views.
//!
//! Filters are `[attribute, operator, operand]` triples (`=`, `!=`, `<`, `<=`, `>`, `>=`, `in`,
//! `not in`, `like`, `ilike`, `is_a`, `exists`). A filter on an attribute the resource does not have
//! is refused (422) rather than silently matching nothing. The attribute `any` means any attribute
//! but `manifest_text` (as in Arvados). `like` patterns are matched in linear time ([`like`]).
//!
//! Every list request is bounded ([`bounds`](super::bounds)): the number of filters, `order` and
//! `select` entries, the length of attribute names and operands, and the bytes of one page.
//!
//! Users, groups, collections, links and keys are listed through a small planner
//! ([`ListParams::plan`]): it picks where candidate rows come from (a point lookup by uuid, email,
//! username, owner or link end; a uuid range; the created/modified time index) and whether they
//! come in the list's order. [`ListParams::collect`] then decodes candidates one by one, checks
//! visibility and the filters (on the record itself where the attributes allow, else on its
//! rendered view), and, when the order is the source's, stops after the page (or counts on
//! cheaply); otherwise it sorts what matched. Only the page is rendered. Other lists (tokens, logs,
//! persons) still render everything and use [`ListParams::apply`]. Either way the work is CPU
//! work: callers run it off the async runtime.

mod like;
mod plan;

use super::bounds::{self, MAX_ATTRIBUTE_CHARS, MAX_FILTER_LIST, MAX_FILTER_OPERAND_CHARS, MAX_FILTERS};
use super::error::{Error, Result};
pub use like::LikePattern;
pub use plan::{Found, Listable, Plan};
use serde_json::{Map, Value, json};
use std::cmp::Ordering;

/// One filter.
#[derive(Debug, Clone)]
pub struct Filter {
    attr: String,
    op: Op,
    operand: Value,
    /// The compiled operand of `like` (lowercased for `ilike`).
    pattern: Option<LikePattern>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    NotIn,
    Like,
    ILike,
    IsA,
    Exists,
}

/// A parsed list request.
#[derive(Debug, Clone)]
pub struct ListParams {
    /// All must match.
    pub filters: Vec<Filter>,
    /// (attribute, ascending).
    pub order: Vec<(String, bool)>,
    /// Page size.
    pub limit: usize,
    /// Items skipped.
    pub offset: usize,
    /// Attributes to return (all when `None`).
    pub select: Option<Vec<String>>,
    /// `count=none`: leave `items_available` out, as Arvados does.
    pub count_none: bool,
}

impl Default for ListParams {
    fn default() -> Self {
        ListParams { filters: Vec::new(), order: Vec::new(), limit: 100, offset: 0, select: None, count_none: false }
    }
}

fn bad(msg: impl Into<String>) -> Error {
    Error::unprocessable("invalid_list_parameter", msg)
}

impl ListParams {
    /// Parses the raw query values (`filters`, `order` and `select` as JSON or, for `order`, a
    /// comma-separated string), capping `limit` at `max_limit`.
    pub fn parse(
        filters: Option<&str>,
        order: Option<&str>,
        limit: Option<&str>,
        offset: Option<&str>,
        select: Option<&str>,
        max_limit: u64,
    ) -> Result<ListParams> {
        let mut p = ListParams::default();
        if let Some(f) = filters.filter(|s| !s.is_empty()) {
            let v: Value = serde_json::from_str(f).map_err(|e| bad(format!("filters: not JSON: {e}")))?;
            p.filters = parse_filters(&v)?;
        }
        if let Some(o) = order.filter(|s| !s.is_empty()) {
            let items: Vec<String> = match serde_json::from_str::<Value>(o) {
                Ok(Value::Array(a)) => a
                    .into_iter()
                    .map(|x| x.as_str().map(str::to_string).ok_or_else(|| bad("order: entries must be strings")))
                    .collect::<Result<_>>()?,
                Ok(Value::String(s)) => vec![s],
                _ => o.split(',').map(|s| s.trim().to_string()).collect(),
            };
            if items.len() > bounds::MAX_ORDER {
                return Err(bounds::too_many("order", bounds::MAX_ORDER, "entries"));
            }
            for item in items {
                bounds::check_chars("order: an entry", &item, MAX_ATTRIBUTE_CHARS)?;
                let mut parts = item.split_whitespace();
                let attr = parts.next().ok_or_else(|| bad("order: empty entry"))?;
                let attr = attr.rsplit('.').next().unwrap_or(attr).to_string();
                let asc = match parts.next().map(str::to_ascii_lowercase).as_deref() {
                    None | Some("asc") => true,
                    Some("desc") => false,
                    Some(other) => {
                        return Err(bad(format!("order: direction must be asc or desc, not {other}")));
                    }
                };
                p.order.push((attr, asc));
            }
        }
        if let Some(l) = limit.filter(|s| !s.is_empty()) {
            let n: i64 = l.parse().map_err(|_| bad("limit: must be a non-negative integer"))?;
            if n < 0 {
                return Err(bad("limit: must be a non-negative integer"));
            }
            p.limit = usize::try_from(n.min(max_limit as i64)).unwrap_or(100);
        }
        if let Some(o) = offset.filter(|s| !s.is_empty()) {
            let n: i64 = o.parse().map_err(|_| bad("offset: must be a non-negative integer"))?;
            if n < 0 {
                return Err(bad("offset: must be a non-negative integer"));
            }
            p.offset = usize::try_from(n).unwrap_or(0);
        }
        if let Some(s) = select.filter(|s| !s.is_empty()) {
            let v: Vec<String> =
                serde_json::from_str(s).map_err(|e| bad(format!("select: must be a JSON array of strings: {e}")))?;
            if v.len() > bounds::MAX_SELECT {
                return Err(bounds::too_many("select", bounds::MAX_SELECT, "entries"));
            }
            for a in &v {
                bounds::check_chars("select: an entry", a, MAX_ATTRIBUTE_CHARS)?;
            }
            p.select = Some(v);
        }
        Ok(p)
    }

    /// Adds Arvados' `where` (an object of attribute: value, a list value meaning any of them) to
    /// the filters, and its `count` (`exact`, the default, or `none`).
    pub fn with_where_and_count(mut self, where_: Option<&str>, count: Option<&str>) -> Result<ListParams> {
        if let Some(w) = where_.filter(|s| !s.is_empty()) {
            let Ok(Value::Object(m)) = serde_json::from_str::<Value>(w) else {
                return Err(bad("Could not parse \"where\" param as an object"));
            };
            if self.filters.len() + m.len() > MAX_FILTERS {
                return Err(bounds::too_many("filters", MAX_FILTERS, "entries"));
            }
            for (i, (attr, v)) in m.into_iter().enumerate() {
                let op = if v.is_array() { "in" } else { "=" };
                self.filters.push(parse_filter(i, &json!([attr, op, v]))?);
            }
        }
        match count {
            None | Some("" | "exact") => {}
            Some("none") => self.count_none = true,
            Some(other) => {
                return Err(bad(format!("count: must be \"exact\" or \"none\", not {}", bounds::excerpt(other))));
            }
        }
        Ok(self)
    }

    /// Applies filters, order and paging to `items` (API views) of resource `kind` (e.g.
    /// `arvados#userList`), returning the Arvados list body.
    pub fn apply(&self, list_kind: &str, items: Vec<Value>) -> Result<Value> {
        let matched = self.filter_and_sort(items)?;
        Ok(self.page(list_kind, matched))
    }

    /// The items that pass every filter, in the requested order (then by uuid). A filter or order
    /// on an attribute the items lack is refused.
    pub fn filter_and_sort(&self, items: Vec<Value>) -> Result<Vec<Value>> {
        if let Some(first) = items.first() {
            self.check_known(first, &[])?;
        }
        let mut matched: Vec<Value> = Vec::with_capacity(items.len());
        for item in items {
            if self.matches(&item)? {
                matched.push(item);
            }
        }
        let order = self.full_order();
        matched.sort_by(|a, b| {
            order_by(
                &order,
                |i| a.get(&order[i].0).unwrap_or(&Value::Null),
                |i| b.get(&order[i].0).unwrap_or(&Value::Null),
            )
        });
        Ok(matched)
    }

    /// Refuses a filter or order on an attribute `first` (an item of the list) lacks, unless it is
    /// one of `always` (attributes every item has).
    fn check_known(&self, first: &Value, always: &[&str]) -> Result<()> {
        for f in &self.filters {
            if first.get(&f.attr).is_none() && f.attr != "any" && !always.contains(&f.attr.as_str()) {
                return Err(bad(format!("Invalid attribute '{}' in filter", f.attr)));
            }
        }
        for (a, _) in &self.order {
            if first.get(a).is_none() && !always.contains(&a.as_str()) {
                return Err(bad(format!("Invalid attribute '{a}' in order")));
            }
        }
        Ok(())
    }

    /// Whether a view passes every filter.
    fn matches(&self, item: &Value) -> Result<bool> {
        self.filters.iter().try_fold(true, |acc, f| Ok::<_, Error>(acc && f.matches(item)?))
    }

    /// The order a list sorts by: the requested one (default `modified_at desc`), then uuid.
    fn full_order(&self) -> Vec<(String, bool)> {
        let mut order = self.order.clone();
        if order.is_empty() {
            order.push(("modified_at".into(), false));
        }
        order.push(("uuid".into(), true));
        order
    }

    /// One page of `matched` (already filtered and sorted) as the Arvados list body.
    pub fn page(&self, list_kind: &str, matched: Vec<Value>) -> Value {
        let available = matched.len();
        self.page_window(list_kind, matched.into_iter().skip(self.offset).take(self.limit).collect(), available)
    }

    /// The Arvados list body of `window`, the page's items (`offset` skipped, at most `limit`), of
    /// `available` matches.
    pub fn page_window(&self, list_kind: &str, window: Vec<Value>, available: usize) -> Value {
        // A page holds at most MAX_LIST_PAGE_BYTES (and at least one item). When that cuts it short,
        // `limit` says how many came, as Arvados does past MaxIndexDatabaseRead; clients page on.
        let (mut page, mut bytes, mut limit) = (Vec::new(), 0usize, self.limit);
        for v in window.into_iter().take(self.limit) {
            let v = self.select_fields(v);
            let size = bounds::json_len(&v);
            if !page.is_empty() && bytes.saturating_add(size) > bounds::MAX_LIST_PAGE_BYTES {
                limit = page.len();
                break;
            }
            bytes = bytes.saturating_add(size);
            page.push(v);
        }
        let mut body = json!({
            "kind": list_kind,
            "etag": "",
            "self_link": "",
            "offset": self.offset,
            "limit": limit,
            "items_available": available,
            "items": page,
        });
        if self.count_none
            && let Some(m) = body.as_object_mut()
        {
            m.remove("items_available");
        }
        body
    }

    /// One record with only the selected attributes (and `kind`, `uuid`), as a get answers.
    pub fn select_one(&self, v: Value) -> Value {
        self.select_fields(v)
    }

    fn select_fields(&self, v: Value) -> Value {
        match (&self.select, v) {
            (Some(sel), Value::Object(m)) => {
                let mut out = Map::new();
                for k in sel {
                    if let Some(x) = m.get(k) {
                        out.insert(k.clone(), x.clone());
                    }
                }
                for k in ["kind", "uuid"] {
                    if let Some(x) = m.get(k) {
                        out.entry(k.to_string()).or_insert_with(|| x.clone());
                    }
                }
                Value::Object(out)
            }
            (_, v) => v,
        }
    }
}

fn parse_filters(v: &Value) -> Result<Vec<Filter>> {
    let arr = v.as_array().ok_or_else(|| bad("filters: must be an array of [attribute, operator, operand]"))?;
    // A single filter may be given unwrapped: ["name", "=", "x"].
    if arr.len() == 3 && arr[0].is_string() && arr[1].is_string() {
        return Ok(vec![parse_filter(0, v)?]);
    }
    if arr.len() > MAX_FILTERS {
        return Err(bounds::too_many("filters", MAX_FILTERS, "entries"));
    }
    arr.iter().enumerate().map(|(i, f)| parse_filter(i, f)).collect()
}

/// A filter's operand within its bounds: a string of at most [`MAX_FILTER_OPERAND_CHARS`]
/// characters, another value of at most as many bytes of JSON, or a list of at most
/// [`MAX_FILTER_LIST`] such values.
fn check_operand(i: usize, operand: &Value) -> Result<()> {
    let field = || format!("filters[{i}] operand");
    let one = |v: &Value| match v {
        Value::String(s) => bounds::check_chars(&field(), s, MAX_FILTER_OPERAND_CHARS),
        v if bounds::json_within(v, MAX_FILTER_OPERAND_CHARS) => Ok(()),
        _ => Err(bounds::too_long(&field(), MAX_FILTER_OPERAND_CHARS, "bytes serialized")),
    };
    match operand {
        Value::Array(a) if a.len() > MAX_FILTER_LIST => Err(bounds::too_many(&field(), MAX_FILTER_LIST, "elements")),
        Value::Array(a) => a.iter().try_for_each(one),
        v => one(v),
    }
}

fn parse_filter(i: usize, v: &Value) -> Result<Filter> {
    let a = v.as_array().ok_or_else(|| bad("filters: each filter must be an array"))?;
    if a.len() != 3 {
        return Err(bad("filters: each filter must have 3 elements"));
    }
    let attr = a[0].as_str().ok_or_else(|| bad("filters: attribute must be a string"))?;
    bounds::check_chars(&format!("filters[{i}] attribute"), attr, MAX_ATTRIBUTE_CHARS)?;
    check_operand(i, &a[2])?;
    let attr = attr.rsplit('.').next().unwrap_or(attr).to_string();
    let op = match a[1].as_str().map(str::to_ascii_lowercase).as_deref() {
        Some("=") | Some("==") => Op::Eq,
        Some("!=") | Some("<>") => Op::Ne,
        Some("<") => Op::Lt,
        Some("<=") => Op::Le,
        Some(">") => Op::Gt,
        Some(">=") => Op::Ge,
        Some("in") => Op::In,
        Some("not in") => Op::NotIn,
        Some("like") => Op::Like,
        Some("ilike") => Op::ILike,
        Some("is_a") => Op::IsA,
        Some("exists") => Op::Exists,
        _ => {
            let shown = a[1].as_str().map_or_else(|| "(not a string)".to_string(), bounds::excerpt);
            return Err(bad(format!("filters: unsupported operator {shown}")));
        }
    };
    let operand = a[2].clone();
    match op {
        Op::In | Op::NotIn if !operand.is_array() => {
            return Err(bad("filters: 'in' needs an array operand"));
        }
        Op::Like | Op::ILike if !operand.is_string() => {
            return Err(bad("filters: 'like' needs a string operand"));
        }
        _ => {}
    }
    let pattern = match (op, operand.as_str()) {
        (Op::Like, Some(p)) => Some(LikePattern::new(p)?),
        (Op::ILike, Some(p)) => Some(LikePattern::new(&p.to_lowercase())?),
        _ => None,
    };
    Ok(Filter { attr, op, operand, pattern })
}

/// Compares two items by `order`, reading the values of its `i`th attribute with `a(i)` and `b(i)`.
fn order_by<'v>(order: &[(String, bool)], a: impl Fn(usize) -> &'v Value, b: impl Fn(usize) -> &'v Value) -> Ordering {
    for (i, (_, asc)) in order.iter().enumerate() {
        let c = compare(a(i), b(i));
        if c != Ordering::Equal {
            return if *asc { c } else { c.reverse() };
        }
    }
    Ordering::Equal
}

fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        (Value::Number(x), Value::Number(y)) => {
            x.as_f64().unwrap_or(0.0).partial_cmp(&y.as_f64().unwrap_or(0.0)).unwrap_or(Ordering::Equal)
        }
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => a.to_string().cmp(&b.to_string()),
    }
}

impl Filter {
    fn matches(&self, item: &Value) -> Result<bool> {
        if self.attr == "any" {
            let Some(obj) = item.as_object() else {
                return Ok(false);
            };
            let kind = item.get("kind").and_then(Value::as_str).unwrap_or("");
            for (k, v) in obj {
                if k != "manifest_text" && self.matches_value(k, v, kind).unwrap_or(false) {
                    return Ok(true);
                }
            }
            return Ok(false);
        }
        let kind = item.get("kind").and_then(Value::as_str).unwrap_or("");
        self.matches_value(&self.attr, item.get(&self.attr).unwrap_or(&Value::Null), kind)
    }

    /// Whether `v`, attribute `attr` of an item of `kind`, passes.
    fn matches_value(&self, attr: &str, v: &Value, kind: &str) -> Result<bool> {
        Ok(match self.op {
            Op::Eq => v == &self.operand,
            Op::Ne => v != &self.operand,
            Op::Lt => compare(v, &self.operand) == Ordering::Less && !v.is_null(),
            Op::Le => compare(v, &self.operand) != Ordering::Greater && !v.is_null(),
            Op::Gt => compare(v, &self.operand) == Ordering::Greater,
            Op::Ge => compare(v, &self.operand) != Ordering::Less && !v.is_null(),
            Op::In => self.operand.as_array().is_some_and(|a| a.contains(v)),
            Op::NotIn => self.operand.as_array().is_some_and(|a| !a.contains(v)),
            Op::Like => match (v.as_str(), &self.pattern) {
                (Some(t), Some(p)) => p.matches(t),
                _ => false,
            },
            Op::ILike => match (v.as_str(), &self.pattern) {
                (Some(t), Some(p)) => p.matches(&t.to_lowercase()),
                _ => false,
            },
            Op::IsA => {
                let kinds: Vec<String> = match &self.operand {
                    Value::String(s) => vec![s.clone()],
                    Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
                    _ => return Err(bad("filters: is_a needs a kind or a list of kinds")),
                };
                let target = v.as_str().and_then(|s| s.parse::<federation_proto::ObjectUuid>().ok());
                kinds.iter().any(|k| {
                    if attr == "uuid" || target.is_none() {
                        k == kind
                    } else {
                        target.as_ref().is_some_and(|t| t.kind().arvados_kind() == k)
                    }
                })
            }
            Op::Exists => !v.is_null(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn filters_order_and_paging() {
        let items = vec![
            json!({"uuid": "a", "name": "x1", "n": 3, "modified_at": "1"}),
            json!({"uuid": "b", "name": "y", "n": 1, "modified_at": "2"}),
            json!({"uuid": "c", "name": "x2", "n": 2, "modified_at": "3"}),
        ];
        let p = ListParams::parse(Some(r#"[["name","like","x%"]]"#), Some("n asc"), None, None, None, 1000).unwrap();
        let out = p.apply("k", items.clone()).unwrap();
        assert_eq!(out["items_available"], 2);
        assert_eq!(out["items"][0]["uuid"], "c");
        let p = ListParams::parse(None, Some(r#"["n desc"]"#), Some("1"), Some("1"), None, 1000).unwrap();
        let out = p.apply("k", items.clone()).unwrap();
        assert_eq!(out["items"][0]["uuid"], "c");
        assert_eq!(out["items"].as_array().unwrap().len(), 1);
        let p = ListParams::parse(Some(r#"[["nope","=",1]]"#), None, None, None, None, 1000).unwrap();
        assert!(p.apply("k", items.clone()).is_err());
        assert!(ListParams::parse(Some("not json"), None, None, None, None, 1000).is_err());
        assert!(ListParams::parse(None, None, Some("-1"), None, None, 1000).is_err());
        let p = ListParams::parse(Some(r#"[["uuid","in",["a","b"]]]"#), None, Some("5000"), None, None, 10).unwrap();
        assert_eq!(p.limit, 10);
        assert_eq!(p.apply("k", items).unwrap()["items_available"], 2);
    }

    fn parse_filters_only(f: &str) -> Result<ListParams> {
        ListParams::parse(Some(f), None, None, None, None, 1000)
    }

    #[test]
    fn list_parameters_are_bounded_and_refusals_name_them() {
        let one = json!(["name", "like", "x%"]);
        let at_limit = json!(vec![one.clone(); MAX_FILTERS]).to_string();
        assert_eq!(parse_filters_only(&at_limit).unwrap().filters.len(), MAX_FILTERS);
        let over = json!(vec![one; MAX_FILTERS + 1]).to_string();
        let e = parse_filters_only(&over).unwrap_err();
        assert_eq!(e.code, "too_many");
        assert!(e.message.starts_with("filters has too many entries"), "{}", e.message);

        let pattern = "%x".repeat(MAX_FILTER_OPERAND_CHARS / 2);
        assert!(parse_filters_only(&json!([["name", "like", pattern]]).to_string()).is_ok());
        let e = parse_filters_only(&json!([["uuid", "=", "a"], ["name", "like", format!("{pattern}%")]]).to_string())
            .unwrap_err();
        assert_eq!(e.code, "too_long");
        assert!(e.message.starts_with("filters[1] operand is too long"), "{}", e.message);
        let e = parse_filters_only(&json!([["uuid", "in", vec!["a"; MAX_FILTER_LIST + 1]]]).to_string()).unwrap_err();
        assert!(e.message.starts_with("filters[0] operand has too many elements"), "{}", e.message);
        let e = parse_filters_only(&json!([["uuid", "in", ["a", "b".repeat(2000)]]]).to_string()).unwrap_err();
        assert!(e.message.starts_with("filters[0] operand is too long"), "{}", e.message);
        let e = parse_filters_only(&json!([["properties", "=", {"k": "v".repeat(2000)}]]).to_string()).unwrap_err();
        assert!(e.message.starts_with("filters[0] operand is too long"), "{}", e.message);
        let e = parse_filters_only(&json!([["a".repeat(300), "=", 1]]).to_string()).unwrap_err();
        assert!(e.message.starts_with("filters[0] attribute is too long"), "{}", e.message);
        assert!(parse_filters_only(&json!([["name", "like", "ends with \\\\"]]).to_string()).is_ok());
        assert!(parse_filters_only(&json!([["name", "like", "ends with \\\\\\"]]).to_string()).is_err());

        let order = vec!["name asc"; bounds::MAX_ORDER + 1].join(",");
        let e = ListParams::parse(None, Some(&order), None, None, None, 1000).unwrap_err();
        assert!(e.message.starts_with("order has too many entries"), "{}", e.message);
        let e = ListParams::parse(None, Some(&"n".repeat(300)), None, None, None, 1000).unwrap_err();
        assert!(e.message.starts_with("order: an entry is too long"), "{}", e.message);
        let select = json!(vec!["name"; bounds::MAX_SELECT + 1]).to_string();
        let e = ListParams::parse(None, None, None, None, Some(&select), 1000).unwrap_err();
        assert!(e.message.starts_with("select has too many entries"), "{}", e.message);
    }

    #[test]
    fn like_ilike_and_any() {
        let items = vec![
            json!({"uuid": "a", "name": "Report_2024", "manifest_text": "needle", "modified_at": "1"}),
            json!({"uuid": "b", "name": "report-2024", "manifest_text": "", "modified_at": "2"}),
            json!({"uuid": "c", "name": "50% off", "manifest_text": "", "modified_at": "3"}),
        ];
        let uuids = |f: Value| -> Vec<String> {
            let p = parse_filters_only(&f.to_string()).unwrap();
            let out = p.apply("k", items.clone()).unwrap();
            let mut v: Vec<String> =
                out["items"].as_array().unwrap().iter().map(|i| i["uuid"].as_str().unwrap().to_string()).collect();
            v.sort();
            v
        };
        assert_eq!(uuids(json!([["name", "like", "Report_2024"]])), ["a"]);
        assert_eq!(uuids(json!([["name", "like", "%port_2024"]])), ["a", "b"]);
        assert_eq!(uuids(json!([["name", "like", "%port\\_2024"]])), ["a"]);
        assert_eq!(uuids(json!([["name", "ilike", "REPORT%"]])), ["a", "b"]);
        assert_eq!(uuids(json!([["name", "like", "%\\%%"]])), ["c"]);
        assert_eq!(uuids(json!([["any", "like", "%2024"]])), ["a", "b"]);
        // `any` never looks at manifest_text.
        assert!(uuids(json!([["any", "like", "needle"]])).is_empty());
        assert_eq!(uuids(json!([["manifest_text", "like", "need%"]])), ["a"]);
    }

    #[test]
    fn a_page_is_cut_short_past_its_byte_bound() {
        let big = "m".repeat(bounds::MAX_LIST_PAGE_BYTES / 3);
        let items: Vec<Value> =
            (0..5).map(|i| json!({"uuid": format!("u{i}"), "modified_at": "1", "manifest_text": big})).collect();
        let p = ListParams::parse(None, Some("uuid asc"), Some("5"), None, None, 1000).unwrap();
        let out = p.apply("k", items.clone()).unwrap();
        assert_eq!(out["items"].as_array().unwrap().len(), 2);
        assert_eq!(out["limit"], 2);
        assert_eq!(out["items_available"], 5);
        let p = ListParams::parse(None, Some("uuid asc"), Some("5"), None, Some(r#"["uuid"]"#), 1000).unwrap();
        assert_eq!(p.apply("k", items).unwrap()["items"].as_array().unwrap().len(), 5);
    }
}
