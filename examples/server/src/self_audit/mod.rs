//! `procuhelp-server self-audit --out DIR`: the deployment checked from the live system.
//!
//! Each [`Check`] runs against the deployment (its database, vault, repository, build and
//! — with `--url` — its served headers), not against prose. The report maps the checks to
//! the 31 sections of [`checklist::SECTIONS`]; every failing or warning finding goes to a
//! backlog file ([`backlog`]) that the next run updates: a finding keeps its id and first
//! sighting, is marked resolved when its check passes, and reopened if it comes back.
//! The command exits non-zero when any check fails.

pub mod backlog;
pub mod checklist;
mod checks;
mod report;

use std::path::PathBuf;

use anyhow::Context as _;
use serde::Serialize;
use time::OffsetDateTime;

pub use checks::CHECK_IDS;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Nothing found.
    Pass,
    /// Something to look at; not a failure of the deployment.
    Warn,
    /// The deployment does not meet the control.
    Fail,
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing.
    Low,
    /// To fix in the normal course.
    Medium,
    /// To fix now.
    High,
}

/// One thing a check found.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Stable within its check across runs (`app.suppliers`, `header:content-security-policy`).
    pub key: String,
    /// How bad.
    pub severity: Severity,
    /// What is wrong, for people.
    pub detail: String,
}

/// One check's result.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// `rls_posture`, `audit_chains`, ….
    pub id: &'static str,
    /// For people.
    pub title: &'static str,
    /// Pass, warn or fail.
    pub status: Status,
    /// One line.
    pub summary: String,
    /// What it found wrong (empty on a pass).
    pub findings: Vec<Finding>,
    /// What it measured (per organisation, key ages, …).
    pub details: serde_json::Value,
}

impl Check {
    fn new(id: &'static str, title: &'static str) -> Self {
        Self {
            id,
            title,
            status: Status::Pass,
            summary: String::new(),
            findings: Vec::new(),
            details: serde_json::Value::Null,
        }
    }

    /// Adds a finding; the status follows the worst one (high and medium fail, low warns).
    fn find(&mut self, key: impl Into<String>, severity: Severity, detail: impl Into<String>) {
        let status = if severity >= Severity::Medium {
            Status::Fail
        } else {
            Status::Warn
        };
        if status == Status::Fail || self.status == Status::Pass {
            self.status = status;
        }
        self.findings.push(Finding {
            key: key.into(),
            severity,
            detail: detail.into(),
        });
    }
}

/// The whole report (`self-audit.json`).
#[derive(Debug, Serialize)]
pub struct Report {
    /// Always `procuhelp.self-audit/1`.
    pub schema: &'static str,
    /// When it ran.
    #[serde(with = "time::serde::rfc3339")]
    pub generated_at: OffsetDateTime,
    /// The server's version.
    pub version: &'static str,
    /// `pass` or `fail`.
    pub verdict: Status,
    /// The checks.
    pub checks: Vec<Check>,
    /// The checklist, each section with its checks' worst status.
    pub sections: Vec<SectionResult>,
}

/// A checklist section's outcome.
#[derive(Debug, Serialize)]
pub struct SectionResult {
    /// The section.
    #[serde(flatten)]
    pub section: checklist::Section,
    /// `pass`, `warn`, `fail`, `manual` (no automated check: see the note) or
    /// `not_applicable`.
    pub status: &'static str,
}

/// What the command was given.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the report goes.
    pub out: PathBuf,
    /// The backlog file (default `DIR/backlog.json`).
    pub backlog: Option<PathBuf>,
    /// The backup repository to check (none: the backup check fails).
    pub backup_repo: Option<PathBuf>,
    /// The oldest acceptable backup and passing drill.
    pub backup_max_age: std::time::Duration,
    /// The oldest acceptable passing drill.
    pub drill_max_age: std::time::Duration,
    /// The oldest acceptable active data key.
    pub max_key_age_days: i64,
    /// The served origin whose headers to grade (none: the code's own, in process).
    pub url: Option<String>,
    /// The CA for `url` (default: the server's own certificate in the data directory).
    pub ca_file: Option<PathBuf>,
    /// The published checkpoint key(s) (hex or files, as `audit verify --trusted-key`).
    pub trusted_keys: Vec<String>,
}

/// Runs the checks, writes the report and updates the backlog; `Ok(false)` when a check
/// failed.
pub async fn run(db: &crate::cli::DatabaseArgs, options: &Options) -> anyhow::Result<bool> {
    {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&options.out)
            .with_context(|| format!("creating {}", options.out.display()))?;
    }
    let checks = checks::run_all(db, options).await?;
    let sections = report::sections(&checks);
    let verdict = if checks.iter().any(|c| c.status == Status::Fail) {
        Status::Fail
    } else {
        Status::Pass
    };
    let report = Report {
        schema: "procuhelp.self-audit/1",
        generated_at: OffsetDateTime::now_utc(),
        version: env!("CARGO_PKG_VERSION"),
        verdict,
        checks,
        sections,
    };
    let backlog_path = options
        .backlog
        .clone()
        .unwrap_or_else(|| options.out.join("backlog.json"));
    let backlog = backlog::update(&backlog_path, &report)?;
    report::write(&options.out, &report, &backlog)?;
    for check in &report.checks {
        match check.status {
            Status::Pass => tracing::info!(check = check.id, "{}", check.summary),
            Status::Warn => tracing::warn!(check = check.id, "{}", check.summary),
            Status::Fail => tracing::error!(check = check.id, "{}", check.summary),
        }
        for f in &check.findings {
            tracing::warn!(check = check.id, key = %f.key, severity = ?f.severity, "{}", f.detail);
        }
    }
    Ok(verdict == Status::Pass)
}
