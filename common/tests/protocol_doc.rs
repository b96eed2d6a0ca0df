//! `docs/PROTOCOL.md` against the code: the document is read at build time, and every JSON
//! example in its sections on frames and on the HTTP API must parse into its `common` type
//! and serialise back to the same JSON value; every frame type must have an example; the
//! close-code table must match [`CloseCode`]. So a renamed field or tag, a field the code
//! drops, or an example nobody updated fails here.

use common::api::{ApiError, LoginRequest, Me, PodInfo, Targets, TerminalSessionInfo};
use common::audit::AuditPage;
use common::chat::{ChatBody, ChatRequest};
use common::files::{DirPage, UploadDone};
use common::recording::{FindHit, RecordingIndex, RecordingInfo};
use common::server::{ServerFrame, StreamEvent};
use common::sso::{AuthProviders, LogoutAnswer};
use common::{ClientFrame, CloseCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

const PROTOCOL: &str = include_str!("../../docs/PROTOCOL.md");

/// One inline code span of the document.
struct Span {
    /// The `## ` section it is in.
    section: String,
    /// The line it starts on (1-based), for messages.
    line: usize,
    /// Its index among the spans of its table row (`None` outside tables).
    row: Option<usize>,
    /// Its text, line breaks read as spaces (as Markdown renders them).
    text: String,
}

/// Every inline code span, with its section and table row.
fn spans() -> Vec<Span> {
    let mut spans = Vec::new();
    let mut section = String::new();
    let mut open: Option<(usize, String)> = None;
    let mut row = 0;
    for (index, line) in PROTOCOL.lines().enumerate() {
        if open.is_none() {
            if let Some(title) = line.strip_prefix("## ") {
                section = title.trim().to_owned();
            }
            row += 1;
        }
        let in_table = line.starts_with('|');
        let mut rest = line;
        if let Some((_, text)) = &mut open {
            text.push(' ');
            rest = rest.trim_start();
        }
        while let Some(tick) = rest.find('`') {
            match open.take() {
                None => open = Some((index + 1, String::new())),
                Some((start, mut text)) => {
                    text.push_str(&rest[..tick]);
                    spans.push(Span {
                        section: section.clone(),
                        line: start,
                        row: in_table.then_some(row),
                        text,
                    });
                }
            }
            rest = &rest[tick + 1..];
        }
        if let Some((_, text)) = &mut open {
            text.push_str(rest);
        }
    }
    assert!(open.is_none(), "an unclosed code span in PROTOCOL.md");
    spans
}

/// The JSON examples (spans that open with `{` or `[`) of `section`, each with the examples
/// of its table row before it (the row's first one is its canonical spelling).
fn examples(section: &str) -> Vec<(usize, Value, Option<Value>)> {
    let spans: Vec<Span> = spans()
        .into_iter()
        .filter(|s| s.section == section && s.text.starts_with(['{', '[']))
        .collect();
    assert!(!spans.is_empty(), "no examples in section {section:?}");
    spans
        .iter()
        .map(|span| {
            let value: Value = serde_json::from_str(&span.text).unwrap_or_else(|e| {
                panic!(
                    "PROTOCOL.md:{}: the example {} is not JSON: {e}",
                    span.line, span.text
                )
            });
            let first_of_row = span
                .row
                .and_then(|row| spans.iter().find(|s| s.row == Some(row)))
                .filter(|first| first.line != span.line || first.text != span.text)
                .map(|first| serde_json::from_str(&first.text).expect("checked as JSON too"));
            (span.line, value, first_of_row)
        })
        .collect()
}

/// `value` read as a `T` and written back, when it reads as one.
fn again<T: DeserializeOwned + Serialize>(value: &Value) -> Option<(T, Value)> {
    let parsed: T = serde_json::from_value(value.clone()).ok()?;
    let back = serde_json::to_value(&parsed).expect("serialising a wire type");
    Some((parsed, back))
}

/// Checks that an example serialises back to itself, or to its row's canonical spelling.
fn assert_same(line: usize, value: &Value, back: &Value, first_of_row: &Option<Value>) {
    assert!(
        back == value || Some(back) == first_of_row.as_ref(),
        "PROTOCOL.md:{line}: {value} serialises back as {back}"
    );
}

fn client_kind(frame: &ClientFrame) -> &'static str {
    match frame {
        ClientFrame::Input(_) => "keystrokes",
        ClientFrame::Resize(_) => "resize",
        ClientFrame::Chat(ChatRequest::Message {
            client_id: None, ..
        }) => "chat message",
        ClientFrame::Chat(ChatRequest::Message {
            client_id: Some(_), ..
        }) => "chat message with a client_id",
        ClientFrame::Chat(ChatRequest::UserInfo) => "userinfo request",
        ClientFrame::Ack(_) => "ack",
    }
}

fn server_kind(frame: &ServerFrame) -> &'static str {
    match frame {
        ServerFrame::Event(event) => match event {
            StreamEvent::Connected { .. } => "connected",
            StreamEvent::Error {
                client_id: None, ..
            } => "error",
            StreamEvent::Error {
                client_id: Some(_), ..
            } => "error with a client_id",
            StreamEvent::Sent { .. } => "sent",
            StreamEvent::Status { .. } => "status",
            StreamEvent::Gap { .. } => "gap",
            StreamEvent::Dropped { .. } => "dropped",
            StreamEvent::Lines { .. } => "lines",
            StreamEvent::Output { .. } => "output",
            StreamEvent::Watcher { .. } => "watcher",
            StreamEvent::Exit { signal: None, .. } => "exit",
            StreamEvent::Exit {
                signal: Some(_), ..
            } => "exit with a signal",
        },
        ServerFrame::Chat(event) => match event.body {
            ChatBody::Message(_) => "chat message",
            ChatBody::UserInfo(_) => "chat userinfo",
            ChatBody::Join(_) => "chat join",
            ChatBody::Leave(_) => "chat leave",
            ChatBody::Presence { .. } => "chat presence",
        },
    }
}

/// Asserts that `seen` holds every one of `all`.
fn assert_all_seen(what: &str, seen: &[&str], all: &[&str]) {
    let missing: Vec<&&str> = all.iter().filter(|k| !seen.contains(k)).collect();
    assert!(
        missing.is_empty(),
        "PROTOCOL.md has no example of these {what}: {missing:?}"
    );
}

#[test]
fn every_browser_frame_example_is_a_client_frame_and_reads_back_the_same() {
    let mut seen = Vec::new();
    for (line, value, first_of_row) in examples("Browser → relay") {
        let frame = ClientFrame::parse(&value.to_string())
            .unwrap_or_else(|e| panic!("PROTOCOL.md:{line}: {value} is refused: {e}"));
        let back: Value = serde_json::from_str(&frame.to_json()).expect("frames are JSON");
        assert_same(line, &value, &back, &first_of_row);
        seen.push(client_kind(&frame));
    }
    assert_all_seen(
        "browser frames",
        &seen,
        &[
            "keystrokes",
            "resize",
            "chat message",
            "chat message with a client_id",
            "userinfo request",
            "ack",
        ],
    );
}

#[test]
fn every_relay_frame_example_is_a_server_frame_and_reads_back_the_same() {
    let mut seen = Vec::new();
    for (line, value, first_of_row) in examples("Relay → browser") {
        let Some((frame, back)) = again::<ServerFrame>(&value) else {
            panic!("PROTOCOL.md:{line}: {value} is not a relay frame");
        };
        assert_same(line, &value, &back, &first_of_row);
        seen.push(server_kind(&frame));
    }
    assert_all_seen(
        "relay frames",
        &seen,
        &[
            "connected",
            "error",
            "error with a client_id",
            "sent",
            "status",
            "gap",
            "dropped",
            "lines",
            "output",
            "watcher",
            "exit",
            "exit with a signal",
            "chat message",
            "chat userinfo",
            "chat join",
            "chat leave",
            "chat presence",
        ],
    );
}

/// The `type` column of the relay frame table names the type of its example.
#[test]
fn the_relay_frame_table_names_each_example_by_its_type() {
    let mut rows = 0;
    for line in PROTOCOL.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split(" | ").collect();
        let Some(example) = cells.get(1).and_then(|c| c.split('`').nth(1)) else {
            continue;
        };
        if !example.starts_with("{\"type\"") {
            continue;
        }
        let name = cells[0].trim_start_matches("| ").trim_matches('`');
        let value: Value = serde_json::from_str(example).expect("checked as JSON");
        assert_eq!(value["type"], name, "{line}");
        rows += 1;
    }
    assert!(rows >= 9, "only {rows} rows in the relay frame table");
}

#[test]
fn every_files_example_is_a_files_body_and_reads_back_the_same() {
    let mut seen = Vec::new();
    for (line, value, first_of_row) in examples("Files (SFTP on SSH hosts)") {
        let read = [
            again::<DirPage>(&value).map(|(_, back)| ("page", back)),
            again::<UploadDone>(&value).map(|(_, back)| ("upload", back)),
            again::<ApiError>(&value).map(|(_, back)| ("error", back)),
        ];
        let Some((kind, back)) = read.into_iter().flatten().find(|(_, back)| *back == value) else {
            panic!("PROTOCOL.md:{line}: {value} is no files body (or loses fields on the way)");
        };
        assert_same(line, &value, &back, &first_of_row);
        seen.push(kind);
    }
    assert_all_seen("files bodies", &seen, &["page", "upload", "error"]);
}

#[test]
fn every_http_api_example_is_an_api_body_and_reads_back_the_same() {
    let mut seen = Vec::new();
    for (line, value, first_of_row) in examples("HTTP API") {
        // No two of these bodies share their set of fields, so at most one reads it back.
        let read = [
            again::<LoginRequest>(&value).map(|(_, back)| ("login request", back)),
            again::<Me>(&value).map(|(_, back)| ("me", back)),
            again::<ApiError>(&value).map(|(_, back)| ("error", back)),
            again::<Targets>(&value).map(|(_, back)| ("targets", back)),
            again::<Vec<String>>(&value).map(|(_, back)| ("names", back)),
            again::<Vec<PodInfo>>(&value).map(|(_, back)| ("pods", back)),
            again::<AuthProviders>(&value).map(|(_, back)| ("providers", back)),
            again::<LogoutAnswer>(&value).map(|(_, back)| ("logout", back)),
            again::<Vec<TerminalSessionInfo>>(&value).map(|(_, back)| ("sessions", back)),
            again::<AuditPage>(&value).map(|(_, back)| ("audit page", back)),
            again::<Vec<RecordingInfo>>(&value).map(|(_, back)| ("recordings", back)),
            again::<RecordingIndex>(&value).map(|(_, back)| ("recording index", back)),
            again::<FindHit>(&value).map(|(_, back)| ("find hit", back)),
        ];
        let Some((kind, back)) = read.into_iter().flatten().find(|(_, back)| *back == value) else {
            panic!("PROTOCOL.md:{line}: {value} is no API body (or loses fields on the way)");
        };
        assert_same(line, &value, &back, &first_of_row);
        seen.push(kind);
    }
    assert_all_seen(
        "API bodies",
        &seen,
        &[
            "login request",
            "me",
            "error",
            "targets",
            "names",
            "pods",
            "providers",
            "logout",
            "sessions",
            "audit page",
            "recordings",
            "recording index",
            "find hit",
        ],
    );
}

/// `| 1009 | MessageTooBig | when | browser shows / does |`: the code, its name in
/// [`CloseCode`], and whether the browser reconnects ([`CloseCode::should_reconnect`]).
#[test]
fn the_close_code_table_matches_the_close_codes() {
    let table: Vec<Vec<&str>> = PROTOCOL
        .split("## Close codes")
        .nth(1)
        .expect("a close code section")
        .lines()
        .filter(|l| l.starts_with("| ") && l[2..].starts_with(|c: char| c.is_ascii_digit()))
        .map(|l| l.trim_matches('|').split(" | ").map(str::trim).collect())
        .collect();
    let mut codes = Vec::new();
    for row in &table {
        let [code, name, _when, does] = row[..] else {
            panic!("a close code row with {} cells: {row:?}", row.len());
        };
        let code: u16 = code.parse().expect("a numeric close code");
        let close = CloseCode::from_code(code)
            .unwrap_or_else(|| panic!("{code} {name} is not a CloseCode"));
        assert_eq!(format!("{close:?}"), name, "the name of {code}");
        let reconnects = does.contains("reconnect") && !does.contains("no reconnect");
        assert_eq!(
            close.should_reconnect(),
            reconnects,
            "{code} {name}: the document says {does:?}"
        );
        codes.push(close);
    }
    assert_eq!(
        codes,
        CloseCode::ALL,
        "the table lists every code once, in order"
    );
}
