//! `procuhelp-server org create`: an organisation in this deployment's region, with its
//! first admin invited (no password typed by anyone but them), recorded in the system
//! chain (`org.created`) and the organisation's (`user.invited`).
//!
//! Whole or not at all: if the admin or the invitation cannot be created, the new
//! organisation is deleted again (it holds nothing yet) and nothing is recorded.

use anyhow::Context as _;
use procuhelp_audit::{Action, Actor, AuditEvent, AuditSink as _, Outcome, PgAuditSink};
use procuhelp_auth::directory::{self, Email, NewUser};
use procuhelp_auth::session::Credential;
use procuhelp_auth::{Role, invitation};
use procuhelp_core::{OrgId, UserId};
use procuhelp_tenancy::{RuntimeRole, TenantDb};
use serde_json::json;
use sqlx::PgPool;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::cli::OrgCommand;
use crate::{database, residency};

/// Runs one `org` subcommand; returns the lines to print (the last is the invitation
/// token: secret, shown once).
pub async fn command(command: OrgCommand) -> anyhow::Result<Vec<String>> {
    let (name, admin_email, admin_name, db) = match command {
        OrgCommand::Create {
            name,
            admin_email,
            admin_name,
            db,
        } => (name, admin_email, admin_name, db),
        OrgCommand::Offboard {
            org,
            confirm,
            out,
            db,
        } => return crate::offboard::command(&org, &confirm, &out, &db).await,
    };
    // Bad input is refused before anything is opened.
    let email = Email::parse(&admin_email).context("--admin-email")?;
    let admin_name = check_admin_name(&admin_name).context("--admin-name")?;
    let name = check_name(&name).context("--name")?;
    let residency = residency::load(&db)?;
    let (vault, database) = crate::open(&db).await?;
    drop(vault);
    if database.is_embedded() {
        let owner = database.owner_pool().await?;
        let migrated = match database::schema()
            .migrate(&owner, &RuntimeRole::default())
            .await
        {
            Ok(()) => residency::apply(&owner, &db, &residency).await,
            Err(e) => Err(e.into()),
        };
        owner.close().await;
        migrated.context("migrating the embedded database")?;
    }
    database.close().await?;
    let (log, runtime, database) = crate::open_audit_log(&db).await?;
    let owner = database.owner_pool().await;
    let created = match owner {
        Ok(owner) => {
            let created = create(
                &owner,
                &runtime,
                &log,
                &name,
                &email,
                &admin_name,
                &residency,
                Via::Cli,
            )
            .await
            .map(|c| {
                vec![
                    format!(
                        "organisation {} ({name}) created in region {}",
                        c.org, c.region
                    ),
                    format!(
                        "first admin {} invited until {}",
                        email.as_str(),
                        c.expires_at
                    ),
                    "give them this token once; they set their password with POST \
                     /api/invitations/accept {\"token\": ..., \"password\": ...}:"
                        .to_owned(),
                    c.token.expose(),
                ]
            });
            owner.close().await;
            created
        }
        Err(e) => Err(e),
    };
    runtime.close().await;
    database.close().await?;
    created
}

/// Checks a display name of the first admin: 1 to 200 characters, no control characters.
pub fn check_admin_name(name: &str) -> anyhow::Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        anyhow::bail!("1 to 200 characters, no control characters");
    }
    Ok(name.to_owned())
}

/// Checks an organisation's name: 1 to 200 characters, no control characters.
pub fn check_name(name: &str) -> anyhow::Result<String> {
    check_admin_name(name)
}

/// Who created an organisation (recorded in `org.created`).
#[derive(Debug, Clone, Copy)]
pub enum Via<'a> {
    /// `procuhelp-server org create`.
    Cli,
    /// The operator API, by a named operator.
    Operator(&'a procuhelp_auth::operator::OperatorName),
}

impl Via<'_> {
    fn context(self) -> serde_json::Value {
        match self {
            Via::Cli => json!({ "via": "cli" }),
            Via::Operator(name) => json!({ "via": "operator-api", "operator": name.as_str() }),
        }
    }
}

/// An organisation just created, with its first admin's invitation.
#[derive(Debug)]
pub struct Created {
    /// The organisation.
    pub org: OrgId,
    /// Its region.
    pub region: procuhelp_tenancy::residency::Region,
    /// The first admin.
    pub admin: UserId,
    /// The invitation (secret: shown once).
    pub token: Credential,
    /// When the invitation expires (RFC 3339).
    pub expires_at: String,
}

/// Creates an organisation in this deployment's region with its first admin invited
/// (whole or nothing), and records `org.created` in the system chain.
#[allow(clippy::too_many_arguments)]
pub async fn create(
    owner: &PgPool,
    runtime: &PgPool,
    log: &PgAuditSink,
    name: &str,
    email: &Email,
    admin_name: &str,
    residency: &procuhelp_tenancy::residency::Residency,
    via: Via<'_>,
) -> anyhow::Result<Created> {
    let region = procuhelp_tenancy::residency::deployment_region(owner).await?;
    if region != residency.region {
        anyhow::bail!(
            "the database serves region {region}, the configuration {}: an organisation \
             created here would not be served",
            residency.region
        );
    }
    let org = procuhelp_tenancy::create_organisation_in(owner, name, region).await?;
    let now = OffsetDateTime::now_utc();
    let invited = invite_admin(runtime, log, org, email, admin_name, now, via).await;
    let (user, token) = match invited {
        Ok(invited) => invited,
        Err(e) => {
            // Nothing of it committed but the organisation's row: take it back.
            if let Err(undo) = delete_new_organisation(owner, org).await {
                return Err(e.context(format!(
                    "and organisation {org} could not be removed again ({undo:#}): delete it by hand"
                )));
            }
            return Err(e);
        }
    };
    let mut context = via.context();
    context["region"] = json!(region.as_str());
    context["first_admin"] = json!(user.to_string());
    log.record(
        AuditEvent::new(None, Actor::System, Action::OrgCreated, Outcome::Success)
            .at(now)
            .target(format!("org:{org}"))
            .context(context),
    )
    .await
    .with_context(|| {
        format!(
            "organisation {org} and its first admin's invitation were created, but org.created \
             could not be recorded"
        )
    })?;
    Ok(Created {
        org,
        region,
        admin: user,
        token,
        expires_at: (now + invitation::DEFAULT_LIFETIME).format(&Rfc3339)?,
    })
}

/// The first admin and their invitation, with its `user.invited` event, in one
/// transaction of `org`.
async fn invite_admin(
    runtime: &PgPool,
    log: &PgAuditSink,
    org: OrgId,
    email: &Email,
    admin_name: &str,
    now: OffsetDateTime,
    via: Via<'_>,
) -> anyhow::Result<(UserId, Credential)> {
    let mut tx = TenantDb::new(runtime.clone()).begin(org).await?;
    let user = directory::create(
        &mut tx,
        NewUser {
            email: email.clone(),
            display_name: admin_name.to_owned(),
            role: Some(Role::Admin),
            password_hash: None,
        },
        now,
    )
    .await?;
    let token = invitation::invite(&mut tx, user, None, now, invitation::DEFAULT_LIFETIME).await?;
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
        .person(user, Some(email.as_str()), Some(admin_name))
        .context({
            let mut context = via.context();
            context["role"] = json!("admin");
            context["expires_at"] = json!(expires);
            context
        }),
    )
    .await?;
    tx.commit().await?;
    Ok((user, token))
}

/// Deletes an organisation created a moment ago that holds nothing (owner pool; the owner
/// is bound by row-level security too, so it enters the organisation first).
async fn delete_new_organisation(owner: &PgPool, org: OrgId) -> anyhow::Result<()> {
    let mut tx = owner.begin().await?;
    sqlx::query("SELECT set_config('procuhelp.org_id', $1, true)")
        .bind(org.to_string())
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM app.organisations WHERE id = $1")
        .bind(org.as_uuid())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}
