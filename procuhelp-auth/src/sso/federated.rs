//! The federated sign-in decision: who an identity asserted by an organisation's own
//! provider (OpenID Connect or SAML, already verified by `sso::oidc` or
//! `sso::saml`) is, whether they may come in, with which role — and the session.
//!
//! The rules, in order:
//! 1. The organisation's **MFA rule**: with `mfa_required`, the provider must assert MFA
//!    ([`Refusal::MfaRequired`]); checked first, so a refused sign-in links and creates
//!    nobody.
//! 2. **Linking** by the provider's immutable identifier ([`FederatedIdentity::subject_key`]),
//!    never by e-mail address. An identity not linked yet is linked once to a user SCIM
//!    provisioned for the same person (Entra `externalId` = `oid`, or SCIM `userName` =
//!    SAML NameID), only where [`crate::scim::LINKABLE`] allows.
//! 3. **Just-in-time provisioning** (the organisation's `sso_jit_provisioning`, default
//!    off) creates the user otherwise; with it off the sign-in is refused
//!    ([`Refusal::NotLinked`]). A new user's e-mail address that another user already has
//!    is refused, never linked ([`Refusal::EmailInUse`], the "nOAuth" attack).
//! 4. A **disabled or deprovisioned** user is refused ([`Refusal::AccountDisabled`]) and,
//!    being linked, never created again.
//! 5. **Roles**: with a group → role mapping, the user's role follows the groups (no
//!    mapped group: the least privileged role; groups overage: unchanged) — except for
//!    users SCIM manages, whose roles SCIM owns.
//!
//! Every refusal is an `auth.login_failed` audit event (method, reason, the typed
//! refusal); every change (user created, role changed) and the success are recorded
//! before the transaction that makes them commits.

use std::fmt;
use std::sync::Arc;

use procuhelp_audit::{Action, Actor, AuditEvent, AuditSink, Outcome};
use procuhelp_core::{Clock, OrgId, UserId};
use procuhelp_tenancy::{TenantDb, TenantTx};
use serde_json::{Value, json};

use super::{GroupClaim, RoleMapping, store};
use crate::directory::{self, Email, NewUser, UserStatus};
use crate::{AuthError, Authenticator, ClientInfo, Issued, Role, scim};

/// The protocol that asserted an identity (audit context and the JIT event's method).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Method {
    /// OpenID Connect.
    Oidc,
    /// SAML 2.0.
    Saml,
}

impl Method {
    /// The stable string form (`oidc`, `saml`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Method::Oidc => "oidc",
            Method::Saml => "saml",
        }
    }
}

/// An identity a provider asserted, protocol aside. Build it from a verified token or
/// assertion (`FederatedIdentity::from_oidc`, `FederatedIdentity::from_saml`).
#[derive(Clone)]
pub struct FederatedIdentity {
    /// How it was asserted.
    pub method: Method,
    /// The immutable link key (`oidc:<tid>:<oid>`, `saml:<issuer>:<NameID>`).
    pub subject_key: String,
    /// A SCIM `externalId` that names the same person (the Entra object id).
    pub scim_external_id: Option<String>,
    /// A SCIM `userName` that names the same person (the SAML NameID).
    pub scim_user_name: Option<String>,
    /// The asserted e-mail address: used only for a user created just in time, never to
    /// find one.
    pub email: Option<String>,
    /// The asserted display name (a user created just in time).
    pub name: Option<String>,
    /// The asserted groups.
    pub groups: GroupClaim,
    /// Whether the provider asserted multi-factor authentication.
    pub mfa: bool,
    /// The authentication methods to record in the session (`amr`).
    pub amr: Vec<String>,
}

impl fmt::Debug for FederatedIdentity {
    // No e-mail address or name: personal data stays out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FederatedIdentity")
            .field("method", &self.method)
            .field("subject_key", &self.subject_key)
            .field("mfa", &self.mfa)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "oidc")]
impl FederatedIdentity {
    /// The identity of a verified ID token: linked by `(tid, oid)`; a SCIM user whose
    /// `externalId` is the `oid` is the same person.
    pub fn from_oidc(identity: &super::oidc::OidcIdentity) -> Self {
        Self {
            method: Method::Oidc,
            subject_key: identity.subject_key(),
            scim_external_id: Some(identity.object_id.clone()),
            scim_user_name: None,
            email: identity.email.clone(),
            name: identity.name.clone(),
            groups: identity.groups.clone(),
            mfa: identity.mfa,
            amr: identity.amr.clone(),
        }
    }
}

#[cfg(feature = "saml")]
impl FederatedIdentity {
    /// The identity of a verified assertion: linked by `(issuer, NameID)`; a SCIM user
    /// whose `userName` is the NameID is the same person.
    pub fn from_saml(assertion: &super::saml::VerifiedAssertion) -> Self {
        let mut amr = vec!["saml".to_owned()];
        if assertion.mfa {
            amr.push("mfa".to_owned());
        }
        Self {
            method: Method::Saml,
            subject_key: format!("saml:{}:{}", assertion.issuer, assertion.name_id),
            scim_external_id: None,
            scim_user_name: Some(assertion.name_id.clone()),
            email: assertion.email.clone(),
            name: assertion.display_name.clone(),
            groups: assertion.group_claim(),
            mfa: assertion.mfa,
            amr,
        }
    }
}

/// Why a verified identity may not sign in. Each is recorded (`auth.login_failed`) with
/// [`Refusal::as_str`] as `refusal`; a client sees only [`Refusal::code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// No user is linked to the identity and just-in-time provisioning is off.
    #[error("no user is linked to this identity and just-in-time provisioning is off")]
    NotLinked,
    /// Just-in-time provisioning is on but the provider sent no usable e-mail address.
    #[error("no usable e-mail address for a new user")]
    NoUsableEmail,
    /// Just-in-time provisioning would create a user with another user's e-mail address:
    /// identities are never linked by e-mail (nOAuth: same address, other object id).
    #[error("another user has this e-mail address; identities are never linked by e-mail")]
    EmailInUse,
    /// The linked user is disabled (by an admin or deprovisioned by SCIM).
    #[error("the user is disabled")]
    AccountDisabled,
    /// The organisation requires MFA and the provider asserted none.
    #[error("the organisation requires MFA and the provider asserted none")]
    MfaRequired,
}

impl Refusal {
    /// The stable, coarse code a client may see (`sso_no_account`,
    /// `sso_account_disabled`, `sso_mfa_required`): it does not tell which account
    /// exists.
    pub const fn code(self) -> &'static str {
        match self {
            Refusal::NotLinked | Refusal::NoUsableEmail | Refusal::EmailInUse => "sso_no_account",
            Refusal::AccountDisabled => "sso_account_disabled",
            Refusal::MfaRequired => "sso_mfa_required",
        }
    }

    /// The stable name of this refusal (audit context).
    pub const fn as_str(self) -> &'static str {
        match self {
            Refusal::NotLinked => "not_linked",
            Refusal::NoUsableEmail => "no_usable_email",
            Refusal::EmailInUse => "email_in_use",
            Refusal::AccountDisabled => "account_disabled",
            Refusal::MfaRequired => "mfa_required",
        }
    }
}

/// Why a federated sign-in did not open a session.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FederatedError {
    /// The policy refused the identity (already recorded in the audit log).
    #[error("federated sign-in refused: {0}")]
    Refused(Refusal),
    /// The database or the audit log failed ([`AuthError::Audit`], [`AuthError::Storage`]);
    /// nothing was committed.
    #[error(transparent)]
    Unavailable(#[from] AuthError),
}

/// The federated sign-in policy with what it needs: the tenant database, the
/// authenticator that opens sessions, and the application's one audit sink and clock.
///
/// ```no_run
/// # async fn demo(
/// #     db: procuhelp_tenancy::TenantDb,
/// #     auth: procuhelp_auth::Authenticator,
/// #     audit: std::sync::Arc<dyn procuhelp_audit::AuditSink>,
/// #     clock: std::sync::Arc<dyn procuhelp_core::Clock>,
/// #     org: procuhelp_core::OrgId,
/// #     identity: procuhelp_auth::sso::FederatedIdentity,
/// # ) {
/// use procuhelp_auth::sso::{FederatedError, FederatedSignIn, RoleMapping};
/// let policy = FederatedSignIn::new(db, auth, audit, clock);
/// match policy.sign_in(org, &identity, &RoleMapping::default(), &Default::default()).await {
///     Ok(issued) => { /* hand issued.credential to the browser */ }
///     Err(FederatedError::Refused(refusal)) => { /* 403 with refusal.code() */ }
///     Err(FederatedError::Unavailable(_)) => { /* 503 */ }
///     Err(_) => { /* future variants */ }
/// }
/// # }
/// ```
#[derive(Clone)]
pub struct FederatedSignIn {
    db: TenantDb,
    sessions: Authenticator,
    audit: Arc<dyn AuditSink>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for FederatedSignIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FederatedSignIn").finish_non_exhaustive()
    }
}

impl FederatedSignIn {
    /// The policy over `db`, opening sessions with `sessions` and recording to `audit`
    /// at `clock`'s time.
    pub fn new(
        db: TenantDb,
        sessions: Authenticator,
        audit: Arc<dyn AuditSink>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            db,
            sessions,
            audit,
            clock,
        }
    }

    /// Signs `identity` in to `org`: links or creates the user, applies the MFA rule and
    /// `mapping`, and opens a full session (amr: the provider's, `mfa` if asserted,
    /// `fed`). Runs in a transaction of its own, committed only on success; a refusal is
    /// recorded before it is returned.
    pub async fn sign_in(
        &self,
        org: OrgId,
        identity: &FederatedIdentity,
        mapping: &RoleMapping,
        client: &ClientInfo,
    ) -> Result<Issued, FederatedError> {
        let mut tx = self.db.begin(org).await.map_err(AuthError::from)?;
        match self.decide(&mut tx, identity, mapping, client).await {
            Ok(Ok(issued)) => {
                tx.commit().await.map_err(AuthError::from)?;
                Ok(issued)
            }
            Ok(Err(refusal)) => {
                let _ = tx.rollback().await;
                self.record_refusal(org, identity, refusal, client).await;
                Err(FederatedError::Refused(refusal))
            }
            Err(e) => {
                let _ = tx.rollback().await;
                Err(FederatedError::Unavailable(e))
            }
        }
    }

    async fn decide(
        &self,
        tx: &mut TenantTx,
        identity: &FederatedIdentity,
        mapping: &RoleMapping,
        client: &ClientInfo,
    ) -> Result<Result<Issued, Refusal>, AuthError> {
        let now = self.clock.now();
        let key = identity.subject_key.as_str();
        let overage = identity.groups == GroupClaim::Overage;
        let wanted_role = match (mapping.iter().next().is_some(), overage) {
            (false, _) | (true, true) => None,
            (true, false) => Some(
                mapping
                    .role_for(&identity.groups)
                    .unwrap_or(Role::least_privileged()),
            ),
        };
        // First: a sign-in the organisation would refuse anyway neither links nor
        // creates anyone (a user created and rolled back would leave a false
        // `user.created` in the trail).
        if directory::org_policy(tx).await?.mfa_required && !identity.mfa {
            return Ok(Err(Refusal::MfaRequired));
        }
        let user = match self.linked_or_linkable(tx, identity, now).await? {
            Some(user) => user,
            None if !scim::sso_jit_provisioning(tx).await? => return Ok(Err(Refusal::NotLinked)),
            None => match self.create(tx, identity, wanted_role, client).await? {
                Ok(user) => user,
                Err(refusal) => return Ok(Err(refusal)),
            },
        };
        let user = directory::get(tx, user).await?;
        if user.status != UserStatus::Active {
            return Ok(Err(Refusal::AccountDisabled));
        }
        // SCIM is authoritative for the roles of the users it manages.
        if let Some(role) = wanted_role
            && role != user.role
            && !scim::user_is_scim_managed(tx, user.id).await?
        {
            directory::set_role(tx, user.id, role, now).await?;
            let context = json!({
                "user": user.id.to_string(), "from": user.role, "to": role, "source": "sso_groups",
            });
            self.record(
                tx.org(),
                Actor::System,
                Action::UserRoleChanged,
                client,
                context,
            )
            .await?;
        }
        let mut amr: Vec<&str> = identity.amr.iter().map(String::as_str).collect();
        if identity.mfa && !amr.contains(&"mfa") {
            amr.push("mfa");
        }
        amr.push("fed");
        let issued = self
            .sessions
            .open_full_session(tx, user.id, &amr, client)
            .await?;
        let context = json!({
            "method": identity.method.as_str(), "subject": key, "mfa": identity.mfa,
            "groups_overage": overage,
        });
        let actor = Actor::User { id: user.id };
        self.record(tx.org(), actor, Action::LoginSucceeded, client, context)
            .await?;
        Ok(Ok(issued))
    }

    /// The user linked to the identity, or the SCIM user it may be linked to (linked
    /// now, by the immutable id, never by e-mail).
    async fn linked_or_linkable(
        &self,
        tx: &mut TenantTx,
        identity: &FederatedIdentity,
        now: time::OffsetDateTime,
    ) -> Result<Option<UserId>, AuthError> {
        let key = identity.subject_key.as_str();
        if let Some(user) = store::linked_user(tx, key).await? {
            return Ok(Some(user));
        }
        let mut found = None;
        if let Some(external_id) = &identity.scim_external_id {
            found = scim::user_by_external_id(tx, external_id).await?;
        }
        if found.is_none()
            && let Some(user_name) = &identity.scim_user_name
        {
            found = scim::user_by_user_name(tx, user_name).await?;
        }
        if let Some(user) = found {
            store::link(tx, key, user, now).await?;
        }
        Ok(found)
    }

    /// Creates and links the user for `identity` (just in time), recorded.
    async fn create(
        &self,
        tx: &mut TenantTx,
        identity: &FederatedIdentity,
        role: Option<Role>,
        client: &ClientInfo,
    ) -> Result<Result<UserId, Refusal>, AuthError> {
        let now = self.clock.now();
        let Some(email) = identity.email.as_deref().and_then(|e| Email::parse(e).ok()) else {
            return Ok(Err(Refusal::NoUsableEmail));
        };
        // A provider's name that the directory would refuse (empty, control characters,
        // too long) is not a reason to refuse the person: the address stands in.
        let display_name = identity
            .name
            .as_deref()
            .map(str::trim)
            .filter(|n| {
                !n.is_empty() && n.chars().count() <= 200 && !n.chars().any(char::is_control)
            })
            .unwrap_or(email.as_str())
            .to_owned();
        let new = NewUser {
            email,
            display_name,
            role,
            password_hash: None,
        };
        let id = match directory::create(tx, new, now).await {
            Ok(id) => id,
            Err(AuthError::Conflict(_)) => return Ok(Err(Refusal::EmailInUse)),
            Err(e) => return Err(e),
        };
        store::link(tx, &identity.subject_key, id, now).await?;
        let context = json!({
            "user": id.to_string(),
            "method": format!("{}_jit", identity.method.as_str()),
            "subject": identity.subject_key,
        });
        self.record(
            tx.org(),
            Actor::System,
            Action::UserCreated,
            client,
            context,
        )
        .await?;
        Ok(Ok(id))
    }

    fn event(
        &self,
        org: OrgId,
        actor: Actor,
        action: Action,
        outcome: Outcome,
        client: &ClientInfo,
        context: Value,
    ) -> AuditEvent {
        let mut event = AuditEvent::new(Some(org), actor, action, outcome)
            .at(self.clock.now())
            .source(client.source, client.user_agent.as_deref())
            .context(context);
        if let Some(id) = &client.request_id {
            event = event.request_id(id.clone());
        }
        event
    }

    /// Records a success event durably, or fails (fail closed: the caller rolls back).
    async fn record(
        &self,
        org: OrgId,
        actor: Actor,
        action: Action,
        client: &ClientInfo,
        context: Value,
    ) -> Result<(), AuthError> {
        let event = self.event(org, actor, action, Outcome::Success, client, context);
        self.audit
            .record(event)
            .await
            .map(drop)
            .map_err(AuthError::Audit)
    }

    /// Records a refusal. Nothing was granted, so a failing audit log is logged, and the
    /// refusal stands.
    async fn record_refusal(
        &self,
        org: OrgId,
        identity: &FederatedIdentity,
        refusal: Refusal,
        client: &ClientInfo,
    ) {
        let context = json!({
            "method": identity.method.as_str(),
            "reason": refusal.code(),
            "refusal": refusal.as_str(),
            "subject": identity.subject_key,
        });
        let event = self.event(
            org,
            Actor::System,
            Action::LoginFailed,
            Outcome::Failure,
            client,
            context,
        );
        if let Err(e) = self.audit.record(event).await {
            tracing::error!(error = %e, "could not record a federated sign-in refusal");
        }
    }
}
