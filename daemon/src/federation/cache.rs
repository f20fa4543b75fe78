//! The remote account cache and salted-token validation.
//!
//! Receiving notices: a batch is applied idempotently (the same batch id gets the same answer),
//! and per user only a higher home sequence number changes the cached record, so replays and
//! reordering change nothing. A cached record is never admin and is changed only by notices and
//! assertions from the user's home cluster, except for the local username an admin may give it
//! here, which they keep. Which cached users are a user's managed profiles (their `managed_by`)
//! comes only from that user's newer home record: its `profiles` list is applied with it, and a
//! profile it no longer lists stops being the user's to act as here.
//!
//! Tokens of other clusters: the first use of a token at this cluster asks its home cluster
//! (`POST /federation/v1/tokens/validate`, signed) with the token salted for us; the signed
//! assertion is cached until `refreshes_at` and dropped at once when the home cluster sends
//! `token_revoked` (or `user_redirected`). Concurrent first uses of one token share one round trip.
//! What the issuer refuses is remembered for a minute, a token whose uuid we hold with another
//! secret is refused without asking, and each issuer has a validation budget (see
//! `validation_limits`): made-up tokens cost the issuer few round trips and never evict the cached
//! row of the real one.

use super::{Federation, fed_err};
use crate::accounts::{Accounts, Caller, Error, ErrorKind, auth::invalid_token};
use crate::clock::{format_time, parse_time};
use crate::store::WriteBatch;
use crate::store::records::{RemoteTokenRow, TokenKind, TokenRow, User};
use federation_proto::assertion::{TokenAssertion, TokenValidationRequest};
use federation_proto::notice::{Notice, NoticeBatch, UserRecord};
use federation_proto::{ClusterId, ObjectKind, ObjectUuid, SecretHash, Signed, Token};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// Error codes with which an issuer refuses the token itself (rather than our request): invalid or
/// expired, its account moved away, or not the issuer's token.
const TOKEN_REFUSALS: &[&str] = &["invalid_token", "token_expired", "account_moved", "not_our_token"];

/// Counts a remote token refused without a round trip to its issuer.
fn refused_here(issuer: &ClusterId, reason: &'static str) {
    metrics::counter!("hearth_remote_tokens_refused_locally_total", "peer" => issuer.to_string(), "reason" => reason)
        .increment(1);
}

impl Federation {
    /// Writes (into `b`) the cached copy of a remote user from its home's record, if the record is
    /// newer than what we hold. Returns whether it was newer.
    pub(crate) fn upsert_remote_user(
        &self,
        accounts: &Accounts,
        b: &mut WriteBatch,
        rec: &UserRecord,
    ) -> Result<bool, Error> {
        let old = self.store.user(&rec.uuid)?;
        Ok(self.upsert_remote_user_over(accounts, b, rec, old, &mut HashMap::new())?.is_some())
    }

    /// Like [`Federation::upsert_remote_user`], over `old` (what the store holds once `b` is
    /// applied, when `b` already writes this user). `written` holds the other users `b` already
    /// writes (it gains the profiles this record changes). Returns the record written, if newer.
    pub(crate) fn upsert_remote_user_over(
        &self,
        accounts: &Accounts,
        b: &mut WriteBatch,
        rec: &UserRecord,
        old: Option<User>,
        written: &mut HashMap<ObjectUuid, User>,
    ) -> Result<Option<User>, Error> {
        if let Some(o) = &old
            && (o.home_seq >= rec.home_seq || !o.cached_from_home)
        {
            return Ok(None);
        }
        let now = accounts.clock().now();
        let home_root = ObjectUuid::new(rec.uuid.cluster().clone(), ObjectKind::User, "000000000000000")
            .map_err(|e| fed_err(ErrorKind::Internal, "uuid", e.to_string()))?;
        let email = Some(rec.email.trim().to_lowercase()).filter(|e| !e.is_empty());
        let user = User {
            created_at: old.as_ref().map_or(now, |o| o.created_at),
            email,
            email_verified: rec.email_verified,
            username: rec.username.clone(),
            first_name: rec.first_name.clone(),
            last_name: rec.last_name.clone(),
            is_active: rec.is_active,
            prefs: old.as_ref().map_or_else(|| json!({}), |o| o.prefs.clone()),
            redirect_to_user_uuid: rec.redirect_to_user_uuid.clone(),
            last_login_at: rec.last_login_at.as_deref().and_then(parse_time),
            home_seq: rec.home_seq,
            cached_from_home: true,
            orcid: rec.orcid.clone(),
            // Only the parent's record says whose profile this is.
            managed_by: old.as_ref().and_then(|o| o.managed_by.clone()),
            // The username an admin gave the user here is this cluster's, not the home's: no
            // notice changes it. A redirect (the account merged away at home) frees it.
            local_username: old
                .as_ref()
                .and_then(|o| o.local_username.clone())
                .filter(|_| rec.redirect_to_user_uuid.is_none()),
            ..User::new(rec.uuid.clone(), home_root.clone(), now)
        };
        b.put_user(old.as_ref(), &user)?;
        self.apply_profile_list(b, rec, &home_root, written)?;
        Ok(Some(user))
    }

    /// Makes the cached profiles of `rec`'s user exactly those its home lists: a listed profile is
    /// cached (names as listed, a new one active, home sequence 0 so that the profile's own record
    /// still wins) with `managed_by` its parent; one the list dropped (deleted or handed over at
    /// home) loses `managed_by`, and every session switched to it here ends. `written` is what `b`
    /// already writes, read before the store.
    fn apply_profile_list(
        &self,
        b: &mut WriteBatch,
        rec: &UserRecord,
        home_root: &ObjectUuid,
        written: &mut HashMap<ObjectUuid, User>,
    ) -> Result<(), Error> {
        let now = self.clock.now();
        let parent = &rec.uuid;
        let current = |uuid: &ObjectUuid, written: &HashMap<ObjectUuid, User>| -> Result<Option<User>, Error> {
            Ok(match written.get(uuid) {
                Some(u) => Some(u.clone()),
                None => self.store.user(uuid)?,
            })
        };
        for p in &rec.profiles {
            let old = current(&p.uuid, written)?;
            if old.as_ref().is_some_and(|o| !o.cached_from_home) {
                continue;
            }
            let base = old.clone().unwrap_or_else(|| User {
                is_active: rec.is_active,
                cached_from_home: true,
                ..User::new(p.uuid.clone(), home_root.clone(), now)
            });
            let new = User {
                first_name: p.first_name.clone(),
                last_name: p.last_name.clone(),
                username: p.username.clone(),
                managed_by: Some(parent.clone()),
                ..base
            };
            if old.as_ref() != Some(&new) {
                b.put_user(old.as_ref(), &new)?;
                written.insert(new.uuid.clone(), new);
            }
        }
        let mut held: Vec<ObjectUuid> = self.store.profiles_of(parent)?.into_iter().map(|u| u.uuid).collect();
        held.extend(written.values().filter(|u| u.managed_by.as_ref() == Some(parent)).map(|u| u.uuid.clone()));
        held.sort();
        held.dedup();
        for uuid in held {
            if rec.profiles.iter().any(|p| p.uuid == uuid) {
                continue;
            }
            let Some(old) = current(&uuid, written)? else { continue };
            if old.managed_by.as_ref() != Some(parent) || !old.cached_from_home {
                continue;
            }
            let new = User { managed_by: None, ..old.clone() };
            b.put_user(Some(&old), &new)?;
            written.insert(uuid.clone(), new);
            for s in self.store.switches_to(&uuid)? {
                b.delete_profile_switch(&s.token_uuid);
            }
        }
        Ok(())
    }

    /// How long a revocation notice is remembered: longer than any validation round trip can take.
    const REVOKED_MEMORY: std::time::Duration = std::time::Duration::from_secs(600);

    fn remember_revoked(&self, tokens: Vec<ObjectUuid>) {
        if tokens.is_empty() {
            return;
        }
        let now = std::time::Instant::now();
        let mut revoked = self.revoked.lock().unwrap_or_else(|p| p.into_inner());
        revoked.retain(|_, at| now.duration_since(*at) < Self::REVOKED_MEMORY);
        revoked.extend(tokens.into_iter().map(|t| (t, now)));
    }

    fn was_revoked(&self, token: &ObjectUuid) -> bool {
        let revoked = self.revoked.lock().unwrap_or_else(|p| p.into_inner());
        revoked.get(token).is_some_and(|at| at.elapsed() < Self::REVOKED_MEMORY)
    }

    /// `POST /federation/v1/notices` from `origin` (already authenticated).
    pub fn receive_notices(&self, accounts: &Accounts, origin: &ClusterId, body: &[u8]) -> Result<Value, Error> {
        let batch: NoticeBatch = serde_json::from_slice(body).map_err(|e| {
            fed_err(ErrorKind::BadRequest, "malformed_notice_batch", format!("malformed notice batch: {e}"))
        })?;
        batch
            .check(origin, &self.me)
            .map_err(|e| fed_err(ErrorKind::Forbidden, "notice_refused", format!("notice batch refused: {e}")))?;
        let batch_id =
            batch.batch_id().map_err(|e| fed_err(ErrorKind::BadRequest, "malformed_notice_batch", e.to_string()))?;
        let _w = accounts.write_lock()?;
        if let Some(answer) = self.store.batch_answer(origin, &batch_id)? {
            return Ok(answer);
        }
        let mut b = WriteBatch::new();
        let (mut applied, mut ignored) = (0usize, 0usize);
        let mut drop_tokens_of = Vec::new();
        let mut revoked = Vec::new();
        // Records this batch already writes: a later notice about the same user in the same batch
        // is compared with them, not with the store, so that order inside a batch changes nothing.
        let mut written: HashMap<ObjectUuid, User> = HashMap::new();
        for n in &batch.notices {
            let uuid = &n.user().uuid;
            let old = match written.get(uuid) {
                Some(u) => Some(u.clone()),
                None => self.store.user(uuid)?,
            };
            let newer = match self.upsert_remote_user_over(accounts, &mut b, n.user(), old, &mut written)? {
                Some(user) => {
                    written.insert(uuid.clone(), user);
                    true
                }
                None => false,
            };
            if newer {
                applied += 1
            } else {
                ignored += 1
            }
            match n {
                Notice::TokenRevoked { token_uuid, .. } => {
                    b.delete_remote_token(token_uuid);
                    revoked.push(token_uuid.clone());
                }
                Notice::UserRedirected { user } => drop_tokens_of.push(user.uuid.clone()),
                Notice::UserUpdated { user } | Notice::Login { user } if !user.is_active => {
                    drop_tokens_of.push(user.uuid.clone())
                }
                _ => {}
            }
        }
        for u in drop_tokens_of {
            for t in self.store.remote_tokens_of(&u)? {
                b.delete_remote_token(&t.uuid);
            }
        }
        let answer = json!({"batch_id": batch_id, "applied": applied, "ignored": ignored});
        b.put_batch_answer(origin, &batch_id, &answer)?;
        self.store.commit(b)?;
        self.remember_revoked(revoked);
        metrics::counter!("hearth_notices_received_total", "peer" => origin.to_string())
            .increment(batch.notices.len() as u64);
        Ok(answer)
    }

    /// `POST /federation/v1/tokens/validate` from `origin`: checks one of our tokens salted for
    /// `origin` and answers a signed assertion.
    pub fn validate_for_peer(&self, accounts: &Accounts, origin: &ClusterId, body: &[u8]) -> Result<Value, Error> {
        let req: TokenValidationRequest = serde_json::from_slice(body).map_err(|e| {
            fed_err(ErrorKind::BadRequest, "malformed_request", format!("malformed validation request: {e}"))
        })?;
        let token = req.parse_token().map_err(|_| invalid_token())?;
        if token.uuid().cluster() != &self.me {
            return Err(fed_err(
                ErrorKind::Forbidden,
                "not_our_token",
                format!("token {} was not issued by {}", token.uuid(), self.me),
            ));
        }
        let caller = accounts.authenticate_salted(&token, origin)?;
        if caller.user.uuid.cluster() != &self.me {
            return Err(fed_err(
                ErrorKind::Unauthorized,
                "account_moved",
                "this token's account now lives at another cluster",
            ));
        }
        let row = caller.token.as_ref().ok_or_else(invalid_token)?;
        let assertion = TokenAssertion {
            issuer: self.me.clone(),
            audience: origin.clone(),
            token_uuid: token.uuid().clone(),
            scopes: row.scopes.clone(),
            expires_at: row.expires_at.map(format_time),
            user: accounts.user_record(&caller.user)?,
            issued_at: self.clock.unix(),
        };
        let signed = Signed::sign(assertion, &self.me, &self.signing_key())
            .map_err(|e| fed_err(ErrorKind::Internal, "sign", e.to_string()))?;
        Ok(signed.to_value())
    }

    fn caller_from_cache(&self, accounts: &Accounts, row: &RemoteTokenRow) -> Result<Caller, Error> {
        let user = self.store.user(&row.user_uuid)?.ok_or_else(invalid_token)?;
        // The home cluster's assertion already names the effective account (a merge at home is
        // resolved there, and the home answers `account_moved` for an account that left it). A
        // redirect on the cached copy is either a local merge of the remote user, and remote
        // credentials never carry over to the account it went into, or a claim that came after
        // the assertion: neither is followed for a remote token (see `accounts::redirects`).
        if user.redirect_to_user_uuid.is_some() {
            return Err(invalid_token());
        }
        let now = accounts.clock().now();
        let token = TokenRow {
            uuid: row.uuid.clone(),
            user_uuid: row.user_uuid.clone(),
            secret_hash: row.secret_hash,
            salted_hashes: Default::default(),
            scopes: row.scopes.clone(),
            expires_at: row.expires_at,
            created_at: now,
            modified_at: now,
            kind: TokenKind::Api,
        };
        Ok(Caller { user, scopes: row.scopes.clone(), token: Some(token), is_system_root: false, acting_parent: None })
    }

    fn usable(&self, accounts: &Accounts, row: &RemoteTokenRow, hash: &SecretHash) -> bool {
        let now = accounts.clock().now();
        row.secret_hash.ct_eq(hash) && row.refreshes_at > now && row.expires_at.is_none_or(|e| e > now)
    }

    /// The caller for a token issued by peer `issuer`, validated at the issuer (or from the cache).
    pub async fn remote_caller(
        &self,
        accounts: &Accounts,
        presented: &Token,
        issuer: &ClusterId,
    ) -> Result<Caller, Error> {
        if !self.peers.contains_key(issuer) {
            return Err(fed_err(
                ErrorKind::Unauthorized,
                "unknown_issuer",
                format!("tokens issued by cluster {issuer} are not accepted here"),
            ));
        }
        let salted = if presented.is_salted() {
            presented.clone()
        } else {
            presented.salt_for(&self.me).map_err(|_| invalid_token())?
        };
        if let Some(row) = self.known_answer(accounts, &salted, issuer)? {
            return self.caller_from_cache(accounts, &row);
        }
        // One validation per token at a time: later arrivals wait, then find the cache filled (or
        // the refusal remembered).
        let gate = {
            let mut map = self.validations.lock().await;
            map.entry(salted.uuid().clone()).or_insert_with(|| Arc::new(tokio::sync::Mutex::new(()))).clone()
        };
        let _turn = gate.lock().await;
        let result = match self.known_answer(accounts, &salted, issuer) {
            Ok(Some(row)) => Ok(row),
            Ok(None) => match self.budget.take(issuer, accounts.clock().now().unix_timestamp_nanos()) {
                Ok(()) => self.validate_at_home(accounts, &salted, issuer).await,
                Err(wait) => {
                    refused_here(issuer, "throttled");
                    let mut e = fed_err(
                        ErrorKind::Throttled,
                        "validations_throttled",
                        format!("too many new tokens of cluster {issuer} to check right now; try again shortly"),
                    );
                    e.retry_after = Some(wait);
                    Err(e)
                }
            },
            Err(e) => Err(e),
        };
        self.validations.lock().await.remove(salted.uuid());
        let row = result?;
        self.caller_from_cache(accounts, &row)
    }

    /// What we can say about `salted` without asking its issuer: `Some` usable cached row, `None`
    /// (ask), or a refusal: a token whose uuid we hold with another secret (a token's secret never
    /// changes, so that one is wrong, and its issuer's answer about it must not cost the right one
    /// its cached row), or one the issuer refused moments ago.
    fn known_answer(
        &self,
        accounts: &Accounts,
        salted: &Token,
        issuer: &ClusterId,
    ) -> Result<Option<RemoteTokenRow>, Error> {
        let hash = salted.secret_hash();
        if let Some(row) = self.store.remote_token(salted.uuid())? {
            if !row.secret_hash.ct_eq(&hash) {
                refused_here(issuer, "wrong_secret");
                return Err(invalid_token());
            }
            if self.usable(accounts, &row, &hash) {
                return Ok(Some(row));
            }
        }
        if self.refused.is_refused(salted.uuid(), &hash, accounts.clock().now().unix_timestamp_nanos()) {
            refused_here(issuer, "refused_lately");
            return Err(invalid_token());
        }
        Ok(None)
    }

    async fn validate_at_home(
        &self,
        accounts: &Accounts,
        salted: &Token,
        issuer: &ClusterId,
    ) -> Result<RemoteTokenRow, Error> {
        metrics::counter!("hearth_token_validations_total", "peer" => issuer.to_string()).increment(1);
        let body = serde_json::to_value(TokenValidationRequest { token: salted.to_string() })
            .map_err(|e| fed_err(ErrorKind::Internal, "encode", e.to_string()))?;
        let answer = self.send(issuer, Method::POST, "/federation/v1/tokens/validate", Some(&body)).await?;
        if answer.status.is_client_error() {
            let code = answer.body.get("error_code").and_then(Value::as_str).unwrap_or("");
            if TOKEN_REFUSALS.contains(&code) {
                // The issuer's word about this very token (uuid and secret): remember it, and drop
                // our cached copy only if it is of this same secret.
                let hash = salted.secret_hash();
                self.refused.remember(salted.uuid(), &hash, accounts.clock().now().unix_timestamp_nanos());
                let _w = accounts.write_lock()?;
                if self.store.remote_token(salted.uuid())?.is_some_and(|row| row.secret_hash.ct_eq(&hash)) {
                    let mut b = WriteBatch::new();
                    b.delete_remote_token(salted.uuid());
                    self.store.commit(b)?;
                }
            }
            return Err(invalid_token());
        }
        if !answer.status.is_success() {
            return Err(fed_err(
                ErrorKind::Upstream,
                "home_unavailable",
                format!("cluster {issuer} could not check the token ({})", answer.status),
            ));
        }
        let signed: Signed<TokenAssertion> = Signed::from_value(answer.body).map_err(|e| {
            fed_err(
                ErrorKind::Upstream,
                "bad_assertion",
                format!("cluster {issuer} answered a malformed assertion: {e}"),
            )
        })?;
        let assertion = match signed.verify(issuer, &self.lookup()) {
            // Signed with a key we do not know yet: the issuer may have rotated its key since we last
            // heard from it. Fetch its key document (adopted only if a key we trust signed it), retry.
            Err(federation_proto::ProtoError::UnknownKey { .. }) => {
                self.refresh_peer_keys(issuer).await;
                signed.verify(issuer, &self.lookup())
            }
            other => other,
        };
        let assertion = assertion.map_err(|e| {
            fed_err(ErrorKind::Unauthorized, "bad_assertion", format!("assertion from {issuer} refused: {e}"))
        })?;
        let now = self.clock.unix();
        assertion.check(salted, &self.me, now).map_err(|e| {
            fed_err(ErrorKind::Unauthorized, "bad_assertion", format!("assertion from {issuer} refused: {e}"))
        })?;
        let expires_at = match &assertion.expires_at {
            Some(s) => {
                Some(parse_time(s).ok_or_else(|| fed_err(ErrorKind::Upstream, "bad_assertion", "bad expires_at"))?)
            }
            None => None,
        };
        let mut refreshes_at = accounts.clock().now() + time::Duration::seconds(self.refresh_secs);
        if let Some(e) = expires_at {
            refreshes_at = refreshes_at.min(e);
        }
        let row = RemoteTokenRow {
            uuid: salted.uuid().clone(),
            user_uuid: assertion.user.uuid.clone(),
            secret_hash: salted.secret_hash(),
            scopes: assertion.scopes.clone(),
            expires_at,
            refreshes_at,
        };
        let _w = accounts.write_lock()?;
        if self.was_revoked(&row.uuid) {
            // Revoked (notice) while we were asking: the answer is older than the revocation.
            return Err(invalid_token());
        }
        let mut b = WriteBatch::new();
        self.upsert_remote_user(accounts, &mut b, &assertion.user)?;
        b.put_remote_token(&row)?;
        // A cache, so not flushed on the request path: a crash may lose it (the next use asks
        // again), never resurrect it, since whatever evicts it later (a revocation, a refusal)
        // commits with a flush, which makes durable every write before it.
        self.store.commit_unflushed(b)?;
        Ok(row)
    }
}
