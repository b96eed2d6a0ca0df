//! Kubeconfig files for the emulator, as `kubectl config view --raw` would
//! print them: the CA and client credentials embedded as base64 `*-data`
//! fields, so `kube::Config::from_custom_kubeconfig` (and kubectl) can use
//! them without other files.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::tls::ClientIdentity;

/// Name of the cluster entry.
pub const CLUSTER_NAME: &str = "opsdeck-emulator";

/// How the kubeconfig's user authenticates.
pub enum Credentials<'a> {
    /// Client certificate and key.
    Certificate(&'a ClientIdentity),
    /// Bearer token.
    Token(&'a str),
}

/// Renders a kubeconfig with one cluster, one user and one context.
pub fn render(server: &str, ca_pem: &str, user: &str, credentials: Credentials<'_>) -> String {
    // JSON strings are valid YAML double-quoted scalars.
    let q = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
    let context = format!("{user}@{CLUSTER_NAME}");
    let user_fields = match credentials {
        Credentials::Certificate(identity) => format!(
            "    client-certificate-data: {}\n    client-key-data: {}\n",
            STANDARD.encode(&identity.cert_pem),
            STANDARD.encode(&identity.key_pem)
        ),
        Credentials::Token(token) => format!("    token: {}\n", q(token)),
    };
    format!(
        "apiVersion: v1\n\
         kind: Config\n\
         clusters:\n\
         - name: {cluster}\n  \
           cluster:\n    \
             server: {server}\n    \
             certificate-authority-data: {ca}\n\
         users:\n\
         - name: {user}\n  \
           user:\n\
         {user_fields}\
         contexts:\n\
         - name: {context}\n  \
           context:\n    \
             cluster: {cluster}\n    \
             user: {user}\n    \
             namespace: default\n\
         current-context: {context}\n\
         preferences: {{}}\n",
        cluster = q(CLUSTER_NAME),
        server = q(server),
        ca = STANDARD.encode(ca_pem),
        user = q(user),
        context = q(&context),
    )
}
