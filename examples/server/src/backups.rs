//! Backups as the server runs them: `backup run|list|drill|restore`, the schedule inside
//! `serve`, and what the drill checks beyond the tenancy crate's own (posture, every
//! organisation's audit chain, every organisation's keys). The engine, the sealing and
//! the manifest are `procuhelp_tenancy::backup`'s; this wires them (docs/backups.md).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use procuhelp_audit::{Action, Actor, AuditEvent, AuditSink, Outcome, Trust};
use procuhelp_core::vault::SecretProvider;
use procuhelp_tenancy::backup::{
    self, CheckOutcome, DrillChecks, DrillReport, Entry, Findings, Manifest, PgServer, Placement,
    Repository, Retention, ScratchCopy,
};
use procuhelp_tenancy::{FieldCipher, KeyState, RuntimeRole, TenantDb};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use time::OffsetDateTime;

use crate::cli::RepoArgs;

/// Opens the repository `args` name, refusing one that is not apart from `data_dir`.
pub fn repository(args: &RepoArgs, data_dir: Option<&Path>) -> anyhow::Result<Repository> {
    let placement = if args.allow_repo_on_same_filesystem {
        Placement::AllowSameFilesystem
    } else {
        Placement::Apart
    };
    Ok(Repository::open(&args.repo, data_dir, placement)?)
}

/// The migration versions this server's schema has.
pub fn expected_migrations() -> anyhow::Result<Vec<i64>> {
    let migrator = crate::database::schema().migrator()?;
    let mut versions: Vec<i64> = migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| m.version)
        .collect();
    versions.sort_unstable();
    Ok(versions)
}

/// What the drill checks that the tenancy crate cannot: the posture as the runtime role,
/// every organisation's (and the system's) audit chain against the deployment's
/// checkpoint keys, and every organisation's keys (shredded ones reported).
#[derive(Debug)]
pub struct ServerChecks {
    /// The vault (for keys).
    pub vault: Arc<dyn SecretProvider>,
    /// The checkpoint keys to trust.
    pub trust: Trust,
    /// The runtime role.
    pub runtime: RuntimeRole,
}

#[async_trait::async_trait]
impl DrillChecks for ServerChecks {
    async fn check(&self, copy: &ScratchCopy, manifest: &Manifest) -> Findings {
        let mut findings = Findings::default();
        // The backup role, narrowed to the runtime role from the start of each session
        // (`-c role=…`, as SET ROLE): RLS binds it exactly as it binds the server.
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect_with(
                copy.connect_options()
                    .options([("role", self.runtime.name())]),
            )
            .await;
        let pool = match pool {
            Ok(pool) => pool,
            Err(e) => {
                findings.outcomes.push(CheckOutcome::fail(
                    "posture",
                    format!("connecting as the runtime role: {e}"),
                ));
                return findings;
            }
        };
        findings
            .outcomes
            .push(match procuhelp_tenancy::posture::check(&pool).await {
                Ok(()) => {
                    CheckOutcome::pass("posture", "row-level security posture holds on the copy")
                }
                Err(e) => CheckOutcome::fail("posture", e.to_string()),
            });
        let tenants = TenantDb::new(pool.clone());
        let log = procuhelp_audit::PgAuditSink::new(tenants.clone(), self.vault.clone());
        let cipher = FieldCipher::new(
            tenants,
            self.vault.clone(),
            &procuhelp_core::crypto::AwsLcAead,
        );
        let mut chains = 0usize;
        let mut events = 0u64;
        let mut broken = Vec::new();
        // Organisations whose part could not be opened (keys destroyed) are not in the
        // copy; the tenancy crate's own check proves the live database agrees.
        let mut orgs: Vec<procuhelp_core::OrgId> = manifest
            .organisations
            .iter()
            .filter(|id| !copy.destroyed_organisations().contains(id))
            .filter_map(|id| procuhelp_core::OrgId::from_uuid(*id).ok())
            .collect();
        if !orgs.contains(&procuhelp_audit::system_chain_org()) {
            orgs.push(procuhelp_audit::system_chain_org());
        }
        for org in &orgs {
            match log.verify_live(*org, &self.trust).await {
                Ok(report) if report.problem.is_none() => {
                    chains += 1;
                    events += report.events;
                }
                Ok(report) => broken.push(format!(
                    "{org}: {:?} at seq {}",
                    report.problem.as_ref().map(|p| p.kind),
                    report.problem.as_ref().map(|p| p.seq).unwrap_or_default()
                )),
                Err(e) => broken.push(format!("{org}: {e}")),
            }
        }
        findings.outcomes.push(if broken.is_empty() {
            CheckOutcome::pass(
                "audit chains",
                format!("{chains} chains, {events} events verified against the checkpoint keys"),
            )
        } else {
            CheckOutcome::fail("audit chains", broken.join("; "))
        });
        let mut unreadable = Vec::new();
        let mut readable = 0usize;
        for org in orgs
            .iter()
            .filter(|o| **o != procuhelp_audit::system_chain_org())
        {
            match cipher.key_state(*org).await {
                Ok(KeyState::Readable { .. } | KeyState::NoKeys) => readable += 1,
                Ok(KeyState::Shredded) => match shredded_in_live(copy, *org).await {
                    // The live database agrees: shredded after (or before) the backup.
                    Ok(true) => findings.shredded.push(org.as_uuid()),
                    Ok(false) => unreadable.push(format!(
                        "{org}: its keys are missing from this vault, but the live database \
                         has not shredded it (a vault restored from an older copy?)"
                    )),
                    Err(e) => unreadable.push(format!("{org}: checking the live database: {e}")),
                },
                Ok(_) => unreadable.push(format!("{org}: unknown key state")),
                Err(e) => unreadable.push(format!("{org}: {e}")),
            }
        }
        findings.outcomes.push(if unreadable.is_empty() {
            CheckOutcome::pass(
                "keys",
                format!(
                    "{readable} organisations' data keys open with this vault; {} shredded (unreadable, as intended)",
                    findings.shredded.len()
                ),
            )
        } else {
            CheckOutcome::fail("keys", unreadable.join("; "))
        });
        pool.close().await;
        findings
    }
}

/// Whether the live database shredded `org` (no usable data key left, or the organisation
/// gone): only then is a copy's missing key what crypto-shredding intends.
async fn shredded_in_live(copy: &ScratchCopy, org: procuhelp_core::OrgId) -> anyhow::Result<bool> {
    use sqlx::Connection as _;
    let mut live = sqlx::PgConnection::connect_with(&copy.live_connect_options()).await?;
    let usable: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM app.data_keys WHERE org_id = $1 AND state <> 'destroyed'",
    )
    .bind(org.as_uuid())
    .fetch_one(&mut live)
    .await?;
    let _ = live.close().await;
    Ok(usable == 0)
}

/// A drill report as written to the repository: the report, its Ed25519 signature by the
/// deployment's checkpoint key, and that key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignedReport {
    /// The report.
    pub report: DrillReport,
    /// Hex Ed25519 signature over [`REPORT_DOMAIN`] ‖ the report's JSON.
    pub signature: String,
    /// Hex public key that signed it.
    pub public_key: String,
}

/// Domain separation for report signatures (never a valid checkpoint message).
pub const REPORT_DOMAIN: &[u8] = b"procuhelp drill report v1\0";

/// Signs `report` and writes it to `REPO/drills/`; returns the file and the report's
/// SHA-256.
pub async fn write_report(
    repo: &Repository,
    report: &DrillReport,
    signer: &dyn procuhelp_audit::CheckpointSigner,
) -> anyhow::Result<(PathBuf, String)> {
    let json = serde_json::to_vec(report)?;
    let mut message = REPORT_DOMAIN.to_vec();
    message.extend_from_slice(&json);
    let signature = signer.sign(&message).await?;
    let signed = SignedReport {
        report: report.clone(),
        signature: hex::encode(signature),
        public_key: crate::audit_log::key_hex(&signer.public_key()),
    };
    let dir = repo.subdir(backup::DRILLS_DIR)?;
    let name = format!(
        "{}-{}.json",
        report.started_at.unix_timestamp(),
        report.label
    );
    Repository::write_atomically(&dir, &name, &serde_json::to_vec_pretty(&signed)?)?;
    Ok((dir.join(name), hex::encode(sha2::Sha256::digest(&json))))
}

/// Verifies a signed report against `keys`.
pub fn verify_report(signed: &SignedReport, keys: &[procuhelp_audit::PublicKey]) -> bool {
    let Ok(json) = serde_json::to_vec(&signed.report) else {
        return false;
    };
    let mut message = REPORT_DOMAIN.to_vec();
    message.extend_from_slice(&json);
    let Ok(sig) = hex::decode(&signed.signature) else {
        return false;
    };
    keys.iter().any(|key| {
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key)
            .verify(&message, &sig)
            .is_ok()
    })
}

/// Every drill report in the repository whose signature `keys` accept, oldest first by
/// their signed start time (never by file name or date: both are the volume's to change).
pub fn drills(
    repo: &Repository,
    keys: &[procuhelp_audit::PublicKey],
) -> anyhow::Result<Vec<SignedReport>> {
    let dir = repo.root().join(backup::DRILLS_DIR);
    let Ok(read) = std::fs::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for path in read.flatten().map(|d| d.path()) {
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        match serde_json::from_slice::<SignedReport>(&bytes) {
            Ok(signed) if verify_report(&signed, keys) => out.push(signed),
            _ => tracing::warn!(
                file = %path.display(),
                "drill report that no trusted key signed: ignored"
            ),
        }
    }
    out.sort_by_key(|s| s.report.started_at);
    Ok(out)
}

/// The newest drill report (by its signed start time) that `keys` accept.
pub fn last_drill(
    repo: &Repository,
    keys: &[procuhelp_audit::PublicKey],
) -> anyhow::Result<Option<SignedReport>> {
    Ok(drills(repo, keys)?.pop())
}

/// How old the last good backup and the last passing drill are. Ages come from this
/// machine's clock (a backup's `finished_at`, a report's signed start); a time in the
/// future counts as no backup or drill at all (`None`): a clock that jumped ahead, or a
/// forged record, never makes a schedule look fresh.
#[derive(Debug, Clone)]
pub struct Freshness {
    /// Age of the newest complete backup.
    pub backup_age: Option<Duration>,
    /// Its label.
    pub backup_label: Option<String>,
    /// Age of the newest drill that passed.
    pub drill_age: Option<Duration>,
    /// Age of the newest drill of any outcome.
    pub last_drill_age: Option<Duration>,
    /// Whether the newest drill failed.
    pub last_drill_failed: bool,
}

/// Reads the repository's freshness.
pub fn freshness(
    repo: &Repository,
    keys: &[procuhelp_audit::PublicKey],
    now: OffsetDateTime,
) -> anyhow::Result<Freshness> {
    let newest = repo.list()?.into_iter().rev().find_map(|e| match e {
        Entry::Complete(info) => Some(info),
        Entry::Incomplete { .. } => None,
    });
    let age = |t: OffsetDateTime| Duration::try_from(now - t).ok();
    let reports = drills(repo, keys)?;
    let last = reports.last();
    let last_passed = reports.iter().rev().find(|s| s.report.passed);
    let backup_age = newest.as_ref().and_then(|i| age(i.finished_at));
    let drill_age = last_passed.and_then(|s| age(s.report.started_at));
    // The schedule reads this every minute, so the gauges follow; none yet reads as +Inf
    // (an alert rule on "older than" then fires for a repository never written).
    let seconds = |a: Option<Duration>| a.map_or(f64::INFINITY, |a| a.as_secs_f64());
    metrics::gauge!("procuhelp_backup_age_seconds").set(seconds(backup_age));
    metrics::gauge!("procuhelp_backup_drill_age_seconds").set(seconds(drill_age));
    Ok(Freshness {
        backup_age,
        backup_label: newest.map(|i| i.label),
        drill_age,
        last_drill_age: last.and_then(|s| age(s.report.started_at)),
        last_drill_failed: last.is_some_and(|s| !s.report.passed),
    })
}

/// The schedule `serve` runs: a backup every `backup_every`, retention after each, a
/// drill every `drill_every`, and an alert (a `backup.overdue` event) whenever either is
/// late by half its interval.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The repository.
    pub repo: Repository,
    /// The server to back up.
    pub server: Arc<PgServer>,
    /// The vault.
    pub vault: Arc<dyn SecretProvider>,
    /// Signs drill reports.
    pub signer: Arc<dyn procuhelp_audit::CheckpointSigner>,
    /// Where events go (the audit pipeline: alerts follow from them).
    pub audit: Arc<dyn AuditSink>,
    /// Between backups.
    pub backup_every: Duration,
    /// Between drills.
    pub drill_every: Duration,
    /// What to keep.
    pub retention: Retention,
}

impl Schedule {
    /// Runs until the task is aborted.
    pub async fn run(self) {
        let mut last_overdue_alert: Option<std::time::Instant> = None;
        loop {
            if let Err(e) = self.tick(&mut last_overdue_alert).await {
                tracing::error!(error = %format!("{e:#}"), "backup schedule");
            }
            tokio::time::sleep(Duration::from_secs(60).min(self.backup_every / 4)).await;
        }
    }

    async fn tick(
        &self,
        last_overdue_alert: &mut Option<std::time::Instant>,
    ) -> anyhow::Result<()> {
        // No step may hold the schedule (and with it the overdue alarm) for ever.
        const STEP_LIMIT: Duration = Duration::from_secs(6 * 3600);
        let keys = self.signer.public_keys().await?;
        // Read again only after a step changed the repository.
        let read = || freshness(&self.repo, &keys, OffsetDateTime::now_utc());
        let mut fresh = read();
        if let Ok(f) = &fresh
            && f.backup_age.is_none_or(|a| a >= self.backup_every)
        {
            let backup = run_backup(
                &self.server,
                &self.repo,
                self.vault.as_ref(),
                self.audit.as_ref(),
                "schedule",
            );
            match tokio::time::timeout(STEP_LIMIT, backup).await {
                Ok(Ok(_)) => {
                    expire(&self.repo, self.retention, &keys, self.audit.as_ref()).await?;
                }
                Ok(Err(_)) => {} // recorded (and alerted) by run_backup
                Err(_) => {
                    let context = serde_json::json!({ "via": "schedule", "error": "timed out" });
                    record(
                        self.audit.as_ref(),
                        Action::BackupTaken,
                        Outcome::Failure,
                        context,
                    )
                    .await;
                }
            }
            fresh = read();
        }
        if let Ok(f) = &fresh {
            // A failed drill is retried hourly (it alerted); a passing one is repeated on
            // its interval.
            let retry = self.drill_every.min(Duration::from_secs(3600));
            let due = f.backup_age.is_some()
                && f.drill_age.is_none_or(|a| a >= self.drill_every)
                && f.last_drill_age.is_none_or(|a| a >= retry);
            if due {
                if let Ok(stale) = backup::sweep_scratch(&self.server).await
                    && !stale.is_empty()
                {
                    tracing::warn!(?stale, "dropped scratch databases of interrupted drills");
                }
                let drill = run_drill(
                    self.server.clone(),
                    &self.repo,
                    self.vault.clone(),
                    self.signer.clone(),
                    self.audit.as_ref(),
                    None,
                );
                if tokio::time::timeout(STEP_LIMIT, drill).await.is_err() {
                    let context = serde_json::json!({ "error": "timed out" });
                    record(
                        self.audit.as_ref(),
                        Action::BackupDrilled,
                        Outcome::Failure,
                        context,
                    )
                    .await;
                }
                fresh = read();
            }
        }
        // What cannot be read counts as overdue: the alarm does not depend on the work.
        let late =
            |age: Option<Duration>, every: Duration| age.is_none_or(|a| a > every + every / 2);
        let (overdue, context) = match &fresh {
            Ok(f) => (
                late(f.backup_age, self.backup_every) || late(f.drill_age, self.drill_every),
                serde_json::json!({
                    "last_backup_age_secs": f.backup_age.map(|a| a.as_secs()),
                    "last_passing_drill_age_secs": f.drill_age.map(|a| a.as_secs()),
                    "backup_every_secs": self.backup_every.as_secs(),
                    "drill_every_secs": self.drill_every.as_secs(),
                }),
            ),
            Err(e) => (true, serde_json::json!({ "error": format!("{e:#}") })),
        };
        if overdue && last_overdue_alert.is_none_or(|t| t.elapsed() >= Duration::from_secs(3600)) {
            *last_overdue_alert = Some(std::time::Instant::now());
            record(
                self.audit.as_ref(),
                Action::BackupOverdue,
                Outcome::Failure,
                context,
            )
            .await;
        }
        fresh.map(|_| ())
    }
}

async fn record(
    audit: &dyn AuditSink,
    action: Action,
    outcome: Outcome,
    context: serde_json::Value,
) {
    let event = AuditEvent::new(None, Actor::System, action, outcome)
        .at(OffsetDateTime::now_utc())
        .context(context);
    if let Err(e) = audit.record(event).await {
        tracing::error!(error = %e, ?action, "recording a backup event failed");
    }
}

/// Takes a backup and records it (or its failure) in the system chain.
pub async fn run_backup(
    server: &PgServer,
    repo: &Repository,
    vault: &dyn SecretProvider,
    audit: &dyn AuditSink,
    via: &str,
) -> anyhow::Result<backup::BackupInfo> {
    let started = std::time::Instant::now();
    match backup::take(server, repo, vault).await {
        Ok(info) => {
            tracing::info!(label = %info.label, bytes = info.dump_bytes, secs = started.elapsed().as_secs_f64(), "backup taken");
            record(
                audit,
                Action::BackupTaken,
                Outcome::Success,
                serde_json::json!({ "via": via, "label": info.label, "dump_bytes": info.dump_bytes, "plain_bytes": info.plain_bytes, "millis": started.elapsed().as_millis() as u64 }),
            )
            .await;
            Ok(info)
        }
        Err(e) => {
            tracing::error!(error = %e, "backup failed");
            record(
                audit,
                Action::BackupTaken,
                Outcome::Failure,
                serde_json::json!({ "via": via, "error": e.to_string() }),
            )
            .await;
            Err(e.into())
        }
    }
}

/// Removes what `retention` no longer keeps — but never the newest backup a signed drill
/// proved — and interrupted backups (no completion record at all) older than a day,
/// recording the labels removed. A directory whose record does not parse is kept: it may
/// be a good backup with a damaged or newer record, for a person to look at.
pub async fn expire(
    repo: &Repository,
    retention: Retention,
    keys: &[procuhelp_audit::PublicKey],
    audit: &dyn AuditSink,
) -> anyhow::Result<Vec<String>> {
    let entries = repo.list()?;
    let complete: Vec<(String, OffsetDateTime)> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Complete(i) => Some((i.label.clone(), i.taken_at)),
            Entry::Incomplete { .. } => None,
        })
        .collect();
    let proven = drills(repo, keys)?
        .into_iter()
        .rev()
        .find(|s| s.report.passed)
        .map(|s| s.report.label);
    let mut removed: Vec<String> = retention
        .expired(&complete)
        .into_iter()
        .filter(|l| Some(*l) != proven.as_deref())
        .map(str::to_owned)
        .collect();
    let day_ago = OffsetDateTime::now_utc() - time::Duration::days(1);
    for e in &entries {
        if let Entry::Incomplete { label } = e
            && backup::label_time(label).is_some_and(|t| t < day_ago)
            && !repo.dir(label)?.join(backup::COMPLETE_FILE).exists()
        {
            removed.push(label.clone());
        }
    }
    for label in &removed {
        repo.remove(label)?;
    }
    if !removed.is_empty() {
        tracing::info!(?removed, "expired backups removed");
        let context = serde_json::json!({ "labels": removed });
        record(audit, Action::BackupExpired, Outcome::Success, context).await;
    }
    Ok(removed)
}

/// Runs a drill of `label` (or the latest backup), signs and writes its report, and
/// records it; a failed drill is a `Failure` event (which alerts).
pub async fn run_drill(
    server: Arc<PgServer>,
    repo: &Repository,
    vault: Arc<dyn SecretProvider>,
    signer: Arc<dyn procuhelp_audit::CheckpointSigner>,
    audit: &dyn AuditSink,
    label: Option<&str>,
) -> anyhow::Result<(DrillReport, PathBuf)> {
    let checks = ServerChecks {
        vault: vault.clone(),
        trust: Trust::pinned(signer.public_keys().await?)?,
        runtime: RuntimeRole::default(),
    };
    let drilled = async {
        let expected = expected_migrations()?;
        let report = backup::drill(server, repo, vault.as_ref(), label, &expected, &checks).await?;
        let written = write_report(repo, &report, signer.as_ref()).await?;
        anyhow::Ok((report, written))
    }
    .await;
    let (report, (path, digest)) = match drilled {
        Ok(done) => done,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "restore drill could not run");
            let context = serde_json::json!({ "error": format!("{e:#}") });
            record(audit, Action::BackupDrilled, Outcome::Failure, context).await;
            return Err(e);
        }
    };
    let failed: Vec<&CheckOutcome> = report.checks.iter().filter(|c| !c.passed).collect();
    record(
        audit,
        Action::BackupDrilled,
        if report.passed {
            Outcome::Success
        } else {
            Outcome::Failure
        },
        serde_json::json!({
            "label": report.label,
            "report_sha256": digest,
            "duration_ms": report.duration_ms,
            "tables": report.tables,
            "rows": report.rows,
            "shredded_organisations": report.shredded_organisations.len(),
            "failed": failed,
        }),
    )
    .await;
    if report.passed {
        tracing::info!(label = %report.label, ms = report.duration_ms, "restore drill passed");
    } else {
        tracing::error!(label = %report.label, ?failed, "restore drill FAILED");
    }
    Ok((report, path))
}

/// Progress of a restore: a bar on a terminal, else a log line every 10 %.
fn progress_reporter() -> impl Fn(u64, u64) + Send + Sync {
    use std::io::{IsTerminal as _, Write as _};
    let terminal = std::io::stderr().is_terminal();
    let last = std::sync::Mutex::new(u64::MAX);
    move |done: u64, total: u64| {
        let pct = (done.saturating_mul(100) / total.max(1)).min(100);
        let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
        if terminal {
            if *last != pct {
                let filled = usize::try_from(pct / 4).unwrap_or(25);
                let mut err = std::io::stderr().lock();
                let _ = write!(
                    err,
                    "\rrestoring [{}{}] {pct:>3}% {} / {} MiB",
                    "#".repeat(filled),
                    " ".repeat(25 - filled.min(25)),
                    done >> 20,
                    total >> 20
                );
                if pct == 100 {
                    let _ = writeln!(err);
                }
            }
        } else if *last == u64::MAX || pct / 10 != *last / 10 {
            tracing::info!(percent = pct, bytes = done, total, "restoring");
        }
        *last = pct;
    }
}

/// `backup run|list|drill|restore`.
pub async fn command(command: crate::cli::BackupCommand) -> anyhow::Result<()> {
    use crate::cli::BackupCommand;
    let (repo_args, db_args) = match &command {
        BackupCommand::Run { repo, db, .. }
        | BackupCommand::List { repo, db }
        | BackupCommand::Drill { repo, db, .. }
        | BackupCommand::Restore { repo, db, .. } => (repo.clone(), db.clone()),
    };
    let (vault, database) = crate::open(&db_args).await?;
    let result = async {
        let (server, data_dir) =
            database.backup_server(&db_args, repo_args.backup_database_url_file.as_deref())?;
        let server = Arc::new(server);
        let repo = repository(&repo_args, data_dir.as_deref())?;
        let signer = crate::audit_log::checkpoint_signer(&db_args).await?;
        // Events go to the system chain, as the runtime role (as every audit write).
        let pool = database.runtime_pool(&RuntimeRole::default(), 2).await?;
        let audit = procuhelp_audit::PgAuditSink::new(TenantDb::new(pool.clone()), vault.clone())
            .with_signer(signer.clone())?;
        let out = run_command(command, &server, &repo, vault, signer, &audit).await;
        pool.close().await;
        out
    }
    .await;
    database.close().await?;
    result
}

async fn run_command(
    command: crate::cli::BackupCommand,
    server: &Arc<PgServer>,
    repo: &Repository,
    vault: Arc<dyn SecretProvider>,
    signer: Arc<dyn procuhelp_audit::CheckpointSigner>,
    audit: &dyn AuditSink,
) -> anyhow::Result<()> {
    use crate::cli::BackupCommand;
    match command {
        BackupCommand::Run { retention, .. } => {
            let info = run_backup(server, repo, vault.as_ref(), audit, "cli").await?;
            let removed = expire(
                repo,
                retention.policy(),
                &signer.public_keys().await?,
                audit,
            )
            .await?;
            crate::report(&[
                format!(
                    "backup {} taken: {} bytes sealed ({} bytes of dump) in {}",
                    info.label,
                    info.dump_bytes,
                    info.plain_bytes,
                    repo.root().display()
                ),
                format!("retention removed {} backup(s)", removed.len()),
            ]);
            Ok(())
        }
        BackupCommand::List { .. } => {
            let now = OffsetDateTime::now_utc();
            let mut lines = Vec::new();
            for entry in repo.list()? {
                lines.push(match entry {
                    Entry::Complete(i) => format!(
                        "{}  complete  taken {}  {} bytes  age {}h",
                        i.label,
                        i.taken_at,
                        i.dump_bytes,
                        (now - i.taken_at).whole_hours()
                    ),
                    Entry::Incomplete { label } => {
                        format!("{label}  INCOMPLETE (interrupted; never restored)")
                    }
                });
            }
            let keys = signer.public_keys().await?;
            match last_drill(repo, &keys)? {
                Some(s) => lines.push(format!(
                    "last drill: {} of {} at {}: {} ({} ms)",
                    if s.report.passed { "PASSED" } else { "FAILED" },
                    s.report.label,
                    s.report.started_at,
                    s.report
                        .checks
                        .iter()
                        .filter(|c| !c.passed)
                        .map(|c| c.detail.as_str())
                        .collect::<Vec<_>>()
                        .join("; "),
                    s.report.duration_ms
                )),
                None => lines.push("last drill: none".to_owned()),
            }
            crate::report(&lines);
            Ok(())
        }
        BackupCommand::Drill { label, .. } => {
            let (report, path) =
                run_drill(server.clone(), repo, vault, signer, audit, label.as_deref()).await?;
            let mut lines: Vec<String> = report
                .checks
                .iter()
                .map(|c| {
                    format!(
                        "{} {}: {}",
                        if c.passed { "ok  " } else { "FAIL" },
                        c.check,
                        c.detail
                    )
                })
                .collect();
            for org in &report.shredded_organisations {
                lines.push(format!(
                    "organisation {org}: its keys are gone (offboarded or shredded), its rows unreadable"
                ));
            }
            lines.push(format!("signed report: {}", path.display()));
            crate::report(&lines);
            if !report.passed {
                anyhow::bail!("restore drill of {} FAILED", report.label);
            }
            Ok(())
        }
        BackupCommand::Restore {
            label,
            into_database,
            force,
            accept_destroyed_keys,
            ..
        } => {
            let target = backup::RestoreTarget {
                database: into_database.unwrap_or_else(|| server.database().to_owned()),
                replace_existing: force,
                accept_destroyed_keys,
            };
            let progress = progress_reporter();
            let result = backup::restore(
                server,
                repo,
                vault.as_ref(),
                label.as_deref(),
                &target,
                &progress,
            )
            .await;
            match result {
                Ok(done) => {
                    record(
                        audit,
                        Action::BackupRestored,
                        Outcome::Success,
                        serde_json::json!({
                            "label": done.label,
                            "database": done.database,
                            "replaced": done.replaced,
                            "left_out": done.destroyed_organisations,
                        }),
                    )
                    .await;
                    for org in &done.destroyed_organisations {
                        crate::report(&[format!(
                            "organisation {org} left out: its keys were destroyed (offboarded)"
                        )]);
                    }
                    crate::report(&[format!(
                        "restored {} into database {}{}; run `procuhelp-server migrate` before serving it",
                        done.label,
                        done.database,
                        done.replaced
                            .map(|r| format!(" (the previous one is kept as {r})"))
                            .unwrap_or_default()
                    )]);
                    Ok(())
                }
                Err(e) => {
                    record(
                        audit,
                        Action::BackupRestored,
                        Outcome::Failure,
                        serde_json::json!({ "error": e.to_string() }),
                    )
                    .await;
                    Err(e.into())
                }
            }
        }
    }
}

/// `posture --backup-repo`: the ages of the last backup and the last passing drill;
/// an error when either is older than allowed or absent.
pub async fn posture(
    args: &crate::cli::PostureArgs,
    repo_dir: &Path,
) -> anyhow::Result<Vec<String>> {
    let repo = Repository::open(repo_dir, None, Placement::AllowSameFilesystem)?;
    let signer = crate::audit_log::checkpoint_signer(&args.db).await?;
    let keys = signer.public_keys().await?;
    let fresh = freshness(&repo, &keys, OffsetDateTime::now_utc())?;
    let hours = |d: Option<Duration>| {
        d.map(|d| format!("{:.1} h", d.as_secs_f64() / 3600.0))
            .unwrap_or_else(|| "never".to_owned())
    };
    let lines = vec![
        format!(
            "last backup: {} ({})",
            hours(fresh.backup_age),
            fresh.backup_label.clone().unwrap_or_default()
        ),
        format!(
            "last passing restore drill: {}{}",
            hours(fresh.drill_age),
            if fresh.last_drill_failed {
                "; the latest drill FAILED"
            } else {
                ""
            }
        ),
    ];
    let max_backup = Duration::from_secs(args.backup_max_age_hours * 3600);
    let max_drill = Duration::from_secs(args.drill_max_age_hours * 3600);
    if fresh.backup_age.is_none_or(|a| a > max_backup)
        || fresh.drill_age.is_none_or(|a| a > max_drill)
        || fresh.last_drill_failed
    {
        anyhow::bail!("backups are overdue or failing: {}", lines.join("; "));
    }
    Ok(lines)
}
