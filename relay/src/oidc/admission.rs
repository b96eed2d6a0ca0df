//! Who a provider's verified ID token names, and whether the provider's rules admit them:
//! `allowed_users` / `allowed_email_domains`, then `required_groups`; the IdP groups kept
//! are only those `group_mapping` names.

use serde_json::{Map, Value};

use crate::auth::SsoIdentity;
use crate::config::OidcProvider;

use super::SsoError;

/// Longest user name accepted from a provider (it appears in logs, grants and the header).
pub const MAX_USERNAME: usize = 128;

/// IdP groups read from the groups claim; more are ignored.
const MAX_GROUPS_READ: usize = 4096;

/// The identity `claims` (a verified ID token's payload) give under `provider`'s rules.
pub fn admit(
    provider: &OidcProvider,
    claims: &Map<String, Value>,
) -> Result<SsoIdentity, SsoError> {
    let name = claims
        .get(&provider.username_claim)
        .and_then(Value::as_str)
        .ok_or_else(|| {
            SsoError::ClaimsMissing(format!(
                "the ID token has no text claim {:?} (username_claim)",
                provider.username_claim
            ))
        })?;
    if name.is_empty() || name.len() > MAX_USERNAME || name.chars().any(char::is_control) {
        return Err(SsoError::ClaimsMissing(format!(
            "the {:?} claim is empty, longer than {MAX_USERNAME} bytes or holds control characters",
            provider.username_claim
        )));
    }
    let groups: Vec<&str> = match claims.get(&provider.groups_claim) {
        Some(Value::Array(items)) => items
            .iter()
            .take(MAX_GROUPS_READ)
            .filter_map(Value::as_str)
            .collect(),
        Some(Value::String(one)) => vec![one.as_str()],
        _ => Vec::new(),
    };
    let email = claims.get("email").and_then(Value::as_str);
    let email_verified = claims.get("email_verified").and_then(Value::as_bool);
    let by_name = provider.allowed_users.iter().any(|u| u == name);
    let by_domain = email_verified != Some(false)
        && email
            .and_then(|e| e.rsplit_once('@'))
            .is_some_and(|(_, domain)| {
                provider
                    .allowed_email_domains
                    .iter()
                    .any(|d| d.eq_ignore_ascii_case(domain))
            });
    let listed_rules =
        !provider.allowed_users.is_empty() || !provider.allowed_email_domains.is_empty();
    if listed_rules && !(by_name || by_domain) {
        return Err(SsoError::NotAllowed(format!(
            "{name:?} is neither in allowed_users nor has an e-mail address in allowed_email_domains"
        )));
    }
    if !provider.required_groups.is_empty()
        && !groups
            .iter()
            .any(|g| provider.required_groups.iter().any(|r| r == g))
    {
        return Err(SsoError::NotAllowed(format!(
            "{name:?} is in none of the required_groups"
        )));
    }
    let mut mapped: Vec<String> = groups
        .into_iter()
        .filter_map(|g| provider.group_mapping.get(g))
        .flatten()
        .cloned()
        .collect();
    mapped.sort();
    mapped.dedup();
    Ok(SsoIdentity {
        provider: provider.id.clone(),
        username: format!("{}:{name}", provider.id),
        groups: mapped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(extra: &str) -> OidcProvider {
        let text = format!(
            "[[auth.oidc]]\nid = \"corp\"\nissuer = \"https://idp.example\"\nclient_id = \"c\"\n\
             client_secret_env = \"X\"\n{extra}\n"
        );
        crate::config::Config::from_toml(&text, "test")
            .unwrap()
            .auth
            .oidc
            .remove(0)
    }

    fn claims(value: serde_json::Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn only_mapped_groups_are_kept_and_rules_admit() {
        let p = provider(
            "required_groups = [\"staff\"]\n[auth.oidc.group_mapping]\nadmins = [\"ops\"]",
        );
        let c = claims(serde_json::json!({
            "preferred_username": "alice", "groups": ["staff", "admins", "other"]
        }));
        let identity = admit(&p, &c).unwrap();
        assert_eq!(identity.username, "corp:alice");
        assert_eq!(identity.groups, ["ops"]);
        let outsider = claims(serde_json::json!({"preferred_username": "eve", "groups": "guests"}));
        assert!(matches!(admit(&p, &outsider), Err(SsoError::NotAllowed(_))));
    }

    #[test]
    fn email_domains_need_a_verified_address_and_names_are_bounded() {
        let p = provider("allowed_email_domains = [\"example.com\"]");
        let ok = claims(serde_json::json!({
            "preferred_username": "bob", "email": "bob@Example.com", "email_verified": true
        }));
        assert!(admit(&p, &ok).is_ok());
        let unverified = claims(serde_json::json!({
            "preferred_username": "bob", "email": "bob@example.com", "email_verified": false
        }));
        assert!(matches!(
            admit(&p, &unverified),
            Err(SsoError::NotAllowed(_))
        ));
        let long = claims(serde_json::json!({
            "preferred_username": "x".repeat(MAX_USERNAME + 1), "email": "x@example.com"
        }));
        assert!(matches!(admit(&p, &long), Err(SsoError::ClaimsMissing(_))));
        let nameless = claims(serde_json::json!({"email": "x@example.com"}));
        assert!(matches!(
            admit(&p, &nameless),
            Err(SsoError::ClaimsMissing(_))
        ));
    }
}
