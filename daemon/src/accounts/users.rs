//! Users: create, read, update, list, passwords and the password login.

use super::bounds::{self, Bound};
use super::error::{Error, ErrorKind, Result};
use super::listing::{ListParams, Plan};
use super::passwords;
use super::{Accounts, Caller, views};
use crate::store::WriteBatch;
use crate::store::records::{TokenKind, User};
use crate::store::scan::Candidates;
use federation_proto::notice::Notice;
use federation_proto::{ClusterId, ObjectKind, ObjectUuid, Token};
use serde_json::{Map, Value, json};

/// Attributes a user may change on itself.
const SELF_FIELDS: &[&str] = &["first_name", "last_name", "prefs"];
/// Attributes only an admin may change.
const ADMIN_FIELDS: &[&str] =
    &["email", "username", "is_active", "is_admin", "email_verified", "redirect_to_user_uuid", "owner_uuid"];
/// Attributes clients send back that are read-only; accepted and ignored when unchanged.
const READ_ONLY: &[&str] = &[
    "uuid",
    "kind",
    "etag",
    "created_at",
    "modified_at",
    "modified_by_user_uuid",
    "modified_by_client_uuid",
    "full_name",
    "identity_url",
    "is_invited",
    "writable_by",
    "can_write",
    "can_manage",
    "last_login_at",
    "home_cluster",
    "managed_by",
    "orcid",
    "identities",
];

/// The bound of each free-form user attribute (others are short strings: see [`bounds`]).
const BOUNDS: &[(&str, Bound)] = &[
    ("first_name", Bound::Chars(bounds::MAX_PERSON_NAME_CHARS)),
    ("last_name", Bound::Chars(bounds::MAX_PERSON_NAME_CHARS)),
    // Read-only, but clients echo it back: first and last name and the space between.
    ("full_name", Bound::Chars(2 * bounds::MAX_PERSON_NAME_CHARS + 1)),
    ("email", Bound::Bytes(bounds::MAX_EMAIL_BYTES)),
    ("username", Bound::Chars(bounds::MAX_USERNAME_CHARS)),
    ("prefs", Bound::Properties),
];

/// What a successful login returns.
#[derive(Debug, Clone)]
pub struct LoginOutcome {
    /// The token to hand to the client (salted for `remote` when one was asked for).
    pub token: Token,
    /// The user logged in.
    pub user: User,
}

pub(crate) fn check_username(u: &str) -> Result<()> {
    let ok = u.len() <= bounds::MAX_USERNAME_CHARS
        && u.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && u.chars().all(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(Error::unprocessable(
            "invalid_username",
            format!(
                "username must start with a letter and contain only letters and digits (at most {})",
                bounds::MAX_USERNAME_CHARS
            ),
        ))
    }
}

/// Trims, lowercases and checks an email address with a real address parser (RFC 5322 rules,
/// as `email_address` implements them), at most 254 characters.
pub fn parse_email(raw: &str) -> std::result::Result<String, String> {
    let e = raw.trim().to_lowercase();
    if e.len() > 254 {
        return Err("email is longer than 254 characters".into());
    }
    if !email_address::EmailAddress::is_valid(&e) {
        return Err(format!("email {e:?} is not an email address"));
    }
    Ok(e)
}

/// A list of strings kept under `key` in a user's prefs (dismissed offers and the like).
pub(crate) fn pref_strings(prefs: &Value, key: &str) -> Vec<String> {
    prefs
        .get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

/// [`parse_email`] with the API's error: 422 `invalid_email`.
pub(crate) fn normalize_email(e: &str) -> Result<String> {
    match parse_email(e) {
        Ok(e) => Ok(e),
        Err(_) => {
            Err(Error::unprocessable("invalid_email", format!("not an email address: {}", bounds::excerpt(e.trim()))))
        }
    }
}

/// Every attribute is known, and within its bound (checked before the writer lock is taken, and
/// again where they are applied).
fn check_user_attrs(attrs: &Map<String, Value>) -> Result<()> {
    for k in attrs.keys() {
        let known =
            SELF_FIELDS.contains(&k.as_str()) || ADMIN_FIELDS.contains(&k.as_str()) || READ_ONLY.contains(&k.as_str());
        if !known {
            return Err(Error::unprocessable(
                "unknown_attribute",
                format!("unknown attribute for user: {}", bounds::excerpt(k)),
            ));
        }
    }
    bounds::check_attrs(attrs, BOUNDS)
}

fn want_str(attrs: &Map<String, Value>, key: &str) -> Result<Option<Option<String>>> {
    match attrs.get(key) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) => Ok(Some(Some(s.clone()))),
        Some(_) => Err(Error::unprocessable("wrong_type", format!("{key} must be a string"))),
    }
}

fn want_bool(attrs: &Map<String, Value>, key: &str) -> Result<Option<bool>> {
    match attrs.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s == "true" => Ok(Some(true)),
        Some(Value::String(s)) if s == "false" => Ok(Some(false)),
        Some(_) => Err(Error::unprocessable("wrong_type", format!("{key} must be a boolean"))),
    }
}

impl Accounts {
    /// `GET users/<uuid>`: self, or anyone for admins (including cached remote users). Merged-away
    /// users are hidden, as in Arvados.
    pub fn get_user(&self, caller: &Caller, uuid: &ObjectUuid) -> Result<Value> {
        let not_found = || Error::not_found("not_found", format!("user {uuid} not found"));
        let u = self.store().user(uuid)?.ok_or_else(not_found)?;
        if u.redirect_to_user_uuid.is_some() {
            return Err(not_found());
        }
        let parent = u.managed_by.as_ref() == Some(caller.uuid());
        if !caller.is_admin() && &u.uuid != caller.uuid() && !parent && !self.can_read(caller, uuid)? {
            return Err(not_found());
        }
        self.user_view(caller, &u)
    }

    /// `GET users`: all users for admins, else the caller and its managed profiles. Merged-away
    /// users are hidden.
    pub fn list_users(&self, caller: &Caller, params: &ListParams) -> Result<Value> {
        let store = self.store();
        let _counts = store.count_snapshot();
        let visible = |u: &User| -> Result<Option<()>> {
            let seen = caller.is_admin() || &u.uuid == caller.uuid() || u.managed_by.as_ref() == Some(caller.uuid());
            Ok((seen && u.redirect_to_user_uuid.is_none()).then_some(()))
        };
        params.check_attributes::<User>(|| {
            for u in store.users() {
                let u = u?;
                if visible(&u)?.is_some() {
                    return Ok(Some(self.user_view(caller, &u)?));
                }
            }
            Ok(None)
        })?;
        let mut plan = params.plan::<User>();
        if !caller.is_admin()
            && !matches!(plan.source, Candidates::Uuids(_) | Candidates::Email(_) | Candidates::Username(_))
        {
            // Others see themselves and their managed profiles: only those are read.
            let mut mine = vec![caller.uuid().clone()];
            mine.extend(store.profiles_of(caller.uuid())?.into_iter().map(|p| p.uuid));
            plan = Plan { source: Candidates::Uuids(mine), ordered: params.uuid_ordered() };
        }
        let known = (caller.is_admin() && params.filters.is_empty()).then(|| store.listed_users() as usize);
        let rows = store.candidate_rows::<User>(&plan.source)?.map(|r| r.map_err(Error::from));
        params.list("arvados#userList", &plan, rows, known, visible, |u, ()| self.user_view(caller, u))
    }

    /// `POST users` (admin).
    pub fn create_user(&self, caller: &Caller, attrs: &Map<String, Value>) -> Result<Value> {
        caller.require_admin()?;
        check_user_attrs(attrs)?;
        let _w = self.write_lock()?;
        let now = self.clock().now();
        let mut user = User {
            modified_by_user_uuid: Some(caller.uuid().clone()),
            is_active: self.settings().new_users_active,
            home_seq: 1,
            ..User::new(self.new_uuid(ObjectKind::User), self.system_user().clone(), now)
        };
        self.apply_user_attrs(&mut user, attrs, true)?;
        if attrs.contains_key("uuid") {
            return Err(Error::unprocessable("read_only", "uuid cannot be set"));
        }
        let mut b = WriteBatch::new();
        b.put_user(None, &user)?;
        b.put_log(&self.audit(
            caller.actor(),
            "create",
            Some((&user.uuid, &user.owner_uuid)),
            format!("created user {}", user.uuid),
            json!({"new_attributes": views::user(&user)}),
        ))?;
        self.store().commit(b)?;
        Ok(views::user(&user))
    }

    /// `PUT users/<uuid>`: self may change names and prefs; admins also email, username, flags
    /// and the redirect.
    pub fn update_user(&self, caller: &Caller, uuid: &ObjectUuid, attrs: &Map<String, Value>) -> Result<Value> {
        caller.require_active()?;
        check_user_attrs(attrs)?;
        let _w = self.write_lock()?;
        let not_found = || Error::not_found("not_found", format!("user {uuid} not found"));
        let old = self.store().user(uuid)?.ok_or_else(not_found)?;
        if old.redirect_to_user_uuid.is_some() && !caller.is_admin() {
            return Err(not_found());
        }
        let is_self = &old.uuid == caller.uuid();
        if !caller.is_admin() {
            if !is_self {
                return Err(not_found());
            }
            for k in attrs.keys() {
                if ADMIN_FIELDS.contains(&k.as_str()) {
                    let unchanged = views::user(&old).get(k) == attrs.get(k);
                    if !unchanged {
                        return Err(Error::forbidden("admin_only_field", format!("only an admin may change {k}")));
                    }
                }
            }
        }
        if old.uuid.cluster() != self.cluster() {
            return self.update_remote_user_here(caller, &old, attrs);
        }
        let mut user = old.clone();
        self.apply_user_attrs(&mut user, attrs, caller.is_admin())?;
        if old.managed_by.is_some() {
            check_profile_fields(&old, &user)?;
        }
        user.modified_at = self.clock().now();
        user.modified_by_user_uuid = Some(caller.uuid().clone());
        user.home_seq += 1;
        let mut b = WriteBatch::new();
        b.put_user(Some(&old), &user)?;
        b.put_log(&self.audit(
            caller.actor(),
            "update",
            Some((&user.uuid, &user.owner_uuid)),
            format!("updated user {}", user.uuid),
            json!({"old_attributes": views::user(&old), "new_attributes": views::user(&user)}),
        ))?;
        if let Some(parent) = &user.managed_by {
            // The parent's record lists its profiles' names: peers learn the change from it too.
            let profiles: Vec<User> = self
                .store()
                .profiles_of(parent)?
                .into_iter()
                .map(|p| if p.uuid == user.uuid { user.clone() } else { p })
                .collect();
            self.parent_changed(&mut b, parent, &profiles)?;
        }
        let record = self.user_record(&user)?;
        let notice = if user.redirect_to_user_uuid.is_some() && old.redirect_to_user_uuid != user.redirect_to_user_uuid
        {
            Notice::UserRedirected { user: record }
        } else {
            Notice::UserUpdated { user: record }
        };
        self.queue_notice(&mut b, &notice)?;
        self.commit_and_signal(b)?;
        Ok(views::user(&user))
    }

    /// `PUT users/<uuid>` for a cached remote user: only its home changes what it is, but an admin
    /// may give it a local username (shell logins here use it; Arvados allows it too). Sending other
    /// fields unchanged is accepted. Its home never hears of it and its notices never undo it.
    /// The writer lock must be held.
    fn update_remote_user_here(&self, caller: &Caller, old: &User, attrs: &Map<String, Value>) -> Result<Value> {
        let home = old.uuid.cluster();
        let view = views::user(old);
        for (k, v) in attrs {
            let unchanged = READ_ONLY.contains(&k.as_str()) || view.get(k) == Some(v);
            if k != "username" && !unchanged {
                return Err(Error::forbidden(
                    "remote_user",
                    format!(
                        "only the user's home cluster {home} may change {k} of a remote user (admins here may set its username)"
                    ),
                ));
            }
        }
        let wanted = match want_str(attrs, "username")? {
            Some(v) if v.as_deref() != old.shown_username() => v,
            _ => return Ok(view),
        };
        if !caller.is_admin() {
            return Err(Error::forbidden("admin_only_field", "only an admin may change username"));
        }
        if old.redirect_to_user_uuid.is_some() {
            return Err(Error::unprocessable("merged_user", "this account was merged into another"));
        }
        if let Some(name) = &wanted {
            check_username(name)?;
            if let Some(holder) = self.store().user_by_username(name)?
                && holder.uuid != old.uuid
            {
                return Err(Error::unprocessable("username_taken", format!("username {name} is already in use")));
            }
        }
        let mut user = old.clone();
        user.local_username = wanted;
        user.modified_at = self.clock().now();
        user.modified_by_user_uuid = Some(caller.uuid().clone());
        let mut b = WriteBatch::new();
        b.put_user(Some(old), &user)?;
        b.put_log(&self.audit(
            caller.actor(),
            "update",
            Some((&user.uuid, &user.owner_uuid)),
            format!("local username of remote user {} set", user.uuid),
            json!({"old_attributes": {"username": old.shown_username()}, "new_attributes": {"username": user.shown_username()}}),
        ))?;
        self.store().commit(b)?;
        Ok(views::user(&user))
    }

    fn apply_user_attrs(&self, user: &mut User, attrs: &Map<String, Value>, admin: bool) -> Result<()> {
        check_user_attrs(attrs)?;
        if let Some(v) = attrs.get("managed_by")
            && v != &json!(user.managed_by)
        {
            return Err(Error::unprocessable(
                "read_only",
                format!(
                    "managed_by cannot be set here (not {v}): profiles are made with POST /hearth/v1/profiles and \
                     become ordinary accounts with POST /hearth/v1/profiles/<uuid>/hand_over"
                ),
            ));
        }
        if let Some(v) = want_str(attrs, "first_name")? {
            user.first_name = v.unwrap_or_default();
        }
        if let Some(v) = want_str(attrs, "last_name")? {
            user.last_name = v.unwrap_or_default();
        }
        if let Some(p) = attrs.get("prefs") {
            if !p.is_object() {
                return Err(Error::unprocessable("wrong_type", "prefs must be an object"));
            }
            user.prefs = p.clone();
        }
        if !admin {
            return Ok(());
        }
        if let Some(v) = want_str(attrs, "email")? {
            let new = v.map(|e| normalize_email(&e)).transpose()?;
            if new != user.email {
                // A changed address is an unverified address (CVE-2023-0105's lesson), unless the same
                // request says otherwise.
                user.email_verified = false;
            }
            user.email = new;
        }
        if let Some(v) = want_str(attrs, "username")? {
            if let Some(name) = &v {
                check_username(name)?;
                if let Some(holder) = self.store().user_by_username(name)?
                    && holder.uuid != user.uuid
                {
                    return Err(Error::unprocessable("username_taken", format!("username {name} is already in use")));
                }
            }
            user.username = v;
        }
        if let Some(b) = want_bool(attrs, "is_active")? {
            user.is_active = b;
        }
        if let Some(b) = want_bool(attrs, "is_admin")? {
            user.is_admin = b;
        }
        if let Some(b) = want_bool(attrs, "email_verified")? {
            user.email_verified = b;
        }
        if let Some(v) = want_str(attrs, "redirect_to_user_uuid")? {
            let target = v
                .map(|s| {
                    s.parse::<ObjectUuid>()
                        .map_err(|_| Error::unprocessable("invalid_uuid", "redirect_to_user_uuid is not a user uuid"))
                })
                .transpose()?;
            if let Some(t) = &target {
                if t.kind() != ObjectKind::User {
                    return Err(Error::unprocessable("invalid_uuid", "redirect_to_user_uuid is not a user uuid"));
                }
                if t == &user.uuid {
                    return Err(Error::unprocessable("redirect_to_self", "a user cannot redirect to itself"));
                }
            }
            user.redirect_to_user_uuid = target;
        }
        if let Some(v) = want_str(attrs, "owner_uuid")?
            && let Some(s) = v
        {
            user.owner_uuid =
                s.parse().map_err(|_| Error::unprocessable("invalid_uuid", "owner_uuid is not a uuid"))?;
        }
        Ok(())
    }

    /// `POST /hearth/v1/users/<uuid>/password`: the user itself or an admin. Runs argon2: call it
    /// off the async runtime.
    pub fn set_password(&self, caller: &Caller, uuid: &ObjectUuid, password: &str) -> Result<()> {
        caller.require_active()?;
        if !caller.is_admin() && caller.uuid() != uuid {
            return Err(Error::forbidden("not_yours", "only the user or an admin may set a password"));
        }
        if caller.token.as_ref().is_some_and(|_| !caller.scopes.is_all()) {
            return Err(Error::forbidden("scoped_token", "cannot set a password with a scoped token"));
        }
        if self.store().user(uuid)?.is_some_and(|u| u.managed_by.is_some()) {
            return Err(profile_has_no_password(uuid));
        }
        passwords::check_new_password(password)?;
        let owned = password.to_owned();
        let hash = self.hash_gate.run(move || passwords::hash_password(&owned))?;
        let _w = self.write_lock()?;
        let old =
            self.store().user(uuid)?.ok_or_else(|| Error::not_found("not_found", format!("user {uuid} not found")))?;
        if old.uuid.cluster() != self.cluster() {
            return Err(Error::unprocessable("remote_user", "a remote user's password is set at its home cluster"));
        }
        if old.redirect_to_user_uuid.is_some() {
            return Err(Error::unprocessable("merged_user", "this account was merged into another"));
        }
        if old.managed_by.is_some() {
            return Err(profile_has_no_password(uuid));
        }
        let mut user = old.clone();
        user.password_hash = Some(hash);
        user.modified_at = self.clock().now();
        let mut b = WriteBatch::new();
        b.put_user(Some(&old), &user)?;
        b.put_log(&self.audit(
            caller.actor(),
            "password",
            Some((&user.uuid, &user.owner_uuid)),
            format!("password set for {}", user.uuid),
            json!({}),
        ))?;
        self.store().commit(b)?;
        Ok(())
    }

    /// Finds the local account a login name (username or email) means. Merged-away accounts are
    /// returned as they are (callers decide what to say); an email shared by several live local
    /// accounts is ambiguous and refused.
    pub fn find_login_account(&self, login: &str) -> Result<Option<User>> {
        match self.resolve_login(login)? {
            LoginTarget::Account(u) => Ok(Some(*u)),
            LoginTarget::Unknown => Ok(None),
            LoginTarget::Ambiguous => Err(ambiguous_login()),
        }
    }

    /// What a login name means: the username (trimmed) or the email (trimmed, lowercased) of a
    /// local account.
    fn resolve_login(&self, login: &str) -> Result<LoginTarget> {
        let login = login.trim();
        if !login.contains('@') {
            let local = |u: &User| u.uuid.cluster() == self.cluster() && !u.cached_from_home;
            if let Some(u) = self.store().user_by_username(login)? {
                return Ok(if local(&u) { LoginTarget::Account(Box::new(u)) } else { LoginTarget::Unknown });
            }
            // A username a merge freed and nobody has taken since still names the merged-away
            // account, so that its login leads to where the account went, as its email does.
            return Ok(match self.store().former_holder_of(login)? {
                Some(u) if local(&u) && u.redirect_to_user_uuid.is_some() => LoginTarget::Account(Box::new(u)),
                _ => LoginTarget::Unknown,
            });
        }
        let Ok(email) = normalize_email(login) else {
            return Ok(LoginTarget::Unknown);
        };
        let local: Vec<User> =
            self.store().users_by_email(&email)?.into_iter().filter(|u| u.uuid.cluster() == self.cluster()).collect();
        let live: Vec<&User> = local.iter().filter(|u| u.redirect_to_user_uuid.is_none()).collect();
        // An account that cannot log in with a password (one made by an OpenID Connect login, say)
        // does not make an email ambiguous for the one that can.
        let with_password: Vec<&User> = live.iter().copied().filter(|u| u.password_hash.is_some()).collect();
        let candidates = if live.len() > 1 && with_password.len() == 1 { with_password } else { live };
        let mut live = candidates.into_iter();
        Ok(match (live.next(), live.next()) {
            (Some(_), Some(_)) => LoginTarget::Ambiguous,
            (Some(u), None) => LoginTarget::Account(Box::new(u.clone())),
            (None, _) => local.into_iter().next().map_or(LoginTarget::Unknown, |u| LoginTarget::Account(Box::new(u))),
        })
    }

    /// Password login. `source` is the client's address (for throttling). Runs argon2: call it off
    /// the async runtime. With `remote`, the token returned is salted for that peer.
    ///
    /// The login name is resolved to its account first (a cheap store read), so that every form of
    /// it (username, email in any case) counts against one counter per account. Then the attempt
    /// takes its slot under that counter and the source's before argon2 runs; at the limit it is
    /// refused without hashing. Every attempt that gets a slot costs exactly one verification: an
    /// unknown, ambiguous or password-less login is checked against the dummy hash (a name with no
    /// account is counted under that name, as typed but trimmed, emails lowercased).
    pub fn login(
        &self,
        login: &str,
        password: &str,
        source: &str,
        remote: Option<&ClusterId>,
        kind: TokenKind,
    ) -> Result<LoginOutcome> {
        if let Some(r) = remote
            && !self.settings().peers.contains(r)
        {
            return Err(Error::bad_request("invalid_remote", format!("remote {r} is not a peer of this cluster")));
        }
        bounds::check_bytes("login", login.trim(), bounds::MAX_LOGIN_BYTES)?;
        let target = self.resolve_login(login)?;
        let account_key = match &target {
            LoginTarget::Account(u) => Some(format!("acct:{}", u.uuid)),
            LoginTarget::Unknown | LoginTarget::Ambiguous => None,
        };
        // A name with no account is counted under the name itself, so that its counter fills as an
        // account's would and the throttle does not tell which names exist.
        let name_key = || {
            let name = login.trim();
            if name.contains('@') { format!("name:{}", name.to_lowercase()) } else { format!("name:{name}") }
        };
        let keys = [format!("src:{source}"), account_key.clone().unwrap_or_else(name_key)];
        let slot = self.throttle.reserve(&keys, self.clock().unix())?;
        let stored = match &target {
            LoginTarget::Account(u) => u.password_hash.clone(),
            LoginTarget::Unknown | LoginTarget::Ambiguous => None,
        };
        let owned = password.to_owned();
        let ok = self.hash_gate.run(move || passwords::verify_password(&owned, stored.as_deref()));
        let user = match (target, ok, account_key) {
            // Checked against the dummy hash like any account without a password, then told why.
            (LoginTarget::Account(u), _, _) if u.managed_by.is_some() => return Err(profile_cannot_log_in(&u)),
            (LoginTarget::Account(u), true, Some(key)) => {
                slot.succeeded(&key);
                *u
            }
            (LoginTarget::Ambiguous, _, _) => return Err(ambiguous_login()),
            _ => return Err(Error::unauthorized("invalid_login", "invalid login or password")),
        };
        if let Some(target) = &user.redirect_to_user_uuid {
            let mut e = Error::new(
                ErrorKind::Forbidden,
                "account_moved",
                format!("this account was merged into {target}; log in at its home cluster {}", target.cluster()),
            );
            e.retry_after = None;
            return Err(e);
        }
        if !user.is_active {
            return Err(Error::forbidden("inactive", "this account is not active"));
        }
        let (token, user) = self.record_login(&user, kind)?;
        let token = match remote {
            Some(r) => token.salt_for(r).map_err(|e| Error::new(ErrorKind::Internal, "salt", e.to_string()))?,
            None => token,
        };
        Ok(LoginOutcome { token, user })
    }

    /// Issues a login token for `user` and records the login (last login, sequence, audit) in one batch.
    pub fn record_login(&self, user: &User, kind: TokenKind) -> Result<(Token, User)> {
        let _w = self.write_lock()?;
        let old = self
            .store()
            .user(&user.uuid)?
            .ok_or_else(|| Error::unauthorized("invalid_login", "invalid login or password"))?;
        let mut b = WriteBatch::new();
        let out = self.login_into(&mut b, &old, old.clone(), kind, json!({}))?;
        self.commit_and_signal(b)?;
        Ok(out)
    }

    /// Adds a login of `updated` (the stored row `old`, maybe with other changes already made) to
    /// `b`: the token, last login, sequence, the audit entry (with `details` added to its
    /// properties) and the login notice. The caller holds the writer lock and commits `b`.
    pub(crate) fn login_into(
        &self,
        b: &mut WriteBatch,
        old: &User,
        mut updated: User,
        kind: TokenKind,
        details: Value,
    ) -> Result<(Token, User)> {
        // A managed profile has no login of its own, whatever the way in.
        if old.managed_by.is_some() {
            return Err(profile_cannot_log_in(old));
        }
        let now = self.clock().now();
        updated.last_login_at = Some(now);
        updated.home_seq += 1;
        let lifetime = self.settings().login_token_lifetime_secs;
        let expires =
            (lifetime > 0).then(|| now + time::Duration::seconds(i64::try_from(lifetime).unwrap_or(i64::MAX / 4)));
        let (token, row) = self.new_token_row(&updated.uuid, federation_proto::Scopes::all(), expires, kind)?;
        b.put_user(Some(old), &updated)?;
        b.put_token(None, &row)?;
        let mut props = json!({"token_uuid": row.uuid});
        if let (Some(p), Value::Object(extra)) = (props.as_object_mut(), details) {
            p.extend(extra);
        }
        b.put_log(&self.audit(
            super::Actor::user(&updated.uuid),
            "login",
            Some((&updated.uuid, &updated.owner_uuid)),
            format!("{} logged in", updated.uuid),
            props,
        ))?;
        self.queue_notice(b, &Notice::Login { user: self.user_record(&updated)? })?;
        Ok((token, updated))
    }
}

/// What a login name means.
enum LoginTarget {
    /// One local account (possibly merged away).
    Account(Box<User>),
    /// No local account.
    Unknown,
    /// An email shared by several live local accounts.
    Ambiguous,
}

/// A user's API view as `caller` may see it: `managed_by` only for the profile's parent (also
/// while acting as it) and admins.
pub fn user_view_for(caller: &Caller, u: &User) -> Value {
    shown_to(caller, u, views::UserView::of(u)).to_value()
}

/// [`user_view_for`] of the one user an answer is about, before it becomes a JSON value (its etag
/// [remembered](views::UserView::of_one)).
pub fn user_view_struct_for<'a>(caller: &Caller, u: &'a User) -> views::UserView<'a> {
    shown_to(caller, u, views::UserView::of_one(u))
}

/// The view `v` of `u` as `caller` may see it.
fn shown_to<'a>(caller: &Caller, u: &User, v: views::UserView<'a>) -> views::UserView<'a> {
    if sees_managed_by(caller, u) { v } else { v.hide_managed_by() }
}

/// Whether `caller` may see who manages `u` (admins, and the profile's parent, acting or not).
pub fn sees_managed_by(caller: &Caller, u: &User) -> bool {
    let parent = u.managed_by.as_ref();
    caller.is_admin()
        || parent == Some(caller.uuid())
        || caller.acting_parent.as_ref().is_some_and(|p| parent == Some(&p.uuid))
}

/// What an admin may not change on a managed profile through the users API: a profile has no
/// email (its hand-over gives it one), is never admin and is never merged.
fn check_profile_fields(old: &User, new: &User) -> Result<()> {
    let refuse =
        |what: &str| Err(Error::unprocessable("profile_field", format!("{} is a managed profile: {what}", old.uuid)));
    if new.email != old.email || new.email_verified != old.email_verified {
        return refuse("it has no email; hand it over (POST /hearth/v1/profiles/<uuid>/hand_over) to give it one");
    }
    if new.is_admin {
        return refuse("a managed profile is never admin");
    }
    if new.redirect_to_user_uuid.is_some() {
        return refuse("a managed profile cannot be redirected (merged)");
    }
    Ok(())
}

fn profile_has_no_password(uuid: &ObjectUuid) -> Error {
    Error::unprocessable(
        "profile_has_no_password",
        format!(
            "{uuid} is a managed profile: it has no password; its parent hands it over \
             (POST /hearth/v1/profiles/<uuid>/hand_over) to give it one"
        ),
    )
}

fn profile_cannot_log_in(u: &User) -> Error {
    let name = u.username.clone().unwrap_or_else(|| u.uuid.to_string());
    Error::forbidden(
        "profile_cannot_log_in",
        format!(
            "{name} is a managed profile: it has no password and cannot log in; its parent switches to it on \
             the account page, or acts as it with the header X-Hearth-Act-As"
        ),
    )
}

fn ambiguous_login() -> Error {
    Error::unauthorized("ambiguous_login", "several accounts use this email address; log in with your username")
}
