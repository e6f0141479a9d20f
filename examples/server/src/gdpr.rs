//! `procuhelp-server gdpr export|erase`: a data subject's requests from the command line,
//! through the same functions as the API (`procuhelp_axum::subject_rights`), recorded in
//! the organisation's trail with the operator's command as context.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;

use anyhow::Context as _;
use procuhelp_audit::{Action, Actor, AuditEvent, Outcome};
use procuhelp_auth::directory::Email;
use procuhelp_axum::subject_rights::{self, Person};
use procuhelp_core::OrgId;
use serde_json::json;

use crate::cli::GdprCommand;
use crate::{database, report};

/// Runs one `gdpr` subcommand.
pub async fn command(command: GdprCommand) -> anyhow::Result<()> {
    let (org, email, db) = match &command {
        GdprCommand::Export { org, email, db, .. } | GdprCommand::Erase { org, email, db } => {
            (*org, email, db)
        }
    };
    let person = Person::Email(Email::parse(email).context("--email")?);
    let (log, pool, database) = crate::open_audit_log(db).await?;
    let register: Vec<_> = database::schema().personal_data().copied().collect();
    let outcome = run(&command, org, &person, &log, &pool, &register).await;
    pool.close().await;
    database.close().await?;
    report(&outcome?);
    Ok(())
}

async fn run(
    command: &GdprCommand,
    org: OrgId,
    person: &Person,
    log: &procuhelp_audit::PgAuditSink,
    pool: &sqlx::PgPool,
    register: &[procuhelp_tenancy::personal_data::PersonalTable],
) -> anyhow::Result<Vec<String>> {
    let tenants = procuhelp_tenancy::TenantDb::new(pool.clone());
    let now = time::OffsetDateTime::now_utc();
    let event = |action| {
        AuditEvent::new(Some(org), Actor::System, action, Outcome::Success)
            .at(now)
            .context(json!({ "via": "cli" }))
    };
    let mut tx = tenants.begin(org).await?;
    match command {
        GdprCommand::Export { out, .. } => {
            // Created before anything is read: a path that cannot be written is found
            // before the export is recorded.
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(out)
                .with_context(|| format!("creating {}", out.display()))?;
            let written = async {
                let export = subject_rights::export(
                    &mut tx,
                    log,
                    register,
                    person,
                    event(Action::PersonalDataExported),
                    now,
                )
                .await
                .map_err(no_such_person)?;
                let body = serde_json::to_vec_pretty(&export)?;
                file.write_all(&body)
                    .and_then(|()| file.sync_all())
                    .with_context(|| format!("writing {}", out.display()))?;
                tx.commit().await?;
                anyhow::Ok(export)
            }
            .await;
            let export = match written {
                Ok(export) => export,
                Err(e) => {
                    // Nothing half-written stays behind (the transaction rolled back).
                    let _ = std::fs::remove_file(out);
                    return Err(e);
                }
            };
            let rows: usize = export.manifest.sections.iter().map(|s| s.rows).sum();
            Ok(vec![format!(
                "exported {rows} records about user {} in {org} to {}; recorded as \
                 personal_data.exported",
                export.manifest.user_id,
                out.display()
            )])
        }
        GdprCommand::Erase { .. } => {
            let erased = subject_rights::erase(
                &mut tx,
                log,
                register,
                person,
                event(Action::PersonalDataErased),
                now,
            )
            .await
            .map_err(no_such_person)?;
            tx.commit().await?;
            let deleted: u64 = erased.rows_deleted.values().sum();
            Ok(vec![format!(
                "erased user {} in {org}: {} sessions ended, {deleted} rows deleted, {} audit \
                 keys destroyed; recorded at seq {}. Note: {}.",
                erased.user_id,
                erased.sessions_ended,
                erased.audit_keys_erased,
                erased.audit_seq.map_or("-".to_owned(), |s| s.to_string()),
                erased.note,
            )])
        }
    }
}

fn no_such_person(e: procuhelp_axum::Error) -> anyhow::Error {
    match e {
        procuhelp_axum::Error::Auth(procuhelp_auth::AuthError::NotFound) => anyhow::anyhow!(
            "no person with that address in this organisation (never there, or already erased)"
        ),
        other => other.into(),
    }
}
