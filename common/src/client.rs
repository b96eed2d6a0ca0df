//! Frames the browser sends to the relay.
//!
//! The shapes are those of the classic Django Channels front-ends, so existing clients keep
//! working: `{"data": "ls\r"}` carries keystrokes, `{"resize": [rows, cols]}` (or
//! `{"resize": {"rows": R, "cols": C}}`) resizes the terminal, and chat uses
//! `{"action": ...}` frames (see [`crate::chat`]). `{"ack": N}` is Opsdeck's own: terminal
//! flow control (see [`ClientFrame::Ack`]).

use serde::{Deserialize, Serialize};

use crate::chat::ChatRequest;
pub use crate::error::FrameError;

/// The largest terminal dimension the relay accepts, in rows or columns.
pub const MAX_TERM_DIMENSION: u16 = 1000;

/// A terminal size in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TermSize {
    pub rows: u16,
    pub cols: u16,
}

impl TermSize {
    /// A size the relay will apply: both dimensions in `1..=MAX_TERM_DIMENSION`.
    pub fn new(rows: u16, cols: u16) -> Result<Self, FrameError> {
        let valid = 1..=MAX_TERM_DIMENSION;
        if valid.contains(&rows) && valid.contains(&cols) {
            Ok(Self { rows, cols })
        } else {
            Err(FrameError::BadSize {
                rows,
                cols,
                max: MAX_TERM_DIMENSION,
            })
        }
    }
}

impl Default for TermSize {
    fn default() -> Self {
        Self { rows: 24, cols: 80 }
    }
}

/// One frame from the browser, already validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawClientFrame", into = "RawClientFrame")]
pub enum ClientFrame {
    /// Keystrokes (or pasted text) for the terminal.
    Input(String),
    /// The terminal's new size.
    Resize(TermSize),
    /// A chat room request.
    Chat(ChatRequest),
    /// Terminal flow control: the browser has displayed the output up to this byte
    /// position. A terminal opened with `flow=1` sends at most [`FLOW_WINDOW`] bytes
    /// beyond the last position acknowledged, so a slow screen slows the remote program
    /// instead of piling output up in the browser (where xterm.js discards it past 50 MB).
    Ack(u64),
}

/// Bytes of terminal output the relay sends beyond the browser's last [`ClientFrame::Ack`]
/// on a flow-controlled terminal.
pub const FLOW_WINDOW: u64 = 1024 * 1024;

/// The order of a `{"resize": [a, b]}` pair. Opsdeck and the classic pod terminal send
/// `[rows, cols]`; the classic SSH front end sent `[cols, rows]` (paramiko's
/// `resize_pty(width, height)`). The object form names its fields and reads the same in
/// either order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ResizeOrder {
    #[default]
    RowsCols,
    ColsRows,
}

impl ClientFrame {
    /// Parses a text frame, with an error that says what was wrong.
    pub fn parse(text: &str) -> Result<Self, FrameError> {
        Self::parse_with(text, ResizeOrder::RowsCols)
    }

    /// Parses a text frame whose resize pair is in `order`.
    pub fn parse_with(text: &str, order: ResizeOrder) -> Result<Self, FrameError> {
        let mut raw = serde_json::from_str::<RawClientFrame>(text)
            .map_err(|e| FrameError::Malformed(e.to_string()))?;
        if order == ResizeOrder::ColsRows
            && let Some(RawResize::Pair([cols, rows])) = raw.resize
        {
            raw.resize = Some(RawResize::Pair([rows, cols]));
        }
        Self::try_from(raw)
    }

    /// The JSON text of this frame, as the browser sends it.
    pub fn to_json(&self) -> String {
        // Serialising plain structs of strings and integers cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The resize payload in either classic form.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum RawResize {
    Pair([u32; 2]),
    Named { rows: u32, cols: u32 },
}

/// The union of every field a client frame may have; [`ClientFrame`] is what survives
/// validation. Unknown fields are ignored so newer clients can add hints.
#[derive(Debug, Default, Serialize, Deserialize)]
struct RawClientFrame {
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resize: Option<RawResize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ack: Option<u64>,
    /// Only with `"action": "message"`; any JSON here, so a wrong type gets its own error.
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<serde_json::Value>,
}

impl TryFrom<RawClientFrame> for ClientFrame {
    type Error = FrameError;

    fn try_from(raw: RawClientFrame) -> Result<Self, FrameError> {
        match (raw.action, raw.data, raw.resize, raw.ack) {
            (Some(action), data, None, None) => {
                ChatRequest::from_parts(&action, data, raw.client_id).map(Self::Chat)
            }
            _ if raw.client_id.is_some() => Err(FrameError::ClientIdNotHere),
            (None, Some(data), None, None) => match data {
                serde_json::Value::String(s) => Ok(Self::Input(s)),
                _ => Err(FrameError::DataNotText),
            },
            (None, None, Some(resize), None) => {
                let (rows, cols) = match resize {
                    RawResize::Pair([rows, cols]) | RawResize::Named { rows, cols } => (rows, cols),
                };
                let clamp = |n: u32| u16::try_from(n).unwrap_or(u16::MAX);
                TermSize::new(clamp(rows), clamp(cols)).map(Self::Resize)
            }
            (None, None, None, Some(position)) => Ok(Self::Ack(position)),
            (None, None, None, None) => Err(FrameError::Unknown),
            _ => Err(FrameError::Ambiguous),
        }
    }
}

impl From<ClientFrame> for RawClientFrame {
    fn from(frame: ClientFrame) -> Self {
        match frame {
            ClientFrame::Input(s) => Self {
                data: Some(serde_json::Value::String(s)),
                ..Self::default()
            },
            ClientFrame::Resize(size) => Self {
                resize: Some(RawResize::Pair([size.rows.into(), size.cols.into()])),
                ..Self::default()
            },
            ClientFrame::Ack(position) => Self {
                ack: Some(position),
                ..Self::default()
            },
            ClientFrame::Chat(request) => {
                let (action, data, client_id) = request.into_parts();
                Self {
                    action: Some(action.to_owned()),
                    data,
                    client_id,
                    ..Self::default()
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_frames_parse() {
        assert_eq!(
            ClientFrame::parse(r#"{"data":"ls\r"}"#),
            Ok(ClientFrame::Input("ls\r".into()))
        );
        assert_eq!(
            ClientFrame::parse(r#"{"resize":[40,120]}"#),
            Ok(ClientFrame::Resize(TermSize {
                rows: 40,
                cols: 120
            }))
        );
        assert_eq!(
            ClientFrame::parse(r#"{"resize":{"rows":40,"cols":120}}"#),
            Ok(ClientFrame::Resize(TermSize {
                rows: 40,
                cols: 120
            }))
        );
    }

    #[test]
    fn every_frame_round_trips() {
        let frames = [
            ClientFrame::Input("echo 你好 😀\r".into()),
            ClientFrame::Resize(TermSize {
                rows: 1,
                cols: 1000,
            }),
            ClientFrame::Chat(ChatRequest::Message {
                message: "hi".into(),
                client_id: None,
            }),
            ClientFrame::Chat(ChatRequest::Message {
                message: "hi".into(),
                client_id: Some(crate::chat::ClientId::new("Z-9_").unwrap()),
            }),
            ClientFrame::Chat(ChatRequest::UserInfo),
            ClientFrame::Ack(u64::MAX),
        ];
        for frame in frames {
            assert_eq!(ClientFrame::parse(&frame.to_json()), Ok(frame));
        }
    }

    #[test]
    fn the_classic_ssh_order_reads_the_pair_as_cols_rows_and_the_object_form_alike() {
        let size = Ok(ClientFrame::Resize(TermSize {
            rows: 40,
            cols: 120,
        }));
        assert_eq!(
            ClientFrame::parse_with(r#"{"resize":[120,40]}"#, ResizeOrder::ColsRows),
            size
        );
        assert_eq!(
            ClientFrame::parse_with(
                r#"{"resize":{"rows":40,"cols":120}}"#,
                ResizeOrder::ColsRows
            ),
            size
        );
        assert_eq!(ClientFrame::parse(r#"{"resize":[40,120]}"#), size);
    }

    #[test]
    fn resize_is_serialised_in_the_classic_pair_form() {
        let json = ClientFrame::Resize(TermSize { rows: 3, cols: 4 }).to_json();
        assert_eq!(json, r#"{"resize":[3,4]}"#);
    }

    #[test]
    fn bad_frames_say_what_is_wrong() {
        assert!(matches!(
            ClientFrame::parse("{not json"),
            Err(FrameError::Malformed(_))
        ));
        assert_eq!(ClientFrame::parse("{}"), Err(FrameError::Unknown));
        assert_eq!(
            ClientFrame::parse(r#"{"ack":1,"data":"x"}"#),
            Err(FrameError::Ambiguous)
        );
        assert!(matches!(
            ClientFrame::parse(r#"{"ack":-1}"#),
            Err(FrameError::Malformed(_))
        ));
        assert_eq!(
            ClientFrame::parse(r#"{"data":"x","resize":[1,1]}"#),
            Err(FrameError::Ambiguous)
        );
        assert_eq!(
            ClientFrame::parse(r#"{"resize":[0,80]}"#),
            Err(FrameError::BadSize {
                rows: 0,
                cols: 80,
                max: 1000
            })
        );
        assert_eq!(
            ClientFrame::parse(r#"{"resize":[24,1001]}"#),
            Err(FrameError::BadSize {
                rows: 24,
                cols: 1001,
                max: 1000
            })
        );
        assert_eq!(
            ClientFrame::parse(r#"{"resize":[24,4294967295]}"#),
            Err(FrameError::BadSize {
                rows: 24,
                cols: u16::MAX,
                max: 1000
            })
        );
        assert_eq!(
            ClientFrame::parse(r#"{"data":42}"#),
            Err(FrameError::DataNotText)
        );
        assert!(matches!(
            ClientFrame::parse(r#"{"resize":"big"}"#),
            Err(FrameError::Malformed(_))
        ));
    }
}
