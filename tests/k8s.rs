//! Kubernetes pods end to end: the relay with kube-rs, against the Kubernetes API emulator
//! (real processes on real PTYs behind exec, log files behind logs), through WebSockets.

#[path = "k8s/browse.rs"]
mod browse;
#[path = "k8s/exec.rs"]
mod exec;
#[path = "k8s/fixture.rs"]
mod fixture;
#[path = "k8s/logs.rs"]
mod logs;
