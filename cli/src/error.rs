//! Every way a command can fail, sorted by what the user should do about it. `main` turns each
//! kind into its exit code; everything else returns `Result<_, Error>` and never exits.

use std::fmt;

use r2mpu_api::Problem;

#[derive(Debug)]
pub enum Error {
    /// The command line or an input file makes no sense: fix the invocation.
    Usage(String),
    /// The server answered with a 4xx: retrying the same request will not help.
    Refused {
        /// What we asked, e.g. `PUT part 3`.
        what: String,
        status: u16,
        /// The server's problem document, when the body was one.
        problem: Option<Box<Problem>>,
    },
    /// The network failed, or the server kept answering 408/429/5xx, through every retry.
    Unavailable(String),
    /// The bytes do not match their checksum: something corrupted them, or the object changed.
    Integrity(String),
    /// Reading or writing a local file failed.
    Io(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A local I/O failure, with what we were doing and to which path.
    pub fn io(context: impl fmt::Display, error: std::io::Error) -> Error {
        Error::Io(format!("{context}: {error}"))
    }

    /// The server's problem `code`, when it refused with a problem document.
    pub fn problem(&self) -> Option<&r2mpu_api::ApiError> {
        match self {
            Error::Refused { problem: Some(problem), .. } => Some(&problem.error),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(message) | Error::Unavailable(message) | Error::Integrity(message) | Error::Io(message) => {
                f.write_str(message)
            }
            Error::Refused { what, status, problem: Some(problem) } => {
                write!(f, "{what}: refused with {status} {}: {}", problem.error.code(), problem.detail)
            }
            Error::Refused { what, status, problem: None } => {
                write!(f, "{what}: refused with HTTP {status} (no problem document in the response)")
            }
        }
    }
}

impl std::error::Error for Error {}
