//! The ProcuHelp product assembled from the SDK crates: an axum server over HTTPS with
//! strict browser protections, tenant-scoped data access on PostgreSQL row-level
//! security, and administrative commands.
//!
//! Run it with `cargo run -p procuhelp-server -- serve` (embedded database, self-signed
//! certificate, <https://127.0.0.1:8443/>). The router is built by [`app::app`] and tested
//! in-process with `tower::ServiceExt::oneshot`.
#![forbid(unsafe_code)]

pub mod alerting;
pub mod api;
pub mod app;
pub mod audit_log;
pub mod backups;
pub mod cli;
pub mod connections;
pub mod contracts;
pub mod database;
pub mod disclosure;
pub mod gdpr;
pub mod keys;
pub mod logging;
pub mod mail;
pub mod observability;
pub mod offboard;
pub mod operator_access;
pub mod operator_api;
pub mod orgs;
pub mod pages;
pub mod requests;
pub mod residency;
pub mod retention;
pub mod self_audit;
pub mod serve;
pub mod state;
pub mod supplier_onboarding;
pub mod suppliers;
pub mod tls;

use std::os::unix::fs::OpenOptionsExt as _;

use anyhow::Context as _;
use cli::{Cli, Command};

/// Runs one CLI command to completion. A command that changes the deployment with the
/// owner's rights ([`Command::owner_command`]) is recorded afterwards in the system
/// chain as `admin.command`, with its outcome and the operator who ran it (`--operator`).
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    tls::install_crypto_provider();
    let operator = cli
        .operator
        .as_deref()
        .map(procuhelp_auth::operator::OperatorName::parse)
        .transpose()
        .context("--operator")?;
    let owner = cli
        .command
        .owner_command()
        .map(|(name, db)| (name, db.clone()));
    if owner.is_some()
        && operator.is_none()
        && std::env::var("PROCUHELP_REQUIRE_OPERATOR").as_deref() == Ok("1")
    {
        anyhow::bail!(
            "this deployment names who runs owner commands: give --operator NAME (or PROCUHELP_OPERATOR)"
        );
    }
    let result = dispatch(cli.command).await;
    if let Some((name, db)) = owner {
        let recorded = record_command(name, &db, operator.as_ref(), result.is_ok()).await;
        match (&result, recorded) {
            (_, Ok(())) => {}
            // `secrets put` is how a deployment is set up before its database exists (the
            // database URL goes into the vault first): when there is no audit log to open
            // yet, it says so and succeeds. A log that opened but refused the event is a
            // failure like any other command's.
            (Ok(()), Err(RecordError::NoLog(e))) if name == "secrets put" => {
                tracing::warn!(error = %format!("{e:#}"), "secrets put: not recorded (no audit log reachable yet)");
            }
            (Ok(()), Err(RecordError::NoLog(e) | RecordError::Refused(e))) => {
                return Err(e.context(format!(
                    "`{name}` ran, but recording it in the audit trail failed"
                )));
            }
            (Err(_), Err(RecordError::NoLog(e) | RecordError::Refused(e))) => {
                tracing::error!(error = %format!("{e:#}"), command = name, "recording the failed command failed");
            }
        }
    }
    result
}

/// Why an owner command was not recorded.
enum RecordError {
    /// No audit log could be opened (no database yet, or not migrated).
    NoLog(anyhow::Error),
    /// The log opened and the event was not recorded.
    Refused(anyhow::Error),
}

/// Records an owner command in the system chain: which, who (the named operator and the
/// operating-system user), and whether it succeeded.
async fn record_command(
    name: &'static str,
    db: &cli::DatabaseArgs,
    operator: Option<&procuhelp_auth::operator::OperatorName>,
    succeeded: bool,
) -> Result<(), RecordError> {
    use procuhelp_audit::{Action, Actor, AuditEvent, AuditSink as _, Outcome};
    let os_user = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .ok()
        .filter(|u| !u.is_empty() && u.len() <= 64);
    let (log, pool, database) = open_audit_log(db).await.map_err(RecordError::NoLog)?;
    let event = AuditEvent::new(
        None,
        Actor::System,
        Action::AdminCommand,
        if succeeded {
            Outcome::Success
        } else {
            Outcome::Failure
        },
    )
    .at(time::OffsetDateTime::now_utc())
    .target(format!("command:{name}"))
    .context(serde_json::json!({
        "command": name,
        "operator": operator.map(|o| o.as_str()),
        "os_user": os_user,
    }));
    let recorded = log.record(event).await;
    pool.close().await;
    let closed = database.close().await;
    recorded.map_err(|e| RecordError::Refused(e.into()))?;
    closed.map_err(RecordError::Refused)
}

async fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => serve::serve(args, None).await,
        Command::Migrate(args) => {
            let runtime_role = procuhelp_tenancy::RuntimeRole::new(args.runtime_role)?;
            let residency = residency::load(&args.db)?;
            let (vault, db) = open(&args.db).await?;
            drop(vault);
            let owner = db.owner_pool().await?;
            let result = match database::schema().migrate(&owner, &runtime_role).await {
                Ok(()) => residency::apply(&owner, &args.db, &residency).await,
                Err(e) => Err(e.into()),
            };
            owner.close().await;
            db.close().await?;
            result.context("migrate")?;
            tracing::info!(role = runtime_role.name(), "migrations applied");
            Ok(())
        }
        Command::Posture(posture) => {
            if let Some(repo) = &posture.backup_repo {
                // Checked first and apart: it needs no database.
                report(&backups::posture(&posture, repo).await?);
            }
            if let Some(file) = &posture.security_txt {
                let txt = disclosure::load(file).context("--security-txt")?;
                match disclosure::renewal_warning(&txt) {
                    Some(warning) => tracing::warn!(%warning, "security.txt"),
                    None => report(&[format!("security.txt valid until {}", txt.expires)]),
                }
            }
            let args = posture.db;
            let residency = residency::load(&args)?;
            let (_vault, db) = open(&args).await?;
            let runtime = db
                .runtime_pool(&procuhelp_tenancy::RuntimeRole::default(), 1)
                .await?;
            let result = procuhelp_tenancy::posture::check(&runtime).await;
            // The SSO self-check: weak settings organisations chose (warnings). Only the
            // schema owner may list every organisation; with only the runtime role's URL
            // it says it did not run rather than silently checking none.
            let owner = db.owner_pool().await?;
            let orgs = match procuhelp_tenancy::organisation_ids(&owner).await {
                Ok(orgs) => orgs,
                Err(e) => {
                    tracing::warn!(error = %e, "SSO self-check skipped: cannot list organisations");
                    Vec::new()
                }
            };
            let where_data_is = residency::posture_findings(&owner, &runtime, &residency).await;
            owner.close().await;
            tracing::info!(organisations = orgs.len(), "SSO self-check");
            let tenants = procuhelp_tenancy::TenantDb::new(runtime.clone());
            for warning in procuhelp_auth::sso::saml::weak_settings(&tenants, &orgs).await {
                tracing::warn!(%warning, "SSO self-check");
            }
            runtime.close().await;
            db.close().await?;
            result.context("posture check")?;
            let where_data_is = where_data_is?;
            if !where_data_is.is_empty() {
                anyhow::bail!(
                    "residency check failed (region {}):\n- {}",
                    residency.region,
                    where_data_is.join("\n- ")
                );
            }
            tracing::info!(region = %residency.region, "posture check passed");
            Ok(())
        }
        Command::SeedDemo(args) => {
            report(&seed_demo_command(&args).await?);
            Ok(())
        }
        Command::Keys(cli::KeysArgs {
            command: cli::KeysCommand::Rotate { db, batch },
        }) => {
            let (vault, database) = open(&db).await?;
            let owner = database.owner_pool().await?;
            let result = keys::rotate_all(&owner, vault, batch).await;
            owner.close().await;
            database.close().await?;
            report(&result.context("keys rotate")?);
            Ok(())
        }
        Command::Secrets(cli::SecretsArgs {
            command:
                cli::SecretsCommand::Put {
                    name,
                    from_file,
                    db,
                },
        }) => {
            serve::create_private_dir(&db.data_dir)?;
            let vault = keys::open_vault(&db).await?;
            let name = procuhelp_core::vault::SecretName::new(&name)?;
            let value = zeroize::Zeroizing::new(database::read_private_file(&from_file)?);
            let version = vault
                .put(
                    &name,
                    procuhelp_core::SecretBytes::new(value.trim().as_bytes().to_vec()),
                )
                .await?;
            report(&[format!("stored secret {name} version {version}")]);
            Ok(())
        }
        Command::Audit(cli::AuditArgs { command }) => audit_command(command).await,
        Command::Backup(cli::BackupArgs { command }) => backups::command(command).await,
        Command::Gdpr(cli::GdprArgs { command }) => gdpr::command(command).await,
        Command::Org(cli::OrgArgs { command }) => {
            report(&orgs::command(command).await?);
            Ok(())
        }
        Command::Operators(cli::OperatorsArgs {
            command: cli::OperatorsCommand::ScrapeToken { name, out },
        }) => scrape_token(&name, &out),
        Command::SelfAudit(args) => {
            let hours = |h: u64| std::time::Duration::from_secs(h.saturating_mul(3600));
            let options = self_audit::Options {
                out: args.out.clone(),
                backlog: args.backlog.clone(),
                backup_repo: args.backup_repo.clone(),
                backup_max_age: hours(args.backup_max_age_hours),
                drill_max_age: hours(args.drill_max_age_hours),
                max_key_age_days: args.max_key_age_days,
                url: args.url.clone(),
                ca_file: args.ca_file.clone(),
                trusted_keys: args.trusted_keys.clone(),
            };
            if self_audit::run(&args.db, &options).await? {
                tracing::info!(out = %args.out.display(), "self-audit passed");
                Ok(())
            } else {
                anyhow::bail!(
                    "self-audit failed: see {}",
                    args.out.join("self-audit.html").display()
                )
            }
        }
        Command::Retention(args) => {
            let (log, runtime, database) = open_audit_log(&args.db).await?;
            let owner = database.owner_pool().await;
            let purged = match owner {
                Ok(owner) => {
                    let purged = retention::run_once(&owner, &runtime, &log, &log).await;
                    owner.close().await;
                    purged
                }
                Err(e) => Err(e),
            };
            runtime.close().await;
            database.close().await?;
            let purged = purged?;
            let mut lines: Vec<String> = purged
                .rows
                .iter()
                .map(|(table, n)| format!("{table}: {n} rows purged"))
                .collect();
            if purged.more_left {
                lines.push("more expired rows are left for the next run".to_owned());
            }
            report(&lines);
            Ok(())
        }
    }
}

async fn audit_command(command: cli::AuditCommand) -> anyhow::Result<()> {
    use procuhelp_audit::{Action, Actor, AuditEvent, ExportFormat, ExportRange, Outcome};
    match command {
        cli::AuditCommand::Verify {
            org: None,
            file: Some(file),
            trusted_keys,
            dangerously_trust_embedded_keys,
            ..
        } => {
            // The trust comes first: without pinned keys nothing is opened or read.
            let trust = audit_log::trust(&trusted_keys, dangerously_trust_embedded_keys)?;
            let reader = std::io::BufReader::new(
                std::fs::File::open(&file)
                    .with_context(|| format!("opening {}", file.display()))?,
            );
            let report = procuhelp_audit::verify_export(reader, &trust)?;
            verdict(&report)
        }
        cli::AuditCommand::Verify {
            org: Some(org),
            db,
            trusted_keys,
            dangerously_trust_embedded_keys,
            ..
        } => {
            let trust = audit_log::trust(&trusted_keys, dangerously_trust_embedded_keys)?;
            let (log, pool, database) = open_audit_log(&db).await?;
            let report = log.verify_live(org, &trust).await;
            pool.close().await;
            database.close().await?;
            verdict(&report?)
        }
        cli::AuditCommand::Verify { .. } => anyhow::bail!("give --org or --file"),
        cli::AuditCommand::PublicKey { db } => {
            let (log, pool, database) = open_audit_log(&db).await?;
            let keys = log.signing_keys().await;
            pool.close().await;
            database.close().await?;
            let lines: Vec<String> = keys?.iter().map(audit_log::key_hex).collect();
            report(&lines);
            Ok(())
        }
        cli::AuditCommand::Erase { org, subject, db } => {
            let subject = procuhelp_audit::Subject::new(&subject)?;
            let (log, pool, database) = open_audit_log(&db).await?;
            let erased = log.erase_person(org, &subject, Actor::System).await;
            pool.close().await;
            database.close().await?;
            let erased = erased?;
            report(&[format!(
                "erased {} key(s) of {} in {org}; the erasure is recorded",
                erased.keys_erased,
                subject.as_str()
            )]);
            Ok(())
        }
        cli::AuditCommand::Import { org, file, db } => {
            use std::io::Read as _;
            let mut bytes = Vec::new();
            std::fs::File::open(&file)
                .with_context(|| format!("opening {}", file.display()))?
                .take(procuhelp_audit::MAX_IMPORT_BYTES as u64 + 1)
                .read_to_end(&mut bytes)
                .with_context(|| format!("reading {}", file.display()))?;
            let (log, pool, database) = open_audit_log(&db).await?;
            let imported = log.import_file(org, &bytes, Actor::System, "cli").await;
            pool.close().await;
            database.close().await?;
            let s = imported?;
            report(&[format!(
                "imported {} events into {org} (seq {}..={}; personal data withheld from {} \
                 of them, erased since); recorded at seq {} with file SHA-256 {}",
                s.events,
                s.first_seq,
                s.last_seq,
                s.personal_data_withheld,
                s.import_seq,
                s.file_sha256
            )]);
            Ok(())
        }
        cli::AuditCommand::Export {
            org,
            out,
            format,
            db,
        } => {
            let format = match format.as_str() {
                "jsonl" => ExportFormat::JsonLines,
                "csv" => ExportFormat::Csv,
                other => anyhow::bail!("unknown format {other:?} (jsonl or csv)"),
            };
            let (log, pool, database) = open_audit_log(&db).await?;
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&out)
                .with_context(|| format!("creating {}", out.display()))?;
            let access = AuditEvent::new(
                Some(org),
                Actor::System,
                Action::AuditExported,
                Outcome::Success,
            )
            .at(time::OffsetDateTime::now_utc())
            .context(serde_json::json!({ "via": "cli" }));
            let summary = log
                .export(
                    access,
                    ExportRange::default(),
                    format,
                    std::io::BufWriter::new(file),
                )
                .await;
            pool.close().await;
            database.close().await?;
            let summary = summary?;
            report(&[format!(
                "exported {} events (seq {}..={}) and {} checkpoints to {}",
                summary.events,
                summary.first_seq,
                summary.last_seq,
                summary.checkpoints,
                out.display()
            )]);
            Ok(())
        }
    }
}

/// The audit log of the configured database, as the runtime role.
pub(crate) async fn open_audit_log(
    db: &cli::DatabaseArgs,
) -> anyhow::Result<(
    procuhelp_audit::PgAuditSink,
    sqlx::PgPool,
    database::Database,
)> {
    let (vault, database) = open(db).await?;
    open_audit_log_on(db, vault, database).await
}

/// [`open_audit_log`] with the vault and database already open.
pub(crate) async fn open_audit_log_on(
    db: &cli::DatabaseArgs,
    vault: std::sync::Arc<dyn procuhelp_core::vault::SecretProvider>,
    database: database::Database,
) -> anyhow::Result<(
    procuhelp_audit::PgAuditSink,
    sqlx::PgPool,
    database::Database,
)> {
    let pool = database
        .runtime_pool(&procuhelp_tenancy::RuntimeRole::default(), 2)
        .await?;
    database::refuse_rls_bypass(&pool, "audit").await?;
    let log =
        procuhelp_audit::PgAuditSink::new(procuhelp_tenancy::TenantDb::new(pool.clone()), vault)
            .with_signer(audit_log::checkpoint_signer(db).await?)?;
    Ok((log, pool, database))
}

fn verdict(report: &procuhelp_audit::VerifyReport) -> anyhow::Result<()> {
    match &report.problem {
        None => {
            report_lines(report);
            Ok(())
        }
        Some(problem) => anyhow::bail!(
            "audit chain of {} is NOT intact: {:?} at sequence number {}{}",
            report.org,
            problem.kind,
            problem.seq,
            report
                .untrusted_key
                .map(|k| format!(
                    " (checkpoint signed by untrusted key {})",
                    audit_log::key_hex(&k)
                ))
                .unwrap_or_default()
        ),
    }
}

fn report_lines(r: &procuhelp_audit::VerifyReport) {
    report(&[format!(
        "audit chain of {} intact: {} events, last seq {}, {} signed checkpoints verified",
        r.org, r.events, r.last_seq, r.checkpoints_verified
    )]);
}

/// The data directory, the vault (first: no keys, no work) and the database.
pub(crate) async fn open(
    args: &cli::DatabaseArgs,
) -> anyhow::Result<(
    std::sync::Arc<dyn procuhelp_core::vault::SecretProvider>,
    database::Database,
)> {
    serve::create_private_dir(&args.data_dir)?;
    let vault = keys::open_vault(args).await?;
    let db = database::Database::open(args, vault.as_ref()).await?;
    Ok((vault, db))
}

async fn seed_demo(
    db: &database::Database,
    runtime_role: &procuhelp_tenancy::RuntimeRole,
    vault: std::sync::Arc<dyn procuhelp_core::vault::SecretProvider>,
    args: &cli::DatabaseArgs,
    residency: &procuhelp_tenancy::residency::Residency,
) -> anyhow::Result<Vec<String>> {
    use crate::suppliers::{NewSupplier, PgSupplierRepository, SupplierRepository as _};
    use procuhelp_tenancy::{FieldRef, TenantDb};
    let owner = db.owner_pool().await?;
    // Up front, before migrating: the demo data is tenant work.
    database::refuse_rls_bypass(&owner, "seed-demo").await?;
    database::schema()
        .migrate(&owner, runtime_role)
        .await
        .context("migrate")?;
    residency::apply(&owner, args, residency).await?;
    let mut orgs = Vec::new();
    for name in ["Demo Org A", "Demo Org B"] {
        orgs.push(procuhelp_tenancy::create_organisation(&owner, name).await?);
    }
    owner.close().await;
    let runtime = db.runtime_pool(runtime_role, 2).await?;
    database::refuse_rls_bypass(&runtime, "seed-demo").await?;
    let tenants = TenantDb::new(runtime.clone());
    let cipher = keys::field_cipher(tenants.clone(), vault);
    let seeder = procuhelp_core::UserId::new();
    let demo = [
        [
            ("Acme GmbH", "DE", "DE89370400440532013000"),
            ("Bolt SARL", "FR", "FR1420041010050500013M02606"),
        ],
        [
            ("Cobalt Ltd", "GB", "GB29NWBK60161331926819"),
            ("Delta BV", "NL", "NL91ABNA0417164300"),
        ],
    ];
    for (org, suppliers) in orgs.iter().zip(demo) {
        for (name, country, iban) in suppliers {
            let mut tx = tenants.begin(*org).await?;
            let supplier = PgSupplierRepository
                .create(&mut tx, NewSupplier::new(name, country)?, seeder)
                .await?;
            let row = supplier.id.to_string();
            // Bank details are stored only encrypted, bound to this org, table, column and row.
            let sealed = cipher
                .encrypt(
                    *org,
                    FieldRef::new("suppliers", "iban", &row),
                    iban.as_bytes(),
                )
                .await?;
            sqlx::query("UPDATE app.suppliers SET iban_sealed = $1 WHERE id = $2")
                .bind(&sealed)
                .bind(supplier.id.as_uuid())
                .execute(tx.conn())
                .await?;
            tx.commit().await?;
        }
    }
    // One user of each role per organisation, with a random password printed once.
    let hasher = procuhelp_auth::password::PasswordHasher::default();
    let mut lines = Vec::new();
    for (org, label) in orgs.iter().zip(["a", "b"]) {
        lines.push(format!("organisation {org}"));
        let mut tx = tenants.begin(*org).await?;
        for role in procuhelp_auth::Role::ALL {
            let email = format!("{role}@{label}.demo.procuhelp.test").replace('_', "-");
            let password = demo_password()?;
            let phc = hasher.hash(&password)?;
            procuhelp_auth::directory::create(
                &mut tx,
                procuhelp_auth::directory::NewUser {
                    email: procuhelp_auth::directory::Email::parse(&email)?,
                    display_name: format!("Demo {role}"),
                    role: Some(role),
                    password_hash: Some(phc),
                },
                time::OffsetDateTime::now_utc(),
            )
            .await?;
            lines.push(format!(
                "  {role:<9} org={org} email={email} password={}",
                password.expose()
            ));
        }
        tx.commit().await?;
    }
    runtime.close().await;
    Ok(lines)
}

/// `seed-demo`: two organisations, one user of each role in each (lines to print: the
/// organisations, then `role org=… email=… password=…` once per user).
pub async fn seed_demo_command(args: &cli::MigrateArgs) -> anyhow::Result<Vec<String>> {
    let runtime_role = procuhelp_tenancy::RuntimeRole::new(args.runtime_role.clone())?;
    let residency = residency::load(&args.db)?;
    let (vault, db) = open(&args.db).await?;
    let result = seed_demo(&db, &runtime_role, vault, &args.db, &residency).await;
    db.close().await?;
    result
}

/// A random 20-character password (about 119 bits), for the demo users.
fn demo_password() -> anyhow::Result<procuhelp_core::SecretText> {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 20];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("random: {e}"))?;
    let text: String = bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect();
    Ok(procuhelp_core::SecretText::new(text))
}

#[expect(
    clippy::print_stdout,
    reason = "seed-demo's and keys' output is for the operator"
)]
pub(crate) fn report(lines: &[String]) {
    for line in lines {
        println!("{line}");
    }
}

/// `operators scrape-token`: the token to FILE (0600, created new), its digest entry to
/// stdout.
fn scrape_token(name: &str, out: &std::path::Path) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let name = procuhelp_auth::operator::OperatorName::parse(name)?;
    let (token, digest) = procuhelp_auth::operator::new_scrape_token()
        .map_err(|_| anyhow::anyhow!("no randomness from the operating system"))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .with_context(|| format!("creating {}", out.display()))?;
    file.write_all(token.expose().as_bytes())?;
    file.sync_all()?;
    let entry = serde_json::json!({ "name": name.as_str(), "token_sha256": digest });
    #[allow(clippy::print_stdout)] // the command's output
    {
        println!("{entry}");
    }
    Ok(())
}
