//! SCIM 2.0 PATCH bodies (RFC 7644 §3.5.2) as Microsoft Entra ID sends them, parsed into
//! typed changes before anything is touched: a body is applied whole or not at all.
//!
//! Entra's quirks handled here: capitalised op names (`"Replace"`), booleans sent as
//! strings (`"False"`), path-less `replace` with an object value, and removing a group
//! member with the member in `value` instead of a path filter. Standard User attributes
//! we do not store (`title`, `phoneNumbers[...]`, the enterprise extension, ...) are
//! accepted and ignored; `remove` clears optional attributes (`externalId`,
//! `displayName`, `name`, `emails`) but never `userName` or `active`. A `remove` of
//! `members` empties the group only in the RFC's exact form (no `value` key at all); with
//! a `value` that is null or names no member it is refused, so that a malformed
//! Entra-style removal can never remove every member by mistake.
//!
//! ```
//! use procuhelp_auth::scim::patch::{UserChange, parse_user_patch};
//!
//! let body = br#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
//!   "Operations":[{"op":"Replace","path":"active","value":"False"}]}"#;
//! assert_eq!(parse_user_patch(body)?, vec![UserChange::Active(false)]);
//! # Ok::<(), procuhelp_auth::scim::patch::PatchError>(())
//! ```
//!
//! Depends on [`super::model`] (the attribute vocabulary and limits) and on `ScimError`
//! (a [`PatchError`] becomes a 400 [`ScimError`](crate::scim::ScimError)); neither depends
//! on this module.
//!
//! Module order: `ops` (the envelope, shared by both) → `user`, `group`. This module only
//! re-exports them.

mod group;
mod ops;
mod user;

pub use group::{GroupChange, parse_group_patch};
pub use ops::{MAX_OPERATIONS, PATCH_OP_SCHEMA, PatchError};
pub use user::{UserAttribute, UserChange, parse_user_patch};

#[cfg(test)]
mod tests {
    use super::*;

    fn body(ops: &str) -> Vec<u8> {
        format!(r#"{{"schemas":["{PATCH_OP_SCHEMA}"],"Operations":{ops}}}"#).into_bytes()
    }

    #[test]
    fn entra_user_deprovisioning_and_attribute_updates() {
        // As Entra sends them: capitalised ops, booleans as strings.
        let b = body(r#"[{"op":"Replace","path":"active","value":"False"}]"#);
        assert_eq!(
            parse_user_patch(&b).unwrap(),
            vec![UserChange::Active(false)]
        );
        let b = body(
            r#"[{"op":"Add","path":"emails[type eq \"work\"].value","value":"ada@contoso.com"},
                {"op":"Replace","path":"name.givenName","value":"Ada"},
                {"op":"Replace","path":"displayName","value":"Ada L"}]"#,
        );
        assert_eq!(
            parse_user_patch(&b).unwrap(),
            vec![
                UserChange::WorkEmail("ada@contoso.com".into()),
                UserChange::GivenName("Ada".into()),
                UserChange::DisplayName("Ada L".into()),
            ]
        );
        let b = body(r#"[{"op":"replace","value":{"active":true,"name":{"familyName":"L"}}}]"#);
        assert_eq!(
            parse_user_patch(&b).unwrap(),
            vec![UserChange::Active(true), UserChange::FamilyName("L".into())]
        );
    }

    #[test]
    fn removals_emails_and_ignored_attributes() {
        let b = body(
            r#"[{"op":"remove","path":"externalId"},{"op":"Remove","path":"name"},
                {"op":"add","path":"emails","value":[{"value":"a@b.c"}]},
                {"op":"Replace","path":"title","value":"CEO"},
                {"op":"Add","path":"phoneNumbers[type eq \"work\"].value","value":"1"},
                {"op":"Replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department","value":"x"},
                {"op":"Replace","path":"name","value":{"givenName":"A","formatted":"A B"}}]"#,
        );
        assert_eq!(
            parse_user_patch(&b).unwrap(),
            vec![
                UserChange::Remove(UserAttribute::ExternalId),
                UserChange::Remove(UserAttribute::Name),
                UserChange::Emails {
                    replace: false,
                    value: serde_json::json!([{"value":"a@b.c"}])
                },
                UserChange::GivenName("A".into()),
            ]
        );
        for ops in [
            r#"[{"op":"Remove","path":"userName"}]"#,
            r#"[{"op":"Remove","path":"active"}]"#,
        ] {
            assert_eq!(
                parse_user_patch(&body(ops)).unwrap_err().scim_type,
                "invalidPath"
            );
        }
        assert_eq!(
            parse_user_patch(&body(r#"[{"op":"Remove"}]"#))
                .unwrap_err()
                .scim_type,
            "noTarget"
        );
        let b = body(
            r#"[{"op":"Replace","path":"externalId","value":"g1"},{"op":"remove","path":"externalId"}]"#,
        );
        assert_eq!(
            parse_group_patch(&b).unwrap(),
            vec![
                GroupChange::ExternalId("g1".into()),
                GroupChange::RemoveExternalId
            ]
        );
    }

    #[test]
    fn entra_group_member_changes_and_no_accidental_remove_all() {
        let b = body(r#"[{"op":"Add","path":"members","value":[{"value":"u1"},{"value":"u2"}]}]"#);
        assert_eq!(
            parse_group_patch(&b).unwrap(),
            vec![GroupChange::AddMembers(vec!["u1".into(), "u2".into()])]
        );
        // Entra's remove: the member in `value`.
        let b = body(r#"[{"op":"Remove","path":"members","value":[{"value":"u1"}]}]"#);
        assert_eq!(
            parse_group_patch(&b).unwrap(),
            vec![GroupChange::RemoveMembers(vec!["u1".into()])]
        );
        // The RFC's filter form.
        let b = body(r#"[{"op":"remove","path":"members[value eq \"u2\"]"}]"#);
        assert_eq!(
            parse_group_patch(&b).unwrap(),
            vec![GroupChange::RemoveMembers(vec!["u2".into()])]
        );
        // The RFC's explicit form (no value key at all) empties the group.
        let b = body(r#"[{"op":"remove","path":"members"}]"#);
        assert_eq!(
            parse_group_patch(&b).unwrap(),
            vec![GroupChange::ReplaceMembers(vec![])]
        );
        // A value that names nobody: refused, never "remove all".
        for ops in [
            r#"[{"op":"Remove","path":"members","value":null}]"#,
            r#"[{"op":"Remove","path":"members","value":[]}]"#,
        ] {
            let e = parse_group_patch(&body(ops)).unwrap_err();
            assert_eq!((e.scim_type, e.op), ("noTarget", Some(0)));
        }
    }

    #[test]
    fn bad_bodies_are_typed_errors_naming_the_operation() {
        let cases: &[(&[u8], &str)] = &[
            (b"not json", "invalidSyntax"),
            (b"[]", "invalidSyntax"),
            (br#"{"Operations":[]}"#, "invalidSyntax"),
            (&body("[]"), "invalidSyntax"),
            (
                &body(r#"[{"op":"Explode","path":"active"}]"#),
                "invalidSyntax",
            ),
            (
                &body(r#"[{"op":"Replace","path":"active","value":"maybe"}]"#),
                "invalidValue",
            ),
            (
                &body(r#"[{"op":"Replace","path":"roles","value":"admin"}]"#),
                "invalidPath",
            ),
            (&body(r#"[{"op":"Remove","path":"active"}]"#), "invalidPath"),
            (
                &body(r#"[{"op":"Replace","path":"userName","value":""}]"#),
                "invalidValue",
            ),
        ];
        for (b, expected) in cases {
            let e = parse_user_patch(b).unwrap_err();
            assert_eq!(e.scim_type, *expected, "{}", String::from_utf8_lossy(b));
        }
        let many = format!(
            "[{}]",
            vec![r#"{"op":"Replace","path":"active","value":true}"#; MAX_OPERATIONS + 1].join(",")
        );
        assert_eq!(
            parse_user_patch(&body(&many)).unwrap_err().scim_type,
            "tooMany"
        );
        // One bad operation refuses the whole body.
        let b = body(
            r#"[{"op":"Replace","path":"active","value":false},{"op":"Replace","path":"x","value":1}]"#,
        );
        assert_eq!(parse_user_patch(&b).unwrap_err().op, Some(1));
    }
}
