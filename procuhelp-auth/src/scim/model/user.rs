//! The User resource as a client sends it (POST, PUT): parsed whole before anything is
//! stored.

use serde_json::Value;

use super::json::{boolean, check_schemas, opt_text, parse_object};
use super::schema::{ENTERPRISE_USER_SCHEMA, MAX_EMAILS, USER_SCHEMA};
use crate::directory::Email;
use crate::scim::error::{ScimError, ScimResult};

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

/// Core User attributes we neither store nor refuse (RFC 7643 §4.1), lower-case (also
/// what a PATCH may set or remove without effect, `scim::patch`).
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
            // Entra's create-user body carries `"roles": []`. Roles here come from groups
            // through the organisation's role mapping; a role on the user itself would be
            // a second way to grant privileges, so only "none" is accepted.
            "roles" => match value {
                Value::Null => {}
                Value::Array(roles) if roles.is_empty() => {}
                _ => {
                    return Err(ScimError::invalid_value(
                        "roles are granted through groups and the role mapping, not on the user",
                    ));
                }
            },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entra_user_bodies_parse_with_quirks() {
        let body = br#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            "externalId":"0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef","UserName":"Test_User_ab6490ee@contoso.com",
            "active":"True","displayName":"Test User","title":"Manager","roles":[],
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
}
