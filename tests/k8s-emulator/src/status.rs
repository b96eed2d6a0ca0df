//! `metav1.Status`: the one error shape every Kubernetes API answer uses.
//!
//! The API server writes a `Status` as the body of every failed request (401,
//! 403, 404, 400, 422, 500) and the kubelet writes one, without `kind` and
//! `apiVersion`, on channel 3 of an exec WebSocket when the command ends.
//! Field order and `omitempty` behaviour follow the Go struct
//! (`k8s.io/apimachinery/pkg/apis/meta/v1/types.go`), so the bytes match what
//! `encoding/json` produces for the same value.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Response, StatusCode, header};
use serde::Serialize;

use crate::server::Body;

/// A `metav1.Status` object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    /// `"Status"` for HTTP bodies; absent on the exec status channel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    /// `"v1"` for HTTP bodies; absent on the exec status channel.
    #[serde(rename = "apiVersion", skip_serializing_if = "Option::is_none")]
    pub api_version: Option<&'static str>,
    /// Always `{}` (Go marshals the empty `ListMeta` struct).
    pub metadata: EmptyObject,
    /// `"Success"` or `"Failure"`.
    pub status: &'static str,
    /// Human readable description.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Machine readable reason (`Unauthorized`, `Forbidden`, `NotFound`, ...).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Extra data about the reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Box<StatusDetails>>,
    /// The HTTP status code; omitted when zero.
    #[serde(skip_serializing_if = "is_zero")]
    pub code: u16,
}

/// Serializes as `{}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct EmptyObject {}

/// `metav1.StatusDetails`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StatusDetails {
    /// Name of the object the status is about.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// API group of the object.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// Kind (for errors built from a resource: the resource name, e.g. `pods`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// Individual causes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<StatusCause>,
}

/// `metav1.StatusCause`; Go's `Type` field is serialized as `reason`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StatusCause {
    /// The cause type (`ExitCode`, `FieldValueInvalid`, ...).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Human readable message.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The field the cause is about.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub field: String,
}

/// One field validation error, as `field.Error` renders it.
#[derive(Debug, Clone)]
pub struct FieldError {
    /// The field path (`tailLines`), possibly empty.
    pub field: String,
    /// `FieldValueInvalid`, `FieldValueForbidden`, ...
    pub cause_type: &'static str,
    /// `Invalid value: -1: must be greater than or equal to 0`, ...
    pub body: String,
}

fn is_zero(code: &u16) -> bool {
    *code == 0
}

impl Status {
    fn failure(code: StatusCode, reason: &str, message: String) -> Self {
        Status {
            kind: Some("Status"),
            api_version: Some("v1"),
            metadata: EmptyObject {},
            status: "Failure",
            message,
            reason: reason.to_owned(),
            details: None,
            code: code.as_u16(),
        }
    }

    /// 401 for a request without valid credentials.
    pub fn unauthorized() -> Self {
        Self::failure(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Unauthorized".into(),
        )
    }

    /// 403 as `responsewriters.Forbidden` writes it: `NewForbidden(group
    /// resource, name, forbiddenMessage(attributes))`.
    pub fn forbidden(resource: &str, name: &str, why: &str) -> Self {
        let message = if name.is_empty() {
            format!("{resource} is forbidden: {why}")
        } else {
            format!("{resource} \"{name}\" is forbidden: {why}")
        };
        let mut status = Self::failure(StatusCode::FORBIDDEN, "Forbidden", message);
        status.details = Some(Box::new(StatusDetails {
            name: name.to_owned(),
            kind: resource.to_owned(),
            ..StatusDetails::default()
        }));
        status
    }

    /// 404 for a named object that does not exist: `pods "x" not found`.
    pub fn not_found(resource: &str, name: &str) -> Self {
        let mut status = Self::failure(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{resource} \"{name}\" not found"),
        );
        status.details = Some(Box::new(StatusDetails {
            name: name.to_owned(),
            kind: resource.to_owned(),
            ..StatusDetails::default()
        }));
        status
    }

    /// 404 for a path the server has no handler for.
    pub fn no_route() -> Self {
        let mut status = Self::failure(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource".into(),
        );
        status.details = Some(Box::default());
        status
    }

    /// 405 for a verb the resource does not support.
    pub fn method_not_allowed() -> Self {
        let mut status = Self::failure(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource".into(),
        );
        status.details = Some(Box::default());
        status
    }

    /// 400 `errors.NewBadRequest(message)`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::failure(StatusCode::BAD_REQUEST, "BadRequest", message.into())
    }

    /// 422 `errors.NewInvalid(kind, name, errs)`.
    pub fn invalid(kind: &str, name: &str, errors: &[FieldError]) -> Self {
        let rendered: Vec<String> = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.body))
            .collect();
        // utilerrors.Aggregate prints one error bare and several as a list.
        let joined = if rendered.len() == 1 {
            rendered[0].clone()
        } else {
            format!("[{}]", rendered.join(", "))
        };
        let mut status = Self::failure(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!("{kind} \"{name}\" is invalid: {joined}"),
        );
        status.details = Some(Box::new(StatusDetails {
            name: name.to_owned(),
            kind: kind.to_owned(),
            causes: errors
                .iter()
                .map(|e| StatusCause {
                    reason: e.cause_type.to_owned(),
                    message: e.body.clone(),
                    field: e.field.clone(),
                })
                .collect(),
            ..StatusDetails::default()
        }));
        status
    }

    /// 410 `Expired`, as a watch reports a resourceVersion it can no longer
    /// serve.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::failure(StatusCode::GONE, "Expired", message.into())
    }

    /// 500 `errors.NewInternalError(err)`.
    pub fn internal_error(error: impl Into<String>) -> Self {
        let error = error.into();
        let mut status = Self::failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            format!("Internal error occurred: {error}"),
        );
        status.details = Some(Box::new(StatusDetails {
            causes: vec![StatusCause {
                message: error,
                ..StatusCause::default()
            }],
            ..StatusDetails::default()
        }));
        status
    }

    /// The exec status-channel value for a command that exited with 0:
    /// `{"metadata":{},"status":"Success"}`.
    pub fn exec_success() -> Self {
        Status {
            kind: None,
            api_version: None,
            metadata: EmptyObject {},
            status: "Success",
            message: String::new(),
            reason: String::new(),
            details: None,
            code: 0,
        }
    }

    /// The exec status-channel value for a non-zero exit, as the kubelet's
    /// `ServeExec` builds it from containerd's `CodeExitError`.
    pub fn exec_exit_code(command: &[String], exit_code: i32) -> Self {
        Status {
            kind: None,
            api_version: None,
            metadata: EmptyObject {},
            status: "Failure",
            message: format!(
                "command terminated with non-zero exit code: error executing command [{}], exit code {exit_code}",
                command.join(" ")
            ),
            reason: "NonZeroExitCode".into(),
            details: Some(Box::new(StatusDetails {
                causes: vec![StatusCause {
                    reason: "ExitCode".into(),
                    message: exit_code.to_string(),
                    ..StatusCause::default()
                }],
                ..StatusDetails::default()
            })),
            code: 0,
        }
    }

    /// The exec status-channel value when the command could not be started
    /// (an `InternalError` without `kind`/`apiVersion`, as json.Marshal of
    /// `StatusError.Status()` writes it).
    pub fn exec_internal_error(error: impl Into<String>) -> Self {
        let mut status = Self::internal_error(error);
        status.kind = None;
        status.api_version = None;
        status
    }

    /// The HTTP status code of this value (500 if it carries none).
    pub fn http_code(&self) -> StatusCode {
        StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// JSON bytes without a trailing newline (the WebSocket status frame).
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing these plain structs cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The HTTP response carrying this status (JSON plus the newline the
    /// apimachinery JSON encoder appends).
    pub fn into_response(self) -> Response<Body> {
        let mut body = self.to_json();
        body.push(b'\n');
        json_response(self.http_code(), body)
    }
}

/// A JSON HTTP response with the content type the API server uses.
pub fn json_response(code: StatusCode, body: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = code;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unauthorized_matches_the_api_server_bytes() {
        assert_eq!(
            String::from_utf8(Status::unauthorized().to_json()).unwrap(),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#
        );
    }

    #[test]
    fn exec_statuses_match_the_kubelet_bytes() {
        assert_eq!(
            String::from_utf8(Status::exec_success().to_json()).unwrap(),
            r#"{"metadata":{},"status":"Success"}"#
        );
        let cmd = vec!["sh".to_string(), "-c".to_string(), "exit 3".to_string()];
        assert_eq!(
            String::from_utf8(Status::exec_exit_code(&cmd, 3).to_json()).unwrap(),
            r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#
        );
    }

    #[test]
    fn forbidden_names_the_object_and_the_resource() {
        let status = Status::forbidden(
            "pods",
            "web-1",
            r#"User "alice" cannot create resource "pods/exec" in API group "" in the namespace "prod""#,
        );
        assert_eq!(
            String::from_utf8(status.to_json()).unwrap(),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"pods \"web-1\" is forbidden: User \"alice\" cannot create resource \"pods/exec\" in API group \"\" in the namespace \"prod\"","reason":"Forbidden","details":{"name":"web-1","kind":"pods"},"code":403}"#
        );
    }
}
