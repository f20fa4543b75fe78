//! Cross-cluster migration (DESIGN §4.4): find accounts a person made on the wrong cluster, and
//! merge one into the person's account at another cluster through a signed exchange.
//!
//! 1. `candidates`: accounts cached from peers whose **verified** email equals this account's
//!    verified email (never an unverified one: email auto-linking is an account-takeover path).
//! 2. `start`: a pending migration (single-use nonce, 10-minute expiry) and a signed
//!    `MigrationRequest` for the target cluster.
//! 3. At the target, a login that carries the request answers a token salted for us and a signed
//!    `MigrationGrant` (`grant_for_login`).
//! 4. `confirm`: the grant is checked (the target's signature, audience, this migration's nonce,
//!    expiry); then, in one store transaction, a fresh project "Migrated from <email> (<uuid>)" owned
//!    by the new account is created, everything the old account owns moves into it, the old
//!    account redirects to the new one, the migration is marked done (so the grant cannot be used
//!    again) and a `user_redirected` notice is queued for every peer.
//!
//! The reverse direction is the same flow started on the other cluster: the merge always runs
//! where the old account lives.

pub mod batch;

use crate::accounts::merge::MergePlan;
use crate::accounts::{Accounts, Caller, Error, ErrorKind, random_secret, views};
use crate::federation::Federation;
use crate::store::WriteBatch;
use crate::store::records::{ConsentReason, Group, Migration, MigrationState, RedirectConsent, User};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use federation_proto::assertion::{MigrationGrant, MigrationRequest};
use federation_proto::{ClusterId, ObjectKind, ObjectUuid, Token};
use serde::Serialize;
use serde_json::{Value, json};

/// How long a pending migration (and a grant) stays usable.
pub const MIGRATION_TTL_SECS: i64 = 600;

/// An account at another cluster that the same verified email ties to the caller.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Candidate {
    /// Its cluster.
    pub cluster_id: ClusterId,
    /// Its uuid.
    pub user_uuid: ObjectUuid,
    /// The shared verified email.
    pub email: String,
}

/// What a confirmation would do, for the confirmation page.
#[derive(Debug, Clone, Serialize)]
pub struct Preview {
    /// The migration.
    pub migration_uuid: ObjectUuid,
    /// The account that goes away.
    pub old_user: User,
    /// The account that stays (as its home cluster states it).
    pub new_user: federation_proto::notice::UserRecord,
    /// Objects the old account owns directly.
    pub owned_objects: usize,
    /// Name of the project they move into.
    pub project_name: String,
}

fn refuse(kind: ErrorKind, code: &'static str, msg: impl Into<String>) -> Error {
    Error::new(kind, code, msg)
}

/// Encodes a signed object for a URL parameter.
pub fn encode_param(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

/// Decodes a URL parameter made by [`encode_param`] (a raw JSON object is accepted too).
pub fn decode_param(s: &str) -> Result<Value, Error> {
    let bad = || refuse(ErrorKind::BadRequest, "malformed_parameter", "malformed signed parameter");
    let bytes = if s.trim_start().starts_with('{') {
        s.as_bytes().to_vec()
    } else {
        URL_SAFE_NO_PAD.decode(s.trim()).map_err(|_| bad())?
    };
    serde_json::from_slice(&bytes).map_err(|_| bad())
}

fn project_name(old: &User) -> String {
    format!("Migrated from {} ({})", old.email.clone().unwrap_or_default(), old.uuid)
}

/// The verified-email matches of `user` among accounts cached from peers.
pub fn candidates_of(accounts: &Accounts, fed: &Federation, user: &User) -> Result<Vec<Candidate>, Error> {
    let Some(email) = user.email.clone().filter(|_| user.email_verified) else { return Ok(Vec::new()) };
    if user.uuid.cluster() != accounts.cluster() || user.redirect_to_user_uuid.is_some() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for u in accounts.store().users_by_email(&email)? {
        let cluster = u.uuid.cluster().clone();
        if u.cached_from_home
            && u.email_verified
            && u.is_active
            && u.redirect_to_user_uuid.is_none()
            && fed.is_peer(&cluster)
        {
            out.push(Candidate { cluster_id: cluster, user_uuid: u.uuid.clone(), email: email.clone() });
        }
    }
    Ok(out)
}

/// `GET /hearth/v1/migration_candidates`.
pub fn candidates(accounts: &Accounts, fed: &Federation, caller: &Caller) -> Result<Value, Error> {
    caller.require_active()?;
    Ok(json!({"items": candidates_of(accounts, fed, &caller.user)?}))
}

fn check_old_account(accounts: &Accounts, caller: &Caller) -> Result<User, Error> {
    if !caller.scopes.is_all() || caller.is_system_root {
        return Err(refuse(
            ErrorKind::Forbidden,
            "migration_scoped_token",
            "migrations need the account's own unscoped token",
        ));
    }
    caller.require_active()?;
    let user = accounts
        .store()
        .user(caller.uuid())?
        .ok_or_else(|| refuse(ErrorKind::NotFound, "not_found", "no such user"))?;
    if user.uuid.cluster() != accounts.cluster() {
        return Err(refuse(
            ErrorKind::Unprocessable,
            "not_local",
            "only an account of this cluster can be migrated from here",
        ));
    }
    if user.redirect_to_user_uuid.is_some() {
        return Err(refuse(ErrorKind::Unprocessable, "already_merged", "cannot merge an already merged user"));
    }
    if user.managed_by.is_some() {
        return Err(refuse(
            ErrorKind::Unprocessable,
            "merge_profile",
            "a managed profile cannot be migrated: it lives with its parent's account",
        ));
    }
    Ok(user)
}

/// `POST /hearth/v1/migrations {"target_cluster"}`: a pending migration and its signed request.
pub fn start(
    accounts: &Accounts,
    fed: &Federation,
    caller: &Caller,
    target: &str,
    public_url: &str,
) -> Result<Value, Error> {
    let target: ClusterId = target
        .parse()
        .map_err(|_| refuse(ErrorKind::BadRequest, "invalid_remote", "target_cluster must be a cluster id"))?;
    let Some(target_url) = fed.peer_url(&target).map(str::to_string) else {
        return Err(refuse(ErrorKind::BadRequest, "invalid_remote", format!("{target} is not a peer of this cluster")));
    };
    let user = check_old_account(accounts, caller)?;
    if !candidates_of(accounts, fed, &user)?.iter().any(|c| c.cluster_id == target) {
        return Err(refuse(
            ErrorKind::Unprocessable,
            "no_candidate",
            format!("no account at {target} shares this account's verified email"),
        ));
    }
    let now = accounts.clock().now();
    let m = Migration {
        uuid: accounts.new_uuid(ObjectKind::Migration),
        old_user_uuid: user.uuid.clone(),
        target_cluster: target.clone(),
        nonce: random_secret(),
        created_at: now,
        expires_at: now + time::Duration::seconds(MIGRATION_TTL_SECS),
        state: MigrationState::Pending,
        new_user_uuid: None,
        new_owner_uuid: None,
    };
    let request = MigrationRequest {
        migration_uuid: m.uuid.clone(),
        nonce: m.nonce.clone(),
        old_user_uuid: user.uuid.clone(),
        requester: accounts.cluster().clone(),
        target: target.clone(),
        expires_at: m.expires_at.unix_timestamp(),
    };
    let signed = fed.sign(request)?.to_value();
    {
        let _w = accounts.write_lock()?;
        let mut b = WriteBatch::new();
        b.put_migration(&m)?;
        accounts.store().commit(b)?;
    }
    let return_to = format!("{}/migrations/{}/return", public_url.trim_end_matches('/'), m.uuid);
    let query = serde_urlencoded::to_string([
        ("remote", accounts.cluster().to_string()),
        ("return_to", return_to),
        ("migration_request", encode_param(&signed)),
    ])
    .unwrap_or_default();
    Ok(json!({
        "uuid": m.uuid,
        "target_cluster": target,
        "expires_at": crate::clock::format_time(m.expires_at),
        "request": signed,
        "login_url": format!("{target_url}/login?{query}"),
    }))
}

/// At the target cluster: the grant for a login that carried `request` from `remote`. The grant is
/// remembered as a [`RedirectConsent`] for exactly (the request's old account, `user`), committed
/// before the grant is handed out: it is what lets the redirect `remote` will announce for that
/// account be followed here (see `accounts::redirects`), and nothing else is.
pub fn grant_for_login(
    accounts: &Accounts,
    fed: &Federation,
    remote: &ClusterId,
    request: Value,
    user: &User,
    salted: &Token,
) -> Result<Value, Error> {
    let req: MigrationRequest = fed.verify_from(remote, request)?;
    req.check(remote, accounts.cluster(), accounts.clock().unix()).map_err(|e| {
        refuse(ErrorKind::Forbidden, "migration_request_refused", format!("migration request refused: {e}"))
    })?;
    let grant = MigrationGrant::for_request(&req, accounts.user_record(user)?, salted, req.expires_at);
    let signed = fed.sign(grant)?.to_value();
    {
        let _w = accounts.write_lock()?;
        let mut b = WriteBatch::new();
        b.put_redirect_consent(&RedirectConsent {
            old_user_uuid: req.old_user_uuid.clone(),
            new_user_uuid: user.uuid.clone(),
            because: ConsentReason::GrantIssued {
                requester: req.requester.clone(),
                migration_uuid: req.migration_uuid.clone(),
            },
            at: accounts.clock().now(),
        })?;
        b.put_log(&accounts.audit(
            crate::accounts::Actor::user(&user.uuid),
            "migration_grant",
            Some((&user.uuid, &user.owner_uuid)),
            format!("{} granted {} at {} a migration into it", user.uuid, req.old_user_uuid, req.requester),
            json!({"old_user_uuid": req.old_user_uuid, "requester": req.requester, "migration": req.migration_uuid}),
        ))?;
        accounts.store().commit(b)?;
    }
    Ok(signed)
}

fn load_pending(accounts: &Accounts, caller: &Caller, uuid: &ObjectUuid) -> Result<Migration, Error> {
    let not_found = || refuse(ErrorKind::NotFound, "not_found", format!("migration {uuid} not found"));
    let m = accounts.store().migration(uuid)?.ok_or_else(not_found)?;
    if m.state == MigrationState::Done {
        return Err(refuse(ErrorKind::Unprocessable, "already_merged", "already merged: this migration was completed"));
    }
    if caller.uuid() != &m.old_user_uuid {
        return Err(refuse(
            ErrorKind::Forbidden,
            "not_the_old_account",
            "log in as the account being migrated to confirm",
        ));
    }
    if m.expires_at <= accounts.clock().now() {
        return Err(refuse(ErrorKind::Unprocessable, "migration_expired", "this migration has expired; start again"));
    }
    Ok(m)
}

fn checked_grant(
    accounts: &Accounts,
    fed: &Federation,
    m: &Migration,
    grant: Value,
    token: Option<&Token>,
) -> Result<MigrationGrant, Error> {
    let g: MigrationGrant = fed.verify_from(&m.target_cluster, grant)?;
    g.check(&m.target_cluster, accounts.cluster(), token, &m.nonce, accounts.clock().unix())
        .map_err(|e| refuse(ErrorKind::Forbidden, "grant_refused", format!("migration grant refused: {e}")))?;
    Ok(g)
}

/// What confirming would do (for the confirmation page); checks everything, changes nothing.
pub fn preview(
    accounts: &Accounts,
    fed: &Federation,
    caller: &Caller,
    uuid: &ObjectUuid,
    grant: Value,
    token: Option<&Token>,
) -> Result<Preview, Error> {
    let m = load_pending(accounts, caller, uuid)?;
    let g = checked_grant(accounts, fed, &m, grant, token)?;
    let old = check_old_account(accounts, caller)?;
    Ok(Preview {
        migration_uuid: m.uuid,
        owned_objects: accounts.store().owned_by(&old.uuid)?.len(),
        project_name: project_name(&old),
        old_user: old,
        new_user: g.user,
    })
}

/// `POST /hearth/v1/migrations/<uuid>/confirm {"grant"}`: the merge, all or nothing.
pub fn confirm(
    accounts: &Accounts,
    fed: &Federation,
    caller: &Caller,
    uuid: &ObjectUuid,
    grant: Value,
    token: Option<&Token>,
) -> Result<Value, Error> {
    let _w = accounts.write_lock()?;
    let mut m = load_pending(accounts, caller, uuid)?;
    let g = checked_grant(accounts, fed, &m, grant, token)?;
    let old = check_old_account(accounts, caller)?;
    m.state = MigrationState::Done;
    let mut b = WriteBatch::new();
    let props = json!({"migrated_from": old.uuid, "migration": m.uuid});
    let (old_after, project, counts) = {
        // The project's uuid is only known inside; record it on the migration afterwards in the same batch.
        let project_uuid = accounts.new_uuid(ObjectKind::Group);
        m.new_user_uuid = Some(g.user.uuid.clone());
        m.new_owner_uuid = Some(project_uuid.clone());
        b.put_migration(&m)?;
        merge_into_remote(accounts, fed, &old, &g.user, caller.actor(), project_uuid, props, b)?
    };
    Ok(json!({
        "old_user": views::user(&old_after),
        "new_user": g.user,
        "new_owner_uuid": project,
        "moved": counts,
    }))
}

/// Merges local account `old` (with redirect) into the account `new` of another cluster, as its
/// home cluster describes it: the cached record is refreshed from `new`, a fresh project
/// "Migrated from <email> (<uuid>)" owned by `new` (uuid `project_uuid`) receives everything `old`
/// owns, and `old` redirects to `new` — the account changes in `b`, one transaction, and the moved
/// rows after it under a merge intent (see `accounts::merge`). The writer lock must be held.
#[allow(clippy::too_many_arguments)]
pub(crate) fn merge_into_remote(
    accounts: &Accounts,
    fed: &Federation,
    old: &User,
    new: &federation_proto::notice::UserRecord,
    actor: crate::accounts::Actor<'_>,
    project_uuid: ObjectUuid,
    properties: Value,
    mut b: WriteBatch,
) -> Result<(User, ObjectUuid, crate::accounts::merge::MergeCounts), Error> {
    if new.redirect_to_user_uuid.is_some()
        || accounts.store().user(&new.uuid)?.is_some_and(|u| u.redirect_to_user_uuid.is_some())
    {
        return Err(Error::new_already_merged());
    }
    if old.redirect_to_user_uuid.is_some() {
        return Err(Error::old_already_merged());
    }
    // The cached record as it stands once `b` is applied: the one written now, or the newer one held.
    let held = accounts.store().user(&new.uuid)?;
    let new_user = match fed.upsert_remote_user_over(accounts, &mut b, new, held.clone(), &mut Default::default())? {
        Some(written) => written,
        None => held.ok_or_else(|| refuse(ErrorKind::Internal, "cache", "remote user missing from the cache"))?,
    };
    let now = accounts.clock().now();
    // Names are unique per owner: a project of that name the new account already has here makes
    // this one take Arvados' free name.
    let name = accounts.free_name::<Group>(&new.uuid, &project_name(old), &project_uuid)?;
    let project = Group {
        uuid: project_uuid,
        owner_uuid: new.uuid.clone(),
        created_at: now,
        modified_at: now,
        modified_by_user_uuid: actor.user_uuid().cloned(),
        name,
        description: Some(format!(
            "Everything {} owned at {} before it moved to {}.",
            old.uuid,
            accounts.cluster(),
            new.uuid
        )),
        group_class: "project".into(),
        properties,
        trash_at: None,
    };
    b.put_object(None, &project)?;
    let plan = MergePlan { old: old.clone(), new: new_user, new_owner: project.uuid.clone(), redirect: true };
    let (old_after, counts) = accounts.execute_merge(actor, &plan, b)?;
    Ok((old_after, project.uuid, counts))
}
