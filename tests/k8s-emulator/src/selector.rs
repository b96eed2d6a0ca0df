//! `labelSelector` and `fieldSelector` query parameters for pod lists and
//! watches.
//!
//! Label selectors support `k=v`, `k==v`, `k!=v`, `k`, `!k`,
//! `k in (a,b)` and `k notin (a,b)`, comma-separated (all must match). Pod
//! field selectors support `metadata.name`, `metadata.namespace`,
//! `status.phase` and `spec.nodeName` with `=`, `==` and `!=`; any other
//! field is a 400 `field label not supported: <field>` as from the real
//! server.

use std::collections::BTreeMap;

use crate::status::Status;

#[derive(Debug, Clone)]
enum LabelRequirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

#[derive(Debug, Clone)]
struct FieldRequirement {
    field: String,
    value: String,
    equal: bool,
}

/// Parsed selectors; the empty selector matches everything.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    labels: Vec<LabelRequirement>,
    fields: Vec<FieldRequirement>,
}

/// The values a pod exposes to selectors.
pub struct Selectable<'a> {
    /// `metadata.labels`
    pub labels: &'a BTreeMap<String, String>,
    /// `metadata.name`
    pub name: &'a str,
    /// `metadata.namespace`
    pub namespace: &'a str,
    /// `status.phase`
    pub phase: &'a str,
    /// `spec.nodeName`
    pub node_name: &'a str,
}

/// Splits on commas outside parentheses.
fn split_terms(raw: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in raw.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                terms.push(raw[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(raw[start..].trim());
    terms.into_iter().filter(|t| !t.is_empty()).collect()
}

fn parse_set(raw: &str, term: &str) -> Result<Vec<String>, Status> {
    let inner = raw
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| invalid_label(term))?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect())
}

fn invalid_label(term: &str) -> Status {
    Status::bad_request(format!("unable to parse requirement: {term}"))
}

impl Selector {
    /// Parses the two query parameters.
    pub fn parse(labels: Option<&str>, fields: Option<&str>) -> Result<Self, Status> {
        let mut selector = Selector::default();
        for term in split_terms(labels.unwrap_or("")) {
            let requirement = if let Some((key, rest)) = term.split_once(" notin ") {
                LabelRequirement::NotIn(key.trim().into(), parse_set(rest, term)?)
            } else if let Some((key, rest)) = term.split_once(" in ") {
                LabelRequirement::In(key.trim().into(), parse_set(rest, term)?)
            } else if let Some((key, value)) = term.split_once("!=") {
                LabelRequirement::NotEquals(key.trim().into(), value.trim().into())
            } else if let Some((key, value)) = term.split_once("==") {
                LabelRequirement::Equals(key.trim().into(), value.trim().into())
            } else if let Some((key, value)) = term.split_once('=') {
                LabelRequirement::Equals(key.trim().into(), value.trim().into())
            } else if let Some(key) = term.strip_prefix('!') {
                LabelRequirement::NotExists(key.trim().into())
            } else if term.contains(char::is_whitespace) {
                return Err(invalid_label(term));
            } else {
                LabelRequirement::Exists(term.into())
            };
            selector.labels.push(requirement);
        }
        for term in split_terms(fields.unwrap_or("")) {
            let (field, value, equal) = if let Some((f, v)) = term.split_once("!=") {
                (f, v, false)
            } else if let Some((f, v)) = term.split_once("==") {
                (f, v, true)
            } else if let Some((f, v)) = term.split_once('=') {
                (f, v, true)
            } else {
                return Err(Status::bad_request(format!(
                    "invalid selector: '{term}'; can't understand '{term}'"
                )));
            };
            let field = field.trim();
            if !matches!(
                field,
                "metadata.name" | "metadata.namespace" | "status.phase" | "spec.nodeName"
            ) {
                return Err(Status::bad_request(format!(
                    "field label not supported: {field}"
                )));
            }
            selector.fields.push(FieldRequirement {
                field: field.into(),
                value: value.trim().into(),
                equal,
            });
        }
        Ok(selector)
    }

    /// Whether an object matches every requirement.
    pub fn matches(&self, object: &Selectable<'_>) -> bool {
        let labels_match = self.labels.iter().all(|r| match r {
            LabelRequirement::Equals(k, v) => object.labels.get(k) == Some(v),
            LabelRequirement::NotEquals(k, v) => object.labels.get(k) != Some(v),
            LabelRequirement::Exists(k) => object.labels.contains_key(k),
            LabelRequirement::NotExists(k) => !object.labels.contains_key(k),
            LabelRequirement::In(k, set) => object.labels.get(k).is_some_and(|v| set.contains(v)),
            LabelRequirement::NotIn(k, set) => {
                object.labels.get(k).is_none_or(|v| !set.contains(v))
            }
        });
        let fields_match = self.fields.iter().all(|r| {
            let actual = match r.field.as_str() {
                "metadata.name" => object.name,
                "metadata.namespace" => object.namespace,
                "status.phase" => object.phase,
                _ => object.node_name,
            };
            (actual == r.value) == r.equal
        });
        labels_match && fields_match
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_and_field_requirements() {
        let labels: BTreeMap<String, String> = [
            ("app".to_string(), "web".to_string()),
            ("tier".to_string(), "front".to_string()),
        ]
        .into();
        let pod = Selectable {
            labels: &labels,
            name: "web-1",
            namespace: "dev",
            phase: "Running",
            node_name: "emulator-node",
        };
        let yes = |l: &str, f: &str| Selector::parse(Some(l), Some(f)).unwrap().matches(&pod);
        assert!(yes("app=web,tier in (front, back)", "metadata.name=web-1"));
        assert!(!yes("app!=web", ""));
        assert!(yes("!missing,app", "status.phase!=Pending"));
        assert!(!yes("tier notin (front)", ""));
        assert_eq!(
            Selector::parse(None, Some("spec.foo=bar"))
                .unwrap_err()
                .message,
            "field label not supported: spec.foo"
        );
    }
}
