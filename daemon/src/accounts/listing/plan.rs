//! The list planner: where a list's candidate rows come from, and reading them.
//!
//! A plan is a [`Candidates`] source and whether it yields rows in the list's order. The source is,
//! in this order of preference:
//!
//! 1. a point lookup: `uuid =` or `uuid in`; for users `email =` (the email index) and
//!    `username =` (the index of shown usernames); for owned kinds `owner_uuid =` (the owner
//!    index), or, when the order is `modified_at` (then uuid), the owner × time
//!    index in that order; for links `head_uuid =` and `tail_uuid =`. Rows come in uuid order.
//! 2. when the order starts with `uuid`: the uuid range the `uuid` filters (`>`, `>=`, `<`, `<=`)
//!    allow, in that direction (Arvados' keyset walk).
//! 3. when the order is `modified_at` or `created_at` (then uuid): the time index, from the bound
//!    a filter on that time gives.
//! 4. otherwise every row (the uuid range the filters allow), sorted after matching.
//!
//! Every candidate is still checked against every filter: a source only narrows what is read.

use super::{Filter, ListParams, Op, order_by};
use crate::accounts::error::{Error, Result};
use crate::store::LinkEnd;
use crate::store::scan::{Candidates, Listed, TimeField};
use federation_proto::ObjectUuid;
use serde_json::Value;
use std::ops::Bound;

/// A record kind listed through the planner: which attributes of its view it gives without
/// rendering the view, and which indexes answer filters on it.
pub trait Listable: Listed {
    /// Attributes every view of this kind has, whose values [`Listable::cheap`] gives.
    const CHEAP: &'static [&'static str];
    /// Users: `email` and `username` filters have indexes.
    const USER_INDEXES: bool = false;
    /// Owned kinds: `owner_uuid` has the owner index.
    const OWNER_INDEX: bool = false;
    /// Links: `head_uuid` and `tail_uuid` have indexes.
    const LINK_INDEXES: bool = false;
    /// The view's value of `attr`, one of [`Listable::CHEAP`] (null for others).
    fn cheap(&self, attr: &str) -> Value;
}

/// How a list reads its rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Where candidates come from.
    pub source: Candidates,
    /// Whether they come in the list's order (reading can then stop after the page).
    pub ordered: bool,
}

/// What a list found.
#[derive(Debug)]
pub struct Found {
    /// How many items match: exact, except that a read stopped after the page (`count=none`)
    /// says only that at least this many do.
    pub available: usize,
    /// The views of the window asked for, in order.
    pub items: Vec<Value>,
}

/// One row that matched, with what visibility said of it and its view if it was rendered.
struct Kept<T, E> {
    row: T,
    extra: E,
    view: Option<Value>,
}

impl<T, E> Kept<T, E> {
    /// The value of `attr` in the rendered view (null when absent).
    fn view_at(&self, attr: &str) -> &Value {
        static NULL: Value = Value::Null;
        self.view.as_ref().and_then(|v| v.get(attr)).unwrap_or(&NULL)
    }
}

impl ListParams {
    /// The list's order, cut after its first `uuid` entry (uuids are unique: nothing after it counts).
    fn effective_order(&self) -> Vec<(String, bool)> {
        let mut order = self.full_order();
        if let Some(i) = order.iter().position(|(a, _)| a == "uuid") {
            order.truncate(i + 1);
        }
        order
    }

    /// Whether the list's order is uuid ascending (the order of every point source).
    pub fn uuid_ordered(&self) -> bool {
        self.effective_order() == [("uuid".to_string(), true)]
    }

    /// The filters on `attr` with one of `ops` and a string operand.
    fn string_filters(&self, attr: &str, ops: &[Op]) -> Vec<(Op, &str)> {
        self.filters
            .iter()
            .filter(|f| f.attr == attr && ops.contains(&f.op))
            .filter_map(|f| f.operand.as_str().map(|s| (f.op, s)))
            .collect()
    }

    fn first_eq(&self, attr: &str) -> Option<&str> {
        self.string_filters(attr, &[Op::Eq]).first().map(|(_, s)| *s)
    }

    /// The uuids a `uuid =` or `uuid in` filter allows.
    fn point_uuids(&self) -> Option<Vec<ObjectUuid>> {
        let f: &Filter = self.filters.iter().find(|f| f.attr == "uuid" && matches!(f.op, Op::Eq | Op::In))?;
        let strings: Vec<&str> = match &f.operand {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            // Nothing stored has a uuid that is not a string.
            _ => Vec::new(),
        };
        // A string that is no uuid matches no row.
        Some(strings.into_iter().filter_map(|s| s.parse().ok()).collect())
    }

    /// The uuid range the `uuid` comparison filters allow.
    fn uuid_bounds(&self) -> (Bound<String>, Bound<String>) {
        let (mut lower, mut upper) = (Bound::Unbounded, Bound::Unbounded);
        for (op, s) in self.string_filters("uuid", &[Op::Gt, Op::Ge, Op::Lt, Op::Le]) {
            match op {
                Op::Gt => lower = Bound::Excluded(s.to_owned()),
                Op::Ge => lower = Bound::Included(s.to_owned()),
                Op::Lt => upper = Bound::Excluded(s.to_owned()),
                _ => upper = Bound::Included(s.to_owned()),
            }
        }
        (lower, upper)
    }

    /// When `order` is a time, then uuid: that time, where a filter on it lets the read start
    /// (as formatted), and whether latest first.
    fn time_order(&self, order: &[(String, bool)]) -> Option<(TimeField, Option<String>, bool)> {
        let [(a, asc), (u, true)] = order else { return None };
        let field = match (a.as_str(), u.as_str()) {
            ("modified_at", "uuid") => TimeField::Modified,
            ("created_at", "uuid") => TimeField::Created,
            _ => return None,
        };
        let ops = if *asc { [Op::Ge, Op::Gt] } else { [Op::Le, Op::Lt] };
        let from = self.string_filters(a, &ops).first().map(|(_, s)| (*s).to_owned());
        Some((field, from, !asc))
    }

    /// The plan that reads `owner`'s rows in the list's order from the owner × time index, when
    /// the order is `modified_at` (then uuid).
    pub fn owner_plan(&self, owner: &ObjectUuid) -> Option<Plan> {
        match self.time_order(&self.effective_order())? {
            (TimeField::Modified, from, descending) => {
                Some(Plan { source: Candidates::OwnerTime { owner: owner.clone(), from, descending }, ordered: true })
            }
            _ => None,
        }
    }

    /// Whether the one filter is `owner_uuid = owner` (as the owner's uuid is written).
    pub fn filters_only_owner(&self, owner: &ObjectUuid) -> bool {
        matches!(self.filters.as_slice(), [f] if f.attr == "owner_uuid" && f.op == Op::Eq
            && f.operand.as_str() == Some(owner.to_string().as_str()))
    }

    /// Where a list of `T` reads its candidates (see the module documentation).
    pub fn plan<T: Listable>(&self) -> Plan {
        let point = |source| Plan { source, ordered: self.uuid_ordered() };
        if let Some(uuids) = self.point_uuids() {
            return point(Candidates::Uuids(uuids));
        }
        if T::USER_INDEXES {
            if let Some(e) = self.first_eq("email") {
                return point(Candidates::Email(e.to_owned()));
            }
            if let Some(u) = self.first_eq("username") {
                return point(Candidates::Username(u.to_owned()));
            }
        }
        // An operand that is no uuid matches no row.
        let at = |s: &str| s.parse::<ObjectUuid>().ok();
        if T::OWNER_INDEX
            && let Some(s) = self.first_eq("owner_uuid")
        {
            let Some(owner) = at(s) else { return point(Candidates::Uuids(Vec::new())) };
            return self.owner_plan(&owner).unwrap_or_else(|| point(Candidates::Owned(owner)));
        }
        if T::LINK_INDEXES {
            for (attr, index) in [("head_uuid", LinkEnd::Head), ("tail_uuid", LinkEnd::Tail)] {
                if let Some(s) = self.first_eq(attr) {
                    return point(at(s).map_or(Candidates::Uuids(Vec::new()), |end| Candidates::LinkEnd(index, end)));
                }
            }
        }
        let order = self.effective_order();
        let (lower, upper) = self.uuid_bounds();
        match order.as_slice() {
            [(a, asc)] if a == "uuid" => {
                Plan { source: Candidates::UuidRange { lower, upper, descending: !asc }, ordered: true }
            }
            _ if let Some((field, from, descending)) = self.time_order(&order) => {
                Plan { source: Candidates::Time { field, from, descending }, ordered: true }
            }
            _ => Plan { source: Candidates::UuidRange { lower, upper, descending: false }, ordered: false },
        }
    }

    /// Refuses a filter or order on an attribute `T`'s views lack, as [`ListParams::filter_and_sort`]
    /// does: judged by the first item of the list before filtering, which `first` renders (only
    /// called when an attribute is not one every view has).
    pub fn check_attributes<T: Listable>(&self, first: impl FnOnce() -> Result<Option<Value>>) -> Result<()> {
        let unusual = |a: &str| a != "any" && !T::CHEAP.contains(&a);
        if !self.filters.iter().any(|f| unusual(&f.attr)) && !self.order.iter().any(|(a, _)| a == "any" || unusual(a)) {
            return Ok(());
        }
        match first()? {
            Some(v) => self.check_known(&v, T::CHEAP),
            None => Ok(()),
        }
    }

    /// Reads `rows` (from `plan`'s source), keeps those `visible` admits (it says what `render`
    /// needs besides the row) and every filter passes, and returns how many there are and the
    /// rendered views of the window `skip`, `take`. `known`: the number of matches when the caller
    /// knows it (an unfiltered list); with it, or with `count=none`, reading stops after the window
    /// when the rows come in order.
    #[allow(clippy::too_many_arguments)]
    pub fn collect<T: Listable, E>(
        &self,
        plan: &Plan,
        rows: impl Iterator<Item = Result<T>>,
        skip: usize,
        take: usize,
        known: Option<usize>,
        mut visible: impl FnMut(&T) -> Result<Option<E>>,
        mut render: impl FnMut(&T, &E) -> Result<Value>,
    ) -> Result<Found> {
        let cheap_filters = self.filters.iter().all(|f| T::CHEAP.contains(&f.attr.as_str()));
        let order = self.full_order();
        let need = skip.saturating_add(take);
        let may_stop = plan.ordered && (known.is_some() || self.count_none);
        let (mut count, mut kept) = (0usize, Vec::<Kept<T, E>>::new());
        let mut read_all = true;
        for row in rows {
            if may_stop && kept.len() >= need {
                read_all = false;
                break;
            }
            let row = row?;
            let Some(extra) = visible(&row)? else { continue };
            let view = if cheap_filters {
                if !self.filters.iter().try_fold(true, |acc, f| Ok::<_, Error>(acc && f.matches_cheap(&row)?))? {
                    continue;
                }
                None
            } else {
                let v = render(&row, &extra)?;
                if !self.matches(&v)? {
                    continue;
                }
                Some(v)
            };
            count += 1;
            if !plan.ordered || kept.len() < need {
                kept.push(Kept { row, extra, view });
            }
        }
        if !plan.ordered {
            if order.iter().all(|(a, _)| T::CHEAP.contains(&a.as_str())) {
                let keys: Vec<Vec<Value>> =
                    kept.iter().map(|k| order.iter().map(|(a, _)| k.row.cheap(a)).collect()).collect();
                let mut idx: Vec<usize> = (0..kept.len()).collect();
                idx.sort_by(|&x, &y| order_by(&order, |i| &keys[x][i], |i| &keys[y][i]));
                let mut slots: Vec<Option<Kept<T, E>>> = kept.into_iter().map(Some).collect();
                kept = idx.into_iter().filter_map(|i| slots[i].take()).collect();
            } else {
                for k in &mut kept {
                    if k.view.is_none() {
                        k.view = Some(render(&k.row, &k.extra)?);
                    }
                }
                kept.sort_by(|x, y| order_by(&order, |i| x.view_at(&order[i].0), |i| y.view_at(&order[i].0)));
            }
        }
        let mut items = Vec::with_capacity(take.min(kept.len()));
        for k in kept.into_iter().skip(skip).take(take) {
            items.push(match k.view {
                Some(v) => v,
                None => render(&k.row, &k.extra)?,
            });
        }
        let available = match known {
            Some(n) if !read_all => n,
            _ => count,
        };
        Ok(Found { available, items })
    }

    /// [`ListParams::collect`] of the request's page, as the Arvados list body of `list_kind`.
    pub fn list<T: Listable, E>(
        &self,
        list_kind: &str,
        plan: &Plan,
        rows: impl Iterator<Item = Result<T>>,
        known: Option<usize>,
        visible: impl FnMut(&T) -> Result<Option<E>>,
        render: impl FnMut(&T, &E) -> Result<Value>,
    ) -> Result<Value> {
        let found = self.collect(plan, rows, self.offset, self.limit, known, visible, render)?;
        Ok(self.page_window(list_kind, found.items, found.available))
    }
}

impl Filter {
    /// [`Filter::matches`] on a record's own values of [`Listable::CHEAP`] attributes.
    fn matches_cheap<T: Listable>(&self, row: &T) -> Result<bool> {
        self.matches_value(&self.attr, &row.cheap(&self.attr), T::ROWS_KIND.arvados_kind())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::accounts::views;
    use crate::store::records::{Collection, User};
    use crate::store::{Store, WriteBatch};
    use federation_proto::ObjectKind;
    use proptest::prelude::*;
    use serde_json::json;
    use time::OffsetDateTime;

    fn uuid(kind: ObjectKind, n: usize) -> ObjectUuid {
        ObjectUuid::new("zzzzz".parse().unwrap(), kind, &format!("{n:015}")).unwrap()
    }

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_700_000_000 + secs).unwrap()
    }

    fn params(filters: Value, order: Option<&str>) -> ListParams {
        ListParams::parse(Some(&filters.to_string()), order, None, None, None, 1000).unwrap()
    }

    #[test]
    fn each_filter_and_order_picks_its_source() {
        let u1 = uuid(ObjectKind::User, 1);
        let plan = |f: Value, o: Option<&str>| params(f, o).plan::<User>();
        let point = plan(json!([["uuid", "=", u1.to_string()]]), None);
        assert_eq!(point, Plan { source: Candidates::Uuids(vec![u1.clone()]), ordered: false });
        let point = plan(json!([["uuid", "in", [u1.to_string(), "nonsense"]]]), Some("uuid asc"));
        assert_eq!(point, Plan { source: Candidates::Uuids(vec![u1.clone()]), ordered: true });
        assert_eq!(plan(json!([["email", "=", "a@b"]]), None).source, Candidates::Email("a@b".into()));
        assert_eq!(plan(json!([["username", "=", "al"]]), None).source, Candidates::Username("al".into()));
        // Users have no owner index: an owner filter is checked on every row, in time order.
        let by_owner = plan(json!([["owner_uuid", "=", u1.to_string()]]), None);
        assert_eq!(by_owner.source, Candidates::Time { field: TimeField::Modified, from: None, descending: true });
        let owned = params(json!([["owner_uuid", "=", u1.to_string()]]), None).plan::<Collection>();
        let newest_first = Candidates::OwnerTime { owner: u1.clone(), from: None, descending: true };
        assert_eq!(owned, Plan { source: newest_first, ordered: true });
        let owned = params(json!([["owner_uuid", "=", u1.to_string()]]), Some("name")).plan::<Collection>();
        assert_eq!(owned, Plan { source: Candidates::Owned(u1.clone()), ordered: false });
        let owned =
            params(json!([["owner_uuid", "=", u1.to_string()], ["modified_at", ">", "2024"]]), Some("modified_at"))
                .plan::<Collection>();
        let since = Candidates::OwnerTime { owner: u1.clone(), from: Some("2024".into()), descending: false };
        assert_eq!(owned, Plan { source: since, ordered: true });
        let head =
            params(json!([["head_uuid", "=", u1.to_string()]]), Some("uuid")).plan::<crate::store::records::Link>();
        assert_eq!(head, Plan { source: Candidates::LinkEnd(LinkEnd::Head, u1.clone()), ordered: true });
        let bad_owner = params(json!([["owner_uuid", "=", "x"]]), None).plan::<Collection>();
        assert_eq!(bad_owner.source, Candidates::Uuids(Vec::new()));
        // Arvados' keyset walk.
        let keyset = plan(json!([["uuid", ">", "zzzzz-tpzed-000000000000005"]]), Some(r#"["uuid asc"]"#));
        assert_eq!(
            keyset,
            Plan {
                source: Candidates::UuidRange {
                    lower: Bound::Excluded("zzzzz-tpzed-000000000000005".into()),
                    upper: Bound::Unbounded,
                    descending: false
                },
                ordered: true
            }
        );
        let down = plan(json!([["uuid", "<=", "q"]]), Some("uuid desc"));
        assert_eq!(
            down.source,
            Candidates::UuidRange { lower: Bound::Unbounded, upper: Bound::Included("q".into()), descending: true }
        );
        // The default order, and time orders with the bound a filter gives.
        assert_eq!(
            plan(json!([]), None),
            Plan {
                source: Candidates::Time { field: TimeField::Modified, from: None, descending: true },
                ordered: true
            }
        );
        let since = plan(json!([["created_at", ">=", "2024"]]), Some("created_at"));
        assert_eq!(
            since.source,
            Candidates::Time { field: TimeField::Created, from: Some("2024".into()), descending: false }
        );
        let keyset_time = plan(json!([["modified_at", "<=", "2024"]]), Some(r#"["modified_at desc", "uuid asc"]"#));
        assert_eq!(
            keyset_time,
            Plan {
                source: Candidates::Time { field: TimeField::Modified, from: Some("2024".into()), descending: true },
                ordered: true
            }
        );
        // Orders no index serves: every row, sorted after matching.
        for o in ["email", "modified_at desc, email", "modified_at, uuid desc", "uuid desc, email"] {
            let p = plan(json!([]), Some(o));
            let served = o.starts_with("uuid desc");
            assert_eq!(p.ordered, served, "{o}");
        }
    }

    /// A user row of the generated data.
    #[derive(Debug, Clone)]
    struct Row {
        email: Option<u8>,
        username: Option<u8>,
        created: i64,
        modified: i64,
        redirected: bool,
        owner: u8,
    }

    fn row() -> impl Strategy<Value = Row> {
        (prop::option::of(0u8..4), prop::option::of(0u8..6), 0i64..4, 0i64..4, prop::bool::weighted(0.2), 0u8..3)
            .prop_map(|(email, username, created, modified, redirected, owner)| Row {
                email,
                username,
                created,
                modified,
                redirected,
                owner,
            })
    }

    fn filters() -> impl Strategy<Value = Value> {
        let u = |n: usize| uuid(ObjectKind::User, n).to_string();
        let one = prop_oneof![
            (0usize..20).prop_map(move |n| json!(["uuid", "=", u(n)])),
            (0usize..20, 0usize..20).prop_map(move |(a, b)| json!(["uuid", "in", [u(a), u(b)]])),
            (0usize..20).prop_map(move |n| json!(["uuid", ">", u(n)])),
            (0usize..20).prop_map(move |n| json!(["uuid", "<=", u(n)])),
            (0u8..5).prop_map(|n| json!(["email", "=", format!("e{n}@x.org")])),
            (0u8..7).prop_map(|n| json!(["username", "=", format!("user{n}")])),
            (0i64..5).prop_map(|s| json!(["modified_at", ">=", crate::clock::format_time(at(s))])),
            (0i64..5).prop_map(|s| json!(["modified_at", "<", crate::clock::format_time(at(s))])),
            (0i64..5).prop_map(|s| json!(["created_at", "<=", crate::clock::format_time(at(s))])),
            (0u8..3).prop_map(|n| json!(["owner_uuid", "=", uuid(ObjectKind::Group, usize::from(n)).to_string()])),
            Just(json!(["first_name", "=", ""])),
            Just(json!(["is_active", "=", false])),
        ];
        prop::collection::vec(one, 0..3).prop_map(Value::from)
    }

    fn order() -> impl Strategy<Value = Option<&'static str>> {
        prop::sample::select(vec![
            None,
            Some("uuid asc"),
            Some("uuid desc"),
            Some("modified_at desc"),
            Some("modified_at asc"),
            Some("created_at desc"),
            Some(r#"["created_at asc", "uuid desc"]"#),
            Some("email asc"),
            Some("username desc, modified_at"),
        ])
    }

    fn store_with(rows: &[Row]) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut b = WriteBatch::new();
        for (i, r) in rows.iter().enumerate() {
            let mut u =
                User::new(uuid(ObjectKind::User, i), uuid(ObjectKind::Group, usize::from(r.owner)), at(r.created));
            u.modified_at = at(r.modified);
            u.email = r.email.map(|n| format!("e{n}@x.org"));
            u.username = r.username.map(|n| format!("user{n}"));
            u.redirect_to_user_uuid = r.redirected.then(|| uuid(ObjectKind::User, 0));
            b.put_user(None, &u).unwrap();
        }
        store.commit(b).unwrap();
        (dir, store)
    }

    /// The planned read and the full scan agree on the body.
    fn both(store: &Store, p: &ListParams) -> (Result<Value>, Result<Value>) {
        let visible = |u: &User| Ok(u.redirect_to_user_uuid.is_none().then_some(()));
        let all: Vec<Value> = store
            .users()
            .map(|u| u.unwrap())
            .filter(|u| u.redirect_to_user_uuid.is_none())
            .map(|u| views::user(&u))
            .collect();
        let naive = p.apply("k", all.clone());
        let planned = p.check_attributes::<User>(|| Ok(all.first().cloned())).and_then(|()| {
            let plan = p.plan::<User>();
            let known = p.filters.is_empty().then(|| store.listed_users() as usize);
            let rows = store.candidate_rows::<User>(&plan.source).unwrap().map(|r| r.map_err(Error::from));
            p.list("k", &plan, rows, known, visible, |u, ()| Ok(views::user(u)))
        });
        (naive, planned)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        #[test]
        fn planned_lists_equal_the_full_scan(
            rows in prop::collection::vec(row(), 0..20),
            f in filters(),
            o in order(),
            limit in 0usize..8,
            offset in 0usize..6,
            count_none in any::<bool>(),
        ) {
            let (_dir, store) = store_with(&rows);
            let mut p = params(f, o);
            p.limit = limit;
            p.offset = offset;
            p.count_none = count_none;
            let (naive, planned) = both(&store, &p);
            match (naive, planned) {
                (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
                (Err(a), Err(b)) => prop_assert_eq!(a.message, b.message),
                (a, b) => prop_assert!(false, "naive {:?} planned {:?}", a, b),
            }
        }
    }

    /// A change to the collections of the generated data.
    #[derive(Debug, Clone)]
    enum Change {
        /// Collection `n` (created if missing) gets owner `o` and time `t` by an ordinary write.
        Put { n: usize, owner: u8, t: i64 },
        /// Collection `n` is deleted.
        Delete { n: usize },
        /// A merge moves owner `from`'s collections to owner `to` at time `t`.
        Merge { from: u8, to: u8, t: i64 },
    }

    fn change() -> impl Strategy<Value = Change> {
        prop_oneof![
            4 => (0usize..12, 0u8..3, 0i64..4).prop_map(|(n, owner, t)| Change::Put { n, owner, t }),
            1 => (0usize..12).prop_map(|n| Change::Delete { n }),
            1 => (0u8..3, 0u8..3, 0i64..4).prop_map(|(from, to, t)| Change::Merge { from, to, t }),
        ]
    }

    fn owner(n: u8) -> ObjectUuid {
        uuid(ObjectKind::User, usize::from(n) + 100)
    }

    fn apply(store: &Store, c: &Change) {
        let coll = |n: usize| uuid(ObjectKind::Collection, n);
        let mut b = WriteBatch::new();
        match *c {
            Change::Put { n, owner: o, t } => {
                let old: Option<Collection> = store.object(&coll(n)).unwrap();
                let mut new = old.clone().unwrap_or_else(|| Collection {
                    uuid: coll(n),
                    owner_uuid: owner(o),
                    created_at: at(t),
                    modified_at: at(t),
                    modified_by_user_uuid: None,
                    name: format!("c{n}"),
                    description: None,
                    properties: json!({}),
                    manifest_text: String::new(),
                });
                new.owner_uuid = owner(o);
                new.modified_at = at(t);
                b.put_object(old.as_ref(), &new).unwrap();
                store.commit(b).unwrap();
            }
            Change::Delete { n } => {
                if let Some(old) = store.object::<Collection>(&coll(n)).unwrap() {
                    b.delete_object(&old);
                    store.commit(b).unwrap();
                }
            }
            Change::Merge { from, to, t } => {
                let m = crate::store::OwnerMove {
                    old_user_uuid: owner(from),
                    new_user_uuid: owner(to),
                    new_owner_uuid: owner(to),
                    move_heads: false,
                    at: at(t),
                };
                let plan = store.plan_merge(&m).unwrap();
                store.commit_merge(b, plan).unwrap();
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        /// One owner's collections from the owner × time index, counted from it, equal the full
        /// scan, whatever ordinary writes, deletes and merges came before.
        #[test]
        fn one_owners_lists_from_the_owner_index_equal_the_full_scan(
            changes in prop::collection::vec(change(), 0..24),
            who in 0u8..3,
            o in prop::sample::select(vec![None, Some("modified_at asc"), Some("modified_at desc, uuid"), Some("name")]),
            since in prop::option::of(0i64..4),
            limit in 0usize..6,
            offset in 0usize..4,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(dir.path()).unwrap();
            for c in &changes {
                apply(&store, c);
            }
            prop_assert_eq!(store.owner_time_mismatches().unwrap(), Vec::<String>::new());
            let mut f = vec![json!(["owner_uuid", "=", owner(who).to_string()])];
            if let Some(s) = since {
                let op = if o == Some("modified_at asc") { ">=" } else { "<=" };
                f.push(json!(["modified_at", op, crate::clock::format_time(at(s))]));
            }
            let mut p = params(Value::from(f), o);
            p.limit = limit;
            p.offset = offset;
            let all: Vec<Value> = store.objects::<Collection>().map(|c| views::collection(&c.unwrap())).collect();
            let naive = p.apply("k", all).unwrap();
            let plan = p.plan::<Collection>();
            let known = match &plan.source {
                Candidates::OwnerTime { owner, .. } if p.filters_only_owner(owner) => {
                    Some(store.owned_count(ObjectKind::Collection, owner).unwrap())
                }
                _ => None,
            };
            prop_assert_eq!(known.is_some(), since.is_none() && o != Some("name"));
            let rows = store.candidate_rows::<Collection>(&plan.source).unwrap().map(|r| r.map_err(Error::from));
            let planned = p.list("k", &plan, rows, known, |_| Ok(Some(())), |c, ()| Ok(views::collection(c))).unwrap();
            prop_assert_eq!(naive, planned);
        }
    }

    #[test]
    fn counts_follow_writes_and_unknown_attributes_are_refused() {
        let rows: Vec<Row> = (0..5)
            .map(|i| Row {
                email: Some(i),
                username: Some(i),
                created: 0,
                modified: i64::from(i),
                redirected: i == 4,
                owner: 0,
            })
            .collect();
        let (_dir, store) = store_with(&rows);
        assert_eq!(store.listed_users(), 4);
        let u0 = store.user(&uuid(ObjectKind::User, 0)).unwrap().unwrap();
        let mut b = WriteBatch::new();
        b.put_user(Some(&u0), &User { redirect_to_user_uuid: Some(uuid(ObjectKind::User, 1)), ..u0.clone() }).unwrap();
        store.commit(b).unwrap();
        assert_eq!(store.listed_users(), 3);
        let mut b = WriteBatch::new();
        b.delete_user(&store.user(&uuid(ObjectKind::User, 1)).unwrap().unwrap());
        store.commit(b).unwrap();
        assert_eq!(store.listed_users(), 2);
        let (naive, planned) = both(&store, &params(json!([["nope", "=", 1]]), None));
        assert_eq!(naive.unwrap_err().message, planned.unwrap_err().message);
        let (naive, planned) = both(&store, &params(json!([]), Some("nope")));
        assert_eq!(naive.unwrap_err().message, planned.unwrap_err().message);
        let (naive, planned) = both(&store, &params(json!([]), None));
        assert_eq!(naive.unwrap(), planned.unwrap());
    }
}
