//! Prometheus metrics, served at `/metrics`.

use prometheus::{Encoder, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

pub struct Metrics {
    registry: Registry,
    /// Open backend sessions (terminals attached or in grace, tails, rooms...) per backend.
    pub sessions: IntGaugeVec,
    /// Open WebSocket connections per backend.
    pub websockets: IntGaugeVec,
    /// Bytes relayed per backend and direction (`to_browser`, `from_browser`).
    pub bytes: IntCounterVec,
    /// Requests refused for a missing or bad token, or a wrong password.
    pub auth_failures: IntCounter,
    /// Sessions picked up again by a reconnecting browser, per backend.
    pub resumes: IntCounterVec,
    /// Recordings that could not be started or broke while written (alert on it: with
    /// `recording.on_failure = "continue"` those sessions went on unrecorded).
    pub recording_failures: IntCounter,
    /// Terminal bytes a full recording queue dropped (`on_failure = "continue"` only).
    pub recording_lost_bytes: IntCounter,
    /// Audit events that could not be written (full queue, file or Redis error).
    pub audit_failures: IntCounter,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let sessions = IntGaugeVec::new(
            Opts::new("opsdeck_sessions_open", "Open backend sessions"),
            &["backend"],
        )
        .expect("valid metric");
        let websockets = IntGaugeVec::new(
            Opts::new("opsdeck_websockets_open", "Open WebSocket connections"),
            &["backend"],
        )
        .expect("valid metric");
        let bytes = IntCounterVec::new(
            Opts::new("opsdeck_bytes_relayed_total", "Bytes relayed"),
            &["backend", "direction"],
        )
        .expect("valid metric");
        let auth_failures = IntCounter::new(
            "opsdeck_auth_failures_total",
            "Refused logins and connections without a valid token",
        )
        .expect("valid metric");
        let resumes = IntCounterVec::new(
            Opts::new(
                "opsdeck_sessions_resumed_total",
                "Sessions resumed after a reconnect",
            ),
            &["backend"],
        )
        .expect("valid metric");
        let recording_failures = IntCounter::new(
            "opsdeck_recording_failures_total",
            "Session recordings that could not be started or broke while written",
        )
        .expect("valid metric");
        let recording_lost_bytes = IntCounter::new(
            "opsdeck_recording_lost_bytes_total",
            "Terminal bytes left out of recordings because their queue was full",
        )
        .expect("valid metric");
        let audit_failures = IntCounter::new(
            "opsdeck_audit_failures_total",
            "Audit events that could not be written",
        )
        .expect("valid metric");
        for collector in [
            Box::new(sessions.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(websockets.clone()),
            Box::new(bytes.clone()),
            Box::new(auth_failures.clone()),
            Box::new(resumes.clone()),
            Box::new(recording_failures.clone()),
            Box::new(recording_lost_bytes.clone()),
            Box::new(audit_failures.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric registered once");
        }
        Self {
            registry,
            sessions,
            websockets,
            bytes,
            auth_failures,
            resumes,
            recording_failures,
            recording_lost_bytes,
            audit_failures,
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding our own well-formed metrics into a Vec cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
