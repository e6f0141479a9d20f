//! procuhelp-audit's part of the database schema (feature `postgres`): the trail's
//! migrations (0006, 0007, 0010) and the runtime grants its tables need. An
//! application composes it with
//! `procuhelp_tenancy::migrate::Schema::new().with(procuhelp_audit::MIGRATIONS)`.

use procuhelp_tenancy::migrate::{Grant, Migrations};

/// procuhelp-audit's migrations and the runtime grants of its tables.
pub const MIGRATIONS: Migrations =
    Migrations::new("procuhelp-audit", sqlx::migrate!("./migrations"))
        .grants(&[
            // The audit trail is append-only (triggers refuse UPDATE, DELETE and TRUNCATE
            // even for the owner); person keys are created, re-wrapped and erased, never
            // deleted.
            Grant::new("app.audit_events", "SELECT, INSERT"),
            Grant::new("app.audit_checkpoints", "SELECT, INSERT"),
            Grant::new(
                "app.audit_person_keys",
                "SELECT, INSERT, UPDATE (wrapped, kek_version, erased_at)",
            ),
        ])
        .personal_data(crate::register::PERSONAL_DATA);
