//! Reading a secret (a bot token, an API key) from stdin or from a named environment variable.
//! Never from argv: a command line is visible to every user through `ps` and `/proc`, and it is
//! kept in shell history.

use std::io::{BufRead as _, IsTerminal as _};
use std::os::fd::AsFd as _;

use nix::sys::termios::{self, LocalFlags, SetArg, Termios};

use crate::failure::Failure;

/// Reads one line from stdin, trimmed. On a terminal it prompts on stderr and turns echo off
/// while the secret is typed or pasted; Ctrl-C then restores the terminal before exiting.
/// Piped input is read as is (the first line).
pub async fn from_stdin(prompt: &str) -> Result<String, Failure> {
    let interactive = std::io::stdin().is_terminal();
    let echo = if interactive {
        eprint!("{prompt} ");
        EchoOff::on(std::io::stdin().as_fd())
    } else {
        None
    };
    let read = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map(|_| line)
    });
    let line = tokio::select! {
        r = read => r.map_err(|e| Failure::unexpected(format!("reading stdin failed: {e}")))?,
        _ = tokio::signal::ctrl_c() => {
            drop(echo);
            eprintln!();
            return Err(Failure::invalid_input("cancelled; nothing was changed"));
        }
    };
    // ECHONL already echoed the Enter key.
    drop(echo);
    let line = line.map_err(|e| Failure::invalid_input(format!("could not read stdin: {e}")))?;
    Ok(line.trim().to_owned())
}

/// The value of environment variable `var`, trimmed.
pub fn from_env(var: &str) -> Result<String, Failure> {
    match std::env::var(var) {
        Ok(v) => Ok(v.trim().to_owned()),
        Err(std::env::VarError::NotPresent) => Err(Failure::invalid_input(format!(
            "the environment variable {var} is not set; export it first (e.g. `export {var}=...` in your shell), or leave out --api-key-env to paste the key"
        ))),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(Failure::invalid_input(format!("the environment variable {var} is not valid text; set it again")))
        }
    }
}

/// Terminal echo switched off for as long as this lives, so the secret is not shown (the Enter
/// key still is: `ECHONL`). A guard of our own rather than a password-reading library's, so the
/// Ctrl-C path above can restore the terminal before the process exits while the blocking read
/// is still waiting.
struct EchoOff {
    /// The terminal it was turned off on (a duplicate descriptor: restoring needs no stdin).
    tty: std::os::fd::OwnedFd,
    saved: Termios,
}

impl EchoOff {
    /// `None` (echo left as it is) when `fd` is no terminal or its settings cannot be changed.
    fn on(fd: std::os::fd::BorrowedFd<'_>) -> Option<Self> {
        let saved = termios::tcgetattr(fd).ok()?;
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        quiet.local_flags.insert(LocalFlags::ECHONL);
        let tty = fd.try_clone_to_owned().ok()?;
        termios::tcsetattr(&tty, SetArg::TCSANOW, &quiet).ok()?;
        Some(Self { tty, saved })
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(&self.tty, SetArg::TCSANOW, &self.saved);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_is_off_while_the_guard_lives_and_restored_after() {
        use std::os::fd::AsFd as _;
        // A pseudo-terminal stands in for the admin's terminal.
        let pty = nix::pty::openpty(None, None).expect("a pseudo-terminal");
        let before = termios::tcgetattr(pty.slave.as_fd()).unwrap();
        assert!(before.local_flags.contains(LocalFlags::ECHO));

        let guard = EchoOff::on(pty.slave.as_fd()).expect("a terminal's echo can be turned off");
        let during = termios::tcgetattr(pty.slave.as_fd()).unwrap();
        assert!(!during.local_flags.contains(LocalFlags::ECHO));
        assert!(during.local_flags.contains(LocalFlags::ECHONL));
        drop(guard);
        let after = termios::tcgetattr(pty.slave.as_fd()).unwrap();
        assert_eq!(after.local_flags, before.local_flags);
    }

    #[test]
    fn not_a_terminal_leaves_everything_alone() {
        let file = tempfile::tempfile().unwrap();
        use std::os::fd::AsFd as _;
        assert!(EchoOff::on(file.as_fd()).is_none());
    }
}
