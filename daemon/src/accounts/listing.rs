//! List requests: Arvados `filters`, `order`, `limit`, `offset`, applied to the API views.
//!
//! Filters are `[attribute, operator, operand]` triples (`=`, `!=`, `<`, `<=`, `>`, `>=`, `in`,
//! `not in`, `like`, `ilike`, `is_a`, `exists`). A filter on an attribute the resource does not have
//! is refused (422) rather than silently matching nothing.

use super::error::{Error, Result};
use serde_json::{Map, Value, json};
use std::cmp::Ordering;

/// One filter.
#[derive(Debug, Clone)]
pub struct Filter {
    attr: String,
    op: Op,
    operand: Value,
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
}

impl Default for ListParams {
    fn default() -> Self {
        ListParams { filters: Vec::new(), order: Vec::new(), limit: 100, offset: 0, select: None }
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
            for item in items {
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
            p.select = Some(v);
        }
        Ok(p)
    }

    /// Applies filters, order and paging to `items` (API views) of resource `kind` (e.g.
    /// `arvados#userList`), returning the Arvados list body.
    pub fn apply(&self, list_kind: &str, items: Vec<Value>) -> Result<Value> {
        if let Some(first) = items.first() {
            for f in &self.filters {
                if first.get(&f.attr).is_none() && f.attr != "any" {
                    return Err(bad(format!("Invalid attribute '{}' in filter", f.attr)));
                }
            }
            for (a, _) in &self.order {
                if first.get(a).is_none() {
                    return Err(bad(format!("Invalid attribute '{a}' in order")));
                }
            }
        }
        let mut matched: Vec<Value> = Vec::with_capacity(items.len());
        for item in items {
            if self.filters.iter().try_fold(true, |acc, f| Ok::<_, Error>(acc && f.matches(&item)?))? {
                matched.push(item);
            }
        }
        let mut order = self.order.clone();
        if order.is_empty() {
            order.push(("modified_at".into(), false));
        }
        order.push(("uuid".into(), true));
        matched.sort_by(|a, b| {
            for (attr, asc) in &order {
                let c = compare(a.get(attr).unwrap_or(&Value::Null), b.get(attr).unwrap_or(&Value::Null));
                if c != Ordering::Equal {
                    return if *asc { c } else { c.reverse() };
                }
            }
            Ordering::Equal
        });
        let available = matched.len();
        let page: Vec<Value> =
            matched.into_iter().skip(self.offset).take(self.limit).map(|v| self.select_fields(v)).collect();
        Ok(json!({
            "kind": list_kind,
            "etag": "",
            "self_link": "",
            "offset": self.offset,
            "limit": self.limit,
            "items_available": available,
            "items": page,
        }))
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
        return Ok(vec![parse_filter(v)?]);
    }
    arr.iter().map(parse_filter).collect()
}

fn parse_filter(v: &Value) -> Result<Filter> {
    let a = v.as_array().ok_or_else(|| bad("filters: each filter must be an array"))?;
    if a.len() != 3 {
        return Err(bad("filters: each filter must have 3 elements"));
    }
    let attr = a[0].as_str().ok_or_else(|| bad("filters: attribute must be a string"))?;
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
        _ => return Err(bad(format!("filters: unsupported operator {}", a[1]))),
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
    Ok(Filter { attr, op, operand })
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

/// SQL LIKE: `%` any run, `_` one character.
fn like(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let (mut star, mut mark) = (None::<usize>, 0usize);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '_' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '%' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '%' {
        pi += 1;
    }
    pi == p.len()
}

impl Filter {
    fn matches(&self, item: &Value) -> Result<bool> {
        if self.attr == "any" {
            let Some(obj) = item.as_object() else {
                return Ok(false);
            };
            return Ok(obj.iter().any(|(k, _)| {
                Filter { attr: k.clone(), op: self.op, operand: self.operand.clone() }.matches(item).unwrap_or(false)
            }));
        }
        let v = item.get(&self.attr).unwrap_or(&Value::Null);
        Ok(match self.op {
            Op::Eq => v == &self.operand,
            Op::Ne => v != &self.operand,
            Op::Lt => compare(v, &self.operand) == Ordering::Less && !v.is_null(),
            Op::Le => compare(v, &self.operand) != Ordering::Greater && !v.is_null(),
            Op::Gt => compare(v, &self.operand) == Ordering::Greater,
            Op::Ge => compare(v, &self.operand) != Ordering::Less && !v.is_null(),
            Op::In => self.operand.as_array().is_some_and(|a| a.contains(v)),
            Op::NotIn => self.operand.as_array().is_some_and(|a| !a.contains(v)),
            Op::Like => match (v.as_str(), self.operand.as_str()) {
                (Some(t), Some(p)) => like(p, t),
                _ => false,
            },
            Op::ILike => match (v.as_str(), self.operand.as_str()) {
                (Some(t), Some(p)) => like(&p.to_lowercase(), &t.to_lowercase()),
                _ => false,
            },
            Op::IsA => {
                let kinds: Vec<String> = match &self.operand {
                    Value::String(s) => vec![s.clone()],
                    Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
                    _ => return Err(bad("filters: is_a needs a kind or a list of kinds")),
                };
                let kind = item.get("kind").and_then(Value::as_str).unwrap_or("");
                let target = v.as_str().and_then(|s| s.parse::<federation_proto::ObjectUuid>().ok());
                kinds.iter().any(|k| {
                    if self.attr == "uuid" || target.is_none() {
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
    fn like_patterns() {
        assert!(like("a%", "abc"));
        assert!(like("%b%", "abc"));
        assert!(like("a_c", "abc"));
        assert!(!like("a_c", "abbc"));
        assert!(like("%", ""));
        assert!(!like("b%", "abc"));
    }

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
}
