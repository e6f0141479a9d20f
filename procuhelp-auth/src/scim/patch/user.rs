//! PATCH of a User: attribute paths (Entra's work-email filter path included), path-less
//! `replace` with an object, and the removable optional attributes.

use serde_json::{Map, Value};

use super::ops::{Op, PatchError, boolean, err, operations, parse_json, text};
use crate::scim::model::IGNORED_USER_ATTRIBUTES;

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
