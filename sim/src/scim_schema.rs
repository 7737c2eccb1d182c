//! How the SCIM surface describes itself (RFC 7644 §4): `/ServiceProviderConfig`,
//! `/ResourceTypes` and `/Schemas`, in the forms of RFC 7643 §5, §6 and §7.
//!
//! Contract: every attribute `scim.rs` puts in a User or a Group is described here, with
//! its characteristics (RFC 7643 §2.2 and §7: type, multiValued, required, mutability,
//! returned, uniqueness, caseExact, and subAttributes for complex ones), and the
//! characteristics say what this simulator does: `userName` and a user's `displayName`
//! cannot be changed after creation (Segment's SCIM documentation says so), `name` is
//! accepted and never returned, `groups` is read-only. The common attributes `id` and
//! `meta` are listed in each schema too, with RFC 7643 §3.1's characteristics (§3.1 lets a
//! schema list them). Pure: values only, no state.

use serde_json::{json, Value};

pub const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const SCHEMA_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";
const RESOURCE_TYPE_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
const SPC_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";

/// The most resources one list answer carries (advertised as `filter.maxResults`).
pub const MAX_RESULTS: usize = 200;

/// One attribute definition, starting from RFC 7643 §2.2's defaults.
struct Attr(Value);

impl Attr {
    fn new(name: &str, kind: &str, description: &str) -> Attr {
        Attr(json!({
            "name": name, "type": kind, "multiValued": false, "description": description,
            "required": false, "caseExact": false, "mutability": "readWrite",
            "returned": "default", "uniqueness": "none",
        }))
    }
    fn set(mut self, key: &str, value: Value) -> Attr {
        self.0[key] = value;
        self
    }
    fn multi(self) -> Attr {
        self.set("multiValued", json!(true))
    }
    fn required(self) -> Attr {
        self.set("required", json!(true))
    }
    fn case_exact(self) -> Attr {
        self.set("caseExact", json!(true))
    }
    fn mutability(self, m: &str) -> Attr {
        self.set("mutability", json!(m))
    }
    fn returned(self, r: &str) -> Attr {
        self.set("returned", json!(r))
    }
    fn unique(self, u: &str) -> Attr {
        self.set("uniqueness", json!(u))
    }
    fn canonical(self, values: &[&str]) -> Attr {
        self.set("canonicalValues", json!(values))
    }
    fn refs(self, types: &[&str]) -> Attr {
        self.set("referenceTypes", json!(types))
    }
    fn sub(self, attrs: Vec<Attr>) -> Attr {
        let subs: Vec<Value> = attrs.into_iter().map(|a| a.0).collect();
        self.set("subAttributes", Value::Array(subs))
    }
}

/// `id` (RFC 7643 §3.1): assigned by the server, always returned.
fn id_attr() -> Attr {
    Attr::new(
        "id",
        "string",
        "Unique identifier assigned by the service provider.",
    )
    .case_exact()
    .mutability("readOnly")
    .returned("always")
    .unique("server")
}

/// `meta` (RFC 7643 §3.1): read-only; this simulator fills `resourceType` and `location`.
fn meta_attr() -> Attr {
    Attr::new("meta", "complex", "Resource metadata.")
        .mutability("readOnly")
        .sub(vec![
            Attr::new("resourceType", "string", "The name of the resource type.")
                .case_exact()
                .mutability("readOnly"),
            Attr::new("created", "dateTime", "When the resource was added.").mutability("readOnly"),
            Attr::new(
                "lastModified",
                "dateTime",
                "When the resource was last updated.",
            )
            .mutability("readOnly"),
            Attr::new("location", "reference", "The URI of the resource.")
                .case_exact()
                .mutability("readOnly")
                .refs(&["uri"]),
            Attr::new("version", "string", "The version (ETag) of the resource.")
                .case_exact()
                .mutability("readOnly"),
        ])
}

fn user_attributes() -> Vec<Attr> {
    let name_part = |n: &str, d: &str| {
        Attr::new(n, "string", d)
            .mutability("writeOnly")
            .returned("never")
    };
    vec![
        id_attr(),
        Attr::new("userName", "string", "The person's email address; Segment reserves the seat for this exact string and it cannot change after creation.")
            .required()
            .mutability("immutable")
            .unique("server"),
        Attr::new("name", "complex", "The person's name: accepted from the IdP, not kept (Segment keeps only displayName).")
            .mutability("writeOnly")
            .returned("never")
            .sub(vec![
                name_part("formatted", "The full name."),
                name_part("familyName", "The family name."),
                name_part("givenName", "The given name."),
            ]),
        Attr::new("displayName", "string", "The name shown in Segment; set at creation, not changed through SCIM afterwards.")
            .mutability("immutable"),
        Attr::new("active", "boolean", "false removes the person from the workspace and all its groups."),
        Attr::new("emails", "complex", "Email addresses; the one address is userName.")
            .multi()
            .mutability("immutable")
            .sub(vec![
                Attr::new("value", "string", "The email address.").mutability("immutable"),
                Attr::new("type", "string", "The kind of address.")
                    .mutability("immutable")
                    .canonical(&["work", "home", "other"]),
                Attr::new("primary", "boolean", "Whether this is the primary address.")
                    .mutability("immutable"),
            ]),
        Attr::new("groups", "complex", "The groups the person is a direct member of; change them through the Group resource.")
            .multi()
            .mutability("readOnly")
            .sub(vec![
                Attr::new("value", "string", "The group's id.").case_exact().mutability("readOnly"),
                Attr::new("$ref", "reference", "The group's URI.")
                    .case_exact()
                    .mutability("readOnly")
                    .refs(&["Group"]),
                Attr::new("display", "string", "The group's displayName.").mutability("readOnly"),
                Attr::new("type", "string", "How the person is a member.")
                    .mutability("readOnly")
                    .canonical(&["direct", "indirect"]),
            ]),
        meta_attr(),
    ]
}

fn group_attributes() -> Vec<Attr> {
    vec![
        id_attr(),
        Attr::new(
            "displayName",
            "string",
            "The group's name, unique in the workspace.",
        )
        .required()
        .unique("server"),
        Attr::new("members", "complex", "The group's members (users).")
            .multi()
            .sub(vec![
                Attr::new("value", "string", "The member's user id.")
                    .case_exact()
                    .mutability("immutable"),
                Attr::new("$ref", "reference", "The member's URI.")
                    .case_exact()
                    .mutability("immutable")
                    .refs(&["User"]),
                Attr::new("display", "string", "The member's userName.").mutability("readOnly"),
                Attr::new("type", "string", "The kind of member.")
                    .mutability("immutable")
                    .canonical(&["User"]),
            ]),
        meta_attr(),
    ]
}

fn schema(base: &str, id: &str, name: &str, description: &str, attrs: Vec<Attr>) -> Value {
    let attributes: Vec<Value> = attrs.into_iter().map(|a| a.0).collect();
    json!({
        "schemas": [SCHEMA_URN], "id": id, "name": name, "description": description,
        "attributes": attributes,
        "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{id}")},
    })
}

/// Every schema, for `GET /Schemas` (RFC 7643 §7); `base` is `…/scim/v2`.
pub fn schemas(base: &str) -> Vec<Value> {
    vec![
        schema(base, USER_URN, "User", "User Account", user_attributes()),
        schema(base, GROUP_URN, "Group", "Group", group_attributes()),
    ]
}

/// Every resource type, for `GET /ResourceTypes` (RFC 7643 §6).
pub fn resource_types(base: &str) -> Vec<Value> {
    let rt = |id: &str, endpoint: &str, description: &str, urn: &str| {
        json!({
            "schemas": [RESOURCE_TYPE_URN], "id": id, "name": id, "endpoint": endpoint,
            "description": description, "schema": urn,
            "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/{id}")},
        })
    };
    vec![
        rt("User", "/Users", "User Account", USER_URN),
        rt("Group", "/Groups", "Group", GROUP_URN),
    ]
}

/// `GET /ServiceProviderConfig` (RFC 7643 §5): PATCH and filters, no bulk, sort, ETags or
/// password changes; the workspace's SSO Sync token as a bearer token.
pub fn service_provider_config(base: &str) -> Value {
    json!({
        "schemas": [SPC_URN],
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": false},
        "authenticationSchemes": [{
            "type": "oauthbearertoken", "name": "OAuth Bearer Token",
            "description": "The workspace's SSO Sync token, sent as a bearer token.",
            "primary": true,
        }],
        "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig")},
    })
}
