//! What an audit-trail event is about, decided on our side (pure).
//!
//! Segment documents the audit event *types* (the IAM ones: "Policy Created",
//! "User Group Policy Updated", "User Added To User Group", …) but not the
//! `resourceType` strings that IAM events carry. scimwatch therefore reads the audit
//! trail without a `resourceType` filter (one stream per workspace) and classifies each
//! event itself, in this order:
//!
//! 1. the event type, when it names its subject ("User Policy Updated" is about a user,
//!    "User Group Policy Updated" about a group);
//! 2. the resource id, when the caller knows the workspace's user and group ids (a full
//!    read does): "Policy Created" is about whichever of them carries that id;
//! 3. the `resourceType` string as a hint (`user`, `user_group` and look-alikes);
//! 4. otherwise an IAM type whose subject stays unknown is kept as [`IAM`] (it still
//!    wakes the daemon, names no one), and any other event is dropped.
//!
//! The result uses our vocabulary, whatever Segment sends: [`USER`], [`USER_GROUP`] or
//! [`IAM`].

/// An event about a workspace member.
pub const USER: &str = "user";
/// An event about a user group.
pub const USER_GROUP: &str = "user_group";
/// An IAM event whose subject (user or group) could not be told.
pub const IAM: &str = "iam";

/// Types whose subject is a user.
const USER_TYPES: &[&str] = &["User Policy Updated", "User Added via SSO", "User Removed"];
/// Types whose subject is a user group.
const GROUP_TYPES: &[&str] = &[
    "User Group Created",
    "User Group Updated",
    "User Group Deleted",
    "User Group Policy Updated",
    "Subjects Added to Group",
    "User Added To User Group",
    "User Removed From User Group",
];
/// IAM types that may be about either (or about an invite).
const EITHER_TYPES: &[&str] = &[
    "Policy Created",
    "Policy Deleted",
    "Group Memberships Deleted",
    "New Segment User Invited to Workspace",
    "Non-Segment User Invited to Workspace",
    "Invite Deleted",
    "User Invite Sent",
    "User Invite Deleted",
    "User Invite Accepted",
];

/// Whether an id is a known user or group of the workspace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Known {
    User,
    Group,
}

/// Our classification of one event (see the module docs); `None` drops it.
pub fn classify(
    kind: &str,
    resource_type: &str,
    resource_id: &str,
    known: &dyn Fn(&str) -> Option<Known>,
) -> Option<&'static str> {
    let is = |list: &[&str]| list.iter().any(|t| t.eq_ignore_ascii_case(kind.trim()));
    if is(USER_TYPES) {
        return Some(USER);
    }
    if is(GROUP_TYPES) {
        return Some(USER_GROUP);
    }
    match known(resource_id) {
        Some(Known::User) => return Some(USER),
        Some(Known::Group) => return Some(USER_GROUP),
        None => {}
    }
    let hint: String = resource_type
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase();
    if hint.contains("group") {
        return Some(USER_GROUP);
    }
    if hint.contains("user") {
        return Some(USER);
    }
    is(EITHER_TYPES).then_some(IAM)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str) -> Option<Known> {
        None
    }

    #[test]
    fn the_type_decides_when_it_names_its_subject_whatever_the_resource_type() {
        for rt in ["user", "user_group", "team", "", "USER"] {
            assert_eq!(classify("User Policy Updated", rt, "x", &none), Some(USER));
            assert_eq!(
                classify("User Group Policy Updated", rt, "x", &none),
                Some(USER_GROUP)
            );
            assert_eq!(
                classify("User Added To User Group", rt, "x", &none),
                Some(USER_GROUP)
            );
        }
    }

    #[test]
    fn ambiguous_types_go_by_the_known_ids_then_the_hint() {
        let known = |id: &str| match id {
            "u1" => Some(Known::User),
            "g1" => Some(Known::Group),
            _ => None,
        };
        assert_eq!(classify("Policy Created", "team", "u1", &known), Some(USER));
        assert_eq!(
            classify("Policy Created", "member", "g1", &known),
            Some(USER_GROUP)
        );
        assert_eq!(
            classify("Policy Created", "UserGroup", "zz", &known),
            Some(USER_GROUP)
        );
        assert_eq!(
            classify("Policy Deleted", "workspace_user", "zz", &known),
            Some(USER)
        );
        assert_eq!(classify("Policy Created", "team", "zz", &known), Some(IAM));
    }

    #[test]
    fn events_about_other_things_are_dropped() {
        assert_eq!(classify("Source Modified", "source", "s1", &none), None);
        assert_eq!(
            classify("Source Function Deleted", "function", "f1", &none),
            None
        );
    }
}
