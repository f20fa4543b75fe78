//! Admin batch migration and the federation report (DESIGN §4.6).
//!
//! The plan is CSV, one person a line: `<email or username>,<home cluster>` (a header line
//! `login,home_cluster` and `#` comments are allowed). On the cluster it runs against, every local
//! account whose home is elsewhere is merged (admin merge, with redirect) into its home account, in
//! a fresh "Migrated from …" project. The home account comes from the cache or, when the cache
//! lacks it, from its home cluster through a signed lookup. A line that cannot be carried out is
//! reported with its number and the run goes on; each merge is all or nothing; a merged account is
//! skipped on the next run, so a re-run does nothing.

use crate::accounts::{Accounts, Caller, Error, ErrorKind};
use crate::federation::Federation;
use crate::store::WriteBatch;
use crate::store::records::User;
use federation_proto::notice::UserRecord;
use federation_proto::{ClusterId, ObjectKind, ObjectUuid};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// Who a plan line names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "by", content = "value", rename_all = "snake_case")]
pub enum PlanKey {
    /// A (lowercased) email address.
    Email(String),
    /// A username.
    Username(String),
}

impl std::fmt::Display for PlanKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlanKey::Email(e) => f.write_str(e),
            PlanKey::Username(u) => f.write_str(u),
        }
    }
}

/// What the run does (or would do) for one line.
#[derive(Debug, Clone, Serialize)]
pub struct Action {
    /// 1-based line number in the plan.
    pub line: usize,
    /// The person as the line names them.
    pub key: String,
    /// `merge`, `skip` or `refuse`.
    pub action: &'static str,
    /// Why (for skip and refuse).
    pub why: Option<String>,
    /// The local account that would go away.
    pub old_user_uuid: Option<ObjectUuid>,
    /// The home account it would merge into.
    pub home_user_uuid: Option<ObjectUuid>,
    /// The home cluster.
    pub home_cluster: Option<ClusterId>,
}

impl Action {
    fn refuse(line: usize, key: &str, why: impl Into<String>) -> Action {
        Action {
            line,
            key: key.into(),
            action: "refuse",
            why: Some(why.into()),
            old_user_uuid: None,
            home_user_uuid: None,
            home_cluster: None,
        }
    }
    fn skip(line: usize, key: &str, why: impl Into<String>, home: Option<ClusterId>) -> Action {
        Action {
            line,
            key: key.into(),
            action: "skip",
            why: Some(why.into()),
            old_user_uuid: None,
            home_user_uuid: None,
            home_cluster: home,
        }
    }
}

/// A signed answer to a user lookup between clusters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserListing {
    /// The answering cluster.
    pub cluster: ClusterId,
    /// Its local users that matched.
    pub users: Vec<UserRecord>,
}

/// A lookup request between clusters (`POST /federation/v1/users/lookup`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UserLookup {
    /// Emails to look for.
    #[serde(default)]
    pub emails: Vec<String>,
    /// Usernames to look for.
    #[serde(default)]
    pub usernames: Vec<String>,
    /// All local users (for the report).
    #[serde(default)]
    pub all: bool,
}

fn is_plain_local(accounts: &Accounts, u: &User) -> bool {
    u.uuid.cluster() == accounts.cluster() && !u.cached_from_home && &u.uuid != accounts.system_user()
}

/// Answers a peer's lookup with our local users (signed).
pub fn answer_lookup(accounts: &Accounts, fed: &Federation, body: &[u8]) -> Result<Value, Error> {
    let q: UserLookup = serde_json::from_slice(body)
        .map_err(|e| Error::bad_request("malformed_request", format!("malformed lookup: {e}")))?;
    if q.emails.len() + q.usernames.len() > 10_000 {
        return Err(Error::bad_request("too_many", "at most 10000 names per lookup"));
    }
    let emails: BTreeSet<String> = q.emails.iter().map(|e| e.trim().to_lowercase()).collect();
    let usernames: BTreeSet<&str> = q.usernames.iter().map(String::as_str).collect();
    let mut users = Vec::new();
    for u in accounts.store().users() {
        let u = u?;
        if !is_plain_local(accounts, &u) {
            continue;
        }
        let hit = q.all
            || u.email.as_ref().is_some_and(|e| emails.contains(e))
            || u.username.as_deref().is_some_and(|n| usernames.contains(n));
        if hit {
            users.push(accounts.user_record(&u)?);
        }
    }
    Ok(fed.sign(UserListing { cluster: accounts.cluster().clone(), users })?.to_value())
}

/// Asks `peer` for its local users matching `q`; the answer must carry the peer's signature.
pub async fn lookup_at(fed: &Federation, peer: &ClusterId, q: &UserLookup) -> Result<Vec<UserRecord>, Error> {
    let body = serde_json::to_value(q).map_err(|e| Error::new(ErrorKind::Internal, "encode", e.to_string()))?;
    let answer = fed.send(peer, Method::POST, "/federation/v1/users/lookup", Some(&body)).await?;
    if !answer.status.is_success() {
        return Err(Error::new(ErrorKind::Upstream, "peer_refused", format!("{peer} answered {}", answer.status)));
    }
    let listing: UserListing = fed.verify_from(peer, answer.body)?;
    let mut out = Vec::new();
    for r in listing.users {
        // Only the home cluster speaks for its users.
        if r.check_home(peer).is_ok() {
            out.push(r);
        }
    }
    Ok(out)
}

fn parse_key(raw: &str) -> Result<PlanKey, String> {
    let raw = raw.trim();
    if raw.contains('@') {
        let e = raw.to_lowercase();
        let ok = e
            .split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.contains('@') && !d.starts_with('.'))
            && !e.chars().any(char::is_whitespace);
        if ok { Ok(PlanKey::Email(e)) } else { Err(format!("malformed email {raw:?}")) }
    } else if !raw.is_empty() && raw.chars().all(|c| c.is_ascii_alphanumeric()) {
        Ok(PlanKey::Username(raw.to_string()))
    } else {
        Err(format!("neither an email nor a username: {raw:?}"))
    }
}

/// Parses the plan: good lines, and refusals for bad ones (by line number).
pub fn parse_plan(
    text: &str,
    me: &ClusterId,
    peers: &BTreeSet<ClusterId>,
) -> (Vec<(usize, PlanKey, ClusterId)>, Vec<Action>) {
    let mut good = Vec::new();
    let mut refused = Vec::new();
    let mut seen: BTreeMap<PlanKey, usize> = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let t = raw.trim();
        if t.is_empty() || t.starts_with('#') || (line == 1 && t.to_lowercase().starts_with("login,")) {
            continue;
        }
        let cols: Vec<&str> = t.split(',').map(str::trim).collect();
        if cols.len() != 2 {
            refused.push(Action::refuse(line, t, "expected two columns: <email or username>,<home cluster>"));
            continue;
        }
        let key = match parse_key(cols[0]) {
            Ok(k) => k,
            Err(e) => {
                refused.push(Action::refuse(line, cols[0], e));
                continue;
            }
        };
        let home: ClusterId = match cols[1].parse() {
            Ok(h) => h,
            Err(_) => {
                refused.push(Action::refuse(line, cols[0], format!("malformed cluster id {:?}", cols[1])));
                continue;
            }
        };
        if &home != me && !peers.contains(&home) {
            refused.push(Action::refuse(line, cols[0], format!("unknown cluster {home}")));
            continue;
        }
        if let Some(first) = seen.get(&key) {
            refused.push(Action::refuse(line, cols[0], format!("this person is already named on line {first}")));
            // The earlier line is ambiguous too: drop it.
            good.retain(|(l, _, _)| l != first);
            refused.push(Action::refuse(*first, cols[0], format!("this person is named again on line {line}")));
            continue;
        }
        seen.insert(key.clone(), line);
        good.push((line, key, home));
    }
    refused.sort_by_key(|a| a.line);
    (good, refused)
}

fn local_accounts(accounts: &Accounts, key: &PlanKey) -> Result<Vec<User>, Error> {
    Ok(match key {
        PlanKey::Email(e) => {
            accounts.store().users_by_email(e)?.into_iter().filter(|u| is_plain_local(accounts, u)).collect()
        }
        PlanKey::Username(n) => {
            accounts.store().user_by_username(n)?.into_iter().filter(|u| is_plain_local(accounts, u)).collect()
        }
    })
}

/// Finds the home account for `key` at `home`: from the cache, else through a signed lookup.
async fn home_account(
    accounts: &Accounts,
    fed: &Federation,
    key: &PlanKey,
    home: &ClusterId,
    local: &User,
) -> Result<Option<UserRecord>, Error> {
    let email = match key {
        PlanKey::Email(e) => Some(e.clone()),
        PlanKey::Username(_) => local.email.clone(),
    };
    if let Some(e) = &email {
        let cached: Vec<User> = accounts
            .store()
            .users_by_email(e)?
            .into_iter()
            .filter(|u| u.cached_from_home && u.uuid.cluster() == home && u.redirect_to_user_uuid.is_none())
            .collect();
        if cached.len() == 1
            && let Some(u) = cached.first()
        {
            return Ok(Some(accounts.user_record(u)?));
        }
    }
    let q = match key {
        PlanKey::Email(e) => UserLookup { emails: vec![e.clone()], ..Default::default() },
        PlanKey::Username(n) => UserLookup { usernames: vec![n.clone()], ..Default::default() },
    };
    let found: Vec<UserRecord> =
        lookup_at(fed, home, &q).await?.into_iter().filter(|r| r.redirect_to_user_uuid.is_none()).collect();
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.into_iter().next()),
        n => Err(Error::unprocessable("ambiguous_home", format!("{n} accounts at {home} match"))),
    }
}

/// What the plan would do here (a dry run; nothing changes).
pub async fn plan_actions(
    accounts: &Accounts,
    fed: &Federation,
    caller: &Caller,
    text: &str,
) -> Result<Vec<Action>, Error> {
    caller.require_admin()?;
    let peers: BTreeSet<ClusterId> = fed.peer_ids().cloned().collect();
    let (good, mut actions) = parse_plan(text, accounts.cluster(), &peers);
    for (line, key, home) in good {
        let k = key.to_string();
        let locals = local_accounts(accounts, &key)?;
        if &home == accounts.cluster() {
            actions.push(Action::skip(line, &k, "home is this cluster: nothing to merge here", Some(home)));
            continue;
        }
        let live: Vec<&User> = locals.iter().filter(|u| u.redirect_to_user_uuid.is_none()).collect();
        if locals.is_empty() {
            actions.push(Action::skip(line, &k, "no account on this cluster", Some(home)));
            continue;
        }
        if live.is_empty() {
            actions.push(Action::skip(line, &k, "already merged", Some(home)));
            continue;
        }
        if live.len() > 1 {
            actions.push(Action::refuse(
                line,
                &k,
                format!("{} accounts on this cluster use this email; merge them first", live.len()),
            ));
            continue;
        }
        let Some(old) = live.first().copied() else { continue };
        if matches!(key, PlanKey::Email(_)) && !old.email_verified {
            actions.push(Action::refuse(line, &k, "the local account's email is not verified"));
            continue;
        }
        match home_account(accounts, fed, &key, &home, old).await {
            Ok(Some(rec)) => actions.push(Action {
                line,
                key: k,
                action: "merge",
                why: None,
                old_user_uuid: Some(old.uuid.clone()),
                home_user_uuid: Some(rec.uuid.clone()),
                home_cluster: Some(home),
            }),
            Ok(None) => actions.push(Action::refuse(line, &k, format!("no account at {home} for this person"))),
            Err(e) => actions.push(Action::refuse(line, &k, e.message)),
        }
    }
    actions.sort_by_key(|a| a.line);
    Ok(actions)
}

/// Carries out one merge of the plan (re-checking it): `old` into `home_user` at its cluster.
pub async fn merge_one(
    accounts: &Accounts,
    fed: &Federation,
    caller: &Caller,
    old: &ObjectUuid,
    home_user: &ObjectUuid,
) -> Result<Value, Error> {
    caller.require_admin()?;
    let old_user = accounts
        .store()
        .user(old)?
        .ok_or_else(|| Error::unprocessable("user_not_found", "User in old_user_uuid not found"))?;
    if !is_plain_local(accounts, &old_user) {
        return Err(Error::unprocessable("not_local", "old_user_uuid is not a local account"));
    }
    if old_user.redirect_to_user_uuid.is_some() {
        return Ok(json!({"action": "skip", "why": "already merged", "old_user_uuid": old}));
    }
    let home = home_user.cluster().clone();
    if &home == accounts.cluster() || home_user.kind() != ObjectKind::User {
        return Err(Error::unprocessable("not_remote", "home_user_uuid must be a user of another cluster"));
    }
    let rec = match accounts.store().user(home_user)? {
        Some(u) if u.cached_from_home => accounts.user_record(&u)?,
        _ => {
            let by = old_user.email.clone().map(|e| UserLookup { emails: vec![e], ..Default::default() });
            let q = by.ok_or_else(|| {
                Error::unprocessable("no_email", "the local account has no email to look the home account up by")
            })?;
            lookup_at(fed, &home, &q)
                .await?
                .into_iter()
                .find(|r| &r.uuid == home_user)
                .ok_or_else(|| Error::unprocessable("home_not_found", format!("{home_user} not found at {home}")))?
        }
    };
    let _w = accounts.write_lock()?;
    let old_user = accounts
        .store()
        .user(old)?
        .ok_or_else(|| Error::unprocessable("user_not_found", "User in old_user_uuid not found"))?;
    if old_user.redirect_to_user_uuid.is_some() {
        return Ok(json!({"action": "skip", "why": "already merged", "old_user_uuid": old}));
    }
    let project_uuid = accounts.new_uuid(ObjectKind::Group);
    let props = json!({"migrated_from": old_user.uuid, "batch_migration": true});
    let (_, project, counts) = super::merge_into_remote(
        accounts,
        fed,
        &old_user,
        &rec,
        caller.actor(),
        project_uuid,
        props,
        WriteBatch::new(),
    )?;
    Ok(
        json!({"action": "merged", "old_user_uuid": old, "home_user_uuid": home_user, "new_owner_uuid": project, "moved": counts}),
    )
}

/// One account in the report.
#[derive(Debug, Clone, Serialize)]
pub struct ReportAccount {
    /// Cluster.
    pub cluster_id: ClusterId,
    /// uuid.
    pub uuid: ObjectUuid,
    /// Username.
    pub username: Option<String>,
    /// Whether the email is verified.
    pub email_verified: bool,
    /// Last login.
    pub last_login_at: Option<String>,
}

/// The federation report, part 1 (admin): our live local accounts. A scan of every user: run it
/// off the async runtime.
pub fn report_local(accounts: &Accounts, caller: &Caller) -> Result<Vec<UserRecord>, Error> {
    caller.require_admin()?;
    let mut records: Vec<UserRecord> = Vec::new();
    for u in accounts.store().users() {
        let u = u?;
        if is_plain_local(accounts, &u) && u.redirect_to_user_uuid.is_none() {
            records.push(accounts.user_record(&u)?);
        }
    }
    Ok(records)
}

/// The federation report, part 2: every peer's live local accounts (signed answers), and the
/// peers that could not be asked.
pub async fn report_peers(fed: &Federation) -> (Vec<UserRecord>, Vec<Value>) {
    let (mut records, mut unreachable) = (Vec::new(), Vec::new());
    let peers: Vec<ClusterId> = fed.peer_ids().cloned().collect();
    for p in &peers {
        match lookup_at(fed, p, &UserLookup { all: true, ..Default::default() }).await {
            Ok(rs) => records.extend(rs.into_iter().filter(|r| r.redirect_to_user_uuid.is_none())),
            Err(e) => unreachable.push(json!({"cluster_id": p, "error": e.message})),
        }
    }
    (records, unreachable)
}

/// The federation report, part 3: people with accounts on several clusters, and conflicts, from
/// the accounts of parts 1 and 2. Grows with the federation's users: run it off the async runtime.
pub fn report_summary(cluster: &ClusterId, records: &[UserRecord], unreachable: Vec<Value>) -> Value {
    let mut by_email: BTreeMap<String, Vec<&UserRecord>> = BTreeMap::new();
    let mut by_username: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for r in records {
        let email = r.email.trim().to_lowercase();
        if !email.is_empty() {
            by_email.entry(email.clone()).or_default().push(r);
        }
        if let Some(n) = r.username.as_deref() {
            by_username.entry(n).or_default().insert(email);
        }
    }
    let mut people = Vec::new();
    for (email, accts) in &by_email {
        let clusters: BTreeSet<&ClusterId> = accts.iter().map(|r| r.uuid.cluster()).collect();
        let mut conflicts = Vec::new();
        for c in &clusters {
            let n = accts.iter().filter(|r| r.uuid.cluster() == *c).count();
            if n > 1 {
                conflicts.push(format!("{n} accounts on {c} share this email"));
            }
        }
        for r in accts.iter().filter(|r| !r.email_verified) {
            conflicts.push(format!("unverified email on {} ({})", r.uuid.cluster(), r.uuid));
        }
        for r in accts.iter() {
            if let Some(n) = r.username.as_deref()
                && by_username.get(n).is_some_and(|emails| emails.len() > 1)
            {
                conflicts.push(format!("username {n} is used by different people"));
            }
        }
        conflicts.sort();
        conflicts.dedup();
        if clusters.len() < 2 && conflicts.is_empty() {
            continue;
        }
        let list: Vec<ReportAccount> = accts
            .iter()
            .map(|r| ReportAccount {
                cluster_id: r.uuid.cluster().clone(),
                uuid: r.uuid.clone(),
                username: r.username.clone(),
                email_verified: r.email_verified,
                last_login_at: r.last_login_at.clone(),
            })
            .collect();
        people.push(json!({"email": email, "clusters": clusters.len(), "accounts": list, "conflicts": conflicts}));
    }
    json!({"cluster_id": cluster, "people": people, "unreachable": unreachable, "accounts_seen": records.len()})
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn plan_lines_are_checked_and_reported_by_number() {
        let me: ClusterId = "aaaaa".parse().unwrap();
        let peers: BTreeSet<ClusterId> = ["bbbbb".parse().unwrap()].into_iter().collect();
        let text = "login,home_cluster\nada@example.org,bbbbb\n# comment\nbob,aaaaa\nnot an email@,bbbbb\ncat@example.org,zzzzz\nada@example.org,aaaaa\nx,y,z\ndan@example,bbbbb\n";
        let (good, refused) = parse_plan(text, &me, &peers);
        assert_eq!(good.len(), 1, "{good:?}");
        assert_eq!(good[0].0, 4);
        let lines: Vec<usize> = refused.iter().map(|a| a.line).collect();
        assert_eq!(lines, vec![2, 5, 6, 7, 8, 9]);
        assert!(refused[2].why.as_ref().unwrap().contains("unknown cluster zzzzz"));
        assert!(refused[0].why.as_ref().unwrap().contains("line 7"));
    }
}
