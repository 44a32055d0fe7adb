//! What the provider says about itself (RFC 7644 §4): its configuration,
//! its resource types and the schemas of the attributes it keeps.

use serde_json::{Value, json};

use super::resource::{GROUP_SCHEMA, USER_SCHEMA};

/// Most resources one page holds (`count` above it is lowered to it).
pub const MAX_PAGE: usize = 1000;
/// Resources a filter that no index answers may examine per request;
/// beyond it the request is refused (`tooMany`) rather than scanning.
pub const MAX_SCAN: usize = 20_000;

/// `ServiceProviderConfig`.
pub fn service_provider_config(base: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "documentationUri": "https://github.com/portcullis/portcullis/blob/main/docs/directory.md#scim-20",
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": MAX_PAGE},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Bearer token",
            "description": "An API key (or a service account's token) that the organization's scim setting names, sent as Authorization: Bearer",
            "primary": true
        }],
        "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig")}
    })
}

/// `ResourceTypes`.
pub fn resource_types(base: &str) -> Vec<Value> {
    vec![
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": "User", "name": "User", "endpoint": "/Users",
            "description": "A user of the organization",
            "schema": USER_SCHEMA,
            // The enterprise extension is accepted on every request and
            // not kept: not published as served.
            "schemaExtensions": [],
            "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/User")}
        }),
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": "Group", "name": "Group", "endpoint": "/Groups",
            "description": "A group of the organization's users",
            "schema": GROUP_SCHEMA,
            "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/Group")}
        }),
    ]
}

fn attribute(name: &str, kind: &str, mutability: &str, returned: &str, unique: &str) -> Value {
    json!({
        "name": name, "type": kind, "multiValued": false,
        // The directory needs these: a username, a group's name, an
        // account's state (a PATCH cannot remove it), an address's value.
        "required": matches!(name, "userName" | "displayName" | "active" | "value"),
        "caseExact": matches!(name, "id" | "externalId"),
        "mutability": mutability, "returned": returned, "uniqueness": unique,
    })
}

fn multi(name: &str, subs: Vec<Value>) -> Value {
    json!({
        "name": name, "type": "complex", "multiValued": true,
        // Every user has an address.
        "required": name == "emails",
        "mutability": "readWrite", "returned": "default", "subAttributes": subs,
    })
}

/// `Schemas`: what this provider keeps of each resource.
pub fn schemas(base: &str) -> Vec<Value> {
    let value = |kind: &str| attribute("value", kind, "readWrite", "default", "none");
    // One address and one phone number are kept, as the work ones: any
    // `type` and `primary` sent are read to choose which, not kept.
    let typ = json!({
        "name": "type", "type": "string", "canonicalValues": ["work"],
        "multiValued": false, "required": false, "caseExact": false,
        "mutability": "readWrite", "returned": "default", "uniqueness": "none",
    });
    vec![
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
            "id": USER_SCHEMA, "name": "User", "description": "A user of the directory",
            "attributes": [
                // The username: unique, and never changes (seed 000).
                attribute("userName", "string", "immutable", "always", "server"),
                attribute("externalId", "string", "readWrite", "default", "none"),
                attribute("displayName", "string", "readWrite", "default", "none"),
                {
                    "name": "name", "type": "complex", "multiValued": false, "required": false,
                    "mutability": "readWrite", "returned": "default",
                    "subAttributes": [
                        attribute("givenName", "string", "readWrite", "default", "none"),
                        attribute("familyName", "string", "readWrite", "default", "none"),
                    ]
                },
                multi("emails", vec![value("string"), typ.clone()]),
                multi("phoneNumbers", vec![value("string"), typ]),
                attribute("timezone", "string", "readWrite", "default", "none"),
                attribute("locale", "string", "readWrite", "default", "none"),
                attribute("active", "boolean", "readWrite", "default", "none"),
            ],
            "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{USER_SCHEMA}")}
        }),
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
            "id": GROUP_SCHEMA, "name": "Group", "description": "A group of users",
            "attributes": [
                attribute("displayName", "string", "readWrite", "default", "server"),
                attribute("externalId", "string", "readWrite", "default", "none"),
                multi("members", vec![
                    attribute("value", "string", "immutable", "default", "none"),
                    json!({
                        "name": "$ref", "type": "reference", "referenceTypes": ["User"],
                        "multiValued": false, "required": false, "caseExact": true,
                        "mutability": "immutable", "returned": "default", "uniqueness": "none",
                    }),
                    json!({
                        "name": "type", "type": "string", "canonicalValues": ["User"],
                        "multiValued": false, "required": false, "caseExact": false,
                        "mutability": "immutable", "returned": "default", "uniqueness": "none",
                    }),
                ]),
            ],
            "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{GROUP_SCHEMA}")}
        }),
    ]
}
