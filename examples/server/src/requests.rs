//! Purchase requests' life, in one place for the API and the pages: a draft its
//! requester edits, submits (`open`), and may cancel until it is decided; an approver —
//! never the requester (segregation of duties, also a CHECK in the table) — approves or
//! rejects it with a comment.
//!
//! Every change is one conditional statement on the row (state, requester, version), so
//! two people acting on the same request at once cannot both win: the second is told why
//! ([`RequestError::Stale`], [`RequestError::NotInState`]) and nothing of theirs is kept.
//! Row-level security scopes every statement to the transaction's organisation: another
//! organisation's request is [`RequestError::NotFound`].

use procuhelp_core::UserId;
use procuhelp_tenancy::TenantTx;
use time::OffsetDateTime;
use uuid::Uuid;

/// Where a request is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Being written by its requester.
    Draft,
    /// Submitted: waiting for an approver.
    Open,
    /// Approved.
    Approved,
    /// Rejected.
    Rejected,
    /// Withdrawn by its requester.
    Cancelled,
}

impl Status {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "draft",
            Status::Open => "open",
            Status::Approved => "approved",
            Status::Rejected => "rejected",
            Status::Cancelled => "cancelled",
        }
    }

    fn parse(s: &str) -> Result<Self, RequestError> {
        Ok(match s {
            "draft" => Status::Draft,
            "open" => Status::Open,
            "approved" => Status::Approved,
            "rejected" => Status::Rejected,
            "cancelled" => Status::Cancelled,
            _ => return Err(RequestError::NotFound),
        })
    }
}

/// A purchase request as stored.
#[derive(Debug, Clone)]
pub struct PurchaseRequest {
    /// Its id.
    pub id: Uuid,
    /// What is asked for.
    pub title: String,
    /// How much, in cents.
    pub amount_cents: i64,
    /// Who asked.
    pub requested_by: Uuid,
    /// Where it is.
    pub status: Status,
    /// Who approved it.
    pub approved_by: Option<Uuid>,
    /// Who rejected it.
    pub rejected_by: Option<Uuid>,
    /// The approver's comment on the decision.
    pub decision_comment: Option<String>,
    /// Bumped by every change (for "someone changed it meanwhile").
    pub version: i32,
    /// When it was raised.
    pub created_at: OffsetDateTime,
}

/// Why a change was refused.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// No such request in this organisation.
    #[error("no such request")]
    NotFound,
    /// Only the requester edits, submits or cancels a request.
    #[error("only its requester changes or cancels a request")]
    NotRequester,
    /// Nobody approves or rejects their own request.
    #[error("segregation of duties: nobody decides their own request")]
    SelfApproval,
    /// The request is not in a state that allows this (already submitted, decided, …).
    #[error("{0}")]
    NotInState(&'static str),
    /// Someone changed the request since it was read.
    #[error("the request was changed meanwhile: reload it and try again")]
    Stale,
    /// A field is out of bounds.
    #[error("invalid {0}")]
    Invalid(&'static str),
    /// The database failed.
    #[error("database error")]
    Database(#[from] sqlx::Error),
}

/// The fields a requester writes.
#[derive(Debug, Clone)]
pub struct Draft {
    title: String,
    amount_cents: i64,
}

impl Draft {
    /// A title of 1–200 characters without control characters, and a positive amount.
    pub fn new(title: &str, amount_cents: i64) -> Result<Self, RequestError> {
        let title = title.trim();
        if title.is_empty() || title.chars().count() > 200 || title.chars().any(char::is_control) {
            return Err(RequestError::Invalid("title"));
        }
        if amount_cents <= 0 || amount_cents > 1_000_000_000_000 {
            return Err(RequestError::Invalid("amount_cents"));
        }
        Ok(Self {
            title: title.to_owned(),
            amount_cents,
        })
    }
}

/// An approver's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Approve.
    Approve,
    /// Reject.
    Reject,
}

const COLUMNS: &str = "id, title, amount_cents, requested_by, status, approved_by, rejected_by, \
                       decision_comment, version, created_at";

type Row = (
    Uuid,
    String,
    i64,
    Uuid,
    String,
    Option<Uuid>,
    Option<Uuid>,
    Option<String>,
    i32,
    OffsetDateTime,
);

fn from_row(r: Row) -> Result<PurchaseRequest, RequestError> {
    Ok(PurchaseRequest {
        id: r.0,
        title: r.1,
        amount_cents: r.2,
        requested_by: r.3,
        status: Status::parse(&r.4)?,
        approved_by: r.5,
        rejected_by: r.6,
        decision_comment: r.7,
        version: r.8,
        created_at: r.9,
    })
}

/// Raises a request by `by`: a draft, or submitted at once.
pub async fn create(
    tx: &mut TenantTx,
    by: UserId,
    draft: Draft,
    submit: bool,
) -> Result<PurchaseRequest, RequestError> {
    let status = if submit { Status::Open } else { Status::Draft };
    let row: Row = sqlx::query_as(&format!(
        "INSERT INTO app.purchase_requests (org_id, id, title, amount_cents, requested_by, status)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
    ))
    .bind(tx.org().as_uuid())
    .bind(Uuid::now_v7())
    .bind(&draft.title)
    .bind(draft.amount_cents)
    .bind(by.as_uuid())
    .bind(status.as_str())
    .fetch_one(tx.conn())
    .await?;
    from_row(row)
}

/// One request.
pub async fn get(tx: &mut TenantTx, id: Uuid) -> Result<PurchaseRequest, RequestError> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM app.purchase_requests WHERE org_id = $1 AND id = $2"
    ))
    .bind(tx.org().as_uuid())
    .bind(id)
    .fetch_optional(tx.conn())
    .await?;
    from_row(row.ok_or(RequestError::NotFound)?)
}

/// The newest requests (at most `limit`).
pub async fn list(tx: &mut TenantTx, limit: u32) -> Result<Vec<PurchaseRequest>, RequestError> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM app.purchase_requests WHERE org_id = $1
         ORDER BY created_at DESC, id DESC LIMIT $2"
    ))
    .bind(tx.org().as_uuid())
    .bind(i64::from(limit.min(500)))
    .fetch_all(tx.conn())
    .await?;
    rows.into_iter().map(from_row).collect()
}

/// Why a conditional change found no row: the most useful of the reasons.
async fn refusal(
    tx: &mut TenantTx,
    id: Uuid,
    by: UserId,
    version: Option<i32>,
    allowed: &[Status],
    state_message: &'static str,
) -> RequestError {
    let current = match get(tx, id).await {
        Ok(r) => r,
        Err(e) => return e,
    };
    if current.requested_by != by.as_uuid() {
        RequestError::NotRequester
    } else if !allowed.contains(&current.status) {
        RequestError::NotInState(state_message)
    } else if version.is_some_and(|v| v != current.version) {
        RequestError::Stale
    } else {
        RequestError::NotFound
    }
}

/// The requester changes their draft, as of `version` (the one they saw): returns the
/// request before and after.
pub async fn edit(
    tx: &mut TenantTx,
    id: Uuid,
    by: UserId,
    draft: Draft,
    version: i32,
) -> Result<(PurchaseRequest, PurchaseRequest), RequestError> {
    let before = get(tx, id).await?;
    let row: Option<Row> = sqlx::query_as(&format!(
        "UPDATE app.purchase_requests
            SET title = $4, amount_cents = $5, version = version + 1, updated_at = now()
          WHERE org_id = $1 AND id = $2 AND requested_by = $3 AND status = 'draft'
            AND version = $6
          RETURNING {COLUMNS}"
    ))
    .bind(tx.org().as_uuid())
    .bind(id)
    .bind(by.as_uuid())
    .bind(&draft.title)
    .bind(draft.amount_cents)
    .bind(version)
    .fetch_optional(tx.conn())
    .await?;
    match row {
        Some(row) => Ok((before, from_row(row)?)),
        None => Err(refusal(
            tx,
            id,
            by,
            Some(version),
            &[Status::Draft],
            "only a draft can be edited",
        )
        .await),
    }
}

/// Moves the requester's request from `from` to `to` (submit, cancel).
async fn transition(
    tx: &mut TenantTx,
    id: Uuid,
    by: UserId,
    from: &[Status],
    to: Status,
    state_message: &'static str,
) -> Result<PurchaseRequest, RequestError> {
    let from_names: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
    let row: Option<Row> = sqlx::query_as(&format!(
        "UPDATE app.purchase_requests
            SET status = $4, version = version + 1, updated_at = now()
          WHERE org_id = $1 AND id = $2 AND requested_by = $3 AND status = ANY($5)
          RETURNING {COLUMNS}"
    ))
    .bind(tx.org().as_uuid())
    .bind(id)
    .bind(by.as_uuid())
    .bind(to.as_str())
    .bind(&from_names)
    .fetch_optional(tx.conn())
    .await?;
    match row {
        Some(row) => from_row(row),
        None => Err(refusal(tx, id, by, None, from, state_message).await),
    }
}

/// The requester submits their draft for approval.
pub async fn submit(
    tx: &mut TenantTx,
    id: Uuid,
    by: UserId,
) -> Result<PurchaseRequest, RequestError> {
    transition(
        tx,
        id,
        by,
        &[Status::Draft],
        Status::Open,
        "only a draft can be submitted",
    )
    .await
}

/// The requester withdraws their request before it is decided.
pub async fn cancel(
    tx: &mut TenantTx,
    id: Uuid,
    by: UserId,
) -> Result<PurchaseRequest, RequestError> {
    transition(
        tx,
        id,
        by,
        &[Status::Draft, Status::Open],
        Status::Cancelled,
        "the request is already decided or cancelled",
    )
    .await
}

/// An approver decides an open request. `may_decide` says whether the acting person may
/// decide a request of this requester (segregation of duties:
/// `Principal::may_approve`). The row is locked while it is checked and changed, so of two
/// approvers deciding at once, the second is told it is already decided.
pub async fn decide(
    tx: &mut TenantTx,
    id: Uuid,
    by: UserId,
    may_decide: impl FnOnce(UserId) -> bool,
    decision: Decision,
    comment: Option<&str>,
) -> Result<PurchaseRequest, RequestError> {
    let comment = comment.map(str::trim).filter(|c| !c.is_empty());
    if comment.is_some_and(|c| c.chars().count() > 1000) {
        return Err(RequestError::Invalid("comment"));
    }
    let locked: Option<(Uuid, String)> = sqlx::query_as(
        "SELECT requested_by, status FROM app.purchase_requests
          WHERE org_id = $1 AND id = $2 FOR UPDATE",
    )
    .bind(tx.org().as_uuid())
    .bind(id)
    .fetch_optional(tx.conn())
    .await?;
    let (requested_by, status) = locked.ok_or(RequestError::NotFound)?;
    let requester = UserId::from_uuid(requested_by).map_err(|_| RequestError::NotFound)?;
    if !may_decide(requester) {
        return Err(RequestError::SelfApproval);
    }
    if Status::parse(&status)? != Status::Open {
        return Err(RequestError::NotInState(
            "the request is not waiting for a decision (draft, decided or cancelled)",
        ));
    }
    // A rejection says why.
    if decision == Decision::Reject && comment.is_none() {
        return Err(RequestError::Invalid("comment"));
    }
    let (status, column) = match decision {
        Decision::Approve => (Status::Approved, "approved_by"),
        Decision::Reject => (Status::Rejected, "rejected_by"),
    };
    let row: Row = sqlx::query_as(&format!(
        "UPDATE app.purchase_requests
            SET status = $3, {column} = $4, decision_comment = $5, decided_at = now(),
                version = version + 1, updated_at = now()
          WHERE org_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(tx.org().as_uuid())
    .bind(id)
    .bind(status.as_str())
    .bind(by.as_uuid())
    .bind(comment)
    .fetch_one(tx.conn())
    .await?;
    from_row(row)
}

/// What the API and the pages do for a request: the permission, the change, its audit
/// event (in the same transaction), the commit.
pub(crate) mod handle {
    use procuhelp_audit::{Action, Outcome};
    use procuhelp_auth::{AuthError, Permission};
    use procuhelp_axum::{Authed, Error, Result};
    use serde_json::json;
    use uuid::Uuid;

    use super::{Decision, Draft, PurchaseRequest, RequestError};

    impl From<RequestError> for Error {
        fn from(e: RequestError) -> Self {
            match e {
                RequestError::NotFound => AuthError::NotFound.into(),
                RequestError::NotRequester => {
                    AuthError::Conflict("only its requester changes or cancels a request").into()
                }
                RequestError::SelfApproval => AuthError::SelfApproval.into(),
                RequestError::NotInState(why) => AuthError::Conflict(why).into(),
                RequestError::Stale => AuthError::Conflict(
                    "the request was changed meanwhile: reload it and try again",
                )
                .into(),
                RequestError::Invalid(field) => Error::Invalid(field),
                RequestError::Database(e) => e.into(),
            }
        }
    }

    async fn recorded(
        authed: &mut Authed,
        request: &PurchaseRequest,
        action: Action,
        context: serde_json::Value,
    ) -> Result<()> {
        let event = authed
            .event(action, Outcome::Success)
            .target(format!("request:{}", request.id))
            .context(context);
        authed.record(event).await?;
        authed.commit().await
    }

    /// Raises a request (a draft, or submitted at once).
    pub(crate) async fn raise(
        authed: &mut Authed,
        title: &str,
        amount_cents: i64,
        submit: bool,
    ) -> Result<PurchaseRequest> {
        authed.require(Permission::CreateRequest).await?;
        let draft = Draft::new(title, amount_cents)?;
        let by = authed.principal.acting_user();
        let request = super::create(authed.tx().await?, by, draft, submit).await?;
        let context =
            json!({ "amount_cents": request.amount_cents, "status": request.status.as_str() });
        recorded(authed, &request, Action::RequestCreated, context).await?;
        Ok(request)
    }

    /// The requester edits their draft (as of the version they saw).
    pub(crate) async fn edit(
        authed: &mut Authed,
        id: Uuid,
        title: &str,
        amount_cents: i64,
        version: i32,
    ) -> Result<PurchaseRequest> {
        authed.require(Permission::CreateRequest).await?;
        let draft = Draft::new(title, amount_cents)?;
        let by = authed.principal.acting_user();
        let (before, after) = super::edit(authed.tx().await?, id, by, draft, version).await?;
        // The title is the requester's words (personal): recorded as changed, not quoted.
        let context = json!({
            "before": { "amount_cents": before.amount_cents, "version": before.version },
            "after": { "amount_cents": after.amount_cents, "version": after.version },
            "title_changed": before.title != after.title,
        });
        recorded(authed, &after, Action::RequestUpdated, context).await?;
        Ok(after)
    }

    /// The requester submits their draft.
    pub(crate) async fn submit(authed: &mut Authed, id: Uuid) -> Result<PurchaseRequest> {
        authed.require(Permission::CreateRequest).await?;
        let by = authed.principal.acting_user();
        let request = super::submit(authed.tx().await?, id, by).await?;
        recorded(authed, &request, Action::RequestSubmitted, json!({})).await?;
        Ok(request)
    }

    /// The requester cancels their request.
    pub(crate) async fn cancel(authed: &mut Authed, id: Uuid) -> Result<PurchaseRequest> {
        authed.require(Permission::CreateRequest).await?;
        let by = authed.principal.acting_user();
        let request = super::cancel(authed.tx().await?, id, by).await?;
        recorded(authed, &request, Action::RequestCancelled, json!({})).await?;
        Ok(request)
    }

    /// An approver approves or rejects an open request; a try on one's own request is
    /// refused and recorded (`request.approval_refused`).
    pub(crate) async fn decide(
        authed: &mut Authed,
        id: Uuid,
        decision: Decision,
        comment: Option<&str>,
    ) -> Result<PurchaseRequest> {
        authed.require(Permission::ApproveRequest).await?;
        let by = authed.principal.acting_user();
        let principal = authed.principal.clone();
        let decided = super::decide(
            authed.tx().await?,
            id,
            by,
            |requester| principal.may_approve(requester),
            decision,
            comment,
        )
        .await;
        let request = match decided {
            Ok(r) => r,
            Err(RequestError::SelfApproval) => {
                authed.abandon().await;
                let event = authed
                    .event(Action::RequestApprovalRefused, Outcome::Denied)
                    .target(format!("request:{id}"))
                    .context(json!({ "reason": "segregation of duties" }));
                authed.sdk().record(event).await?;
                return Err(AuthError::SelfApproval.into());
            }
            Err(e) => return Err(e.into()),
        };
        let action = match decision {
            Decision::Approve => Action::RequestApproved,
            Decision::Reject => Action::RequestRejected,
        };
        let context = json!({ "commented": request.decision_comment.is_some() });
        recorded(authed, &request, action, context).await?;
        Ok(request)
    }
}
