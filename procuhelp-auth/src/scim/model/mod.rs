//! The User and Group resources (RFC 7643 §4) as we accept and render them, paging and
//! `attributes`/`excludedAttributes` (RFC 7644 §3.4).
//!
//! Input is untrusted JSON: it is parsed into typed values before anything is stored.
//! Attribute names are matched case-insensitively (RFC 7643 §2.1); booleans may arrive as
//! Entra's strings `"True"`/`"False"`. Standard User attributes we do not store (title,
//! phoneNumbers, the enterprise extension, ...) are ignored, so that Entra's default
//! attribute mapping works; anything else unknown — and the attributes we refuse to take
//! from a provisioning client (`password`, `roles`, `entitlements`) — is `invalidValue`.

use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::error::{ScimError, ScimResult};
use crate::directory::Email;
use crate::scim_patch::MAX_VALUE_CHARS;

/// The core User schema.
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The core Group schema.
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// The enterprise User extension (accepted and ignored).
pub const ENTERPRISE_USER_SCHEMA: &str =
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// The ListResponse message schema.
pub const LIST_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
/// The SearchRequest message schema (POST `.search`).
pub const SEARCH_REQUEST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
/// Most resources in one page.
pub const MAX_PAGE_SIZE: u32 = 200;
/// Page size when the client names none.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// Most e-mail addresses on one user.
pub const MAX_EMAILS: usize = 10;
/// Most members in one group body.
pub const MAX_MEMBERS: usize = 1000;

/// Users or Groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    /// `/Users`.
    User,
    /// `/Groups`.
    Group,
}

impl ResourceKind {
    /// The resource type name (`User`, `Group`).
    pub const fn name(self) -> &'static str {
        match self {
            ResourceKind::User => "User",
            ResourceKind::Group => "Group",
        }
    }

    /// The endpoint segment (`Users`, `Groups`).
    pub const fn endpoint(self) -> &'static str {
        match self {
            ResourceKind::User => "Users",
            ResourceKind::Group => "Groups",
        }
    }

    /// The core schema URN.
    pub const fn schema(self) -> &'static str {
        match self {
            ResourceKind::User => USER_SCHEMA,
            ResourceKind::Group => GROUP_SCHEMA,
        }
    }
}

/// One of a user's e-mail addresses, as the client sent it (checked to be an address).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EmailEntry {
    /// The address.
    pub value: String,
    /// `work`, `home`, `other`, or what the client uses.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none", default)]
    pub kind: Option<String>,
    /// Whether it is the primary address.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub primary: Option<bool>,
}

/// A User as a client sends it in POST or PUT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInput {
    /// `userName` (required, unique case-insensitively).
    pub user_name: String,
    /// `externalId` (Entra: the object id).
    pub external_id: Option<String>,
    /// `displayName`.
    pub display_name: Option<String>,
    /// `name.givenName`.
    pub given_name: Option<String>,
    /// `name.familyName`.
    pub family_name: Option<String>,
    /// `emails`.
    pub emails: Vec<EmailEntry>,
    /// `active`; absent: true for a new user, unchanged for a replaced one (so that a
    /// PUT without it neither re-enables nor deprovisions anyone).
    pub active: Option<bool>,
}

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

/// Core User attributes we neither store nor refuse (RFC 7643 §4.1), lower-case (also
/// what a PATCH may set or remove without effect, `scim_patch`).
pub(crate) const IGNORED_USER_ATTRIBUTES: &[&str] = &[
    "nickname",
    "profileurl",
    "title",
    "usertype",
    "preferredlanguage",
    "locale",
    "timezone",
    "phonenumbers",
    "ims",
    "photos",
    "addresses",
    "x509certificates",
];

/// Parses a JSON body into an object, refusing anything else.
pub fn parse_object(body: &[u8]) -> ScimResult<Map<String, Value>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ScimError::invalid_syntax("body must be a JSON object")),
        Err(_) => Err(ScimError::invalid_syntax("body is not valid JSON")),
    }
}

fn check_schemas(map: &Map<String, Value>, required: &str) -> ScimResult<()> {
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
fn field<'a>(map: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    map.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// A string of 1 to [`MAX_VALUE_CHARS`] printable characters, or null/absent.
fn opt_text(value: Option<&Value>, what: &'static str) -> ScimResult<Option<String>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => text(s, what).map(Some),
        Some(_) => Err(ScimError::invalid_value(what)),
    }
}

fn text(s: &str, what: &'static str) -> ScimResult<String> {
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

/// Parses and checks the `emails` attribute.
pub fn parse_emails(value: Option<&Value>) -> ScimResult<Vec<EmailEntry>> {
    let items = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(ScimError::invalid_value("emails must be an array")),
    };
    if items.len() > MAX_EMAILS {
        return Err(ScimError::bad_request("tooMany", "too many emails"));
    }
    let bad = || ScimError::invalid_value("emails must be [{\"value\": address, ...}]");
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let obj = item.as_object().ok_or_else(bad)?;
        let mut entry = EmailEntry {
            value: String::new(),
            kind: None,
            primary: None,
        };
        for (k, v) in obj {
            match k.to_ascii_lowercase().as_str() {
                "value" => {
                    let s = v.as_str().ok_or_else(bad)?;
                    Email::parse(s)
                        .map_err(|_| ScimError::invalid_value("invalid e-mail address"))?;
                    entry.value = s.trim().to_owned();
                }
                "type" => entry.kind = opt_text(Some(v), "invalid e-mail type")?,
                "primary" => entry.primary = Some(boolean(v).map_err(|_| bad())?),
                // Read-only or informational sub-attributes.
                "display" | "$ref" => {}
                _ => return Err(ScimError::invalid_value("unsupported e-mail sub-attribute")),
            }
        }
        if entry.value.is_empty() {
            return Err(bad());
        }
        out.push(entry);
    }
    if out.iter().filter(|e| e.primary == Some(true)).count() > 1 {
        return Err(ScimError::invalid_value("at most one primary e-mail"));
    }
    Ok(out)
}

/// Parses a User body (POST or PUT).
pub fn parse_user(body: &[u8]) -> ScimResult<UserInput> {
    let map = parse_object(body)?;
    check_schemas(&map, USER_SCHEMA)?;
    let mut input = UserInput {
        user_name: String::new(),
        external_id: None,
        display_name: None,
        given_name: None,
        family_name: None,
        emails: Vec::new(),
        active: None,
    };
    for (key, value) in &map {
        let lower = key.to_ascii_lowercase();
        match lower.as_str() {
            "schemas" | "id" | "meta" | "groups" => {}
            "username" => {
                input.user_name = opt_text(Some(value), "userName must be a non-empty string")?
                    .ok_or(ScimError::invalid_value("userName is required"))?
            }
            "externalid" => input.external_id = opt_text(Some(value), "invalid externalId")?,
            "displayname" => input.display_name = opt_text(Some(value), "invalid displayName")?,
            "name" => match value {
                Value::Null => {}
                Value::Object(name) => {
                    for (k, v) in name {
                        match k.to_ascii_lowercase().as_str() {
                            "givenname" => input.given_name = opt_text(Some(v), "invalid name")?,
                            "familyname" => input.family_name = opt_text(Some(v), "invalid name")?,
                            // Derived by Entra from the parts; not stored.
                            "formatted" | "middlename" | "honorificprefix" | "honorificsuffix" => {}
                            _ => return Err(ScimError::invalid_value("unsupported name part")),
                        }
                    }
                }
                _ => return Err(ScimError::invalid_value("name must be an object")),
            },
            "emails" => input.emails = parse_emails(Some(value))?,
            "active" => input.active = Some(boolean(value)?),
            _ if IGNORED_USER_ATTRIBUTES.contains(&lower.as_str())
                || lower.eq_ignore_ascii_case(ENTERPRISE_USER_SCHEMA) => {}
            _ => return Err(ScimError::invalid_value("unsupported attribute")),
        }
    }
    if input.user_name.is_empty() {
        return Err(ScimError::invalid_value("userName is required"));
    }
    Ok(input)
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
    fn entra_user_bodies_parse_with_quirks() {
        let body = br#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            "externalId":"0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef","UserName":"Test_User_ab6490ee@contoso.com",
            "active":"True","displayName":"Test User","title":"Manager",
            "emails":[{"primary":true,"type":"work","value":"Test_User_11bb11bb@contoso.com"}],
            "name":{"formatted":"Test User","familyName":"User","givenName":"Test"},
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Sales"}}"#;
        let u = parse_user(body).unwrap();
        assert_eq!(u.user_name, "Test_User_ab6490ee@contoso.com");
        assert_eq!(u.active, Some(true));
        assert_eq!(u.given_name.as_deref(), Some("Test"));
        assert_eq!(u.emails.len(), 1);
    }

    #[test]
    fn bad_user_bodies_are_refused() {
        let cases: &[&[u8]] = &[
            b"{",
            b"[]",
            br#"{"userName":"x"}"#,
            br#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"]}"#,
            br#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":""}"#,
            br#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"x","roles":[{"value":"admin"}]}"#,
            br#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"x","password":"p"}"#,
            br#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"x","active":"maybe"}"#,
            br#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"x","emails":[{"value":"not an address"}]}"#,
            br#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"x","surprise":1}"#,
        ];
        for b in cases {
            let e = parse_user(b).unwrap_err();
            assert_eq!(e.status, 400, "{}", String::from_utf8_lossy(b));
        }
    }

    proptest::proptest! {
        // Untrusted input: every parser answers Ok or a typed 400, never panics.
        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            for e in [parse_user(&bytes).err(), parse_search(&bytes).err()].into_iter().flatten() {
                proptest::prop_assert_eq!(e.status, 400);
            }
            if let Err(e) = parse_group(&bytes) { proptest::prop_assert_eq!(e.status, 400); }
            let text = String::from_utf8_lossy(&bytes);
            let _ = super::super::filter::parse_filter(&text, ResourceKind::User);
            let _ = crate::scim_patch::parse_user_patch(&bytes);
            let _ = crate::scim_patch::parse_group_patch(&bytes);
        }

        #[test]
        fn user_like_json_never_panics(user_name in ".{0,40}", active in ".{0,8}", key in "[a-zA-Z$]{1,12}") {
            let body = json!({ "schemas": [USER_SCHEMA], "userName": user_name, "active": active, key: [{"value": user_name}] });
            let _ = parse_user(body.to_string().as_bytes());
        }
    }

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
