//! JSON helpers for untrusted SCIM bodies: an object, its `schemas`, attribute lookup by
//! case-insensitive name, bounded printable strings and Entra's boolean strings.

use serde_json::{Map, Value};

use super::schema::MAX_VALUE_CHARS;
use crate::scim::error::{ScimError, ScimResult};

/// Parses a JSON body into an object, refusing anything else.
pub fn parse_object(body: &[u8]) -> ScimResult<Map<String, Value>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ScimError::invalid_syntax("body must be a JSON object")),
        Err(_) => Err(ScimError::invalid_syntax("body is not valid JSON")),
    }
}

pub(super) fn check_schemas(map: &Map<String, Value>, required: &str) -> ScimResult<()> {
    let schemas = field(map, "schemas")
        .and_then(Value::as_array)
        .ok_or(ScimError::invalid_syntax("schemas missing"))?;
    if !schemas
        .iter()
        .any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(required)))
    {
        return Err(ScimError::invalid_syntax(
            "schemas must list the core schema",
        ));
    }
    Ok(())
}

/// The value of `name` in `map`, matched case-insensitively.
pub(super) fn field<'a>(map: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    map.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// A string of 1 to [`MAX_VALUE_CHARS`] printable characters, or null/absent.
pub(super) fn opt_text(value: Option<&Value>, what: &'static str) -> ScimResult<Option<String>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => text(s, what).map(Some),
        Some(_) => Err(ScimError::invalid_value(what)),
    }
}

pub(super) fn text(s: &str, what: &'static str) -> ScimResult<String> {
    let t = s.trim();
    if t.is_empty() || t.chars().count() > MAX_VALUE_CHARS || t.chars().any(char::is_control) {
        return Err(ScimError::invalid_value(what));
    }
    Ok(t.to_owned())
}

/// A boolean, or Entra's string form of one.
pub fn boolean(value: &Value) -> ScimResult<bool> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(ScimError::invalid_value("active must be a boolean")),
    }
}
