//! The one-statement credential checks (sessions, API tokens, SCIM tokens) share their
//! ending: the statement enters the credential's organisation itself, an unknown
//! organisation (`app.enter_org`'s `PH404`) and a credential that matches no row are the
//! same [`AuthError::Unauthenticated`], and anything else is the database's error.

use procuhelp_tenancy::TenantDb;
use sqlx::Postgres;
use sqlx::postgres::{PgArguments, PgRow};

use crate::{AuthError, AuthResult};

/// Runs `query` (which must enter its tenant itself, fenced as in
/// `session::verify`) and returns the credential's row.
pub(crate) async fn verified_row(
    db: &TenantDb,
    query: sqlx::query::Query<'_, Postgres, PgArguments>,
) -> AuthResult<PgRow> {
    let rows = match db.fetch_all_self_entering(query).await {
        Ok(rows) => rows,
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("PH404") => {
            return Err(AuthError::Unauthenticated);
        }
        Err(e) => return Err(e.into()),
    };
    rows.into_iter().next().ok_or(AuthError::Unauthenticated)
}
