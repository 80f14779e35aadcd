//! Command errors: each becomes an error reply with Redis's exact text and keeps the
//! connection open. (Protocol errors close the connection; see `common::resp::RequestError`.)

use bytes::Bytes;
use common::resp::Frame;

/// A command failed; the reply says why, in Redis's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// `WRONGTYPE Operation against a key holding the wrong kind of value`
    #[error("WRONGTYPE Operation against a key holding the wrong kind of value")]
    WrongType,
    /// `ERR syntax error`
    #[error("ERR syntax error")]
    Syntax,
    /// `ERR value is not an integer or out of range`
    #[error("ERR value is not an integer or out of range")]
    NotInteger,
    /// `ERR value is not a valid float`
    #[error("ERR value is not a valid float")]
    NotFloat,
    /// `ERR increment or decrement would overflow`
    #[error("ERR increment or decrement would overflow")]
    Overflow,
    /// `ERR no such key`
    #[error("ERR no such key")]
    NoSuchKey,
    /// `ERR index out of range`
    #[error("ERR index out of range")]
    IndexOutOfRange,
    /// `ERR wrong number of arguments for '<cmd>' command`
    #[error("ERR wrong number of arguments for '{0}' command")]
    WrongArity(String),
    /// Any other error; the text includes its prefix word.
    #[error("{0}")]
    Other(String),
    /// An error whose text quotes client bytes verbatim (they need not be UTF-8).
    #[error("{}", String::from_utf8_lossy(.0))]
    Bytes(Bytes),
}

impl CommandError {
    /// An `ERR …` error with the given message.
    pub fn err(message: impl std::fmt::Display) -> CommandError {
        CommandError::Other(format!("ERR {message}"))
    }

    /// An error with its own prefix word, e.g. `CommandError::raw("NOAUTH Authentication required.")`.
    pub fn raw(text: impl Into<String>) -> CommandError {
        CommandError::Other(text.into())
    }

    /// The error reply frame.
    pub fn into_frame(self) -> Frame {
        match self {
            CommandError::Bytes(b) => Frame::Error(b),
            other => Frame::Error(Bytes::from(other.to_string())),
        }
    }
}

impl From<CommandError> for Frame {
    fn from(e: CommandError) -> Frame {
        e.into_frame()
    }
}

/// What command handlers return.
pub type CmdResult = Result<Frame, CommandError>;
