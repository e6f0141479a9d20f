//! A parsed PATCH applied to a user's attributes in memory: nothing is stored here, so a
//! body that fails halfway changes nothing.

use serde_json::json;

use crate::directory::Email;
use crate::scim::error::{ScimError, ScimResult};
use crate::scim::model::{EmailEntry, UserInput, parse_emails};
use crate::scim::patch::{UserAttribute, UserChange};

/// Applies `change` to `next`; an address that is not one, or an emails list over the
/// limits, refuses it.
pub(super) fn apply_user_change(next: &mut UserInput, change: &UserChange) -> ScimResult<()> {
    match change {
        UserChange::Active(a) => next.active = Some(*a),
        UserChange::UserName(v) => next.user_name = v.trim().to_owned(),
        UserChange::DisplayName(v) => next.display_name = Some(v.trim().to_owned()),
        UserChange::ExternalId(v) => next.external_id = Some(v.trim().to_owned()),
        UserChange::GivenName(v) => next.given_name = Some(v.trim().to_owned()),
        UserChange::FamilyName(v) => next.family_name = Some(v.trim().to_owned()),
        UserChange::WorkEmail(v) => {
            Email::parse(v).map_err(|_| ScimError::invalid_value("invalid e-mail address"))?;
            let value = v.trim().to_owned();
            match next.emails.iter_mut().find(|e| {
                e.kind
                    .as_deref()
                    .is_some_and(|k| k.eq_ignore_ascii_case("work"))
            }) {
                Some(e) => e.value = value,
                None => {
                    let primary = !next.emails.iter().any(|e| e.primary == Some(true));
                    next.emails.push(EmailEntry {
                        value,
                        kind: Some("work".to_owned()),
                        primary: Some(primary),
                    });
                }
            }
        }
        UserChange::Emails { replace, value } => {
            let emails = parse_emails(Some(value))?;
            if *replace {
                next.emails = emails;
            } else {
                for e in emails {
                    match next
                        .emails
                        .iter_mut()
                        .find(|x| x.value.eq_ignore_ascii_case(&e.value))
                    {
                        Some(x) => *x = e,
                        None => next.emails.push(e),
                    }
                }
            }
            // Re-check the limits on the merged list.
            parse_emails(Some(&json!(next.emails)))?;
        }
        UserChange::Remove(attr) => match attr {
            UserAttribute::ExternalId => next.external_id = None,
            UserAttribute::DisplayName => next.display_name = None,
            UserAttribute::Name => {
                next.given_name = None;
                next.family_name = None;
            }
            UserAttribute::GivenName => next.given_name = None,
            UserAttribute::FamilyName => next.family_name = None,
            UserAttribute::Emails => next.emails.clear(),
        },
    }
    Ok(())
}
