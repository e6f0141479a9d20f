//! The Group resource as a client sends it (POST, PUT).

use serde_json::Value;

use super::json::{check_schemas, opt_text, parse_object, text};
use super::schema::{GROUP_SCHEMA, MAX_MEMBERS};
use crate::scim::error::{ScimError, ScimResult};

/// A Group as a client sends it in POST or PUT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInput {
    /// `displayName` (required, unique case-insensitively).
    pub display_name: String,
    /// `externalId`.
    pub external_id: Option<String>,
    /// Member ids (users only).
    pub members: Vec<String>,
}

/// The member ids of a `members` value: `[{"value": id}, ...]`.
pub fn parse_members(value: Option<&Value>) -> ScimResult<Vec<String>> {
    let items = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(ScimError::invalid_value("members must be an array")),
    };
    if items.len() > MAX_MEMBERS {
        return Err(ScimError::bad_request("tooMany", "too many members"));
    }
    let bad = || ScimError::invalid_value("members must be [{\"value\": id}, ...]");
    items
        .iter()
        .map(|m| {
            let obj = m.as_object().ok_or_else(bad)?;
            let mut id = None;
            for (k, v) in obj {
                match k.to_ascii_lowercase().as_str() {
                    "value" => id = Some(text(v.as_str().ok_or_else(bad)?, "invalid member")?),
                    "$ref" | "display" | "type" => {}
                    _ => return Err(bad()),
                }
            }
            id.ok_or_else(bad)
        })
        .collect()
}

/// Parses a Group body (POST or PUT).
pub fn parse_group(body: &[u8]) -> ScimResult<GroupInput> {
    let map = parse_object(body)?;
    check_schemas(&map, GROUP_SCHEMA)?;
    let mut input = GroupInput {
        display_name: String::new(),
        external_id: None,
        members: Vec::new(),
    };
    for (key, value) in &map {
        match key.to_ascii_lowercase().as_str() {
            "schemas" | "id" | "meta" => {}
            "displayname" => {
                input.display_name = opt_text(Some(value), "invalid displayName")?
                    .ok_or(ScimError::invalid_value("displayName is required"))?
            }
            "externalid" => input.external_id = opt_text(Some(value), "invalid externalId")?,
            "members" => input.members = parse_members(Some(value))?,
            _ => return Err(ScimError::invalid_value("unsupported attribute")),
        }
    }
    if input.display_name.is_empty() {
        return Err(ScimError::invalid_value("displayName is required"));
    }
    Ok(input)
}
