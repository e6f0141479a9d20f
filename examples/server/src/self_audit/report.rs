//! `self-audit.json` for machines, `self-audit.html` for people (no script, no external
//! resource; every value escaped), and the checklist's sections from the checks.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;

use super::backlog::Backlog;
use super::checklist::SECTIONS;
use super::{Check, Report, SectionResult, Status};

/// Each section's outcome: the worst of its checks, `manual` with none, or
/// `not_applicable`.
pub(super) fn sections(checks: &[Check]) -> Vec<SectionResult> {
    SECTIONS
        .iter()
        .map(|section| {
            let status = if !section.applies {
                "not_applicable"
            } else if section.checks.is_empty() {
                "manual"
            } else {
                let worst = section
                    .checks
                    .iter()
                    .filter_map(|id| checks.iter().find(|c| c.id == *id))
                    .map(|c| c.status)
                    .fold(Status::Pass, |a, b| match (a, b) {
                        (Status::Fail, _) | (_, Status::Fail) => Status::Fail,
                        (Status::Warn, _) | (_, Status::Warn) => Status::Warn,
                        _ => Status::Pass,
                    });
                match worst {
                    Status::Pass => "pass",
                    Status::Warn => "warn",
                    Status::Fail => "fail",
                }
            };
            SectionResult {
                section: *section,
                status,
            }
        })
        .collect()
}

/// Writes both files into `dir` (0600 each).
pub(super) fn write(dir: &Path, report: &Report, backlog: &Backlog) -> anyhow::Result<()> {
    write_private(
        &dir.join("self-audit.json"),
        &serde_json::to_vec_pretty(report)?,
    )?;
    write_private(
        &dir.join("self-audit.html"),
        html(report, backlog).as_bytes(),
    )?;
    write_private(
        &dir.join("self-audit.md"),
        markdown(report, backlog).as_bytes(),
    )?;
    Ok(())
}

/// The findings as Markdown, for the security overview (`scripts/overview.sh`).
fn markdown(report: &Report, backlog: &Backlog) -> String {
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    let mut m = String::from("# Self-audit findings\n\n");
    let _ = writeln!(
        m,
        "Generated {} by `procuhelp-server self-audit` ({}). Verdict: **{}**.\n",
        report
            .generated_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        report.version,
        status_word(report.verdict)
    );
    m.push_str("| Check | Status | Summary |\n|---|---|---|\n");
    for c in &report.checks {
        let _ = writeln!(
            m,
            "| {} (`{}`) | {} | {} |",
            cell(c.title),
            c.id,
            status_word(c.status),
            cell(&c.summary)
        );
    }
    m.push_str("\n## Checklist\n\n| Section | Status | Checks | Note |\n|---|---|---|---|\n");
    for s in &report.sections {
        let _ = writeln!(
            m,
            "| {} {} | {} | {} | {} |",
            s.section.id,
            cell(s.section.title),
            s.status,
            s.section.checks.join(", "),
            cell(s.section.note)
        );
    }
    m.push_str("\n## Backlog\n\n");
    if backlog.findings.is_empty() {
        m.push_str("No findings.\n");
    } else {
        m.push_str("| Id | Severity | Status | First seen | Detail |\n|---|---|---|---|---|\n");
        for e in backlog.findings.values() {
            let _ = writeln!(
                m,
                "| `{}` | {:?} | {} | {} | {} |",
                e.id,
                e.severity,
                e.status,
                e.first_seen.date(),
                cell(&e.detail)
            );
        }
    }
    m
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(bytes)?;
    Ok(())
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn status_word(s: Status) -> &'static str {
    match s {
        Status::Pass => "pass",
        Status::Warn => "warn",
        Status::Fail => "fail",
    }
}

/// The page. Markdown-friendly too: `docs/self-audit.md` is made from the same report.
fn html(report: &Report, backlog: &Backlog) -> String {
    let mut h = String::new();
    let when = report
        .generated_at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>ProcuHelp self-audit</title>\
         <style>body{{font:15px/1.45 system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem}}\
         table{{border-collapse:collapse;width:100%;margin:1rem 0}}td,th{{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;vertical-align:top}}\
         .pass{{color:#05660d}}.warn{{color:#8a5a00}}.fail{{color:#a00;font-weight:bold}}</style></head><body>\
         <h1>ProcuHelp self-audit</h1><p>Generated {} by procuhelp-server {}. Verdict: <strong class=\"{v}\">{v}</strong>.</p>",
        esc(&when),
        esc(report.version),
        v = status_word(report.verdict),
    );
    h.push_str("<h2>Checks</h2><table><tr><th>Check</th><th>Status</th><th>Summary</th></tr>");
    for c in &report.checks {
        let _ = write!(
            h,
            "<tr><td>{}<br><code>{}</code></td><td class=\"{s}\">{s}</td><td>{}</td></tr>",
            esc(c.title),
            esc(c.id),
            esc(&c.summary),
            s = status_word(c.status)
        );
    }
    h.push_str("</table><h2>Checklist (31 sections)</h2><table><tr><th>Section</th><th>Status</th><th>Checks</th><th>Note</th></tr>");
    for s in &report.sections {
        let _ = write!(
            h,
            "<tr><td>{} {}</td><td class=\"{st}\">{st}</td><td>{}</td><td>{}</td></tr>",
            esc(s.section.id),
            esc(s.section.title),
            esc(&s.section.checks.join(", ")),
            esc(s.section.note),
            st = s.status
        );
    }
    h.push_str("</table><h2>Backlog</h2><table><tr><th>Id</th><th>Severity</th><th>Status</th><th>First seen</th><th>Detail</th></tr>");
    for e in backlog.findings.values() {
        let first = e
            .first_seen
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let _ = write!(
            h,
            "<tr><td><code>{}</code></td><td>{:?}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&e.id),
            e.severity,
            esc(&e.status),
            esc(&first),
            esc(&e.detail)
        );
    }
    h.push_str("</table></body></html>\n");
    h
}
