//! procuhelp-audit's entries in the personal-data register
//! ([`procuhelp_tenancy::personal_data`]).

use procuhelp_tenancy::personal_data::Class::{Identifier, NotPersonal, Personal, Sealed};
use procuhelp_tenancy::personal_data::{PersonalTable, Retention};

/// The register of procuhelp-audit's tables (part of [`MIGRATIONS`](crate::MIGRATIONS)).
pub(crate) const PERSONAL_DATA: &[PersonalTable] = &[
    PersonalTable {
        table: "app.audit_events",
        subject: Some("subject"),
        purpose: "the tamper-evident audit trail: who did what, when, from where",
        retention: Retention::AuditTrail,
        columns: &[
            ("org_id", NotPersonal),
            ("seq", NotPersonal),
            ("at", Personal),
            ("actor_kind", NotPersonal),
            ("actor_id", Identifier),
            ("action", Personal),
            ("target", Identifier),
            ("outcome", Personal),
            ("context", NotPersonal),
            ("request_id", NotPersonal),
            ("subject", Identifier),
            ("person_key", NotPersonal),
            ("personal", Sealed),
            ("prev_hash", NotPersonal),
            ("hash", NotPersonal),
        ],
    },
    PersonalTable {
        table: "app.audit_checkpoints",
        subject: None,
        purpose: "signed checkpoints of the audit chain",
        retention: Retention::AuditTrail,
        columns: &[
            ("org_id", NotPersonal),
            ("seq", NotPersonal),
            ("head_hash", NotPersonal),
            ("at", NotPersonal),
            ("public_key", NotPersonal),
            ("signature", NotPersonal),
        ],
    },
    PersonalTable {
        table: "app.audit_person_keys",
        subject: Some("subject"),
        purpose: "per-person keys sealing the trail's personal fields (shredded on erasure)",
        retention: Retention::AuditTrail,
        columns: &[
            ("org_id", NotPersonal),
            ("id", NotPersonal),
            ("subject", Identifier),
            ("kek_version", NotPersonal),
            ("wrapped", NotPersonal),
            ("created_at", NotPersonal),
            ("erased_at", NotPersonal),
        ],
    },
];
