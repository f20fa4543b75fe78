//! External identities (DESIGN §4.10): OpenID Connect logins, keyed on the provider's immutable
//! (issuer, subject), never on email.
//!
//! Rules:
//! - A login with an identity logs in to the one account it is linked to. An unknown identity
//!   creates a new account (when the policy allows), never attaches itself to an existing one:
//!   an email that matches another account changes nothing (nOAuth, Grafana CVE-2023-3128).
//! - A provider's email counts as verified only when the provider says `email_verified: true`
//!   **and** the operator marked the provider `trusted_email` (Keycloak CVE-2023-0105).
//! - Linking runs from a logged-in session and attaches the identity to that account; an identity
//!   already linked to another account is refused, naming it. Unlinking keeps another way to log
//!   in: a password or another identity.
//! - The subject of a provider whose subjects are ORCID iDs is the account's `orcid`, which
//!   travels in the user records peers cache.
//!
//! The token's signature and claims were checked by `crate::oidc` before anything here runs.

use super::error::{Error, ErrorKind, Result};
use super::users::{LoginOutcome, check_username, normalize_email};
use super::{Accounts, Caller};
use crate::store::WriteBatch;
use crate::store::records::{Identity, IdentityClaims, TokenKind, User};
use federation_proto::notice::Notice;
use federation_proto::{ObjectKind, ObjectUuid};
use serde_json::{Value, json};

/// A configured provider, as these rules need it.
#[derive(Debug, Clone)]
pub struct ProviderInfo {
    /// The configured id (`/login/oidc/<id>/…`).
    pub id: String,
    /// The issuer its discovery document names.
    pub issuer: String,
    /// Its name for people.
    pub display_name: String,
    /// Its `email_verified: true` counts as verified here.
    pub trusted_email: bool,
    /// Its subjects are ORCID iDs.
    pub orcid: bool,
}

/// A person as a checked ID token names them.
#[derive(Debug, Clone)]
pub struct VerifiedIdentity {
    /// `sub`.
    pub subject: String,
    /// The other claims, as sent.
    pub claims: IdentityClaims,
}

/// Longest subject accepted (OpenID Connect allows 255 ASCII characters).
const MAX_SUBJECT_LEN: usize = 255;
/// Longest claim kept.
const MAX_CLAIM_LEN: usize = 256;

/// Whether `s` is an ORCID iD: four groups of four digits, the last character a digit or `X`.
pub fn is_orcid_id(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 19
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 9 | 14 => *c == b'-',
            18 => c.is_ascii_digit() || *c == b'X',
            _ => c.is_ascii_digit(),
        })
}

fn trimmed(v: &Option<String>) -> Option<String> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(|s| s.chars().take(MAX_CLAIM_LEN).collect())
}

impl IdentityClaims {
    /// The claims with blank ones dropped and long ones cut.
    fn tidy(&self) -> IdentityClaims {
        IdentityClaims {
            email: trimmed(&self.email),
            email_verified: self.email_verified,
            name: trimmed(&self.name),
            given_name: trimmed(&self.given_name),
            family_name: trimmed(&self.family_name),
            preferred_username: trimmed(&self.preferred_username),
        }
    }
}

/// The view of `u` as `caller` sees it, listing `identities` when they are shown.
fn view_with<'a>(caller: &Caller, u: &'a User, identities: Option<&[Identity]>) -> super::views::UserView<'a> {
    let v = super::users::user_view_struct_for(caller, u);
    match identities {
        Some(ids) => v.with_identities(ids.iter().map(identity_view).collect()),
        None => v,
    }
}

impl Accounts {
    /// The identities linked to `user`, as the users API shows them.
    pub fn identities_view(&self, user: &ObjectUuid) -> Result<Vec<Value>> {
        Ok(self.store().identities_of(user)?.iter().map(identity_view).collect())
    }

    /// A user as the API shows it to `caller`: with its identities when the caller is that user or
    /// an admin.
    pub fn user_view(&self, caller: &Caller, u: &User) -> Result<Value> {
        Ok(self.user_view_struct(caller, u)?.to_value())
    }

    /// [`Accounts::user_view`] serialized: the answer's bytes, with no JSON map built on the way.
    /// The bytes of an unchanged answer are [remembered](super::views::remembered_answer).
    pub fn user_view_json(&self, caller: &Caller, u: &User) -> Result<Vec<u8>> {
        let identities = self.shown_identities(caller, u)?;
        let shows_managed_by = super::users::sees_managed_by(caller, u);
        super::views::remembered_answer(u, shows_managed_by, identities, |identities| {
            let v = view_with(caller, u, identities);
            let mut out = Vec::with_capacity(1024);
            serde_json::to_writer(&mut out, &v)
                .map_err(|e| Error::new(ErrorKind::Internal, "render", e.to_string()))?;
            Ok(out)
        })
    }

    /// The identities a view of `u` shown to `caller` lists: to the user and to admins, for a user
    /// of this cluster (`None`: none are shown).
    fn shown_identities(&self, caller: &Caller, u: &User) -> Result<Option<Vec<Identity>>> {
        if (caller.is_admin() || caller.uuid() == &u.uuid) && u.uuid.cluster() == self.cluster() {
            return Ok(Some(self.store().identities_of(&u.uuid)?));
        }
        Ok(None)
    }

    fn user_view_struct<'a>(&self, caller: &Caller, u: &'a User) -> Result<super::views::UserView<'a>> {
        Ok(view_with(caller, u, self.shown_identities(caller, u)?.as_deref()))
    }

    /// A login with a checked identity: into the account it is linked to, else (when `create`) a
    /// new account. Issues a token of `kind` and records the login (audit, login notice) in the
    /// same batch as the identity's claims and any new account.
    pub fn oidc_login(
        &self,
        p: &ProviderInfo,
        who: &VerifiedIdentity,
        create: bool,
        kind: TokenKind,
    ) -> Result<LoginOutcome> {
        check_subject(&who.subject)?;
        let claims = who.claims.tidy();
        let _w = self.write_lock()?;
        let now = self.clock().now();
        let mut b = WriteBatch::new();
        let found = self.store().identity(&p.issuer, &who.subject)?;
        let (old, mut user, ident_old) = match found {
            Some(ident) => {
                let linked = self.store().user(&ident.user_uuid)?.ok_or_else(|| {
                    Error::new(ErrorKind::Internal, "identity_dangling", "the identity's account is missing")
                })?;
                let user = self.follow_redirects(linked)?;
                if user.redirect_to_user_uuid.is_some() || user.uuid.cluster() != self.cluster() {
                    let target = user.redirect_to_user_uuid.clone().unwrap_or_else(|| user.uuid.clone());
                    return Err(Error::forbidden(
                        "account_moved",
                        format!(
                            "the account of this {} identity was merged into {target}; log in at its home cluster {}",
                            p.display_name,
                            target.cluster()
                        ),
                    ));
                }
                (user.clone(), user, Some(ident))
            }
            None if !create => {
                return Err(Error::forbidden(
                    "oidc_no_account",
                    format!(
                        "no account here is linked to this {} identity: log in another way and link it from your account page",
                        p.display_name
                    ),
                ));
            }
            None => {
                let user = self.new_oidc_user(p, &claims, now)?;
                b.put_log(&self.audit(
                    super::auth::Actor::user(&user.uuid),
                    "create",
                    Some((&user.uuid, &user.owner_uuid)),
                    format!("created user {} at a first {} login", user.uuid, p.display_name),
                    json!({"new_attributes": super::views::user(&user), "provider": p.id, "issuer": p.issuer, "subject": who.subject}),
                ))?;
                (user.clone(), user, None)
            }
        };
        if !user.is_active {
            return Err(Error::forbidden("inactive", "this account is not active"));
        }
        let ident = Identity {
            issuer: p.issuer.clone(),
            subject: who.subject.clone(),
            provider: p.id.clone(),
            user_uuid: user.uuid.clone(),
            orcid: p.orcid && is_orcid_id(&who.subject),
            claims,
            created_at: ident_old.as_ref().map_or(now, |i| i.created_at),
            last_login_at: Some(now),
        };
        b.put_identity(ident_old.as_ref(), &ident)?;
        if ident.orcid && user.orcid.is_none() {
            user.orcid = Some(ident.subject.clone());
        }
        let details = json!({"provider": p.id, "issuer": p.issuer, "subject": who.subject});
        // A new account is not stored yet: `old` is the row being created (same email and
        // username), so its indexes are written and none deleted.
        let (token, user) = self.login_into(&mut b, &old, user, kind, details)?;
        self.commit_and_signal(b)?;
        Ok(LoginOutcome { token, user })
    }

    fn new_oidc_user(&self, p: &ProviderInfo, c: &IdentityClaims, now: time::OffsetDateTime) -> Result<User> {
        let email = c.email.as_deref().and_then(|e| normalize_email(e).ok());
        let verified = email.is_some() && p.trusted_email && c.email_verified == Some(true);
        let (first, last) = match (&c.given_name, &c.family_name, &c.name) {
            (Some(g), f, _) => (g.clone(), f.clone().unwrap_or_default()),
            (None, Some(f), _) => (String::new(), f.clone()),
            (None, None, Some(n)) => match n.rsplit_once(' ') {
                Some((a, z)) => (a.trim().to_string(), z.trim().to_string()),
                None => (n.clone(), String::new()),
            },
            (None, None, None) => (String::new(), String::new()),
        };
        let base =
            [&c.preferred_username, &c.name, &email.as_ref().and_then(|e| e.split('@').next().map(String::from))]
                .into_iter()
                .flatten()
                .find_map(|s| username_base(s));
        let username = match base {
            Some(b) => self.free_username(&b)?,
            None => None,
        };
        Ok(User {
            email,
            email_verified: verified,
            username,
            first_name: first,
            last_name: last,
            is_active: self.settings().new_users_active,
            home_seq: 1,
            ..User::new(self.new_uuid(ObjectKind::User), self.system_user().clone(), now)
        })
    }

    /// `base`, or `base2`, `base3`, … : the first that no account holds (none after 1000 tries).
    fn free_username(&self, base: &str) -> Result<Option<String>> {
        for n in 1..=1000u32 {
            let name = if n == 1 { base.to_string() } else { format!("{base}{n}") };
            if check_username(&name).is_ok() && self.store().user_by_username(&name)?.is_none() {
                return Ok(Some(name));
            }
        }
        Ok(None)
    }

    /// Links a checked identity to the caller's own account (from a logged-in session). Refused
    /// when another account holds it; linking it again to the same account only refreshes its
    /// claims.
    pub fn link_identity(&self, caller: &Caller, p: &ProviderInfo, who: &VerifiedIdentity) -> Result<Identity> {
        caller.require_active()?;
        check_subject(&who.subject)?;
        if caller.is_system_root || caller.uuid().cluster() != self.cluster() {
            return Err(Error::forbidden(
                "identity_not_local",
                "identities are linked at the account's home cluster, to a person's own account",
            ));
        }
        let _w = self.write_lock()?;
        let old_user = self
            .store()
            .user(caller.uuid())?
            .ok_or_else(|| Error::not_found("not_found", format!("user {} not found", caller.uuid())))?;
        let existing = self.store().identity(&p.issuer, &who.subject)?;
        if let Some(e) = &existing
            && &e.user_uuid != caller.uuid()
        {
            return Err(Error::unprocessable(
                "identity_linked_elsewhere",
                format!(
                    "this {} identity is already linked to another account ({}); unlink it there first",
                    p.display_name, e.user_uuid
                ),
            ));
        }
        let now = self.clock().now();
        let ident = Identity {
            issuer: p.issuer.clone(),
            subject: who.subject.clone(),
            provider: p.id.clone(),
            user_uuid: caller.uuid().clone(),
            orcid: p.orcid && is_orcid_id(&who.subject),
            claims: who.claims.tidy(),
            created_at: existing.as_ref().map_or(now, |i| i.created_at),
            last_login_at: existing.as_ref().and_then(|i| i.last_login_at),
        };
        let mut b = WriteBatch::new();
        b.put_identity(existing.as_ref(), &ident)?;
        b.put_log(&self.audit(
            caller.actor(),
            "identity_linked",
            Some((&old_user.uuid, &old_user.owner_uuid)),
            format!("{} identity {} linked to {}", p.display_name, who.subject, old_user.uuid),
            json!({"provider": p.id, "issuer": p.issuer, "subject": who.subject}),
        ))?;
        if ident.orcid && old_user.orcid.is_none() {
            let user = User { orcid: Some(ident.subject.clone()), ..self.changed(&old_user) };
            b.put_user(Some(&old_user), &user)?;
            self.queue_notice(&mut b, &Notice::UserUpdated { user: self.user_record(&user)? })?;
        }
        self.commit_and_signal(b)?;
        Ok(ident)
    }

    /// Unlinks the caller's identity `subject` of provider `provider` (its configured id or its
    /// issuer; an empty `subject` means the account's only identity of that provider). Refused
    /// when it is the account's last way to log in (no password, no other identity).
    pub fn unlink_identity(&self, caller: &Caller, provider: &str, subject: &str) -> Result<()> {
        caller.require_active()?;
        if caller.token.as_ref().is_some() && !caller.scopes.is_all() {
            return Err(Error::forbidden("scoped_token", "cannot unlink an identity with a scoped token"));
        }
        let _w = self.write_lock()?;
        let mine = self.store().identities_of(caller.uuid())?;
        // The provider by its configured id or its issuer; without a subject, its only identity.
        let matching: Vec<&Identity> = mine
            .iter()
            .filter(|i| {
                (i.provider == provider || i.issuer == provider) && (subject.is_empty() || i.subject == subject)
            })
            .collect();
        let Some(ident) = (if matching.len() == 1 { matching.first().map(|i| (*i).clone()) } else { None }) else {
            return Err(Error::not_found(
                "identity_not_found",
                format!("no {provider} identity {subject} is linked to this account"),
            ));
        };
        let old_user = self
            .store()
            .user(caller.uuid())?
            .ok_or_else(|| Error::not_found("not_found", format!("user {} not found", caller.uuid())))?;
        let others: Vec<&Identity> = mine.iter().filter(|i| *i != &ident).collect();
        if old_user.password_hash.is_none() && others.is_empty() {
            return Err(Error::unprocessable(
                "last_login_method",
                "this identity is the account's only way to log in: set a password or link another identity first",
            ));
        }
        let mut b = WriteBatch::new();
        b.delete_identity(&ident);
        b.put_log(&self.audit(
            caller.actor(),
            "identity_unlinked",
            Some((&old_user.uuid, &old_user.owner_uuid)),
            format!("{} identity {} unlinked from {}", ident.provider, ident.subject, old_user.uuid),
            json!({"provider": ident.provider, "issuer": ident.issuer, "subject": ident.subject}),
        ))?;
        if ident.orcid && old_user.orcid.as_deref() == Some(ident.subject.as_str()) {
            let next = others.iter().find(|i| i.orcid).map(|i| i.subject.clone());
            let user = User { orcid: next, ..self.changed(&old_user) };
            b.put_user(Some(&old_user), &user)?;
            self.queue_notice(&mut b, &Notice::UserUpdated { user: self.user_record(&user)? })?;
        }
        self.commit_and_signal(b)?;
        Ok(())
    }

    /// `u` with its change time and home sequence moved on (for a change peers hear about).
    fn changed(&self, u: &User) -> User {
        User { modified_at: self.clock().now(), home_seq: u.home_seq + 1, ..u.clone() }
    }
}

fn check_subject(s: &str) -> Result<()> {
    if s.is_empty() || s.len() > MAX_SUBJECT_LEN || s.chars().any(char::is_control) {
        return Err(Error::forbidden("oidc_bad_subject", "the provider sent an unusable subject"));
    }
    Ok(())
}

/// A username made from a claim: its ASCII letters and digits, starting with a letter, at most 60.
fn username_base(claim: &str) -> Option<String> {
    let s: String = claim.chars().filter(char::is_ascii_alphanumeric).collect();
    let s = s.trim_start_matches(|c: char| c.is_ascii_digit());
    let s: String = s.chars().take(60).collect::<String>().to_lowercase();
    (!s.is_empty()).then_some(s)
}

/// An identity as the users API shows it.
pub fn identity_view(i: &Identity) -> Value {
    let mut v = json!({"provider": i.provider, "issuer": i.issuer, "subject": i.subject});
    if let Some(e) = &i.claims.email {
        v["email"] = json!(e);
    }
    if let Some(ev) = i.claims.email_verified {
        v["email_verified"] = json!(ev);
    }
    if i.orcid {
        v["orcid"] = json!(i.subject);
    }
    v
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn orcid_ids_and_usernames() {
        assert!(is_orcid_id("0000-0002-1825-0097"));
        assert!(is_orcid_id("0000-0002-1694-233X"));
        assert!(!is_orcid_id("0000-0002-1825-009"));
        assert!(!is_orcid_id("https://orcid.org/0000-0002-1825-0097"));
        assert_eq!(username_base("Ada.Lovelace").as_deref(), Some("adalovelace"));
        assert_eq!(username_base("42 Ada").as_deref(), Some("ada"));
        assert_eq!(username_base("Ωμέγα"), None);
        assert_eq!(username_base("1234"), None);
    }
}
