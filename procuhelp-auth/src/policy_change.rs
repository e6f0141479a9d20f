//! Changes to the organisation's policy that need a second admin (issue #11, finding 5):
//! switching off "elevation needs a second admin" would let one admin grant themselves
//! an accomplice's elevation, so one admin can only *propose* it; another admin (never the
//! proposer) approves it, and only then does it take effect. Strengthening changes apply
//! at once (see [`needs_second_admin`]).

use procuhelp_core::UserId;
use procuhelp_tenancy::TenantTx;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::directory::OrgPolicy;
use crate::elevation::{approve_once, stored_user};
use crate::{AuthError, AuthResult};

/// How long a proposal waits for its second admin before it lapses.
pub const PROPOSAL_LIFETIME: Duration = Duration::days(7);

/// The only setting whose weakening waits today (its stored name).
const ELEVATION_SETTING: &str = "elevation_needs_second_admin";

/// Whether going from `current` to `wanted` weakens the elevation rule, and so must wait
/// for a second admin.
pub fn needs_second_admin(current: OrgPolicy, wanted: OrgPolicy) -> bool {
    current.elevation_needs_second_admin && !wanted.elevation_needs_second_admin
}

/// Where a proposal stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeState {
    /// Waiting for a second admin.
    Pending,
    /// Approved and in force.
    Applied,
    /// Lapsed without approval.
    Expired,
}

/// A proposed change of one policy setting.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PolicyChange {
    /// Id.
    pub id: Uuid,
    /// The setting (`elevation_needs_second_admin`).
    pub setting: &'static str,
    /// The value proposed.
    pub value: bool,
    /// State.
    pub state: ChangeState,
    /// Who proposed it.
    pub requested_by: UserId,
    /// The second admin who approved it, once applied.
    pub approved_by: Option<UserId>,
    /// When it lapses unless approved.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// Records `by`'s proposal to switch the elevation rule off; nothing changes yet.
pub async fn propose(
    tx: &mut TenantTx,
    by: UserId,
    now: OffsetDateTime,
) -> AuthResult<PolicyChange> {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO app.policy_changes (org_id, id, setting, value, state, requested_by,
                                         created_at, expires_at)
         VALUES ($1, $2, $3, false, 'pending', $4, $5, $6)",
    )
    .bind(tx.org().as_uuid())
    .bind(id)
    .bind(ELEVATION_SETTING)
    .bind(by.as_uuid())
    .bind(now)
    .bind(now + PROPOSAL_LIFETIME)
    .execute(tx.conn())
    .await?;
    get(tx, id).await
}

/// A second admin approves a pending proposal, which takes effect now. The proposer may
/// not approve it ([`AuthError::SelfApproval`]); a lapsed or decided one is a conflict.
pub async fn approve(
    tx: &mut TenantTx,
    id: Uuid,
    approver: UserId,
    now: OffsetDateTime,
) -> AuthResult<PolicyChange> {
    let current = get(tx, id).await?;
    if current.requested_by == approver {
        return Err(AuthError::SelfApproval);
    }
    // Conditional update: of two concurrent approvals only one applies it.
    approve_once(
        tx,
        "UPDATE app.policy_changes SET state = 'applied', approved_by = $2, decided_at = $3
         WHERE id = $1 AND state = 'pending' AND expires_at > $3",
        id,
        approver,
        now,
        "policy change is not pending",
    )
    .await?;
    sqlx::query(
        "UPDATE app.organisations SET elevation_needs_second_admin = $1
         WHERE id = app.current_org()",
    )
    .bind(current.value)
    .execute(tx.conn())
    .await?;
    get(tx, id).await
}

/// The pending proposals, newest first; those that lapsed are marked expired first.
pub async fn pending(tx: &mut TenantTx, now: OffsetDateTime) -> AuthResult<Vec<PolicyChange>> {
    sqlx::query(
        "UPDATE app.policy_changes SET state = 'expired', decided_at = $1
         WHERE state = 'pending' AND expires_at <= $1",
    )
    .bind(now)
    .execute(tx.conn())
    .await?;
    let rows: Vec<ChangeRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM app.policy_changes WHERE state = 'pending'
         ORDER BY created_at DESC LIMIT 100"
    ))
    .fetch_all(tx.conn())
    .await?;
    rows.into_iter().map(change).collect()
}

type ChangeRow = (
    Uuid,
    String,
    bool,
    String,
    Uuid,
    Option<Uuid>,
    OffsetDateTime,
);

const COLUMNS: &str = "id, setting, value, state, requested_by, approved_by, expires_at";

fn change(row: ChangeRow) -> AuthResult<PolicyChange> {
    let (id, setting, value, state, requested_by, approved_by, expires_at) = row;
    Ok(PolicyChange {
        id,
        setting: match setting.as_str() {
            ELEVATION_SETTING => ELEVATION_SETTING,
            _ => return Err(AuthError::Internal),
        },
        value,
        state: match state.as_str() {
            "pending" => ChangeState::Pending,
            "applied" => ChangeState::Applied,
            "expired" => ChangeState::Expired,
            _ => return Err(AuthError::Internal),
        },
        requested_by: stored_user(requested_by)?,
        approved_by: approved_by.map(stored_user).transpose()?,
        expires_at,
    })
}

async fn get(tx: &mut TenantTx, id: Uuid) -> AuthResult<PolicyChange> {
    let row: Option<ChangeRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM app.policy_changes WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(tx.conn())
    .await?;
    change(row.ok_or(AuthError::NotFound)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(elevation_needs_second_admin: bool, mfa_required: bool) -> OrgPolicy {
        OrgPolicy {
            mfa_required,
            elevation_needs_second_admin,
            operator_access_needs_approval: false,
        }
    }

    #[test]
    fn only_switching_the_elevation_rule_off_waits() {
        assert!(needs_second_admin(
            policy(true, false),
            policy(false, false)
        ));
        assert!(needs_second_admin(policy(true, true), policy(false, true)));
        assert!(!needs_second_admin(
            policy(false, false),
            policy(true, false)
        ));
        assert!(!needs_second_admin(policy(true, false), policy(true, true)));
        assert!(!needs_second_admin(
            policy(false, true),
            policy(false, false)
        ));
    }
}
