//! The 31-section review checklist: OWASP Top 10 (2021), OWASP API Security Top 10
//! (2023), OWASP Top 10 for LLM Applications (2025) and one section of our own for
//! recovery readiness. Each section names the checks that cover it; a section no check
//! covers is reviewed by hand and says where its control is documented, and the LLM
//! sections say why they do not apply.

use serde::Serialize;

/// One section of the checklist.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Section {
    /// `A01`, `API1`, `LLM01`, `OPS1`.
    pub id: &'static str,
    /// Its title in the source list.
    pub title: &'static str,
    /// The automated checks ([`super::Check::id`]) that cover it.
    pub checks: &'static [&'static str],
    /// Where the control is documented when no check covers it, or why it does not apply.
    pub note: &'static str,
    /// False for sections that cannot apply to this product.
    pub applies: bool,
}

const fn s(
    id: &'static str,
    title: &'static str,
    checks: &'static [&'static str],
    note: &'static str,
) -> Section {
    Section {
        id,
        title,
        checks,
        note,
        applies: true,
    }
}

const fn llm(id: &'static str, title: &'static str) -> Section {
    Section {
        id,
        title,
        checks: &[],
        note: "not applicable: the product has no LLM or other machine-learning features; no \
               model is called, hosted or fed with customer data",
        applies: false,
    }
}

/// The sections, in order.
pub const SECTIONS: [Section; 31] = [
    s(
        "A01",
        "Broken Access Control",
        &["rls_posture", "access_matrix"],
        "",
    ),
    s(
        "A02",
        "Cryptographic Failures",
        &["server_tls", "database_tls", "keys"],
        "",
    ),
    s(
        "A03",
        "Injection",
        &[],
        "SQL only through sqlx bind parameters; SAML/XML through xmlsec and roxmltree; fuzz targets (docs/fuzzing.md)",
    ),
    s(
        "A04",
        "Insecure Design",
        &["access_matrix"],
        "threat model (docs/threat-model.md)",
    ),
    s(
        "A05",
        "Security Misconfiguration",
        &["security_headers", "rls_posture", "sso_mfa"],
        "",
    ),
    s(
        "A06",
        "Vulnerable and Outdated Components",
        &["dependencies"],
        "",
    ),
    s(
        "A07",
        "Identification and Authentication Failures",
        &["sso_mfa"],
        "",
    ),
    s(
        "A08",
        "Software and Data Integrity Failures",
        &["audit_chains", "dependencies"],
        "",
    ),
    s(
        "A09",
        "Security Logging and Monitoring Failures",
        &["audit_chains"],
        "access log, metrics and alerts (docs/observability.md)",
    ),
    s(
        "A10",
        "Server-Side Request Forgery",
        &[],
        "every configured fetch goes through procuhelp_core::OutboundPolicy (public addresses only, after DNS, no redirects)",
    ),
    s(
        "API1",
        "Broken Object Level Authorization",
        &["rls_posture"],
        "",
    ),
    s("API2", "Broken Authentication", &["sso_mfa"], ""),
    s(
        "API3",
        "Broken Object Property Level Authorization",
        &["access_matrix"],
        "typed request bodies with unknown fields refused",
    ),
    s(
        "API4",
        "Unrestricted Resource Consumption",
        &[],
        "body, time and connection limits (docs/hardening.md); hostile-load test (scripts/load.sh)",
    ),
    s(
        "API5",
        "Broken Function Level Authorization",
        &["access_matrix"],
        "",
    ),
    s(
        "API6",
        "Unrestricted Access to Sensitive Business Flows",
        &[],
        "sign-in throttle and lockout; segregation of duties on approvals (docs/auth.md)",
    ),
    s(
        "API7",
        "Server Side Request Forgery",
        &[],
        "procuhelp_core::OutboundPolicy, as A10",
    ),
    s(
        "API8",
        "Security Misconfiguration",
        &["security_headers", "server_tls"],
        "",
    ),
    s(
        "API9",
        "Improper Inventory Management",
        &["access_matrix"],
        "one route table per router; the role x organisation test walks it",
    ),
    s(
        "API10",
        "Unsafe Consumption of APIs",
        &["sso_mfa"],
        "IdP responses verified (signatures, issuers, audiences) before use (docs/sso.md)",
    ),
    llm("LLM01", "Prompt Injection"),
    llm("LLM02", "Sensitive Information Disclosure"),
    llm("LLM03", "Supply Chain"),
    llm("LLM04", "Data and Model Poisoning"),
    llm("LLM05", "Improper Output Handling"),
    llm("LLM06", "Excessive Agency"),
    llm("LLM07", "System Prompt Leakage"),
    llm("LLM08", "Vector and Embedding Weaknesses"),
    llm("LLM09", "Misinformation"),
    llm("LLM10", "Unbounded Consumption"),
    s(
        "OPS1",
        "Backups, recovery and key custody",
        &["backups", "vault", "keys"],
        "",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thirty_one_distinct_sections_each_covered_or_explained() {
        let ids: std::collections::HashSet<_> = SECTIONS.iter().map(|s| s.id).collect();
        assert_eq!(ids.len(), 31);
        for section in SECTIONS {
            assert!(
                !section.checks.is_empty() || !section.note.is_empty(),
                "{} has neither a check nor a note",
                section.id
            );
            for check in section.checks {
                assert!(
                    super::super::CHECK_IDS.contains(check),
                    "{}: unknown check {check}",
                    section.id
                );
            }
        }
    }
}
