//! Returning users' legacy data (DESIGN §4.7, seed 000): accounts of an older system imported by
//! an admin, each owning its collections, and claimed by the person whose **verified** email
//! matches.
//!
//! An import line is checked field by field and refused on its own (the rest goes on). A line
//! whose content equals what was imported before changes nothing; a changed line updates an
//! unclaimed account (its collections matched by name) and never touches a claimed one. Imported
//! collections are owned by the legacy account, which no user's ownership chain or permission
//! reaches, so only admins see them until a claim moves them, in one transaction with the claim
//! mark and its audit entry, into a project of the claimant's named after the legacy account.

use super::error::{Error, ErrorKind, Result};
use super::users::parse_email as normalize_email;
use super::{Accounts, Caller};
use crate::clock::parse_time;
use crate::store::WriteBatch;
use crate::store::records::{Collection, Group, LegacyAccount};
use federation_proto::{ObjectKind, ObjectUuid, SecretHash};
use serde::Serialize;
use serde_json::{Map, Value, json};
use sha2::Digest as _;
use std::collections::{BTreeMap, HashMap};

/// Longest `legacy_id`.
pub const MAX_LEGACY_ID: usize = 128;
/// Longest legacy account name, and collection name.
pub const MAX_NAME: usize = 255;
/// Longest collection description.
pub const MAX_DESCRIPTION: usize = 64 * 1024;
/// Largest collection `properties`, serialized.
pub const MAX_PROPERTIES: usize = 64 * 1024;
/// Longest collection `manifest_text`.
pub const MAX_MANIFEST: usize = 1024 * 1024;
/// Most collections on one line.
pub const MAX_COLLECTIONS: usize = 1000;
/// Most lines in one import request.
pub const MAX_LINES_PER_REQUEST: usize = 5000;
/// The user prefs key listing the legacy ids whose offer the person dismissed ("Not mine").
pub const DISMISSED_PREF: &str = "hearth_dismissed_legacy";

/// What became of one import line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A new legacy account.
    Imported,
    /// An unclaimed account whose content changed.
    Updated,
    /// The same content as before.
    Unchanged,
    /// Not imported; why.
    Refused,
}

/// The answer for one line.
#[derive(Debug, Clone, Serialize)]
pub struct LineResult {
    /// 1-based line number in the file.
    pub line: u64,
    /// What happened.
    pub outcome: Outcome,
    /// The line's `legacy_id`, when it had a usable one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legacy_id: Option<String>,
    /// The legacy account's uuid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uuid: Option<ObjectUuid>,
    /// Why it was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Counts of an import.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// New accounts.
    pub imported: u64,
    /// Changed accounts.
    pub updated: u64,
    /// Lines equal to what was there.
    pub unchanged: u64,
    /// Lines refused.
    pub refused: u64,
}

impl Counts {
    fn add(&mut self, o: &Outcome) {
        match o {
            Outcome::Imported => self.imported += 1,
            Outcome::Updated => self.updated += 1,
            Outcome::Unchanged => self.unchanged += 1,
            Outcome::Refused => self.refused += 1,
        }
    }
}

/// The answer to one import request.
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    /// Nothing was written.
    pub dry_run: bool,
    /// Per line, in order.
    pub lines: Vec<LineResult>,
    /// Totals.
    pub counts: Counts,
}

/// A collection offered to its owner.
#[derive(Debug, Clone, Serialize)]
pub struct OfferedCollection {
    /// Its uuid.
    pub uuid: ObjectUuid,
    /// Its name.
    pub name: String,
}

/// Legacy data that the caller may claim.
#[derive(Debug, Clone, Serialize)]
pub struct LegacyOffer {
    /// The older system's id.
    pub legacy_id: String,
    /// The legacy account.
    pub uuid: ObjectUuid,
    /// The matching (verified) email.
    pub email: String,
    /// The name there.
    pub name: String,
    /// What a claim moves.
    pub collections: Vec<OfferedCollection>,
}

/// The result of a claim.
#[derive(Debug, Clone, Serialize)]
pub struct LegacyClaim {
    /// The older system's id.
    pub legacy_id: String,
    /// The legacy account, now claimed.
    pub uuid: ObjectUuid,
    /// Who claimed it.
    pub user_uuid: ObjectUuid,
    /// The project the collections now live in.
    pub owner_uuid: ObjectUuid,
    /// The moved collections.
    pub moved: Vec<ObjectUuid>,
}

/// One collection of an import line, checked.
#[derive(Debug, Clone, Serialize)]
struct LineCollection {
    name: String,
    description: Option<String>,
    properties: Value,
    manifest_text: String,
    created_at: Option<String>,
}

/// An import line, checked.
#[derive(Debug, Clone, Serialize)]
struct Line {
    legacy_id: String,
    email: String,
    name: String,
    collections: Vec<LineCollection>,
}

fn string_field(o: &Map<String, Value>, key: &str, max: usize, at: &str) -> std::result::Result<String, String> {
    match o.get(key) {
        None | Some(Value::Null) => Err(format!("{at}{key} is required")),
        Some(Value::String(s)) if s.trim().is_empty() => Err(format!("{at}{key} is empty")),
        Some(Value::String(s)) if s.chars().count() > max => Err(format!("{at}{key} is longer than {max} characters")),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(format!("{at}{key} must be a string, not {}", type_name(other))),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn unknown_fields(o: &Map<String, Value>, known: &[&str], at: &str) -> std::result::Result<(), String> {
    match o.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(format!("{at}unknown field {k:?} (known: {})", known.join(", "))),
        None => Ok(()),
    }
}

fn parse_collection(v: &Value, i: usize) -> std::result::Result<LineCollection, String> {
    let at = format!("collections[{i}].");
    let Value::Object(o) = v else { return Err(format!("collections[{i}] must be an object")) };
    unknown_fields(o, &["name", "description", "properties", "manifest_text", "created_at"], &at)?;
    let name = string_field(o, "name", MAX_NAME, &at)?;
    let description = match o.get("description") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.len() > MAX_DESCRIPTION => {
            return Err(format!("{at}description is longer than {MAX_DESCRIPTION} bytes"));
        }
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => return Err(format!("{at}description must be a string, not {}", type_name(other))),
    };
    let properties = match o.get("properties") {
        None | Some(Value::Null) => json!({}),
        Some(p @ Value::Object(_)) if p.to_string().len() > MAX_PROPERTIES => {
            return Err(format!("{at}properties are larger than {MAX_PROPERTIES} bytes"));
        }
        Some(p @ Value::Object(_)) => p.clone(),
        Some(other) => return Err(format!("{at}properties must be an object, not {}", type_name(other))),
    };
    let manifest_text = match o.get("manifest_text") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) if s.len() > MAX_MANIFEST => {
            return Err(format!("{at}manifest_text is longer than {MAX_MANIFEST} bytes"));
        }
        Some(Value::String(s)) => s.clone(),
        Some(other) => return Err(format!("{at}manifest_text must be a string, not {}", type_name(other))),
    };
    let created_at = match o.get("created_at") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if parse_time(s).is_some() => Some(s.clone()),
        Some(Value::String(s)) => return Err(format!("{at}created_at {s:?} is not an RFC 3339 time")),
        Some(other) => return Err(format!("{at}created_at must be a string, not {}", type_name(other))),
    };
    Ok(LineCollection { name, description, properties, manifest_text, created_at })
}

fn parse_line(raw: &str) -> std::result::Result<Line, String> {
    let v: Value = serde_json::from_str(raw).map_err(|e| format!("not JSON: {e}"))?;
    // What the API refuses in a stored value, the import refuses too (it makes the same rows).
    super::bounds::check_no_nul("the line", &v).map_err(|e| e.message)?;
    let Value::Object(o) = v else { return Err(format!("a line must be a JSON object, not {}", type_name(&v))) };
    unknown_fields(&o, &["legacy_id", "email", "name", "collections"], "")?;
    let legacy_id = match o.get("legacy_id") {
        Some(Value::Number(n)) => n.to_string(),
        _ => string_field(&o, "legacy_id", MAX_LEGACY_ID, "")?,
    };
    if legacy_id.len() > MAX_LEGACY_ID || legacy_id.chars().any(char::is_control) {
        return Err(format!("legacy_id must be at most {MAX_LEGACY_ID} bytes without control characters"));
    }
    let email = normalize_email(&string_field(&o, "email", 254, "")?)?;
    let name = string_field(&o, "name", MAX_NAME, "")?;
    let collections = match o.get("collections") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) if a.len() > MAX_COLLECTIONS => {
            return Err(format!("more than {MAX_COLLECTIONS} collections"));
        }
        Some(Value::Array(a)) => {
            a.iter().enumerate().map(|(i, c)| parse_collection(c, i)).collect::<std::result::Result<Vec<_>, _>>()?
        }
        Some(other) => return Err(format!("collections must be an array, not {}", type_name(other))),
    };
    let mut names = BTreeMap::new();
    for (i, c) in collections.iter().enumerate() {
        if let Some(j) = names.insert(c.name.as_str(), i) {
            return Err(format!("collections[{i}] has the same name as collections[{j}]: {:?}", c.name));
        }
    }
    Ok(Line { legacy_id, email, name, collections })
}

impl Accounts {
    /// A uuid of `kind` derived from `parts` (and this cluster): the same line always names the
    /// same records, which is what makes a re-run complete an interrupted import, and what finds
    /// the account imported under a legacy id without an index of its own.
    fn derived_uuid(&self, kind: ObjectKind, parts: &[&str]) -> Result<ObjectUuid> {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let mut h = sha2::Sha256::new();
        for (i, p) in parts.iter().enumerate() {
            sha2::Digest::update(&mut h, format!("{i}:{}:", p.len()).as_bytes());
            sha2::Digest::update(&mut h, p.as_bytes());
        }
        let digest = sha2::Digest::finalize(h);
        let id: String =
            digest.iter().take(15).map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()])).collect();
        ObjectUuid::new(self.cluster().clone(), kind, &id)
            .map_err(|e| Error::new(ErrorKind::Internal, "derived_uuid", format!("a derived uuid was refused: {e}")))
    }

    /// The legacy account imported under `legacy_id`.
    pub fn legacy_by_id(&self, legacy_id: &str) -> Result<Option<LegacyAccount>> {
        let uuid = self.derived_uuid(ObjectKind::LegacyAccount, &[legacy_id])?;
        Ok(self.store().legacy(&uuid)?.filter(|l| l.legacy_id == legacy_id))
    }

    /// Imports legacy accounts (admin only). `lines` are (1-based line number, raw JSON text);
    /// each is answered on its own. With `dry_run` nothing is written.
    pub fn import_legacy(&self, caller: &Caller, lines: &[(u64, String)], dry_run: bool) -> Result<ImportReport> {
        caller.require_admin()?;
        if lines.len() > MAX_LINES_PER_REQUEST {
            return Err(Error::unprocessable(
                "too_many_lines",
                format!("at most {MAX_LINES_PER_REQUEST} lines per request (got {})", lines.len()),
            ));
        }
        let _w = self.write_lock()?;
        let now = self.clock().now();
        let (mut b, mut imported) = (WriteBatch::new(), WriteBatch::new());
        let mut seen: HashMap<String, u64> = HashMap::new();
        let mut report = ImportReport { dry_run, lines: Vec::with_capacity(lines.len()), counts: Counts::default() };
        for (n, raw) in lines {
            let result = match parse_line(raw) {
                Err(e) => {
                    LineResult { line: *n, outcome: Outcome::Refused, legacy_id: None, uuid: None, error: Some(e) }
                }
                Ok(line) => match seen.get(&line.legacy_id) {
                    Some(first) => LineResult {
                        line: *n,
                        outcome: Outcome::Refused,
                        error: Some(format!("legacy_id {:?} is already on line {first}", line.legacy_id)),
                        legacy_id: Some(line.legacy_id),
                        uuid: None,
                    },
                    None => {
                        seen.insert(line.legacy_id.clone(), *n);
                        self.import_line(&mut b, &mut imported, caller, *n, line, now)?
                    }
                },
            };
            report.counts.add(&result.outcome);
            report.lines.push(result);
        }
        if !dry_run && (!b.is_empty() || !imported.is_empty()) {
            let (first, last) = (lines.first().map_or(0, |l| l.0), lines.last().map_or(0, |l| l.0));
            let c = &report.counts;
            let mut log = WriteBatch::new();
            log.put_log(&self.audit(
                caller.actor(),
                "legacy_import",
                None,
                format!(
                    "imported legacy accounts, lines {first}-{last}: {} imported, {} updated, {} unchanged, {} refused",
                    c.imported, c.updated, c.unchanged, c.refused
                ),
                json!({"first_line": first, "last_line": last, "counts": c}),
            ))?;
            // The legacy rows last, after the audit entry: a line counts as imported only once its
            // row (with the content hash) is written, and every key is derived from the line, so an
            // import cut short by a crash is completed, key for key, by running it again. Several
            // times cheaper than one transaction on sled (see the `legacy` benchmark).
            self.store().commit_rerunnable(vec![b, log, imported])?;
        }
        Ok(report)
    }

    /// Adds the writes of one line to `b`, and its legacy row, which says the line is in, to
    /// `imported`.
    fn import_line(
        &self,
        b: &mut WriteBatch,
        imported: &mut WriteBatch,
        caller: &Caller,
        n: u64,
        line: Line,
        now: time::OffsetDateTime,
    ) -> Result<LineResult> {
        let hash = SecretHash::of(&serde_json::to_string(&line).unwrap_or_default()).to_hex();
        let old = self.legacy_by_id(&line.legacy_id)?;
        let done = |outcome: Outcome, uuid: &ObjectUuid, error: Option<String>| LineResult {
            line: n,
            outcome,
            legacy_id: Some(line.legacy_id.clone()),
            uuid: Some(uuid.clone()),
            error,
        };
        if let Some(o) = &old {
            if o.source_hash == hash {
                return Ok(done(Outcome::Unchanged, &o.uuid, None));
            }
            if let Some(by) = &o.claimed_by {
                let e = format!("legacy account {} was claimed by {by}; a claimed account is never changed", o.uuid);
                return Ok(done(Outcome::Refused, &o.uuid, Some(e)));
            }
        }
        let uuid = match &old {
            Some(o) => o.uuid.clone(),
            None => self.derived_uuid(ObjectKind::LegacyAccount, &[&line.legacy_id])?,
        };
        // Existing collections are matched by name: kept (and updated), added or removed.
        let mut existing: BTreeMap<String, Collection> = BTreeMap::new();
        for c in old.iter().flat_map(|o| o.collections.iter()) {
            if let Some(row) = self.store().object::<Collection>(c)? {
                existing.insert(row.name.clone(), row);
            }
        }
        let actor = Some(caller.uuid().clone());
        let mut uuids = Vec::with_capacity(line.collections.len());
        for lc in &line.collections {
            let prev = existing.remove(&lc.name);
            let created_at = lc.created_at.as_deref().and_then(parse_time).unwrap_or(now);
            let row = Collection {
                uuid: match &prev {
                    Some(p) => p.uuid.clone(),
                    None => self.derived_uuid(ObjectKind::Collection, &[&line.legacy_id, &lc.name])?,
                },
                owner_uuid: uuid.clone(),
                created_at: prev.as_ref().map_or(created_at, |p| p.created_at),
                modified_at: now,
                modified_by_user_uuid: actor.clone(),
                name: lc.name.clone(),
                description: lc.description.clone(),
                properties: lc.properties.clone(),
                manifest_text: lc.manifest_text.clone(),
            };
            if prev.as_ref() != Some(&row) {
                b.put_object(prev.as_ref(), &row)?;
            }
            uuids.push(row.uuid);
        }
        for gone in existing.values() {
            b.delete_object(gone);
        }
        let record = LegacyAccount {
            uuid: uuid.clone(),
            legacy_id: line.legacy_id.clone(),
            email: line.email.clone(),
            name: line.name.clone(),
            collections: uuids,
            source_hash: hash,
            created_at: old.as_ref().map_or(now, |o| o.created_at),
            modified_at: now,
            claimed_by: None,
            claimed_at: None,
            claimed_into: None,
        };
        imported.put_legacy(old.as_ref(), &record)?;
        Ok(done(if old.is_some() { Outcome::Updated } else { Outcome::Imported }, &uuid, None))
    }

    fn legacy_collections(&self, l: &LegacyAccount) -> Result<Vec<Collection>> {
        let mut out = Vec::with_capacity(l.collections.len());
        for c in &l.collections {
            if let Some(row) = self.store().object::<Collection>(c)?
                && row.owner_uuid == l.uuid
            {
                out.push(row);
            }
        }
        Ok(out)
    }

    /// The caller's verified email, or why there is none (legacy data goes by verified email only).
    fn verified_email(caller: &Caller) -> Result<String> {
        if caller.is_system_root {
            return Err(Error::forbidden("no_person", "the system root token is not a person; log in as one"));
        }
        match &caller.user.email {
            Some(e) if caller.user.email_verified => Ok(e.trim().to_lowercase()),
            Some(_) => Err(Error::forbidden(
                "email_unverified",
                "your email address is not verified; legacy data is offered to verified addresses only",
            )),
            None => Err(Error::forbidden("no_email", "your account has no email address")),
        }
    }

    /// Legacy data the caller may claim: unclaimed legacy accounts of the caller's verified email
    /// that own at least one collection, minus those the caller dismissed. An index lookup by
    /// email; nothing for callers without a verified email.
    pub fn legacy_offers(&self, caller: &Caller) -> Result<Vec<LegacyOffer>> {
        let Ok(email) = Self::verified_email(caller) else { return Ok(Vec::new()) };
        let dismissed = dismissed_of(&caller.user.prefs);
        let mut out = Vec::new();
        for l in self.store().legacy_by_email(&email)? {
            if l.claimed_by.is_some() || dismissed.contains(&l.legacy_id) {
                continue;
            }
            let collections: Vec<OfferedCollection> = self
                .legacy_collections(&l)?
                .into_iter()
                .map(|c| OfferedCollection { uuid: c.uuid, name: c.name })
                .collect();
            if collections.is_empty() {
                continue;
            }
            out.push(LegacyOffer { legacy_id: l.legacy_id, uuid: l.uuid, email: l.email, name: l.name, collections });
        }
        out.sort_by(|a, b| a.legacy_id.cmp(&b.legacy_id));
        Ok(out)
    }

    /// Claims legacy account `legacy_id` for the caller: every collection moves into a new project
    /// of the caller's, "Legacy data: <name> (<legacy_id>)", and the account is marked claimed,
    /// with an audit entry, in one transaction.
    pub fn claim_legacy(&self, caller: &Caller, legacy_id: &str) -> Result<LegacyClaim> {
        caller.require_active()?;
        if !caller.scopes.is_all() {
            return Err(Error::forbidden("scoped_token", "cannot claim legacy data with a scoped token"));
        }
        let email = Self::verified_email(caller)?;
        let _w = self.write_lock()?;
        let not_yours = || {
            Error::not_found("legacy_not_found", format!("no legacy account {legacy_id:?} matches your verified email"))
        };
        let l = self.legacy_by_id(legacy_id)?.ok_or_else(not_yours)?;
        if l.email != email {
            return Err(not_yours());
        }
        if let Some(by) = &l.claimed_by {
            return Err(Error::unprocessable(
                "already_claimed",
                format!("legacy account {legacy_id:?} was already claimed (by {by})"),
            ));
        }
        let collections = self.legacy_collections(&l)?;
        if collections.is_empty() {
            return Err(Error::unprocessable(
                "no_legacy_collections",
                format!("legacy account {legacy_id:?} has no collections to move"),
            ));
        }
        let now = self.clock().now();
        let me = caller.uuid().clone();
        let mut name = format!("Legacy data: {} ({})", l.name, l.legacy_id);
        if name.chars().count() > MAX_NAME {
            name = name.chars().take(MAX_NAME).collect();
        }
        let project_uuid = self.new_uuid(ObjectKind::Group);
        let name = self.free_name::<Group>(&me, &name, &project_uuid)?;
        let project = Group {
            uuid: project_uuid,
            owner_uuid: me.clone(),
            created_at: now,
            modified_at: now,
            modified_by_user_uuid: Some(me.clone()),
            name,
            description: Some(format!("Collections of {} ({}) in the older system, claimed by {me}.", l.name, l.email)),
            group_class: "project".into(),
            properties: json!({"hearth_legacy_id": l.legacy_id}),
            trash_at: None,
        };
        let mut b = WriteBatch::new();
        b.put_object(None, &project)?;
        let mut moved = Vec::with_capacity(collections.len());
        for old in &collections {
            let new = Collection {
                owner_uuid: project.uuid.clone(),
                modified_at: now,
                modified_by_user_uuid: Some(me.clone()),
                ..old.clone()
            };
            b.put_object(Some(old), &new)?;
            moved.push(new.uuid);
        }
        let claimed = LegacyAccount {
            claimed_by: Some(me.clone()),
            claimed_at: Some(now),
            claimed_into: Some(project.uuid.clone()),
            modified_at: now,
            ..l.clone()
        };
        b.put_legacy(Some(&l), &claimed)?;
        b.put_log(&self.audit(
            caller.actor(),
            "legacy_claim",
            Some((&l.uuid, &me)),
            format!(
                "{me} claimed legacy account {} ({}): {} collections into {}",
                l.uuid,
                l.legacy_id,
                moved.len(),
                project.uuid
            ),
            json!({"legacy_id": l.legacy_id, "project_uuid": project.uuid, "moved": moved}),
        ))?;
        self.store().commit(b)?;
        Ok(LegacyClaim { legacy_id: l.legacy_id, uuid: l.uuid, user_uuid: me, owner_uuid: project.uuid, moved })
    }

    /// "Not mine": hides the offer of `legacy_id` from the caller (kept in the caller's prefs here,
    /// for local and remote users alike). Claiming stays possible.
    pub fn dismiss_legacy(&self, caller: &Caller, legacy_id: &str) -> Result<()> {
        caller.require_active()?;
        if !caller.scopes.is_all() {
            return Err(Error::forbidden("scoped_token", "cannot dismiss legacy data with a scoped token"));
        }
        let email = Self::verified_email(caller)?;
        let _w = self.write_lock()?;
        let l = self.legacy_by_id(legacy_id)?.filter(|l| l.email == email).ok_or_else(|| {
            Error::not_found("legacy_not_found", format!("no legacy account {legacy_id:?} matches your verified email"))
        })?;
        let old = self
            .store()
            .user(caller.uuid())?
            .ok_or_else(|| Error::not_found("not_found", format!("user {} not found", caller.uuid())))?;
        let mut list = dismissed_of(&old.prefs);
        if list.contains(&l.legacy_id) {
            return Ok(());
        }
        list.push(l.legacy_id.clone());
        let mut new = old.clone();
        if !new.prefs.is_object() {
            new.prefs = json!({});
        }
        new.prefs[DISMISSED_PREF] = json!(list);
        let mut b = WriteBatch::new();
        b.put_user(Some(&old), &new)?;
        b.put_log(&self.audit(
            caller.actor(),
            "legacy_dismiss",
            Some((&l.uuid, &l.uuid)),
            format!("{} said legacy account {} ({}) is not theirs", caller.uuid(), l.uuid, l.legacy_id),
            json!({"legacy_id": l.legacy_id}),
        ))?;
        self.store().commit(b)?;
        Ok(())
    }
}

fn dismissed_of(prefs: &Value) -> Vec<String> {
    super::users::pref_strings(prefs, DISMISSED_PREF)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::panic)]
    use super::*;

    #[test]
    fn lines_are_refused_field_by_field() {
        for (raw, want) in [
            ("not json", "not JSON"),
            ("[1]", "must be a JSON object"),
            (r#"{"email":"a@b.org","name":"A"}"#, "legacy_id is required"),
            (r#"{"legacy_id":"","email":"a@b.org","name":"A"}"#, "legacy_id is empty"),
            (r#"{"legacy_id":true,"email":"a@b.org","name":"A"}"#, "legacy_id must be a string"),
            (r#"{"legacy_id":"1","email":"not-an-email","name":"A"}"#, "not an email address"),
            (r#"{"legacy_id":"1","email":"a@@b.org","name":"A"}"#, "not an email address"),
            (r#"{"legacy_id":"1","email":5,"name":"A"}"#, "email must be a string"),
            (r#"{"legacy_id":"1","email":"a@b.org"}"#, "name is required"),
            (r#"{"legacy_id":"1","email":"a@b.org","name":"A","collections":{}}"#, "collections must be an array"),
            (r#"{"legacy_id":"1","email":"a@b.org","name":"A","collections":[{}]}"#, "collections[0].name is required"),
            (
                r#"{"legacy_id":"1","email":"a@b.org","name":"A","collections":[{"name":3}]}"#,
                "collections[0].name must be a string",
            ),
            (
                r#"{"legacy_id":"1","email":"a@b.org","name":"A","collections":[{"name":"x","properties":[]}]}"#,
                "properties must be an object",
            ),
            (
                r#"{"legacy_id":"1","email":"a@b.org","name":"A","collections":[{"name":"x","created_at":"yesterday"}]}"#,
                "not an RFC 3339 time",
            ),
            (
                r#"{"legacy_id":"1","email":"a@b.org","name":"A","collections":[{"name":"x"},{"name":"x"}]}"#,
                "same name",
            ),
            (r#"{"legacy_id":"1","email":"a@b.org","name":"A","colections":[]}"#, "unknown field \"colections\""),
            (r#"{"legacy_id":"1","email":"a@b.org","name":"A\u0000"}"#, "U+0000"),
            (
                r#"{"legacy_id":"1","email":"a@b.org","name":"A","collections":[{"name":"x","properties":{"k\u0000":1}}]}"#,
                "U+0000",
            ),
            (
                r#"{"legacy_id":"1","email":"a@b.org","name":"A","collections":[{"name":"x","manifest_text":". \u0000"}]}"#,
                "U+0000",
            ),
        ] {
            match parse_line(raw) {
                Ok(l) => panic!("{raw} was accepted: {l:?}"),
                Err(e) => assert!(e.contains(want), "{raw}: {e} (wanted {want})"),
            }
        }
    }

    #[test]
    fn emails_are_normalised_as_the_rest_of_the_daemon_does() {
        let l = parse_line(r#"{"legacy_id":7,"email":"  Ada@Example.ORG ","name":"Ada"}"#);
        let l = l.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(l.email, "ada@example.org");
        assert_eq!(l.legacy_id, "7");
        assert!(l.collections.is_empty());
    }
}
