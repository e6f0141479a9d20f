//! PATCH of a Group: members added, removed (Entra's member-in-`value` form and the RFC's
//! filter form) or replaced, `displayName` and `externalId` — never every member removed
//! by a malformed request.

use serde_json::Value;

use super::ops::{MAX_OPERATIONS, Op, PatchError, err, operations, parse_json, text};
use crate::scim::model::MAX_VALUE_CHARS;

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
