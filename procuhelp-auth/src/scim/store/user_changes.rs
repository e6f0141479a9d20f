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

#[cfg(test)]
mod tests {
    use super::*;

    fn ada() -> UserInput {
        UserInput {
            user_name: "ada@contoso.com".into(),
            external_id: Some("oid".into()),
            display_name: Some("Ada".into()),
            given_name: Some("Ada".into()),
            family_name: Some("L".into()),
            emails: vec![EmailEntry {
                value: "home@contoso.com".into(),
                kind: Some("home".into()),
                primary: Some(true),
            }],
            active: None,
        }
    }

    fn apply(changes: &[UserChange]) -> ScimResult<UserInput> {
        let mut next = ada();
        for c in changes {
            apply_user_change(&mut next, c)?;
        }
        Ok(next)
    }

    #[test]
    fn a_work_address_is_added_once_then_replaced_never_stealing_primary() {
        let u = apply(&[UserChange::WorkEmail(" ada@work.example ".into())]).unwrap();
        assert_eq!(u.emails.len(), 2);
        assert_eq!(u.emails[1].value, "ada@work.example");
        assert_eq!(u.emails[1].primary, Some(false));
        let u = apply(&[
            UserChange::WorkEmail("a@work.example".into()),
            UserChange::WorkEmail("b@work.example".into()),
        ])
        .unwrap();
        assert_eq!(u.emails.len(), 2);
        assert_eq!(u.emails[1].value, "b@work.example");
        assert_eq!(
            apply(&[UserChange::WorkEmail("not an address".into())]).unwrap_err(),
            ScimError::invalid_value("invalid e-mail address")
        );
    }

    #[test]
    fn emails_add_merges_by_address_and_replace_replaces() {
        let add = UserChange::Emails {
            replace: false,
            value: json!([{"value": "HOME@contoso.com", "type": "other"}, {"value": "x@contoso.com"}]),
        };
        let u = apply(&[add]).unwrap();
        assert_eq!(u.emails.len(), 2);
        assert_eq!(u.emails[0].kind.as_deref(), Some("other"));
        let replace = UserChange::Emails {
            replace: true,
            value: json!([{"value": "only@contoso.com"}]),
        };
        assert_eq!(apply(&[replace]).unwrap().emails.len(), 1);
        // Two primaries after a merge: refused.
        let add = UserChange::Emails {
            replace: false,
            value: json!([{"value": "second@contoso.com", "primary": true}]),
        };
        assert_eq!(
            apply(&[add]).unwrap_err(),
            ScimError::invalid_value("at most one primary e-mail")
        );
    }

    #[test]
    fn removals_clear_only_optional_attributes() {
        let u = apply(&[
            UserChange::Remove(UserAttribute::Name),
            UserChange::Remove(UserAttribute::ExternalId),
            UserChange::Remove(UserAttribute::Emails),
        ])
        .unwrap();
        assert_eq!(
            (u.given_name, u.family_name, u.external_id),
            (None, None, None)
        );
        assert!(u.emails.is_empty());
        assert_eq!(u.user_name, "ada@contoso.com");
        assert_eq!(u.display_name.as_deref(), Some("Ada"));
        assert_eq!(u.active, None);
    }
}
