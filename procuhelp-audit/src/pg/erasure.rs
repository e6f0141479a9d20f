//! GDPR erasure: destroy a person's keys, record that it happened.

use procuhelp_core::OrgId;
use procuhelp_tenancy::TenantTx;
use uuid::Uuid;

use super::persons::unattributed_subject;
use super::storage::{db_err, lock_chain, tenancy_err};
use super::{PgAuditSink, append_locked};
use crate::{Action, Actor, AuditError, AuditEvent, Outcome, Receipt, Result, Subject};

/// What an erasure did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erasure {
    /// Keys destroyed (0 when the person had no personal data in the trail).
    pub keys_erased: u64,
    /// The receipt of the `audit.person_erased` event.
    pub receipt: Receipt,
}

impl PgAuditSink {
    /// Erases `subject`'s personal data in `org`'s trail: every live key of that person is
    /// destroyed (`wrapped` set to NULL) and an [`Action::AuditPersonErased`] event by
    /// `actor` is appended — in one transaction, under the chain lock, so no event can be
    /// sealed under a key being erased. The events stay, pseudonymous; the chain and every
    /// checkpoint still verify, because they cover the ciphertext.
    pub async fn erase_person(
        &self,
        org: OrgId,
        subject: &Subject,
        actor: Actor,
    ) -> Result<Erasure> {
        let mut tx = self.inner().db.begin(org).await.map_err(tenancy_err)?;
        let erasure = self.erase_person_in_tx(&mut tx, subject, actor).await?;
        tx.commit().await.map_err(tenancy_err)?;
        Ok(erasure)
    }

    /// [`erase_person`](Self::erase_person) in the caller's transaction of the
    /// organisation, so that erasing the audit trail's part of a person commits or rolls
    /// back with erasing the rest (a data subject's erasure request). Takes the chain
    /// lock: call it after locking the person's own rows, as every writer does.
    pub async fn erase_person_in_tx(
        &self,
        tx: &mut TenantTx,
        subject: &Subject,
        actor: Actor,
    ) -> Result<Erasure> {
        let org = tx.org();
        // Serialise with writers of this chain (they create and use person keys under it).
        lock_chain(tx.conn(), org).await?;
        let erased: Vec<Uuid> = sqlx::query_scalar(
            "UPDATE app.audit_person_keys SET wrapped = NULL, kek_version = NULL, erased_at = now()
             WHERE org_id = $1 AND subject = $2 AND erased_at IS NULL RETURNING id",
        )
        .bind(org.as_uuid())
        .bind(subject.as_str().to_owned())
        .fetch_all(tx.conn())
        .await
        .map_err(db_err)?;
        let event = AuditEvent::new(
            Some(org),
            actor,
            Action::AuditPersonErased,
            Outcome::Success,
        )
        .target(erasure_target(subject))
        .context(serde_json::json!({ "keys_erased": erased.len() }));
        let batch = super::Batch::check(org, std::slice::from_ref(&event))?;
        let chained = append_locked(self.inner(), tx.conn(), org, &batch).await?;
        // Before the commit: harmless if it rolls back (whether a key is live is always
        // read from the database; the cache only saves unwrapping it again).
        self.inner().persons.forget(&erased);
        let seq = chained
            .first()
            .map(|c| c.seq)
            .ok_or(AuditError::Internal("no erasure event"))?;
        Ok(Erasure {
            keys_erased: erased.len() as u64,
            receipt: Receipt {
                org: Some(org),
                seq: Some(seq),
            },
        })
    }
}

impl PgAuditSink {
    /// Destroys the keys of `org`'s unattributed personal data (subjects
    /// `unattributed:YYYY-MM-DD`: addresses, browsers and typed e-mail addresses of
    /// sign-ins that named no account) of days before `before`, and records how many in a
    /// `personal_data.purged` event — data minimisation: nobody can be asked about, so
    /// nobody can ask to erase, the data of an unknown account; it goes by age. Returns
    /// the number of keys destroyed (0 records nothing).
    pub async fn expire_unattributed(&self, org: OrgId, before: time::Date) -> Result<u64> {
        let cutoff = unattributed_subject(before.midnight().assume_utc());
        let mut tx = self.inner().db.begin(org).await.map_err(tenancy_err)?;
        lock_chain(tx.conn(), org).await?;
        // Subjects of one fixed shape sort by their date.
        let erased: Vec<Uuid> = sqlx::query_scalar(
            "UPDATE app.audit_person_keys SET wrapped = NULL, kek_version = NULL, erased_at = now()
             WHERE org_id = $1 AND subject LIKE 'unattributed:%' AND subject < $2
               AND erased_at IS NULL RETURNING id",
        )
        .bind(org.as_uuid())
        .bind(cutoff.as_str().to_owned())
        .fetch_all(tx.conn())
        .await
        .map_err(db_err)?;
        if erased.is_empty() {
            tx.commit().await.map_err(tenancy_err)?;
            return Ok(0);
        }
        let event = AuditEvent::new(
            Some(org),
            Actor::System,
            Action::PersonalDataPurged,
            Outcome::Success,
        )
        .context(serde_json::json!({
            "unattributed_keys_erased": erased.len(),
            "before": cutoff.as_str(),
        }));
        let batch = super::Batch::check(org, std::slice::from_ref(&event))?;
        append_locked(self.inner(), tx.conn(), org, &batch).await?;
        self.inner().persons.forget(&erased);
        tx.commit().await.map_err(tenancy_err)?;
        Ok(erased.len() as u64)
    }
}

/// The target of an `audit.person_erased` event (imports look erasures up by it).
pub(crate) fn erasure_target(subject: &Subject) -> String {
    format!("subject:{subject}")
}
