//! The remediation backlog: one entry per finding (check id and the finding's stable key),
//! updated by each run rather than appended to. A finding seen again keeps its id, first
//! sighting and severity history; one no longer seen is marked resolved (with when), and
//! one that comes back is reopened.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{Report, Severity};

/// The largest backlog file read.
const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;

/// The backlog file.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backlog {
    /// Always `procuhelp.self-audit-backlog/1`.
    pub schema: String,
    /// By id (`<check>:<key>`).
    pub findings: BTreeMap<String, Entry>,
}

/// One finding's record.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// `<check>:<key>`.
    pub id: String,
    /// The check that found it.
    pub check: String,
    /// Its latest severity.
    pub severity: Severity,
    /// Its latest description.
    pub detail: String,
    /// When a run first found it.
    #[serde(with = "time::serde::rfc3339")]
    pub first_seen: OffsetDateTime,
    /// When a run last found it.
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
    /// `open` or `resolved`.
    pub status: String,
    /// When a run found it gone.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub resolved_at: Option<OffsetDateTime>,
    /// Times it came back after being resolved.
    #[serde(default)]
    pub reopened: u32,
}

/// Reads `path` (a missing file is an empty backlog), folds `report` in and writes it
/// back (atomically: a temporary file renamed over it).
pub fn update(path: &Path, report: &Report) -> anyhow::Result<Backlog> {
    let mut backlog = match std::fs::metadata(path) {
        Ok(meta) if meta.len() > MAX_FILE_BYTES => {
            anyhow::bail!("{} is larger than 8 MiB", path.display())
        }
        Ok(_) => serde_json::from_slice(&std::fs::read(path)?)
            .with_context(|| format!("{}: not a self-audit backlog", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Backlog::default(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    fold(&mut backlog, report);
    let tmp = path.with_extension("json.tmp");
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        file.write_all(&serde_json::to_vec_pretty(&backlog)?)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(backlog)
}

fn fold(backlog: &mut Backlog, report: &Report) {
    backlog.schema = "procuhelp.self-audit-backlog/1".to_owned();
    let now = report.generated_at;
    let mut seen = std::collections::HashSet::new();
    for check in &report.checks {
        for f in &check.findings {
            let id = format!("{}:{}", check.id, f.key);
            seen.insert(id.clone());
            let entry = backlog.findings.entry(id.clone()).or_insert_with(|| Entry {
                id,
                check: check.id.to_owned(),
                severity: f.severity,
                detail: f.detail.clone(),
                first_seen: now,
                last_seen: now,
                status: "open".to_owned(),
                resolved_at: None,
                reopened: 0,
            });
            if entry.status == "resolved" {
                entry.status = "open".to_owned();
                entry.resolved_at = None;
                entry.reopened += 1;
            }
            entry.severity = f.severity;
            entry.detail.clone_from(&f.detail);
            entry.last_seen = now;
        }
    }
    for (id, entry) in &mut backlog.findings {
        if !seen.contains(id) && entry.status == "open" {
            entry.status = "resolved".to_owned();
            entry.resolved_at = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Check, Status};
    use super::*;

    fn report(at: i64, findings: &[(&str, Severity)]) -> Report {
        let mut check = Check::new("rls_posture", "RLS");
        for (key, severity) in findings {
            check.find(*key, *severity, format!("{key} is wrong"));
        }
        Report {
            schema: "procuhelp.self-audit/1",
            generated_at: OffsetDateTime::from_unix_timestamp(at).unwrap(),
            version: "test",
            verdict: Status::Fail,
            checks: vec![check],
            sections: Vec::new(),
        }
    }

    #[test]
    fn runs_update_entries_instead_of_duplicating_them() {
        let mut backlog = Backlog::default();
        fold(
            &mut backlog,
            &report(1000, &[("app.suppliers", Severity::High)]),
        );
        fold(
            &mut backlog,
            &report(
                2000,
                &[
                    ("app.suppliers", Severity::High),
                    ("app.contracts", Severity::Low),
                ],
            ),
        );
        assert_eq!(backlog.findings.len(), 2);
        let e = &backlog.findings["rls_posture:app.suppliers"];
        assert_eq!(
            (e.first_seen.unix_timestamp(), e.last_seen.unix_timestamp()),
            (1000, 2000)
        );
        assert_eq!(e.status, "open");
        // Gone: resolved, not removed.
        fold(
            &mut backlog,
            &report(3000, &[("app.contracts", Severity::Low)]),
        );
        let e = &backlog.findings["rls_posture:app.suppliers"];
        assert_eq!(
            (e.status.as_str(), e.resolved_at.map(|t| t.unix_timestamp())),
            ("resolved", Some(3000))
        );
        // Back: reopened, first sighting kept.
        fold(
            &mut backlog,
            &report(4000, &[("app.suppliers", Severity::Medium)]),
        );
        let e = &backlog.findings["rls_posture:app.suppliers"];
        assert_eq!(
            (e.status.as_str(), e.reopened, e.first_seen.unix_timestamp()),
            ("open", 1, 1000)
        );
        assert_eq!(e.severity, Severity::Medium);
        assert_eq!(backlog.findings.len(), 2);
    }
}
