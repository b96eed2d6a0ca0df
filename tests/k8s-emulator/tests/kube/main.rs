//! The emulator, driven by a real kube-rs 5 client (the version the relay
//! uses), proves it speaks what kube-rs expects: lists, exec with a TTY and
//! resize, exit statuses, log streams, and the 401/403/404 Status errors.

mod fixture;

mod auth;
mod exec;
mod logs;
mod pods;
mod wire;
