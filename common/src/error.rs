//! Why a browser's frame or query string was refused. Each `Display` is what the user reads
//! (in an error frame, or a close reason), so it says what was wrong and what to send.
//!
//! Apart from the frames and queries themselves so that [`crate::chat`] and [`crate::client`]
//! both use it without importing each other.

/// Why a client frame was refused. Its `Display` is what the user reads in the error frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("malformed frame: {0}; send JSON such as {{\"data\": \"ls\\r\"}}")]
    Malformed(String),
    #[error("unknown frame: expected one of \"data\", \"resize\", \"action\" or \"ack\"")]
    Unknown,
    #[error("a frame carries exactly one of \"data\", \"resize\", \"action\" or \"ack\"")]
    Ambiguous,
    #[error("resize to {rows}x{cols} refused: rows and cols must be between 1 and {max}")]
    BadSize { rows: u16, cols: u16, max: u16 },
    #[error("\"data\" must be a string of keystrokes")]
    DataNotText,
    #[error("unknown chat action {0:?}: expected \"message\" or \"userinfo\"")]
    UnknownAction(String),
    #[error("a chat message needs {{\"data\": {{\"message\": \"...\"}}}}")]
    MissingMessage,
    #[error("\"client_id\" {0}; nothing was sent")]
    BadClientId(String),
    #[error("\"client_id\" belongs only on {{\"action\": \"message\"}} frames")]
    ClientIdNotHere,
    #[error("a text frame was not valid UTF-8")]
    NotUtf8,
    #[error("frame of {size} bytes is larger than the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("this stream does not accept {0} frames")]
    NotAccepted(&'static str),
}

/// Why an endpoint's query string was refused (close 4400 with this text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("bad query string: {0}")]
    Malformed(String),
    #[error("{name}={value:?} is not {expected}")]
    BadValue {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("flow={0:?}: use flow=1 to acknowledge output with {{\"ack\": position}} frames")]
    BadFlow(String),
    #[error(
        "resize_order={0:?}: use rows_cols (the default) or cols_rows (the classic SSH front end's [cols, rows] pairs)"
    )]
    BadResizeOrder(String),
    #[error("position needs a session")]
    PositionWithoutSession,
    #[error("{0}")]
    BadSize(FrameError),
}

impl QueryError {
    pub(crate) fn bad_value(name: &'static str, value: &str, expected: &'static str) -> Self {
        Self::BadValue {
            name,
            value: value.chars().take(64).collect(),
            expected,
        }
    }
}
