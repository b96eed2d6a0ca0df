//! `/version`, `/api`, `/apis` and `/api/v1`: enough discovery for
//! `kube::Client::apiserver_version()` and `kube::Discovery::run()`.
//!
//! The emulator claims Kubernetes v1.37 (the newest version k8s-openapi's
//! `latest` feature knows) and serves only the core group's `v1` with the
//! resources it implements.

use serde_json::{Value, json};

/// Kubernetes minor version reported by `/version`.
pub const MINOR: &str = "37";

/// `version.Info`.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": MINOR,
        "emulationMajor": "1",
        "emulationMinor": MINOR,
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "36",
        "gitVersion": format!("v1.{MINOR}.0"),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.25.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// `APIVersions` for the legacy core group.
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    })
}

/// `APIGroupList`: no named groups.
pub fn groups() -> Value {
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []})
}

/// `APIResourceList` for `v1`.
pub fn core_v1_resources() -> Value {
    json!({
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [
            {
                "name": "namespaces", "singularName": "namespace", "namespaced": false,
                "kind": "Namespace", "verbs": ["get", "list", "watch"], "shortNames": ["ns"],
            },
            {
                "name": "pods", "singularName": "pod", "namespaced": true, "kind": "Pod",
                "verbs": ["get", "list", "watch"], "shortNames": ["po"], "categories": ["all"],
            },
            {
                "name": "pods/exec", "singularName": "", "namespaced": true,
                "kind": "PodExecOptions", "verbs": ["create", "get"],
            },
            {
                "name": "pods/log", "singularName": "", "namespaced": true,
                "kind": "Pod", "verbs": ["get"],
            },
        ],
    })
}
