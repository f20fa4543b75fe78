//! Signed claims one cluster hands another: token validations, login assertions, and the two halves of the
//! cross-cluster migration exchange.
//!
//! Each type travels as [`crate::Signed`]`<T>` signed by the cluster that makes the claim, and has a
//! `check` that the receiver runs on the verified value with its own id and clock. The rules they share:
//! a cluster only vouches for its own users and tokens (uuid prefixes equal the signer), every claim names
//! its audience (the receiver), and every claim carries an expiry or issue time checked against `now`.
//!
//! Flow of the migration exchange (DESIGN §4.4): B signs a [`MigrationRequest`] for its old user and sends
//! the person to A; A checks it, logs the person in, and answers with a token salted for B and a signed
//! [`MigrationGrant`] carrying the request's nonce; B checks the grant against its pending migration.

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::cluster::ClusterId;
use crate::error::{ParseError, ProtoError};
use crate::notice::UserRecord;
use crate::request::check_nonce;
use crate::scope::Scopes;
use crate::token::Token;
use crate::uuid::{ObjectKind, ObjectUuid};

/// How far in the future an `issued_at` may be (clock skew between clusters), in seconds.
pub const MAX_FUTURE_SKEW_SECS: i64 = 300;

fn check_kind(uuid: &ObjectUuid, kind: ObjectKind, field: &str) -> Result<(), ProtoError> {
    if uuid.kind() != kind {
        return Err(ProtoError::Refused(format!("{field} is not a {} uuid", kind.arvados_kind())));
    }
    Ok(())
}

fn check_same(field: &'static str, expected: &ClusterId, got: &ClusterId) -> Result<(), ProtoError> {
    if expected != got {
        return Err(ProtoError::mismatch(field, expected, got));
    }
    Ok(())
}

fn check_not_expired(what: &str, expires_at: i64, now: i64) -> Result<(), ProtoError> {
    if now >= expires_at {
        return Err(ProtoError::Expired(format!("{what} expired at {expires_at}")));
    }
    Ok(())
}

fn check_issued(what: &str, issued_at: i64, now: i64) -> Result<(), ProtoError> {
    if issued_at > now.saturating_add(MAX_FUTURE_SKEW_SECS) {
        return Err(ProtoError::Expired(format!("{what} issued in the future ({issued_at})")));
    }
    Ok(())
}

/// Body of `POST /federation/v1/tokens/validate`: the token exactly as the caller received it (salted
/// for the caller). The issuer checks it salted for the request's *authenticated* origin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenValidationRequest {
    /// The token, `v2/<uuid>/<secret>`.
    pub token: String,
}

impl TokenValidationRequest {
    /// Parses the token.
    pub fn parse_token(&self) -> Result<Token, ParseError> {
        self.token.parse()
    }
}

/// The issuer's answer to a token validation: whose token it is and what it may do. Signed by `issuer`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenAssertion {
    /// The cluster that issued the token (and signs this).
    pub issuer: ClusterId,
    /// The cluster that asked.
    pub audience: ClusterId,
    /// The token's uuid.
    pub token_uuid: ObjectUuid,
    /// The token's scopes.
    pub scopes: Scopes,
    /// The token's expiry as the issuer formats timestamps (RFC 3339), if it expires.
    pub expires_at: Option<String>,
    /// The token's user, as its home (the issuer) knows it.
    pub user: UserRecord,
    /// When the assertion was made (unix seconds).
    pub issued_at: i64,
}

impl TokenAssertion {
    /// Checks an assertion received by `me` about `asked` (the token it sent for validation): issuer is
    /// the token's issuer, audience is `me`, the token uuid is the one asked about, the user is one of the
    /// issuer's users, and `issued_at` is not in the future. (Expiry of a cached assertion is the cache's
    /// `refreshes_at`; `expires_at` is the token's own.)
    pub fn check(&self, asked: &Token, me: &ClusterId, now: i64) -> Result<(), ProtoError> {
        check_same("issuer", asked.issuer(), &self.issuer)?;
        check_same("audience", me, &self.audience)?;
        if &self.token_uuid != asked.uuid() {
            return Err(ProtoError::Refused("assertion is about another token".into()));
        }
        self.user.check_home(&self.issuer)?;
        check_issued("token assertion", self.issued_at, now)
    }
}

/// Sent by a home cluster X with a token salted for B when it logs a user in on B's behalf
/// (DESIGN §4.3). Signed by `issuer`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginAssertion {
    /// The home cluster that logged the user in (and signs this).
    pub issuer: ClusterId,
    /// The cluster the user is sent back to.
    pub audience: ClusterId,
    /// The uuid of the (salted) token sent along.
    pub token_uuid: ObjectUuid,
    /// The user's home record.
    pub user: UserRecord,
    /// When the login happened (unix seconds).
    pub issued_at: i64,
    /// Until when B may accept this assertion (unix seconds; a few minutes after `issued_at`).
    pub expires_at: i64,
}

impl LoginAssertion {
    /// Checks an assertion received by `me` with `token`: issuer is the token's issuer, audience is `me`,
    /// the token is the one named, the user is the issuer's, issued not in the future, not expired.
    pub fn check(&self, token: &Token, me: &ClusterId, now: i64) -> Result<(), ProtoError> {
        check_same("issuer", token.issuer(), &self.issuer)?;
        check_same("audience", me, &self.audience)?;
        if &self.token_uuid != token.uuid() {
            return Err(ProtoError::Refused("assertion is about another token".into()));
        }
        self.user.check_home(&self.issuer)?;
        check_issued("login assertion", self.issued_at, now)?;
        check_not_expired("login assertion", self.expires_at, now)
    }
}

/// B's request to move its user `old_user_uuid` into an account at `target` (DESIGN §4.4 step 1).
/// Signed by `requester`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationRequest {
    /// The pending migration at the requester (kind `m1gr8`, requester's prefix).
    pub migration_uuid: ObjectUuid,
    /// Single-use nonce the grant must echo (see [`check_nonce`]).
    pub nonce: String,
    /// The account that will go away (a user of the requester).
    pub old_user_uuid: ObjectUuid,
    /// The cluster that holds the old account (and signs this).
    pub requester: ClusterId,
    /// The cluster that holds the account to migrate into.
    pub target: ClusterId,
    /// Until when the request is valid (unix seconds).
    pub expires_at: i64,
}

impl MigrationRequest {
    /// Checks a request received by `me` (the target) that claims to come from `requester` (whose
    /// signature the caller verified): names match, uuids are the requester's of the right kinds, the
    /// nonce is well formed, not expired.
    pub fn check(&self, requester: &ClusterId, me: &ClusterId, now: i64) -> Result<(), ProtoError> {
        check_same("requester", requester, &self.requester)?;
        check_same("target", me, &self.target)?;
        check_kind(&self.migration_uuid, ObjectKind::Migration, "migration_uuid")?;
        check_same("migration_uuid", requester, self.migration_uuid.cluster())?;
        check_kind(&self.old_user_uuid, ObjectKind::User, "old_user_uuid")?;
        check_same("old_user_uuid", requester, self.old_user_uuid.cluster())?;
        check_nonce(&self.nonce)?;
        check_not_expired("migration request", self.expires_at, now)
    }
}

/// A's answer to a migration request, sent with a token salted for B (DESIGN §4.4 step 2). Signed by
/// `issuer`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationGrant {
    /// The cluster that holds the new account (and signs this).
    pub issuer: ClusterId,
    /// The account to migrate into (a user of the issuer).
    pub user: UserRecord,
    /// The uuid of the salted token sent along.
    pub token_uuid: ObjectUuid,
    /// The requester, who will run the merge.
    pub audience: ClusterId,
    /// The request's nonce.
    pub migration_nonce: String,
    /// Until when the grant is valid (unix seconds).
    pub expires_at: i64,
}

impl MigrationGrant {
    /// The grant answering `request`, for `user` and the salted `token`, issued by the request's target.
    pub fn for_request(request: &MigrationRequest, user: UserRecord, token: &Token, expires_at: i64) -> Self {
        Self {
            issuer: request.target.clone(),
            user,
            token_uuid: token.uuid().clone(),
            audience: request.requester.clone(),
            migration_nonce: request.nonce.clone(),
            expires_at,
        }
    }

    /// Checks a grant received by `me` from `issuer` (the pending migration's target, whose signature
    /// the caller verified), with `token` (the salted token that came with it) and the pending
    /// migration's nonce (the token is optional: scripts may send the grant alone): names match, the user and token are the issuer's, the nonce matches (compared in
    /// constant time), not expired. Single use of the nonce is the caller's to enforce.
    pub fn check(
        &self,
        issuer: &ClusterId,
        me: &ClusterId,
        token: Option<&Token>,
        expected_nonce: &str,
        now: i64,
    ) -> Result<(), ProtoError> {
        check_same("issuer", issuer, &self.issuer)?;
        check_same("audience", me, &self.audience)?;
        self.user.check_home(issuer)?;
        check_kind(&self.token_uuid, ObjectKind::Token, "token_uuid")?;
        check_same("token_uuid", issuer, self.token_uuid.cluster())?;
        if token.is_some_and(|t| &self.token_uuid != t.uuid()) {
            return Err(ProtoError::Refused("grant is about another token".into()));
        }
        let nonce_ok: bool = self.migration_nonce.as_bytes().ct_eq(expected_nonce.as_bytes()).into();
        if !nonce_ok {
            return Err(ProtoError::Refused("migration nonce does not match".into()));
        }
        check_not_expired("migration grant", self.expires_at, now)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::keys::{ClusterSigningKey, TrustedKeys};
    use crate::notice::tests::user;
    use crate::signed::Signed;

    const NOW: i64 = 1_700_000_000;
    const SECRET: &str = "3kg6k6lzmp9kj5cpkcoxie963cmvjahbt2fod9zru30k1jqdmi";

    fn cid(s: &str) -> ClusterId {
        s.parse().unwrap()
    }

    fn key(n: u8) -> ClusterSigningKey {
        ClusterSigningKey::from_secret_bytes(&[n; 32])
    }

    fn trusted() -> TrustedKeys {
        let mut t = TrustedKeys::new();
        t.pin(cid("aaaaa"), key(1).public());
        t.pin(cid("bbbbb"), key(2).public());
        t
    }

    fn token_of(c: &str) -> Token {
        format!("v2/{c}-gj3su-077z32aux8dg2s1/{SECRET}").parse().unwrap()
    }

    #[test]
    fn token_assertion() {
        let (a, b) = (cid("aaaaa"), cid("bbbbb"));
        let salted = token_of("aaaaa").salt_for(&b).unwrap();
        let req = TokenValidationRequest { token: salted.to_string() };
        assert_eq!(req.parse_token().unwrap(), salted);
        let assertion = TokenAssertion {
            issuer: a.clone(),
            audience: b.clone(),
            token_uuid: salted.uuid().clone(),
            scopes: Scopes::all(),
            expires_at: None,
            user: user("aaaaa-tpzed-000000000000001", 1),
            issued_at: NOW,
        };
        let signed = Signed::sign(assertion.clone(), &a, &key(1)).unwrap();
        let got = signed.verify(salted.issuer(), &trusted()).unwrap();
        assert!(got.check(&salted, &b, NOW).is_ok());
        assert_eq!(got.check(&salted, &cid("ccccc"), NOW).unwrap_err().code(), "cluster_mismatch");
        assert_eq!(got.check(&token_of("bbbbb"), &b, NOW).unwrap_err().code(), "cluster_mismatch");
        assert_eq!(got.check(&salted, &b, NOW - 301).unwrap_err().code(), "expired");
        // The issuer vouching for another cluster's user is refused.
        let mut bad = assertion.clone();
        bad.user = user("ccccc-tpzed-000000000000001", 1);
        assert_eq!(bad.check(&salted, &b, NOW).unwrap_err().code(), "cluster_mismatch");
        // Another token of the same issuer.
        let mut bad = assertion.clone();
        bad.token_uuid = "aaaaa-gj3su-000000000000000".parse().unwrap();
        assert_eq!(bad.check(&salted, &b, NOW).unwrap_err().code(), "refused");

        // The parent's profiles ride in the signed user record; one of another cluster is refused.
        let mut parent = assertion;
        parent.user.profiles = vec![crate::notice::ProfileRecord {
            uuid: "aaaaa-tpzed-00000000000000a".parse().unwrap(),
            first_name: "Kit".into(),
            last_name: String::new(),
            username: None,
        }];
        let signed = Signed::sign(parent.clone(), &a, &key(1)).unwrap();
        let back: Signed<TokenAssertion> = Signed::from_value(signed.to_value()).unwrap();
        let got = back.verify(&a, &trusted()).unwrap();
        assert_eq!(got.user.profiles, parent.user.profiles);
        assert!(got.check(&salted, &b, NOW).is_ok());
        parent.user.profiles[0].uuid = "ccccc-tpzed-00000000000000a".parse().unwrap();
        assert_eq!(parent.check(&salted, &b, NOW).unwrap_err().code(), "cluster_mismatch");
    }

    #[test]
    fn login_assertion() {
        let (a, b) = (cid("aaaaa"), cid("bbbbb"));
        let salted = token_of("aaaaa").salt_for(&b).unwrap();
        let la = LoginAssertion {
            issuer: a.clone(),
            audience: b.clone(),
            token_uuid: salted.uuid().clone(),
            user: user("aaaaa-tpzed-000000000000001", 1),
            issued_at: NOW,
            expires_at: NOW + 300,
        };
        let got = Signed::sign(la, &a, &key(1)).unwrap().verify(&a, &trusted()).unwrap();
        assert!(got.check(&salted, &b, NOW + 10).is_ok());
        assert_eq!(got.check(&salted, &b, NOW + 300).unwrap_err().code(), "expired");
        assert_eq!(got.check(&salted, &a, NOW).unwrap_err().code(), "cluster_mismatch");
    }

    #[test]
    fn migration_exchange() {
        let (a, b) = (cid("aaaaa"), cid("bbbbb"));
        // B asks.
        let request = MigrationRequest {
            migration_uuid: "bbbbb-m1gr8-000000000000001".parse().unwrap(),
            nonce: "nonce-0123456789abcdef".into(),
            old_user_uuid: "bbbbb-tpzed-000000000000007".parse().unwrap(),
            requester: b.clone(),
            target: a.clone(),
            expires_at: NOW + 600,
        };
        let signed_req = Signed::sign(request.clone(), &b, &key(2)).unwrap();
        // A checks it against the `remote` the browser named.
        let got = signed_req.verify(&b, &trusted()).unwrap();
        assert!(got.check(&b, &a, NOW).is_ok());
        assert!(signed_req.verify(&cid("ccccc"), &trusted()).is_err());
        assert_eq!(got.check(&b, &a, NOW + 600).unwrap_err().code(), "expired");
        assert_eq!(got.check(&b, &b, NOW).unwrap_err().code(), "cluster_mismatch");
        let mut bad = request.clone();
        bad.old_user_uuid = "ccccc-tpzed-000000000000007".parse().unwrap();
        assert!(bad.check(&b, &a, NOW).is_err());
        let mut bad = request.clone();
        bad.migration_uuid = "bbbbb-tpzed-000000000000001".parse().unwrap();
        assert!(bad.check(&b, &a, NOW).is_err());
        let mut bad = request.clone();
        bad.nonce = "x".into();
        assert!(bad.check(&b, &a, NOW).is_err());

        // A grants, with a token salted for B.
        let salted = token_of("aaaaa").salt_for(&b).unwrap();
        let grant = MigrationGrant::for_request(&got, user("aaaaa-tpzed-000000000000001", 5), &salted, NOW + 600);
        let signed_grant = Signed::sign(grant, &a, &key(1)).unwrap();
        let text = serde_json::to_string(&signed_grant).unwrap();

        // B verifies against its pending migration.
        let back: Signed<MigrationGrant> = serde_json::from_str(&text).unwrap();
        let g = back.verify(&a, &trusted()).unwrap();
        assert!(g.check(&a, &b, Some(&salted), &request.nonce, NOW + 5).is_ok());
        assert_eq!(g.check(&a, &b, Some(&salted), "nonce-0123456789abcdeF", NOW).unwrap_err().code(), "refused");
        assert_eq!(g.check(&a, &b, Some(&salted), &request.nonce, NOW + 600).unwrap_err().code(), "expired");
        assert_eq!(
            g.check(&a, &cid("ccccc"), Some(&salted), &request.nonce, NOW).unwrap_err().code(),
            "cluster_mismatch"
        );
        assert_eq!(g.check(&b, &b, Some(&salted), &request.nonce, NOW).unwrap_err().code(), "cluster_mismatch");
        assert_eq!(g.check(&a, &b, Some(&token_of("bbbbb")), &request.nonce, NOW).unwrap_err().code(), "refused");
        assert!(g.check(&a, &b, None, &request.nonce, NOW).is_ok(), "the token is optional");
        // B's own key cannot forge A's grant.
        let forged = Signed::sign(g, &a, &key(2)).unwrap();
        assert_eq!(forged.verify(&a, &trusted()).unwrap_err().code(), "unknown_key");
    }
}
