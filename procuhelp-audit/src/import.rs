//! Reading events back from a JSON-lines file (the [`JsonLinesFileSink`] format), for
//! importing them into a chained sink.
//!
//! The whole file is read and checked before anything is appended, so a bad line means
//! nothing is imported: the caller appends the returned events in one transaction
//! ([`PgAuditSink::append_all_in_tx`]).
//!
//! [`JsonLinesFileSink`]: crate::JsonLinesFileSink
//! [`PgAuditSink::append_all_in_tx`]: crate::PgAuditSink

use std::borrow::Cow;
use std::io::BufRead;

use procuhelp_core::OrgId;
use serde::Deserialize;

use crate::export::{Classify as _, bad, read_line, utf8};
use crate::{Action, AuditError, AuditEvent, Outcome, Result};

/// The most events one import takes (they are appended in one transaction).
pub const MAX_IMPORT_EVENTS: usize = 100_000;

/// The two typed strings of a line, read before the whole event so that an unknown
/// action or outcome is reported as such rather than as a generic shape error.
#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(borrow)]
    action: Option<Cow<'a, str>>,
    #[serde(borrow)]
    outcome: Option<Cow<'a, str>>,
}

/// Reads every event of `reader` (one [`AuditEvent`] JSON object per line, as
/// [`JsonLinesFileSink`](crate::JsonLinesFileSink) writes them) and checks each as an
/// append would, for organisation `org`.
///
/// Any problem is [`AuditError::BadInput`] naming the first bad line: invalid UTF-8, a
/// line over [`MAX_LINE_BYTES`](crate::MAX_LINE_BYTES), malformed JSON, an unknown action
/// or outcome, an event of another (or no) organisation, an oversized or invalid field,
/// an empty line, or more than [`MAX_IMPORT_EVENTS`] events. No message quotes the input.
///
/// ```
/// use procuhelp_audit::{Action, Actor, AuditError, AuditEvent, Outcome, read_events};
/// use procuhelp_core::OrgId;
///
/// let org = OrgId::new();
/// let event = AuditEvent::new(Some(org), Actor::System, Action::AdminCommand, Outcome::Success);
/// let good = serde_json::to_string(&event).unwrap();
/// let unknown = good.replace("admin.command", "admin.rm_rf");
///
/// let events = read_events(format!("{good}\n{good}\n").as_bytes(), org)?;
/// assert_eq!(events.len(), 2);
/// match read_events(format!("{good}\n{unknown}\n").as_bytes(), org) {
///     Err(AuditError::BadInput { line, reason }) => {
///         assert_eq!((line, reason.as_str()), (2, "unknown action"));
///     }
///     other => panic!("expected a bad line, got {other:?}"),
/// }
/// # Ok::<(), AuditError>(())
/// ```
pub fn read_events<R: BufRead>(mut reader: R, org: OrgId) -> Result<Vec<AuditEvent>> {
    let mut events = Vec::new();
    let mut buf = Vec::with_capacity(4096);
    let mut line: u64 = 0;
    loop {
        line += 1;
        if !read_line(&mut reader, &mut buf, line, "reading the import")? {
            return Ok(events);
        }
        if events.len() == MAX_IMPORT_EVENTS {
            return Err(bad(
                line,
                format!("more than {MAX_IMPORT_EVENTS} events; split the file"),
            ));
        }
        events.push(parse_line(utf8(&buf, line)?, line, org)?);
    }
}

fn parse_line(text: &str, line: u64, org: OrgId) -> Result<AuditEvent> {
    if text.trim().is_empty() {
        return Err(bad(line, "empty line"));
    }
    let probe: Probe<'_> = serde_json::from_str(text).map_err(|e| not_an_event(line, &e))?;
    if let Some(action) = probe.action
        && action.parse::<Action>().is_err()
    {
        return Err(bad(line, "unknown action"));
    }
    if let Some(outcome) = probe.outcome
        && outcome.parse::<Outcome>().is_err()
    {
        return Err(bad(line, "unknown outcome"));
    }
    let event: AuditEvent = serde_json::from_str(text).map_err(|e| not_an_event(line, &e))?;
    match event.org {
        Some(o) if o == org => {}
        Some(_) => return Err(bad(line, "event of another organisation")),
        None => return Err(bad(line, "event without an organisation")),
    }
    event.validate().map_err(|e| match e {
        // Both describe a field and sizes or a fixed reason, never the value.
        AuditError::TooLarge { .. } | AuditError::Invalid { .. } => bad(line, e.to_string()),
        _ => bad(line, "invalid event"),
    })?;
    Ok(event)
}

fn not_an_event(line: u64, e: &serde_json::Error) -> AuditError {
    bad(line, format!("not an event: {}", e.classify_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Actor, MAX_LINE_BYTES};
    use procuhelp_core::UserId;
    use serde_json::json;

    fn line(org: OrgId, n: usize) -> String {
        let user = UserId::new();
        let event = AuditEvent::new(
            Some(org),
            Actor::User { id: user },
            Action::SupplierInvited,
            Outcome::Success,
        )
        .context(json!({ "n": n }))
        .source(Some("192.0.2.7".parse().unwrap()), Some("ua"))
        .person(user, Some("ada@example.com"), Some("Ada"));
        serde_json::to_string(&event).unwrap()
    }

    fn file(lines: &[String]) -> Vec<u8> {
        let mut out = lines.join("\n").into_bytes();
        out.push(b'\n');
        out
    }

    fn bad_line(input: &[u8], org: OrgId) -> (u64, String) {
        match read_events(input, org) {
            Err(AuditError::BadInput { line, reason }) => (line, reason),
            other => panic!("expected BadInput, got {other:?}"),
        }
    }

    #[test]
    fn reads_back_what_the_file_sink_format_holds() {
        let org = OrgId::new();
        let lines: Vec<String> = (0..5).map(|n| line(org, n)).collect();
        let events = read_events(&file(&lines)[..], org).unwrap();
        assert_eq!(events.len(), 5);
        for (n, e) in events.iter().enumerate() {
            assert_eq!(e.context, json!({ "n": n }));
            assert_eq!(e.personal.email.as_deref(), Some("ada@example.com"));
            assert_eq!(serde_json::to_string(e).unwrap(), lines[n]);
        }
        // No trailing newline is fine too.
        let mut unterminated = file(&lines);
        unterminated.pop();
        assert_eq!(read_events(&unterminated[..], org).unwrap().len(), 5);
    }

    #[test]
    fn each_bad_line_is_named_and_never_quoted() {
        let org = OrgId::new();
        let good = line(org, 0);
        let secret_action = good.replace("supplier.invited", "secret.s3cr3t");
        let secret_outcome = good.replace("\"success\"", "\"s3cr3t\"");
        let huge = line(org, 0).replace(
            "{\"n\":0}",
            &format!("{{\"x\":\"{}\"}}", "a".repeat(crate::MAX_CONTEXT_BYTES)),
        );
        let other_org = line(OrgId::new(), 0);
        let no_org = good.replacen(&format!("\"org\":\"{org}\""), "\"org\":null", 1);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (file(&[good.clone(), secret_action]), "unknown action"),
            (file(&[good.clone(), secret_outcome]), "unknown outcome"),
            (
                file(&[good.clone(), "{\"org\": s3cr3t".into()]),
                "not an event: syntax error",
            ),
            (
                file(&[good.clone(), "{\"org\": \"s3cr3t".into()]),
                "not an event: truncated JSON",
            ),
            (
                file(&[good.clone(), "{\"s3cr3t\": 1}".into()]),
                "not an event: unexpected, missing or invalid field",
            ),
            (
                file(&[good.clone(), other_org]),
                "event of another organisation",
            ),
            (
                file(&[good.clone(), no_org]),
                "event without an organisation",
            ),
            (
                file(&[good.clone(), String::new(), good.clone()]),
                "empty line",
            ),
        ];
        for (input, reason) in cases {
            let (n, got) = bad_line(&input, org);
            assert_eq!((n, got.as_str()), (2, reason));
            assert!(!got.contains("s3cr3t"));
        }
        let (n, reason) = bad_line(&file(&[good.clone(), huge]), org);
        assert_eq!(n, 2);
        assert!(
            reason.contains("context") && reason.contains("limit"),
            "{reason}"
        );

        let mut invalid_utf8 = file(std::slice::from_ref(&good));
        invalid_utf8.extend_from_slice(b"{\"org\": \"\xff\"}\n");
        assert_eq!(bad_line(&invalid_utf8, org), (2, "invalid UTF-8".into()));

        let mut long = file(std::slice::from_ref(&good));
        long.extend(std::iter::repeat_n(b' ', MAX_LINE_BYTES + 10));
        let (n, reason) = bad_line(&long, org);
        assert_eq!(n, 2);
        assert!(reason.starts_with("line longer than"), "{reason}");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)) {
            let org = OrgId::new();
            match read_events(&bytes[..], org) {
                Ok(events) => proptest::prop_assert!(events.iter().all(|e| e.org == Some(org))),
                Err(AuditError::BadInput { line, .. }) => proptest::prop_assert!(line >= 1),
                Err(other) => proptest::prop_assert!(false, "unexpected error {other:?}"),
            }
        }
    }
}
