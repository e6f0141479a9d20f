//! procuhelp-auth's entries in the personal-data register
//! ([`procuhelp_tenancy::personal_data`]): every table its migrations create, whom the
//! rows are about, why and how long they are kept, and what each column holds.

use procuhelp_tenancy::personal_data::Class::{Identifier, NotPersonal, Personal, Secret, UserRef};
use procuhelp_tenancy::personal_data::{PersonalTable, Retention};

/// Sessions, tokens and sign-in requests are kept this many days after they expire (for
/// investigating an incident), then purged.
const GRACE_DAYS: u16 = 30;

/// The register of procuhelp-auth's tables (part of [`MIGRATIONS`](crate::MIGRATIONS)).
pub(crate) const PERSONAL_DATA: &[PersonalTable] = &[
    PersonalTable {
        table: "app.users",
        subject: Some("id"),
        purpose: "accounts: sign-in, second factor, role, SCIM provisioning",
        retention: Retention::Identity,
        columns: &[
            ("org_id", NotPersonal),
            ("id", UserRef),
            ("email", Identifier),
            ("display_name", Identifier),
            ("role", Personal),
            ("status", Personal),
            ("password_hash", Secret),
            ("totp_sealed", Secret),
            ("totp_pending_sealed", Secret),
            ("totp_last_step", Personal),
            ("created_at", Personal),
            ("changed_at", Personal),
            ("scim_user_name", Identifier),
            ("scim_external_id", Identifier),
            ("scim_display_name", Identifier),
            ("given_name", Identifier),
            ("family_name", Identifier),
            ("scim_emails", Identifier),
            ("scim_managed", Personal),
            ("deprovisioned_by_scim", Personal),
            ("scim_deleted_at", Personal),
            ("disabled_by_admin", Personal),
            ("scim_handed_over_at", Personal),
            ("scim_handed_over_by", UserRef),
            ("erased_at", Personal),
        ],
    },
    PersonalTable {
        table: "app.sessions",
        subject: Some("user_id"),
        purpose: "signed-in sessions: who, how, from where, until when",
        retention: Retention::UntilExpiry {
            column: "expires_at",
            grace_days: GRACE_DAYS,
        },
        columns: &[
            ("org_id", NotPersonal),
            ("id", NotPersonal),
            ("token_hash", Secret),
            ("user_id", UserRef),
            ("stage", Personal),
            ("amr", Personal),
            ("created_at", Personal),
            ("last_seen_at", Personal),
            ("idle_secs", NotPersonal),
            ("expires_at", Personal),
            ("revoked_at", Personal),
            ("source", Personal),
            ("user_agent", Personal),
        ],
    },
    PersonalTable {
        table: "app.session_epochs",
        subject: Some("user_id"),
        purpose: "which remembered session answers still hold (kept with the former user)",
        retention: Retention::Identity,
        columns: &[
            ("org_id", NotPersonal),
            ("user_id", UserRef),
            ("epoch", NotPersonal),
        ],
    },
    PersonalTable {
        table: "app.api_tokens",
        subject: None,
        purpose: "API tokens of service accounts, and who issued them",
        retention: Retention::UntilExpiry {
            column: "expires_at",
            grace_days: GRACE_DAYS,
        },
        columns: &[
            ("org_id", NotPersonal),
            ("id", NotPersonal),
            ("token_hash", Secret),
            ("name", NotPersonal),
            ("role", NotPersonal),
            ("created_by", UserRef),
            ("created_at", NotPersonal),
            ("expires_at", NotPersonal),
            ("revoked_at", NotPersonal),
            ("elevation_id", NotPersonal),
        ],
    },
    PersonalTable {
        table: "app.elevations",
        subject: Some("user_id"),
        purpose: "time-bound elevation: requests, approvals, use",
        retention: Retention::Organisation,
        columns: &[
            ("org_id", NotPersonal),
            ("id", NotPersonal),
            ("user_id", UserRef),
            ("role", Personal),
            // The justification our operator writes (an incident or ticket number and
            // what is being looked at); it must not name people (docs/operators.md), so
            // it is shown to the organisation's admins in its trail.
            ("reason", NotPersonal),
            ("state", Personal),
            ("requested_by", UserRef),
            ("approved_by", UserRef),
            ("duration_secs", NotPersonal),
            ("created_at", Personal),
            ("starts_at", Personal),
            ("expires_at", Personal),
            ("ended_at", Personal),
        ],
    },
    PersonalTable {
        table: "app.recovery_codes",
        subject: Some("user_id"),
        purpose: "second-factor recovery codes (hashed)",
        retention: Retention::Account,
        columns: &[
            ("org_id", NotPersonal),
            ("user_id", UserRef),
            ("code_hash", Secret),
        ],
    },
    PersonalTable {
        table: "app.invitations",
        subject: Some("user_id"),
        purpose: "single-use invitations to set a first password",
        retention: Retention::UntilExpiry {
            column: "expires_at",
            grace_days: GRACE_DAYS,
        },
        columns: &[
            ("org_id", NotPersonal),
            ("id", NotPersonal),
            ("user_id", UserRef),
            ("token_hash", Secret),
            ("created_by", UserRef),
            ("created_at", Personal),
            ("expires_at", NotPersonal),
            ("accepted_at", Personal),
        ],
    },
    PersonalTable {
        table: "app.login_throttle",
        subject: Some("key_hash"),
        purpose: "failed sign-ins per account and per address, under keyed hashes",
        retention: Retention::DaysAfter {
            column: "last_failure",
            days: 2,
        },
        columns: &[
            ("key_hash", Identifier),
            ("failures", Personal),
            ("last_failure", Personal),
            ("blocked_until", Personal),
            ("locked", Personal),
            ("day_started", Personal),
            ("day_failures", Personal),
        ],
    },
    PersonalTable {
        table: "app.policy_changes",
        subject: None,
        purpose: "organisation policy changes waiting for a second admin",
        retention: Retention::Organisation,
        columns: &[
            ("org_id", NotPersonal),
            ("id", NotPersonal),
            ("setting", NotPersonal),
            ("value", NotPersonal),
            ("state", NotPersonal),
            ("requested_by", UserRef),
            ("approved_by", UserRef),
            ("created_at", NotPersonal),
            ("expires_at", NotPersonal),
            ("decided_at", NotPersonal),
        ],
    },
    PersonalTable {
        table: "app.scim_tokens",
        subject: None,
        purpose: "SCIM provisioning tokens, and who issued them",
        retention: Retention::UntilExpiry {
            column: "expires_at",
            grace_days: GRACE_DAYS,
        },
        columns: &[
            ("org_id", NotPersonal),
            ("id", NotPersonal),
            ("token_hash", Secret),
            ("name", NotPersonal),
            ("created_by", UserRef),
            ("created_at", NotPersonal),
            ("expires_at", NotPersonal),
            ("revoked_at", NotPersonal),
        ],
    },
    PersonalTable {
        table: "app.scim_groups",
        subject: None,
        purpose: "groups pushed by the identity provider",
        retention: Retention::Organisation,
        columns: &[
            ("org_id", NotPersonal),
            ("id", NotPersonal),
            ("display_name", NotPersonal),
            ("external_id", NotPersonal),
            ("created_at", NotPersonal),
            ("changed_at", NotPersonal),
        ],
    },
    PersonalTable {
        table: "app.scim_group_members",
        subject: Some("user_id"),
        purpose: "group memberships pushed by the identity provider",
        retention: Retention::Account,
        columns: &[
            ("org_id", NotPersonal),
            ("group_id", NotPersonal),
            ("user_id", UserRef),
        ],
    },
    PersonalTable {
        table: "app.scim_role_mappings",
        subject: None,
        purpose: "which identity-provider group grants which role",
        retention: Retention::Organisation,
        columns: &[
            ("org_id", NotPersonal),
            ("group_ref", NotPersonal),
            ("role", NotPersonal),
        ],
    },
    PersonalTable {
        table: "app.sso_connections",
        subject: None,
        purpose: "OIDC and SAML connection settings",
        retention: Retention::Organisation,
        columns: &[
            ("org_id", NotPersonal),
            ("protocol", NotPersonal),
            ("settings", NotPersonal),
            ("updated_at", NotPersonal),
        ],
    },
    PersonalTable {
        table: "app.sso_identities",
        subject: Some("user_id"),
        purpose: "which identity-provider subject signs in as which user",
        retention: Retention::Account,
        columns: &[
            ("org_id", NotPersonal),
            ("subject_key", Identifier),
            ("user_id", UserRef),
            ("created_at", Personal),
        ],
    },
    PersonalTable {
        table: "app.sso_login_requests",
        subject: None,
        purpose: "federated sign-ins in flight (state, nonce, PKCE verifier)",
        retention: Retention::UntilExpiry {
            column: "expires_at",
            grace_days: 1,
        },
        columns: &[
            ("org_id", NotPersonal),
            ("lookup_hash", NotPersonal),
            ("browser_hash", NotPersonal),
            ("protocol", NotPersonal),
            ("nonce", NotPersonal),
            ("pkce_verifier", NotPersonal),
            ("expires_at", NotPersonal),
        ],
    },
    PersonalTable {
        table: "app.sso_assertion_replay",
        subject: None,
        purpose: "SAML assertion ids already used (replay protection)",
        retention: Retention::UntilExpiry {
            column: "expires_at",
            grace_days: 1,
        },
        columns: &[
            ("org_id", NotPersonal),
            ("assertion_id", NotPersonal),
            ("expires_at", NotPersonal),
        ],
    },
    PersonalTable {
        table: "app.operator_grants",
        subject: None,
        purpose: "operators' time-bound access to the organisation's data, with its reason",
        retention: Retention::Organisation,
        columns: &[
            ("org_id", NotPersonal),
            ("id", NotPersonal),
            // Our operator's name (a named member of staff), not the customer's data.
            ("operator", Identifier),
            // The justification our operator writes (an incident or ticket number and
            // what is being looked at); it must not name people (docs/operators.md), so
            // it is shown to the organisation's admins in its trail.
            ("reason", NotPersonal),
            ("starts_at", NotPersonal),
            ("ends_at", NotPersonal),
            ("revoked_at", NotPersonal),
            ("approval_needed", NotPersonal),
            // The organisation's admin who let the operator in.
            ("approved_by", UserRef),
            ("approved_at", NotPersonal),
        ],
    },
];
