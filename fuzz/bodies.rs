//! The bodies of the fuzz targets, written once: each `fuzz_targets/<name>.rs` calls the
//! function of its name, and `relay/tests/fuzz_corpus.rs` compiles this file too (as a
//! module) to replay `corpus/<name>/` and `regressions/<name>/` through [`TARGETS`] on
//! stable. So it uses only what relay's tests can: `common`, `relay`, `serde_json`,
//! `jsonwebtoken`, and no crate-level attributes.
//!
//! Each body decodes its bytes the way the relay does, must not panic on any input, and
//! checks what the relay relies on: a frame or a query that parses means the same after
//! its own `to_json`/`to_query` (the browser app builds them so). Each returns whether the
//! input was accepted, which the fuzzer ignores and the replay test may check.

use std::fmt::Debug;

use common::query::{ChatQuery, JobQuery, PodLogQuery, TailQuery, TerminalQuery};
use common::{ClientFrame, EndpointQuery, Position, ResizeOrder, ResumeQuery};

/// A target's body: decodes the input, panics on a bug, says whether it was accepted.
pub type Body = fn(&[u8]) -> bool;

/// Every target: its name (of `fuzz_targets/<name>.rs`, `corpus/<name>/`,
/// `regressions/<name>/`) and its body.
pub const TARGETS: &[(&str, Body)] = &[
    ("client_frame", client_frame),
    ("chat_frame", chat_frame),
    ("query_terminal", query_terminal),
    ("query_tail", query_tail),
    ("query_pod_log", query_pod_log),
    ("query_chat", query_chat),
    ("query_job", query_job),
    ("resume_query", resume_query),
    ("stream_id", stream_id),
    ("log_position", log_position),
    ("token", token),
];

/// The HS256 secret of `relay::decoders::token`'s authenticator.
pub const TOKEN_SECRET: &[u8] = b"fuzzing-secret-of-at-least-32-bytes";

/// A text frame from the browser, as the pump parses it (tungstenite has already refused
/// text that is not UTF-8; binary frames are raw keystrokes, never decoded).
pub fn client_frame(data: &[u8]) -> bool {
    std::str::from_utf8(data).is_ok_and(frame_round_trips)
}

/// A chat frame: the first line is the `action` (a JSON string), the second the raw JSON of
/// `data`, the third the raw JSON of `client_id` (each absent when missing or empty), so
/// the fuzzer works on the chat shapes.
pub fn chat_frame(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let mut lines = text.splitn(3, '\n');
    let action = serde_json::Value::String(lines.next().unwrap_or_default().to_owned());
    let mut frame = format!(r#"{{"action":{action}"#);
    for (name, raw) in [("data", lines.next()), ("client_id", lines.next())] {
        if let Some(raw) = raw.filter(|raw| !raw.is_empty()) {
            frame.push_str(&format!(r#","{name}":{raw}"#));
        }
    }
    frame.push('}');
    frame_round_trips(&frame)
}

/// Parsed in both resize orders (`?resize_order=`), as the pump parses it with the one its
/// terminal was opened with; what parses must come back from its `to_json`, which writes
/// `[rows, cols]` as the browser app does.
fn frame_round_trips(text: &str) -> bool {
    let mut accepted = false;
    for order in [ResizeOrder::RowsCols, ResizeOrder::ColsRows] {
        let Ok(frame) = ClientFrame::parse_with(text, order) else {
            continue;
        };
        accepted = true;
        let json = frame.to_json();
        assert_eq!(
            ClientFrame::parse(&json).as_ref(),
            Ok(&frame),
            "{text:?} parsed ({order:?}) to {frame:?}, written back as {json:?}"
        );
    }
    accepted
}

/// A query string parsed as the relay does (`EndpointQuery::parse`), then read with the
/// accessors the endpoint uses (`meaning`); the query the browser would build from the
/// result (`to_query`) must parse to the same meaning.
fn endpoint_query<Q, M>(data: &[u8], meaning: impl Fn(&Q) -> M) -> Option<M>
where
    Q: EndpointQuery + Debug,
    M: PartialEq + Debug,
{
    let text = std::str::from_utf8(data).ok()?;
    let query = Q::parse(text).ok()?;
    let built = query.to_query();
    let again = Q::parse(&built)
        .unwrap_or_else(|e| panic!("{text:?} parsed to {query:?}, built as {built:?}: {e}"));
    let (first, second) = (meaning(&query), meaning(&again));
    assert_eq!(
        first, second,
        "{text:?} parsed to {query:?}, built as {built:?}, parsed to {again:?}"
    );
    Some(first)
}

type Counted = Result<Option<(String, u64)>, common::QueryError>;

fn owned(at: Result<Option<(&str, u64)>, common::QueryError>) -> Counted {
    at.map(|at| at.map(|(session, n)| (session.to_owned(), n)))
}

pub fn query_terminal(data: &[u8]) -> bool {
    endpoint_query(data, |q: &TerminalQuery| {
        (q.size(), q.flow, q.resize_order, owned(q.resume_at()))
    })
    .is_some()
}

pub fn query_tail(data: &[u8]) -> bool {
    endpoint_query(data, |q: &TailQuery| (q.lines, owned(q.resume_at()))).is_some()
}

/// With the position read as the pod-log endpoint reads it.
pub fn query_pod_log(data: &[u8]) -> bool {
    let meaning = endpoint_query(data, |q: &PodLogQuery| {
        (
            q.tail_lines,
            q.timestamps,
            q.previous,
            q.position().cloned(),
        )
    });
    if let Some((_, _, _, Some(position))) = &meaning {
        relay::decoders::log_position(position.as_str());
    }
    meaning.is_some()
}

/// With the `since` id read as the chat endpoint reads it.
pub fn query_chat(data: &[u8]) -> bool {
    let since = endpoint_query(data, |q: &ChatQuery| q.since().cloned());
    if let Some(Some(since)) = &since {
        relay::decoders::stream_id(since.as_str());
    }
    since.is_some()
}

/// With the position read as the job endpoint reads it.
pub fn query_job(data: &[u8]) -> bool {
    let after = endpoint_query(data, |q: &JobQuery| q.after().cloned());
    if let Some(Some(after)) = &after {
        relay::decoders::stream_id(after.as_str());
    }
    after.is_some()
}

/// The resume token alone (`session`, `position`, `since`), and the bytes as a counted
/// position.
pub fn resume_query(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    if let Some(n) = Position::from(text).as_count() {
        assert_eq!(Position::count(n).as_count(), Some(n), "{text:?}");
    }
    let meaning = |q: &ResumeQuery| {
        (
            q.session.clone(),
            q.position().cloned(),
            owned(q.counted("a count")),
        )
    };
    let Ok(query) = resume_from_query(text) else {
        return false;
    };
    let built = query.to_query();
    let again = resume_from_query(&built)
        .unwrap_or_else(|e| panic!("{text:?} parsed to {query:?}, built as {built:?}: {e}"));
    assert_eq!(
        meaning(&query),
        meaning(&again),
        "{text:?} parsed to {query:?}, built as {built:?}, parsed to {again:?}"
    );
    true
}

/// `ResumeQuery` as every endpoint reads it: flat in its query (here alone, as the chat and
/// job queries hold it).
fn resume_from_query(text: &str) -> Result<ResumeQuery, common::QueryError> {
    JobQuery::parse(text).map(|q| q.resume)
}

/// A chat or job position (`<ms>-<seq>`).
pub fn stream_id(data: &[u8]) -> bool {
    std::str::from_utf8(data).is_ok_and(relay::decoders::stream_id)
}

/// A pod-log position (`<RFC 3339 time>/<count>`).
pub fn log_position(data: &[u8]) -> bool {
    std::str::from_utf8(data).is_ok_and(relay::decoders::log_position)
}

/// A token. The first byte chooses the form: even, the rest is the token's text as a
/// browser sends it (header, claims and signature all the fuzzer's); odd, the rest is the
/// claims' JSON, signed with HS256 and [`TOKEN_SECRET`], so the claims are decoded too.
pub fn token(data: &[u8]) -> bool {
    let Some((&form, rest)) = data.split_first() else {
        return false;
    };
    if form % 2 == 0 {
        return std::str::from_utf8(rest).is_ok_and(relay::decoders::token);
    }
    relay::decoders::token(&signed_token(rest))
}

/// `header.claims.signature` with `claims` as given, signed with HS256 and [`TOKEN_SECRET`].
pub fn signed_token(claims: &[u8]) -> String {
    let signing_input = format!(
        "{}.{}",
        base64url(br#"{"alg":"HS256","typ":"JWT"}"#),
        base64url(claims)
    );
    let key = jsonwebtoken::EncodingKey::from_secret(TOKEN_SECRET);
    let signature = jsonwebtoken::crypto::sign(
        signing_input.as_bytes(),
        &key,
        jsonwebtoken::Algorithm::HS256,
    )
    .expect("HS256 signs anything");
    format!("{signing_input}.{signature}")
}

/// Base64url without padding, as in a JWT.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}
