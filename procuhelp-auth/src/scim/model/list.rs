//! Listing (RFC 7644 §3.4): the POST `.search` body, paging, `attributes` /
//! `excludedAttributes`, the ListResponse and a resource's `meta`.

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::json::{check_schemas, parse_object};
use super::schema::{
    DEFAULT_PAGE_SIZE, LIST_RESPONSE_SCHEMA, MAX_PAGE_SIZE, ResourceKind, SEARCH_REQUEST_SCHEMA,
};
use crate::scim::error::{ScimError, ScimResult};

/// A POST `.search` body (RFC 7644 §3.4.3), with list parameters in the same form as
/// the query string's.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SearchRequest {
    /// `attributes`, comma-joined.
    pub attributes: Option<String>,
    /// `excludedAttributes`, comma-joined.
    pub excluded_attributes: Option<String>,
    /// `filter`.
    pub filter: Option<String>,
    /// `startIndex`.
    pub start_index: Option<String>,
    /// `count`.
    pub count: Option<String>,
}

/// Parses a SearchRequest body; sorting and unknown members are refused.
pub fn parse_search(body: &[u8]) -> ScimResult<SearchRequest> {
    let map = parse_object(body)?;
    check_schemas(&map, SEARCH_REQUEST_SCHEMA)?;
    let list = |v: &Value| -> ScimResult<Option<String>> {
        match v {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s.clone())),
            Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .map(|v| Some(v.join(",")))
                .ok_or(ScimError::invalid_value("attributes must be strings")),
            _ => Err(ScimError::invalid_value("attributes must be strings")),
        }
    };
    let number = |v: &Value| -> ScimResult<Option<String>> {
        match v {
            Value::Null => Ok(None),
            Value::Number(n) => Ok(Some(n.to_string())),
            _ => Err(ScimError::invalid_value(
                "startIndex and count must be integers",
            )),
        }
    };
    let mut out = SearchRequest::default();
    for (k, v) in &map {
        match k.to_ascii_lowercase().as_str() {
            "schemas" => {}
            "attributes" => out.attributes = list(v)?,
            "excludedattributes" => out.excluded_attributes = list(v)?,
            "filter" => {
                out.filter = match v {
                    Value::Null => None,
                    Value::String(s) => Some(s.clone()),
                    _ => return Err(ScimError::invalid_filter("filter must be a string")),
                }
            }
            "startindex" => out.start_index = number(v)?,
            "count" => out.count = number(v)?,
            "sortby" | "sortorder" => {
                return Err(ScimError::invalid_value("sorting is not supported"));
            }
            _ => return Err(ScimError::invalid_value("unsupported search parameter")),
        }
    }
    Ok(out)
}

/// `startIndex` and `count` (RFC 7644 §3.4.2.4), bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// 1-based index of the first result.
    pub start_index: u32,
    /// Most results to return (0: only the total).
    pub count: u32,
}

impl Page {
    /// From the query parameters: values below 1 mean 1 (RFC), counts below 0 mean 0,
    /// counts above [`MAX_PAGE_SIZE`] are capped; non-numbers are `invalidValue`.
    pub fn parse(start_index: Option<&str>, count: Option<&str>) -> ScimResult<Self> {
        let num = |s: Option<&str>, default: i64| -> ScimResult<i64> {
            match s {
                None => Ok(default),
                Some(s) => s
                    .trim()
                    .parse::<i64>()
                    .map_err(|_| ScimError::invalid_value("startIndex and count must be integers")),
            }
        };
        let start = num(start_index, 1)?.clamp(1, i64::from(u32::MAX));
        let count = num(count, i64::from(DEFAULT_PAGE_SIZE))?.clamp(0, i64::from(MAX_PAGE_SIZE));
        Ok(Self {
            start_index: u32::try_from(start).unwrap_or(1),
            count: u32::try_from(count).unwrap_or(DEFAULT_PAGE_SIZE),
        })
    }

    /// SQL OFFSET.
    pub fn offset(self) -> i64 {
        i64::from(self.start_index) - 1
    }
}

/// A ListResponse of already rendered resources.
pub fn list_response(total: i64, page: Page, resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_RESPONSE_SCHEMA],
        "totalResults": total,
        "startIndex": page.start_index,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

/// RFC 3339 for `meta`.
pub fn timestamp(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// `meta` of a resource.
pub fn meta(
    kind: ResourceKind,
    location: &str,
    created: OffsetDateTime,
    changed: OffsetDateTime,
) -> Value {
    json!({
        "resourceType": kind.name(),
        "created": timestamp(created),
        "lastModified": timestamp(changed),
        "location": location,
    })
}

/// Which attributes to return (RFC 7644 §3.4.2.5): `attributes` keeps only those named
/// (plus `schemas`, `id`, which are always returned), `excludedAttributes` drops those
/// named. Names may be fully qualified; only the top-level attribute counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Projection {
    include: Option<Vec<String>>,
    exclude: Vec<String>,
}

impl Projection {
    /// From the query parameters.
    pub fn parse(
        kind: ResourceKind,
        attributes: Option<&str>,
        excluded: Option<&str>,
    ) -> ScimResult<Self> {
        let names = |raw: &str| -> ScimResult<Vec<String>> {
            if raw.len() > 2048 {
                return Err(ScimError::invalid_value("attribute list too long"));
            }
            Ok(raw
                .split(',')
                .map(|n| top_level(kind, n.trim()))
                .filter(|n| !n.is_empty())
                .collect())
        };
        Ok(Self {
            include: attributes.map(names).transpose()?,
            exclude: excluded.map(names).transpose()?.unwrap_or_default(),
        })
    }

    /// Whether `attribute` (lower-case) will be returned.
    pub fn returns(&self, attribute: &str) -> bool {
        let attribute = attribute.to_ascii_lowercase();
        self.include
            .as_ref()
            .is_none_or(|inc| inc.contains(&attribute))
            && !self.exclude.contains(&attribute)
    }

    /// Applies the projection to a rendered resource.
    pub fn apply(&self, mut resource: Value) -> Value {
        if let Some(obj) = resource.as_object_mut() {
            obj.retain(|k, _| {
                let k = k.to_ascii_lowercase();
                k == "schemas" || k == "id" || self.returns(&k)
            });
        }
        resource
    }
}

fn top_level(kind: ResourceKind, name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let schema = kind.schema().to_ascii_lowercase();
    let rest = lower
        .strip_prefix(&schema)
        .and_then(|r| r.strip_prefix(':'))
        .unwrap_or(&lower);
    rest.split('.').next().unwrap_or("").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_is_bounded_and_projection_keeps_id() {
        assert_eq!(
            Page::parse(Some("0"), Some("100000")).unwrap(),
            Page {
                start_index: 1,
                count: MAX_PAGE_SIZE
            }
        );
        assert!(Page::parse(Some("x"), None).is_err());
        let p = Projection::parse(ResourceKind::Group, None, Some("members")).unwrap();
        let v = p.apply(json!({"id":"1","schemas":[],"members":[],"displayName":"g"}));
        assert!(v.get("members").is_none() && v.get("displayName").is_some());
        let p = Projection::parse(
            ResourceKind::User,
            Some("urn:ietf:params:scim:schemas:core:2.0:User:name.givenName"),
            None,
        )
        .unwrap();
        let v = p.apply(json!({"id":"1","schemas":[],"name":{},"userName":"u"}));
        assert!(v.get("name").is_some() && v.get("userName").is_none() && v.get("id").is_some());
    }
}
