//! procuhelp-auth's part of the database schema: its migrations (users, sessions, MFA,
//! API tokens, elevation, the sign-in throttle, SCIM, SSO), the runtime grants its tables
//! need, and the columns it encrypts. An application composes it with
//! `procuhelp_tenancy::migrate::Schema::new().with(procuhelp_auth::MIGRATIONS)`.

use procuhelp_tenancy::EncryptedColumn;
use procuhelp_tenancy::migrate::{Grant, Migrations};

use crate::{TOTP_FIELD, TOTP_PENDING_FIELD};

/// Every column procuhelp-auth stores sealed by the field cipher: key rotation
/// re-encrypts them (also part of [`MIGRATIONS`]).
pub const ENCRYPTED_COLUMNS: &[EncryptedColumn] = &[
    EncryptedColumn {
        table: "app.users",
        column: "totp_sealed",
        field_table: TOTP_FIELD.0,
        field_column: TOTP_FIELD.1,
    },
    EncryptedColumn {
        table: "app.users",
        column: "totp_pending_sealed",
        field_table: TOTP_PENDING_FIELD.0,
        field_column: TOTP_PENDING_FIELD.1,
    },
];

/// procuhelp-auth's migrations (0005, 0008, 0009, 0011, 0012, 0013, 0015, 0016), the
/// runtime grants of its tables and its [`ENCRYPTED_COLUMNS`].
pub const MIGRATIONS: Migrations =
    Migrations::new("procuhelp-auth", sqlx::migrate!("./migrations"))
        .grants(GRANTS)
        .encrypted_columns(ENCRYPTED_COLUMNS)
        .personal_data(crate::register::PERSONAL_DATA);

const GRANTS: &[Grant] = &[
    // Admins change their org's sign-in policy; nothing else of the row.
    Grant::new(
        "app.organisations",
        "UPDATE (mfa_required, elevation_needs_second_admin, operator_access_needs_approval)",
    ),
    // Users are disabled, never deleted by the server (their audit trail refers to them);
    // an erased user's row stays as "a former user" (0017).
    Grant::new("app.users", "SELECT, INSERT, UPDATE"),
    Grant::new("app.recovery_codes", "SELECT, INSERT, DELETE"),
    // Invitations are accepted once, and purged 30 days after they expire.
    Grant::new("app.invitations", "SELECT, INSERT, UPDATE, DELETE"),
    // Deleted when their person is erased (each delete bumps the session epoch, 0016).
    Grant::new("app.sessions", "SELECT, INSERT, UPDATE, DELETE"),
    // Tokens, like sessions, are purged 30 days after they expire (retention jobs).
    Grant::new("app.api_tokens", "SELECT, INSERT, UPDATE, DELETE"),
    Grant::new("app.elevations", "SELECT, INSERT, UPDATE"),
    // Bumped by the triggers of 0016 in the changing transaction; never deleted.
    Grant::new("app.session_epochs", "SELECT, INSERT, UPDATE"),
    // Policy changes waiting for a second admin (0013): decided, never deleted.
    Grant::new("app.policy_changes", "SELECT, INSERT, UPDATE"),
    Grant::new("app.login_throttle", "SELECT, INSERT, UPDATE, DELETE"),
    // SCIM (0008): tokens are revoked, never deleted; groups and memberships follow
    // the identity provider; the role mapping is replaced by admins.
    Grant::new("app.organisations", "UPDATE (sso_jit_provisioning)"),
    Grant::new("app.scim_tokens", "SELECT, INSERT, UPDATE, DELETE"),
    Grant::new("app.scim_groups", "SELECT, INSERT, UPDATE, DELETE"),
    Grant::new("app.scim_group_members", "SELECT, INSERT, DELETE"),
    Grant::new("app.scim_role_mappings", "SELECT, INSERT, DELETE"),
    // SSO: admins configure connections; identities are linked, never re-pointed;
    // sign-ins in flight are used once; seen assertion ids expire.
    Grant::new("app.sso_connections", "SELECT, INSERT, UPDATE, DELETE"),
    Grant::new("app.sso_identities", "SELECT, INSERT, DELETE"),
    Grant::new("app.sso_login_requests", "SELECT, INSERT, DELETE"),
    Grant::new("app.sso_assertion_replay", "SELECT, INSERT, DELETE"),
    // Operators' grants (0025, 0026): approved once and revoked once (a trigger holds
    // that), never changed otherwise or deleted.
    Grant::new("app.operator_grants", "SELECT, INSERT"),
    Grant::new(
        "app.operator_grants",
        "UPDATE (revoked_at, approved_by, approved_at, starts_at, ends_at)",
    ),
];
