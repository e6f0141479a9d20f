//! What happened ([`Action`]) and how it ended ([`Outcome`]), with stable string forms.
//!
//! The dotted strings are part of the hash-chain encoding and of every export: they never
//! change once released. New actions are added; old ones are never renamed. An embedding
//! application names its own actions with [`Action::App`] (see [`AppAction`]), always
//! under the `app.` namespace, which no SDK action uses.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::app_action::{AppAction, AppActionError};
use crate::error::{UnknownAction, UnknownOutcome};

// One table drives the enum, `as_str` and `ALL`, so the string form of a variant cannot
// drift from the parser.
macro_rules! actions {
    ($($(#[doc = $doc:literal])* $variant:ident => $text:literal,)+) => {
        /// An audited action, with a stable dotted string form (`auth.login_failed`):
        /// one of the SDK's, or the embedding application's own ([`Action::App`],
        /// `app.claim.created`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum Action {
            $($(#[doc = $doc])* $variant,)+
            /// An action of the embedding application, recorded as `app.` + its name
            /// (build it with [`Action::app`] or [`app_action!`](crate::app_action)).
            App(AppAction),
        }

        impl Action {
            /// Every SDK action, in declaration order (application actions are open-ended
            /// and not listed).
            pub const ALL: &'static [Action] = &[$(Action::$variant,)+];

            /// The stable string form.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Action::$variant => $text,)+
                    Action::App(app) => app.as_str(),
                }
            }

            /// The action with string form `s` (a `match` on the strings: verification
            /// parses one per event, and a linear search was a measurable share of it).
            fn from_text(s: &str) -> Option<Action> {
                match s {
                    $($text => Some(Action::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

actions! {
    /// A sign-in succeeded.
    LoginSucceeded => "auth.login_succeeded",
    /// A sign-in failed (wrong password, unknown account, bad second factor).
    LoginFailed => "auth.login_failed",
    /// An account was locked after repeated failures.
    AccountLocked => "auth.account_locked",
    /// A locked account was unlocked.
    AccountUnlocked => "auth.account_unlocked",
    /// A user signed out.
    Logout => "auth.logout",
    /// MFA enrolment started.
    MfaEnrolmentStarted => "auth.mfa_enrolment_started",
    /// MFA was enabled.
    MfaEnabled => "auth.mfa_enabled",
    /// MFA was disabled.
    MfaDisabled => "auth.mfa_disabled",
    /// A step-up (fresh second factor) was performed.
    MfaStepUp => "auth.mfa_step_up",
    /// A recovery code was used.
    RecoveryCodeUsed => "auth.recovery_code_used",
    /// Recovery codes were regenerated.
    RecoveryCodesRegenerated => "auth.recovery_codes_regenerated",
    /// A password was changed.
    PasswordChanged => "auth.password_changed",
    /// One session was revoked.
    SessionRevoked => "session.revoked",
    /// All sessions of a user were revoked.
    SessionRevokedAll => "session.revoked_all",
    /// A user was created.
    UserCreated => "user.created",
    /// A user was invited to set their first password (context: expiry; never the token).
    UserInvited => "user.invited",
    /// An invited user set their first password.
    UserInvitationAccepted => "user.invitation_accepted",
    /// An organisation was created by an operator (system chain; context: its region).
    OrgCreated => "org.created",
    /// An organisation was offboarded by an operator (system chain; context: rows
    /// deleted per table, its chain's last sequence number and hash, the keys destroyed).
    OrgOffboarded => "org.offboarded",
    /// A named operator was given time-bound access to the organisation's data (its own
    /// chain; context: operator, reason, start and end, grant id).
    OperatorAccessGranted => "operator.access_granted",
    /// A named operator asked for access to an organisation whose policy requires its
    /// admin's approval: pending, not yet in force (context: operator, reason, duration
    /// asked, grant id).
    OperatorAccessRequested => "operator.access_requested",
    /// An organisation's admin approved an operator's pending access (the admin is the
    /// actor; context: operator, start and end, grant id).
    OperatorAccessApproved => "operator.access_approved",
    /// An operator's access was refused (no grant in force) or a grant was refused (no
    /// reason, too long) (context: operator, why).
    OperatorAccessRefused => "operator.access_refused",
    /// An operator's grant was ended before its time, or declined while pending, by the
    /// operator or the organisation's admin (context: operator, grant id).
    OperatorAccessRevoked => "operator.access_revoked",
    /// A user's role changed.
    UserRoleChanged => "user.role_changed",
    /// A user was disabled.
    UserDisabled => "user.disabled",
    /// A user was enabled.
    UserEnabled => "user.enabled",
    /// Elevated access was requested.
    ElevationRequested => "elevation.requested",
    /// An elevation request was approved.
    ElevationApproved => "elevation.approved",
    /// Elevated access was granted (became active).
    ElevationGranted => "elevation.granted",
    /// Elevated access was used.
    ElevationUsed => "elevation.used",
    /// Elevated access expired.
    ElevationExpired => "elevation.expired",
    /// Elevated access was revoked.
    ElevationRevoked => "elevation.revoked",
    /// An elevation request was refused.
    ElevationRefused => "elevation.refused",
    /// An API token was created.
    ApiTokenCreated => "api_token.created",
    /// An API token was revoked.
    ApiTokenRevoked => "api_token.revoked",
    /// The organisation's sign-in or elevation policy changed.
    OrgPolicyChanged => "org.policy_changed",
    /// A weakening of the organisation's policy was proposed; a second admin must approve it.
    OrgPolicyChangeRequested => "org.policy_change_requested",
    /// Approval of a policy change was refused (the proposer, or not a second admin).
    OrgPolicyChangeRefused => "org.policy_change_refused",
    /// A supplier was created.
    SupplierCreated => "supplier.created",
    /// A supplier was updated.
    SupplierUpdated => "supplier.updated",
    /// A supplier was deleted.
    SupplierDeleted => "supplier.deleted",
    /// A supplier was invited.
    SupplierInvited => "supplier.invited",
    /// An invitation link was made for a supplier's contact (context: expiry).
    SupplierInvitationCreated => "supplier.invitation_created",
    /// A supplier's contact filled in company and bank details through the link.
    SupplierOnboarded => "supplier.onboarded",
    /// A supplier's bank details were shown in full to someone with the permission.
    SupplierBankDetailsRevealed => "supplier.bank_details_revealed",
    /// A supplier was archived.
    SupplierArchived => "supplier.archived",
    /// A procurement request was created.
    RequestCreated => "request.created",
    /// A draft procurement request was changed by its requester (context: before/after).
    RequestUpdated => "request.updated",
    /// A procurement request was submitted for approval.
    RequestSubmitted => "request.submitted",
    /// A procurement request was approved.
    RequestApproved => "request.approved",
    /// A procurement request was rejected (context: whether a comment was given).
    RequestRejected => "request.rejected",
    /// A procurement request was cancelled by its requester.
    RequestCancelled => "request.cancelled",
    /// A procurement request's approval was refused.
    RequestApprovalRefused => "request.approval_refused",
    /// A contract changed.
    ContractChanged => "contract.changed",
    /// A contract was created (context: its first version).
    ContractCreated => "contract.created",
    /// A contract was amended: a new version (context: before and after; the terms by
    /// digest, so free text stays out of the append-only trail).
    ContractAmended => "contract.amended",
    /// A contract was terminated.
    ContractTerminated => "contract.terminated",
    /// The audit trail was read.
    AuditRead => "audit.read",
    /// The audit trail was exported.
    AuditExported => "audit.exported",
    /// A person's personal data in the audit trail was erased (their key destroyed).
    AuditPersonErased => "audit.person_erased",
    /// Events were imported into the trail from a file.
    AuditImported => "audit.imported",
    /// Everything held about one person was exported for them (a data subject access
    /// request; context: what the export holds, never its content).
    PersonalDataExported => "personal_data.exported",
    /// One person was erased (context: counts of what went, never what it was).
    PersonalDataErased => "personal_data.erased",
    /// What the register says has expired was purged (context: rows per table).
    PersonalDataPurged => "personal_data.purged",
    /// Repeated unauthenticated refusals from one source in one window, recorded as a
    /// count (the first of them is recorded in full; see `RefusalAggregator`).
    RefusalsAggregated => "audit.refusals_aggregated",
    /// A secret was read from the vault.
    SecretAccessed => "secret.accessed",
    /// Keys were rotated.
    KeysRotated => "keys.rotated",
    /// A backup was taken (context: label, sizes) or failed (context: the cause).
    BackupTaken => "backup.taken",
    /// Backups the retention policy no longer keeps were removed (context: labels).
    BackupExpired => "backup.expired",
    /// A backup was restored into a database (context: label, database).
    BackupRestored => "backup.restored",
    /// A restore drill ran (context: label, the report's digest, each failed check).
    BackupDrilled => "backup.drilled",
    /// The last good backup or the last passing drill is older than its schedule allows.
    BackupOverdue => "backup.overdue",
    /// Single sign-on was configured.
    SsoConfigured => "sso.configured",
    /// SCIM provisioned a user.
    ScimUserProvisioned => "scim.user_provisioned",
    /// SCIM deprovisioned a user.
    ScimUserDeprovisioned => "scim.user_deprovisioned",
    /// SCIM changed a group.
    ScimGroupChanged => "scim.group_changed",
    /// SCIM changed a user's attributes (not their activation).
    ScimUserUpdated => "scim.user_updated",
    /// SCIM re-activated a deprovisioned user.
    ScimUserReactivated => "scim.user_reactivated",
    /// SCIM created a group.
    ScimGroupCreated => "scim.group_created",
    /// SCIM deleted a group.
    ScimGroupDeleted => "scim.group_deleted",
    /// A SCIM bearer token was issued.
    ScimTokenIssued => "scim.token_issued",
    /// A SCIM bearer token was revoked.
    ScimTokenRevoked => "scim.token_revoked",
    /// The SCIM group -> role mapping (or the JIT provisioning flag) changed.
    ScimSettingsChanged => "scim.settings_changed",
    /// An admin handed a local user over to SCIM (SCIM manages them from now on).
    ScimUserHandedOver => "scim.user_handed_over",
    /// SCIM was refused a user it does not manage, or a re-enable an admin's disable
    /// forbids (outcome `denied`).
    ScimRequestRefused => "scim.request_refused",
    /// An administrative command ran (CLI).
    AdminCommand => "admin.command",
}

impl Action {
    /// The embedding application's action `name` (recorded as `app.` + `name`), if the
    /// name has the allowed shape (see [`AppAction`]). `const`; in a `const` item,
    /// [`app_action!`](crate::app_action) checks the name at compile time.
    ///
    /// ```
    /// use procuhelp_audit::{Action, AppActionError};
    ///
    /// let approved = Action::app("claim.approved")?;
    /// assert_eq!(approved.as_str(), "app.claim.approved");
    /// // Never an SDK action: the application's names live under `app.`.
    /// assert_ne!(Action::app("auth.login_succeeded")?, Action::LoginSucceeded);
    /// assert_eq!(Action::app("auth/login"), Err(AppActionError::InvalidByte { at: 4 }));
    /// # Ok::<(), AppActionError>(())
    /// ```
    pub const fn app(name: &str) -> Result<Action, AppActionError> {
        match AppAction::new(name) {
            Ok(app) => Ok(Action::App(app)),
            Err(e) => Err(e),
        }
    }

    /// Whether this action is an authentication failure (for detectors).
    pub const fn is_auth_failure(self) -> bool {
        matches!(self, Action::LoginFailed)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = UnknownAction;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Action::from_text(s)
            .or_else(|| AppAction::from_stored(s).map(Action::App))
            .ok_or(UnknownAction { len: s.len() })
    }
}

impl Serialize for Action {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// How an audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// It happened.
    Success,
    /// It was attempted and failed (wrong password, validation error).
    Failure,
    /// It was refused by policy (permission, segregation of duties, lockout).
    Denied,
}

impl Outcome {
    /// Every outcome.
    pub const ALL: &'static [Outcome] = &[Outcome::Success, Outcome::Failure, Outcome::Denied];

    /// The stable string form: `success`, `failure`, `denied`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Denied => "denied",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Outcome {
    type Err = UnknownOutcome;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Outcome::ALL
            .iter()
            .copied()
            .find(|o| o.as_str() == s)
            .ok_or(UnknownOutcome { len: s.len() })
    }
}

impl Serialize for Outcome {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Outcome {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_round_trips_and_strings_are_unique_and_dotted() {
        let mut seen = std::collections::HashSet::new();
        for a in Action::ALL {
            assert_eq!(a.as_str().parse::<Action>(), Ok(*a));
            assert!(seen.insert(a.as_str()), "duplicate {}", a.as_str());
            // The application namespace is never the SDK's.
            assert!(!a.as_str().starts_with(AppAction::PREFIX), "{}", a.as_str());
            let (area, name) = a.as_str().split_once('.').unwrap_or(("", ""));
            assert!(!area.is_empty() && !name.is_empty(), "{}", a.as_str());
            assert!(
                a.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'_')
            );
        }
        assert!(Action::ALL.len() >= 44);
    }

    #[test]
    fn required_strings_are_stable() {
        // These strings are in stored hash chains: changing one breaks verification.
        for s in [
            "auth.login_succeeded",
            "auth.login_failed",
            "auth.account_locked",
            "auth.account_unlocked",
            "auth.logout",
            "auth.mfa_enrolment_started",
            "auth.mfa_enabled",
            "auth.mfa_disabled",
            "auth.mfa_step_up",
            "auth.recovery_code_used",
            "auth.recovery_codes_regenerated",
            "auth.password_changed",
            "session.revoked",
            "session.revoked_all",
            "user.created",
            "user.role_changed",
            "user.disabled",
            "user.enabled",
            "elevation.requested",
            "elevation.approved",
            "elevation.granted",
            "elevation.used",
            "elevation.expired",
            "elevation.revoked",
            "elevation.refused",
            "api_token.created",
            "api_token.revoked",
            "supplier.created",
            "supplier.updated",
            "supplier.deleted",
            "supplier.invited",
            "request.created",
            "request.approved",
            "request.approval_refused",
            "contract.changed",
            "audit.read",
            "audit.exported",
            "secret.accessed",
            "keys.rotated",
            "sso.configured",
            "scim.user_provisioned",
            "scim.user_deprovisioned",
            "scim.group_changed",
            "scim.user_updated",
            "scim.user_reactivated",
            "scim.group_created",
            "scim.group_deleted",
            "scim.token_issued",
            "scim.token_revoked",
            "scim.settings_changed",
            "scim.user_handed_over",
            "scim.request_refused",
            "admin.command",
            "audit.refusals_aggregated",
        ] {
            let a: Action = s.parse().unwrap_or_else(|_| panic!("{s} missing"));
            assert_eq!(a.as_str(), s);
        }
    }

    #[test]
    fn unknown_strings_are_typed_errors_without_echo() {
        for s in [
            "",
            "auth",
            "AUTH.LOGIN_FAILED",
            "auth.login_failed ",
            "x.y",
            "app.",
            "app.claim",
            "app.Claim.created",
            "app.claim.created ",
        ] {
            assert_eq!(s.parse::<Action>(), Err(UnknownAction { len: s.len() }));
        }
        assert_eq!("ok".parse::<Outcome>(), Err(UnknownOutcome { len: 2 }));
        let e = "secret-value".parse::<Action>().unwrap_err().to_string();
        assert!(!e.contains("secret"));
    }

    #[test]
    fn outcomes_round_trip_and_serde_uses_strings() {
        for o in Outcome::ALL {
            assert_eq!(o.as_str().parse::<Outcome>(), Ok(*o));
        }
        assert_eq!(
            serde_json::to_string(&Action::MfaStepUp).unwrap_or_default(),
            "\"auth.mfa_step_up\""
        );
        assert!(serde_json::from_str::<Action>("\"nope.nope\"").is_err());
        let app = Action::app("claim.created");
        let json = app.map(|a| serde_json::to_string(&a).unwrap_or_default());
        assert_eq!(json.as_deref(), Ok("\"app.claim.created\""));
        assert_eq!(
            serde_json::from_str::<Action>("\"app.claim.created\"").ok(),
            app.ok()
        );
        assert_eq!(
            serde_json::from_str::<Outcome>("\"denied\"").ok(),
            Some(Outcome::Denied)
        );
    }
}
