//! API tokens (`api_client_authorizations`): issue, list, revoke.
//!
//! A token's secret is shown once, at creation, alone (`api_token`, as Arvados shows it: clients
//! build `v2/<uuid>/<api_token>` and salt it themselves); `current` also shows the secret the
//! request itself presented. The store keeps SHA-256 of the secret and SHA-256 of the secret salted
//! for this cluster and for each peer configured at that moment (so that a peer's validation
//! request can be answered without keeping the secret, and so that a token an admin script salted
//! for this cluster works here, as in Arvados).

use super::bounds::{self, Bound};
use super::error::{Error, ErrorKind, Result};
use super::listing::ListParams;
use super::{Accounts, Caller, random_secret, views};
use crate::clock::parse_time;
use crate::store::WriteBatch;
use crate::store::records::{TokenKind, TokenRow};
use federation_proto::{ObjectKind, ObjectUuid, Scopes, SecretHash, Token, salted_secret};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use time::OffsetDateTime;

impl Accounts {
    /// A fresh token for `user` and the row that stores it (not yet written).
    pub fn new_token_row(
        &self,
        user: &ObjectUuid,
        scopes: Scopes,
        expires_at: Option<OffsetDateTime>,
        kind: TokenKind,
    ) -> Result<(Token, TokenRow)> {
        let uuid = self.new_uuid(ObjectKind::Token);
        let secret = random_secret();
        let token = Token::new(uuid.clone(), secret.clone())
            .map_err(|e| Error::new(ErrorKind::Internal, "token", e.to_string()))?;
        let salted_hashes: BTreeMap<_, _> = self
            .settings()
            .peers
            .iter()
            .chain(std::iter::once(self.cluster()))
            .map(|p| (p.clone(), SecretHash::of(&salted_secret(&secret, p))))
            .collect();
        let now = self.clock().now();
        let row = TokenRow {
            uuid,
            user_uuid: user.clone(),
            secret_hash: SecretHash::of(&secret),
            salted_hashes,
            scopes,
            expires_at,
            created_at: now,
            modified_at: now,
            kind,
        };
        Ok((token, row))
    }

    /// `POST api_client_authorizations`: a new token for the caller (admins may name another
    /// user with `owner_uuid`). Scoped tokens cannot create tokens.
    pub fn create_token(&self, caller: &Caller, attrs: &Map<String, Value>) -> Result<Value> {
        caller.require_active()?;
        if !caller.scopes.is_all() {
            return Err(Error::forbidden("scoped_token", "a scoped token cannot create tokens"));
        }
        if caller.is_acting() {
            return Err(Error::forbidden(
                "profile_cannot_create_tokens",
                "a managed profile cannot hold or create tokens: act as it with its parent's token and the \
                 header X-Hearth-Act-As",
            ));
        }
        for k in attrs.keys() {
            if !matches!(k.as_str(), "scopes" | "expires_at" | "owner_uuid" | "user_uuid" | "api_client_id") {
                return Err(Error::unprocessable(
                    "unknown_attribute",
                    format!("unknown attribute for api_client_authorization: {}", bounds::excerpt(k)),
                ));
            }
        }
        bounds::check_attrs(attrs, &[("expires_at", Bound::Bytes(bounds::MAX_TIME_BYTES))])?;
        if let Some(Value::Array(a)) = attrs.get("scopes") {
            if a.len() > bounds::MAX_SCOPES {
                return Err(bounds::too_many("scopes", bounds::MAX_SCOPES, "entries"));
            }
            for s in a.iter().filter_map(Value::as_str) {
                bounds::check_bytes("scopes: an entry", s, bounds::MAX_SCOPE_BYTES)?;
            }
        }
        let scopes = match attrs.get("scopes") {
            None | Some(Value::Null) => Scopes::all(),
            Some(Value::Array(a)) => {
                let list: Vec<String> = a
                    .iter()
                    .map(|s| {
                        s.as_str()
                            .map(str::to_string)
                            .ok_or_else(|| Error::unprocessable("invalid_scopes", "scopes must be strings"))
                    })
                    .collect::<Result<_>>()?;
                Scopes::parse(list)
                    .map_err(|e| Error::unprocessable("invalid_scopes", format!("invalid scopes: {e}")))?
            }
            Some(_) => {
                return Err(Error::unprocessable("invalid_scopes", "scopes must be an array of strings"));
            }
        };
        let now = self.clock().now();
        let mut expires_at = match attrs.get("expires_at") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(
                parse_time(s)
                    .ok_or_else(|| Error::unprocessable("invalid_time", "expires_at is not an RFC 3339 time"))?,
            ),
            Some(_) => {
                return Err(Error::unprocessable("invalid_time", "expires_at must be a string"));
            }
        };
        let max = self.settings().max_token_lifetime_secs;
        if max > 0 && !caller.is_admin() {
            let cap = now + time::Duration::seconds(i64::try_from(max).unwrap_or(i64::MAX / 4));
            expires_at = Some(expires_at.map_or(cap, |e| e.min(cap)));
        }
        let owner = match attrs.get("owner_uuid").or_else(|| attrs.get("user_uuid")) {
            None | Some(Value::Null) => caller.uuid().clone(),
            Some(Value::String(s)) => {
                let u: ObjectUuid =
                    s.parse().map_err(|_| Error::unprocessable("invalid_uuid", "owner_uuid is not a uuid"))?;
                if &u != caller.uuid() && !caller.is_admin() {
                    return Err(Error::forbidden("admin_required", "only admins may create tokens for other users"));
                }
                u
            }
            Some(_) => {
                return Err(Error::unprocessable("wrong_type", "owner_uuid must be a string"));
            }
        };
        let _w = self.write_lock()?;
        let user = self
            .store()
            .user(&owner)?
            .ok_or_else(|| Error::unprocessable("not_found", format!("user {owner} not found")))?;
        if user.uuid.cluster() != self.cluster() || user.redirect_to_user_uuid.is_some() {
            return Err(Error::unprocessable("not_local", "tokens can only be issued for live local users"));
        }
        if user.managed_by.is_some() {
            return Err(Error::unprocessable(
                "profile_cannot_hold_tokens",
                format!("{owner} is a managed profile: it cannot hold tokens; its parent acts as it instead"),
            ));
        }
        let (token, row) = self.new_token_row(&owner, scopes, expires_at, TokenKind::Api)?;
        let mut b = WriteBatch::new();
        b.put_token(None, &row)?;
        b.put_log(&self.audit(
            caller.actor(),
            "create",
            Some((&row.uuid, &row.user_uuid)),
            format!("token {} created", row.uuid),
            json!({"scopes": row.scopes}),
        ))?;
        self.store().commit(b)?;
        Ok(views::token(&row, Some(token.secret())))
    }

    /// `GET api_client_authorizations/current`. `presented` is the token the request carried:
    /// its secret is shown (as Arvados shows it) when it is this token's own, unsalted secret, and
    /// `null` otherwise (a salted or another cluster's token: Arvados shows `null` on the
    /// `?remote=` form too).
    pub fn current_token(&self, caller: &Caller, presented: Option<&Token>) -> Result<Value> {
        match &caller.token {
            Some(row) => {
                let own = presented.filter(|t| {
                    t.uuid() == &row.uuid
                        && row.uuid.cluster() == self.cluster()
                        && row.secret_hash.ct_eq(&t.secret_hash())
                });
                Ok(views::token(row, own.map(Token::secret)))
            }
            None => Ok(json!({
                "kind": ObjectKind::Token.arvados_kind(),
                "uuid": format!("{}-gj3su-000000000000000", self.cluster()),
                "owner_uuid": caller.uuid(),
                "user_uuid": caller.uuid(),
                "api_token": null,
                "scopes": Scopes::all(),
                "expires_at": null,
            })),
        }
    }

    fn visible_token(&self, caller: &Caller, uuid: &ObjectUuid) -> Result<TokenRow> {
        let not_found = || Error::not_found("not_found", format!("api_client_authorization {uuid} not found"));
        let row = self.store().token(uuid)?.ok_or_else(not_found)?;
        if !caller.is_admin() && &row.user_uuid != caller.uuid() {
            return Err(not_found());
        }
        Ok(row)
    }

    /// `GET api_client_authorizations/<uuid>`.
    pub fn get_token(&self, caller: &Caller, uuid: &ObjectUuid) -> Result<Value> {
        Ok(views::token(&self.visible_token(caller, uuid)?, None))
    }

    /// `GET api_client_authorizations`: the caller's tokens (admins: all).
    pub fn list_tokens(&self, caller: &Caller, params: &ListParams) -> Result<Value> {
        let rows = if caller.is_admin() {
            let mut all = Vec::new();
            for u in self.store().users() {
                all.extend(self.store().tokens_of(&u?.uuid)?);
            }
            all
        } else {
            self.store().tokens_of(caller.uuid())?
        };
        let items = rows.iter().map(|r| views::token(r, None)).collect();
        params.apply("arvados#apiClientAuthorizationList", items)
    }

    /// `DELETE api_client_authorizations/<uuid>`: revokes a token. Returns the revoked row. Every
    /// caller may revoke the token it presents (a logout), also while acting as a managed profile.
    pub fn revoke_token(&self, caller: &Caller, uuid: &ObjectUuid) -> Result<Value> {
        let own = caller.token.as_ref().map(|t| &t.uuid) == Some(uuid);
        if !caller.scopes.is_all() && !own {
            return Err(Error::forbidden("scoped_token", "a scoped token can only revoke itself"));
        }
        let _w = self.write_lock()?;
        let row = match self.store().token(uuid)? {
            Some(row) if own => row,
            _ => self.visible_token(caller, uuid)?,
        };
        let mut b = WriteBatch::new();
        b.delete_token(&row);
        b.put_log(&self.audit(
            caller.actor(),
            "delete",
            Some((&row.uuid, &row.user_uuid)),
            format!("token {} revoked", row.uuid),
            json!({}),
        ))?;
        if let Some(user) = self.store().user(&row.user_uuid)? {
            let notice = federation_proto::notice::Notice::TokenRevoked {
                user: self.user_record(&user)?,
                token_uuid: row.uuid.clone(),
            };
            self.queue_notice(&mut b, &notice)?;
        }
        self.commit_and_signal(b)?;
        Ok(views::token(&row, None))
    }
}
