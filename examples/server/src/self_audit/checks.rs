//! The checks, each against the live deployment.

use std::time::Duration;

use anyhow::Context as _;
use procuhelp_auth::{Permission, Role};
use procuhelp_core::OrgId;
use procuhelp_core::vault::SecretProvider;
use procuhelp_tenancy::TenantDb;
use serde_json::json;

use super::{Check, Options, Severity};
use crate::cli::DatabaseArgs;

/// Every check's id, in report order.
pub const CHECK_IDS: [&str; 11] = [
    "rls_posture",
    "database_tls",
    "server_tls",
    "security_headers",
    "keys",
    "vault",
    "sso_mfa",
    "backups",
    "audit_chains",
    "dependencies",
    "access_matrix",
];

/// Runs every check; a check that cannot run is a failure of that check, not of the run.
pub(super) async fn run_all(
    db_args: &DatabaseArgs,
    options: &Options,
) -> anyhow::Result<Vec<Check>> {
    // Read first: a bad --trusted-key is refused before anything is opened. Pinned keys
    // come from the operator (published apart from the server); without them the
    // deployment's own signer is trusted, which a finding says.
    let pinned = if options.trusted_keys.is_empty() {
        None
    } else {
        Some(crate::audit_log::trust(&options.trusted_keys, false)?)
    };
    let (vault, db) = crate::open(db_args).await?;
    let runtime = db
        .runtime_pool(&procuhelp_tenancy::RuntimeRole::default(), 2)
        .await?;
    // Only the schema owner lists every organisation (the embedded default is).
    let owner = db.owner_pool().await?;
    let orgs = procuhelp_tenancy::organisation_ids(&owner).await;
    owner.close().await;
    let orgs = match orgs {
        // The system chain's organisation is no tenant: its chain is checked on its own.
        Ok(mut orgs) => {
            orgs.retain(|o| *o != procuhelp_audit::system_chain_org());
            orgs
        }
        Err(e) => {
            runtime.close().await;
            db.close().await?;
            anyhow::bail!(
                "the self-audit lists every organisation, which needs the schema owner's connection: {e}"
            );
        }
    };
    let tenants = TenantDb::new(runtime.clone());
    let signer = crate::audit_log::checkpoint_signer(db_args).await?;
    let keys = signer.public_keys().await?;
    let mut checks = vec![
        rls_posture(&runtime).await,
        database_tls(&runtime).await,
        server_tls(db_args),
        security_headers(db_args, options).await,
        data_keys(&tenants, &orgs, options.max_key_age_days).await,
        vault_check(vault.as_ref()).await,
        sso_mfa(&tenants, &orgs).await,
        backups(options, &keys),
    ];
    let (log, audit_pool, database) = crate::open_audit_log_on(db_args, vault.clone(), db).await?;
    checks.push(audit_chains(&log, &tenants, &orgs, &keys, pinned).await);
    checks.push(dependencies());
    checks.push(access_matrix());
    audit_pool.close().await;
    runtime.close().await;
    database.close().await?;
    debug_assert_eq!(
        checks.iter().map(|c| c.id).collect::<Vec<_>>(),
        CHECK_IDS.to_vec()
    );
    Ok(checks)
}

fn summarise(check: &mut Check, ok: impl Into<String>) {
    if check.findings.is_empty() {
        check.summary = ok.into();
    } else {
        check.summary = format!(
            "{} finding(s): {}",
            check.findings.len(),
            check
                .findings
                .iter()
                .take(3)
                .map(|f| f.detail.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
}

async fn rls_posture(runtime: &sqlx::PgPool) -> Check {
    let mut check = Check::new("rls_posture", "Row-level security posture");
    match procuhelp_tenancy::posture::check(runtime).await {
        Ok(()) => {}
        Err(procuhelp_tenancy::Error::Posture(e)) => {
            for f in e.findings {
                // The object and the problem: two problems of one table are two entries.
                check.find(
                    format!("{} ({:?})", f.object, f.problem),
                    Severity::High,
                    f.to_string(),
                );
            }
        }
        Err(e) => check.find(
            "check",
            Severity::High,
            format!("the posture check did not run: {e}"),
        ),
    }
    summarise(
        &mut check,
        "every tenant table enables and forces RLS with tenant-bound policies; the runtime role bypasses nothing",
    );
    check
}

async fn database_tls(runtime: &sqlx::PgPool) -> Check {
    let mut check = Check::new("database_tls", "Database connection encryption");
    let row: Result<(Option<bool>, Option<String>, Option<String>), _> = sqlx::query_as(
        "SELECT s.ssl, s.version, host(inet_server_addr())
         FROM pg_stat_ssl s WHERE s.pid = pg_backend_pid()",
    )
    .fetch_one(runtime)
    .await;
    match row {
        Ok((_, _, None)) => {
            check.details = json!({ "transport": "unix socket" });
            check.summary = "local Unix socket: no network path to encrypt".to_owned();
            return check;
        }
        Ok((Some(true), version, Some(host))) => {
            check.details = json!({ "transport": "tcp", "host": host, "tls": version });
            if !matches!(version.as_deref(), Some("TLSv1.2" | "TLSv1.3")) {
                check.find(
                    "version",
                    Severity::Medium,
                    format!("database TLS version {version:?}"),
                );
            }
        }
        Ok((_, _, Some(host))) => {
            check.details = json!({ "transport": "tcp", "host": host, "tls": null });
            let loopback = host.starts_with("127.") || host == "::1";
            check.find(
                "plaintext",
                if loopback {
                    Severity::Low
                } else {
                    Severity::High
                },
                format!("the database connection to {host} is not encrypted"),
            );
        }
        Err(e) => check.find(
            "check",
            Severity::Medium,
            format!("could not read pg_stat_ssl: {e}"),
        ),
    }
    summarise(&mut check, "the database connection is TLS 1.2+");
    check
}

fn server_tls(db: &DatabaseArgs) -> Check {
    let mut check = Check::new("server_tls", "HTTPS configuration");
    let paths = crate::tls::CertPaths {
        cert: db.data_dir.join("tls/cert.pem"),
        key: db.data_dir.join("tls/key.pem"),
    };
    match crate::tls::server_config(&paths) {
        Ok(config) => {
            let suites: Vec<String> = config
                .crypto_provider()
                .cipher_suites
                .iter()
                .map(|s| format!("{:?}", s.suite()))
                .collect();
            let versions: std::collections::BTreeSet<String> = config
                .crypto_provider()
                .cipher_suites
                .iter()
                .map(|s| format!("{:?}", s.version().version))
                .collect();
            if versions
                .iter()
                .any(|v| !matches!(v.as_str(), "TLSv1_2" | "TLSv1_3"))
            {
                check.find(
                    "versions",
                    Severity::High,
                    format!("protocol versions {versions:?}"),
                );
            }
            if suites
                .iter()
                .any(|s| s.contains("CBC") || s.contains("SHA1") && !s.contains("TLS13"))
            {
                check.find(
                    "suites",
                    Severity::Medium,
                    "a CBC or SHA-1 cipher suite is offered",
                );
            }
            check.details = json!({ "versions": versions, "cipher_suites": suites, "alpn": ["h2", "http/1.1"] });
        }
        Err(e) => check.find(
            "certificate",
            Severity::High,
            format!("the server's certificate does not load: {e:#}"),
        ),
    }
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(&paths.key)
            && meta.permissions().mode() & 0o077 != 0
        {
            check.find(
                "key-mode",
                Severity::High,
                format!("{} is readable by others", paths.key.display()),
            );
        }
    }
    summarise(
        &mut check,
        "TLS 1.2 and 1.3 only, AEAD suites, private key 0600",
    );
    check
}

/// The headers every page must carry, graded as Mozilla's Observatory does for an A+.
pub(crate) fn grade_headers(headers: &reqwest::header::HeaderMap, check: &mut Check) {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase)
    };
    match get("strict-transport-security") {
        Some(v) => {
            let age = v
                .split(';')
                .find_map(|p| p.trim().strip_prefix("max-age="))
                .and_then(|a| a.trim().parse::<u64>().ok())
                .unwrap_or(0);
            if age < 31_536_000 {
                check.find(
                    "header:strict-transport-security",
                    Severity::Medium,
                    format!("HSTS max-age {age} is under a year"),
                );
            }
        }
        None => check.find(
            "header:strict-transport-security",
            Severity::High,
            "no Strict-Transport-Security",
        ),
    }
    match get("content-security-policy") {
        Some(csp) => {
            let directive = |name: &str| {
                csp.split(';')
                    .map(str::trim)
                    .find(|d| d.split_whitespace().next() == Some(name))
                    .map(str::to_owned)
            };
            let script = directive("script-src").or_else(|| directive("default-src"));
            match script {
                Some(s)
                    if s.contains("'unsafe-inline'")
                        && !s.contains("'nonce-")
                        && !s.contains("'strict-dynamic'") =>
                {
                    check.find(
                        "header:content-security-policy",
                        Severity::High,
                        "CSP allows inline script ('unsafe-inline')",
                    );
                }
                Some(s)
                    if s.contains("'unsafe-eval'") || s.contains(" *") || s.contains("http:") =>
                {
                    check.find(
                        "header:content-security-policy",
                        Severity::High,
                        "CSP allows eval or any source for scripts",
                    );
                }
                Some(_) => {}
                None => check.find(
                    "header:content-security-policy",
                    Severity::High,
                    "CSP sets neither script-src nor default-src",
                ),
            }
            if directive("frame-ancestors").is_none() && get("x-frame-options").is_none() {
                check.find(
                    "header:frame-ancestors",
                    Severity::Medium,
                    "neither CSP frame-ancestors nor X-Frame-Options",
                );
            }
        }
        None => check.find(
            "header:content-security-policy",
            Severity::High,
            "no Content-Security-Policy",
        ),
    }
    if get("x-content-type-options").as_deref() != Some("nosniff") {
        check.find(
            "header:x-content-type-options",
            Severity::Medium,
            "X-Content-Type-Options is not nosniff",
        );
    }
    match get("referrer-policy").as_deref() {
        Some(
            "no-referrer" | "same-origin" | "strict-origin" | "strict-origin-when-cross-origin",
        ) => {}
        other => check.find(
            "header:referrer-policy",
            Severity::Low,
            format!("Referrer-Policy {other:?} leaks more than the origin"),
        ),
    }
    if get("cross-origin-opener-policy").is_none() {
        check.find(
            "header:cross-origin-opener-policy",
            Severity::Low,
            "no Cross-Origin-Opener-Policy",
        );
    }
}

async fn security_headers(db: &DatabaseArgs, options: &Options) -> Check {
    let mut check = Check::new("security_headers", "Browser security headers");
    let headers = match &options.url {
        Some(url) => {
            let ca = options
                .ca_file
                .clone()
                .unwrap_or_else(|| db.data_dir.join("tls/cert.pem"));
            match fetch_headers(url, &ca).await {
                Ok(h) => h,
                Err(e) => {
                    check.find(
                        "fetch",
                        Severity::High,
                        format!("could not fetch {url}: {e:#}"),
                    );
                    summarise(&mut check, "");
                    return check;
                }
            }
        }
        None => {
            check.find(
                "in-process",
                Severity::Low,
                "graded the code's own layers in process; give --url to grade what is served (a proxy may strip headers)",
            );
            in_process_headers().await
        }
    };
    check.details = json!({
        "source": options.url.as_deref().unwrap_or("in process (the code's own layers); give --url to grade the served deployment"),
        "headers": headers.iter()
            .filter(|(n, _)| !matches!(n.as_str(), "date" | "content-length" | "x-request-id"))
            .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect::<std::collections::BTreeMap<_, _>>(),
    });
    grade_headers(&headers, &mut check);
    summarise(
        &mut check,
        "HSTS a year+, strict CSP with nonces, nosniff, frame-ancestors, referrer and opener policies",
    );
    check
}

async fn fetch_headers(
    url: &str,
    ca: &std::path::Path,
) -> anyhow::Result<reqwest::header::HeaderMap> {
    let mut builder = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10));
    // Only an https origin needs (and trusts) the CA; a plain-http one is graded as served,
    // and its missing HSTS is then a finding like any other.
    if url.starts_with("https://") {
        let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
        for cert in reqwest::Certificate::from_pem_bundle(&pem)? {
            builder = builder.add_root_certificate(cert);
        }
    } else if !url.starts_with("http://") {
        anyhow::bail!("--url is http:// or https://");
    }
    let client = builder.build()?;
    let url = format!("{}/healthz", url.trim_end_matches('/'));
    Ok(client.get(url).send().await?.headers().clone())
}

async fn in_process_headers() -> reqwest::header::HeaderMap {
    use tower::ServiceExt as _;
    let app = procuhelp_axum::harden(
        axum::Router::new().route("/healthz", axum::routing::get(|| async { "ok" })),
        procuhelp_axum::Limits::default(),
    );
    let request = axum::http::Request::get("/healthz")
        .body(axum::body::Body::empty())
        .unwrap_or_default();
    match app.oneshot(request).await {
        Ok(response) => response.headers().clone(),
        Err(never) => match never {},
    }
}

async fn data_keys(tenants: &TenantDb, orgs: &[OrgId], max_age_days: i64) -> Check {
    let mut check = Check::new("keys", "Field-encryption keys: ages and rotations");
    let mut per_org = Vec::new();
    for &org in orgs {
        let Ok(mut tx) = tenants.begin(org).await else {
            check.find(
                format!("key:{org}"),
                Severity::Medium,
                format!("organisation {org} could not be entered"),
            );
            continue;
        };
        let row: Result<
            (
                Option<i32>,
                Option<time::OffsetDateTime>,
                Option<time::OffsetDateTime>,
            ),
            _,
        > = sqlx::query_as(
            "SELECT (SELECT version FROM app.data_keys WHERE org_id = $1 AND state = 'active'),
                    (SELECT created_at FROM app.data_keys WHERE org_id = $1 AND state = 'active'),
                    (SELECT max(at) FROM app.key_events WHERE org_id = $1 AND event = 'rotated')",
        )
        .bind(org.as_uuid())
        .fetch_one(tx.conn())
        .await;
        let _ = tx.rollback().await;
        match row {
            Ok((version, created, rotated)) => {
                if version.is_none() {
                    check.find(
                        format!("key:{org}"),
                        Severity::Low,
                        format!("organisation {org} has no active data key yet"),
                    );
                }
                let age_days = created.map(|c| (time::OffsetDateTime::now_utc() - c).whole_days());
                if let Some(age) = age_days
                    && age > max_age_days
                {
                    check.find(
                        format!("key:{org}"),
                        Severity::Low,
                        format!(
                            "organisation {org}'s data key is {age} days old (rotate: keys rotate)"
                        ),
                    );
                }
                per_org.push(json!({ "org": org, "active_version": version, "age_days": age_days,
                    "last_rotated": rotated.and_then(|r| r.format(&time::format_description::well_known::Rfc3339).ok()) }));
            }
            Err(e) => check.find(
                format!("key:{org}"),
                Severity::Medium,
                format!("organisation {org}: {e}"),
            ),
        }
    }
    check.details = json!({ "provider": "AES-256-GCM envelope (procuhelp-core), data keys wrapped by the vault's KEKs", "max_age_days": max_age_days, "organisations": per_org });
    summarise(
        &mut check,
        format!(
            "{} organisation(s), every active data key younger than {max_age_days} days",
            orgs.len()
        ),
    );
    check
}

async fn vault_check(vault: &dyn SecretProvider) -> Check {
    let mut check = Check::new("vault", "Vault reachability and seal state");
    match vault.list("").await {
        Ok(names) => {
            check.details = json!({ "reachable": true, "unsealed": true, "secrets": names.len() });
        }
        Err(e) => check.find(
            "reachable",
            Severity::High,
            format!("the vault does not answer (down or sealed): {e}"),
        ),
    }
    summarise(&mut check, "the vault answers and is unsealed");
    check
}

async fn sso_mfa(tenants: &TenantDb, orgs: &[OrgId]) -> Check {
    let mut check = Check::new(
        "sso_mfa",
        "MFA adoption and SSO configuration per organisation",
    );
    let mut per_org = Vec::new();
    for &org in orgs {
        let Ok(mut tx) = tenants.begin(org).await else {
            check.find(
                format!("mfa:{org}"),
                Severity::Medium,
                format!("organisation {org} could not be entered: not checked"),
            );
            continue;
        };
        let row: Result<(i64, i64, bool), _> = sqlx::query_as(
            "SELECT count(*), count(*) FILTER (WHERE totp_sealed IS NOT NULL),
                    (SELECT mfa_required FROM app.organisations WHERE id = $1)
             FROM app.users WHERE org_id = $1 AND status = 'active'",
        )
        .bind(org.as_uuid())
        .fetch_one(tx.conn())
        .await;
        let _ = tx.rollback().await;
        match row {
            Ok((users, with_totp, required)) => {
                if !required && with_totp < users {
                    check.find(
                        format!("mfa:{org}"),
                        Severity::Low,
                        format!("organisation {org}: MFA not required and {with_totp} of {users} active users enrolled"),
                    );
                }
                per_org.push(json!({ "org": org, "active_users": users, "totp_enrolled": with_totp, "mfa_required": required }));
            }
            Err(e) => check.find(
                format!("mfa:{org}"),
                Severity::Medium,
                format!("organisation {org}: {e}"),
            ),
        }
    }
    for (i, warning) in procuhelp_auth::sso::saml::weak_settings(tenants, orgs)
        .await
        .into_iter()
        .enumerate()
    {
        // The organisation's id and the warning's words after it (stable across runs,
        // unlike its position in the list).
        let org = warning
            .split_whitespace()
            .map(|w| w.trim_matches(|c: char| !c.is_ascii_hexdigit() && c != '-'))
            .find(|w| uuid::Uuid::parse_str(w).is_ok());
        let key = match org {
            Some(id) => {
                let what: String = warning
                    .split_once(':')
                    .map_or("", |(_, rest)| rest)
                    .split_whitespace()
                    .take(6)
                    .collect::<Vec<_>>()
                    .join(" ");
                format!("saml:{id}:{what}")
            }
            None => format!("saml:{i}"),
        };
        check.find(key, Severity::Low, warning);
    }
    check.details = json!({ "organisations": per_org });
    summarise(
        &mut check,
        "every organisation requires MFA or has every active user enrolled; no weak SSO setting",
    );
    check
}

fn backups(options: &Options, keys: &[procuhelp_audit::PublicKey]) -> Check {
    let mut check = Check::new("backups", "Backup age and the last restore drill");
    let Some(repo) = &options.backup_repo else {
        check.find(
            "repository",
            Severity::High,
            "no backup repository given (--backup-repo): nothing shows that backups exist",
        );
        summarise(&mut check, "");
        return check;
    };
    let fresh = procuhelp_tenancy::backup::Repository::open(
        repo,
        None,
        procuhelp_tenancy::backup::Placement::AllowSameFilesystem,
    )
    .map_err(anyhow::Error::from)
    .and_then(|r| crate::backups::freshness(&r, keys, time::OffsetDateTime::now_utc()));
    match fresh {
        Ok(f) => {
            let hours = |d: Option<Duration>| d.map(|d| d.as_secs() / 3600);
            check.details = json!({ "latest_backup": f.backup_label, "backup_age_hours": hours(f.backup_age),
                "passing_drill_age_hours": hours(f.drill_age), "last_drill_failed": f.last_drill_failed });
            match f.backup_age {
                None => check.find(
                    "backup-age",
                    Severity::High,
                    "the repository holds no complete backup",
                ),
                Some(age) if age > options.backup_max_age => check.find(
                    "backup-age",
                    Severity::High,
                    format!(
                        "the newest backup is {} h old (limit {} h)",
                        age.as_secs() / 3600,
                        options.backup_max_age.as_secs() / 3600
                    ),
                ),
                Some(_) => {}
            }
            match f.drill_age {
                None => check.find("drill-age", Severity::High, "no restore drill has passed"),
                Some(age) if age > options.drill_max_age => check.find(
                    "drill-age",
                    Severity::Medium,
                    format!(
                        "the last passing drill is {} h old (limit {} h)",
                        age.as_secs() / 3600,
                        options.drill_max_age.as_secs() / 3600
                    ),
                ),
                Some(_) => {}
            }
            if f.last_drill_failed {
                check.find(
                    "drill-failed",
                    Severity::High,
                    "the latest restore drill failed",
                );
            }
        }
        Err(e) => check.find(
            "repository",
            Severity::High,
            format!("the repository could not be read: {e:#}"),
        ),
    }
    summarise(
        &mut check,
        "a recent backup and a recent passing, signed restore drill",
    );
    check
}

async fn audit_chains(
    log: &procuhelp_audit::PgAuditSink,
    tenants: &TenantDb,
    orgs: &[OrgId],
    keys: &[procuhelp_audit::PublicKey],
    pinned: Option<procuhelp_audit::Trust>,
) -> Check {
    let mut check = Check::new(
        "audit_chains",
        "Audit chains verified against the pinned checkpoint key",
    );
    let trust = match pinned.map_or_else(|| {
        check.find(
            "key-not-pinned",
            Severity::Low,
            "checkpoints were checked against the deployment's own signer; give --trusted-key with the key(s) published apart from it",
        );
        procuhelp_audit::Trust::pinned(keys.iter().copied())
    }, Ok) {
        Ok(t) => t,
        Err(e) => {
            check.find(
                "key",
                Severity::High,
                format!("no checkpoint key to pin: {e}"),
            );
            summarise(&mut check, "");
            return check;
        }
    };
    let mut per_chain = Vec::new();
    let chains = orgs
        .iter()
        .copied()
        .chain(std::iter::once(procuhelp_audit::system_chain_org()));
    for org in chains {
        match log.verify_live(org, &trust).await {
            Ok(report) => {
                if report.events > 0 && report.checkpoints_verified == 0 {
                    check.find(
                        format!("unsigned:{org}"),
                        Severity::Low,
                        format!("the audit chain of {org} has no signed checkpoint yet"),
                    );
                }
                if let Some(problem) = &report.problem {
                    check.find(
                        format!("chain:{org}"),
                        Severity::High,
                        format!(
                            "the audit chain of {org} is broken at seq {}: {:?}",
                            problem.seq, problem.kind
                        ),
                    );
                }
                let last_checkpoint: Option<time::OffsetDateTime> = match tenants.begin(org).await {
                    Ok(mut tx) => {
                        let at = sqlx::query_scalar(
                            "SELECT max(at) FROM app.audit_checkpoints WHERE org_id = $1",
                        )
                        .bind(org.as_uuid())
                        .fetch_one(tx.conn())
                        .await
                        .ok()
                        .flatten();
                        let _ = tx.rollback().await;
                        at
                    }
                    Err(_) => None,
                };
                per_chain.push(json!({ "org": org, "events": report.events, "checkpoints_verified": report.checkpoints_verified,
                    "intact": report.is_intact(),
                    "last_checkpoint": last_checkpoint.and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()) }));
            }
            Err(e) => check.find(
                format!("chain:{org}"),
                Severity::High,
                format!("the audit chain of {org} could not be verified: {e}"),
            ),
        }
    }
    check.details = json!({ "chains": per_chain });
    summarise(
        &mut check,
        format!(
            "{} chain(s) intact, checkpoints signed by the pinned key",
            per_chain.len()
        ),
    );
    check
}

fn dependencies() -> Check {
    let mut check = Check::new(
        "dependencies",
        "Dependency advisories (cargo-deny at build time)",
    );
    let snapshot = env!("PROCUHELP_ADVISORY_SNAPSHOT");
    let result = env!("PROCUHELP_DENY_RESULT");
    let at = env!("PROCUHELP_DENY_AT");
    check.details =
        json!({ "advisory_snapshot": snapshot, "cargo_deny": result, "checked_at": at });
    match result {
        "passed" => {}
        "failed" => check.find("cargo-deny", Severity::High, format!("cargo-deny failed for this build's Cargo.lock (advisories of {snapshot})")),
        "stale" => check.find("cargo-deny", Severity::Medium, "the last cargo-deny run was for another Cargo.lock; run scripts/deny.sh and rebuild"),
        _ => check.find("cargo-deny", Severity::Medium, "no cargo-deny result was recorded for this build (run scripts/deny.sh before building)"),
    }
    if let Ok(date) = time::Date::parse(
        snapshot,
        &time::macros::format_description!("[year]-[month]-[day]"),
    ) {
        let age = (time::OffsetDateTime::now_utc().date() - date).whole_days();
        if age > 90 {
            check.find(
                "advisory-snapshot",
                Severity::Low,
                format!("the advisory snapshot is {age} days old"),
            );
        }
    }
    summarise(
        &mut check,
        format!("cargo-deny passed on this Cargo.lock against the advisories of {snapshot}"),
    );
    check
}

/// Routes that answer without a session: sign-in and the SSO flows, each checking what it
/// needs itself. A new public route fails the check until it is reviewed and listed here.
/// Routes that answer without a session, each reviewed: sign-in, the second step and
/// accepting an invitation (the API's and their pages, which call the same functions and
/// refuse other sites' forms), a supplier contact's single-use link, and the stylesheet.
const REVIEWED_PUBLIC: [&str; 8] = [
    "/api/login",
    "/api/login/mfa",
    "/api/invitations/accept",
    "/login",
    "/login/mfa",
    "/invitations/accept",
    "/supplier-invitations/accept",
    "/static/app.css",
];

fn access_matrix() -> Check {
    let mut check = Check::new("access_matrix", "Access matrix (route table x roles)");
    let endpoints = crate::api::endpoints();
    let mut rows = Vec::new();
    for e in &endpoints {
        let roles: Vec<&str> = Role::ALL
            .iter()
            .filter(|r| match e.access {
                procuhelp_axum::Access::Public | procuhelp_axum::Access::SignedIn => true,
                procuhelp_axum::Access::Needs(p) => r.allows(p),
            })
            .map(|r| r.as_str())
            .collect();
        let access = match e.access {
            procuhelp_axum::Access::Public => "public".to_owned(),
            procuhelp_axum::Access::SignedIn => "signed in".to_owned(),
            procuhelp_axum::Access::Needs(p) => p.as_str().to_owned(),
        };
        if e.access == procuhelp_axum::Access::Public
            && !REVIEWED_PUBLIC.contains(&e.path)
            && !e.path.starts_with("/sso/{org}")
        {
            check.find(
                format!("public:{} {}", e.method, e.path),
                Severity::High,
                format!(
                    "{} {} answers without a session and is not among the reviewed public routes",
                    e.method, e.path
                ),
            );
        }
        if e.method != "GET" && e.access == procuhelp_axum::Access::Needs(Permission::ReadAuditLog)
        {
            check.find(
                format!("write:{} {}", e.method, e.path),
                Severity::Medium,
                format!(
                    "{} {} changes state under a read permission",
                    e.method, e.path
                ),
            );
        }
        rows.push(json!({ "method": e.method, "path": e.path, "access": access, "roles": roles }));
    }
    check.details = json!({ "routes": rows });
    summarise(
        &mut check,
        format!(
            "{} routes, each declared with its permission; public routes are the reviewed sign-in and SSO ones",
            endpoints.len()
        ),
    );
    check
}

#[cfg(test)]
mod tests {
    use super::super::Status;
    use super::*;

    #[test]
    fn weak_headers_are_named() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("strict-transport-security", "max-age=300".parse().unwrap());
        h.insert(
            "content-security-policy",
            "default-src 'self'; script-src 'self' 'unsafe-inline'"
                .parse()
                .unwrap(),
        );
        h.insert("x-content-type-options", "nosniff".parse().unwrap());
        let mut check = Check::new("security_headers", "");
        grade_headers(&h, &mut check);
        let keys: Vec<&str> = check.findings.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(check.status, Status::Fail);
        for k in [
            "header:strict-transport-security",
            "header:content-security-policy",
            "header:frame-ancestors",
            "header:referrer-policy",
            "header:cross-origin-opener-policy",
        ] {
            assert!(keys.contains(&k), "{k} not in {keys:?}");
        }
        assert!(!keys.contains(&"header:x-content-type-options"));
    }

    #[tokio::test]
    async fn the_codes_own_headers_grade_clean() {
        let mut check = Check::new("security_headers", "");
        grade_headers(&in_process_headers().await, &mut check);
        assert!(check.findings.is_empty(), "{:?}", check.findings);
    }

    #[test]
    fn the_served_access_matrix_passes() {
        let check = access_matrix();
        assert_eq!(check.status, Status::Pass, "{:?}", check.findings);
    }
}
