//! Person records and claims (DESIGN §4.9, seed 004): people attached to data by name, emails or
//! ORCID iD before they have an account, who later claim those records.
//!
//! A record's identities are what its writer typed, never verified. A user claims a record by
//! proving one of them: an ORCID iD equal to the user's (known only from an ORCID login here, or
//! from the user's home's signed record), or an email equal to the user's **verified** one. A
//! record whose identities match none of the user's verified ones is refused, naming what to
//! verify first; a name-only record waits for an admin. Claiming gives the user read access to
//! every object the record is attached to, in one transaction with the mark and an audit entry;
//! an approved name-only claim also moves the attachments to the user and retires the record.
//! Attachments are links `link_class = "person"`, `name` = the role (default `author`),
//! `tail_uuid` = the object, `head_uuid` = the person.

use super::error::{Error, Result};
use super::users::parse_email as normalize_email;
use super::{Accounts, Caller};
use crate::store::records::{ClaimState, Collection, Group, Link, Person, PersonClaim};
use crate::store::{TreeId, WriteBatch};
use federation_proto::{ObjectKind, ObjectUuid};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// Longest person name.
pub const MAX_NAME: usize = 255;
/// Most emails on one record.
pub const MAX_EMAILS: usize = 20;
/// Longest role (the attachment link's name).
pub const MAX_ROLE: usize = 64;
/// Longest rejection reason.
pub const MAX_REASON: usize = 1000;
/// Most results of one search.
pub const MAX_SEARCH: usize = 100;
/// The link class of attachments.
pub const LINK_CLASS: &str = "person";

/// Checks an ORCID iD (`NNNN-NNNN-NNNN-NNNX`, or `https://orcid.org/…`) and its ISO 7064 mod 11-2
/// check digit; returns the bare iD with an upper-case `X`.
pub fn check_orcid(raw: &str) -> std::result::Result<String, String> {
    let t = raw.trim();
    let bare = t.strip_prefix("https://orcid.org/").or_else(|| t.strip_prefix("http://orcid.org/")).unwrap_or(t);
    let bare = bare.to_uppercase();
    let groups: Vec<&str> = bare.split('-').collect();
    let shape = groups.len() == 4
        && groups.iter().all(|g| g.len() == 4)
        && bare.chars().filter(|c| *c != '-').take(15).all(|c| c.is_ascii_digit())
        && bare.chars().last().is_some_and(|c| c.is_ascii_digit() || c == 'X');
    if !shape {
        return Err(format!("orcid {raw:?} is not of the form NNNN-NNNN-NNNN-NNNX"));
    }
    let digits: Vec<u32> = bare.chars().filter(|c| *c != '-').take(15).filter_map(|c| c.to_digit(10)).collect();
    let total = digits.iter().fold(0u32, |t, d| (t + d) * 2);
    let check = (12 - total % 11) % 11;
    let want = if check == 10 { 'X' } else { char::from_digit(check, 10).unwrap_or('?') };
    if bare.ends_with(want) {
        Ok(bare)
    } else {
        Err(format!("orcid {raw:?} has a wrong check digit (expected {want})"))
    }
}

/// What a client sets on a person record.
#[derive(Debug, Clone, Default)]
pub struct PersonInput {
    /// The name (required on create).
    pub name: Option<String>,
    /// Emails (replaces the list).
    pub emails: Option<Vec<String>>,
    /// ORCID iD (`Some(None)` clears it).
    pub orcid: Option<Option<String>>,
}

/// One identity on a record, as shown.
#[derive(Debug, Clone, Serialize)]
pub struct Identity {
    /// `email` or `orcid`.
    pub kind: &'static str,
    /// The address or iD.
    pub value: String,
    /// Always false: identities on a person record are what its writer typed.
    pub verified: bool,
}

/// A person record as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PersonView {
    /// Always `hearth#person`.
    pub kind: &'static str,
    /// Its uuid.
    pub uuid: ObjectUuid,
    /// Who made it.
    pub owner_uuid: ObjectUuid,
    /// When.
    pub created_at: String,
    /// Last change.
    pub modified_at: String,
    /// The name.
    pub name: String,
    /// The emails.
    pub emails: Vec<String>,
    /// The ORCID iD.
    pub orcid: Option<String>,
    /// Every identity, each unverified.
    pub identities: Vec<Identity>,
    /// The user who claimed it.
    pub claimed_by: Option<ObjectUuid>,
    /// When.
    pub claimed_at: Option<String>,
    /// Retired into this user (an approved claim).
    pub merged_into: Option<ObjectUuid>,
}

/// One object a person is attached to.
#[derive(Debug, Clone, Serialize)]
pub struct Attachment {
    /// The link.
    pub link_uuid: ObjectUuid,
    /// The object.
    pub object_uuid: ObjectUuid,
    /// The role (`author`, …).
    pub role: String,
    /// The object's name, when the caller may read it.
    pub object_name: Option<String>,
}

/// A person record with what it is attached to.
#[derive(Debug, Clone, Serialize)]
pub struct PersonDetail {
    /// The record.
    #[serde(flatten)]
    pub person: PersonView,
    /// Its attachments.
    pub attached_to: Vec<Attachment>,
}

/// A claim as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ClaimView {
    /// Its uuid.
    pub uuid: ObjectUuid,
    /// `pending`, `approved` or `rejected`.
    pub state: ClaimState,
    /// The record.
    pub person: PersonView,
    /// Who claims it.
    pub claimant_uuid: ObjectUuid,
    /// The claimant's name and email, for the admin deciding.
    pub claimant_name: String,
    /// The claimant's email (and whether verified).
    pub claimant_email: Option<String>,
    /// The admin's reason for a rejection.
    pub reason: Option<String>,
    /// When made.
    pub created_at: String,
    /// When decided.
    pub decided_at: Option<String>,
}

/// What a claim did.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ClaimOutcome {
    /// Claimed at once: the user can now read every object the record is attached to.
    Claimed {
        /// The record, now claimed.
        person: PersonView,
        /// Objects the user was given read access to.
        granted: Vec<ObjectUuid>,
        /// How it was proved (`orcid` or `email`).
        matched: &'static str,
    },
    /// A name-only record: waiting in the admin queue.
    Pending {
        /// The claim.
        claim: ClaimView,
    },
}

fn view(p: &Person) -> PersonView {
    let mut identities: Vec<Identity> =
        p.emails.iter().map(|e| Identity { kind: "email", value: e.clone(), verified: false }).collect();
    identities.extend(p.orcid.iter().map(|o| Identity { kind: "orcid", value: o.clone(), verified: false }));
    PersonView {
        kind: "hearth#person",
        uuid: p.uuid.clone(),
        owner_uuid: p.owner_uuid.clone(),
        created_at: crate::clock::format_time(p.created_at),
        modified_at: crate::clock::format_time(p.modified_at),
        name: p.name.clone(),
        emails: p.emails.clone(),
        orcid: p.orcid.clone(),
        identities,
        claimed_by: p.claimed_by.clone(),
        claimed_at: p.claimed_at.map(crate::clock::format_time),
        merged_into: p.merged_into.clone(),
    }
}

fn check_name(raw: &str) -> Result<String> {
    let n = raw.trim();
    if n.is_empty() {
        return Err(Error::unprocessable("invalid_name", "name is required"));
    }
    if n.chars().count() > MAX_NAME {
        return Err(Error::unprocessable("invalid_name", format!("name is longer than {MAX_NAME} characters")));
    }
    Ok(n.to_string())
}

fn check_emails(raw: &[String]) -> Result<Vec<String>> {
    if raw.len() > MAX_EMAILS {
        return Err(Error::unprocessable("invalid_emails", format!("at most {MAX_EMAILS} emails")));
    }
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for (i, e) in raw.iter().enumerate() {
        let n = normalize_email(e).map_err(|m| Error::unprocessable("invalid_emails", format!("emails[{i}]: {m}")))?;
        if let Some(j) = out.iter().position(|o| *o == n) {
            return Err(Error::unprocessable("invalid_emails", format!("emails[{i}] repeats emails[{j}] ({n})")));
        }
        out.push(n);
    }
    Ok(out)
}

impl Accounts {
    fn person(&self, uuid: &ObjectUuid) -> Result<Person> {
        self.store()
            .object::<Person>(uuid)?
            .ok_or_else(|| Error::not_found("person_not_found", format!("person {uuid} not found")))
    }

    fn person_writer(caller: &Caller) -> Result<()> {
        caller.require_active()?;
        if caller.is_anonymous() {
            return Err(Error::unauthorized(
                "anonymous_collections_only",
                "an anonymous session can only use collections",
            ));
        }
        Ok(())
    }

    /// Creates a person record (any active user).
    pub fn create_person(&self, caller: &Caller, input: PersonInput) -> Result<PersonView> {
        Self::person_writer(caller)?;
        let name = check_name(input.name.as_deref().unwrap_or(""))?;
        let emails = check_emails(input.emails.as_deref().unwrap_or(&[]))?;
        let orcid = match input.orcid.flatten() {
            Some(o) if !o.trim().is_empty() => {
                Some(check_orcid(&o).map_err(|m| Error::unprocessable("invalid_orcid", m))?)
            }
            _ => None,
        };
        let _w = self.write_lock()?;
        let now = self.clock().now();
        let p = Person {
            uuid: self.new_uuid(ObjectKind::Person),
            owner_uuid: caller.uuid().clone(),
            created_at: now,
            modified_at: now,
            modified_by_user_uuid: Some(caller.uuid().clone()),
            name,
            emails,
            orcid,
            claimed_by: None,
            claimed_at: None,
            merged_into: None,
        };
        let mut b = WriteBatch::new();
        b.put_object(None, &p)?;
        b.put_log(&self.audit(
            caller.actor(),
            "create",
            Some((&p.uuid, &p.owner_uuid)),
            format!("created person {} ({})", p.uuid, p.name),
            json!({}),
        ))?;
        self.store().commit(b)?;
        Ok(view(&p))
    }

    /// Changes an unclaimed record (its writer or an admin).
    pub fn update_person(&self, caller: &Caller, uuid: &ObjectUuid, input: PersonInput) -> Result<PersonView> {
        Self::person_writer(caller)?;
        let name = input.name.as_deref().map(check_name).transpose()?;
        let emails = input.emails.as_deref().map(check_emails).transpose()?;
        let orcid = match input.orcid {
            None => None,
            Some(None) => Some(None),
            Some(Some(o)) if o.trim().is_empty() => Some(None),
            Some(Some(o)) => Some(Some(check_orcid(&o).map_err(|m| Error::unprocessable("invalid_orcid", m))?)),
        };
        let _w = self.write_lock()?;
        let old = self.person(uuid)?;
        if &old.owner_uuid != caller.uuid() && !caller.is_admin() {
            return Err(Error::forbidden("permission_denied", "only the record's writer or an admin may change it"));
        }
        if old.claimed_by.is_some() {
            return Err(Error::unprocessable("already_claimed", "a claimed person record cannot be changed"));
        }
        let mut new = old.clone();
        if let Some(n) = name {
            new.name = n;
        }
        if let Some(e) = emails {
            new.emails = e;
        }
        if let Some(o) = orcid {
            new.orcid = o;
        }
        new.modified_at = self.clock().now();
        new.modified_by_user_uuid = Some(caller.uuid().clone());
        let mut b = WriteBatch::new();
        b.put_object(Some(&old), &new)?;
        b.put_log(&self.audit(
            caller.actor(),
            "update",
            Some((&new.uuid, &new.owner_uuid)),
            format!("updated person {}", new.uuid),
            json!({}),
        ))?;
        self.store().commit(b)?;
        Ok(view(&new))
    }

    fn attachments(&self, caller: &Caller, p: &Person) -> Result<Vec<Attachment>> {
        let mut out = Vec::new();
        for l in self.store().links_by_head(&p.uuid)? {
            if l.link_class != LINK_CLASS {
                continue;
            }
            let object_name = if self.can_read(caller, &l.tail_uuid)? { self.object_name(&l.tail_uuid)? } else { None };
            out.push(Attachment { link_uuid: l.uuid, object_uuid: l.tail_uuid, role: l.name, object_name });
        }
        Ok(out)
    }

    fn object_name(&self, uuid: &ObjectUuid) -> Result<Option<String>> {
        Ok(match uuid.kind() {
            ObjectKind::Collection => self.store().object::<Collection>(uuid)?.map(|c| c.name),
            ObjectKind::Group => self.store().object::<Group>(uuid)?.map(|g| g.name),
            _ => None,
        })
    }

    /// A person record and what it is attached to (any active user: person records are the
    /// cluster's directory of people named on its data).
    pub fn get_person(&self, caller: &Caller, uuid: &ObjectUuid) -> Result<PersonDetail> {
        Self::person_writer(caller)?;
        let p = self.person(uuid)?;
        Ok(PersonDetail { attached_to: self.attachments(caller, &p)?, person: view(&p) })
    }

    /// Person records every word of `q` finds (a prefix of a name word, an email or an ORCID iD),
    /// from the term index, at most `limit` (≤ 100), by name.
    pub fn search_persons(&self, caller: &Caller, q: &str, limit: usize) -> Result<Vec<PersonView>> {
        Self::person_writer(caller)?;
        if q.len() > 256 {
            return Err(Error::unprocessable("invalid_query", "q is longer than 256 bytes"));
        }
        let words: Vec<String> = q
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|w| !w.is_empty())
            .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric() && c != '@').to_lowercase())
            .filter(|w| !w.is_empty())
            .take(8)
            .collect();
        if words.is_empty() {
            return Ok(Vec::new());
        }
        let mut found: Option<BTreeSet<ObjectUuid>> = None;
        for w in &words {
            // An ORCID iD is indexed upper-case; everything else lower-case.
            let mut hits: BTreeSet<ObjectUuid> =
                self.store().persons_by(TreeId::PersonTerms, w, true, 10_000)?.into_iter().collect();
            hits.extend(self.store().persons_by(TreeId::PersonTerms, &w.to_uppercase(), true, 10_000)?);
            found = Some(match found {
                None => hits,
                Some(f) => f.intersection(&hits).cloned().collect(),
            });
        }
        let mut out = Vec::new();
        for u in found.unwrap_or_default() {
            if let Some(p) = self.store().object::<Person>(&u)? {
                out.push(view(&p));
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name).then(a.uuid.cmp(&b.uuid)));
        out.truncate(limit.clamp(1, MAX_SEARCH));
        Ok(out)
    }

    /// All person records, for the Arvados-style list (filters, order, paging).
    pub fn list_persons(&self, caller: &Caller, params: &super::listing::ListParams) -> Result<Value> {
        Self::person_writer(caller)?;
        let mut items = Vec::new();
        for p in self.store().objects::<Person>() {
            items.push(serde_json::to_value(view(&p?)).unwrap_or(Value::Null));
        }
        params.apply("hearth#personList", items)
    }

    /// Attaches a person to an object the caller may write (a collection or a project).
    pub fn attach_person(&self, caller: &Caller, person: &ObjectUuid, object: &ObjectUuid, role: &str) -> Result<Link> {
        Self::person_writer(caller)?;
        let role = role.trim();
        let role = if role.is_empty() { "author" } else { role };
        if role.chars().count() > MAX_ROLE || role.chars().any(char::is_control) {
            return Err(Error::unprocessable("invalid_role", format!("role must be at most {MAX_ROLE} characters")));
        }
        if !matches!(object.kind(), ObjectKind::Collection | ObjectKind::Group) {
            return Err(Error::unprocessable(
                "invalid_object",
                "a person can be attached to a collection or a project",
            ));
        }
        let _w = self.write_lock()?;
        let p = self.person(person)?;
        if p.merged_into.is_some() {
            return Err(Error::unprocessable("person_retired", "this person record was merged into a user"));
        }
        if self.object_name(object)?.is_none() || !self.can_read(caller, object)? {
            return Err(Error::not_found("not_found", format!("{object} not found")));
        }
        if !self.can_write(caller, object)? {
            return Err(Error::forbidden(
                "permission_denied",
                format!("attaching a person needs write access to {object}"),
            ));
        }
        if self
            .store()
            .links_by_head(person)?
            .iter()
            .any(|l| l.link_class == LINK_CLASS && &l.tail_uuid == object && l.name == role)
        {
            return Err(Error::unprocessable(
                "already_attached",
                format!("{person} is already attached to {object} as {role}"),
            ));
        }
        let now = self.clock().now();
        let link = Link {
            uuid: self.new_uuid(ObjectKind::Link),
            owner_uuid: caller.uuid().clone(),
            created_at: now,
            modified_at: now,
            modified_by_user_uuid: Some(caller.uuid().clone()),
            link_class: LINK_CLASS.into(),
            name: role.into(),
            head_uuid: person.clone(),
            tail_uuid: object.clone(),
            properties: json!({}),
        };
        let mut b = WriteBatch::new();
        b.put_object(None, &link)?;
        b.put_log(&self.audit(
            caller.actor(),
            "person_attach",
            Some((&link.uuid, &link.owner_uuid)),
            format!("attached person {person} to {object} as {role}"),
            json!({"person_uuid": person, "object_uuid": object, "role": role}),
        ))?;
        self.store().commit(b)?;
        Ok(link)
    }

    /// Gives `user` read access to every object `p` is attached to (permission links owned by
    /// the system user), into `b`; returns the objects.
    fn grant_attachments(
        &self,
        b: &mut WriteBatch,
        p: &Person,
        user: &ObjectUuid,
        move_links: bool,
    ) -> Result<Vec<ObjectUuid>> {
        let now = self.clock().now();
        let existing: Vec<Link> = self.store().links_by_tail(user)?;
        let mut granted = Vec::new();
        for l in self.store().links_by_head(&p.uuid)? {
            if l.link_class != LINK_CLASS {
                continue;
            }
            let object = l.tail_uuid.clone();
            // Only what the attaching user could (and still can) write is handed on.
            if self.access_level(&l.owner_uuid, false, &object)? < super::permissions::Level::Write {
                continue;
            }
            let has = existing.iter().any(|e| e.link_class == "permission" && e.head_uuid == object);
            if !has && !granted.contains(&object) {
                let perm = Link {
                    uuid: self.new_uuid(ObjectKind::Link),
                    owner_uuid: self.system_user().clone(),
                    created_at: now,
                    modified_at: now,
                    modified_by_user_uuid: Some(user.clone()),
                    link_class: "permission".into(),
                    name: "can_read".into(),
                    head_uuid: object.clone(),
                    tail_uuid: user.clone(),
                    properties: json!({"hearth_person_uuid": p.uuid}),
                };
                b.put_object(None, &perm)?;
            }
            if move_links {
                let moved = Link { head_uuid: user.clone(), modified_at: now, ..l.clone() };
                b.put_object(Some(&l), &moved)?;
            }
            if !granted.contains(&object) {
                granted.push(object);
            }
        }
        Ok(granted)
    }

    fn claimer(caller: &Caller) -> Result<()> {
        Self::person_writer(caller)?;
        if caller.is_system_root {
            return Err(Error::forbidden("no_person", "the system root token is not a person; log in as one"));
        }
        if !caller.scopes.is_all() {
            return Err(Error::forbidden("scoped_token", "cannot claim a person record with a scoped token"));
        }
        Ok(())
    }

    /// The caller's verified identities: (ORCID iD, verified email).
    fn proven(caller: &Caller) -> (Option<String>, Option<String>) {
        let u = &caller.user;
        (u.orcid.clone(), u.email.clone().filter(|_| u.email_verified).map(|e| e.trim().to_lowercase()))
    }

    /// Claims person record `uuid` for the caller (see the module doc for the rules).
    pub fn claim_person(&self, caller: &Caller, uuid: &ObjectUuid) -> Result<ClaimOutcome> {
        Self::claimer(caller)?;
        let _w = self.write_lock()?;
        let p = self.person(uuid)?;
        if let Some(by) = p.claimed_by.as_ref().or(p.merged_into.as_ref()) {
            return Err(Error::unprocessable(
                "already_claimed",
                format!("person {uuid} was already claimed (by {by})"),
            ));
        }
        let (orcid, email) = Self::proven(caller);
        let matched = if p.orcid.is_some() && p.orcid == orcid {
            Some("orcid")
        } else if email.as_ref().is_some_and(|e| p.emails.contains(e)) {
            Some("email")
        } else {
            None
        };
        if let Some(matched) = matched {
            let mut b = WriteBatch::new();
            let (person, granted) = self.claim_into(&mut b, &p, caller.uuid(), matched)?;
            self.store().commit(b)?;
            return Ok(ClaimOutcome::Claimed { person, granted, matched });
        }
        if p.orcid.is_some() || !p.emails.is_empty() {
            let mut steps = Vec::new();
            if let Some(o) = &p.orcid {
                steps.push(format!("link the ORCID iD {o} to your account (log in with ORCID from your account page)"));
            }
            if !p.emails.is_empty() {
                steps.push(format!("verify {} on your account", p.emails.join(" or ")));
            }
            return Err(Error::forbidden(
                "identity_unverified",
                format!(
                    "this record names identities you have not verified; first {}, then claim again",
                    steps.join(", or ")
                ),
            ));
        }
        if self
            .store()
            .claims_of(caller.uuid())?
            .iter()
            .any(|c| &c.person_uuid == uuid && c.state == ClaimState::Pending)
        {
            return Err(Error::unprocessable(
                "claim_pending",
                "your claim on this record is already waiting for an admin",
            ));
        }
        let now = self.clock().now();
        let claim = PersonClaim {
            uuid: self.new_uuid(ObjectKind::Claim),
            person_uuid: uuid.clone(),
            claimant_uuid: caller.uuid().clone(),
            state: ClaimState::Pending,
            reason: None,
            decided_by: None,
            created_at: now,
            decided_at: None,
        };
        let mut b = WriteBatch::new();
        b.put_claim(None, &claim)?;
        b.put_log(&self.audit(
            caller.actor(),
            "person_claim_pending",
            Some((&claim.uuid, &p.uuid)),
            format!("{} claims name-only person {} ({}); waiting for an admin", caller.uuid(), p.uuid, p.name),
            json!({"person_uuid": p.uuid}),
        ))?;
        self.store().commit(b)?;
        Ok(ClaimOutcome::Pending { claim: self.claim_view(&claim)? })
    }

    fn claim_into(
        &self,
        b: &mut WriteBatch,
        p: &Person,
        user: &ObjectUuid,
        matched: &str,
    ) -> Result<(PersonView, Vec<ObjectUuid>)> {
        let granted = self.grant_attachments(b, p, user, false)?;
        let now = self.clock().now();
        let claimed = Person { claimed_by: Some(user.clone()), claimed_at: Some(now), modified_at: now, ..p.clone() };
        b.put_object(Some(p), &claimed)?;
        b.put_log(&self.audit(
            super::auth::Actor::user(user),
            "person_claim",
            Some((&p.uuid, &p.owner_uuid)),
            format!(
                "{user} claimed person {} ({}) by {matched}; read access to {} objects",
                p.uuid,
                p.name,
                granted.len()
            ),
            json!({"matched": matched, "granted": granted}),
        ))?;
        Ok((view(&claimed), granted))
    }

    /// At login: claims every unclaimed record naming the user's ORCID iD or verified email.
    pub fn auto_claim_persons(&self, user: &crate::store::records::User) -> Result<Vec<PersonView>> {
        if !user.is_active || user.redirect_to_user_uuid.is_some() || user.uuid.kind() != ObjectKind::User {
            return Ok(Vec::new());
        }
        let orcid = user.orcid.clone();
        let email = user.email.clone().filter(|_| user.email_verified).map(|e| e.trim().to_lowercase());
        let mut candidates: Vec<(ObjectUuid, &'static str)> = Vec::new();
        if let Some(o) = &orcid {
            candidates.extend(
                self.store().persons_by(TreeId::PersonOrcids, o, false, 1000)?.into_iter().map(|u| (u, "orcid")),
            );
        }
        if let Some(e) = &email {
            candidates.extend(
                self.store().persons_by(TreeId::PersonEmails, e, false, 1000)?.into_iter().map(|u| (u, "email")),
            );
        }
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let _w = self.write_lock()?;
        let mut b = WriteBatch::new();
        let mut out: Vec<PersonView> = Vec::new();
        for (u, matched) in candidates {
            if out.iter().any(|v| v.uuid == u) {
                continue;
            }
            let Some(p) = self.store().object::<Person>(&u)? else { continue };
            if p.claimed_by.is_some() || p.merged_into.is_some() {
                continue;
            }
            out.push(self.claim_into(&mut b, &p, &user.uuid, matched)?.0);
        }
        if !b.is_empty() {
            self.store().commit(b)?;
        }
        Ok(out)
    }

    fn claim_view(&self, c: &PersonClaim) -> Result<ClaimView> {
        let p = self.person(&c.person_uuid)?;
        let u = self.store().user(&c.claimant_uuid)?;
        Ok(ClaimView {
            uuid: c.uuid.clone(),
            state: c.state,
            person: view(&p),
            claimant_uuid: c.claimant_uuid.clone(),
            claimant_name: u
                .as_ref()
                .map(|u| format!("{} {}", u.first_name, u.last_name).trim().to_string())
                .unwrap_or_default(),
            claimant_email: u
                .and_then(|u| u.email.map(|e| if u.email_verified { e } else { format!("{e} (not verified)") })),
            reason: c.reason.clone(),
            created_at: crate::clock::format_time(c.created_at),
            decided_at: c.decided_at.map(crate::clock::format_time),
        })
    }

    /// The records the caller claimed.
    pub fn claimed_persons(&self, caller: &Caller) -> Result<Vec<PersonView>> {
        let mut out = Vec::new();
        for u in self.store().persons_by(TreeId::PersonClaimedBy, &caller.uuid().to_string(), false, 1000)? {
            if let Some(p) = self.store().object::<Person>(&u)? {
                out.push(view(&p));
            }
        }
        Ok(out)
    }

    /// The caller's own claims (pending, approved, rejected with the reason).
    pub fn my_claims(&self, caller: &Caller) -> Result<Vec<ClaimView>> {
        self.store().claims_of(caller.uuid())?.iter().map(|c| self.claim_view(c)).collect()
    }

    /// The admin queue: pending claims with the claimant and the record.
    pub fn pending_claims(&self, caller: &Caller) -> Result<Vec<ClaimView>> {
        caller.require_admin()?;
        self.store().claims_in_state(ClaimState::Pending)?.iter().map(|c| self.claim_view(c)).collect()
    }

    fn pending_claim(&self, uuid: &ObjectUuid) -> Result<PersonClaim> {
        let c = self
            .store()
            .claim(uuid)?
            .ok_or_else(|| Error::not_found("claim_not_found", format!("claim {uuid} not found")))?;
        if c.state != ClaimState::Pending {
            let s = serde_json::to_value(c.state).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
            return Err(Error::unprocessable("claim_decided", format!("claim {uuid} was already decided ({s})")));
        }
        Ok(c)
    }

    /// Approves a pending claim (admin): the record's attachments move to the claimant, who can
    /// read every attached object, and the record is retired (kept, marked merged into the user).
    pub fn approve_claim(&self, caller: &Caller, uuid: &ObjectUuid) -> Result<ClaimView> {
        caller.require_admin()?;
        let _w = self.write_lock()?;
        let c = self.pending_claim(uuid)?;
        let p = self.person(&c.person_uuid)?;
        if let Some(by) = p.claimed_by.as_ref().or(p.merged_into.as_ref()) {
            return Err(Error::unprocessable(
                "already_claimed",
                format!("person {} was already claimed (by {by})", p.uuid),
            ));
        }
        let now = self.clock().now();
        let mut b = WriteBatch::new();
        let granted = self.grant_attachments(&mut b, &p, &c.claimant_uuid, true)?;
        let retired = Person {
            claimed_by: Some(c.claimant_uuid.clone()),
            claimed_at: Some(now),
            merged_into: Some(c.claimant_uuid.clone()),
            modified_at: now,
            modified_by_user_uuid: Some(caller.uuid().clone()),
            ..p.clone()
        };
        b.put_object(Some(&p), &retired)?;
        let decided = PersonClaim {
            state: ClaimState::Approved,
            decided_by: Some(caller.uuid().clone()),
            decided_at: Some(now),
            ..c.clone()
        };
        b.put_claim(Some(&c), &decided)?;
        b.put_log(&self.audit(
            caller.actor(),
            "person_claim_approved",
            Some((&c.uuid, &p.uuid)),
            format!(
                "approved claim {} of {} on person {} ({}); {} attachments moved",
                c.uuid,
                c.claimant_uuid,
                p.uuid,
                p.name,
                granted.len()
            ),
            json!({"person_uuid": p.uuid, "claimant_uuid": c.claimant_uuid, "granted": granted}),
        ))?;
        self.store().commit(b)?;
        self.claim_view(&decided)
    }

    /// Rejects a pending claim (admin) with a reason the claimant sees.
    pub fn reject_claim(&self, caller: &Caller, uuid: &ObjectUuid, reason: &str) -> Result<ClaimView> {
        caller.require_admin()?;
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(Error::unprocessable("missing_reason", "a rejection needs a reason (the claimant sees it)"));
        }
        if reason.chars().count() > MAX_REASON {
            return Err(Error::unprocessable(
                "invalid_reason",
                format!("reason is longer than {MAX_REASON} characters"),
            ));
        }
        let _w = self.write_lock()?;
        let c = self.pending_claim(uuid)?;
        let now = self.clock().now();
        let decided = PersonClaim {
            state: ClaimState::Rejected,
            reason: Some(reason.to_string()),
            decided_by: Some(caller.uuid().clone()),
            decided_at: Some(now),
            ..c.clone()
        };
        let mut b = WriteBatch::new();
        b.put_claim(Some(&c), &decided)?;
        b.put_log(&self.audit(
            caller.actor(),
            "person_claim_rejected",
            Some((&c.uuid, &c.person_uuid)),
            format!("rejected claim {} of {} on person {}: {reason}", c.uuid, c.claimant_uuid, c.person_uuid),
            json!({"person_uuid": c.person_uuid, "claimant_uuid": c.claimant_uuid, "reason": reason}),
        ))?;
        self.store().commit(b)?;
        self.claim_view(&decided)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orcid_check_digits() {
        // ORCID's own examples.
        for ok in [
            "0000-0002-1825-0097",
            "0000-0001-5109-3700",
            "0000-0002-1694-233X",
            "https://orcid.org/0000-0002-1694-233x",
        ] {
            assert!(check_orcid(ok).is_ok(), "{ok}: {:?}", check_orcid(ok));
        }
        assert_eq!(check_orcid(" 0000-0002-1694-233x ").ok().as_deref(), Some("0000-0002-1694-233X"));
        for bad in [
            "0000-0002-1825-0098",
            "0000-0002-1694-2330",
            "0000000218250097",
            "0000-0002-1825-009",
            "abcd-0002-1825-0097",
            "0000-0002-1825-0097-1",
            "",
        ] {
            assert!(check_orcid(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn email_lists_are_checked_and_deduplicated_as_addresses() {
        assert!(check_emails(&["a@b.org".into(), " A@B.org ".into()]).is_err());
        assert!(check_emails(&["not-an-email".into()]).is_err());
        assert_eq!(check_emails(&["X@Y.org".into()]).ok(), Some(vec!["x@y.org".to_string()]));
    }
}
