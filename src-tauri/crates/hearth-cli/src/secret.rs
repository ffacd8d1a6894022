//! Reading a secret (a bot token, an API key) from stdin or from a named environment variable.
//! Never from argv: a command line is visible to every user through `ps` and `/proc`, and it is
//! kept in shell history.

use std::io::{BufRead as _, IsTerminal as _};

use crate::failure::Failure;

/// Reads one line from stdin, trimmed. On a terminal it prompts on stderr and turns echo off
/// while the secret is typed or pasted; Ctrl-C then restores the terminal before exiting.
/// Piped input is read as is (the first line).
pub async fn from_stdin(prompt: &str) -> Result<String, Failure> {
    let interactive = std::io::stdin().is_terminal();
    let echo = if interactive {
        eprint!("{prompt} ");
        EchoOff::new()
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

/// Terminal echo switched off for as long as this lives.
struct EchoOff {
    saved: libc::termios,
}

impl EchoOff {
    fn new() -> Option<Self> {
        // SAFETY: tcgetattr/tcsetattr on stdin with a termios we own; failure leaves echo on.
        unsafe {
            let mut saved: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(libc::STDIN_FILENO, &mut saved) != 0 {
                return None;
            }
            let mut quiet = saved;
            quiet.c_lflag &= !libc::ECHO;
            quiet.c_lflag |= libc::ECHONL;
            if libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &quiet) != 0 {
                return None;
            }
            Some(Self { saved })
        }
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        // SAFETY: restores the attributes saved in `new`.
        unsafe {
            libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &self.saved);
        }
    }
}
