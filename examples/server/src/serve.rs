//! `procuhelp-server serve`.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use procuhelp_tenancy::{RuntimeRole, TenantDb};

use crate::app::{self, AppState, Limits};
use crate::cli::ServeArgs;
use crate::connections::{self, ConnectionLimits};
use crate::database::Database;
use crate::{keys, tls};
use procuhelp_axum::client_addr::TrustedProxies;

/// Serves until SIGINT/SIGTERM (or until `handle` is told to shut down).
///
/// Start-up order is the security argument: the database is opened, migrated (embedded
/// mode) and its posture checked *before* any port is bound; any failure refuses to serve.
pub async fn serve(args: ServeArgs, handle: Option<Handle<SocketAddr>>) -> anyhow::Result<()> {
    // A contradictory setting refuses to start before anything is opened.
    let connection_limits = connection_limits(&args)?;
    if let Some(endpoint) = &args.otlp.otlp_traces {
        let own: Vec<SocketAddr> = std::iter::once(args.https_addr)
            .chain(args.http_redirect_addr)
            .collect();
        crate::logging::refuse_own_address(endpoint, &own)?;
    }
    create_private_dir(&args.db.data_dir)?;
    // No keys, no service: the vault must open (key file present and private, or OpenBao
    // reachable and unsealed) before anything else happens.
    let vault = keys::open_vault(&args.db).await?;
    if args.db.database_url_file.is_some() {
        anyhow::bail!(
            "serve reads its credentials only from the vault: store the URL with \
             `procuhelp-server secrets put db/runtime-url --from-file FILE` and pass \
             --database-url-secret db/runtime-url"
        );
    }
    let db = Database::open(&args.db, vault.as_ref()).await?;
    let result = serve_on(&args, connection_limits, &db, vault, handle).await;
    db.close().await?;
    result
}

async fn serve_on(
    args: &ServeArgs,
    connection_limits: ConnectionLimits,
    db: &Database,
    vault: std::sync::Arc<dyn procuhelp_core::vault::SecretProvider>,
    handle: Option<Handle<SocketAddr>>,
) -> anyhow::Result<()> {
    // A bad alerts file stops the start-up before the database is migrated or checked.
    let alerts = match &args.alerts {
        Some(path) => crate::alerting::AlertsFile::read(path)?,
        None => crate::alerting::AlertsFile::default(),
    };
    // A misplaced backup repository, or a configured database without a backup role,
    // refuses the start-up too.
    let backups = match &args.backups.backup_repo {
        Some(repo) => {
            let repo_args = crate::cli::RepoArgs {
                repo: repo.clone(),
                allow_repo_on_same_filesystem: args.backups.allow_backup_repo_on_same_filesystem,
                backup_database_url_file: None,
            };
            let (server, data_dir) = db.backup_server(&args.db, None)?;
            if args.backups.backup_every_hours == 0 || args.backups.drill_every_hours == 0 {
                anyhow::bail!("--backup-every-hours and --drill-every-hours must be at least 1");
            }
            Some((
                crate::backups::repository(&repo_args, data_dir.as_deref())?,
                server,
            ))
        }
        None => {
            tracing::warn!("no --backup-repo: this server takes no backups");
            None
        }
    };
    let role = RuntimeRole::default();
    let residency = crate::residency::load(&args.db)?;
    if db.is_embedded() {
        let owner = db.owner_pool().await?;
        let migrated = match crate::database::schema().migrate(&owner, &role).await {
            Ok(()) => crate::residency::apply(&owner, &args.db, &residency).await,
            Err(e) => Err(e.into()),
        };
        owner.close().await;
        migrated.context("applying migrations to the embedded database")?;
    }
    let runtime = db.runtime_pool(&role, 16).await?;
    if let Err(e) = procuhelp_tenancy::posture::check(&runtime).await {
        runtime.close().await;
        return Err(e).context("posture check failed");
    }
    // Where the data is: the database serves the configured region, and an EU
    // deployment keeps everything in the EU/EEA; else no port is bound.
    let where_data_is = crate::residency::findings_for_serving(&runtime, &residency).await;
    match where_data_is {
        Ok(f) if f.is_empty() => {
            tracing::info!(region = %residency.region, "serving the organisations of this region");
        }
        other => {
            runtime.close().await;
            let findings = other?;
            anyhow::bail!(
                "residency check failed (region {}):\n- {}",
                residency.region,
                findings.join("\n- ")
            );
        }
    }

    let host = args
        .public_host
        .clone()
        .unwrap_or_else(|| args.https_addr.ip().to_string());
    // Links in e-mails point here (configuration, never a request's Host header).
    let origin = match args.https_addr.port() {
        443 => format!("https://{host}"),
        port => format!("https://{host}:{port}"),
    };
    let mail = match &args.smtp {
        Some(file) => crate::mail::SmtpFile::read(file, &origin).context("--smtp")?,
        None => {
            let outbox = args.db.data_dir.join("outbox");
            tracing::info!(outbox = %outbox.display(), "outgoing mail is written to a directory (no --smtp)");
            crate::mail::Mail::directory(&outbox, &origin)?
        }
    };
    let cert = tls::load_or_create(&args.db.data_dir, &host)?;
    let tls_config = RustlsConfig::from_config(tls::server_config(&cert)?);
    let limits = Limits {
        max_body_bytes: args.max_body_bytes,
        request_timeout: Duration::from_secs(args.request_timeout_secs),
    };
    // Key management gets a pool of its own, so reservations of encryptions commit
    // independently of request transactions.
    let key_pool = db.runtime_pool(&role, 2).await?;
    let cipher = std::sync::Arc::new(keys::field_cipher(
        TenantDb::new(key_pool.clone()),
        vault.clone(),
    ));
    // The audit log has a pool of its own too: group commits never wait for request
    // transactions (which record their events before they commit).
    let audit_pool = db.runtime_pool(&role, 4).await?;
    // Checkpoints are signed by a key the vault does not hold (Transit or its own file).
    let signer = crate::audit_log::checkpoint_signer(&args.db).await?;
    let audit_log =
        procuhelp_audit::PgAuditSink::new(TenantDb::new(audit_pool.clone()), vault.clone())
            .with_signer(signer.clone())?;
    // Secrets the server reads from the vault at start-up: each is a secret access. The
    // database URL was read to get here; the webhook URL is recorded before it is read.
    let secrets_read = [
        (
            args.db.database_url_secret.as_deref(),
            "database connection at start-up",
        ),
        (alerts.webhook_secret(), "alert webhook URL at start-up"),
    ];
    for (name, purpose) in secrets_read {
        let Some(name) = name else { continue };
        use procuhelp_audit::{Action, Actor, AuditEvent, AuditSink as _, Outcome};
        audit_log
            .record(
                AuditEvent::new(
                    None,
                    Actor::System,
                    Action::SecretAccessed,
                    Outcome::Success,
                )
                .at(time::OffsetDateTime::now_utc())
                .target(format!("secret:{name}"))
                .context(serde_json::json!({ "purpose": purpose })),
            )
            .await
            .context("recording the secret access in the audit log")?;
    }
    // Every fetch the configuration drives (tenants' OIDC providers, the webhook).
    let outbound = if args.dangerous_allow_loopback_fetch {
        tracing::warn!(
            "--dangerous-allow-loopback-fetch: configured URLs may reach this machine's own services"
        );
        procuhelp_core::OutboundPolicy::dangerous_allow_loopback_for_tests()
    } else {
        procuhelp_core::OutboundPolicy::public_only()
    };
    let alerting = alerts
        .build(
            vault.as_ref(),
            outbound,
            &args.db.data_dir.join("alerts-outbox"),
        )
        .await?;
    let clock: std::sync::Arc<dyn procuhelp_core::Clock> =
        std::sync::Arc::new(procuhelp_core::SystemClock);
    // The one audit path: chain → signed checkpoints → refusal aggregation → alerting.
    let audit =
        crate::audit_log::pipeline(audit_log.clone(), signer.clone(), alerting, clock.clone())?;
    // The audit stream (NATS JetStream): the relay reads the chains; the sink nudges it.
    let (audit_sink, stream) = match &args.audit_stream {
        Some(file) => {
            let config = crate::observability::StreamFile::read(file).context("--audit-stream")?;
            let (nudge, task) =
                crate::observability::start_stream(config, db, audit_log.clone()).await?;
            (nudge.wrap(audit.sink()), Some(task))
        }
        None => (audit.sink(), None),
    };
    let schedule = backups.map(|(repo, server)| {
        let hours = |h: u64| Duration::from_secs(h.saturating_mul(3600));
        tokio::spawn(
            crate::backups::Schedule {
                repo,
                server: std::sync::Arc::new(server),
                vault: vault.clone(),
                signer: signer.clone(),
                audit: audit_sink.clone(),
                backup_every: hours(args.backups.backup_every_hours),
                drill_every: hours(args.backups.drill_every_hours),
                retention: args.backups.retention.policy(),
            }
            .run(),
        )
    });
    let retention =
        retention_schedule(args, db, &runtime, audit_log.clone(), audit_sink.clone()).await?;
    let security_txt = match &args.security_txt {
        Some(file) => {
            let txt = crate::disclosure::load(file).context("--security-txt")?;
            if let Some(warning) = crate::disclosure::renewal_warning(&txt) {
                tracing::warn!(%warning, "security.txt");
            }
            Some(txt)
        }
        None => {
            tracing::warn!("no --security-txt: /.well-known/security.txt is not served");
            None
        }
    };
    let operators = match &args.operators {
        Some(file) => Some(
            operator_api(
                file,
                db,
                &runtime,
                audit_log.clone(),
                audit_sink.clone(),
                crate::operator_api::Committed(audit.committed_observer()),
                residency.clone(),
            )
            .await
            .context("--operators")?,
        ),
        None => None,
    };
    let routes = app::routes(
        AppState::assemble(
            runtime.clone(),
            cipher,
            vault,
            audit_sink,
            clock,
            procuhelp_auth::password::PasswordHasher::default(),
        )
        .with_audit_log(audit_log)
        .with_outbound_policy(outbound)
        .with_mail(mail),
    );
    let metrics = crate::observability::metrics_routes(
        operators.as_ref().map(|api| &api.operators),
        vec![
            ("requests", TenantDb::new(runtime.clone())),
            ("audit", TenantDb::new(audit_pool.clone())),
            ("keys", TenantDb::new(key_pool.clone())),
        ],
    )?;
    let routes = match operators {
        Some(api) => routes.merge(crate::operator_api::routes(api)),
        None => routes,
    };
    let routes = match metrics {
        Some(metrics) => routes.merge(metrics),
        None => routes,
    };
    let routes = match security_txt {
        Some(txt) => routes.merge(procuhelp_axum::security_txt::router(txt)),
        None => routes,
    };
    let app = app::harden(routes, limits).layer(axum::Extension(
        procuhelp_axum::access_log::ResponseObserver(audit.http_observer()),
    ));
    let proxies = TrustedProxies::new(args.network.trusted_proxies.clone());
    if !proxies.is_empty() {
        tracing::info!(?proxies, "believing X-Forwarded-For from these proxies");
    }
    let app = app::behind_proxies(app, proxies);

    let handle = handle.unwrap_or_default();
    let redirect_handle: Handle<SocketAddr> = Handle::new();
    let signals = {
        let (handle, redirect_handle) = (handle.clone(), redirect_handle.clone());
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutting down");
            handle.graceful_shutdown(Some(Duration::from_secs(10)));
            redirect_handle.graceful_shutdown(Some(Duration::from_secs(1)));
        })
    };
    let redirect = match args.http_redirect_addr {
        Some(addr) => {
            let redirect = app::redirect_app(host.clone(), args.https_addr.port());
            let server = connections::bind(addr, connection_limits).handle(redirect_handle.clone());
            Some(tokio::spawn(async move {
                server.serve(redirect.into_make_service()).await
            }))
        }
        None => None,
    };
    {
        let handle = handle.clone();
        let host = host.clone();
        tokio::spawn(async move {
            if let Some(addr) = handle.listening().await {
                announce(&host, addr);
            }
        });
    }
    let served = connections::bind_rustls(args.https_addr, tls_config, connection_limits)
        .handle(handle)
        .serve(app.into_make_service_with_connect_info::<SocketAddr>())
        .await
        .with_context(|| format!("serving HTTPS on {}", args.https_addr));
    signals.abort();
    if let Some(task) = retention {
        // A purge in flight rolls back (each organisation's batch is one transaction).
        task.abort();
    }
    if let Some(stream) = stream {
        // Safe at any point: the next run resumes from what JetStream acknowledged.
        stream.abort();
    }
    if let Some(schedule) = schedule {
        // A backup or drill in flight is abandoned: its directory stays incomplete (never
        // restored, removed by retention) and a scratch database is left to drop by hand.
        schedule.abort();
    }
    redirect_handle.graceful_shutdown(Some(Duration::from_secs(1)));
    if let Some(task) = redirect {
        let _ = task.await;
    }
    // Records the open refusal counts and signs every chain with unsigned events.
    audit.shutdown().await;
    runtime.close().await;
    key_pool.close().await;
    audit_pool.close().await;
    served
}

/// The connection limits of `args`; an idle timeout that a slow (but allowed) request
/// would outlast is refused.
pub fn connection_limits(args: &ServeArgs) -> anyhow::Result<ConnectionLimits> {
    let n = &args.network;
    let limits = ConnectionLimits {
        tls_handshake_timeout: Duration::from_secs(n.tls_handshake_timeout_secs),
        header_read_timeout: Duration::from_secs(n.header_read_timeout_secs),
        idle_timeout: Duration::from_secs(n.idle_timeout_secs),
        max_connections: n.max_connections,
        ..ConnectionLimits::default()
    };
    if n.idle_timeout_secs <= args.request_timeout_secs {
        anyhow::bail!(
            "--idle-timeout-secs ({}) must exceed --request-timeout-secs ({})",
            n.idle_timeout_secs,
            args.request_timeout_secs
        );
    }
    if n.max_connections == 0
        || n.tls_handshake_timeout_secs == 0
        || n.header_read_timeout_secs == 0
    {
        anyhow::bail!("connection limits and timeouts must be at least 1");
    }
    // Deadlines are computed as now + timeout and the cap is a semaphore's permits: values
    // past these would overflow (a panic in every connection) rather than mean "no limit".
    const MAX_TIMEOUT_SECS: u64 = 24 * 60 * 60;
    const MAX_CONNECTIONS: usize = 1_000_000;
    let timeouts = [
        n.tls_handshake_timeout_secs,
        n.header_read_timeout_secs,
        n.idle_timeout_secs,
        args.request_timeout_secs,
    ];
    if timeouts.iter().any(|t| *t > MAX_TIMEOUT_SECS) || n.max_connections > MAX_CONNECTIONS {
        anyhow::bail!(
            "timeouts must be at most {MAX_TIMEOUT_SECS} s and --max-connections at most \
             {MAX_CONNECTIONS}"
        );
    }
    Ok(limits)
}

#[expect(clippy::print_stdout, reason = "the operator needs the URL")]
fn announce(host: &str, addr: SocketAddr) {
    println!("ProcuHelp is listening on https://{host}:{}/", addr.port());
}

/// The data directory is private (0700). When we run as root, the embedded PostgreSQL runs
/// as another OS user that must be able to search it: then it is group-owned by that
/// user's group with mode 0710 (search only: no listing, and every file inside keeps its
/// own private mode).
pub fn create_private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating the data directory {}", dir.display()))?;
    let mode = match procuhelp_tenancy::embedded::cluster_os_user()? {
        Some((_, gid)) => {
            std::os::unix::fs::chown(dir, None, Some(gid))
                .with_context(|| format!("chgrp {}", dir.display()))?;
            0o710
        }
        None => 0o700,
    };
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {mode:o} {}", dir.display()))?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
}

/// The operator API's state: the operators named in `file`, on the schema owner's
/// connection (refused, and the server does not start, on any other).
async fn operator_api(
    file: &std::path::Path,
    db: &Database,
    runtime: &sqlx::PgPool,
    log: procuhelp_audit::PgAuditSink,
    sink: std::sync::Arc<dyn procuhelp_audit::AuditSink>,
    committed: crate::operator_api::Committed,
    residency: procuhelp_tenancy::residency::Residency,
) -> anyhow::Result<crate::operator_api::OperatorApi> {
    let meta = std::fs::metadata(file).with_context(|| format!("reading {}", file.display()))?;
    if meta.len() > 64 * 1024 {
        anyhow::bail!("{} is larger than 64 KiB", file.display());
    }
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let operators = procuhelp_auth::operator::Operators::from_json(&bytes)?;
    let owner = db.owner_pool().await?;
    if let Err(e) = procuhelp_tenancy::organisation_ids(&owner).await {
        owner.close().await;
        anyhow::bail!(
            "the operator API creates organisations, which needs the schema owner's connection: {e}"
        );
    }
    tracing::info!(operators = ?operators, "operator API served");
    Ok(crate::operator_api::OperatorApi {
        operators: std::sync::Arc::new(operators),
        replay: Default::default(),
        owner,
        runtime: runtime.clone(),
        log,
        sink,
        committed,
        residency: std::sync::Arc::new(residency),
    })
}

/// The retention purge on its schedule, when this process can list every organisation
/// (the embedded default; a configured database whose URL is the schema owner's). With
/// only the runtime role's URL it cannot: say so once, and leave the job to
/// `procuhelp-server retention` run by the operator with the owner's URL.
async fn retention_schedule(
    args: &ServeArgs,
    db: &Database,
    runtime: &sqlx::PgPool,
    log: procuhelp_audit::PgAuditSink,
    audit: std::sync::Arc<dyn procuhelp_audit::AuditSink>,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    if args.retention_every_hours == 0 {
        anyhow::bail!("--retention-every-hours must be at least 1");
    }
    let owner = db.owner_pool().await?;
    if let Err(e) = procuhelp_tenancy::organisation_ids(&owner).await {
        owner.close().await;
        tracing::warn!(
            error = %e,
            "retention purge not scheduled: run `procuhelp-server retention` with the schema \
             owner's URL (cron) to purge expired personal data"
        );
        return Ok(None);
    }
    let every = Duration::from_secs(args.retention_every_hours.saturating_mul(3600));
    Ok(Some(tokio::spawn(crate::retention::schedule(
        owner,
        runtime.clone(),
        log,
        audit,
        every,
    ))))
}
