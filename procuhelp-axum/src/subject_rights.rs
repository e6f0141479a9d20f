//! A data subject's rights over one person of one organisation (GDPR articles 15 and 17):
//! export everything held about them, or erase them. The API routes
//! ([`admin`](crate::admin)) and an application's command line call the same two
//! functions, in a transaction of the organisation (row-level security keeps every
//! statement inside it).
//!
//! Each crate does its own part, and this module only orders them:
//! - the register's tables (`procuhelp_tenancy::personal_data::subject`): the person's
//!   rows, read or deleted;
//! - the account (`procuhelp_auth::directory::erase_account`): sessions ended, the row
//!   reduced to "a former user", the last admin refused;
//! - the audit trail (`procuhelp_audit::PgAuditSink`): events by or about the person with
//!   their personal fields opened, or those fields crypto-shredded.
//!
//! Both record their own event (`personal_data.exported`, `personal_data.erased`) in the
//! same transaction, so the trail holds the request exactly when it took effect, and the
//! event holds counts, never the content.
//!
//! **Locks.** Both lock the person's row first and the organisation's audit chain last,
//! the order every request that changes a user and records it follows: an export waits
//! for an erasure in progress (and then finds no one), an erasure waits for an export.

use std::collections::BTreeMap;

use procuhelp_audit::{
    Action, Actor, AuditEvent, Outcome, PersonalView, PgAuditSink, StoredEvent, Subject,
};
use procuhelp_auth::AuthError;
use procuhelp_auth::directory::{self, Email};
use procuhelp_core::UserId;
use procuhelp_tenancy::TenantTx;
use procuhelp_tenancy::personal_data::{PersonalTable, subject};
use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::{Error, Result};

/// The format name of an export (its `format` field).
pub const EXPORT_FORMAT: &str = "procuhelp.personal-data-export.v1";

/// The most audit events one export holds.
pub const MAX_EXPORT_EVENTS: usize = 200_000;

/// Who a request is about.
#[derive(Debug, Clone)]
pub enum Person {
    /// A user's id.
    Id(UserId),
    /// A user's sign-in address.
    Email(Email),
}

/// Everything held about one person, as exported: one JSON document with a manifest (what
/// each section is, why it is kept and for how long), a human-readable summary, the rows
/// of every table that names the person and the audit events by or about them.
#[derive(Debug, Clone, Serialize)]
pub struct PersonalDataExport {
    /// [`EXPORT_FORMAT`].
    pub format: &'static str,
    /// What the export holds.
    pub manifest: Manifest,
    /// The same, for a person to read.
    pub summary: String,
    /// Rows by table (`app.sessions`: [...]).
    pub tables: BTreeMap<&'static str, Vec<Value>>,
    /// Second factor: whether set up, never the secret.
    pub mfa: Value,
    /// Audit events by, about or targeting the person, oldest first.
    pub audit_events: Vec<Value>,
}

/// The manifest of a [`PersonalDataExport`].
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    /// The organisation.
    pub org: String,
    /// The person's user id.
    pub user_id: String,
    /// When the export was made (RFC 3339).
    pub generated_at: String,
    /// One entry per table with rows, then one for the audit trail.
    pub sections: Vec<Section>,
    /// What is held about the person but deliberately not exported, and why.
    pub withheld: Vec<&'static str>,
}

/// One section of a [`Manifest`].
#[derive(Debug, Clone, Serialize)]
pub struct Section {
    /// The table (`app.sessions`) or `audit_events`.
    pub name: &'static str,
    /// Why it is kept.
    pub purpose: &'static str,
    /// How long it is kept.
    pub retention: String,
    /// How many rows or events.
    pub rows: usize,
}

const WITHHELD: &[&str] = &[
    "credentials: password hash, TOTP secret, recovery code hashes, token hashes \
     (secrets, never exported)",
    "sign-in throttle counters: keyed hashes of the address, kept 2 days",
    "sealed columns about someone else (a supplier's bank details)",
];

/// What an erasure did.
#[derive(Debug, Clone, Serialize)]
pub struct ErasureReport {
    /// The person's user id (it stays, naming "a former user").
    pub user_id: String,
    /// The person had been erased before; nothing changed and nothing was recorded.
    pub already_erased: bool,
    /// Sessions ended.
    pub sessions_ended: u64,
    /// Rows deleted, by table.
    pub rows_deleted: BTreeMap<&'static str, u64>,
    /// Audit trail keys destroyed (their personal fields can no longer be opened).
    pub audit_keys_erased: u64,
    /// The sequence number of the `personal_data.erased` event.
    pub audit_seq: Option<u64>,
    /// What the admin must still do outside this deployment.
    pub note: &'static str,
}

/// [`ErasureReport::note`].
pub const IDENTITY_PROVIDER_NOTE: &str = "if your identity provider still assigns this \
    person, remove them there, or SCIM or SSO will create a new, empty account";

fn register_of(register: &[PersonalTable]) -> Result<&[PersonalTable]> {
    if register.is_empty() {
        // Fail closed: an export or erasure without the register would silently cover
        // nothing but the account.
        return Err(AuthError::Conflict(
            "the personal-data register is not configured (SdkBuilder::personal_data)",
        )
        .into());
    }
    Ok(register)
}

/// The person's id, their row locked against an erasure until `tx` ends; an erased
/// person and an unknown one are both [`AuthError::NotFound`] (as is another
/// organisation's user: row-level security hides them).
async fn find(tx: &mut TenantTx, person: &Person, lock: &str) -> Result<UserId> {
    let sql = match person {
        Person::Id(_) => {
            format!("SELECT id FROM app.users WHERE id = $1 AND erased_at IS NULL {lock}")
        }
        Person::Email(_) => {
            format!("SELECT id FROM app.users WHERE email = $2 AND erased_at IS NULL {lock}")
        }
    };
    let (id, email) = match person {
        Person::Id(id) => (Some(id.as_uuid()), None),
        Person::Email(e) => (None, Some(e.as_str())),
    };
    let found: Option<uuid::Uuid> = sqlx::query_scalar(&sql)
        .bind(id)
        .bind(email)
        .fetch_optional(tx.conn())
        .await?;
    let found = found.ok_or(Error::Auth(AuthError::NotFound))?;
    UserId::from_uuid(found).map_err(|_| Error::Auth(AuthError::Internal))
}

/// Exports everything held about `person` in `tx`'s organisation, and records `event`
/// (its action must be [`Action::PersonalDataExported`]; who asks, from where) in the
/// same transaction. The caller commits `tx` before handing the export over.
///
/// ```no_run
/// # async fn f(sdk: &procuhelp_axum::Sdk, org: procuhelp_core::OrgId,
/// #            log: &procuhelp_audit::PgAuditSink) -> procuhelp_axum::Result<()> {
/// use procuhelp_audit::{Action, Actor, AuditEvent, Outcome};
/// use procuhelp_axum::subject_rights::{Person, export};
///
/// let mut tx = sdk.tenants().begin(org).await?;
/// let who = Person::Email(procuhelp_auth::directory::Email::parse("ana@example.com")?);
/// let event = AuditEvent::new(Some(org), Actor::System, Action::PersonalDataExported,
///     Outcome::Success);
/// let export = export(&mut tx, log, sdk.personal_data(), &who, event, sdk.now()).await?;
/// tx.commit().await?;
/// println!("{}", export.summary);
/// # Ok(()) }
/// ```
pub async fn export(
    tx: &mut TenantTx,
    audit_log: &PgAuditSink,
    register: &[PersonalTable],
    person: &Person,
    event: AuditEvent,
    now: OffsetDateTime,
) -> Result<PersonalDataExport> {
    check_action(&event, Action::PersonalDataExported)?;
    let register = register_of(register)?;
    let id = find(tx, person, "FOR SHARE").await?;
    let found = subject::rows_about(tx, register, id.as_uuid()).await?;
    let user = directory::get(tx, id).await?;
    let mfa = json!({
        "totp_enabled": user.has_mfa(),
        "recovery_codes_left": found.iter().find(|t| t.table == "app.recovery_codes")
            .map_or(0, |t| t.rows.len()),
    });
    let me = Subject::from(id);
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let page = audit_log
            .person_events_in_tx(tx, id, after, procuhelp_audit::MAX_READ)
            .await?;
        let Some(last) = page.last() else { break };
        after = last.event.seq;
        events.extend(page.iter().map(|stored| {
            let mut json = event_json(stored);
            // An event about the person may carry someone else's personal data: sealed
            // under another subject altogether, or the address and browser of the admin
            // who acted on them (sealed with the person's fields): not theirs to receive.
            if stored.personal != PersonalView::None && stored.event.subject.as_ref() != Some(&me) {
                json["personal"] = json!("withheld: another person's");
            }
            let by_them = matches!(stored.event.actor, Actor::User { id: actor } if actor == id);
            if let (false, Some(fields)) = (by_them, json["personal"].as_object_mut()) {
                fields.remove("source");
                fields.remove("user_agent");
            }
            json
        }));
        if events.len() > MAX_EXPORT_EVENTS {
            return Err(Error::Invalid(
                "person: more audit events than one export holds",
            ));
        }
    }
    let mut sections: Vec<Section> = found
        .iter()
        .map(|t| Section {
            name: t.table,
            purpose: t.purpose,
            retention: t.retention.describe(),
            rows: t.rows.len(),
        })
        .collect();
    sections.push(Section {
        name: "audit_events",
        purpose: "the tamper-evident audit trail: what the person did, and what was done \
                  to their account",
        retention: procuhelp_tenancy::personal_data::Retention::AuditTrail.describe(),
        rows: events.len(),
    });
    let manifest = Manifest {
        org: tx.org().to_string(),
        user_id: id.to_string(),
        generated_at: now.format(&Rfc3339).unwrap_or_default(),
        sections,
        withheld: WITHHELD.to_vec(),
    };
    let summary = summary(&manifest, &user.email);
    let context = json!({
        "person": id.to_string(),
        "sections": manifest.sections.iter().map(|s| json!({"name": s.name, "rows": s.rows}))
            .collect::<Vec<_>>(),
    });
    audit_log
        .append_in_tx(tx, &event.target(format!("user:{id}")).context(context))
        .await?;
    Ok(PersonalDataExport {
        format: EXPORT_FORMAT,
        manifest,
        summary,
        tables: found.into_iter().map(|t| (t.table, t.rows)).collect(),
        mfa,
        audit_events: events,
    })
}

/// Erases `person` in `tx`'s organisation: their account becomes "a former user" (sessions
/// ended, credentials and SCIM attributes gone), their rows in tables kept with the
/// account are deleted, their personal fields in the audit trail are crypto-shredded,
/// and `event` (action [`Action::PersonalDataErased`]) is recorded with counts only —
/// all in `tx`, so it happens whole or not at all. The caller commits.
///
/// Idempotent by id: a person erased before is reported as such, and nothing changes.
/// The last active admin is refused ([`AuthError::Conflict`]).
pub async fn erase(
    tx: &mut TenantTx,
    audit_log: &PgAuditSink,
    register: &[PersonalTable],
    person: &Person,
    event: AuditEvent,
    now: OffsetDateTime,
) -> Result<ErasureReport> {
    check_action(&event, Action::PersonalDataErased)?;
    let register = register_of(register)?;
    let id = match (find(tx, person, "").await, person) {
        (Ok(id), _) => id,
        // Already erased: say so (an unknown id stays NotFound below).
        (Err(Error::Auth(AuthError::NotFound)), Person::Id(id)) => *id,
        (Err(e), _) => return Err(e),
    };
    let account = directory::erase_account(tx, id, now).await?;
    if account.already_erased {
        return Ok(ErasureReport {
            user_id: id.to_string(),
            already_erased: true,
            sessions_ended: 0,
            rows_deleted: BTreeMap::new(),
            audit_keys_erased: 0,
            audit_seq: None,
            note: IDENTITY_PROVIDER_NOTE,
        });
    }
    let deleted = subject::erase_rows(tx, register, id.as_uuid()).await?;
    let shredded = audit_log
        .erase_person_in_tx(tx, &Subject::from(id), event.actor)
        .await?;
    let rows_deleted: BTreeMap<&'static str, u64> =
        deleted.iter().map(|d| (d.table, d.rows)).collect();
    let context = json!({
        "sessions_ended": account.sessions_ended,
        "rows_deleted": rows_deleted,
        "audit_keys_erased": shredded.keys_erased,
    });
    let receipt = audit_log
        .append_in_tx(tx, &event.target(format!("user:{id}")).context(context))
        .await?;
    Ok(ErasureReport {
        user_id: id.to_string(),
        already_erased: false,
        sessions_ended: account.sessions_ended,
        rows_deleted,
        audit_keys_erased: shredded.keys_erased,
        audit_seq: receipt.seq,
        note: IDENTITY_PROVIDER_NOTE,
    })
}

fn check_action(event: &AuditEvent, action: Action) -> Result<()> {
    if event.action != action || event.outcome != Outcome::Success {
        return Err(Error::Invalid("event: not this request's action"));
    }
    Ok(())
}

fn summary(manifest: &Manifest, email: &str) -> String {
    let mut out = format!(
        "Personal data held about {email} (user {}) in organisation {}, exported {}.\n",
        manifest.user_id, manifest.org, manifest.generated_at
    );
    for s in &manifest.sections {
        out.push_str(&format!(
            "- {}: {} record(s); {}; kept: {}\n",
            s.name, s.rows, s.purpose, s.retention
        ));
    }
    out.push_str("Not included:\n");
    for w in &manifest.withheld {
        out.push_str(&format!("- {w}\n"));
    }
    out
}

/// An audit event as exported: personal fields opened, or `"erased"`.
pub(crate) fn event_json(stored: &StoredEvent) -> Value {
    let e = &stored.event;
    let personal = match &stored.personal {
        PersonalView::Readable(p) => json!({
            "email": p.email, "display_name": p.display_name,
            "source": p.context.source.map(|s| s.to_string()),
            "user_agent": p.context.user_agent,
        }),
        PersonalView::Erased => json!("erased"),
        _ => Value::Null,
    };
    json!({
        "seq": e.seq,
        "at": e.at.format(&Rfc3339).ok(),
        "actor": e.actor,
        "action": e.action.as_str(),
        "target": e.target,
        "outcome": e.outcome.as_str(),
        "context": serde_json::from_str::<Value>(&e.context).unwrap_or(Value::Null),
        "request_id": e.request_id,
        "personal": personal,
        "hash": hex(&e.hash),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
