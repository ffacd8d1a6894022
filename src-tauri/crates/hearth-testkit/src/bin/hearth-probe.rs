//! `hearth-probe`: a stand-in worker for the isolation tests — never part of a real install.
//!
//! Started through `hearth_isolation::spawn_worker` in place of `hearth worker`, it reaches the
//! test the way a worker reaches the gateway (`HEARTH_WORKER_FD` or `HEARTH_GATEWAY_SOCKET`),
//! reads one line of JSON `{"probes": [{"op": …, …}, …]}`, tries each thing a misbehaving worker
//! might try, and answers with one line `{"results": [{"op": …, "result": "ok" | "EACCES" | …,
//! "value": …}, …]}` before exiting.
//!
//! Ops: `read {path}`, `list {path}`, `create {path}` (value: the file's mode, e.g. "0600"),
//! `write {path}`, `rename {from, to}`, `symlink_read {target, link}`, `env`, `fds`,
//! `kill {pid, signal}`, `ptrace {pid}`, `socket {domain}`, `tcp_connect {port}`,
//! `unix_connect {path}`, `ids`, `limits` (rlimits and umask), `thread`, `exec {path}`.
//!
//! `hearth-probe abuse PLAN` instead speaks the worker protocol to a real gateway and asks for
//! what a hostile worker would (`probe_abuse.rs`; `tests/it/abuse.rs`).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::FromRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;

use serde_json::{Value, json};

#[path = "../probe_abuse.rs"]
mod abuse;

fn main() {
    let stream = match connect() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("hearth-probe: cannot reach the test: {e}");
            std::process::exit(2);
        }
    };
    let args: Vec<String> = std::env::args().collect();
    if let [_, mode, plan] = args.as_slice()
        && mode == "abuse"
    {
        std::process::exit(abuse::run(stream, plan));
    }
    // Read through a reference, not a clone: a duplicate descriptor would show up in `fds`.
    let mut line = String::new();
    if BufReader::new(&stream).read_line(&mut line).is_err() || line.trim().is_empty() {
        return;
    }
    let request: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
    let probes = request["probes"].as_array().cloned().unwrap_or_default();
    let results: Vec<Value> = probes.iter().map(run).collect();
    let mut out = serde_json::to_string(&json!({ "results": results })).expect("json");
    out.push('\n');
    let mut w = &stream;
    let _ = w.write_all(out.as_bytes());
}

fn connect() -> std::io::Result<UnixStream> {
    if let Some(path) = std::env::var_os("HEARTH_GATEWAY_SOCKET") {
        return UnixStream::connect(path);
    }
    let fd: i32 = std::env::var("HEARTH_WORKER_FD")
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| std::io::Error::other("neither HEARTH_GATEWAY_SOCKET nor HEARTH_WORKER_FD is set"))?;
    // SAFETY: the spawner hands this descriptor to us and nothing else in this process uses it.
    Ok(unsafe { UnixStream::from_raw_fd(fd) })
}

fn errno_name(code: i32) -> String {
    let name = match code {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::EACCES => "EACCES",
        libc::EEXIST => "EEXIST",
        libc::EXDEV => "EXDEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::EROFS => "EROFS",
        libc::ELOOP => "ELOOP",
        libc::ENOSYS => "ENOSYS",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::EFBIG => "EFBIG",
        _ => return format!("E{code}"),
    };
    name.to_owned()
}

fn outcome(r: std::io::Result<Value>) -> (String, Value) {
    match r {
        Ok(v) => ("ok".to_owned(), v),
        Err(e) => match e.raw_os_error() {
            Some(code) => (errno_name(code), Value::Null),
            None => ("error".to_owned(), Value::String(e.to_string())),
        },
    }
}

fn last_errno<T>() -> std::io::Result<T> {
    Err(std::io::Error::last_os_error())
}

fn path(p: &Value, key: &str) -> String {
    p[key].as_str().unwrap_or_default().to_owned()
}

fn run(p: &Value) -> Value {
    let op = p["op"].as_str().unwrap_or_default();
    let r: std::io::Result<Value> = match op {
        "read" => read(&path(p, "path")),
        "list" => std::fs::read_dir(path(p, "path")).and_then(|d| {
            let mut names: Vec<String> =
                d.map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned())).collect::<Result<_, _>>()?;
            names.sort();
            Ok(json!(names))
        }),
        "create" => std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path(p, "path"))
            .and_then(|f| f.metadata())
            .map(|m| json!(format!("{:04o}", m.permissions().mode() & 0o7777))),
        "write" => std::fs::write(path(p, "path"), b"probe").map(|()| Value::Null),
        "rename" => std::fs::rename(path(p, "from"), path(p, "to")).map(|()| Value::Null),
        "symlink_read" => {
            std::os::unix::fs::symlink(path(p, "target"), path(p, "link")).and_then(|()| read(&path(p, "link")))
        }
        "env" => Ok(json!(
            std::env::vars_os()
                .map(|(k, v)| (k.to_string_lossy().into_owned(), v.to_string_lossy().into_owned()))
                .collect::<std::collections::BTreeMap<_, _>>()
        )),
        "fds" => fds(),
        "kill" => {
            let pid = p["pid"].as_i64().unwrap_or(0) as libc::pid_t;
            let sig = p["signal"].as_i64().unwrap_or(0) as libc::c_int;
            // SAFETY: kill has no memory effects.
            if unsafe { libc::kill(pid, sig) } == 0 { Ok(Value::Null) } else { last_errno() }
        }
        "ptrace" => {
            let pid = p["pid"].as_i64().unwrap_or(0) as libc::pid_t;
            const PTRACE_SEIZE: libc::c_uint = 0x4206;
            // SAFETY: PTRACE_SEIZE with null addr/data; detached again right away on success.
            let r = unsafe { libc::ptrace(PTRACE_SEIZE, pid, 0usize, 0usize) };
            if r == 0 {
                unsafe { libc::ptrace(libc::PTRACE_DETACH, pid, 0usize, 0usize) };
                Ok(Value::Null)
            } else {
                last_errno()
            }
        }
        "socket" => {
            let domain = p["domain"].as_i64().unwrap_or(0) as libc::c_int;
            // SAFETY: socket has no memory effects; the descriptor is closed at once.
            let fd = unsafe { libc::socket(domain, libc::SOCK_STREAM, 0) };
            if fd >= 0 {
                unsafe { libc::close(fd) };
                Ok(Value::Null)
            } else {
                last_errno()
            }
        }
        "tcp_connect" => {
            let port = p["port"].as_u64().unwrap_or(0) as u16;
            std::net::TcpStream::connect(("127.0.0.1", port)).map(|_| Value::Null)
        }
        "unix_connect" => UnixStream::connect(path(p, "path")).map(|_| Value::Null),
        "ids" => {
            // SAFETY: plain credential queries.
            let (uid, euid, gid, egid) = unsafe { (libc::getuid(), libc::geteuid(), libc::getgid(), libc::getegid()) };
            let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
            let mut groups = vec![0 as libc::gid_t; n.max(0) as usize];
            let n = unsafe { libc::getgroups(n, groups.as_mut_ptr()) };
            groups.truncate(n.max(0) as usize);
            Ok(json!({ "uid": uid, "euid": euid, "gid": gid, "egid": egid, "groups": groups }))
        }
        "limits" => {
            let get = |r| {
                let mut l = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
                // SAFETY: a valid out-pointer.
                unsafe { libc::getrlimit(r, &mut l) };
                json!([l.rlim_cur, l.rlim_max])
            };
            // SAFETY: reads the calling process's umask and puts it back.
            let umask = unsafe {
                let m = libc::umask(0o022);
                libc::umask(m);
                m
            };
            Ok(json!({
                "core": get(libc::RLIMIT_CORE),
                "nofile": get(libc::RLIMIT_NOFILE),
                "nproc": get(libc::RLIMIT_NPROC),
                "fsize": get(libc::RLIMIT_FSIZE),
                "umask": format!("{umask:04o}"),
            }))
        }
        "thread" => std::thread::Builder::new()
            .spawn(|| 7)
            .and_then(|h| h.join().map(|v| json!(v)).map_err(|_| std::io::Error::other("thread panicked"))),
        "exec" => std::process::Command::new(path(p, "path"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .status()
            .map(|s| json!(s.code())),
        other => Err(std::io::Error::other(format!("unknown op {other:?}"))),
    };
    let (result, value) = outcome(r);
    json!({ "op": op, "result": result, "value": value })
}

fn read(path: &str) -> std::io::Result<Value> {
    let mut buf = Vec::new();
    std::fs::File::open(path)?.take(4096).read_to_end(&mut buf)?;
    Ok(json!(String::from_utf8_lossy(&buf)))
}

/// Open descriptors with what they point at, leaving out the one that reads `/proc/self/fd`.
fn fds() -> std::io::Result<Value> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let entry = entry?;
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let target = std::fs::read_link(entry.path()).map(|t| t.to_string_lossy().into_owned()).unwrap_or_default();
        if target.starts_with("/proc/") && target.ends_with("/fd") {
            continue;
        }
        out.push(json!([fd, target]));
    }
    out.sort_by_key(|v| v[0].as_i64());
    Ok(json!(out))
}
