//! The SCIM store (`scim::store`, `scim::token`) on a real PostgreSQL, without HTTP: what a
//! provisioning client can change, what it can see, and what it can never touch.
//!
//! Each test states the promise it checks; each fails if that promise breaks (a create
//! that adopts a local user, a deprovisioning that leaves a session alive, a role that does
//! not follow its group, a token that works in another organisation, a refused request
//! that leaves a trace).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

#[path = "support/auth_fx.rs"]
mod auth_fx;

use procuhelp_auth::directory::{self, Email, UserStatus};
use procuhelp_auth::scim::filter::parse_filter;
use procuhelp_auth::scim::model::{Page, ResourceKind, parse_group, parse_user};
use procuhelp_auth::scim::patch::{GroupChange, UserChange, parse_group_patch, parse_user_patch};
use procuhelp_auth::scim::store::{self, RoleMapping};
use procuhelp_auth::scim::{ScimError, token};
use procuhelp_auth::session::{self, Credential, SessionPolicy, SessionStage};
use procuhelp_auth::{AuthError, Role};
use procuhelp_core::{OrgId, UserId};
use procuhelp_tenancy::testkit::ScratchDb;
use procuhelp_tenancy::{TenantDb, TenantTx};
use serde_json::json;
use time::{Duration, OffsetDateTime};

const NOW: OffsetDateTime = time::macros::datetime!(2026-11-25 09:00 UTC);
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

struct Fx {
    scratch: ScratchDb,
    pool: sqlx::PgPool,
    db: TenantDb,
    orgs: [OrgId; 2],
}

impl Fx {
    async fn new() -> Self {
        let (scratch, [a, b]) = auth_fx::two_orgs().await;
        let pool = scratch.runtime_pool(2).await.unwrap();
        let db = TenantDb::new(pool.clone());
        Self {
            scratch,
            pool,
            db,
            orgs: [a, b],
        }
    }

    async fn tx(&self, org: usize) -> TenantTx {
        self.db.begin(self.orgs[org]).await.unwrap()
    }

    async fn done(self) {
        self.pool.close().await;
        self.scratch.drop_all().await.unwrap();
    }
}

fn user_body(user_name: &str, extra: serde_json::Value) -> Vec<u8> {
    let mut body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    body.to_string().into_bytes()
}

fn patch_body(ops: serde_json::Value) -> Vec<u8> {
    json!({ "schemas": [PATCH_OP], "Operations": ops })
        .to_string()
        .into_bytes()
}

/// Creates a SCIM user `user_name` in `org` and commits.
async fn provision(fx: &Fx, org: usize, user_name: &str, extra: serde_json::Value) -> UserId {
    provision_at(fx, org, user_name, extra, NOW).await
}

async fn provision_at(
    fx: &Fx,
    org: usize,
    user_name: &str,
    extra: serde_json::Value,
    at: OffsetDateTime,
) -> UserId {
    let mut tx = fx.tx(org).await;
    let input = parse_user(&user_body(user_name, extra)).unwrap();
    let (user, _) = store::create_user(&mut tx, input, at).await.unwrap();
    tx.commit().await.unwrap();
    user.id
}

/// Creates a local (not SCIM) user and commits.
async fn local_user(fx: &Fx, org: usize, email: &str, role: Role) -> UserId {
    auth_fx::create_user(&fx.db, fx.orgs[org], email, "Local", role, None, NOW).await
}

async fn sign_in(fx: &Fx, org: usize, user: UserId) -> Credential {
    let (stage, policy) = (SessionStage::Full, SessionPolicy::default());
    auth_fx::open_session(&fx.db, fx.orgs[org], user, stage, policy, NOW)
        .await
        .1
}

async fn session_works(fx: &Fx, org: usize, credential: &Credential) -> bool {
    let mut tx = fx.tx(org).await;
    let ok = session::authenticate(&mut tx, credential, NOW + Duration::minutes(1))
        .await
        .is_ok();
    tx.rollback().await.unwrap();
    ok
}

async fn role_of(fx: &Fx, org: usize, user: UserId) -> Role {
    let mut tx = fx.tx(org).await;
    let role = directory::get(&mut tx, user).await.unwrap().role;
    tx.rollback().await.unwrap();
    role
}

#[tokio::test]
async fn users_are_created_replaced_patched_and_deactivated() {
    let fx = Fx::new().await;
    let id = provision(
        &fx,
        0,
        "ada@contoso.com",
        json!({ "externalId": "oid-1", "displayName": "Ada", "name": {"givenName": "Ada"} }),
    )
    .await;

    let mut tx = fx.tx(0).await;
    let got = store::user(&mut tx, &id.to_string()).await.unwrap();
    assert_eq!(
        (got.user_name.as_str(), got.email.as_str(), got.active),
        ("ada@contoso.com", "ada@contoso.com", true)
    );
    assert_eq!(got.external_id.as_deref(), Some("oid-1"));
    assert_eq!(got.given_name.as_deref(), Some("Ada"));
    // A new user starts with the least role.
    assert_eq!(
        directory::get(&mut tx, id).await.unwrap().role,
        Role::ReadOnly
    );

    // PUT replaces every attribute (the name parts are gone); without `active` the status
    // stays as it is.
    let input = parse_user(&user_body(
        "ada@contoso.com",
        json!({ "displayName": "Ada L" }),
    ))
    .unwrap();
    let (put, effects) = store::replace_user(&mut tx, &id.to_string(), input, NOW)
        .await
        .unwrap();
    assert_eq!(put.display_name.as_deref(), Some("Ada L"));
    assert_eq!(
        (put.external_id.as_deref(), put.given_name.as_deref()),
        (None, None)
    );
    assert!(put.active);
    assert_eq!(effects, store::Effects::default());

    // Entra's PATCH: a work address and a family name.
    let changes = parse_user_patch(&patch_body(json!([
        {"op": "Add", "path": "emails[type eq \"work\"].value", "value": "ada.l@contoso.com"},
        {"op": "Replace", "path": "name.familyName", "value": "Lovelace"},
    ])))
    .unwrap();
    let (patched, _) = store::patch_user(&mut tx, &id.to_string(), &changes, NOW)
        .await
        .unwrap();
    assert_eq!(patched.family_name.as_deref(), Some("Lovelace"));
    assert_eq!(patched.emails.len(), 1);
    assert_eq!(patched.emails[0].value, "ada.l@contoso.com");
    // userName is an address: it stays the sign-in address.
    assert_eq!(patched.email, "ada@contoso.com");

    // Entra deprovisions with `"active": "False"` and re-activates with `true`.
    let off = parse_user_patch(&patch_body(
        json!([{"op": "Replace", "path": "active", "value": "False"}]),
    ))
    .unwrap();
    let (user, effects) = store::patch_user(&mut tx, &id.to_string(), &off, NOW)
        .await
        .unwrap();
    assert!(!user.active);
    assert_eq!(effects.deprovisioned, Some(0));
    assert_eq!(
        directory::get(&mut tx, id).await.unwrap().status,
        UserStatus::Disabled
    );
    // Deactivating again does nothing more.
    let (_, again) = store::patch_user(&mut tx, &id.to_string(), &off, NOW)
        .await
        .unwrap();
    assert_eq!(again.deprovisioned, None);
    let on = [UserChange::Active(true)];
    let (user, effects) = store::patch_user(&mut tx, &id.to_string(), &on, NOW)
        .await
        .unwrap();
    assert!(user.active && effects.reactivated);
    assert_eq!(
        directory::get(&mut tx, id).await.unwrap().status,
        UserStatus::Active
    );
    tx.commit().await.unwrap();
    fx.done().await;
}

#[tokio::test]
async fn deprovisioning_ends_every_session_and_marks_the_user() {
    let fx = Fx::new().await;
    let id = provision(&fx, 0, "bob@contoso.com", json!({})).await;
    let first = sign_in(&fx, 0, id).await;
    let second = sign_in(&fx, 0, id).await;
    assert!(session_works(&fx, 0, &first).await);

    let mut tx = fx.tx(0).await;
    let changes = [UserChange::Active(false)];
    let (_, effects) = store::patch_user(&mut tx, &id.to_string(), &changes, NOW)
        .await
        .unwrap();
    assert_eq!(effects.deprovisioned, Some(2));
    tx.commit().await.unwrap();
    assert!(!session_works(&fx, 0, &first).await);
    assert!(!session_works(&fx, 0, &second).await);

    let mut tx = fx.tx(0).await;
    let email = Email::parse("bob@contoso.com").unwrap();
    assert!(
        procuhelp_auth::scim::is_deprovisioned_by_scim(&mut tx, &email)
            .await
            .unwrap()
    );
    assert!(
        procuhelp_auth::scim::user_deprovisioned_by_scim(&mut tx, id)
            .await
            .unwrap()
    );
    tx.rollback().await.unwrap();

    // DELETE: sessions opened since are ended too, and SCIM no longer sees the user (the
    // row stays for the audit trail); a later POST of the same userName revives them.
    let mut tx = fx.tx(0).await;
    store::patch_user(&mut tx, &id.to_string(), &[UserChange::Active(true)], NOW)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let third = sign_in(&fx, 0, id).await;
    let mut tx = fx.tx(0).await;
    let effects = store::delete_user(&mut tx, &id.to_string(), NOW)
        .await
        .unwrap();
    assert_eq!(effects.deprovisioned, Some(1));
    assert_eq!(
        store::user(&mut tx, &id.to_string()).await.unwrap_err(),
        ScimError::not_found()
    );
    assert_eq!(
        store::list_users(&mut tx, None, Page::parse(None, None).unwrap())
            .await
            .unwrap()
            .0,
        0
    );
    tx.commit().await.unwrap();
    assert!(!session_works(&fx, 0, &third).await);

    let mut tx = fx.tx(0).await;
    let input = parse_user(&user_body("bob@contoso.com", json!({}))).unwrap();
    let (revived, effects) = store::create_user(&mut tx, input, NOW).await.unwrap();
    assert!(effects.revived && effects.reactivated);
    assert_eq!(revived.id, id);
    tx.commit().await.unwrap();
    fx.done().await;
}

#[tokio::test]
async fn roles_follow_groups_and_a_role_change_ends_sessions() {
    let fx = Fx::new().await;
    let ada = provision(&fx, 0, "ada@contoso.com", json!({})).await;
    let bob = provision(&fx, 0, "bob@contoso.com", json!({})).await;
    let ada_session = sign_in(&fx, 0, ada).await;

    let mut tx = fx.tx(0).await;
    let mapping = [
        RoleMapping {
            group: "Approvers".into(),
            role: Role::Approver,
        },
        RoleMapping {
            group: "Buyers".into(),
            role: Role::Requester,
        },
    ];
    // No one is in a group yet: the mapping changes nobody.
    assert!(
        store::set_settings(&mut tx, &mapping, false, NOW)
            .await
            .unwrap()
            .is_empty()
    );
    let body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "Approvers",
        "members": [{"value": ada.to_string()}],
    });
    let (approvers, effects) = store::create_group(
        &mut tx,
        parse_group(body.to_string().as_bytes()).unwrap(),
        NOW,
    )
    .await
    .unwrap();
    assert_eq!(effects.members_added, 1);
    assert_eq!(effects.role_changes.len(), 1);
    let change = effects.role_changes[0];
    assert_eq!(
        (change.user, change.from, change.to, change.sessions_revoked),
        (ada, Role::ReadOnly, Role::Approver, 1)
    );
    tx.commit().await.unwrap();
    assert_eq!(role_of(&fx, 0, ada).await, Role::Approver);
    assert!(!session_works(&fx, 0, &ada_session).await);

    // In two mapped groups: the most privileged role wins.
    let mut tx = fx.tx(0).await;
    let body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "Buyers",
        "members": [{"value": ada.to_string()}, {"value": bob.to_string()}],
    });
    let (buyers, effects) = store::create_group(
        &mut tx,
        parse_group(body.to_string().as_bytes()).unwrap(),
        NOW,
    )
    .await
    .unwrap();
    assert_eq!(effects.role_changes.len(), 1, "only bob changes");
    tx.commit().await.unwrap();
    assert_eq!(role_of(&fx, 0, ada).await, Role::Approver);
    assert_eq!(role_of(&fx, 0, bob).await, Role::Requester);

    // Entra removes ada from Approvers (member in `value`): she falls back to Requester.
    let mut tx = fx.tx(0).await;
    let changes = parse_group_patch(&patch_body(json!([
        {"op": "Remove", "path": "members", "value": [{"value": ada.to_string()}]}
    ])))
    .unwrap();
    let (group, effects) = store::patch_group(&mut tx, &approvers.id.to_string(), &changes, NOW)
        .await
        .unwrap();
    assert!(group.members.is_empty());
    assert_eq!(effects.members_removed, 1);
    assert_eq!(effects.role_changes[0].to, Role::Requester);
    // Renaming Buyers to a name no mapping knows demotes both its members.
    let rename = [GroupChange::DisplayName("Staff".into())];
    let (_, effects) = store::patch_group(&mut tx, &buyers.id.to_string(), &rename, NOW)
        .await
        .unwrap();
    assert_eq!(effects.role_changes.len(), 2);
    tx.commit().await.unwrap();
    assert_eq!(role_of(&fx, 0, ada).await, Role::ReadOnly);
    assert_eq!(role_of(&fx, 0, bob).await, Role::ReadOnly);

    // A new mapping naming the group by id promotes its members at once.
    let mut tx = fx.tx(0).await;
    let by_id = [RoleMapping {
        group: buyers.id.to_string(),
        role: Role::Requester,
    }];
    let changes = store::set_settings(&mut tx, &by_id, true, NOW)
        .await
        .unwrap();
    assert_eq!(changes.len(), 2);
    let settings = store::settings(&mut tx).await.unwrap();
    assert_eq!(settings.role_mappings, by_id);
    assert!(settings.sso_jit_provisioning);
    // Deleting the group recomputes its members' roles.
    let effects = store::delete_group(&mut tx, &buyers.id.to_string(), NOW)
        .await
        .unwrap();
    assert_eq!(
        (effects.members_removed, effects.role_changes.len()),
        (2, 2)
    );
    tx.commit().await.unwrap();
    assert_eq!(role_of(&fx, 0, bob).await, Role::ReadOnly);
    fx.done().await;
}

#[tokio::test]
async fn filters_and_paging() {
    let fx = Fx::new().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            provision_at(
                &fx,
                0,
                &format!("user{i}@contoso.com"),
                json!({ "externalId": format!("oid-{i}"), "displayName": format!("User {i}") }),
                NOW + Duration::seconds(i),
            )
            .await,
        );
    }
    let mut tx = fx.tx(0).await;
    let all = Page::parse(None, None).unwrap();

    // userName is case-insensitive, externalId is not.
    let f = parse_filter(r#"userName eq "USER3@Contoso.com""#, ResourceKind::User).unwrap();
    let (total, users) = store::list_users(&mut tx, Some(&f), all).await.unwrap();
    assert_eq!((total, users[0].id), (1, ids[3]));
    let f = parse_filter(r#"externalId eq "oid-2""#, ResourceKind::User).unwrap();
    assert_eq!(
        store::list_users(&mut tx, Some(&f), all).await.unwrap().1[0].id,
        ids[2]
    );
    let f = parse_filter(r#"externalId eq "OID-2""#, ResourceKind::User).unwrap();
    assert_eq!(
        store::list_users(&mut tx, Some(&f), all).await.unwrap().0,
        0
    );
    // A filter value is data, never SQL.
    let f = parse_filter(r#"userName eq "x' OR '1'='1""#, ResourceKind::User).unwrap();
    assert_eq!(
        store::list_users(&mut tx, Some(&f), all).await.unwrap().0,
        0
    );

    // Pages: oldest first, the total whatever the page, count 0 gives only the total.
    let page = Page::parse(Some("2"), Some("2")).unwrap();
    let (total, users) = store::list_users(&mut tx, None, page).await.unwrap();
    assert_eq!(total, 5);
    assert_eq!(users.iter().map(|u| u.id).collect::<Vec<_>>(), ids[1..3]);
    let (total, users) =
        store::list_users(&mut tx, None, Page::parse(Some("5"), Some("10")).unwrap())
            .await
            .unwrap();
    assert_eq!((total, users.len()), (5, 1));
    let (total, users) = store::list_users(&mut tx, None, Page::parse(None, Some("0")).unwrap())
        .await
        .unwrap();
    assert_eq!((total, users.len()), (5, 0));
    let (total, users) = store::list_users(&mut tx, None, Page::parse(Some("99"), None).unwrap())
        .await
        .unwrap();
    assert_eq!((total, users.len()), (5, 0));

    // Groups: displayName is case-insensitive; userName is not a group attribute.
    for (i, name) in ["Sales", "Finance", "Legal"].into_iter().enumerate() {
        let body = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": name, "externalId": format!("g-{name}"),
        });
        let at = NOW + Duration::seconds(i64::try_from(i).unwrap());
        store::create_group(
            &mut tx,
            parse_group(body.to_string().as_bytes()).unwrap(),
            at,
        )
        .await
        .unwrap();
    }
    let f = parse_filter(r#"displayName eq "finance""#, ResourceKind::Group).unwrap();
    let (total, groups) = store::list_groups(&mut tx, Some(&f), all).await.unwrap();
    assert_eq!((total, groups[0].display_name.as_str()), (1, "Finance"));
    let f = parse_filter(r#"externalId eq "g-Legal""#, ResourceKind::Group).unwrap();
    assert_eq!(
        store::list_groups(&mut tx, Some(&f), all).await.unwrap().0,
        1
    );
    let f = parse_filter(r#"userName eq "x""#, ResourceKind::User).unwrap();
    assert_eq!(
        store::list_groups(&mut tx, Some(&f), all)
            .await
            .unwrap_err()
            .scim_type,
        Some("invalidFilter")
    );
    let (total, groups) =
        store::list_groups(&mut tx, None, Page::parse(Some("3"), Some("5")).unwrap())
            .await
            .unwrap();
    assert_eq!(
        (total, groups.len(), groups[0].display_name.as_str()),
        (3, 1, "Legal")
    );
    tx.rollback().await.unwrap();
    fx.done().await;
}

/// `authenticate_once` (one autocommit statement, before any transaction) answers as
/// `authenticate` does inside the organisation's transaction, case by case.
#[tokio::test]
async fn authenticate_once_agrees_with_authenticate() {
    let fx = Fx::new().await;
    let mut tx = fx.tx(0).await;
    let (token_id, secret) = token::issue(&mut tx, "Entra", Duration::days(30), None, NOW)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let unknown_org = OrgId::new();
    let other_secret = session::SessionToken::generate().unwrap();
    // (organisation, presented, at, expected id): both functions must agree on each.
    let cases = [
        (fx.orgs[0], secret.expose(), NOW, Some(token_id)),
        (fx.orgs[1], secret.expose(), NOW, None),
        (unknown_org, secret.expose(), NOW, None),
        (fx.orgs[0], other_secret.expose(), NOW, None),
        (fx.orgs[0], "not a token", NOW, None),
        (fx.orgs[0], secret.expose(), NOW + Duration::days(30), None),
    ];
    let check = |org: OrgId, presented: &str, at: OffsetDateTime, want: Option<_>| {
        let fx = &fx;
        let presented = presented.to_owned();
        async move {
            let once = token::authenticate_once(&fx.db, org, &presented, at).await;
            match want {
                Some(id) => assert_eq!(once.unwrap(), id, "{org}"),
                None => assert!(
                    matches!(once, Err(AuthError::Unauthenticated)),
                    "{org}: {once:?}"
                ),
            }
            if org != unknown_org {
                let mut tx = fx.db.begin(org).await.unwrap();
                let inside = token::authenticate(&mut tx, &presented, at).await;
                assert_eq!(inside.ok(), want, "{org}");
                tx.rollback().await.unwrap();
            }
        }
    };
    for (org, presented, at, want) in cases {
        check(org, presented, at, want).await;
    }
    // Revoked: refused by both.
    let mut tx = fx.tx(0).await;
    assert!(token::revoke(&mut tx, token_id, NOW).await.unwrap());
    tx.commit().await.unwrap();
    check(fx.orgs[0], secret.expose(), NOW, None).await;
    fx.done().await;
}

#[tokio::test]
async fn tokens_and_resources_stay_in_their_organisation() {
    let fx = Fx::new().await;
    let mut tx = fx.tx(0).await;
    let (token_id, secret) = token::issue(&mut tx, "Entra", Duration::days(30), None, NOW)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = fx.tx(0).await;
    assert_eq!(
        token::authenticate(&mut tx, secret.expose(), NOW)
            .await
            .unwrap(),
        token_id
    );
    tx.rollback().await.unwrap();
    // Org A's token means nothing in org B.
    let mut tx = fx.tx(1).await;
    assert!(matches!(
        token::authenticate(&mut tx, secret.expose(), NOW).await,
        Err(AuthError::Unauthenticated)
    ));
    assert!(token::list(&mut tx).await.unwrap().is_empty());
    assert!(!token::revoke(&mut tx, token_id, NOW).await.unwrap());
    tx.commit().await.unwrap();

    // Expired, malformed and revoked: refused.
    let mut tx = fx.tx(0).await;
    assert!(
        token::authenticate(&mut tx, secret.expose(), NOW + Duration::days(30))
            .await
            .is_err()
    );
    assert!(
        token::authenticate(&mut tx, "not a token", NOW)
            .await
            .is_err()
    );
    assert!(token::revoke(&mut tx, token_id, NOW).await.unwrap());
    tx.commit().await.unwrap();
    let mut tx = fx.tx(0).await;
    assert!(
        token::authenticate(&mut tx, secret.expose(), NOW)
            .await
            .is_err()
    );
    // Listed without the secret, with its revocation.
    let listed = token::list(&mut tx).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].revoked_at, Some(NOW));
    assert!(!format!("{listed:?}").contains(secret.expose()));
    // Bad issue parameters.
    assert!(
        token::issue(&mut tx, " ", Duration::days(1), None, NOW)
            .await
            .is_err()
    );
    assert!(
        token::issue(&mut tx, "x", Duration::days(731), None, NOW)
            .await
            .is_err()
    );
    tx.rollback().await.unwrap();

    // A user and a group of org A are unknown to org B, by id, list and membership.
    let ada = provision(&fx, 0, "ada@contoso.com", json!({})).await;
    let mut tx = fx.tx(1).await;
    assert_eq!(
        store::user(&mut tx, &ada.to_string()).await.unwrap_err(),
        ScimError::not_found()
    );
    assert_eq!(
        store::list_users(&mut tx, None, Page::parse(None, None).unwrap())
            .await
            .unwrap()
            .0,
        0
    );
    let body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "G", "members": [{"value": ada.to_string()}],
    });
    assert_eq!(
        store::create_group(
            &mut tx,
            parse_group(body.to_string().as_bytes()).unwrap(),
            NOW
        )
        .await
        .unwrap_err(),
        ScimError::invalid_value("unknown member")
    );
    let changes = [UserChange::Active(false)];
    assert_eq!(
        store::patch_user(&mut tx, &ada.to_string(), &changes, NOW)
            .await
            .unwrap_err(),
        ScimError::not_found()
    );
    tx.rollback().await.unwrap();
    // Same userName in org B: another user, nothing shared.
    let other = provision(&fx, 1, "ada@contoso.com", json!({})).await;
    assert_ne!(other, ada);
    fx.done().await;
}

#[tokio::test]
async fn scim_never_adopts_a_local_user_until_an_admin_hands_them_over() {
    let fx = Fx::new().await;
    let local = local_user(&fx, 0, "boss@contoso.com", Role::Admin).await;
    let session = sign_in(&fx, 0, local).await;

    let mut tx = fx.tx(0).await;
    // Invisible by id, list and filter; refused as a member; no create under their name.
    assert_eq!(
        store::user(&mut tx, &local.to_string()).await.unwrap_err(),
        ScimError::not_found()
    );
    assert!(
        store::is_unmanaged_user(&mut tx, &local.to_string())
            .await
            .unwrap()
    );
    let f = parse_filter(r#"userName eq "boss@contoso.com""#, ResourceKind::User).unwrap();
    assert_eq!(
        store::list_users(&mut tx, Some(&f), Page::parse(None, None).unwrap())
            .await
            .unwrap()
            .0,
        0
    );
    let input = parse_user(&user_body("boss@contoso.com", json!({"active": false}))).unwrap();
    let refused = store::create_user(&mut tx, input.clone(), NOW)
        .await
        .unwrap_err();
    assert_eq!(refused, ScimError::not_managed());
    assert_eq!(
        store::create_target(&mut tx, &input).await.unwrap(),
        Some(local)
    );
    // Nor under their address in `emails` with another userName.
    let input = parse_user(&user_body(
        "boss",
        json!({"emails": [{"value": "boss@contoso.com", "primary": true}]}),
    ))
    .unwrap();
    assert_eq!(
        store::create_user(&mut tx, input, NOW).await.unwrap_err(),
        ScimError::not_managed()
    );
    tx.rollback().await.unwrap();
    // Nothing happened to them.
    assert_eq!(role_of(&fx, 0, local).await, Role::Admin);
    assert!(session_works(&fx, 0, &session).await);

    // An admin hands them over: now SCIM sees and manages them; their role follows the
    // (empty) group mapping only once one exists.
    let mut tx = fx.tx(0).await;
    let by = uuid::Uuid::now_v7();
    let done = store::hand_over(&mut tx, local, by, NOW).await.unwrap();
    assert_eq!(done.user.user_name, "boss@contoso.com");
    assert_eq!(done.role_change, None);
    assert_eq!(
        store::hand_over(&mut tx, local, by, NOW).await.unwrap_err(),
        ScimError::uniqueness("the user is already managed by SCIM")
    );
    assert_eq!(
        store::hand_over(&mut tx, UserId::new(), by, NOW)
            .await
            .unwrap_err(),
        ScimError::not_found()
    );
    assert!(
        !store::is_unmanaged_user(&mut tx, &local.to_string())
            .await
            .unwrap()
    );
    assert_eq!(
        store::user(&mut tx, &local.to_string()).await.unwrap().id,
        local
    );
    tx.commit().await.unwrap();

    // Handed over with a mapping in force: the role is recomputed at once (no group:
    // the least role) and their sessions end.
    let other = local_user(&fx, 0, "second@contoso.com", Role::Approver).await;
    let other_session = sign_in(&fx, 0, other).await;
    let mut tx = fx.tx(0).await;
    let mapping = [RoleMapping {
        group: "Admins".into(),
        role: Role::Admin,
    }];
    store::set_settings(&mut tx, &mapping, false, NOW)
        .await
        .unwrap();
    let done = store::hand_over(&mut tx, other, by, NOW).await.unwrap();
    let change = done.role_change.unwrap();
    assert_eq!(
        (change.from, change.to, change.sessions_revoked),
        (Role::Approver, Role::ReadOnly, 1)
    );
    tx.commit().await.unwrap();
    assert!(!session_works(&fx, 0, &other_session).await);
    // A handed-over user with local credentials is linkable (an admin decided).
    let mut tx = fx.tx(0).await;
    assert_eq!(
        procuhelp_auth::scim::user_by_user_name(&mut tx, "second@contoso.com")
            .await
            .unwrap(),
        Some(other)
    );
    tx.rollback().await.unwrap();
    fx.done().await;
}

#[tokio::test]
async fn an_admins_disable_wins_over_scim() {
    let fx = Fx::new().await;
    let id = provision(&fx, 0, "carl@contoso.com", json!({})).await;
    let mut tx = fx.tx(0).await;
    directory::set_status(&mut tx, id, UserStatus::Disabled, NOW)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    // `active: true` with another change: refused whole, as the caller rolls back.
    let mut tx = fx.tx(0).await;
    let changes = [
        UserChange::DisplayName("Renamed".into()),
        UserChange::Active(true),
    ];
    assert_eq!(
        store::patch_user(&mut tx, &id.to_string(), &changes, NOW)
            .await
            .unwrap_err(),
        ScimError::disabled_by_admin()
    );
    tx.rollback().await.unwrap();
    let mut tx = fx.tx(0).await;
    let user = store::user(&mut tx, &id.to_string()).await.unwrap();
    assert!(!user.active);
    assert_eq!(user.display_name, None);
    // Deactivating is fine (SCIM agrees with the admin).
    let (_, effects) =
        store::patch_user(&mut tx, &id.to_string(), &[UserChange::Active(false)], NOW)
            .await
            .unwrap();
    assert_eq!(effects.deprovisioned, Some(0));
    tx.commit().await.unwrap();
    fx.done().await;
}

#[tokio::test]
async fn hostile_input_changes_nothing() {
    let fx = Fx::new().await;
    let ada = provision(
        &fx,
        0,
        "ada@contoso.com",
        json!({ "displayName": "Ada", "externalId": "oid-ada" }),
    )
    .await;
    let bob = provision(
        &fx,
        0,
        "bob@contoso.com",
        json!({ "externalId": "oid-bob" }),
    )
    .await;
    let before = {
        let mut tx = fx.tx(0).await;
        let u = store::user(&mut tx, &ada.to_string()).await.unwrap();
        tx.rollback().await.unwrap();
        u
    };

    // Ids that are not UUIDs, or name nobody: 404 before any write.
    let mut tx = fx.tx(0).await;
    for id in [
        "",
        "1 OR 1=1",
        "../Users",
        &uuid::Uuid::now_v7().to_string(),
    ] {
        assert_eq!(
            store::patch_user(&mut tx, id, &[UserChange::Active(false)], NOW)
                .await
                .unwrap_err(),
            ScimError::not_found()
        );
        assert_eq!(
            store::delete_group(&mut tx, id, NOW).await.unwrap_err(),
            ScimError::not_found()
        );
    }
    // A PATCH whose last change is bad applies none of the earlier ones.
    let changes = [
        UserChange::DisplayName("Mallory".into()),
        UserChange::Active(false),
        UserChange::WorkEmail("not an address".into()),
    ];
    assert_eq!(
        store::patch_user(&mut tx, &ada.to_string(), &changes, NOW)
            .await
            .unwrap_err()
            .scim_type,
        Some("invalidValue")
    );
    // Too many addresses after a merge: refused.
    let many: Vec<_> = (0..11)
        .map(|i| json!({"value": format!("a{i}@contoso.com")}))
        .collect();
    let changes = [UserChange::Emails {
        replace: false,
        value: json!(many),
    }];
    assert_eq!(
        store::patch_user(&mut tx, &ada.to_string(), &changes, NOW)
            .await
            .unwrap_err()
            .scim_type,
        Some("tooMany")
    );
    // A group with one unknown member is not created at all.
    let body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "Half",
        "members": [{"value": ada.to_string()}, {"value": "not-a-uuid"}],
    });
    assert_eq!(
        store::create_group(
            &mut tx,
            parse_group(body.to_string().as_bytes()).unwrap(),
            NOW
        )
        .await
        .unwrap_err(),
        ScimError::invalid_value("unknown member")
    );
    assert_eq!(
        store::list_groups(&mut tx, None, Page::parse(None, None).unwrap())
            .await
            .unwrap()
            .0,
        0
    );
    // Nothing of the above reached ada (same transaction: no rollback needed).
    assert_eq!(
        store::user(&mut tx, &ada.to_string()).await.unwrap(),
        before
    );
    tx.commit().await.unwrap();

    // Taking another user's externalId or userName: uniqueness, rolled back by the caller.
    let mut tx = fx.tx(0).await;
    let steal = [UserChange::ExternalId("oid-bob".into())];
    assert_eq!(
        store::patch_user(&mut tx, &ada.to_string(), &steal, NOW)
            .await
            .unwrap_err()
            .scim_type,
        Some("uniqueness")
    );
    tx.rollback().await.unwrap();
    let mut tx = fx.tx(0).await;
    let input = parse_user(&user_body("ada@contoso.com", json!({}))).unwrap();
    assert_eq!(
        store::create_user(&mut tx, input, NOW)
            .await
            .unwrap_err()
            .scim_type,
        Some("uniqueness")
    );
    tx.rollback().await.unwrap();
    let mut tx = fx.tx(0).await;
    assert_eq!(
        store::user(&mut tx, &ada.to_string()).await.unwrap(),
        before
    );
    assert_eq!(
        store::user(&mut tx, &bob.to_string())
            .await
            .unwrap()
            .external_id
            .as_deref(),
        Some("oid-bob")
    );
    // Role mappings: bad group names and too many entries are refused before any write.
    let bad = [RoleMapping {
        group: "\u{0}".into(),
        role: Role::Admin,
    }];
    assert!(store::set_settings(&mut tx, &bad, true, NOW).await.is_err());
    let many: Vec<_> = (0..=store::MAX_ROLE_MAPPINGS)
        .map(|i| RoleMapping {
            group: format!("g{i}"),
            role: Role::Requester,
        })
        .collect();
    assert!(
        store::set_settings(&mut tx, &many, true, NOW)
            .await
            .is_err()
    );
    let settings = store::settings(&mut tx).await.unwrap();
    assert!(settings.role_mappings.is_empty() && !settings.sso_jit_provisioning);
    tx.rollback().await.unwrap();
    fx.done().await;
}
