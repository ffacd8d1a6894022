//! Errors as the family admin reads them, and the exit codes scripts branch on (the table is in
//! the crate docs and in `hearth --help`).

use std::process::ExitCode;

use hearth_gateway::control::ClientError;
use hearth_proto::control::{ControlError, ErrorCode};

pub const EXIT_UNEXPECTED: u8 = 1;
pub const EXIT_NOT_RUNNING: u8 = 3;
pub const EXIT_INVALID_INPUT: u8 = 4;
pub const EXIT_NOT_FOUND: u8 = 5;
pub const EXIT_CONFLICT: u8 = 6;
pub const EXIT_REJECTED: u8 = 7;
pub const EXIT_UNREACHABLE: u8 = 8;
/// `hearth doctor` ran and found warnings, nothing critical. Not an error: the report is printed.
pub const EXIT_DOCTOR_WARNINGS: u8 = 9;
/// `hearth doctor` ran and found something critical.
pub const EXIT_DOCTOR_CRITICAL: u8 = 10;
/// `hearth backup verify` (or `restore`) found a backup missing, changed or damaged.
pub const EXIT_BACKUP_DAMAGED: u8 = 11;
/// Refused for safety: the data folder, or whoever serves its control socket, is not what it
/// must be (someone else could change or impersonate it). The message says what to do.
pub const EXIT_REFUSED: u8 = 12;

/// A command that did not succeed: a stable `code` for scripts, a `message` for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: &'static str,
    pub message: String,
    pub exit: u8,
}

impl Failure {
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self { code: "invalid_input", message: message.into(), exit: EXIT_INVALID_INPUT }
    }

    pub fn unexpected(message: impl Into<String>) -> Self {
        Self { code: "internal", message: message.into(), exit: EXIT_UNEXPECTED }
    }

    pub fn refused(message: impl Into<String>) -> Self {
        Self { code: "refused", message: message.into(), exit: EXIT_REFUSED }
    }

    /// Prints the error (stderr always; stdout too as JSON when asked) and gives the exit code.
    pub fn report(&self, json: bool) -> ExitCode {
        eprintln!("error: {}", self.message);
        if json {
            let body = serde_json::json!({ "error": { "code": self.code, "message": self.message } });
            println!("{body}");
        }
        ExitCode::from(self.exit)
    }
}

impl From<ControlError> for Failure {
    fn from(e: ControlError) -> Self {
        let (code, exit) = match e.code {
            ErrorCode::InvalidInput => ("invalid_input", EXIT_INVALID_INPUT),
            ErrorCode::NotFound => ("not_found", EXIT_NOT_FOUND),
            ErrorCode::Conflict => ("conflict", EXIT_CONFLICT),
            ErrorCode::Rejected => ("rejected", EXIT_REJECTED),
            ErrorCode::Unreachable => ("unreachable", EXIT_UNREACHABLE),
            ErrorCode::VersionMismatch => ("version_mismatch", EXIT_UNEXPECTED),
            ErrorCode::Internal => ("internal", EXIT_UNEXPECTED),
        };
        Self { code, message: e.message, exit }
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::NotRunning(_) => Self { code: "not_running", message: e.to_string(), exit: EXIT_NOT_RUNNING },
            ClientError::Io(_) => Self { code: "internal", message: e.to_string(), exit: EXIT_UNEXPECTED },
            ClientError::Refused(m) => Self::refused(m),
            ClientError::Control(c) => c.into(),
        }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Self::unexpected(format!("{e:#}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_code_has_its_exit_code() {
        let cases = [
            (ErrorCode::InvalidInput, 4),
            (ErrorCode::NotFound, 5),
            (ErrorCode::Conflict, 6),
            (ErrorCode::Rejected, 7),
            (ErrorCode::Unreachable, 8),
            (ErrorCode::VersionMismatch, 1),
            (ErrorCode::Internal, 1),
        ];
        for (code, exit) in cases {
            let f = Failure::from(ControlError::new(code, "m"));
            assert_eq!(f.exit, exit, "{code:?}");
            // The JSON code is the protocol's own spelling.
            assert_eq!(serde_json::to_value(code).unwrap(), f.code, "{code:?}");
        }
        let f = Failure::from(ClientError::NotRunning("/d".into()));
        assert_eq!((f.code, f.exit), ("not_running", 3));
        assert!(f.message.contains("hearth serve"), "{}", f.message);
        let f = Failure::from(ClientError::Refused("served by uid 4242".into()));
        assert_eq!((f.code, f.exit, f.message.as_str()), ("refused", 12, "served by uid 4242"));
    }
}
