//! Who is asking, and may they? Authentication, impersonation and a tiny
//! RBAC, in the order the API server's handler chain applies them.
//!
//! - Authentication (`WithAuthentication`): a verified client certificate
//!   (user = CN, groups = O) or `Authorization: Bearer <token>` from the
//!   configured table. No credentials → 401 (the emulator runs with
//!   `--anonymous-auth=false`). Every authenticated user also gets the group
//!   `system:authenticated`.
//! - Impersonation (`WithImpersonation`): `Impersonate-User` and
//!   `Impersonate-Group` headers, each allowed only if the authenticated user
//!   may `impersonate` `users`/`groups` at the cluster scope.
//! - Authorization (`WithAuthorization`): the request's attributes (verb,
//!   resource, subresource, namespace, name) checked against the rules; a
//!   denial is written with `forbiddenMessage` from
//!   `k8s.io/apiserver/pkg/endpoints/handlers/responsewriters/errors.go`.

use hyper::HeaderMap;
use hyper::header::AUTHORIZATION;

use crate::config::{AccessRule, Subject, TokenConfig};
use crate::status::Status;

/// The group every authenticated user belongs to.
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";

/// An authenticated identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// User name.
    pub name: String,
    /// Groups, including `system:authenticated`.
    pub groups: Vec<String>,
}

impl UserInfo {
    /// Builds an identity and adds `system:authenticated` like the
    /// `AuthenticatedGroupAdder` does.
    pub fn authenticated(name: impl Into<String>, groups: Vec<String>) -> Self {
        let mut groups = groups;
        if !groups.iter().any(|g| g == AUTHENTICATED_GROUP) {
            groups.push(AUTHENTICATED_GROUP.to_owned());
        }
        UserInfo {
            name: name.into(),
            groups,
        }
    }
}

/// The authorizer's view of a request (`authorizer.AttributesRecord`).
#[derive(Debug, Clone)]
pub struct Attributes {
    /// `get`, `list`, `watch`, `create`, `impersonate`.
    pub verb: &'static str,
    /// `pods`, `namespaces`, `users`, `groups`.
    pub resource: &'static str,
    /// `exec`, `log` or empty.
    pub subresource: &'static str,
    /// Namespace, empty at the cluster scope.
    pub namespace: String,
    /// Object name, empty for lists.
    pub name: String,
}

impl Attributes {
    fn combined_resource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.to_owned()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
}

/// Authenticates a request from the TLS peer identity and the headers.
///
/// Like the API server's union authenticator, a valid certificate wins; an
/// unknown bearer token on its own is a 401.
pub fn authenticate(
    cert_identity: Option<&UserInfo>,
    headers: &HeaderMap,
    tokens: &[TokenConfig],
) -> Result<UserInfo, Status> {
    if let Some(user) = cert_identity {
        return Ok(user.clone());
    }
    let bearer = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    match bearer {
        Some(token) if !token.is_empty() => tokens
            .iter()
            .find(|t| t.token == token)
            .map(|t| UserInfo::authenticated(t.user.clone(), t.groups.clone()))
            .ok_or_else(Status::unauthorized),
        _ => Err(Status::unauthorized()),
    }
}

/// Applies `Impersonate-User` / `Impersonate-Group`; returns the identity
/// the request is authorized as and, when impersonating, the real user.
pub fn impersonate(
    requestor: UserInfo,
    headers: &HeaderMap,
    rules: &[AccessRule],
) -> Result<(UserInfo, Option<UserInfo>), Status> {
    let user = headers
        .get("impersonate-user")
        .map(|v| v.to_str().map(str::to_owned));
    let groups: Vec<_> = headers
        .get_all("impersonate-group")
        .iter()
        .map(|v| v.to_str().map(str::to_owned))
        .collect();
    let has_uid_or_extra = headers.contains_key("impersonate-uid")
        || headers
            .keys()
            .any(|k| k.as_str().starts_with("impersonate-extra-"));
    if user.is_none() && groups.is_empty() && !has_uid_or_extra {
        return Ok((requestor, None));
    }
    let Some(user) = user else {
        return Err(Status::bad_request(
            "requested impersonation of groups or extra fields without impersonating a user",
        ));
    };
    let user = user.map_err(|_| Status::bad_request("invalid Impersonate-User header"))?;
    let mut impersonated_groups = Vec::with_capacity(groups.len());
    for group in groups {
        impersonated_groups
            .push(group.map_err(|_| Status::bad_request("invalid Impersonate-Group header"))?);
    }

    let check = |resource: &'static str, name: &str| -> Result<(), Status> {
        let attributes = Attributes {
            verb: "impersonate",
            resource,
            subresource: "",
            namespace: String::new(),
            name: name.to_owned(),
        };
        authorize(&requestor, &attributes, rules)
    };
    check("users", &user)?;
    for group in &impersonated_groups {
        check("groups", group)?;
    }

    // WithImpersonation adds system:authenticated unless the caller asked
    // for it or for system:unauthenticated explicitly.
    let explicit = impersonated_groups
        .iter()
        .any(|g| g == AUTHENTICATED_GROUP || g == "system:unauthenticated");
    if !explicit && user != "system:anonymous" {
        impersonated_groups.push(AUTHENTICATED_GROUP.to_owned());
    }
    Ok((
        UserInfo {
            name: user,
            groups: impersonated_groups,
        },
        Some(requestor),
    ))
}

/// Decides a request; a denial is the API server's 403 Status.
pub fn authorize(
    user: &UserInfo,
    attributes: &Attributes,
    rules: &[AccessRule],
) -> Result<(), Status> {
    if rules.iter().any(|rule| rule_allows(rule, user, attributes)) {
        return Ok(());
    }
    Err(Status::forbidden(
        attributes.resource,
        &attributes.name,
        &forbidden_message(user, attributes),
    ))
}

fn rule_allows(rule: &AccessRule, user: &UserInfo, a: &Attributes) -> bool {
    let subject_matches = match &rule.subject {
        Subject::User(name) => *name == user.name,
        Subject::Group(group) => user.groups.iter().any(|g| g == group),
    };
    let verb_matches = rule.verbs.iter().any(|v| v == "*" || v == a.verb);
    let combined = a.combined_resource();
    let resource_matches = rule.resources.iter().any(|r| r == "*" || *r == combined);
    let namespace_matches = rule
        .namespaces
        .iter()
        .any(|n| n == "*" || (!a.namespace.is_empty() && *n == a.namespace));
    subject_matches && verb_matches && resource_matches && namespace_matches
}

/// `forbiddenMessage(attributes)` from the apiserver's responsewriters.
pub fn forbidden_message(user: &UserInfo, a: &Attributes) -> String {
    let resource = a.combined_resource();
    if a.namespace.is_empty() {
        format!(
            "User \"{}\" cannot {} resource \"{}\" in API group \"\" at the cluster scope",
            user.name, a.verb, resource
        )
    } else {
        format!(
            "User \"{}\" cannot {} resource \"{}\" in API group \"\" in the namespace \"{}\"",
            user.name, a.verb, resource, a.namespace
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn alice() -> UserInfo {
        UserInfo::authenticated("alice", vec!["dev".into()])
    }

    #[test]
    fn group_rule_allows_and_other_namespace_is_forbidden_with_real_message() {
        let rules = vec![AccessRule::namespaces(
            Subject::Group("dev".into()),
            &["dev"],
        )];
        let mut attributes = Attributes {
            verb: "create",
            resource: "pods",
            subresource: "exec",
            namespace: "dev".into(),
            name: "web-1".into(),
        };
        assert!(authorize(&alice(), &attributes, &rules).is_ok());
        attributes.namespace = "prod".into();
        let denied = authorize(&alice(), &attributes, &rules).unwrap_err();
        assert_eq!(
            denied.message,
            r#"pods "web-1" is forbidden: User "alice" cannot create resource "pods/exec" in API group "" in the namespace "prod""#
        );
    }

    #[test]
    fn subresources_need_their_own_grant_unless_star() {
        let rules = vec![
            AccessRule::namespaces(Subject::User("alice".into()), &["dev"])
                .with_resources(&["pods", "pods/log"]),
        ];
        let exec = Attributes {
            verb: "create",
            resource: "pods",
            subresource: "exec",
            namespace: "dev".into(),
            name: "web-1".into(),
        };
        assert!(authorize(&alice(), &exec, &rules).is_err());
        let log = Attributes {
            verb: "get",
            subresource: "log",
            ..exec
        };
        assert!(authorize(&alice(), &log, &rules).is_ok());
    }

    #[test]
    fn impersonation_requires_permission() {
        let mut headers = HeaderMap::new();
        headers.insert("impersonate-user", HeaderValue::from_static("bob"));
        headers.append("impersonate-group", HeaderValue::from_static("ops"));
        let denied = impersonate(alice(), &headers, &[]).unwrap_err();
        assert_eq!(
            denied.message,
            r#"users "bob" is forbidden: User "alice" cannot impersonate resource "users" in API group "" at the cluster scope"#
        );
        let rules = vec![AccessRule::impersonator(Subject::User("alice".into()))];
        let (user, by) = impersonate(alice(), &headers, &rules).unwrap();
        assert_eq!(user.name, "bob");
        assert_eq!(
            user.groups,
            vec!["ops".to_string(), AUTHENTICATED_GROUP.to_string()]
        );
        assert_eq!(by.unwrap().name, "alice");
    }
}
