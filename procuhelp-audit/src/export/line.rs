//! One event line of an export: parsed, checked and hashed.

use std::borrow::Cow;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::value::RawValue;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::decode::{hex32, utc_micros};
use super::{Classify as _, bad, utf8};
use crate::chain::{Fields, Hash, unix_micros};
use crate::{Action, Outcome, Result};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LineIn<'a> {
    seq: u64,
    #[serde(borrow)]
    at: Cow<'a, str>,
    #[serde(borrow)]
    actor_kind: Cow<'a, str>,
    actor_id: Option<Uuid>,
    #[serde(borrow)]
    action: Cow<'a, str>,
    #[serde(borrow)]
    target: Option<Cow<'a, str>>,
    #[serde(borrow)]
    outcome: Cow<'a, str>,
    #[serde(borrow)]
    context: &'a RawValue,
    #[serde(borrow)]
    request_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    subject: Option<Cow<'a, str>>,
    person_key: Option<Uuid>,
    #[serde(borrow)]
    personal: Option<Cow<'a, str>>,
    #[serde(borrow)]
    prev_hash: Cow<'a, str>,
    #[serde(borrow)]
    hash: Cow<'a, str>,
}

#[derive(Default)]
pub(super) struct Scratch {
    personal: Vec<u8>,
    encoded: Vec<u8>,
}

/// What the chain check needs from one event line.
pub(super) struct Parsed {
    pub(super) seq: u64,
    pub(super) prev_hash: Hash,
    pub(super) hash: Hash,
    pub(super) computed: Hash,
}

/// Parses one event line and computes its hash.
pub(super) fn parse_event_line(
    bytes: &[u8],
    line: u64,
    org: Uuid,
    scratch: &mut Scratch,
) -> Result<Parsed> {
    let text = utf8(bytes, line)?;
    let ev: LineIn<'_> = serde_json::from_str(text)
        .map_err(|e| bad(line, format!("not an event: {}", e.classify_str())))?;
    // Typed checks: an unknown action or outcome is bad input, not a chain problem.
    ev.action
        .parse::<Action>()
        .map_err(|_| bad(line, "unknown action"))?;
    ev.outcome
        .parse::<Outcome>()
        .map_err(|_| bad(line, "unknown outcome"))?;
    if !matches!(
        ev.actor_kind.as_ref(),
        "user" | "service_account" | "system"
    ) {
        return Err(bad(line, "unknown actor kind"));
    }
    let at_micros = match utc_micros(&ev.at) {
        Some(micros) => micros,
        None => unix_micros(
            OffsetDateTime::parse(&ev.at, &Rfc3339).map_err(|_| bad(line, "at is not RFC 3339"))?,
        ),
    };
    let prev_hash = hex32(&ev.prev_hash, line, "prev_hash")?;
    let hash = hex32(&ev.hash, line, "hash")?;
    scratch.personal.clear();
    let has_personal = match &ev.personal {
        Some(p) => {
            base64::engine::general_purpose::STANDARD
                .decode_vec(p.as_bytes(), &mut scratch.personal)
                .map_err(|_| bad(line, "personal is not base64"))?;
            true
        }
        None => false,
    };
    let fields = Fields {
        org,
        seq: ev.seq,
        prev_hash: &prev_hash,
        at_micros,
        actor_kind: &ev.actor_kind,
        actor_id: ev.actor_id,
        action: &ev.action,
        target: ev.target.as_deref(),
        outcome: &ev.outcome,
        context: ev.context.get(),
        request_id: ev.request_id.as_deref(),
        subject: ev.subject.as_deref(),
        person_key: ev.person_key,
        personal: has_personal.then_some(&scratch.personal[..]),
    };
    let computed = fields.hash_with(&mut scratch.encoded);
    Ok(Parsed {
        seq: ev.seq,
        prev_hash,
        hash,
        computed,
    })
}
