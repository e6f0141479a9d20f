//! The authenticator's sessions: opened at sign-in (a half session lives ten minutes at
//! most), looked up with the expiry of elevations recorded, re-checked inside an action's
//! own transaction, and replaced by a new one on a step-up (no fixation).

use procuhelp_audit::{Action, Actor, Outcome};
use procuhelp_core::UserId;
use procuhelp_tenancy::TenantTx;
use serde_json::json;

use super::{Authenticator, ClientInfo, Issued};
use crate::directory::{self, UserRecord};
use crate::session::{self, Credential, NewSession, SessionPrincipal, SessionStage};
use crate::{AuthError, AuthResult};

impl Authenticator {
    /// Opens a transaction of `credential`'s organisation and checks that it still
    /// authenticates the session `expected` (same session, user and stage: it may have
    /// been revoked or stepped up since the caller looked); returns it with its user.
    /// Any failure ends the transaction.
    pub(super) async fn session_user(
        &self,
        credential: &Credential,
        expected: &SessionPrincipal,
        client: &ClientInfo,
    ) -> AuthResult<(TenantTx, SessionPrincipal, UserRecord)> {
        let mut tx = match self.db.begin(credential.org).await {
            Ok(tx) => tx,
            Err(procuhelp_tenancy::Error::UnknownOrg(_)) => {
                return Err(AuthError::Unauthenticated);
            }
            Err(e) => return Err(e.into()),
        };
        let found = async {
            let principal = self.session(&mut tx, credential, client).await?;
            let same = principal.session == expected.session
                && principal.user == expected.user
                && principal.stage == expected.stage;
            if !same {
                return Err(AuthError::Unauthenticated);
            }
            let user = directory::get(&mut tx, principal.user).await?;
            Ok((principal, user))
        }
        .await;
        match found {
            Ok((principal, user)) => Ok((tx, principal, user)),
            Err(e) => {
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }

    pub(super) async fn open_session(
        &self,
        tx: &mut TenantTx,
        user: UserId,
        stage: SessionStage,
        amr: &[&str],
        client: &ClientInfo,
    ) -> AuthResult<Issued> {
        let mut policy = self.sessions;
        if stage != SessionStage::Full {
            // A half-signed-in session lives just long enough to finish signing in.
            policy.absolute = policy.absolute.min(time::Duration::minutes(10));
        }
        let (_, credential) = session::open(
            tx,
            NewSession {
                user,
                stage,
                amr,
                policy,
                source: client.source,
                user_agent: client.user_agent.as_deref(),
            },
            self.now(),
        )
        .await?;
        Ok(Issued {
            credential,
            stage,
            user,
        })
    }

    /// Opens a new full session for `user` (used by SSO sign-in, with the IdP's `amr`).
    pub async fn open_full_session(
        &self,
        tx: &mut TenantTx,
        user: UserId,
        amr: &[&str],
        client: &ClientInfo,
    ) -> AuthResult<Issued> {
        self.open_session(tx, user, SessionStage::Full, amr, client)
            .await
    }

    /// Looks up a session credential in `tx`'s organisation and records the expiry of
    /// elevations that ran out.
    pub async fn session(
        &self,
        tx: &mut TenantTx,
        credential: &Credential,
        client: &ClientInfo,
    ) -> AuthResult<SessionPrincipal> {
        let principal = session::authenticate(tx, credential, self.now()).await?;
        for id in &principal.expired_elevations {
            self.record(
                self.event(
                    Some(tx.org()),
                    Actor::System,
                    Action::ElevationExpired,
                    Outcome::Success,
                    client,
                )
                .target(format!("elevation:{id}"))
                .context(json!({ "user": principal.user.to_string() })),
            )
            .await?;
        }
        Ok(principal)
    }

    /// Replaces the current session by a new full one (new id: no fixation across a
    /// privilege change) and records the step-up.
    pub(super) async fn step_up(
        &self,
        tx: &mut TenantTx,
        user: &UserRecord,
        principal: &SessionPrincipal,
        amr: &[&str],
        client: &ClientInfo,
    ) -> AuthResult<Issued> {
        session::revoke(tx, principal.session, None, self.now()).await?;
        let issued = self
            .open_session(tx, user.id, SessionStage::Full, amr, client)
            .await?;
        self.record(
            self.user_event(
                Some(tx.org()),
                user,
                Action::MfaStepUp,
                Outcome::Success,
                client,
            )
            .context(json!({ "amr": amr })),
        )
        .await?;
        Ok(issued)
    }
}
