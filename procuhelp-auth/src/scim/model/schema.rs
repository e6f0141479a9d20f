//! The vocabulary every SCIM parser shares: schema URNs, resource kinds and the limits on
//! untrusted values. Depends on nothing else in `scim`.

/// Longest string value accepted anywhere (ids, names, addresses, PATCH paths).
pub const MAX_VALUE_CHARS: usize = 512;
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
