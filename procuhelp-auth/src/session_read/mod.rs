//! Authenticated reads in one round trip.
//!
//! The transactional path of a request costs four round trips before the first row: BEGIN
//! with the tenant, the session lookup, the read, COMMIT. A read-only request needs none
//! of that ceremony: [`fetch_all`] sends **one** autocommit statement in which
//! `app.enter_session` (migration 0015) validates the session credential, enters its
//! organisation, checks the permission and touches the session, and the read runs after
//! it, LATERAL to it:
//!
//! ```sql
//! SELECT q.*, tenant.* FROM app.enter_session($1, $2, $3, $4, $5) AS tenant(org, …)
//! LEFT JOIN LATERAL (SELECT i.*, true AS ph_row FROM (<your query>) AS i
//!                    WHERE tenant.org IS NOT NULL OFFSET 0) AS q ON true
//! ```
//!
//! The fence is the one [`ScopedRead`](procuhelp_tenancy::ScopedRead) uses: `OFFSET 0`
//! keeps the planner from pulling the read up into a join whose row-level-security checks
//! would run before `app.enter_session` (no tenant yet: zero rows), and the always-true
//! `tenant.org IS NOT NULL` makes the read a real lateral dependent of the entry, so it
//! runs only after it. The newline keeps a trailing `--` comment from eating the wrapper.
//!
//! `app.enter_session` decides exactly what [`session::authenticate`] and
//! [`Principal::require`] decide, in the same order: unknown, revoked, expired or idle
//! sessions and disabled users are refused (401), a session that is not fully signed in
//! and a role without the permission too (403). A refusal is an exception, so the read
//! returns no row at all. Each refusal has its own SQLSTATE, logged here (at `debug`) and
//! never shown to the client.
//!
//! Two cases need an audit event written *before* the read, which one statement cannot
//! do: an elevation of the user that ran out (its expiry is recorded) and a permission
//! that only an elevation grants (its use is recorded). Then nothing is changed and the
//! answer is [`ReadOnce::NeedsTransaction`]: the caller takes the transactional path,
//! which records the event and reads in a tenant transaction.
//!
//! A server that keeps a [`VerifiedSessions`] reads with [`fetch_all_cached`]: while an
//! answer of `app.enter_session` is remembered, the read is one plain statement that
//! enters the organisation and compares the user's session epoch (migration 0016) in the same
//! snapshot as the rows — no session check, and still refused the moment the session,
//! its user or an elevation changed. See [`cache`](VerifiedSessions).
//!
//! ```no_run
//! # async fn demo(db: procuhelp_tenancy::TenantDb, credential: procuhelp_auth::session::Credential) -> procuhelp_auth::AuthResult<()> {
//! use procuhelp_auth::Permission;
//! use procuhelp_auth::session_read::{self, AuthenticatedRead, ReadOnce};
//! const LIST: AuthenticatedRead = AuthenticatedRead::new(
//!     "SELECT s.name FROM app.suppliers s WHERE s.org_id = tenant.org ORDER BY s.name LIMIT $6",
//! );
//! let now = time::OffsetDateTime::now_utc();
//! let query = LIST.query_as::<(String,)>().bind_int(50);
//! match session_read::fetch_all(&db, &credential, Permission::ReadSuppliers, now, &query).await? {
//!     ReadOnce::Read(read) => { let _names = read.rows; let _who = read.principal; }
//!     ReadOnce::NeedsTransaction => {
//!         // TenantDb::begin, Authenticator::session, Principal::require (recording what
//!         // they record), then session_read::fetch_all_in_tx(&mut tx, &query).
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! [`session::authenticate`]: crate::session::authenticate
//! [`Principal::require`]: crate::Principal::require

mod cache;

pub use cache::VerifiedSessions;

use cache::{Key, Remembered};
use procuhelp_core::UserId;
use procuhelp_tenancy::{TenantDb, TenantTx};
use sqlx::Row as _;
use sqlx::postgres::PgRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::session::Credential;
use crate::session::{ActiveElevation, SessionPrincipal, SessionStage};
use crate::{AuthError, AuthResult, Permission, Role};

/// The columns `app.enter_session` returns (0016), after the read's own and its row
/// marker.
const PRINCIPAL_COLUMNS: usize = 11;

/// A read query to run in the statement that authenticates the request.
///
/// The query references `tenant.org` (checked; it orders the read after the session
/// check) and numbers its own parameters from `$6` (`$1`–`$5` are the organisation, the
/// token hash, the time, the permission's roles and whether an elevation may grant it).
/// The text is `'static`: queries are code, never input. Row-level security still
/// filters every tenant table it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthenticatedRead {
    inner: &'static str,
}

impl AuthenticatedRead {
    /// Wraps `inner`, a single SELECT referencing `tenant.org` (and no other column of
    /// `tenant`), parameters from `$6`.
    pub const fn new(inner: &'static str) -> Self {
        Self { inner }
    }

    /// The full statement.
    pub fn statement(&self) -> String {
        format!(
            "SELECT q.*, tenant.* FROM app.enter_session($1, $2, $3, $4, $5) \
             AS tenant(org, ph_session, ph_user, ph_stage, ph_amr, ph_role, ph_elevation, \
                       ph_elevation_role, ph_elevation_expires_at, ph_valid_until, \
                       ph_epoch) \
             LEFT JOIN LATERAL (SELECT i.*, true AS ph_row FROM ({}\n) AS i \
             WHERE tenant.org IS NOT NULL OFFSET 0) AS q ON true",
            self.inner
        )
    }

    /// The statement of a remembered session ([`fetch_all_cached`]): enters the
    /// organisation (`$1`) and reads only if the session epoch of user `$3` is still `$2`,
    /// in one snapshot; `$4` and `$5` are unused. Plain SQL, no PL/pgSQL call.
    ///
    /// Order, as for the other entries: `set_config` runs once, as a function scan (a
    /// volatile call in a sub-select's target list may be copied into the plan's
    /// conditions and run out of order); the epoch check and the read are fenced
    /// (`OFFSET 0`) LATERAL dependents of it, so their row-level-security checks run
    /// after the tenant is set. The check counts the organisation's row and the user's
    /// epoch row, which RLS shows only once the tenant is entered — and the organisation
    /// only while the deployment serves its region (migration 0020): if it ever ran before,
    /// it finds no row and answers "not fresh" (a full check), never "fresh" on an epoch
    /// it could not see. The read sees `tenant.org` only ([`AuthenticatedRead::new`]).
    fn remembered_statement(&self) -> String {
        format!(
            "SELECT q.*, e.ph_fresh \
             FROM set_config('procuhelp.org_id', $1::uuid::text, true) AS entered(org_text) \
             CROSS JOIN LATERAL (SELECT entered.org_text::uuid AS org, $4::text[] AS ph_holders, \
                                        $5::boolean AS ph_grant OFFSET 0) AS tenant \
             CROSS JOIN LATERAL (SELECT count(o.id) = 1 AND count(x.epoch) = 1 \
                                        AND max(x.epoch) = $2 AS ph_fresh \
                                 FROM app.organisations o \
                                 JOIN app.deployment d ON d.region = o.data_region \
                                 LEFT JOIN app.session_epochs x ON x.org_id = o.id AND x.user_id = $3::uuid \
                                 WHERE o.id = tenant.org OFFSET 0) AS e \
             LEFT JOIN LATERAL (SELECT i.*, true AS ph_row FROM ({}\n) AS i \
             WHERE e.ph_fresh OFFSET 0) AS q ON true",
            self.inner
        )
    }

    /// A query for this read; bind `$6…` on it and pass it to [`fetch_all`].
    pub fn query_as<O>(&self) -> AuthenticatedQuery<O>
    where
        O: for<'r> sqlx::FromRow<'r, PgRow>,
    {
        AuthenticatedQuery {
            read: *self,
            args: Vec::new(),
            _row: std::marker::PhantomData,
        }
    }

    fn check(&self) -> AuthResult<()> {
        if !self.inner.contains("tenant.org") {
            return Err(AuthError::Invalid {
                field: "authenticated read",
                problem: "must reference tenant.org",
            });
        }
        if self.inner.contains("tenant.ph_") {
            // The remembered statement's tenant has only `org`: the two paths must read
            // the same query the same way.
            return Err(AuthError::Invalid {
                field: "authenticated read",
                problem: "may reference tenant.org only",
            });
        }
        if self.inner.contains(';') {
            return Err(AuthError::Invalid {
                field: "authenticated read",
                problem: "must be a single statement",
            });
        }
        Ok(())
    }
}

/// An [`AuthenticatedRead`] with its `$6…` arguments.
#[derive(Debug)]
pub struct AuthenticatedQuery<O> {
    read: AuthenticatedRead,
    args: Vec<Arg>,
    _row: std::marker::PhantomData<fn() -> O>,
}

#[derive(Debug, Clone)]
enum Arg {
    Uuid(Uuid),
    Int(i64),
    Text(String),
}

impl<O> AuthenticatedQuery<O> {
    fn bind_args<'q>(
        &self,
        mut q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        for arg in &self.args {
            q = match arg {
                Arg::Uuid(v) => q.bind(*v),
                Arg::Int(v) => q.bind(*v),
                Arg::Text(v) => q.bind(v.clone()),
            };
        }
        q
    }

    /// Binds the next UUID argument.
    pub fn bind(mut self, value: Uuid) -> Self {
        self.args.push(Arg::Uuid(value));
        self
    }

    /// Binds the next integer argument.
    pub fn bind_int(mut self, value: i64) -> Self {
        self.args.push(Arg::Int(value));
        self
    }

    /// Binds the next text argument.
    pub fn bind_text(mut self, value: impl Into<String>) -> Self {
        self.args.push(Arg::Text(value.into()));
        self
    }
}

/// The rows of a read and who read them.
#[derive(Debug, Clone)]
pub struct AuthenticatedRows<O> {
    /// The session's user (always fully signed in; `expired_elevations` is empty).
    pub principal: SessionPrincipal,
    /// The rows.
    pub rows: Vec<O>,
}

/// The outcome of a one-round-trip read that was not refused.
#[derive(Debug, Clone)]
#[must_use]
pub enum ReadOnce<O> {
    /// Authenticated, allowed and read.
    Read(AuthenticatedRows<O>),
    /// An audit event must be recorded first (an elevation ran out, or only an elevation
    /// grants the permission): nothing was read or changed; take the transactional path.
    NeedsTransaction,
}

/// Validates `credential` as a session of its organisation, checks `permission` and runs
/// `query`, all in one statement. See the [module documentation](self).
///
/// Errors: [`AuthError::Unauthenticated`] (unknown, other organisation's, revoked,
/// expired or idle session, disabled user), [`AuthError::SecondFactorRequired`],
/// [`AuthError::Forbidden`], [`AuthError::Invalid`] for a query that does not reference
/// `tenant.org`, and storage errors.
pub async fn fetch_all<O>(
    db: &TenantDb,
    credential: &Credential,
    permission: Permission,
    now: OffsetDateTime,
    query: &AuthenticatedQuery<O>,
) -> AuthResult<ReadOnce<O>>
where
    O: for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin,
{
    query.read.check()?;
    let token_hash = credential.token.hash();
    Ok(
        match verify_and_read(db, credential, &token_hash, permission, now, query).await? {
            Some((read, _)) => ReadOnce::Read(read),
            None => ReadOnce::NeedsTransaction,
        },
    )
}

/// As [`fetch_all`], answering from `cache` when it remembers this session: then the
/// read is one plain statement that also checks, in the read's own snapshot, that
/// nothing the remembered answer depended on has changed since (else the session is
/// checked in full, as by [`fetch_all`], and the new answer remembered).
///
/// The answers are those of [`fetch_all`]: a revocation, role change or elevation
/// committed before the read began is honoured. Only answers that allow come from the
/// cache; a refusal is always decided by the full check.
pub async fn fetch_all_cached<O>(
    db: &TenantDb,
    cache: &VerifiedSessions,
    credential: &Credential,
    permission: Permission,
    now: OffsetDateTime,
    query: &AuthenticatedQuery<O>,
) -> AuthResult<ReadOnce<O>>
where
    O: for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin,
{
    query.read.check()?;
    let key = Key::of(credential);
    if let Some(remembered) = cache.get(&key, now)
        && allows_by_own_role(&remembered.principal, permission)
    {
        match read_remembered(db, &remembered, credential, query).await? {
            Some(rows) => {
                cache.count_served();
                return Ok(ReadOnce::Read(AuthenticatedRows {
                    principal: remembered.principal,
                    rows,
                }));
            }
            None => cache.forget(&key),
        }
    }
    Ok(
        match verify_and_read(db, credential, &key.token_hash, permission, now, query).await? {
            Some((read, remembered)) => {
                if let Some(remembered) = remembered.with(read.principal.clone()) {
                    cache.remember(key, remembered, now);
                }
                ReadOnce::Read(read)
            }
            None => ReadOnce::NeedsTransaction,
        },
    )
}

/// Whether `principal` holds `permission` without an elevation's help (whose use must be
/// recorded first).
fn allows_by_own_role(principal: &SessionPrincipal, permission: Permission) -> bool {
    matches!(
        principal.require(permission),
        Ok(grant) if grant.via_elevation.is_none()
    )
}

/// What `app.enter_session` said besides the principal.
struct Bounds {
    /// `None` for a user with no epoch row yet (then the answer is not remembered).
    epoch: Option<i64>,
    valid_until: OffsetDateTime,
}

impl Bounds {
    fn with(self, principal: SessionPrincipal) -> Option<Remembered> {
        Some(Remembered {
            principal,
            epoch: self.epoch?,
            valid_until: self.valid_until,
        })
    }
}

/// The full check and the read, in one statement; `None` when the transactional path
/// must serve the request. The caller has checked the query and hashed the token.
async fn verify_and_read<O>(
    db: &TenantDb,
    credential: &Credential,
    token_hash: &[u8; 32],
    permission: Permission,
    now: OffsetDateTime,
    query: &AuthenticatedQuery<O>,
) -> AuthResult<Option<(AuthenticatedRows<O>, Bounds)>>
where
    O: for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin,
{
    let statement = query.read.statement();
    let holders: Vec<&'static str> = Role::ALL
        .into_iter()
        .filter(|r| r.allows(permission))
        .map(Role::as_str)
        .collect();
    let mut q = sqlx::query(&statement)
        .bind(credential.org.as_uuid())
        .bind(token_hash.as_slice().to_vec())
        .bind(now)
        .bind(holders)
        .bind(permission.elevation_may_grant());
    q = query.bind_args(q);
    let rows = match db.fetch_all_self_entering(q).await {
        Ok(rows) => rows,
        Err(e) => return refusal(e).map(|()| None),
    };
    let Some(first) = rows.first() else {
        // enter_session returns one row or raises: an empty answer is not a valid one.
        return Err(AuthError::Internal);
    };
    let (principal, bounds) = principal(first)?;
    // Belt and braces: the statement checked the permission; check it again here with
    // the matrix itself, and refuse (dropping the rows) if the two ever disagree.
    if !allows_by_own_role(&principal, permission) {
        tracing::error!("app.enter_session and Principal::require disagree; refused");
        return Err(AuthError::Internal);
    }
    let marker = first.len() - PRINCIPAL_COLUMNS - 1;
    let rows = present_rows(&rows, marker)?;
    Ok(Some((AuthenticatedRows { principal, rows }, bounds)))
}

/// The read of a remembered session; `None` when its user's session epoch moved
/// (nothing was read).
async fn read_remembered<O>(
    db: &TenantDb,
    remembered: &Remembered,
    credential: &Credential,
    query: &AuthenticatedQuery<O>,
) -> AuthResult<Option<Vec<O>>>
where
    O: for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin,
{
    let statement = query.read.remembered_statement();
    let q = sqlx::query(&statement)
        .bind(credential.org.as_uuid())
        .bind(remembered.epoch)
        .bind(remembered.principal.user.as_uuid())
        .bind(None::<Vec<String>>)
        .bind(None::<bool>);
    let rows = db.fetch_all_self_entering(query.bind_args(q)).await?;
    let Some(first) = rows.first() else {
        // The tenant row always exists (LEFT JOIN): no row is not a valid answer.
        return Err(AuthError::Internal);
    };
    let fresh_at = first.len() - 1;
    let fresh: bool = first.try_get(fresh_at)?;
    if !fresh {
        return Ok(None);
    }
    Ok(Some(present_rows(&rows, fresh_at - 1)?))
}

/// The read's rows: those whose marker column (`ph_row`) is true (a LEFT JOIN that
/// found nothing gives one row of NULLs).
fn present_rows<O>(rows: &[PgRow], marker: usize) -> AuthResult<Vec<O>>
where
    O: for<'r> sqlx::FromRow<'r, PgRow>,
{
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let present: Option<bool> = row.try_get(marker)?;
        if present == Some(true) {
            out.push(O::from_row(row)?);
        }
    }
    Ok(out)
}

/// Runs `query` in a tenant transaction that has already authenticated its caller (the
/// transactional path, taken after [`ReadOnce::NeedsTransaction`] or for API tokens):
/// `tenant.org` is the transaction's organisation, `$1`–`$5` are bound but unused.
pub async fn fetch_all_in_tx<O>(
    tx: &mut TenantTx,
    query: &AuthenticatedQuery<O>,
) -> AuthResult<Vec<O>>
where
    O: for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin,
{
    query.read.check()?;
    let statement = format!(
        "SELECT q.* FROM (SELECT app.enter_org($1) AS org, $2::bytea AS ph_token, \
         $3::timestamptz AS ph_at, $4::text[] AS ph_holders, $5::boolean AS ph_grant) AS tenant \
         CROSS JOIN LATERAL (SELECT i.* FROM ({}\n) AS i WHERE tenant.org IS NOT NULL OFFSET 0) AS q",
        query.read.inner
    );
    let q = sqlx::query(&statement)
        .bind(tx.org().as_uuid())
        .bind(None::<Vec<u8>>)
        .bind(None::<OffsetDateTime>)
        .bind(None::<Vec<String>>)
        .bind(None::<bool>);
    let rows = query.bind_args(q).fetch_all(tx.conn()).await?;
    rows.iter().map(|row| Ok(O::from_row(row)?)).collect()
}

fn principal(row: &PgRow) -> AuthResult<(SessionPrincipal, Bounds)> {
    let n = row.len();
    if n < PRINCIPAL_COLUMNS + 1 {
        return Err(AuthError::Internal);
    }
    let at = |i: usize| n - PRINCIPAL_COLUMNS + i;
    let stage: String = row.try_get(at(3))?;
    if stage != "full" {
        return Err(AuthError::Internal);
    }
    let role: String = row.try_get(at(5))?;
    let e_id: Option<Uuid> = row.try_get(at(6))?;
    let e_role: Option<String> = row.try_get(at(7))?;
    let e_expires: Option<OffsetDateTime> = row.try_get(at(8))?;
    let elevation = ActiveElevation::from_columns(e_id, e_role, e_expires)?;
    let bounds = Bounds {
        valid_until: row.try_get(at(9))?,
        epoch: row.try_get(at(10))?,
    };
    let principal = SessionPrincipal {
        session: row.try_get(at(1))?,
        user: UserId::from_uuid(row.try_get(at(2))?).map_err(|_| AuthError::Internal)?,
        stage: SessionStage::Full,
        amr: row.try_get(at(4))?,
        base_role: role.parse().map_err(|_| AuthError::Internal)?,
        elevation,
        expired_elevations: Vec::new(),
    };
    Ok((principal, bounds))
}

/// Maps `app.enter_session`'s refusals (`Ok` when the transactional path must serve the
/// request); the cause goes to the log, never to the client.
fn refusal(e: sqlx::Error) -> AuthResult<()> {
    let code = match &e {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    };
    let cause = match code.as_deref() {
        Some("PHA01") => "no such session in this organisation",
        Some("PHA02") => "session revoked",
        Some("PHA03") => "session expired",
        Some("PHA04") => "session idle for too long",
        Some("PHA05") => "user not active",
        Some("PHA09") => "organisation not served in this deployment's region",
        Some("PHA06") => return Err(AuthError::SecondFactorRequired),
        Some("PHA07") => return Err(AuthError::Forbidden),
        Some("PHA08") => return Ok(()),
        _ => return Err(e.into()),
    };
    tracing::debug!(cause, "session refused");
    Err(AuthError::Unauthenticated)
}
