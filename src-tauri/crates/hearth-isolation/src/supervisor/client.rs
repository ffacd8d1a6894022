//! The gateway's side: one connection to `hearth supervisor`, greeted, one request at a time,
//! each within a time limit, every failure an error that says what to do.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hearth_proto::control::BackupSummary;
use hearth_proto::frame::{self, FrameError};
use hearth_proto::supervisor::{
    SUPERVISOR_PROTOCOL_VERSION, SpawnRequest, Spawned, SupervisorError, SupervisorReply, SupervisorRequest,
    SupervisorStatus,
};
use tokio::net::UnixStream;

use crate::dirs;

/// How long the client waits for one answer (a spawn may wait for the account database lock).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long it waits for a backup: a household's histories may take a while to copy.
const BACKUP_TIMEOUT: Duration = Duration::from_secs(30 * 60);
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "the Hearth supervisor is not running at {}: start it as root (`sudo hearth supervisor --admin-user $USER`; on macOS approve Hearth in System Settings → General → Login Items)",
        path.display()
    )]
    NotRunning { path: PathBuf },
    #[error(
        "the Hearth supervisor at {} serves only its admin's uid, and this process runs as uid {uid}: run Hearth as the user named with `hearth supervisor --admin-user`",
        path.display()
    )]
    NotAdmitted { path: PathBuf, uid: u32 },
    #[error("{0}")]
    Supervisor(#[from] SupervisorError),
    #[error("could not talk to the Hearth supervisor at {}: {message}", path.display())]
    Io { path: PathBuf, message: String },
}

/// What a removal did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    pub archived_to: Option<PathBuf>,
    pub account_removed: bool,
}

/// One connection to the supervisor, greeted. Requests go one at a time; open several clients
/// for requests that should not wait for each other.
#[derive(Debug)]
pub struct SupervisorClient {
    stream: UnixStream,
    path: PathBuf,
    sandbox: bool,
    sandbox_detail: String,
}

impl SupervisorClient {
    /// Connects and says hello; fails clearly when nothing listens, when the supervisor does not
    /// admit this uid, or when it speaks another protocol version.
    pub async fn connect(path: &Path) -> Result<SupervisorClient, ClientError> {
        let stream = UnixStream::connect(path).await.map_err(|e| match e.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
                ClientError::NotRunning { path: path.to_owned() }
            }
            _ => ClientError::Io { path: path.to_owned(), message: e.to_string() },
        })?;
        let mut client =
            SupervisorClient { stream, path: path.to_owned(), sandbox: false, sandbox_detail: String::new() };
        match client.request(SupervisorRequest::Hello { version: SUPERVISOR_PROTOCOL_VERSION }).await {
            Ok(SupervisorReply::Hello { sandbox, sandbox_detail, .. }) => {
                client.sandbox = sandbox;
                client.sandbox_detail = sandbox_detail;
                Ok(client)
            }
            Ok(other) => Err(client.unexpected(&other)),
            // The supervisor closes a connection from any uid but its admin's without a word.
            Err(ClientError::Io { .. }) => {
                Err(ClientError::NotAdmitted { path: path.to_owned(), uid: nix::unistd::geteuid().as_raw() })
            }
            Err(e) => Err(e),
        }
    }

    /// Whether workers can be started in the kernel sandbox.
    pub fn sandbox(&self) -> bool {
        self.sandbox
    }

    /// What the supervisor's kernel offers for the sandbox, in words.
    pub fn sandbox_detail(&self) -> &str {
        &self.sandbox_detail
    }

    pub async fn spawn(&mut self, request: SpawnRequest) -> Result<Spawned, ClientError> {
        match self.request(SupervisorRequest::Spawn(request)).await? {
            SupervisorReply::Spawned(s) => Ok(s),
            other => Err(self.unexpected(&other)),
        }
    }

    /// Stops the member's worker (only the one with `pid`, if given); returns whether one ran.
    pub async fn stop(&mut self, member_id: &str, pid: Option<u32>) -> Result<bool, ClientError> {
        match self.request(SupervisorRequest::Stop { member_id: member_id.to_owned(), pid }).await? {
            SupervisorReply::Stopped { was_running } => Ok(was_running),
            other => Err(self.unexpected(&other)),
        }
    }

    pub async fn remove(
        &mut self,
        member_id: &str,
        data_dir: &Path,
        archive_stamp: &str,
    ) -> Result<Removal, ClientError> {
        let request = SupervisorRequest::Remove {
            member_id: member_id.to_owned(),
            data_dir: data_dir.to_owned(),
            archive_stamp: archive_stamp.to_owned(),
        };
        match self.request(request).await? {
            SupervisorReply::Removed { archived_to, account_removed } => Ok(Removal { archived_to, account_removed }),
            other => Err(self.unexpected(&other)),
        }
    }

    /// How much of the disk a member's folder takes (measured by root, which can read it).
    pub async fn usage(&mut self, data_dir: &Path, member_id: &str) -> Result<dirs::Usage, ClientError> {
        let request = SupervisorRequest::Usage { data_dir: data_dir.to_owned(), member_id: member_id.to_owned() };
        match self.request(request).await? {
            SupervisorReply::Usage { bytes, files } => Ok(dirs::Usage { bytes, files }),
            other => Err(self.unexpected(&other)),
        }
    }

    /// Asks root to back the household in `data_dir` up into a new folder in `dest_dir` (the
    /// admin's), keeping the newest `keep` there. Without secrets.
    pub async fn backup(&mut self, data_dir: &Path, dest_dir: &Path, keep: u32) -> Result<BackupSummary, ClientError> {
        let request = SupervisorRequest::Backup { data_dir: data_dir.to_owned(), dest_dir: dest_dir.to_owned(), keep };
        match self.request_within(request, BACKUP_TIMEOUT).await? {
            SupervisorReply::BackedUp(summary) => Ok(summary),
            other => Err(self.unexpected(&other)),
        }
    }

    pub async fn status(&mut self) -> Result<SupervisorStatus, ClientError> {
        match self.request(SupervisorRequest::Status).await? {
            SupervisorReply::Status(s) => Ok(s),
            other => Err(self.unexpected(&other)),
        }
    }

    async fn request(&mut self, request: SupervisorRequest) -> Result<SupervisorReply, ClientError> {
        self.request_within(request, REQUEST_TIMEOUT).await
    }

    async fn request_within(&mut self, request: SupervisorRequest, limit: Duration) -> Result<SupervisorReply, ClientError> {
        let io = |e: FrameError| ClientError::Io {
            path: self.path.clone(),
            message: match e {
                FrameError::Closed => "the supervisor closed the connection".to_owned(),
                e => e.to_string(),
            },
        };
        let exchange = async {
            frame::write_frame(&mut self.stream, &request).await?;
            frame::read_frame::<_, Result<SupervisorReply, SupervisorError>>(&mut self.stream).await
        };
        match tokio::time::timeout(limit, exchange).await {
            Ok(Ok(reply)) => Ok(reply?),
            Ok(Err(e)) => Err(io(e)),
            Err(_) => Err(ClientError::Io {
                path: self.path.clone(),
                message: format!("no answer within {} seconds", limit.as_secs()),
            }),
        }
    }

    fn unexpected(&self, reply: &SupervisorReply) -> ClientError {
        ClientError::Io { path: self.path.clone(), message: format!("unexpected answer {reply:?}") }
    }
}
