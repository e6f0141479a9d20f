//! The federated sign-in policy (`sso::FederatedSignIn`) on a real PostgreSQL: every
//! refusal (typed, and recorded as `auth.login_failed` with method and reason) and every
//! way in (linked, linked through SCIM data, created just in time), with the org's MFA
//! rule, the group → role mapping and SCIM's ownership of roles.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

#[path = "support/auth_fx.rs"]
mod auth_fx;

use std::sync::Arc;

use procuhelp_audit::{Action, AuditEvent, MemorySink};
use procuhelp_auth::directory::{self, OrgPolicy, UserStatus};
use procuhelp_auth::password::PasswordHasher;
use procuhelp_auth::sso::{
    FederatedError, FederatedIdentity, FederatedSignIn, GroupClaim, Method, Refusal, RoleMapping,
};
use procuhelp_auth::throttle::{LoginThrottle, ThrottlePolicy};
use procuhelp_auth::{Authenticator, ClientInfo, Issued, Role};
use procuhelp_core::{ManualClock, OrgId, UserId};
use procuhelp_tenancy::TenantDb;
use procuhelp_tenancy::testkit::ScratchDb;
use serde_json::json;
use sqlx::PgPool;

const NOW: time::OffsetDateTime = time::macros::datetime!(2026-11-25 09:00 UTC);
const ADMINS: &str = "group-admins";
const BUYERS: &str = "group-buyers";

struct Fx {
    scratch: ScratchDb,
    pool: PgPool,
    /// Superuser: sets up what SCIM and the org settings would (no RLS).
    admin: PgPool,
    db: TenantDb,
    audit: Arc<MemorySink>,
    policy: FederatedSignIn,
    orgs: [OrgId; 2],
    vault_dir: std::path::PathBuf,
}

async fn fx() -> Fx {
    let (scratch, [a, b]) = auth_fx::two_orgs().await;
    let pool = scratch.runtime_pool(4).await.unwrap();
    let admin = scratch.admin_pool(1).await.unwrap();
    let db = TenantDb::new(pool.clone());
    let (vault_dir, cipher) = auth_fx::file_cipher("ph-federated", db.clone());
    let audit = Arc::new(MemorySink::new());
    let clock = Arc::new(ManualClock::new(NOW));
    let auth = Authenticator::new(
        db.clone(),
        Arc::new(PasswordHasher::for_tests()),
        LoginThrottle::new(pool.clone(), ThrottlePolicy::default()),
        procuhelp_auth::totp::Totp::new("Test"),
        cipher,
        audit.clone(),
        clock.clone(),
        Default::default(),
    );
    let policy = FederatedSignIn::new(db.clone(), auth, audit.clone(), clock);
    Fx {
        scratch,
        pool,
        admin,
        db,
        audit,
        policy,
        orgs: [a, b],
        vault_dir,
    }
}

impl Fx {
    async fn close(self) {
        self.pool.close().await;
        self.admin.close().await;
        self.scratch.drop_all().await.unwrap();
        let _ = std::fs::remove_dir_all(&self.vault_dir);
    }

    async fn jit(&self, on: bool) {
        sqlx::query("UPDATE app.organisations SET sso_jit_provisioning = $1")
            .bind(on)
            .execute(&self.admin)
            .await
            .unwrap();
    }

    async fn mfa_required(&self, org: OrgId, on: bool) {
        let mut tx = self.db.begin(org).await.unwrap();
        directory::set_org_policy(
            &mut tx,
            OrgPolicy {
                mfa_required: on,
                elevation_needs_second_admin: false,
                operator_access_needs_approval: false,
            },
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }

    /// A local user (with a password: never linked implicitly).
    async fn local_user(&self, org: OrgId, email: &str, role: Role) -> UserId {
        let phc = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g";
        auth_fx::create_user(&self.db, org, email, "Local", role, Some(phc.into()), NOW).await
    }

    /// A user SCIM provisioned (no password), with its externalId and userName.
    async fn scim_user(&self, org: OrgId, email: &str, external_id: &str, role: Role) -> UserId {
        let id = auth_fx::create_user(&self.db, org, email, "Provisioned", role, None, NOW).await;
        sqlx::query(
            "UPDATE app.users SET scim_managed = true, scim_external_id = $1, scim_user_name = $2
             WHERE id = $3",
        )
        .bind(external_id)
        .bind(email)
        .bind(id.as_uuid())
        .execute(&self.admin)
        .await
        .unwrap();
        id
    }

    async fn user(&self, org: OrgId, id: UserId) -> directory::UserRecord {
        let mut tx = self.db.begin(org).await.unwrap();
        let user = directory::get(&mut tx, id).await.unwrap();
        tx.rollback().await.unwrap();
        user
    }

    async fn users(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM app.users")
            .fetch_one(&self.admin)
            .await
            .unwrap()
    }

    async fn sign_in(
        &self,
        org: OrgId,
        identity: &FederatedIdentity,
    ) -> Result<Issued, FederatedError> {
        self.policy
            .sign_in(org, identity, &mapping(), &ClientInfo::default())
            .await
    }

    /// Signs in, expecting `refusal`, and checks its audit event.
    async fn refused(&self, org: OrgId, identity: &FederatedIdentity, refusal: Refusal) {
        let before = self.audit.events().len();
        match self.sign_in(org, identity).await {
            Err(FederatedError::Refused(r)) => assert_eq!(r, refusal),
            other => panic!("expected {refusal:?}, got {other:?}"),
        }
        let events: Vec<AuditEvent> = self.audit.events()[before..].to_vec();
        assert_eq!(events.len(), 1, "one event per refusal: {events:?}");
        assert_eq!(events[0].action, Action::LoginFailed);
        assert_eq!(events[0].org, Some(org));
        assert_eq!(
            events[0].context,
            json!({
                "method": identity.method.as_str(),
                "reason": refusal.code(),
                "refusal": refusal.as_str(),
                "subject": identity.subject_key,
            })
        );
    }

    fn actions_since(&self, before: usize) -> Vec<Action> {
        self.audit.events()[before..]
            .iter()
            .map(|e| e.action)
            .collect()
    }
}

fn mapping() -> RoleMapping {
    RoleMapping::new([(ADMINS, Role::Admin), (BUYERS, Role::Requester)])
}

fn oidc(oid: &str, email: Option<&str>, groups: &[&str], mfa: bool) -> FederatedIdentity {
    FederatedIdentity {
        method: Method::Oidc,
        subject_key: format!("oidc:tenant:{oid}"),
        scim_external_id: Some(oid.to_owned()),
        scim_user_name: None,
        email: email.map(str::to_owned),
        name: Some("Federated Person".into()),
        groups: GroupClaim::Listed(groups.iter().map(|g| (*g).to_owned()).collect()),
        mfa,
        amr: if mfa {
            vec!["pwd".into(), "mfa".into()]
        } else {
            vec!["pwd".into()]
        },
    }
}

fn saml(name_id: &str, email: Option<&str>) -> FederatedIdentity {
    FederatedIdentity {
        method: Method::Saml,
        subject_key: format!("saml:https://idp.test/:{name_id}"),
        scim_external_id: None,
        scim_user_name: Some(name_id.to_owned()),
        email: email.map(str::to_owned),
        name: None,
        groups: GroupClaim::Listed(vec![]),
        mfa: false,
        amr: vec!["saml".into()],
    }
}

#[tokio::test]
async fn without_jit_an_unknown_identity_is_refused_and_nobody_is_created() {
    let fx = fx().await;
    let before = fx.users().await;
    fx.refused(
        fx.orgs[0],
        &oidc("oid-bob", Some("bob@a.test"), &[BUYERS], true),
        Refusal::NotLinked,
    )
    .await;
    fx.refused(
        fx.orgs[0],
        &saml("bob@a.test", Some("bob@a.test")),
        Refusal::NotLinked,
    )
    .await;
    assert_eq!(fx.users().await, before);
    fx.close().await;
}

#[tokio::test]
async fn jit_creates_the_user_with_the_mapped_role_and_the_next_sign_in_reuses_it() {
    let fx = fx().await;
    fx.jit(true).await;
    let org = fx.orgs[0];
    let before = fx.audit.events().len();
    let alice = oidc("oid-alice", Some("alice@a.test"), &[BUYERS, ADMINS], true);
    let issued = fx.sign_in(org, &alice).await.unwrap();
    assert_eq!(
        fx.actions_since(before),
        [Action::UserCreated, Action::LoginSucceeded]
    );
    let created = &fx.audit.events()[before];
    assert_eq!(created.context["method"], json!("oidc_jit"));
    let user = fx.user(org, issued.user).await;
    assert_eq!(user.role, Role::Admin, "the most privileged mapped group");
    assert_eq!(user.email, "alice@a.test");
    assert_eq!(user.display_name, "Federated Person");
    let success = fx.audit.events().last().cloned().unwrap();
    assert_eq!(success.context["method"], json!("oidc"));
    assert_eq!(success.context["mfa"], json!(true));

    // Again: the same user, nobody created; the role follows the groups.
    let users = fx.users().await;
    let before = fx.audit.events().len();
    let demoted = oidc("oid-alice", Some("alice@a.test"), &[BUYERS], true);
    let again = fx.sign_in(org, &demoted).await.unwrap();
    assert_eq!(again.user, issued.user);
    assert_eq!(fx.users().await, users);
    assert_eq!(
        fx.actions_since(before),
        [Action::UserRoleChanged, Action::LoginSucceeded]
    );
    assert_eq!(fx.user(org, issued.user).await.role, Role::Requester);
    // No mapped group: the least privileged role. Overage: unchanged.
    fx.sign_in(org, &oidc("oid-alice", None, &["unmapped"], true))
        .await
        .unwrap();
    assert_eq!(fx.user(org, issued.user).await.role, Role::ReadOnly);
    let mut overage = oidc("oid-alice", None, &[], true);
    overage.groups = GroupClaim::Overage;
    fx.sign_in(org, &overage).await.unwrap();
    assert_eq!(fx.user(org, issued.user).await.role, Role::ReadOnly);
    // The link is per organisation: the same identity is unknown in B.
    fx.jit(false).await;
    fx.refused(fx.orgs[1], &demoted, Refusal::NotLinked).await;
    fx.close().await;
}

#[tokio::test]
async fn jit_without_a_usable_email_is_refused() {
    let fx = fx().await;
    fx.jit(true).await;
    let before = fx.users().await;
    fx.refused(
        fx.orgs[0],
        &oidc("oid-x", None, &[], true),
        Refusal::NoUsableEmail,
    )
    .await;
    fx.refused(
        fx.orgs[0],
        &oidc("oid-x", Some("not an address"), &[], true),
        Refusal::NoUsableEmail,
    )
    .await;
    assert_eq!(fx.users().await, before);
    fx.close().await;
}

#[tokio::test]
async fn a_name_the_directory_would_refuse_falls_back_to_the_address() {
    let fx = fx().await;
    fx.jit(true).await;
    let mut odd = oidc("oid-odd", Some("odd@a.test"), &[], true);
    odd.name = Some("Evil\u{7}Name".into());
    let issued = fx.sign_in(fx.orgs[0], &odd).await.unwrap();
    assert_eq!(
        fx.user(fx.orgs[0], issued.user).await.display_name,
        "odd@a.test"
    );
    fx.close().await;
}

/// nOAuth: another identity (other `oid`) asserting an existing user's e-mail address
/// gets neither that account nor a new one.
#[tokio::test]
async fn another_identity_with_an_existing_users_email_is_refused_never_linked() {
    let fx = fx().await;
    fx.jit(true).await;
    let org = fx.orgs[0];
    let alice = fx
        .sign_in(
            org,
            &oidc("oid-alice", Some("alice@a.test"), &[ADMINS], true),
        )
        .await
        .unwrap();
    let local = fx.local_user(org, "local@a.test", Role::Admin).await;
    let users = fx.users().await;
    fx.refused(
        org,
        &oidc("oid-eve", Some("alice@a.test"), &[ADMINS], true),
        Refusal::EmailInUse,
    )
    .await;
    fx.refused(
        org,
        &oidc("oid-eve", Some("LOCAL@a.test"), &[ADMINS], true),
        Refusal::EmailInUse,
    )
    .await;
    assert_eq!(fx.users().await, users);
    // Still refused with JIT off (nothing was linked on the way).
    fx.jit(false).await;
    fx.refused(
        org,
        &oidc("oid-eve", Some("alice@a.test"), &[], true),
        Refusal::NotLinked,
    )
    .await;
    assert_ne!(alice.user, local);
    fx.close().await;
}

#[tokio::test]
async fn a_disabled_user_is_refused_and_never_created_again() {
    let fx = fx().await;
    fx.jit(true).await;
    let org = fx.orgs[0];
    let bob = oidc("oid-bob", Some("bob@a.test"), &[BUYERS], true);
    let issued = fx.sign_in(org, &bob).await.unwrap();
    let mut tx = fx.db.begin(org).await.unwrap();
    directory::set_status(&mut tx, issued.user, UserStatus::Disabled, NOW)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let users = fx.users().await;
    fx.refused(org, &bob, Refusal::AccountDisabled).await;
    assert_eq!(fx.users().await, users, "JIT does not create him again");
    // Deprovisioned by SCIM: the same.
    sqlx::query(
        "UPDATE app.users SET scim_managed = true, deprovisioned_by_scim = true,
                scim_deleted_at = now() WHERE id = $1",
    )
    .bind(issued.user.as_uuid())
    .execute(&fx.admin)
    .await
    .unwrap();
    fx.refused(org, &bob, Refusal::AccountDisabled).await;
    assert_eq!(fx.users().await, users);
    fx.close().await;
}

#[tokio::test]
async fn the_orgs_mfa_rule_needs_mfa_from_the_provider() {
    let fx = fx().await;
    fx.jit(true).await;
    let org = fx.orgs[0];
    fx.mfa_required(org, true).await;
    let users = fx.users().await;
    let without = oidc("oid-carol", Some("carol@a.test"), &[], false);
    fx.refused(org, &without, Refusal::MfaRequired).await;
    assert_eq!(
        fx.users().await,
        users,
        "nobody was created (and no false user.created)"
    );
    let with = oidc("oid-carol", Some("carol@a.test"), &[], true);
    fx.sign_in(org, &with).await.unwrap();
    // The other organisation does not require it.
    fx.sign_in(fx.orgs[1], &without).await.unwrap();
    fx.close().await;
}

#[tokio::test]
async fn a_scim_user_is_linked_by_its_ids_and_keeps_the_role_scim_gave_it() {
    let fx = fx().await;
    let org = fx.orgs[0];
    // OIDC: externalId = oid.
    let dave = fx
        .scim_user(org, "dave@a.test", "oid-dave", Role::Approver)
        .await;
    let issued = fx
        .sign_in(org, &oidc("oid-dave", Some("dave@a.test"), &[ADMINS], true))
        .await
        .unwrap();
    assert_eq!(issued.user, dave);
    assert_eq!(
        fx.user(org, dave).await.role,
        Role::Approver,
        "SCIM owns the roles of its users"
    );
    // SAML: userName = NameID (case-insensitive).
    let erin = fx
        .scim_user(org, "erin@a.test", "object-erin", Role::Requester)
        .await;
    let issued = fx
        .sign_in(org, &saml("Erin@A.test", Some("erin@a.test")))
        .await
        .unwrap();
    assert_eq!(issued.user, erin);
    // Linked now: the next sign-in finds the link (the SCIM ids may change).
    sqlx::query("UPDATE app.users SET scim_user_name = 'renamed@a.test' WHERE id = $1")
        .bind(erin.as_uuid())
        .execute(&fx.admin)
        .await
        .unwrap();
    let again = fx
        .sign_in(org, &saml("Erin@A.test", Some("erin@a.test")))
        .await
        .unwrap();
    assert_eq!(again.user, erin);
    // A second identity can never take a user that is linked already.
    let users = fx.users().await;
    fx.refused(
        org,
        &saml("renamed@a.test", Some("erin@a.test")),
        Refusal::NotLinked,
    )
    .await;
    assert_eq!(fx.users().await, users);
    fx.close().await;
}

#[tokio::test]
async fn a_local_account_is_never_linked_through_scim_data() {
    let fx = fx().await;
    let org = fx.orgs[0];
    // A local admin (password) whose userName and externalId an attacker controls.
    let local = fx.local_user(org, "root@a.test", Role::Admin).await;
    sqlx::query("UPDATE app.users SET scim_external_id = 'oid-attacker' WHERE id = $1")
        .bind(local.as_uuid())
        .execute(&fx.admin)
        .await
        .unwrap();
    fx.refused(
        org,
        &oidc("oid-attacker", Some("root@a.test"), &[ADMINS], true),
        Refusal::NotLinked,
    )
    .await;
    fx.refused(
        org,
        &saml("root@a.test", Some("root@a.test")),
        Refusal::NotLinked,
    )
    .await;
    fx.close().await;
}

/// Fail closed: when the audit log refuses the success event, nothing commits (no user,
/// no link, no session).
#[tokio::test]
async fn a_failing_audit_log_commits_nothing() {
    let fx = fx().await;
    fx.jit(true).await;
    let users = fx.users().await;
    fx.audit.set_failing(true);
    let frank = oidc("oid-frank", Some("frank@a.test"), &[], true);
    match fx.sign_in(fx.orgs[0], &frank).await {
        Err(FederatedError::Unavailable(procuhelp_auth::AuthError::Audit(_))) => {}
        other => panic!("expected the audit error, got {other:?}"),
    }
    assert_eq!(fx.users().await, users);
    let links: i64 = sqlx::query_scalar("SELECT count(*) FROM app.sso_identities")
        .fetch_one(&fx.admin)
        .await
        .unwrap();
    assert_eq!(links, 0);
    fx.audit.set_failing(false);
    fx.sign_in(fx.orgs[0], &frank).await.unwrap();
    fx.close().await;
}
