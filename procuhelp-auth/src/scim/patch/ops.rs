//! What every PATCH body shares (RFC 7644 §3.5.2): the PatchOp envelope, its operations
//! with Entra's capitalised op names, the refusal type, and bounded values.

use serde_json::Value;

use crate::scim::error::ScimError;
use crate::scim::model::MAX_VALUE_CHARS;

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

pub(super) fn err(scim_type: &'static str, detail: &'static str, op: Option<usize>) -> PatchError {
    PatchError {
        scim_type,
        detail,
        op,
    }
}

/// An operation's `op`, any case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Add,
    Replace,
    Remove,
}

/// One operation of the body, with its index (for the refusal).
pub(super) struct Operation<'a> {
    pub(super) index: usize,
    pub(super) op: Op,
    pub(super) path: Option<&'a str>,
    pub(super) value: Option<&'a Value>,
}

/// The operations of a PatchOp body, or the refusal of the whole body.
pub(super) fn operations(body: &Value) -> Result<Vec<Operation<'_>>, PatchError> {
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

/// The body as JSON.
pub(super) fn parse_json(body: &[u8]) -> Result<Value, PatchError> {
    serde_json::from_slice(body).map_err(|_| err("invalidSyntax", "body is not valid JSON", None))
}

/// A non-empty string of at most [`MAX_VALUE_CHARS`] characters.
pub(super) fn text(value: Option<&Value>, index: usize) -> Result<String, PatchError> {
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
pub(super) fn boolean(value: Option<&Value>, index: usize) -> Result<bool, PatchError> {
    match value {
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(err("invalidValue", "expected a boolean", Some(index))),
    }
}
