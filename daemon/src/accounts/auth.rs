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

use super::Accounts;
use super::error::{Error, Result};
use crate::store::records::{TokenRow, User};
use federation_proto::{AnonymousToken, ClusterId, ObjectKind, ObjectUuid, Scopes, SecretHash, Token};

/// Who is making a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The effective user (after following redirects).
    pub user: User,
    /// The token row used, if any (none for the system root token).
    pub token: Option<TokenRow>,
    /// What the token may do.
    pub scopes: Scopes,
    /// Whether this is the system root token.
    pub is_system_root: bool,
}

impl Caller {
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

impl Accounts {
    /// Parses a presented token string; anything malformed is 401. Anonymous sessions are only good
    /// where they were made, so another cluster's anonymous token is 401 too.
    pub fn parse_presented(&self, raw: &str) -> Result<Presented> {
        if let Ok(anon) = raw.parse::<AnonymousToken>() {
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
        Ok(Caller { user, token: None, scopes: Scopes::all(), is_system_root: true })
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
        Ok(Caller { user, scopes: row.scopes.clone(), token: Some(row), is_system_root: false })
    }
}

/// The one answer for every unusable token, so that a caller learns nothing about which part failed.
pub fn invalid_token() -> Error {
    Error::unauthorized("invalid_token", "Not logged in: invalid or expired API token")
}
