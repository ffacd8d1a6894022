//! `hearth-probe`: a stand-in worker for the isolation tests — never part of a real install.
//!
//! Started through `hearth_isolation::spawn_worker` in place of `hearth worker`, it reaches the
//! test the way a worker reaches the gateway (the connection on `HEARTH_WORKER_FD`), reads one
//! line of JSON `{"probes": [{"op": …, …}, …]}`, tries each thing a misbehaving worker might
//! try, and answers with one line `{"results": [{"op": …, "result": "ok" | "EACCES" | …,
//! "value": …}, …]}` before exiting.
//!
//! Ops: `read {path}`, `list {path}`, `create {path}` (value: the file's mode, e.g. "0600"),
//! `write {path}`, `rename {from, to}`, `symlink_read {target, link}`, `hard_link {target,
//! link}`, `env`, `fds`, `kill {pid, signal}`, `ptrace {pid}`, `socket {domain}`,
//! `socketpair {domain}`, `tcp_connect {port}`, `unix_connect {path}`, `ids`, `limits` (rlimits
//! and umask), `thread`, `exec {path}`, `chmod {path, mode}` (mode as an octal string),
//! `umask {mask}` (octal string; the old mask is put back), `set_acl {path}` (a POSIX ACL
//! granting uid 4242 read access), `alloc {bytes}` (reserve and touch that much memory), `tty`
//! (session, process group and controlling terminal from `/proc/self/stat`, and opening
//! `/dev/tty`), `type_into_terminal {text}` (`TIOCSTI` of each byte and `TIOCLINUX` on every open
//! descriptor; value: each descriptor's two outcomes), `stderr {text}` (written to fd 2 as is).
//!
//! `hearth-probe abuse PLAN` instead speaks the worker protocol to a real gateway and asks for
//! what a hostile worker would (`hearth-probe/abuse.rs`; `tests/it/abuse.rs`).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::FromRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;

use serde_json::{Value, json};

#[path = "hearth-probe/abuse.rs"]
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
    let fd: i32 = std::env::var("HEARTH_WORKER_FD")
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| std::io::Error::other("HEARTH_WORKER_FD is not set"))?;
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
        libc::ENOTTY => "ENOTTY",
        libc::ENXIO => "ENXIO",
        libc::ENOMEM => "ENOMEM",
        libc::EIO => "EIO",
        libc::ENOTSUP => "ENOTSUP",
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
        "hard_link" => std::fs::hard_link(path(p, "target"), path(p, "link")).map(|()| Value::Null),
        "chmod" => octal(p, "mode").and_then(|mode| {
            std::fs::set_permissions(path(p, "path"), std::fs::Permissions::from_mode(mode)).map(|()| Value::Null)
        }),
        "umask" => octal(p, "mask").and_then(|mask| {
            // SAFETY: the raw system call, so a refusal shows as an error rather than a mask.
            let old = unsafe { libc::syscall(libc::SYS_umask, mask) };
            if old < 0 {
                return last_errno();
            }
            // SAFETY: as above; puts the old mask back.
            unsafe { libc::syscall(libc::SYS_umask, old) };
            Ok(json!(format!("{old:04o}")))
        }),
        "set_acl" => set_acl(&path(p, "path")),
        "alloc" => {
            let bytes = p["bytes"].as_u64().unwrap_or(0) as usize;
            let mut v: Vec<u8> = Vec::new();
            match v.try_reserve_exact(bytes) {
                Ok(()) => {
                    // Touch every page, so the memory is really there.
                    v.resize(bytes, 1);
                    Ok(json!(v.len()))
                }
                Err(_) => Err(std::io::Error::from_raw_os_error(libc::ENOMEM)),
            }
        }
        "tty" => tty(),
        "type_into_terminal" => Ok(type_into_terminal(p["text"].as_str().unwrap_or_default())),
        "stderr" => {
            let text = p["text"].as_str().unwrap_or_default();
            std::io::stderr().write_all(text.as_bytes()).map(|()| Value::Null)
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
        "socketpair" => {
            let domain = p["domain"].as_i64().unwrap_or(0) as libc::c_int;
            let mut fds = [0; 2];
            // SAFETY: socketpair fills the array; both descriptors are closed at once.
            if unsafe { libc::socketpair(domain, libc::SOCK_STREAM, 0, fds.as_mut_ptr()) } == 0 {
                unsafe {
                    libc::close(fds[0]);
                    libc::close(fds[1]);
                }
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
            // Read, not set: a sandboxed worker may not set a umask that opens anything.
            let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
            let umask = status.lines().find_map(|l| l.strip_prefix("Umask:")).map(str::trim).unwrap_or("?");
            Ok(json!({
                "core": get(libc::RLIMIT_CORE),
                "nofile": get(libc::RLIMIT_NOFILE),
                "nproc": get(libc::RLIMIT_NPROC),
                "fsize": get(libc::RLIMIT_FSIZE),
                "as": get(libc::RLIMIT_AS),
                "umask": umask,
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

fn octal(p: &Value, key: &str) -> std::io::Result<u32> {
    let text = p[key].as_str().unwrap_or_default();
    u32::from_str_radix(text, 8).map_err(|_| std::io::Error::other(format!("{key} {text:?} is not octal")))
}

/// Writes a POSIX access ACL (user::rw-, user:4242:r--, group::---, mask::r--, other::---).
fn set_acl(path: &str) -> std::io::Result<Value> {
    let mut blob = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in
        [(0x01u16, 6u16, u32::MAX), (0x02, 4, 4242), (0x04, 0, u32::MAX), (0x10, 4, u32::MAX), (0x20, 0, u32::MAX)]
    {
        blob.extend(tag.to_le_bytes());
        blob.extend(perm.to_le_bytes());
        blob.extend(id.to_le_bytes());
    }
    let p = std::ffi::CString::new(path).map_err(std::io::Error::other)?;
    // SAFETY: valid C strings and buffer.
    let r =
        unsafe { libc::setxattr(p.as_ptr(), c"system.posix_acl_access".as_ptr(), blob.as_ptr().cast(), blob.len(), 0) };
    if r == 0 { Ok(Value::Null) } else { last_errno() }
}

/// The session, process group and controlling terminal (`tty_nr`, 0 for none) the kernel
/// reports, and whether `/dev/tty` — the controlling terminal, whichever it is — opens.
fn tty() -> std::io::Result<Value> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<i64> = rest.split_whitespace().skip(1).take(4).filter_map(|f| f.parse().ok()).collect();
    let dev_tty = match std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty") {
        Ok(_) => "ok".to_owned(),
        Err(e) => errno_name(e.raw_os_error().unwrap_or(0)),
    };
    Ok(json!({
        "pid": std::process::id(),
        "pgrp": fields.get(1),
        "session": fields.get(2),
        "tty_nr": fields.get(3),
        "dev_tty": dev_tty,
    }))
}

/// `TIOCSTI` of every byte of `text`, then `TIOCLINUX` (paste the selection), on every open
/// descriptor: what a worker would do to type into the terminal it was started from.
fn type_into_terminal(text: &str) -> Value {
    let mut out = serde_json::Map::new();
    for fd in 0..1024 {
        // SAFETY: F_GETFD only asks whether the descriptor is open.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
            continue;
        }
        let sti = text.bytes().try_for_each(|b| {
            // SAFETY: TIOCSTI reads one byte from the pointer.
            if unsafe { libc::ioctl(fd, libc::TIOCSTI, &b as *const u8) } == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
        let paste = 3u8;
        // SAFETY: TIOCLINUX reads its subcode byte from the pointer.
        let linux = if unsafe { libc::ioctl(fd, libc::TIOCLINUX, &paste as *const u8) } == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        };
        let name = |r: std::io::Result<()>| match r {
            Ok(()) => "ok".to_owned(),
            Err(e) => errno_name(e.raw_os_error().unwrap_or(0)),
        };
        out.insert(fd.to_string(), json!([name(sti), name(linux)]));
    }
    Value::Object(out)
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
