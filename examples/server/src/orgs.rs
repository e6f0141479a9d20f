//! `procuhelp-server org create`: an organisation in this deployment's region, with its
//! first admin invited (no password typed by anyone but them), recorded in the system
//! chain (`org.created`) and the organisation's (`user.invited`).

use anyhow::Context as _;
use procuhelp_audit::{Action, Actor, AuditEvent, AuditSink as _, Outcome};
use procuhelp_auth::directory::{self, Email, NewUser};
use procuhelp_auth::{Role, invitation};
use procuhelp_tenancy::{RuntimeRole, TenantDb};
use serde_json::json;
use time::format_description::well_known::Rfc3339;

use crate::cli::OrgCommand;
use crate::{database, residency};

/// Runs one `org` subcommand; returns the lines to print.
pub async fn command(command: OrgCommand) -> anyhow::Result<Vec<String>> {
    let OrgCommand::Create {
        name,
        admin_email,
        admin_name,
        db,
    } = command;
    // Bad input is refused before anything is opened.
    let email = Email::parse(&admin_email).context("--admin-email")?;
    let residency = residency::load(&db)?;
    let (vault, database) = crate::open(&db).await?;
    drop(vault);
    if database.is_embedded() {
        let owner = database.owner_pool().await?;
        let migrated = match database::schema()
            .migrate(&owner, &RuntimeRole::default())
            .await
        {
            Ok(()) => residency::apply(&owner, &residency).await,
            Err(e) => Err(e.into()),
        };
        owner.close().await;
        migrated.context("migrating the embedded database")?;
    }
    database.close().await?;
    let (log, runtime, database) = crate::open_audit_log(&db).await?;
    let created = async {
        let owner = database.owner_pool().await?;
        let org = procuhelp_tenancy::create_organisation(&owner, &name).await;
        owner.close().await;
        let org = org?;
        let region = residency.region;
        let now = time::OffsetDateTime::now_utc();
        log.record(
            AuditEvent::new(None, Actor::System, Action::OrgCreated, Outcome::Success)
                .at(now)
                .target(format!("org:{org}"))
                .context(json!({ "region": region.as_str(), "via": "cli" })),
        )
        .await?;
        let mut tx = TenantDb::new(runtime.clone()).begin(org).await?;
        let user = directory::create(
            &mut tx,
            NewUser {
                email: email.clone(),
                display_name: admin_name.clone(),
                role: Some(Role::Admin),
                password_hash: None,
            },
            now,
        )
        .await?;
        let token =
            invitation::invite(&mut tx, user, None, now, invitation::DEFAULT_LIFETIME).await?;
        let expires = (now + invitation::DEFAULT_LIFETIME).format(&Rfc3339)?;
        log.append_in_tx(
            &mut tx,
            &AuditEvent::new(
                Some(org),
                Actor::System,
                Action::UserInvited,
                Outcome::Success,
            )
            .at(now)
            .target(format!("user:{user}"))
            .person(user, Some(email.as_str()), Some(&admin_name))
            .context(json!({ "role": "admin", "expires_at": expires, "via": "cli" })),
        )
        .await?;
        tx.commit().await?;
        anyhow::Ok(vec![
            format!("organisation {org} ({name}) created in region {region}"),
            format!("first admin {} invited until {expires}", email.as_str()),
            "give them this token once; they set their password with POST \
             /api/invitations/accept {\"token\": ..., \"password\": ...}:"
                .to_owned(),
            token.expose(),
        ])
    }
    .await;
    runtime.close().await;
    database.close().await?;
    created
}
