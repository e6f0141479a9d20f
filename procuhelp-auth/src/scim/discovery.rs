//! Discovery (RFC 7644 §4): ServiceProviderConfig, ResourceTypes and Schemas, describing
//! exactly what this implementation supports. Optional features we do not offer (bulk,
//! sorting, ETags, password change) are advertised as unsupported.

use serde_json::{Value, json};

use super::model::{GROUP_SCHEMA, LIST_RESPONSE_SCHEMA, MAX_PAGE_SIZE, ResourceKind, USER_SCHEMA};

const SPC_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

/// `/ServiceProviderConfig`; `base` is `https://host/scim/v2/{org}`.
pub fn service_provider_config(base: &str) -> Value {
    json!({
        "schemas": [SPC_SCHEMA],
        "documentationUri": "https://github.com/procuhelp/procuhelp/blob/main/docs/scim.md",
        "patch": { "supported": true },
        "bulk": { "supported": false, "maxOperations": 0, "maxPayloadSize": 0 },
        "filter": { "supported": true, "maxResults": MAX_PAGE_SIZE },
        "changePassword": { "supported": false },
        "sort": { "supported": false },
        "etag": { "supported": false },
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "A per-organisation SCIM token issued by an organisation admin",
            "primary": true,
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{base}/ServiceProviderConfig"),
        },
    })
}

/// One ResourceType.
pub fn resource_type(base: &str, kind: ResourceKind) -> Value {
    json!({
        "schemas": [RESOURCE_TYPE_SCHEMA],
        "id": kind.name(),
        "name": kind.name(),
        "endpoint": format!("/{}", kind.endpoint()),
        "description": match kind {
            ResourceKind::User => "User Account",
            ResourceKind::Group => "Group",
        },
        "schema": kind.schema(),
        "meta": {
            "resourceType": "ResourceType",
            "location": format!("{base}/ResourceTypes/{}", kind.name()),
        },
    })
}

/// `/ResourceTypes` as a ListResponse.
pub fn resource_types(base: &str) -> Value {
    let all = [
        resource_type(base, ResourceKind::User),
        resource_type(base, ResourceKind::Group),
    ];
    list(all.to_vec())
}

fn list(items: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_RESPONSE_SCHEMA],
        "totalResults": items.len(),
        "startIndex": 1,
        "itemsPerPage": items.len(),
        "Resources": items,
    })
}

fn attr(name: &str, kind: &str, required: bool, mutability: &str, description: &str) -> Value {
    json!({
        "name": name,
        "type": kind,
        "multiValued": false,
        "description": description,
        "required": required,
        "caseExact": false,
        "mutability": mutability,
        "returned": "default",
        "uniqueness": "none",
    })
}

fn with(mut v: Value, key: &str, value: Value) -> Value {
    if let Some(obj) = v.as_object_mut() {
        obj.insert(key.to_owned(), value);
    }
    v
}

/// The User schema we implement (a subset of RFC 7643 §4.1).
pub fn user_schema(base: &str) -> Value {
    let attributes = vec![
        with(
            attr(
                "userName",
                "string",
                true,
                "readWrite",
                "Unique identifier for the user, typically the sign-in name (Entra: userPrincipalName).",
            ),
            "uniqueness",
            json!("server"),
        ),
        with(
            with(
                attr(
                    "name",
                    "complex",
                    false,
                    "readWrite",
                    "The components of the user's name.",
                ),
                "subAttributes",
                json!([
                    attr("givenName", "string", false, "readWrite", "Given name."),
                    attr("familyName", "string", false, "readWrite", "Family name."),
                ]),
            ),
            "caseExact",
            json!(false),
        ),
        attr(
            "displayName",
            "string",
            false,
            "readWrite",
            "The name displayed for the user.",
        ),
        with(
            with(
                attr("emails", "complex", false, "readWrite", "E-mail addresses."),
                "multiValued",
                json!(true),
            ),
            "subAttributes",
            json!([
                attr("value", "string", false, "readWrite", "An e-mail address."),
                with(
                    attr("type", "string", false, "readWrite", "work, home or other."),
                    "canonicalValues",
                    json!(["work", "home", "other"]),
                ),
                attr(
                    "primary",
                    "boolean",
                    false,
                    "readWrite",
                    "The primary address."
                ),
            ]),
        ),
        // Always assigned: a user is active or not (absent on input means true).
        attr(
            "active",
            "boolean",
            true,
            "readWrite",
            "false deprovisions: the user is disabled and signed out everywhere.",
        ),
        with(
            with(
                with(
                    attr(
                        "groups",
                        "complex",
                        false,
                        "readOnly",
                        "Groups the user belongs to (managed through /Groups).",
                    ),
                    "multiValued",
                    json!(true),
                ),
                "subAttributes",
                json!([
                    attr("value", "string", false, "readOnly", "Group id."),
                    with(
                        attr("$ref", "reference", false, "readOnly", "Group URI."),
                        "referenceTypes",
                        json!(["Group"]),
                    ),
                    attr("display", "string", false, "readOnly", "Group displayName."),
                ]),
            ),
            "returned",
            json!("default"),
        ),
    ];
    schema(base, USER_SCHEMA, "User", "User Account", attributes)
}

/// The Group schema we implement (RFC 7643 §4.2; members are users only).
pub fn group_schema(base: &str) -> Value {
    let attributes = vec![
        with(
            attr(
                "displayName",
                "string",
                true,
                "readWrite",
                "Unique (case-insensitive) name of the group.",
            ),
            "uniqueness",
            json!("server"),
        ),
        with(
            with(
                attr("members", "complex", false, "readWrite", "Members (users)."),
                "multiValued",
                json!(true),
            ),
            "subAttributes",
            json!([
                attr("value", "string", false, "immutable", "User id."),
                with(
                    attr("$ref", "reference", false, "immutable", "User URI."),
                    "referenceTypes",
                    json!(["User"]),
                ),
            ]),
        ),
    ];
    schema(base, GROUP_SCHEMA, "Group", "Group", attributes)
}

fn schema(base: &str, id: &str, name: &str, description: &str, attributes: Vec<Value>) -> Value {
    json!({
        "schemas": [SCHEMA_SCHEMA],
        "id": id,
        "name": name,
        "description": description,
        "attributes": attributes,
        "meta": {
            "resourceType": "Schema",
            "location": format!("{base}/Schemas/{id}"),
        },
    })
}

/// `/Schemas` as a ListResponse.
pub fn schemas(base: &str) -> Value {
    list(vec![user_schema(base), group_schema(base)])
}

/// One schema by id, if we have it.
pub fn schema_by_id(base: &str, id: &str) -> Option<Value> {
    if id.eq_ignore_ascii_case(USER_SCHEMA) {
        Some(user_schema(base))
    } else if id.eq_ignore_ascii_case(GROUP_SCHEMA) {
        Some(group_schema(base))
    } else {
        None
    }
}
