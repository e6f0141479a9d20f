//! The organisation's sign-in policy (a column-level grant lets the runtime role change
//! only these columns of `app.organisations`).

use procuhelp_tenancy::TenantTx;

use crate::AuthResult;

/// Whether the organisation requires a second factor for password sign-ins, whether
/// elevation needs a second admin, and whether operators' access needs an admin's
/// approval.
pub async fn org_policy(tx: &mut TenantTx) -> AuthResult<OrgPolicy> {
    let (mfa_required, elevation_needs_second_admin, operator_access_needs_approval): (
        bool,
        bool,
        bool,
    ) = sqlx::query_as(
        "SELECT mfa_required, elevation_needs_second_admin, operator_access_needs_approval
         FROM app.organisations WHERE id = app.current_org()",
    )
    .fetch_one(tx.conn())
    .await?;
    Ok(OrgPolicy {
        mfa_required,
        elevation_needs_second_admin,
        operator_access_needs_approval,
    })
}

/// Changes the organisation's sign-in policy.
pub async fn set_org_policy(tx: &mut TenantTx, policy: OrgPolicy) -> AuthResult<()> {
    sqlx::query(
        "UPDATE app.organisations SET mfa_required = $1, elevation_needs_second_admin = $2,
                operator_access_needs_approval = $3
         WHERE id = app.current_org()",
    )
    .bind(policy.mfa_required)
    .bind(policy.elevation_needs_second_admin)
    .bind(policy.operator_access_needs_approval)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// An organisation's authentication policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgPolicy {
    /// Password sign-ins must pass a second factor (SSO sign-ins whose IdP asserted MFA
    /// satisfy it).
    pub mfa_required: bool,
    /// An elevation takes effect only once a second admin approves it.
    pub elevation_needs_second_admin: bool,
    /// An operator's access to the organisation's data is in force only once one of its
    /// admins approves it ([`crate::operator_access::approve`]). Every field is required
    /// in a change: a client that omits this one is refused rather than switching it off.
    pub operator_access_needs_approval: bool,
}
