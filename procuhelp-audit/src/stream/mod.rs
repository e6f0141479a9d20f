//! The audit stream: every event of every chain shipped, once and in order, to a log
//! pipeline outside the database — the "collected centrally" half of the audit trail.
//!
//! [`StreamEvent`] is the message: one JSON object per event, schema
//! [`STREAM_SCHEMA`], documented in `docs/observability.md` with its mapping to OCSF.
//! The chain's own hashes travel with each event, so a consumer can check that it has
//! every event of a chain and that none was changed on the way (`prev_hash` of event
//! `n` is `hash` of event `n - 1`). Personal data stays sealed in the database: a
//! message says only whether the event has any (`personal`) and the pseudonymous
//! `subject`.
//!
//! With the `nats` feature, [`NatsAuditStream`] publishes to NATS JetStream; the database
//! is its outbox, so an event is published only after it is durable, and a NATS outage
//! delays the stream without touching audit writes.
//!
//! ```
//! use procuhelp_audit::{STREAM_SCHEMA, StreamEvent};
//! let json = r#"{"schema":"procuhelp.audit.event/1","org_id":"0191d2a4-6c1e-7a41-8d6a-111111111111",
//!   "seq":1,"time":"2026-12-04T10:00:00Z","action":"auth.login_failed","outcome":"failure",
//!   "actor":{"kind":"system","id":null},"target":null,"request_id":null,"subject":null,
//!   "personal":false,"context":{},"prev_hash":"00","hash":"01",
//!   "ocsf":{"category_uid":3,"class_uid":3002,"activity_id":1,"type_uid":300201,"status_id":2,"severity_id":2,"time":1796378400000}}"#;
//! let event: StreamEvent = serde_json::from_str(json).unwrap();
//! assert_eq!(event.schema, STREAM_SCHEMA);
//! assert_eq!(event.ocsf.class_uid, 3002); // OCSF Authentication
//! ```

#[cfg(feature = "nats")]
mod nats;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

#[cfg(feature = "nats")]
pub use nats::{NatsAuditStream, NatsStreamConfig, StreamNudge, StreamStats};

/// The `schema` of every [`StreamEvent`]; a change that breaks consumers changes it.
pub const STREAM_SCHEMA: &str = "procuhelp.audit.event/1";

/// One audit event as the stream carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamEvent {
    /// Always [`STREAM_SCHEMA`].
    pub schema: String,
    /// The organisation whose chain holds the event (the system chain's for system events).
    pub org_id: Uuid,
    /// Its sequence number in that chain (1, 2, 3, … without gaps).
    pub seq: u64,
    /// When it happened.
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// What happened (`auth.login_failed`, `supplier.created`, …).
    pub action: String,
    /// `success`, `failure` or `denied`.
    pub outcome: String,
    /// Who did it.
    pub actor: StreamActor,
    /// What it was done to, when the event names it.
    pub target: Option<String>,
    /// The request it happened in (the access log's `request_id`).
    pub request_id: Option<String>,
    /// The pseudonymous subject of the event's personal data.
    pub subject: Option<String>,
    /// Whether the event carries personal data (sealed; never in the stream).
    pub personal: bool,
    /// The event's context, as recorded (canonical JSON, no personal data).
    pub context: serde_json::Value,
    /// The previous event's hash in the chain (hex).
    pub prev_hash: String,
    /// This event's hash (hex).
    pub hash: String,
    /// The event classified in OCSF terms, for SIEMs that speak it.
    pub ocsf: Ocsf,
}

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamActor {
    /// `user`, `service_account` or `system`.
    pub kind: String,
    /// The user's or service account's id.
    pub id: Option<Uuid>,
}

/// The OCSF (Open Cybersecurity Schema Framework 1.x) classification of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ocsf {
    /// 3 (Identity & Access Management) or 6 (Application Activity).
    pub category_uid: u32,
    /// 3001 Account Change, 3002 Authentication, 3005 User Access Management, 6003 API
    /// Activity.
    pub class_uid: u32,
    /// The activity within the class (99: Other).
    pub activity_id: u32,
    /// `class_uid * 100 + activity_id`.
    pub type_uid: u64,
    /// 1 Success, 2 Failure (failed and denied alike).
    pub status_id: u8,
    /// 1 Informational, 2 Low (a failure or refusal), 3 Medium (a lock, a destruction).
    pub severity_id: u8,
    /// The event's time in milliseconds since the Unix epoch.
    pub time: i64,
}

impl Ocsf {
    /// Classifies `action` with `outcome` at `at`.
    pub fn classify(action: &str, outcome: &str, at: OffsetDateTime) -> Self {
        let (category_uid, class_uid, activity_id) = match action {
            "auth.login_succeeded" | "auth.login_failed" | "auth.mfa_step_up" => (3, 3002, 1),
            "auth.logout" | "session.revoked" | "session.revoked_all" => (3, 3002, 2),
            a if a.starts_with("auth.") => (3, 3001, 99),
            "user.created" | "user.invitation_accepted" | "scim.user_provisioned" => (3, 3001, 1),
            "user.enabled" | "scim.user_reactivated" => (3, 3001, 2),
            "user.disabled" | "scim.user_deprovisioned" => (3, 3001, 5),
            "user.role_changed" | "scim.group_changed" => (3, 3005, 1),
            a if a.starts_with("elevation.") => (3, 3005, 99),
            a if a.starts_with("user.")
                || a.starts_with("scim.")
                || a.starts_with("api_token.") =>
            {
                (3, 3001, 99)
            }
            a if a.ends_with(".created") => (6, 6003, 1),
            "audit.read" | "audit.exported" | "secret.accessed" | "personal_data.exported" => {
                (6, 6003, 2)
            }
            a if a.ends_with(".updated") || a.ends_with(".changed") => (6, 6003, 3),
            a if a.ends_with(".deleted") || a.ends_with(".erased") || a.ends_with(".purged") => {
                (6, 6003, 4)
            }
            _ => (6, 6003, 99),
        };
        let failed = outcome != "success";
        let severe = matches!(
            action,
            "auth.account_locked" | "org.offboarded" | "audit.person_erased" | "backup.overdue"
        );
        Self {
            category_uid,
            class_uid,
            activity_id,
            type_uid: u64::from(class_uid) * 100 + u64::from(activity_id),
            status_id: if failed { 2 } else { 1 },
            severity_id: if severe {
                3
            } else if failed {
                2
            } else {
                1
            },
            time: i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_ins_are_ocsf_authentication_and_failures_say_so() {
        let at = OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(1500);
        let failed = Ocsf::classify("auth.login_failed", "failure", at);
        assert_eq!(
            (failed.class_uid, failed.activity_id, failed.type_uid),
            (3002, 1, 300_201)
        );
        assert_eq!(
            (failed.status_id, failed.severity_id, failed.time),
            (2, 2, 1500)
        );
        let ok = Ocsf::classify("auth.login_succeeded", "success", at);
        assert_eq!((ok.status_id, ok.severity_id), (1, 1));
        assert_eq!(Ocsf::classify("auth.logout", "success", at).activity_id, 2);
        assert_eq!(
            Ocsf::classify("auth.account_locked", "success", at).severity_id,
            3
        );
    }

    #[test]
    fn application_actions_map_to_api_activity_by_verb() {
        let at = OffsetDateTime::UNIX_EPOCH;
        let class = |a: &str| {
            let o = Ocsf::classify(a, "success", at);
            (o.class_uid, o.activity_id)
        };
        assert_eq!(class("supplier.created"), (6003, 1));
        assert_eq!(class("audit.exported"), (6003, 2));
        assert_eq!(class("contract.changed"), (6003, 3));
        assert_eq!(class("supplier.deleted"), (6003, 4));
        assert_eq!(class("backup.taken"), (6003, 99));
        assert_eq!(class("user.role_changed"), (3005, 1));
        assert_eq!(class("scim.user_deprovisioned"), (3001, 5));
    }
}
