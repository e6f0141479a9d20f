//! Per-person keys for the personal data in events.
//!
//! Each (organisation, subject) has at most one live 256-bit key in
//! `app.audit_person_keys`, wrapped by the organisation's audit KEK `audit-<org>` in the
//! [`SecretProvider`] (the KEK never leaves the vault). Personal data is sealed with
//! AES-256-GCM ([`EnvelopeKey`]) bound to (org, key id, seq). Erasure sets `wrapped` to
//! NULL: the ciphertexts stay — and so does every hash over them — but nobody can open
//! them. Unwrapped keys are cached by key id (a key id never changes meaning); whether a
//! key is still live is always read from the database.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use procuhelp_core::OrgId;
use procuhelp_core::crypto::{Aad, AeadProvider, DataKey, EnvelopeKey};
use procuhelp_core::vault::{SecretProvider, WrappedKey};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use super::storage;
use crate::{ActorContext, AuditError, AuditEvent, PersonalData, Result, Subject};

const CACHE_CAPACITY: usize = 4096;

use super::storage::KeyRow;

/// A person key's row as read to open events: its KEK version and the wrapped key.
pub(crate) type WrappedRow = (Option<i32>, Option<Vec<u8>>);
/// The vault KEK that wraps an organisation's audit person keys: destroyed when the
/// organisation is offboarded (`procuhelp_tenancy::offboarding::destroy_keys`).
pub fn kek_name(org: OrgId) -> String {
    format!("audit-{}", org.as_uuid().simple())
}

pub(crate) struct PersonKeys {
    vault: Arc<dyn SecretProvider>,
    provider: &'static dyn AeadProvider,
    cache: Mutex<HashMap<Uuid, Arc<EnvelopeKey>>>,
    /// The live key id last seen for each (organisation, subject): lets a writer seal
    /// before reading the keys, the database then confirming they are still live.
    by_subject: Mutex<HashMap<(OrgId, Subject), Uuid>>,
}

impl std::fmt::Debug for PersonKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersonKeys").finish_non_exhaustive()
    }
}

/// The sealed form's plaintext (short keys: it is stored once per event).
#[derive(Serialize, Deserialize)]
struct Plain {
    #[serde(rename = "e", skip_serializing_if = "Option::is_none", default)]
    email: Option<String>,
    #[serde(rename = "n", skip_serializing_if = "Option::is_none", default)]
    display_name: Option<String>,
    #[serde(rename = "ip", skip_serializing_if = "Option::is_none", default)]
    source: Option<std::net::IpAddr>,
    #[serde(rename = "ua", skip_serializing_if = "Option::is_none", default)]
    user_agent: Option<String>,
}

/// [`Plain`] borrowed from the event, for sealing without copying the strings (same
/// serialized form).
#[derive(Serialize)]
struct PlainRef<'a> {
    #[serde(rename = "e", skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(rename = "n", skip_serializing_if = "Option::is_none")]
    display_name: Option<&'a str>,
    #[serde(rename = "ip", skip_serializing_if = "Option::is_none")]
    source: Option<std::net::IpAddr>,
    #[serde(rename = "ua", skip_serializing_if = "Option::is_none")]
    user_agent: Option<&'a str>,
}

/// The subject whose key seals an event's personal data: the named person, else the
/// acting user, else a per-day "unattributed" subject (erasable by retention).
pub(crate) fn subject_for(event: &AuditEvent) -> Option<Subject> {
    if let Some(s) = &event.personal.subject {
        return Some(s.clone());
    }
    if event.personal.is_empty() {
        return None;
    }
    match event.actor {
        crate::Actor::User { id } => Some(Subject::from(id)),
        // A token's activity (its client's address) is kept with the organisation, for
        // investigating a stolen token, not shredded by age with the unattributed days.
        crate::Actor::ServiceAccount { id } => Some(
            Subject::new(&format!("service_account:{id}"))
                .unwrap_or_else(|_| unattributed_subject(event.at)),
        ),
        crate::Actor::System => Some(unattributed_subject(event.at)),
    }
}

/// `unattributed:YYYY-MM-DD` for the UTC day of `at`.
pub fn unattributed_subject(at: OffsetDateTime) -> Subject {
    let d = at.to_offset(time::UtcOffset::UTC).date();
    // Always printable ASCII of fixed length: valid.
    Subject::new(&format!(
        "unattributed:{:04}-{:02}-{:02}",
        d.year(),
        u8::from(d.month()),
        d.day()
    ))
    .unwrap_or_else(|_| Subject(String::from("unattributed")))
}

fn aad(org: OrgId, key_id: Uuid, seq: u64) -> Aad {
    Aad::parts(&[
        b"audit-personal",
        org.as_uuid().as_bytes(),
        key_id.as_bytes(),
        &seq.to_be_bytes(),
    ])
}

impl PersonKeys {
    pub(crate) fn new(vault: Arc<dyn SecretProvider>) -> Self {
        Self {
            vault,
            provider: procuhelp_core::crypto::default_provider(),
            cache: Mutex::new(HashMap::new()),
            by_subject: Mutex::new(HashMap::new()),
        }
    }

    /// The live key of every subject in `subjects`, creating missing ones. `rows` are the
    /// live keys of `subjects` read with the organisation's chain lock held (see
    /// `storage::lock_chain_with_keys`), so key creation does not race with other writers
    /// or with erasure.
    pub(crate) async fn live_keys(
        &self,
        conn: &mut PgConnection,
        org: OrgId,
        subjects: &[Subject],
        rows: Vec<KeyRow>,
    ) -> Result<HashMap<Subject, (Uuid, Arc<EnvelopeKey>)>> {
        let mut out = HashMap::new();
        if subjects.is_empty() {
            return Ok(out);
        }
        for (subject, id, kek_version, wrapped) in rows {
            let key = self.unwrap(org, id, kek_version, wrapped).await?;
            let subject = Subject::new(&subject)?;
            self.index(org, &subject, id);
            out.insert(subject, (id, key));
        }
        for subject in subjects {
            if out.contains_key(subject) {
                continue;
            }
            let dek = DataKey::generate()?;
            let wrapped = self.vault.wrap_key(&kek_name(org), &dek).await?;
            let id = Uuid::now_v7();
            let kek_version = i32::try_from(wrapped.kek_version)
                .map_err(|_| AuditError::Internal("KEK version out of range"))?;
            sqlx::query(
                "INSERT INTO app.audit_person_keys (org_id, id, subject, kek_version, wrapped)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(org.as_uuid())
            .bind(id)
            .bind(subject.as_str().to_owned())
            .bind(kek_version)
            .bind(wrapped.ciphertext.clone())
            .execute(&mut *conn)
            .await
            .map_err(storage::db_err)?;
            let key = Arc::new(EnvelopeKey::new(self.provider, &dek, 1)?);
            self.remember(id, key.clone());
            self.index(org, subject, id);
            out.insert(subject.clone(), (id, key));
        }
        Ok(out)
    }

    async fn unwrap(
        &self,
        org: OrgId,
        id: Uuid,
        kek_version: Option<i32>,
        wrapped: Option<Vec<u8>>,
    ) -> Result<Arc<EnvelopeKey>> {
        if let Some(k) = self.lock().get(&id) {
            return Ok(k.clone());
        }
        let (Some(kek_version), Some(ciphertext)) = (kek_version, wrapped) else {
            return Err(AuditError::Internal("live person key without wrapped key"));
        };
        let kek_version = u32::try_from(kek_version)
            .map_err(|_| AuditError::Internal("KEK version out of range"))?;
        let dek = self
            .vault
            .unwrap_key(
                &kek_name(org),
                &WrappedKey {
                    kek_version,
                    ciphertext,
                },
            )
            .await?;
        let key = Arc::new(EnvelopeKey::new(self.provider, &dek, 1)?);
        self.remember(id, key.clone());
        Ok(key)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Arc<EnvelopeKey>>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn remember(&self, id: Uuid, key: Arc<EnvelopeKey>) {
        let mut cache = self.lock();
        if cache.len() >= CACHE_CAPACITY {
            // Dropping the keys zeroizes them; the next use unwraps again.
            cache.clear();
        }
        cache.insert(id, key);
    }

    /// Forgets cached keys (after erasure, so this process cannot open them either).
    pub(crate) fn forget(&self, ids: &[Uuid]) {
        let mut cache = self.lock();
        for id in ids {
            cache.remove(id);
        }
        drop(cache);
        self.subjects().retain(|_, id| !ids.contains(id));
    }

    fn subjects(&self) -> std::sync::MutexGuard<'_, HashMap<(OrgId, Subject), Uuid>> {
        self.by_subject.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn index(&self, org: OrgId, subject: &Subject, id: Uuid) {
        let mut map = self.subjects();
        if map.len() >= CACHE_CAPACITY {
            map.clear();
        }
        map.insert((org, subject.clone()), id);
    }

    /// The cached keys of `subjects`, if every one of them is cached. They were live when
    /// cached; the caller has the database confirm they still are (under the chain lock).
    pub(crate) fn cached(
        &self,
        org: OrgId,
        subjects: &[Subject],
    ) -> Option<HashMap<Subject, (Uuid, Arc<EnvelopeKey>)>> {
        let ids: Vec<Uuid> = {
            let map = self.subjects();
            subjects
                .iter()
                .map(|s| map.get(&(org, s.clone())).copied())
                .collect::<Option<_>>()?
        };
        let cache = self.lock();
        let mut out = HashMap::with_capacity(subjects.len());
        for (subject, id) in subjects.iter().zip(ids) {
            out.insert(subject.clone(), (id, cache.get(&id)?.clone()));
        }
        Some(out)
    }

    /// Seals an event's personal data under `key` for position `seq`.
    pub(crate) fn seal(
        key: &EnvelopeKey,
        org: OrgId,
        key_id: Uuid,
        seq: u64,
        personal: &PersonalData,
    ) -> Result<Vec<u8>> {
        let plain = PlainRef {
            email: personal.email.as_deref(),
            display_name: personal.display_name.as_deref(),
            source: personal.context.source,
            user_agent: personal.context.user_agent.as_deref(),
        };
        let mut bytes = serde_json::to_vec(&plain)
            .map_err(|_| AuditError::Internal("personal data did not serialize"))?;
        let sealed = key.seal(&aad(org, key_id, seq), &bytes);
        zeroize::Zeroize::zeroize(&mut bytes);
        Ok(sealed?)
    }

    /// The wrapped keys `ids` of `org` that still exist (not erased), in one query: a
    /// page of events names a handful of people, not one key per event.
    pub(crate) async fn wrapped_keys(
        &self,
        conn: &mut PgConnection,
        org: OrgId,
        ids: &[Uuid],
    ) -> Result<HashMap<Uuid, WrappedRow>> {
        let rows: Vec<(Uuid, Option<i32>, Option<Vec<u8>>)> = sqlx::query_as(
            "SELECT id, kek_version, wrapped FROM app.audit_person_keys
             WHERE org_id = $1 AND id = ANY($2) AND erased_at IS NULL",
        )
        .bind(org.as_uuid())
        .bind(ids)
        .fetch_all(&mut *conn)
        .await
        .map_err(storage::db_err)?;
        Ok(rows
            .into_iter()
            .map(|(id, kek_version, wrapped)| (id, (kek_version, wrapped)))
            .collect())
    }

    /// Opens personal data with its key's row as [`wrapped_keys`](Self::wrapped_keys)
    /// read it; `None` (no row: the person's key was erased) is `Ok(None)`.
    pub(crate) async fn open_with(
        &self,
        org: OrgId,
        key_id: Uuid,
        row: Option<&WrappedRow>,
        seq: u64,
        subject: Option<Subject>,
        sealed: &[u8],
    ) -> Result<Option<PersonalData>> {
        let Some((kek_version, wrapped)) = row.cloned() else {
            self.forget(&[key_id]);
            return Ok(None);
        };
        let key = self.unwrap(org, key_id, kek_version, wrapped).await?;
        let mut bytes = key.open(&aad(org, key_id, seq), sealed)?;
        let plain: Result<Plain> = serde_json::from_slice(&bytes)
            .map_err(|_| AuditError::Internal("sealed personal data does not parse"));
        zeroize::Zeroize::zeroize(&mut bytes);
        let plain = plain?;
        Ok(Some(PersonalData {
            subject,
            email: plain.email,
            display_name: plain.display_name,
            context: ActorContext {
                source: plain.source,
                user_agent: plain.user_agent,
            },
        }))
    }
}
