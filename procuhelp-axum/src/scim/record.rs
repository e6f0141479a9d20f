//! What a SCIM request records in the audit trail, through the application's one audit
//! sink and clock ([`Sdk`](crate::Sdk)): every change (actor: the SCIM token as a service
//! account, context `"via": "scim"`) before it is committed, and every refusal that
//! concerns ownership (`scim.request_refused`, outcome `denied`, a fixed reason, nothing
//! of the input). If the trail refuses a record, nothing of the request is kept (503).

use procuhelp_audit::{Action, Actor, AuditEvent, Outcome};
use procuhelp_auth::AuthError;
use procuhelp_auth::scim::ScimError;
use procuhelp_auth::scim::store::{self, Effects};
use serde_json::{Value, json};

use super::context::ScimCtx;
use super::reply::{ScimFailure, ScimResult};

impl ScimCtx {
    /// A successful change to `target`.
    pub(super) fn event(&self, action: Action, target: String, context: Value) -> AuditEvent {
        self.event_with(action, Outcome::Success, target, context)
    }

    fn event_with(
        &self,
        action: Action,
        outcome: Outcome,
        target: String,
        context: Value,
    ) -> AuditEvent {
        let mut context = context;
        if let Some(obj) = context.as_object_mut() {
            obj.insert("via".to_owned(), json!("scim"));
        }
        let mut event = AuditEvent::new(
            Some(self.org),
            Actor::ServiceAccount { id: self.token },
            action,
            outcome,
        )
        .at(self.now())
        .source(self.client.source, self.client.user_agent.as_deref())
        .target(target)
        .context(context);
        if let Some(id) = &self.client.request_id {
            event = event.request_id(id.clone());
        }
        event
    }

    /// Writes `event` to the audit sink; the failure (a 503) if it refuses.
    async fn write(&self, event: AuditEvent) -> Result<(), ScimFailure> {
        self.sdk
            .audit()
            .record(event)
            .await
            .map(|_| ())
            .map_err(|e| ScimError::from(AuthError::Audit(e)).into())
    }

    /// Records `event` before the commit; on failure nothing of the request is kept.
    pub(super) async fn record(&mut self, event: AuditEvent) -> ScimResult<()> {
        if let Err(e) = self.write(event).await {
            self.roll_back().await;
            return Err(e);
        }
        Ok(())
    }

    /// Refuses what SCIM may not do: nothing of the request is kept (rolled back), and
    /// the attempt is recorded first — `op`, a fixed `reason`, the user it concerned, no
    /// input. If the audit log refuses the record, 503.
    pub(super) async fn refuse(
        &mut self,
        error: ScimError,
        op: &'static str,
        user: Option<String>,
        reason: &'static str,
    ) -> ScimFailure {
        self.roll_back().await;
        let target = user.map_or_else(|| "scim:Users".to_owned(), |u| format!("user:{u}"));
        let event = self.event_with(
            Action::ScimRequestRefused,
            Outcome::Denied,
            target,
            json!({ "op": op, "reason": reason }),
        );
        if let Err(e) = self.write(event).await {
            return e;
        }
        error.into()
    }

    /// The failure for `error` from an operation on user `id`, recording the refusals
    /// that concern ownership: a 404 for a user SCIM does not manage (SCIM was never
    /// shown that id), and an admin's disable.
    pub(super) async fn user_failure(
        &mut self,
        error: ScimError,
        op: &'static str,
        id: &str,
    ) -> ScimFailure {
        if error == ScimError::not_found() {
            let hidden = match self.tx.as_mut() {
                Some(tx) => match store::is_unmanaged_user(tx, id).await {
                    Ok(hidden) => hidden,
                    Err(e) => return e.into(),
                },
                None => false,
            };
            if hidden {
                return self
                    .refuse(error, op, Some(id.to_owned()), "user not managed by SCIM")
                    .await;
            }
        } else if error.is_ownership_refusal() {
            return self
                .refuse(error, op, Some(id.to_owned()), error.detail)
                .await;
        }
        error.into()
    }

    /// The role changes and (de)activations a write caused.
    pub(super) async fn record_effects(
        &mut self,
        user: Option<String>,
        effects: &Effects,
    ) -> ScimResult<()> {
        if let Some(user) = &user {
            if let Some(revoked) = effects.deprovisioned {
                let e = self.event(
                    Action::ScimUserDeprovisioned,
                    format!("user:{user}"),
                    json!({ "sessions_revoked": revoked }),
                );
                self.record(e).await?;
            }
            if effects.reactivated {
                let e = self.event(
                    Action::ScimUserReactivated,
                    format!("user:{user}"),
                    json!({}),
                );
                self.record(e).await?;
            }
        }
        for change in &effects.role_changes {
            let e = self.event(
                Action::UserRoleChanged,
                format!("user:{}", change.user),
                json!({ "from": change.from, "to": change.to,
                        "sessions_revoked": change.sessions_revoked, "reason": "scim group mapping" }),
            );
            self.record(e).await?;
        }
        Ok(())
    }
}
