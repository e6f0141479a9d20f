//! Key rotation's audit record (feature `postgres`): [`RotationAuditor`] is the
//! [`RotationAudit`] that writes each organisation's completed rotation to the trail as a
//! [`Action::KeysRotated`] event.
//!
//! It lives here, not in `procuhelp-tenancy`: the audit crate already depends on tenancy
//! (with `postgres`), so tenancy cannot depend on the audit crate without a cycle.

use std::sync::Arc;

use async_trait::async_trait;
use procuhelp_core::Clock;
use procuhelp_tenancy::rotation::{OrgRotation, RotationAudit};

use crate::{Action, Actor, AuditEvent, AuditSink, Outcome};

/// Records each organisation's key rotation as a `keys.rotated` event of that
/// organisation (actor `system`, outcome success, the rotation's figures as context — no
/// key material), through the application's one sink and clock. A refused record stops
/// the rotation before the next organisation (tenancy's `Error::AuditRefused`).
///
/// ```no_run
/// # async fn demo(owner: sqlx::PgPool, cipher: procuhelp_tenancy::FieldCipher,
/// #               schema: procuhelp_tenancy::Schema,
/// #               sink: std::sync::Arc<dyn procuhelp_audit::AuditSink>)
/// #               -> procuhelp_tenancy::Result<()> {
/// use std::sync::Arc;
/// use procuhelp_audit::RotationAuditor;
///
/// let audit = RotationAuditor::new(sink, Arc::new(procuhelp_core::SystemClock));
/// let done = procuhelp_tenancy::rotation::rotate_all(
///     &owner, &cipher, &schema.encrypted_columns(), 500, &audit,
/// ).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RotationAuditor {
    sink: Arc<dyn AuditSink>,
    clock: Arc<dyn Clock>,
}

impl RotationAuditor {
    /// Records through `sink`, dating events with `clock`.
    pub fn new(sink: Arc<dyn AuditSink>, clock: Arc<dyn Clock>) -> Self {
        Self { sink, clock }
    }

    /// The event recorded for `rotation`.
    pub fn event(&self, rotation: &OrgRotation) -> AuditEvent {
        AuditEvent::new(
            Some(rotation.org),
            Actor::System,
            Action::KeysRotated,
            Outcome::Success,
        )
        .at(self.clock.now())
        .context(rotation.to_json())
    }
}

#[async_trait]
impl RotationAudit for RotationAuditor {
    async fn rotated(
        &self,
        rotation: &OrgRotation,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self.sink.record(self.event(rotation)).await?;
        Ok(())
    }
}
