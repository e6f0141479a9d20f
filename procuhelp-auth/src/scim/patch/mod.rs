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
//! (a [`PatchError`] becomes a 400 [`ScimError`]); neither depends on this module.

use serde_json::{Map, Value};

use super::error::ScimError;
use super::model::{IGNORED_USER_ATTRIBUTES, MAX_VALUE_CHARS};

/// The PatchOp message schema.
pub const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// Most operations in one body.
pub const MAX_OPERATIONS: usize = 1000;

/// Why a PATCH body was refused (RFC 7644 §3.12 `scimType`, with the operation index).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{scim_type}: {detail}{}", op.map(|i| format!(" (operation {i})")).unwrap_or_default())]
pub struct PatchError {
    /// `invalidSyntax`, `invalidPath`, `invalidValue`, `noTarget` or `tooMany`.
    pub scim_type: &'static str,
    /// What is wrong.
    pub detail: &'static str,
    /// The index of the offending operation, if one.
    pub op: Option<usize>,
}

impl From<PatchError> for ScimError {
    fn from(e: PatchError) -> Self {
        Self::bad_request(e.scim_type, e.detail)
    }
}

fn err(scim_type: &'static str, detail: &'static str, op: Option<usize>) -> PatchError {
    PatchError {
        scim_type,
        detail,
        op,
    }
}

/// One change to a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserChange {
    /// `active`: false deprovisions (disables and revokes every session).
    Active(bool),
    /// `userName`.
    UserName(String),
    /// `displayName`.
    DisplayName(String),
    /// `externalId`.
    ExternalId(String),
    /// The work email (`emails[type eq "work"].value`).
    WorkEmail(String),
    /// `name.givenName`.
    GivenName(String),
    /// `name.familyName`.
    FamilyName(String),
    /// `emails` added to (`add`) or replaced (`replace`): the raw array, checked
    /// address by address before anything is stored.
    Emails {
        /// `replace` (true) or `add` (false).
        replace: bool,
        /// The array as sent.
        value: Value,
    },
    /// An optional attribute removed (`remove`).
    Remove(UserAttribute),
}

/// An optional user attribute that a `remove` operation may clear. `userName` and
/// `active` cannot be removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserAttribute {
    /// `externalId`.
    ExternalId,
    /// `displayName`.
    DisplayName,
    /// `name` (both parts).
    Name,
    /// `name.givenName`.
    GivenName,
    /// `name.familyName`.
    FamilyName,
    /// `emails` (all of them).
    Emails,
}

/// One change to a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupChange {
    /// Add these member ids.
    AddMembers(Vec<String>),
    /// Remove these member ids.
    RemoveMembers(Vec<String>),
    /// Replace the whole member list.
    ReplaceMembers(Vec<String>),
    /// `displayName`.
    DisplayName(String),
    /// `externalId` set.
    ExternalId(String),
    /// `externalId` removed.
    RemoveExternalId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Replace,
    Remove,
}

struct Operation<'a> {
    index: usize,
    op: Op,
    path: Option<&'a str>,
    value: Option<&'a Value>,
}

fn operations(body: &Value) -> Result<Vec<Operation<'_>>, PatchError> {
    let syntax = |detail| err("invalidSyntax", detail, None);
    let obj = body
        .as_object()
        .ok_or(syntax("body must be a JSON object"))?;
    let schemas = obj
        .get("schemas")
        .and_then(Value::as_array)
        .ok_or(syntax("schemas missing"))?;
    if !schemas.iter().any(|s| s.as_str() == Some(PATCH_OP_SCHEMA)) {
        return Err(syntax("schemas must list the PatchOp schema"));
    }
    // Entra sends "Operations"; the RFC's examples too. Accept any case of the key.
    let ops = obj
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("operations"))
        .and_then(|(_, v)| v.as_array())
        .ok_or(syntax("Operations missing"))?;
    if ops.is_empty() {
        return Err(syntax("Operations is empty"));
    }
    if ops.len() > MAX_OPERATIONS {
        return Err(err("tooMany", "too many operations", None));
    }
    ops.iter()
        .enumerate()
        .map(|(index, raw)| {
            let o = raw.as_object().ok_or(err(
                "invalidSyntax",
                "operation must be an object",
                Some(index),
            ))?;
            let op = match o
                .get("op")
                .and_then(Value::as_str)
                .map(str::to_ascii_lowercase)
            {
                Some(op) if op == "add" => Op::Add,
                Some(op) if op == "replace" => Op::Replace,
                Some(op) if op == "remove" => Op::Remove,
                _ => {
                    return Err(err(
                        "invalidSyntax",
                        "op must be add, replace or remove",
                        Some(index),
                    ));
                }
            };
            let path = match o.get("path") {
                None | Some(Value::Null) => None,
                Some(Value::String(p)) if p.len() <= MAX_VALUE_CHARS => Some(p.as_str()),
                Some(_) => return Err(err("invalidPath", "path must be a string", Some(index))),
            };
            Ok(Operation {
                index,
                op,
                path,
                value: o.get("value"),
            })
        })
        .collect()
}

fn parse_json(body: &[u8]) -> Result<Value, PatchError> {
    serde_json::from_slice(body).map_err(|_| err("invalidSyntax", "body is not valid JSON", None))
}

fn text(value: Option<&Value>, index: usize) -> Result<String, PatchError> {
    match value {
        Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= MAX_VALUE_CHARS => {
            Ok(s.clone())
        }
        _ => Err(err(
            "invalidValue",
            "expected a non-empty string",
            Some(index),
        )),
    }
}

/// A boolean, or Entra's string form of one (`"True"`, `"false"`).
fn boolean(value: Option<&Value>, index: usize) -> Result<bool, PatchError> {
    match value {
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(err("invalidValue", "expected a boolean", Some(index))),
    }
}

fn user_attribute(
    op: Op,
    path: &str,
    value: Option<&Value>,
    index: usize,
    out: &mut Vec<UserChange>,
) -> Result<(), PatchError> {
    let lower = path.to_ascii_lowercase();
    let lower = lower
        .strip_prefix(USER_SCHEMA_PREFIX)
        .unwrap_or(lower.as_str());
    if lower == "name" {
        // `name` with an object value: its parts.
        let name = value.and_then(Value::as_object).ok_or(err(
            "invalidValue",
            "name must be an object",
            Some(index),
        ))?;
        for (k, v) in name {
            user_attribute(op, &format!("name.{k}"), Some(v), index, out)?;
        }
        return Ok(());
    }
    if lower == "emails" {
        match value {
            Some(v @ Value::Array(_)) => out.push(UserChange::Emails {
                replace: op == Op::Replace,
                value: v.clone(),
            }),
            _ => return Err(err("invalidValue", "emails must be an array", Some(index))),
        }
        return Ok(());
    }
    if lower == "name.formatted" || ignored_attribute(lower) {
        // Derived by Entra from the parts, or a standard attribute we do not store
        // (accepted and ignored, as in POST and PUT, so Entra's default mapping works).
        return Ok(());
    }
    // Entra's work-email path, with or without spaces around `eq`.
    let compact: String = lower.chars().filter(|c| !c.is_whitespace()).collect();
    out.push(match lower {
        "active" => UserChange::Active(boolean(value, index)?),
        "username" => UserChange::UserName(text(value, index)?),
        "displayname" => UserChange::DisplayName(text(value, index)?),
        "externalid" => UserChange::ExternalId(text(value, index)?),
        "name.givenname" => UserChange::GivenName(text(value, index)?),
        "name.familyname" => UserChange::FamilyName(text(value, index)?),
        _ if compact == "emails[typeeq\"work\"].value" => {
            UserChange::WorkEmail(text(value, index)?)
        }
        _ => return Err(err("invalidPath", "unsupported attribute", Some(index))),
    });
    Ok(())
}

const USER_SCHEMA_PREFIX: &str = "urn:ietf:params:scim:schemas:core:2.0:user:";

/// Standard User attributes (RFC 7643 §4.1, and the enterprise extension) that we do not
/// store; `path` is lower-case.
fn ignored_attribute(path: &str) -> bool {
    if path.starts_with("urn:ietf:params:scim:schemas:extension:enterprise:2.0:user") {
        return true;
    }
    let head = path.split(['.', '[']).next().unwrap_or(path);
    IGNORED_USER_ATTRIBUTES.contains(&head)
}

/// The attribute a user `remove` names; `userName`, `active` and unknown paths are refused.
fn removable(path: &str, index: usize) -> Result<UserAttribute, PatchError> {
    let lower = path.trim().to_ascii_lowercase();
    let lower = lower
        .strip_prefix(USER_SCHEMA_PREFIX)
        .unwrap_or(lower.as_str());
    Ok(match lower {
        "externalid" => UserAttribute::ExternalId,
        "displayname" => UserAttribute::DisplayName,
        "name" => UserAttribute::Name,
        "name.givenname" => UserAttribute::GivenName,
        "name.familyname" => UserAttribute::FamilyName,
        "emails" => UserAttribute::Emails,
        _ => {
            return Err(err(
                "invalidPath",
                "this attribute cannot be removed",
                Some(index),
            ));
        }
    })
}

fn user_object(
    op: Op,
    map: &Map<String, Value>,
    index: usize,
    out: &mut Vec<UserChange>,
) -> Result<(), PatchError> {
    for (key, value) in map {
        user_attribute(op, key, Some(value), index, out)?;
    }
    Ok(())
}

/// Parses a PATCH body for a user into changes, or refuses the whole body.
pub fn parse_user_patch(body: &[u8]) -> Result<Vec<UserChange>, PatchError> {
    let json = parse_json(body)?;
    let mut out = Vec::new();
    for op in operations(&json)? {
        match (op.op, op.path) {
            (Op::Remove, Some(path)) => {
                out.push(UserChange::Remove(removable(path, op.index)?));
            }
            (Op::Remove, None) => {
                return Err(err("noTarget", "remove needs a path", Some(op.index)));
            }
            (Op::Add | Op::Replace, Some(path)) => {
                user_attribute(op.op, path, op.value, op.index, &mut out)?
            }
            (Op::Add | Op::Replace, None) => {
                let map = op.value.and_then(Value::as_object).ok_or(err(
                    "invalidValue",
                    "a path-less operation needs an object value",
                    Some(op.index),
                ))?;
                user_object(op.op, map, op.index, &mut out)?;
            }
        }
    }
    Ok(out)
}

fn member_ids(value: Option<&Value>, index: usize) -> Result<Vec<String>, PatchError> {
    let invalid = || {
        err(
            "invalidValue",
            "members must be [{\"value\": id}, ...]",
            Some(index),
        )
    };
    let items = value.and_then(Value::as_array).ok_or_else(invalid)?;
    if items.len() > MAX_OPERATIONS {
        return Err(err(
            "tooMany",
            "too many members in one operation",
            Some(index),
        ));
    }
    items
        .iter()
        .map(|m| text(m.get("value"), index).map_err(|_| invalid()))
        .collect()
}

/// The member id in `members[value eq "ID"]`.
fn member_filter(path: &str) -> Option<&str> {
    let inner = path.strip_prefix("members[")?.strip_suffix(']')?.trim();
    let (attr, rest) = inner.split_once(char::is_whitespace)?;
    let (op, literal) = rest.trim().split_once(char::is_whitespace)?;
    if !attr.eq_ignore_ascii_case("value") || !op.eq_ignore_ascii_case("eq") {
        return None;
    }
    let id = literal.trim().strip_prefix('"')?.strip_suffix('"')?;
    (!id.is_empty() && !id.contains('"') && id.chars().count() <= MAX_VALUE_CHARS).then_some(id)
}

/// Parses a PATCH body for a group into changes, or refuses the whole body.
pub fn parse_group_patch(body: &[u8]) -> Result<Vec<GroupChange>, PatchError> {
    let json = parse_json(body)?;
    let mut out = Vec::new();
    for op in operations(&json)? {
        let path = op.path.map(str::trim);
        let is_members = path.is_some_and(|p| p.eq_ignore_ascii_case("members"));
        match (op.op, path) {
            (Op::Add, _) if is_members => {
                out.push(GroupChange::AddMembers(member_ids(op.value, op.index)?))
            }
            (Op::Replace, _) if is_members => {
                out.push(GroupChange::ReplaceMembers(member_ids(op.value, op.index)?))
            }
            (Op::Remove, _) if is_members => match op.value {
                // Entra: the member to remove is in `value`.
                Some(v) if !v.is_null() => {
                    let ids = member_ids(Some(v), op.index)?;
                    if ids.is_empty() {
                        return Err(err(
                            "noTarget",
                            "refusing to remove every member: name the members to remove",
                            Some(op.index),
                        ));
                    }
                    out.push(GroupChange::RemoveMembers(ids))
                }
                // RFC 7644 §3.5.2.2: `remove` of `members` with no `value` at all empties
                // the group. Only that exact form: a `value` that is null or names no
                // member is a malformed Entra-style removal and is refused.
                None => out.push(GroupChange::ReplaceMembers(Vec::new())),
                Some(_) => {
                    return Err(err(
                        "noTarget",
                        "refusing to remove every member: name the members to remove",
                        Some(op.index),
                    ));
                }
            },
            (Op::Remove, Some(p)) if p.eq_ignore_ascii_case("externalId") => {
                out.push(GroupChange::RemoveExternalId)
            }
            (Op::Remove, Some(p)) => match member_filter(p) {
                Some(id) => out.push(GroupChange::RemoveMembers(vec![id.to_owned()])),
                None => return Err(err("invalidPath", "unsupported path", Some(op.index))),
            },
            (Op::Add | Op::Replace, Some(p)) if p.eq_ignore_ascii_case("displayName") => {
                out.push(GroupChange::DisplayName(text(op.value, op.index)?))
            }
            (Op::Add | Op::Replace, Some(p)) if p.eq_ignore_ascii_case("externalId") => {
                out.push(GroupChange::ExternalId(text(op.value, op.index)?))
            }
            (Op::Add | Op::Replace, None) => {
                let map = op.value.and_then(Value::as_object).ok_or(err(
                    "invalidValue",
                    "a path-less operation needs an object value",
                    Some(op.index),
                ))?;
                for (key, value) in map {
                    if key.eq_ignore_ascii_case("displayName") {
                        out.push(GroupChange::DisplayName(text(Some(value), op.index)?));
                    } else if key.eq_ignore_ascii_case("externalId") {
                        out.push(GroupChange::ExternalId(text(Some(value), op.index)?));
                    } else if key.eq_ignore_ascii_case("members") {
                        let ids = member_ids(Some(value), op.index)?;
                        out.push(if op.op == Op::Add {
                            GroupChange::AddMembers(ids)
                        } else {
                            GroupChange::ReplaceMembers(ids)
                        });
                    } else {
                        return Err(err("invalidPath", "unsupported attribute", Some(op.index)));
                    }
                }
            }
            _ => return Err(err("invalidPath", "unsupported path", Some(op.index))),
        }
    }
    Ok(out)
}

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
