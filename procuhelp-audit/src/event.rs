//! The audit event: who did what to which target, how it ended, when, and in what context.

use std::fmt;
use std::net::IpAddr;

use procuhelp_core::{OrgId, UserId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Action, AuditError, Outcome, Result, canonical};

/// The largest serialized (canonical JSON) context, in bytes.
pub const MAX_CONTEXT_BYTES: usize = 16 * 1024;
/// The largest target, in bytes.
pub const MAX_TARGET_BYTES: usize = 512;
/// The largest request id, in bytes.
pub const MAX_REQUEST_ID_BYTES: usize = 128;
/// The longest user agent kept, in characters (longer ones are truncated).
pub const MAX_USER_AGENT_CHARS: usize = 256;
/// The largest e-mail address, in bytes.
pub const MAX_EMAIL_BYTES: usize = 320;
/// The largest display name, in bytes.
pub const MAX_DISPLAY_NAME_BYTES: usize = 256;
/// The largest subject, in bytes.
pub const MAX_SUBJECT_BYTES: usize = 128;

/// Who acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Actor {
    /// A signed-in user.
    User {
        /// The user.
        id: UserId,
    },
    /// A machine identity (API token, SCIM client).
    ServiceAccount {
        /// The service account.
        id: Uuid,
    },
    /// The server itself (start-up, migrations, scheduled jobs, expiry).
    System,
}

impl Actor {
    /// The stable kind string: `user`, `service_account`, `system`.
    pub const fn kind(&self) -> &'static str {
        match self {
            Actor::User { .. } => "user",
            Actor::ServiceAccount { .. } => "service_account",
            Actor::System => "system",
        }
    }

    /// The actor's id, when it has one.
    pub fn id(&self) -> Option<Uuid> {
        match self {
            Actor::User { id } => Some(id.as_uuid()),
            Actor::ServiceAccount { id } => Some(*id),
            Actor::System => None,
        }
    }

    /// Rebuilds an actor from its kind and id (as stored or exported).
    pub fn from_parts(kind: &str, id: Option<Uuid>) -> Result<Self> {
        let invalid = |reason| AuditError::Invalid {
            field: "actor",
            reason,
        };
        match (kind, id) {
            ("user", Some(id)) => Ok(Actor::User {
                id: UserId::from_uuid(id).map_err(|_| invalid("nil user id"))?,
            }),
            ("service_account", Some(id)) => Ok(Actor::ServiceAccount { id }),
            ("system", None) => Ok(Actor::System),
            ("user" | "service_account", None) => Err(invalid("missing actor id")),
            ("system", Some(_)) => Err(invalid("the system actor has no id")),
            _ => Err(invalid("unknown actor kind")),
        }
    }
}

/// Where the actor acted from. Personal data: stored encrypted under the person's key.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActorContext {
    /// The client's address, when known.
    pub source: Option<IpAddr>,
    /// The client's user agent, truncated to [`MAX_USER_AGENT_CHARS`] characters.
    pub user_agent: Option<String>,
}

impl ActorContext {
    /// A context; the user agent is truncated to [`MAX_USER_AGENT_CHARS`] characters.
    pub fn new(source: Option<IpAddr>, user_agent: Option<&str>) -> Self {
        Self {
            source,
            user_agent: user_agent.map(truncate_chars),
        }
    }

    /// Whether neither field is set.
    pub fn is_empty(&self) -> bool {
        self.source.is_none() && self.user_agent.is_none()
    }
}

fn truncate_chars(s: &str) -> String {
    s.chars().take(MAX_USER_AGENT_CHARS).collect()
}

impl fmt::Debug for ActorContext {
    // Personal data stays out of logs: only which fields are present.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActorContext")
            .field("source", &self.source.map(|_| "<redacted>"))
            .field(
                "user_agent",
                &self.user_agent.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// The person personal data belongs to: an opaque, pseudonymous identifier (usually the
/// user id), stored in clear so that the person's key can be found and destroyed.
///
/// 1–128 bytes of printable ASCII without spaces.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Subject(pub(crate) String);

impl Subject {
    /// Validates a subject.
    pub fn new(subject: &str) -> Result<Self> {
        if subject.is_empty() || subject.len() > MAX_SUBJECT_BYTES {
            return Err(AuditError::Invalid {
                field: "subject",
                reason: "must be 1-128 bytes",
            });
        }
        if !subject.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(AuditError::Invalid {
                field: "subject",
                reason: "must be printable ASCII without spaces",
            });
        }
        Ok(Self(subject.to_owned()))
    }

    /// The subject string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<UserId> for Subject {
    fn from(id: UserId) -> Self {
        Self(id.to_string())
    }
}

impl TryFrom<String> for Subject {
    type Error = AuditError;
    fn try_from(s: String) -> Result<Self> {
        Self::new(&s)
    }
}

impl From<Subject> for String {
    fn from(s: Subject) -> Self {
        s.0
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The personal data of an event, kept apart so the PostgreSQL sink can encrypt it under
/// a per-person key (and erase it by destroying that key).
///
/// `Debug` prints only which fields are present.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonalData {
    /// Whose data this is. When `None`, the PostgreSQL sink uses the acting user, or a
    /// per-organisation, per-day "unattributed" key (see `docs/audit.md`).
    pub subject: Option<Subject>,
    /// The person's e-mail address (or the attempted login name on a failed sign-in).
    pub email: Option<String>,
    /// The person's display name.
    pub display_name: Option<String>,
    /// Source address and user agent.
    pub context: ActorContext,
}

impl PersonalData {
    /// Whether there is no personal data to protect (the subject alone is pseudonymous).
    pub fn is_empty(&self) -> bool {
        self.email.is_none() && self.display_name.is_none() && self.context.is_empty()
    }
}

impl fmt::Debug for PersonalData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PersonalData")
            .field("subject", &self.subject)
            .field("email", &self.email.as_ref().map(|_| "<redacted>"))
            .field(
                "display_name",
                &self.display_name.as_ref().map(|_| "<redacted>"),
            )
            .field("context", &self.context)
            .finish()
    }
}

/// One audited action.
///
/// ```
/// use procuhelp_audit::{Action, Actor, AuditEvent, Outcome};
/// use procuhelp_core::{OrgId, UserId};
///
/// let user = UserId::new();
/// let event = AuditEvent::new(Some(OrgId::new()), Actor::User { id: user }, Action::SupplierInvited, Outcome::Success)
///     .target("supplier:0191d2a4-6c1e-7a41-9c55-0d1b2f3e4a5b")
///     .context(serde_json::json!({"email_domain": "acme.example"}))
///     .request_id("req-42")
///     .source(Some("192.0.2.7".parse().unwrap()), Some("Mozilla/5.0"))
///     .person(user, Some("ada@example.com"), Some("Ada"));
/// assert!(event.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// The organisation; `None` for system-wide events (they go to the system chain).
    pub org: Option<OrgId>,
    /// Who acted.
    pub actor: Actor,
    /// What was done.
    pub action: Action,
    /// What it was done to (`supplier:<id>`, `user:<id>`), at most [`MAX_TARGET_BYTES`].
    pub target: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// Details, as JSON; at most [`MAX_CONTEXT_BYTES`] once serialized. Never secrets;
    /// personal data belongs in [`personal`](Self::personal).
    pub context: serde_json::Value,
    /// The request that caused it, at most [`MAX_REQUEST_ID_BYTES`].
    pub request_id: Option<String>,
    /// When, in UTC, to the microsecond.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Personal data, encrypted per person by the PostgreSQL sink.
    pub personal: PersonalData,
}

impl AuditEvent {
    /// An event happening now, with an empty context.
    pub fn new(org: Option<OrgId>, actor: Actor, action: Action, outcome: Outcome) -> Self {
        Self {
            org,
            actor,
            action,
            target: None,
            outcome,
            context: serde_json::Value::Object(serde_json::Map::new()),
            request_id: None,
            at: normalise_time(OffsetDateTime::now_utc()),
            personal: PersonalData::default(),
        }
    }

    /// Sets the target.
    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    /// Sets the context.
    pub fn context(mut self, context: serde_json::Value) -> Self {
        self.context = context;
        self
    }

    /// Sets the request id.
    pub fn request_id(mut self, request_id: impl Into<String>) -> Self {
        self.request_id = Some(request_id.into());
        self
    }

    /// Sets the source address and user agent (truncated to [`MAX_USER_AGENT_CHARS`]).
    pub fn source(mut self, source: Option<IpAddr>, user_agent: Option<&str>) -> Self {
        self.personal.context = ActorContext::new(source, user_agent);
        self
    }

    /// Names the person this event's personal data belongs to, with their e-mail and
    /// display name.
    pub fn person(
        mut self,
        subject: impl Into<Subject>,
        email: Option<&str>,
        display_name: Option<&str>,
    ) -> Self {
        self.personal.subject = Some(subject.into());
        self.personal.email = email.map(str::to_owned);
        self.personal.display_name = display_name.map(str::to_owned);
        self
    }

    /// Sets the time (converted to UTC and truncated to microseconds, the precision it
    /// is stored and hashed with).
    pub fn at(mut self, at: OffsetDateTime) -> Self {
        self.at = normalise_time(at);
        self
    }

    /// The canonical JSON of the context (what is stored and hashed).
    pub fn context_json(&self) -> String {
        canonical::to_string(&self.context)
    }

    /// Checks sizes and characters. Every sink calls this before recording, so a bad
    /// event is refused before anything is written.
    pub fn validate(&self) -> Result<()> {
        self.validated_context().map(drop)
    }

    /// [`validate`](Self::validate), returning the canonical context it computed (the
    /// chained sinks hash it: computed once per event).
    pub(crate) fn validated_context(&self) -> Result<String> {
        check_text("target", self.target.as_deref(), MAX_TARGET_BYTES)?;
        check_text(
            "request_id",
            self.request_id.as_deref(),
            MAX_REQUEST_ID_BYTES,
        )?;
        check_size("email", self.personal.email.as_deref(), MAX_EMAIL_BYTES)?;
        check_size(
            "display_name",
            self.personal.display_name.as_deref(),
            MAX_DISPLAY_NAME_BYTES,
        )?;
        if let Some(ua) = &self.personal.context.user_agent
            && ua.chars().count() > MAX_USER_AGENT_CHARS
        {
            return Err(AuditError::TooLarge {
                field: "user_agent",
                limit: MAX_USER_AGENT_CHARS,
                actual: ua.chars().count(),
            });
        }
        let context = self.context_json();
        if context.len() > MAX_CONTEXT_BYTES {
            return Err(AuditError::TooLarge {
                field: "context",
                limit: MAX_CONTEXT_BYTES,
                actual: context.len(),
            });
        }
        if self.at.offset() != time::UtcOffset::UTC || !self.at.nanosecond().is_multiple_of(1000) {
            return Err(AuditError::Invalid {
                field: "at",
                reason: "must be UTC with microsecond precision (use AuditEvent::at)",
            });
        }
        Ok(context)
    }
}

/// UTC, truncated to microseconds (PostgreSQL's `timestamptz` precision), so the time
/// hashed at append is the time read back at verification.
pub(crate) fn normalise_time(at: OffsetDateTime) -> OffsetDateTime {
    let at = at.to_offset(time::UtcOffset::UTC);
    let micros = at.nanosecond() / 1000 * 1000;
    at.replace_nanosecond(micros).unwrap_or(at)
}

fn check_size(field: &'static str, value: Option<&str>, limit: usize) -> Result<()> {
    match value {
        Some(v) if v.len() > limit => Err(AuditError::TooLarge {
            field,
            limit,
            actual: v.len(),
        }),
        _ => Ok(()),
    }
}

fn check_text(field: &'static str, value: Option<&str>, limit: usize) -> Result<()> {
    check_size(field, value, limit)?;
    if value.is_some_and(|v| v.chars().any(char::is_control)) {
        return Err(AuditError::Invalid {
            field,
            reason: "control characters are not allowed",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event() -> AuditEvent {
        AuditEvent::new(
            Some(OrgId::new()),
            Actor::System,
            Action::AdminCommand,
            Outcome::Success,
        )
    }

    #[test]
    fn oversized_context_is_refused_with_its_size() {
        let e = event().context(json!({"x": "a".repeat(MAX_CONTEXT_BYTES)}));
        match e.validate() {
            Err(AuditError::TooLarge {
                field: "context",
                limit,
                actual,
            }) => {
                assert_eq!(limit, MAX_CONTEXT_BYTES);
                assert!(actual > MAX_CONTEXT_BYTES);
            }
            other => panic!("{other:?}"),
        }
        assert!(
            event()
                .context(json!({"x": "a".repeat(MAX_CONTEXT_BYTES - 20)}))
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn user_agent_is_truncated_on_a_char_boundary() {
        let ua = "é".repeat(300);
        let e = event().source(None, Some(&ua));
        let kept = e.personal.context.user_agent.clone().unwrap_or_default();
        assert_eq!(kept.chars().count(), MAX_USER_AGENT_CHARS);
        assert!(e.validate().is_ok());
    }

    #[test]
    fn fields_are_checked() {
        assert!(matches!(
            event().target("t".repeat(513)).validate(),
            Err(AuditError::TooLarge {
                field: "target",
                ..
            })
        ));
        assert!(matches!(
            event().target("a\u{0}b").validate(),
            Err(AuditError::Invalid {
                field: "target",
                ..
            })
        ));
        assert!(matches!(
            event().request_id("a\nb").validate(),
            Err(AuditError::Invalid {
                field: "request_id",
                ..
            })
        ));
        let mut e = event();
        e.at = OffsetDateTime::now_utc()
            .replace_nanosecond(1)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        assert!(matches!(
            e.validate(),
            Err(AuditError::Invalid { field: "at", .. })
        ));
        assert!(Subject::new("").is_err());
        assert!(Subject::new("a b").is_err());
        assert!(Subject::new(&"a".repeat(129)).is_err());
    }

    #[test]
    fn time_is_normalised_to_utc_microseconds() {
        let t = time::macros::datetime!(2024-05-01 12:00:00.123456789 +02:00);
        let e = event().at(t);
        assert_eq!(e.at.offset(), time::UtcOffset::UTC);
        assert_eq!(e.at.nanosecond(), 123_456_000);
        assert_eq!(
            e.at,
            time::macros::datetime!(2024-05-01 10:00:00.123456 UTC)
        );
    }

    #[test]
    fn debug_hides_personal_data() {
        let e = event()
            .source(
                Some("192.0.2.1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))),
                Some("UA-xyz"),
            )
            .person(UserId::new(), Some("ada@example.com"), Some("Ada Lovelace"));
        let d = format!("{e:?}");
        for secret in ["192.0.2.1", "UA-xyz", "ada@example.com", "Ada Lovelace"] {
            assert!(!d.contains(secret), "{secret} in {d}");
        }
    }

    #[test]
    fn actors_rebuild_from_parts() {
        let u = UserId::new();
        for a in [
            Actor::User { id: u },
            Actor::ServiceAccount { id: Uuid::now_v7() },
            Actor::System,
        ] {
            assert_eq!(Actor::from_parts(a.kind(), a.id()).ok(), Some(a));
        }
        assert!(Actor::from_parts("robot", None).is_err());
        assert!(Actor::from_parts("user", None).is_err());
        assert!(Actor::from_parts("system", Some(Uuid::now_v7())).is_err());
    }

    #[test]
    fn events_round_trip_through_json() {
        let e = event()
            .target("x")
            .context(json!({"b": 1, "a": [1, 2]}))
            .person(UserId::new(), Some("e@x"), None);
        let s = serde_json::to_string(&e).unwrap_or_default();
        let back: AuditEvent = serde_json::from_str(&s).unwrap_or_else(|_| event());
        assert_eq!(back, e);
    }
}
