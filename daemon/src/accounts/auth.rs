//! Authentication: from a presented token to a [`Caller`]. The one path every request takes.
//!
//! A token is accepted when its uuid names a stored row, the SHA-256 of its secret equals the
//! stored hash (compared in constant time), it has not expired, and its user's redirect chain ends
//! at an existing user (the caller is then that user: a merged-away account's tokens act as the
//! account it was merged into). Only the hops [`Accounts::redirect_hop`] allows are followed: a
//! peer's redirect of its user out of its own cluster is not (see `redirects`). The system root
//! token acts as the system user. An anonymous session's token (see [`super::anonymous`]) is
//! accepted when its session is live; its caller is a principal that owns only the session's own
//! collections.
//!
//! Acting as a managed profile (DESIGN §4.8) is decided here too, by [`Accounts::act_as`] alone:
//! the request's credentials stay the parent's, and the [`Caller`] carries the profile as its
//! effective user and the parent as [`Caller::acting_parent`]. Everything downstream (ownership,
//! `modified_by_user_uuid`, permission checks, the audit log) reads the caller, so no handler can
//! forget that a request acts as a profile.

use super::Accounts;
use super::error::{Error, Result};
use crate::store::records::{TokenRow, User};
use federation_proto::{AnonymousToken, ClusterId, ObjectKind, ObjectUuid, Scopes, SecretHash, Token};

/// Who is making a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The effective user (after following redirects; while acting as a managed profile, the
    /// profile).
    pub user: User,
    /// The token row used, if any (none for the system root token). While acting, the parent's.
    pub token: Option<TokenRow>,
    /// What the token may do.
    pub scopes: Scopes,
    /// Whether this is the system root token (never while acting as a profile).
    pub is_system_root: bool,
    /// While acting as a managed profile: the account whose credentials act (the profile's
    /// parent, or an admin). Only [`Accounts::act_as`] sets it.
    pub acting_parent: Option<User>,
}

/// Who an audit entry says acted: the effective user and, while acting as a managed profile, the
/// account behind it. Built from a [`Caller`] wherever there is one, so that no entry written
/// during a request can leave the parent out.
#[derive(Debug, Clone, Copy, Default)]
pub struct Actor<'a> {
    user: Option<&'a ObjectUuid>,
    acting_parent: Option<&'a ObjectUuid>,
}

impl<'a> Actor<'a> {
    /// Nobody (the system, a peer's notice).
    pub fn nobody() -> Actor<'a> {
        Actor::default()
    }

    /// A user acting with its own credentials outside a request's caller (a password login, a
    /// migration grant at login).
    pub fn user(uuid: &'a ObjectUuid) -> Actor<'a> {
        Actor { user: Some(uuid), acting_parent: None }
    }

    /// The effective user.
    pub fn user_uuid(&self) -> Option<&'a ObjectUuid> {
        self.user
    }

    /// The account acting as a profile, if any.
    pub fn acting_parent_uuid(&self) -> Option<&'a ObjectUuid> {
        self.acting_parent
    }
}

impl<'a> From<&'a Caller> for Actor<'a> {
    fn from(c: &'a Caller) -> Actor<'a> {
        Actor { user: Some(c.uuid()), acting_parent: c.acting_parent.as_ref().map(|p| &p.uuid) }
    }
}

impl Caller {
    /// Who the audit log says acted.
    pub fn actor(&self) -> Actor<'_> {
        Actor::from(self)
    }

    /// Whether this caller acts as a managed profile.
    pub fn is_acting(&self) -> bool {
        self.acting_parent.is_some()
    }

    /// Admin power: an admin user or the system root token.
    pub fn is_admin(&self) -> bool {
        self.is_system_root || (self.user.is_admin && self.user.is_active)
    }

    /// The acting user's uuid.
    pub fn uuid(&self) -> &ObjectUuid {
        &self.user.uuid
    }

    /// Whether this is an anonymous session (then [`Caller::uuid`] is the session's uuid, and it
    /// may use only the collections that session owns). Told by the uuid's kind, so that no caller
    /// can be built anonymous by one field and a user by another.
    pub fn is_anonymous(&self) -> bool {
        self.user.uuid.kind() == ObjectKind::AnonymousSession
    }

    /// Refuses inactive users.
    pub fn require_active(&self) -> Result<()> {
        if self.is_system_root || self.user.is_active {
            Ok(())
        } else {
            Err(Error::forbidden("inactive", "this account is not active"))
        }
    }

    /// Refuses non-admins.
    pub fn require_admin(&self) -> Result<()> {
        if self.is_admin() { Ok(()) } else { Err(Error::forbidden("admin_required", "must be an admin")) }
    }
}

/// How a presented token relates to this cluster.
pub enum Presented {
    /// Issued here.
    Local(Token),
    /// Issued by another cluster (validated through the federation).
    Remote(Token, ClusterId),
    /// An anonymous session's token, issued here.
    Anonymous(AnonymousToken),
}

/// `raw` as an anonymous session's token, if it is one. A token whose uuid is not an anonymous
/// session's (`v2/<cluster>-an0ns-…`) is told apart by those five characters, without the parse
/// (whose refusal formats a message every request would pay for).
pub fn anonymous_token(raw: &str) -> Option<AnonymousToken> {
    const INFIX_AT: usize = "v2/".len() + "zzzzz-".len();
    let infix = ObjectKind::AnonymousSession.infix();
    if raw.get(INFIX_AT..INFIX_AT + infix.len()) != Some(infix) {
        return None;
    }
    raw.parse().ok()
}

impl Accounts {
    /// Parses a presented token string; anything malformed is 401. Anonymous sessions are only good
    /// where they were made, so another cluster's anonymous token is 401 too.
    pub fn parse_presented(&self, raw: &str) -> Result<Presented> {
        if let Some(anon) = anonymous_token(raw) {
            if anon.uuid().cluster() != self.cluster() {
                return Err(invalid_token());
            }
            return Ok(Presented::Anonymous(anon));
        }
        let token: Token = raw.parse().map_err(|_| invalid_token())?;
        let issuer = token.uuid().cluster().clone();
        if &issuer == self.cluster() { Ok(Presented::Local(token)) } else { Ok(Presented::Remote(token, issuer)) }
    }

    /// Whether `raw` is the configured system root token.
    pub fn is_system_root_token(&self, raw: &str) -> bool {
        match &self.settings.system_root_token {
            Some(h) => h.ct_eq(&SecretHash::of(raw)),
            None => false,
        }
    }

    /// The caller for the system root token.
    pub fn system_root_caller(&self) -> Result<Caller> {
        let user = self
            .store
            .user(&self.system_user)?
            .ok_or_else(|| Error::unauthorized("no_system_user", "system user missing"))?;
        Ok(Caller { user, token: None, scopes: Scopes::all(), is_system_root: true, acting_parent: None })
    }

    /// Authenticates a token issued by this cluster, presented here in its plain form or salted
    /// for this cluster (as Arvados accepts it: admin scripts salt a token for every cluster they
    /// talk to, its issuer included).
    pub fn authenticate_local(&self, token: &Token) -> Result<Caller> {
        let row = self.store.token(token.uuid())?.ok_or_else(invalid_token)?;
        let presented = token.secret_hash();
        let salted_here = row.salted_hashes.get(self.cluster()).is_some_and(|h| h.ct_eq(&presented));
        if !row.secret_hash.ct_eq(&presented) && !salted_here {
            return Err(invalid_token());
        }
        self.caller_for_row(row)
    }

    /// Authenticates a token of ours that a peer `audience` presents salted for itself (or that a
    /// client presents salted for `audience` on the `?remote=` forms).
    pub fn authenticate_salted(&self, token: &Token, audience: &ClusterId) -> Result<Caller> {
        let row = self.store.token(token.uuid())?.ok_or_else(invalid_token)?;
        let ok = row.salted_hashes.get(audience).is_some_and(|h| h.ct_eq(&token.secret_hash()));
        if !ok {
            return Err(invalid_token());
        }
        self.caller_for_row(row)
    }

    fn caller_for_row(&self, row: TokenRow) -> Result<Caller> {
        if let Some(exp) = row.expires_at
            && exp <= self.clock.now()
        {
            return Err(Error::unauthorized("token_expired", "token has expired"));
        }
        let user = self.store.user(&row.user_uuid)?.ok_or_else(invalid_token)?;
        let user = self.follow_redirects(user)?;
        Ok(Caller { user, scopes: row.scopes.clone(), token: Some(row), is_system_root: false, acting_parent: None })
    }

    /// The caller of a request: `caller` (as its credentials authenticated it) after the profile
    /// switch its browser session made, if any, and then the `X-Hearth-Act-As` profile, if any.
    /// Both go through [`Accounts::act_as`]. A session switched to one profile cannot name another.
    pub fn effective_caller(&self, caller: Caller, act_as: Option<&ObjectUuid>) -> Result<Caller> {
        let caller = match caller.token.as_ref().map(|t| self.store().profile_switch(&t.uuid)).transpose()?.flatten() {
            Some(switch) => self.act_as(caller, &switch.profile_uuid)?,
            None => caller,
        };
        match act_as {
            Some(p) if caller.is_acting() && caller.uuid() != p => Err(profile_cannot_act_as()),
            Some(p) if !caller.is_acting() => self.act_as(caller, p),
            _ => Ok(caller),
        }
    }

    /// `caller` acting as managed profile `profile`: the one rule of who may act as whom.
    ///
    /// The credentials must be unscoped (`["all"]`), of an active account that is not itself a
    /// profile nor acting as one; the profile must be managed by the caller's user, or the caller
    /// must be an admin and the profile one of ours. A profile cached from a peer counts only as
    /// its parent's home lists it (its `managed_by` is written from that list alone), and only for
    /// the parent, a user of that same home. Anything else is 403, and tells a non-admin nothing
    /// about whether the uuid exists.
    pub fn act_as(&self, caller: Caller, profile: &ObjectUuid) -> Result<Caller> {
        if caller.is_acting() || caller.user.managed_by.is_some() {
            return Err(profile_cannot_act_as());
        }
        if !caller.scopes.is_all() {
            return Err(Error::forbidden(
                "act_as_scoped_token",
                "acting as a managed profile needs a token scoped [\"all\"]; this token is scoped",
            ));
        }
        caller.require_active()?;
        let found = self.store().user(profile)?;
        let permitted = found.as_ref().is_some_and(|p| match &p.managed_by {
            Some(parent) if parent == caller.uuid() => {
                !p.cached_from_home || (caller.user.cached_from_home && p.uuid.cluster() == parent.cluster())
            }
            Some(_) => caller.is_admin() && !p.cached_from_home,
            None => false,
        });
        let Some(p) = found.filter(|_| permitted) else {
            return Err(self.act_as_refusal(&caller, profile)?);
        };
        Ok(Caller {
            user: p,
            token: caller.token,
            scopes: caller.scopes,
            is_system_root: false,
            acting_parent: Some(caller.user),
        })
    }

    /// Why `caller` may not act as `profile`: in detail for admins (who may see every user), in
    /// one answer for everyone else.
    fn act_as_refusal(&self, caller: &Caller, profile: &ObjectUuid) -> Result<Error> {
        if !caller.is_admin() {
            return Ok(Error::forbidden(
                "act_as_not_permitted",
                format!(
                    "X-Hearth-Act-As: {profile} is not one of your managed profiles; only a profile's parent \
                     (or an admin) may act as it"
                ),
            ));
        }
        Ok(match self.store().user(profile)? {
            None => Error::forbidden("act_as_not_permitted", format!("X-Hearth-Act-As: no user {profile} here")),
            Some(u) if u.managed_by.is_none() => Error::forbidden(
                "act_as_not_permitted",
                format!("X-Hearth-Act-As: {profile} is not a managed profile; only managed profiles can be acted as"),
            ),
            Some(_) => Error::forbidden(
                "act_as_not_permitted",
                format!(
                    "X-Hearth-Act-As: {profile} is a profile of another cluster; only its parent may act as it here"
                ),
            ),
        })
    }
}

fn profile_cannot_act_as() -> Error {
    Error::forbidden(
        "profile_cannot_act_as",
        "a managed profile cannot act as another profile: switch back to the parent account first",
    )
}

/// The one answer for every unusable token, so that a caller learns nothing about which part failed.
pub fn invalid_token() -> Error {
    Error::unauthorized("invalid_token", "Not logged in: invalid or expired API token")
}
