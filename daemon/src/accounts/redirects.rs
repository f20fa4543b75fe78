//! Redirects: which account a merged-away account's credentials act as. The one rule that decides
//! whether a `redirect_to_user_uuid` hop may be followed for authentication, and the one walk that
//! applies it ([`Accounts::follow_redirects`]); every path from a token, a session or a login name to
//! "the account it now is" goes through here.
//!
//! DESIGN §3, "Claims stay inside their cluster": a cluster speaks only about its own users. A
//! redirect is a claim by whoever set it:
//!
//! - on a **local** user, we set it (our merge, our admin): followed;
//! - on a **remote** user of home H, H announced it (a notice or an assertion), and H may only say
//!   where its user went *inside H*: a target whose home is H is followed. A target anywhere else
//!   (one of our users, a third cluster's) is followed only when this cluster itself vouches for
//!   exactly that pair (a [`RedirectConsent`](crate::store::records::RedirectConsent): we issued the
//!   grant of that very migration, or our admin merged the remote user here). Even then, a remote
//!   user never leads to our system user or to one of our admins: an admin account is not a
//!   migration target a peer's redirect may hand out.
//!
//! A hop that may not be followed is stored (for display) and ignored: the walk stops at the last
//! account it reached, as if that account had no redirect. That is what its home cluster can
//! already make a token act as, so an unverified claim gains the claimant nothing.
//!
//! A third cluster's consent is not taken on a peer's word: the migration grant does not name the
//! old account, so a grant forwarded by the peer would not prove that the third cluster agreed to
//! *this* redirect. Such redirects are not followed (see README, Decisions).

use super::Accounts;
use super::error::{Error, Result};
use crate::store::records::User;
use federation_proto::ObjectUuid;
use std::collections::BTreeSet;

/// Most redirect hops a token follows.
pub const MAX_REDIRECT_HOPS: usize = 15;

/// Whether one redirect hop may be followed for authentication, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hop {
    /// Set on one of our own users: by our merge or our admin.
    Ours,
    /// A remote user's home moved it to another of the home's own users.
    WithinHome,
    /// A remote user redirected to a user outside its home, with our own consent for that pair.
    Consented,
    /// A claim we do not follow: the target is outside the claimant's cluster and we never agreed.
    Unverified,
    /// A remote user pointed at our system user or at one of our admins.
    IntoPower,
}

impl Hop {
    /// Whether a token may follow it.
    pub fn followed(self) -> bool {
        matches!(self, Hop::Ours | Hop::WithinHome | Hop::Consented)
    }
}

impl Accounts {
    /// Decides whether the hop from `from` to `to` (its `redirect_to_user_uuid`) may be followed
    /// for authentication. The one place this is decided; see the module documentation.
    pub fn redirect_hop(&self, from: &User, to: &ObjectUuid) -> Result<Hop> {
        let me = self.cluster();
        let home = from.uuid.cluster();
        if home == me {
            return Ok(Hop::Ours);
        }
        if to.cluster() == home {
            return Ok(Hop::WithinHome);
        }
        if to == self.system_user() {
            return Ok(Hop::IntoPower);
        }
        if self.store().redirect_consent(&from.uuid, to)?.is_none() {
            return Ok(Hop::Unverified);
        }
        if to.cluster() == me && self.store().user(to)?.is_some_and(|t| t.is_admin) {
            return Ok(Hop::IntoPower);
        }
        Ok(Hop::Consented)
    }

    /// The account `user`'s credentials act as: its redirects followed while [`Accounts::redirect_hop`]
    /// allows, at most [`MAX_REDIRECT_HOPS`]. A hop that may not be followed ends the walk at the
    /// account reached so far. A loop, a longer chain or a followed hop to a user we do not hold is
    /// refused (401).
    pub fn follow_redirects(&self, mut user: User) -> Result<User> {
        let mut seen = BTreeSet::new();
        for _ in 0..=MAX_REDIRECT_HOPS {
            let Some(next) = user.redirect_to_user_uuid.clone() else {
                return Ok(user);
            };
            let hop = self.redirect_hop(&user, &next)?;
            if !hop.followed() {
                tracing::debug!(from = %user.uuid, to = %next, ?hop, "redirect claim not followed");
                return Ok(user);
            }
            if !seen.insert(user.uuid.clone()) {
                break;
            }
            user = match self.store().user(&next)? {
                Some(u) => u,
                None => {
                    return Err(Error::unauthorized(
                        "redirect_dangling",
                        format!("user {} redirects to {next}, which does not exist", user.uuid),
                    ));
                }
            };
        }
        Err(Error::unauthorized(
            "redirect_loop",
            format!("user redirect chain loops or is longer than {MAX_REDIRECT_HOPS} hops"),
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::clock::Clock;
    use crate::fixtures::lone_cluster_settings;
    use crate::store::records::{ConsentReason, RedirectConsent};
    use crate::store::{Store, WriteBatch};
    use federation_proto::ObjectKind;

    fn open(dir: &std::path::Path) -> Accounts {
        Accounts::new(Store::open(dir).unwrap(), lone_cluster_settings(), Clock::manual(1_700_000_000)).unwrap()
    }

    fn uuid(s: &str) -> ObjectUuid {
        s.parse().unwrap()
    }

    /// Writes a user `id` (local when it has our prefix, else cached from its home) redirecting to `to`.
    fn put(a: &Accounts, id: &str, to: Option<&str>, admin: bool) {
        let id = uuid(id);
        let now = a.clock().now();
        let owner = ObjectUuid::new(id.cluster().clone(), ObjectKind::User, "000000000000000").unwrap();
        let u = User {
            redirect_to_user_uuid: to.map(uuid),
            cached_from_home: id.cluster() != a.cluster(),
            is_active: true,
            is_admin: admin,
            ..User::new(id.clone(), owner, now)
        };
        let old = a.store().user(&id).unwrap();
        let mut b = WriteBatch::new();
        b.put_user(old.as_ref(), &u).unwrap();
        a.store().commit(b).unwrap();
    }

    fn consent(a: &Accounts, old: &str, new: &str) {
        let mut b = WriteBatch::new();
        b.put_redirect_consent(&RedirectConsent {
            old_user_uuid: uuid(old),
            new_user_uuid: uuid(new),
            because: ConsentReason::MergedHere,
            at: a.clock().now(),
        })
        .unwrap();
        a.store().commit(b).unwrap();
    }

    fn ends_at(a: &Accounts, start: &str) -> Result<String> {
        let u = a.store().user(&uuid(start)).unwrap().unwrap();
        a.follow_redirects(u).map(|u| u.uuid.to_string())
    }

    #[test]
    fn every_kind_of_hop() {
        let dir = tempfile::tempdir().unwrap();
        let a = open(dir.path());
        let me = a.cluster().to_string();
        let local = |s: &str| format!("{me}-tpzed-{s}");
        let (x, y, boss, root) =
            (local("xxxxxxxxxxxxxxx"), local("yyyyyyyyyyyyyyy"), local("bossbossbossbos"), local("000000000000000"));
        let (pa, pa2, pc) =
            ("aaaaa-tpzed-peeruserpeeruse", "aaaaa-tpzed-peeruser2peerus", "ccccc-tpzed-thirdclusterusr");
        put(&a, &y, None, false);
        put(&a, &boss, None, true);
        put(&a, pa2, None, false);
        put(&a, pc, None, false);

        // Local → remote: ours. Remote → its own home: followed.
        put(&a, &x, Some(pa), false);
        put(&a, pa, Some(pa2), false);
        assert_eq!(ends_at(&a, &x).unwrap(), pa2);
        // Remote → one of our users, a third cluster's, our admin, our root: not followed.
        for target in [&y, pc, &boss, &root] {
            put(&a, pa, Some(target), false);
            assert_eq!(ends_at(&a, &x).unwrap(), pa, "{target}");
            let from = a.store().user(&uuid(pa)).unwrap().unwrap();
            assert!(!a.redirect_hop(&from, &uuid(target)).unwrap().followed(), "{target}");
        }
        // With our consent for exactly that pair: followed, except into power.
        consent(&a, pa, &y);
        consent(&a, pa, pc);
        consent(&a, pa, &boss);
        consent(&a, pa, &root);
        for (target, end) in
            [(&y, &y), (&pc.to_string(), &pc.to_string()), (&boss, &pa.to_string()), (&root, &pa.to_string())]
        {
            put(&a, pa, Some(target), false);
            assert_eq!(&ends_at(&a, &x).unwrap(), end, "{target}");
        }
        // A consent is for one pair: another remote user pointing at y is not followed.
        put(&a, pa2, Some(&y), false);
        put(&a, pa, Some(pa2), false);
        assert_eq!(ends_at(&a, &x).unwrap(), pa2);
        // A loop through followed hops is refused; a dangling followed hop too.
        put(&a, pa2, Some(pa), false);
        assert_eq!(ends_at(&a, &x).unwrap_err().code, "redirect_loop");
        put(&a, pa2, Some("aaaaa-tpzed-notcachedhere00"), false);
        assert_eq!(ends_at(&a, &x).unwrap_err().code, "redirect_dangling");
    }
}
