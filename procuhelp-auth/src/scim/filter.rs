//! The one filter shape provisioning clients use (RFC 7644 §3.4.2.2): `attribute eq
//! "value"`, for `userName` and `externalId` on Users and `displayName` and `externalId`
//! on Groups. Anything else — other operators, `and`/`or`, other attributes, a value that
//! is not one JSON string — is `invalidFilter`, never a guess.

use super::error::{ScimError, ScimResult};
use super::model::{GROUP_SCHEMA, ResourceKind, USER_SCHEMA};

/// Longest filter accepted, in bytes.
pub const MAX_FILTER_BYTES: usize = 1024;

/// The attribute a filter compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterAttribute {
    /// `userName` (case-insensitive, RFC 7643 §4.1.1).
    UserName,
    /// `externalId` (case-sensitive).
    ExternalId,
    /// `displayName` of a group (case-insensitive).
    DisplayName,
}

/// `attribute eq "value"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// What is compared.
    pub attribute: FilterAttribute,
    /// The value it must equal.
    pub value: String,
}

/// Parses `raw` as a filter on `kind`.
pub fn parse_filter(raw: &str, kind: ResourceKind) -> ScimResult<Filter> {
    let invalid = ScimError::invalid_filter;
    if raw.len() > MAX_FILTER_BYTES {
        return Err(invalid("filter too long"));
    }
    let raw = raw.trim();
    let (attr, rest) = raw
        .split_once(char::is_whitespace)
        .ok_or(invalid("expected: attribute eq \"value\""))?;
    let (op, literal) = rest
        .trim_start()
        .split_once(char::is_whitespace)
        .ok_or(invalid("expected: attribute eq \"value\""))?;
    if !op.eq_ignore_ascii_case("eq") {
        return Err(invalid("only the eq operator is supported"));
    }
    // A fully qualified name (`urn:...:User:userName`) names the same attribute.
    let schema = match kind {
        ResourceKind::User => USER_SCHEMA,
        ResourceKind::Group => GROUP_SCHEMA,
    };
    let attr = match attr.get(..schema.len()) {
        Some(prefix) if prefix.eq_ignore_ascii_case(schema) => attr
            .get(schema.len()..)
            .and_then(|a| a.strip_prefix(':'))
            .unwrap_or(""),
        _ => attr,
    };
    let attribute = match (kind, attr.to_ascii_lowercase().as_str()) {
        (ResourceKind::User, "username") => FilterAttribute::UserName,
        (ResourceKind::Group, "displayname") => FilterAttribute::DisplayName,
        (_, "externalid") => FilterAttribute::ExternalId,
        _ => return Err(invalid("unsupported filter attribute")),
    };
    // The value must be exactly one JSON string (escapes included), nothing after it.
    let value: String = serde_json::from_str(literal.trim())
        .map_err(|_| invalid("the value must be one quoted string"))?;
    if value.is_empty() || value.chars().any(char::is_control) {
        return Err(invalid("the value must be a non-empty printable string"));
    }
    Ok(Filter { attribute, value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entra_filters_parse() {
        let f = parse_filter(r#"userName eq "ada@contoso.com""#, ResourceKind::User).unwrap();
        assert_eq!(f.attribute, FilterAttribute::UserName);
        assert_eq!(f.value, "ada@contoso.com");
        let f = parse_filter(r#"externalId  EQ  "a\"b""#, ResourceKind::User).unwrap();
        assert_eq!(
            (f.attribute, f.value.as_str()),
            (FilterAttribute::ExternalId, "a\"b")
        );
        let f = parse_filter(r#"displayName eq "Sales""#, ResourceKind::Group).unwrap();
        assert_eq!(f.attribute, FilterAttribute::DisplayName);
        let f = parse_filter(
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "x""#,
            ResourceKind::User,
        )
        .unwrap();
        assert_eq!(f.attribute, FilterAttribute::UserName);
    }

    #[test]
    fn everything_else_is_invalid_filter() {
        for bad in [
            "",
            "userName",
            r#"userName ne "x""#,
            r#"userName sw "x""#,
            r#"userName eq "x" and active eq true"#,
            r#"userName eq "x" or userName eq "y""#,
            r#"userName eq x"#,
            r#"userName eq "x"""#,
            r#"userName eq """#,
            r#"active eq "true""#,
            r#"displayName eq "x""#,
            r#"emails[type eq "work"].value eq "x""#,
            r#"userName pr"#,
            &format!(r#"userName eq "{}""#, "a".repeat(2000)),
        ] {
            let e = parse_filter(bad, ResourceKind::User).unwrap_err();
            assert_eq!(
                (e.status, e.scim_type),
                (400, Some("invalidFilter")),
                "{bad}"
            );
        }
        assert!(parse_filter(r#"userName eq "x""#, ResourceKind::Group).is_err());
    }
}
