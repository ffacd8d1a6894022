//! The seccomp filter: an allowlist of the system calls a worker makes, everything else refused.
//!
//! The list ([`rules`]) was found by running the real worker through hearth-cli's end-to-end
//! suite under `strace -f` (turns, tools, memory, reminders, summaries, knowledge searches,
//! crashes), plus what the dynamic loader, Rust's standard library and tokio make on paths the
//! suite did not reach (a panic's backtrace, thread start, process exit); `WORKER_CALLS` (in
//! the tests) is that trace, and a test keeps it allowed. Some calls are allowed only with certain arguments:
//!
//! - `ioctl`: only `FIONBIO`, `FIOCLEX`, `FIONCLEX` and `FIONREAD`; terminal queries (`TCGETS`,
//!   `TIOCGWINSZ`: `isatty`) get `ENOTTY`, as on a descriptor that is no terminal. Everything
//!   else — `TIOCSTI` and `TIOCLINUX` (typing into a terminal), `TIOCSCTTY` — is refused, on
//!   any descriptor, inherited or not;
//! - `chmod`, `fchmod`, `fchmodat`, `fchmodat2`: refused when the mode has a group, other,
//!   set-id or sticky bit — a worker cannot open its folder to other local users (Landlock does
//!   not govern `chmod`); `umask` refused unless it keeps group and other masked;
//! - `clone`: no namespace flags; `clone3` hides its flags behind a pointer, so it fails with
//!   `ENOSYS` and the C library falls back to `clone`;
//! - `socketpair`: `AF_UNIX` only. tokio's signal driver makes one anonymous pair when the
//!   runtime starts; a pair connects to nothing outside the process. `socket`, `connect`,
//!   `bind`, `listen` and `accept*` are refused outright: the worker's one connection is
//!   inherited on fd 3 ([`crate::spawn`]);
//! - `prctl`: naming threads and memory areas, and reading a few flags.
//!
//! A refused call fails with `EPERM` rather than killing the worker: a call missed here is a
//! clear error in one worker's log (and a failed turn), not a crash loop, and an attacker learns
//! nothing from the difference. A call from a foreign architecture (or the x32 ABI, whose
//! numbers overlap) kills the process before its number is even looked at.
//!
//! Why assembled by hand rather than with a crate such as `seccompiler`: the actions differ per
//! rule and per argument — allow, `EPERM`, `ENOSYS` for `clone3` (so the C library falls back to
//! `clone`), `ENOTTY` for terminal queries — while `seccompiler` gives every matching rule of a
//! filter the same one action. The program has one shape — per system call, compare the number
//! and either return or run a short argument check that returns — and every jump is local, so a
//! hundred lines assemble it; the BPF interpreter in the tests runs the finished program,
//! instruction by instruction, against every rule. It is built in the parent before `fork` and
//! installed in the child with one system call.
//!
//! Layout (classic BPF jumps only forward, by at most 255):
//!
//! ```text
//!   A = arch;  if A != native -> KILL           (first, so numbers are never misread)
//!   A = nr;    [x86_64] if A & X32_BIT -> KILL
//!   per rule:  if A != nr goto next;  <action: RET, or load an argument, test it, RET>
//!   RET EPERM                                    (everything not listed)
//! ```

use std::io;

// Classic BPF opcodes (BPF_LD|BPF_W|BPF_ABS is 0x00|0x00|0x20).
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_ALU_AND_K: u16 = 0x04 | 0x50;
const BPF_JMP_JEQ_K: u16 = 0x05 | 0x10;
const BPF_JMP_JSET_K: u16 = 0x05 | 0x40;
const BPF_RET_K: u16 = 0x06;

// Offsets into `struct seccomp_data`.
const NR: u32 = 0;
const ARCH: u32 = 4;
/// The low 32 bits of `args[i]`: every argument checked here is an `int`, `unsigned int` or
/// `umode_t` that the kernel truncates to those bits (and `clone`'s flags, which `clone`
/// truncates too), so the high half cannot smuggle anything past the check.
#[cfg(target_endian = "little")]
const fn arg_lo(i: u32) -> u32 {
    16 + 8 * i
}

pub(super) const RET_ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
pub(super) const RET_KILL: u32 = libc::SECCOMP_RET_KILL_PROCESS;
pub(super) const RET_EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
pub(super) const RET_ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
pub(super) const RET_ENOTTY: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOTTY as u32;

#[cfg_attr(not(any(test, target_arch = "x86_64")), allow(dead_code))]
pub(super) const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
#[cfg_attr(not(any(test, target_arch = "aarch64")), allow(dead_code))]
pub(super) const AUDIT_ARCH_AARCH64: u32 = 0xC000_00B7;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

#[cfg(target_arch = "x86_64")]
pub(super) const NATIVE_ARCH: Option<u32> = Some(AUDIT_ARCH_X86_64);
#[cfg(target_arch = "aarch64")]
pub(super) const NATIVE_ARCH: Option<u32> = Some(AUDIT_ARCH_AARCH64);
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(super) const NATIVE_ARCH: Option<u32> = None;

/// Every namespace flag `clone` accepts (CLONE_NEWNS … CLONE_NEWNET).
const CLONE_NEW_ANY: u32 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET) as u32;

/// Mode bits a worker may not set: group, other, set-uid, set-gid, sticky.
const MODE_NOT_OWNERS: u32 = 0o7077;
/// Bits a umask must keep set: group and other.
const UMASK_KEEPS: u32 = 0o077;

/// `fchmodat2` (Linux 6.6), the same number on every architecture; the libc crate does not name
/// it everywhere yet.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const SYS_FCHMODAT2: libc::c_long = 452;

// prctl options a worker uses.
const PR_SET_NAME: u32 = 15;
const PR_GET_NAME: u32 = 16;
const PR_GET_DUMPABLE: u32 = 3;
const PR_GET_NO_NEW_PRIVS: u32 = 39;
const PR_GET_SECCOMP: u32 = 21;
/// glibc names its malloc arenas with it; harmless.
const PR_SET_VMA: u32 = 0x5356_4d41;

/// What happens to one system call.
#[derive(Debug, Clone, Copy)]
pub(super) enum Action {
    /// Return this (allow, or an errno).
    Ret(u32),
    /// Allow unless `args[arg] & mask` has a bit set; then `EPERM`.
    AllowIfClear { arg: u32, mask: u32 },
    /// Allow if `args[arg] & mask == mask`; else `EPERM`.
    AllowIfSet { arg: u32, mask: u32 },
    /// `args[arg]` looked up in `table`; anything else gets `otherwise`.
    Lookup { arg: u32, table: &'static [(u32, u32)], otherwise: u32 },
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const IOCTLS: &[(u32, u32)] = &[
    (libc::FIONBIO as u32, RET_ALLOW),
    (libc::FIOCLEX as u32, RET_ALLOW),
    (libc::FIONCLEX as u32, RET_ALLOW),
    (libc::FIONREAD as u32, RET_ALLOW),
    (libc::TCGETS as u32, RET_ENOTTY),
    (libc::TIOCGWINSZ as u32, RET_ENOTTY),
];

const PRCTLS: &[(u32, u32)] = &[
    (PR_SET_NAME, RET_ALLOW),
    (PR_GET_NAME, RET_ALLOW),
    (PR_SET_VMA, RET_ALLOW),
    (PR_GET_DUMPABLE, RET_ALLOW),
    (PR_GET_NO_NEW_PRIVS, RET_ALLOW),
    (PR_GET_SECCOMP, RET_ALLOW),
];

/// The system calls the real worker made over hearth-cli's end-to-end suite, traced with
/// `strace -f` (x86_64 names; the ones aarch64 lacks are left out there). Every one must stay
/// allowed (with the arguments the worker uses).
#[cfg(all(test, target_arch = "x86_64"))]
const WORKER_CALLS: &[&str] = &[
    "access",
    "arch_prctl",
    "brk",
    "clone3",
    "close",
    "epoll_create1",
    "epoll_ctl",
    "epoll_wait",
    "eventfd2",
    "execve",
    "exit",
    "exit_group",
    "fchmod",
    "fcntl",
    "fdatasync",
    "fsync",
    "ftruncate",
    "futex",
    "getdents64",
    "geteuid",
    "getpid",
    "getrandom",
    "gettid",
    "ioctl",
    "lseek",
    "madvise",
    "mkdir",
    "mmap",
    "mprotect",
    "munmap",
    "newfstatat",
    "openat",
    "poll",
    "prctl",
    "pread64",
    "prlimit64",
    "pwrite64",
    "read",
    "recvfrom",
    "renameat",
    "rseq",
    "rt_sigaction",
    "rt_sigprocmask",
    "sched_getaffinity",
    "sendto",
    "set_robust_list",
    "set_tid_address",
    "sigaltstack",
    "socketpair",
    "statx",
    "unlink",
    "unlinkat",
    "write",
];

/// Allowed with any arguments: the worker's own files, memory, threads, time, signals to what
/// Landlock lets it signal, and the socket it was given. Where an old call and its `*at`
/// successor both exist (x86_64), both are here: they reach the same checks.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const ALLOWED: &[libc::c_long] = &[
    // The busiest first: the list is searched in order.
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_futex,
    libc::SYS_epoll_pwait,
    libc::SYS_recvfrom,
    libc::SYS_sendto,
    libc::SYS_pread64,
    libc::SYS_pwrite64,
    libc::SYS_fcntl,
    libc::SYS_newfstatat,
    libc::SYS_statx,
    libc::SYS_fstat,
    libc::SYS_openat,
    // The worker's file tools open through cap-std, which asks the kernel to keep every lookup
    // beneath `files/` (`RESOLVE_BENEATH`) and walks the path itself only when this is refused.
    // Its mode is masked by the same umask as `openat`'s, and Landlock checks both alike.
    libc::SYS_openat2,
    libc::SYS_close,
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mprotect,
    libc::SYS_mremap,
    libc::SYS_madvise,
    libc::SYS_brk,
    libc::SYS_msync,
    // Files.
    libc::SYS_readv,
    libc::SYS_writev,
    libc::SYS_preadv,
    libc::SYS_pwritev,
    libc::SYS_preadv2,
    libc::SYS_pwritev2,
    libc::SYS_lseek,
    libc::SYS_fsync,
    libc::SYS_fdatasync,
    libc::SYS_ftruncate,
    libc::SYS_fallocate,
    libc::SYS_fadvise64,
    libc::SYS_flock,
    libc::SYS_getdents64,
    libc::SYS_getcwd,
    libc::SYS_chdir,
    libc::SYS_fchdir,
    libc::SYS_mkdirat,
    libc::SYS_unlinkat,
    libc::SYS_renameat2,
    libc::SYS_faccessat,
    libc::SYS_faccessat2,
    libc::SYS_readlinkat,
    libc::SYS_utimensat,
    libc::SYS_statfs,
    libc::SYS_fstatfs,
    libc::SYS_copy_file_range,
    libc::SYS_sendfile,
    libc::SYS_dup,
    libc::SYS_dup3,
    libc::SYS_pipe2,
    libc::SYS_close_range,
    // Waiting.
    libc::SYS_epoll_create1,
    libc::SYS_epoll_ctl,
    libc::SYS_epoll_pwait2,
    libc::SYS_eventfd2,
    libc::SYS_ppoll,
    libc::SYS_pselect6,
    libc::SYS_nanosleep,
    libc::SYS_clock_nanosleep,
    libc::SYS_clock_gettime,
    libc::SYS_clock_getres,
    libc::SYS_gettimeofday,
    // Threads, processes, identity.
    libc::SYS_set_robust_list,
    libc::SYS_get_robust_list,
    libc::SYS_set_tid_address,
    libc::SYS_rseq,
    libc::SYS_sched_yield,
    libc::SYS_sched_getaffinity,
    libc::SYS_getpid,
    libc::SYS_gettid,
    libc::SYS_getppid,
    libc::SYS_getuid,
    libc::SYS_geteuid,
    libc::SYS_getgid,
    libc::SYS_getegid,
    libc::SYS_getresuid,
    libc::SYS_getresgid,
    libc::SYS_getgroups,
    libc::SYS_getpgid,
    libc::SYS_getsid,
    libc::SYS_getrusage,
    libc::SYS_getcpu,
    libc::SYS_uname,
    libc::SYS_sysinfo,
    libc::SYS_getrandom,
    libc::SYS_prlimit64,
    libc::SYS_execve,
    libc::SYS_wait4,
    libc::SYS_waitid,
    libc::SYS_exit,
    libc::SYS_exit_group,
    libc::SYS_restart_syscall,
    // Signals (Landlock's scope keeps them inside the sandbox).
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigreturn,
    libc::SYS_rt_sigtimedwait,
    libc::SYS_sigaltstack,
    libc::SYS_kill,
    libc::SYS_tgkill,
    libc::SYS_tkill,
    // The inherited connection.
    libc::SYS_sendmsg,
    libc::SYS_recvmsg,
    libc::SYS_shutdown,
    libc::SYS_getsockopt,
    libc::SYS_setsockopt,
    libc::SYS_getsockname,
    libc::SYS_getpeername,
];

/// x86_64's older calls whose `*at` or newer forms are allowed above, and its TLS setup.
#[cfg(target_arch = "x86_64")]
const ALLOWED_X86_64: &[libc::c_long] = &[
    libc::SYS_arch_prctl,
    libc::SYS_epoll_wait,
    libc::SYS_epoll_create,
    libc::SYS_poll,
    libc::SYS_select,
    libc::SYS_open,
    libc::SYS_creat,
    libc::SYS_stat,
    libc::SYS_lstat,
    libc::SYS_access,
    libc::SYS_readlink,
    libc::SYS_unlink,
    libc::SYS_rmdir,
    libc::SYS_mkdir,
    libc::SYS_rename,
    libc::SYS_renameat,
    libc::SYS_getdents,
    libc::SYS_pipe,
    libc::SYS_dup2,
    libc::SYS_getrlimit,
    libc::SYS_setrlimit,
    libc::SYS_time,
    libc::SYS_getpgrp,
    libc::SYS_fork,
    libc::SYS_vfork,
];

/// Every rule of the filter, in the order it checks them.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(super) fn rules() -> Vec<(libc::c_long, Action)> {
    let mut r: Vec<(libc::c_long, Action)> = ALLOWED.iter().map(|nr| (*nr, Action::Ret(RET_ALLOW))).collect();
    #[cfg(target_arch = "x86_64")]
    r.extend(ALLOWED_X86_64.iter().map(|nr| (*nr, Action::Ret(RET_ALLOW))));
    r.extend([
        (libc::SYS_ioctl, Action::Lookup { arg: 1, table: IOCTLS, otherwise: RET_EPERM }),
        (libc::SYS_prctl, Action::Lookup { arg: 0, table: PRCTLS, otherwise: RET_EPERM }),
        (libc::SYS_fchmod, Action::AllowIfClear { arg: 1, mask: MODE_NOT_OWNERS }),
        (libc::SYS_fchmodat, Action::AllowIfClear { arg: 2, mask: MODE_NOT_OWNERS }),
        (SYS_FCHMODAT2, Action::AllowIfClear { arg: 2, mask: MODE_NOT_OWNERS }),
        (libc::SYS_umask, Action::AllowIfSet { arg: 0, mask: UMASK_KEEPS }),
        (libc::SYS_clone, Action::AllowIfClear { arg: 0, mask: CLONE_NEW_ANY }),
        (libc::SYS_clone3, Action::Ret(RET_ENOSYS)),
        (
            libc::SYS_socketpair,
            Action::Lookup { arg: 0, table: &[(libc::AF_UNIX as u32, RET_ALLOW)], otherwise: RET_EPERM },
        ),
    ]);
    #[cfg(target_arch = "x86_64")]
    r.push((libc::SYS_chmod, Action::AllowIfClear { arg: 1, mask: MODE_NOT_OWNERS }));
    r
}

/// The instructions of one action; each ends in a return, so the next rule never sees the
/// accumulator it loaded.
fn action(a: Action) -> Vec<libc::sock_filter> {
    let stmt = |code, k| libc::sock_filter { code, jt: 0, jf: 0, k };
    let jump = |code, k, jt, jf| libc::sock_filter { code, jt, jf, k };
    match a {
        Action::Ret(ret) => vec![stmt(BPF_RET_K, ret)],
        Action::AllowIfClear { arg, mask } => vec![
            stmt(BPF_LD_W_ABS, arg_lo(arg)),
            jump(BPF_JMP_JSET_K, mask, 0, 1),
            stmt(BPF_RET_K, RET_EPERM),
            stmt(BPF_RET_K, RET_ALLOW),
        ],
        Action::AllowIfSet { arg, mask } => vec![
            stmt(BPF_LD_W_ABS, arg_lo(arg)),
            stmt(BPF_ALU_AND_K, mask),
            jump(BPF_JMP_JEQ_K, mask, 0, 1),
            stmt(BPF_RET_K, RET_ALLOW),
            stmt(BPF_RET_K, RET_EPERM),
        ],
        Action::Lookup { arg, table, otherwise } => {
            let mut out = vec![stmt(BPF_LD_W_ABS, arg_lo(arg))];
            for (value, ret) in table {
                out.push(jump(BPF_JMP_JEQ_K, *value, 0, 1));
                out.push(stmt(BPF_RET_K, *ret));
            }
            out.push(stmt(BPF_RET_K, otherwise));
            out
        }
    }
}

/// The filter for this CPU architecture, or `None` where none is written.
pub(super) fn program() -> Option<Vec<libc::sock_filter>> {
    #[cfg(all(any(target_arch = "x86_64", target_arch = "aarch64"), target_endian = "little"))]
    {
        let arch = NATIVE_ARCH?;
        let stmt = |code, k| libc::sock_filter { code, jt: 0, jf: 0, k };
        let jump = |code, k, jt, jf| libc::sock_filter { code, jt, jf, k };
        let mut p = vec![stmt(BPF_LD_W_ABS, ARCH), jump(BPF_JMP_JEQ_K, arch, 1, 0), stmt(BPF_RET_K, RET_KILL)];
        p.push(stmt(BPF_LD_W_ABS, NR));
        if cfg!(target_arch = "x86_64") {
            p.push(jump(BPF_JMP_JSET_K, X32_SYSCALL_BIT, 0, 1));
            p.push(stmt(BPF_RET_K, RET_KILL));
        }
        for (nr, a) in rules() {
            let body = action(a);
            let skip = u8::try_from(body.len()).expect("an action is short");
            p.push(jump(BPF_JMP_JEQ_K, nr as u32, 0, skip));
            p.extend(body);
        }
        p.push(stmt(BPF_RET_K, RET_EPERM));
        Some(p)
    }
    #[cfg(not(all(any(target_arch = "x86_64", target_arch = "aarch64"), target_endian = "little")))]
    {
        None
    }
}

/// How many system calls the filter lets through (with or without argument checks), for
/// `hearth doctor`.
pub(super) fn allowed_count() -> usize {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        rules().iter().filter(|(_, a)| !matches!(a, Action::Ret(r) if *r != RET_ALLOW)).count()
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        0
    }
}

/// Whether the kernel can install a filter with the actions this one uses.
pub(super) fn available() -> bool {
    const SECCOMP_GET_ACTION_AVAIL: libc::c_uint = 2;
    [RET_ALLOW, libc::SECCOMP_RET_ERRNO, RET_KILL].iter().all(|action| {
        // SAFETY: the kernel reads one u32 from the pointer.
        unsafe { libc::syscall(libc::SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, action as *const u32) == 0 }
    })
}

/// Installs the filter on the calling thread. Only a system call; for the child before `exec`
/// (after `no_new_privs`).
pub(super) fn install(filter: &[libc::sock_filter]) -> io::Result<()> {
    let prog =
        libc::sock_fprog { len: filter.len() as libc::c_ushort, filter: filter.as_ptr() as *mut libc::sock_filter };
    // SAFETY: `prog` points at `filter`, which outlives the call; the kernel copies it.
    let r =
        unsafe { libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, &prog as *const libc::sock_fprog) };
    if r != 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A classic-BPF interpreter for the instructions the filter uses; anything else fails the
    /// test, so the program cannot grow an instruction this test does not understand. It also
    /// checks what the kernel's verifier would: jumps stay inside the program, and every path
    /// ends in a return.
    fn run(prog: &[libc::sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_le_bytes());
        data[4..8].copy_from_slice(&arch.to_le_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
        }
        let mut a = 0u32;
        let mut pc = 0usize;
        for _ in 0..prog.len() {
            let i = prog.get(pc).unwrap_or_else(|| panic!("fell off the end at {pc}"));
            match i.code {
                BPF_LD_W_ABS => {
                    let k = i.k as usize;
                    assert!(k + 4 <= data.len() && k.is_multiple_of(4), "load out of seccomp_data at {pc}");
                    a = u32::from_le_bytes(data[k..k + 4].try_into().unwrap());
                    pc += 1;
                }
                BPF_ALU_AND_K => {
                    a &= i.k;
                    pc += 1;
                }
                BPF_JMP_JEQ_K => pc += 1 + usize::from(if a == i.k { i.jt } else { i.jf }),
                BPF_JMP_JSET_K => pc += 1 + usize::from(if a & i.k != 0 { i.jt } else { i.jf }),
                BPF_RET_K => return i.k,
                code => panic!("unexpected opcode {code:#x} at {pc}"),
            }
        }
        panic!("the program loops or never returns");
    }

    fn prog() -> Vec<libc::sock_filter> {
        program().expect("a filter exists for the CPU these tests run on")
    }

    fn native() -> u32 {
        NATIVE_ARCH.unwrap()
    }

    fn call(p: &[libc::sock_filter], nr: libc::c_long, args: &[u64]) -> u32 {
        let mut all = [0u64; 6];
        all[..args.len()].copy_from_slice(args);
        run(p, native(), nr as u32, all)
    }

    #[test]
    fn the_architecture_is_checked_before_anything_else() {
        let p = prog();
        assert_eq!((p[0].code, p[0].k), (BPF_LD_W_ABS, ARCH));
        assert_eq!((p[1].code, p[1].k), (BPF_JMP_JEQ_K, native()));
        let foreign = if native() == AUDIT_ARCH_X86_64 { AUDIT_ARCH_AARCH64 } else { AUDIT_ARCH_X86_64 };
        const AUDIT_ARCH_I386: u32 = 0x4000_0003;
        for arch in [foreign, AUDIT_ARCH_I386, 0] {
            for nr in [libc::SYS_read, libc::SYS_socket, libc::SYS_ptrace] {
                assert_eq!(
                    run(&p, arch, nr as u32, [libc::AF_UNIX as u64, 0, 0, 0, 0, 0]),
                    RET_KILL,
                    "arch {arch:#x} nr {nr}"
                );
            }
        }
        if native() == AUDIT_ARCH_X86_64 {
            // x32 system calls share the arch value; they are killed too.
            assert_eq!(run(&p, native(), X32_SYSCALL_BIT | libc::SYS_read as u32, [0; 6]), RET_KILL);
        }
        // The kernel accepts at most 4096 instructions.
        assert!(p.len() < 4096, "{} instructions", p.len());
    }

    #[test]
    fn every_allowed_call_passes_and_everything_else_is_refused() {
        let p = prog();
        let rules = rules();
        let mut listed = std::collections::HashSet::new();
        for (nr, a) in &rules {
            assert!(listed.insert(*nr), "system call {nr} has two rules");
            if let Action::Ret(ret) = a {
                assert_eq!(call(&p, *nr, &[]), *ret, "nr {nr}");
            }
        }
        // Every number the kernel knows that has no rule is refused (0..=470 covers every call
        // of both architectures today, with room for new ones).
        for nr in (0..=470).filter(|nr| !listed.contains(nr)) {
            assert_eq!(call(&p, nr, &[]), RET_EPERM, "nr {nr} is not listed but passes");
        }
        assert_eq!(call(&p, 100_000, &[]), RET_EPERM);
    }

    #[test]
    fn what_an_attacker_reaches_for_is_refused() {
        let p = prog();
        let mut refused = vec![
            libc::SYS_socket,
            libc::SYS_connect,
            libc::SYS_bind,
            libc::SYS_listen,
            libc::SYS_accept,
            libc::SYS_accept4,
            libc::SYS_sendmmsg,
            libc::SYS_ptrace,
            libc::SYS_process_vm_readv,
            libc::SYS_process_vm_writev,
            libc::SYS_pidfd_open,
            libc::SYS_pidfd_getfd,
            libc::SYS_mount,
            libc::SYS_umount2,
            libc::SYS_fsopen,
            libc::SYS_open_tree,
            libc::SYS_move_mount,
            libc::SYS_pivot_root,
            libc::SYS_chroot,
            libc::SYS_unshare,
            libc::SYS_setns,
            libc::SYS_bpf,
            libc::SYS_perf_event_open,
            libc::SYS_keyctl,
            libc::SYS_add_key,
            libc::SYS_init_module,
            libc::SYS_finit_module,
            libc::SYS_kexec_load,
            libc::SYS_reboot,
            libc::SYS_io_uring_setup,
            libc::SYS_userfaultfd,
            libc::SYS_memfd_create,
            libc::SYS_execveat,
            libc::SYS_symlinkat,
            libc::SYS_linkat,
            libc::SYS_mknodat,
            libc::SYS_setxattr,
            libc::SYS_lsetxattr,
            libc::SYS_fsetxattr,
            libc::SYS_removexattr,
            libc::SYS_fchown,
            libc::SYS_fchownat,
            libc::SYS_setuid,
            libc::SYS_setresuid,
            libc::SYS_setgid,
            libc::SYS_setgroups,
            libc::SYS_capset,
            libc::SYS_personality,
            libc::SYS_name_to_handle_at,
            libc::SYS_open_by_handle_at,
            libc::SYS_kcmp,
            libc::SYS_landlock_create_ruleset,
            libc::SYS_seccomp,
            libc::SYS_inotify_init1,
        ];
        #[cfg(target_arch = "x86_64")]
        refused.extend([
            libc::SYS_symlink,
            libc::SYS_link,
            libc::SYS_mknod,
            libc::SYS_chown,
            libc::SYS_lchown,
            libc::SYS_uselib,
        ]);
        refused.push(libc::SYS_quotactl);
        for nr in refused {
            assert_eq!(call(&p, nr, &[libc::AF_UNIX as u64, 0, 0, 0, 0, 0]), RET_EPERM, "nr {nr}");
        }
    }

    #[test]
    fn no_ioctl_can_type_into_a_terminal() {
        let p = prog();
        for fd in [0u64, 1, 2, 3, 255] {
            for req in
                [libc::TIOCSTI, libc::TIOCLINUX, libc::TIOCSCTTY, libc::TIOCSETD, libc::TIOCCONS, libc::TIOCSWINSZ]
            {
                assert_eq!(call(&p, libc::SYS_ioctl, &[fd, req]), RET_EPERM, "fd {fd} request {req:#x}");
                // The kernel reads the request as an unsigned int: high bits change nothing.
                assert_eq!(call(&p, libc::SYS_ioctl, &[fd, (0xdead << 32) | req]), RET_EPERM);
            }
            for req in [libc::FIONBIO, libc::FIOCLEX, libc::FIONCLEX, libc::FIONREAD] {
                assert_eq!(call(&p, libc::SYS_ioctl, &[fd, req]), RET_ALLOW, "request {req:#x}");
            }
            // isatty() learns "not a terminal" without reaching the terminal layer.
            for req in [libc::TCGETS, libc::TIOCGWINSZ] {
                assert_eq!(call(&p, libc::SYS_ioctl, &[fd, req]), RET_ENOTTY);
            }
        }
        // The filesystem ioctls (FICLONE, FS_IOC_SETFLAGS…) are refused too.
        for req in [0x4004_9409u64, 0x4008_6602] {
            assert_eq!(call(&p, libc::SYS_ioctl, &[3, req]), RET_EPERM);
        }
    }

    #[test]
    fn no_chmod_opens_anything_to_others() {
        let p = prog();
        #[allow(unused_mut)]
        let mut calls: Vec<(libc::c_long, usize)> =
            vec![(libc::SYS_fchmod, 1), (libc::SYS_fchmodat, 2), (SYS_FCHMODAT2, 2)];
        #[cfg(target_arch = "x86_64")]
        calls.push((libc::SYS_chmod, 1));
        for (nr, at) in calls {
            let with_mode = |mode: u64, other_args: u64| {
                let mut args = [other_args; 6];
                args[at] = mode;
                run(&p, native(), nr as u32, args)
            };
            for bad in [0o777, 0o666, 0o644, 0o640, 0o604, 0o610, 0o701, 0o4700, 0o2700, 0o1700, 0o100_777] {
                assert_eq!(with_mode(bad, 0), RET_EPERM, "nr {nr} mode {bad:o}");
            }
            for good in [0o600, 0o700, 0o400, 0o500, 0, 0o100_600] {
                assert_eq!(with_mode(good, 0), RET_ALLOW, "nr {nr} mode {good:o}");
                // Only the mode argument counts, whatever the others hold.
                assert_eq!(with_mode(good, 0o777), RET_ALLOW, "nr {nr} mode {good:o}");
            }
        }
        for keeps in [0o077, 0o777, 0o177, 0o277] {
            assert_eq!(call(&p, libc::SYS_umask, &[keeps]), RET_ALLOW, "umask {keeps:o}");
        }
        for opens in [0o022, 0o002, 0o070, 0o007, 0] {
            assert_eq!(call(&p, libc::SYS_umask, &[opens]), RET_EPERM, "umask {opens:o}");
        }
    }

    #[test]
    fn threads_and_a_unix_pair_but_no_namespaces_or_network() {
        let p = prog();
        let thread =
            (libc::CLONE_VM | libc::CLONE_FS | libc::CLONE_FILES | libc::CLONE_SIGHAND | libc::CLONE_THREAD) as u64;
        assert_eq!(call(&p, libc::SYS_clone, &[thread]), RET_ALLOW);
        assert_eq!(call(&p, libc::SYS_clone, &[libc::SIGCHLD as u64]), RET_ALLOW);
        for ns in [libc::CLONE_NEWUSER, libc::CLONE_NEWNET, libc::CLONE_NEWNS, libc::CLONE_NEWPID] {
            assert_eq!(call(&p, libc::SYS_clone, &[ns as u64 | libc::SIGCHLD as u64]), RET_EPERM);
        }
        // clone3 hides its flags behind a pointer: the C library falls back to clone.
        assert_eq!(call(&p, libc::SYS_clone3, &[0]), RET_ENOSYS);
        assert_eq!(call(&p, libc::SYS_socketpair, &[libc::AF_UNIX as u64, libc::SOCK_STREAM as u64]), RET_ALLOW);
        for family in [libc::AF_INET, libc::AF_INET6, libc::AF_NETLINK, libc::AF_PACKET, libc::AF_VSOCK] {
            assert_eq!(call(&p, libc::SYS_socketpair, &[family as u64]), RET_EPERM, "family {family}");
            assert_eq!(call(&p, libc::SYS_socket, &[family as u64]), RET_EPERM, "family {family}");
        }
        assert_eq!(call(&p, libc::SYS_socket, &[libc::AF_UNIX as u64]), RET_EPERM, "no new socket of any kind");
        for option in [PR_SET_NAME, PR_GET_NAME, PR_SET_VMA] {
            assert_eq!(call(&p, libc::SYS_prctl, &[u64::from(option)]), RET_ALLOW, "prctl {option}");
        }
        const PR_SET_DUMPABLE: u64 = 4;
        const PR_SET_PTRACER: u64 = 0x5961_6d61;
        const PR_SET_MM: u64 = 35;
        for option in [PR_SET_DUMPABLE, PR_SET_PTRACER, PR_SET_MM, libc::PR_SET_SECCOMP as u64] {
            assert_eq!(call(&p, libc::SYS_prctl, &[option]), RET_EPERM, "prctl {option}");
        }
    }

    /// Every call the traced worker made passes, with the arguments it made it with.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_calls_a_worker_makes_are_allowed() {
        let p = prog();
        for name in WORKER_CALLS {
            let (nr, args, want): (libc::c_long, Vec<u64>, u32) = match *name {
                "access" => (libc::SYS_access, vec![], RET_ALLOW),
                "arch_prctl" => (libc::SYS_arch_prctl, vec![], RET_ALLOW),
                "brk" => (libc::SYS_brk, vec![], RET_ALLOW),
                // Thread creation: refused with ENOSYS, so glibc falls back to clone.
                "clone3" => (libc::SYS_clone3, vec![], RET_ENOSYS),
                "close" => (libc::SYS_close, vec![], RET_ALLOW),
                "epoll_create1" => (libc::SYS_epoll_create1, vec![], RET_ALLOW),
                "epoll_ctl" => (libc::SYS_epoll_ctl, vec![], RET_ALLOW),
                "epoll_wait" => (libc::SYS_epoll_wait, vec![], RET_ALLOW),
                "eventfd2" => (libc::SYS_eventfd2, vec![], RET_ALLOW),
                "execve" => (libc::SYS_execve, vec![], RET_ALLOW),
                "exit" => (libc::SYS_exit, vec![], RET_ALLOW),
                "exit_group" => (libc::SYS_exit_group, vec![], RET_ALLOW),
                // db.rs makes each database 0600.
                "fchmod" => (libc::SYS_fchmod, vec![3, 0o600], RET_ALLOW),
                "fcntl" => (libc::SYS_fcntl, vec![], RET_ALLOW),
                "fdatasync" => (libc::SYS_fdatasync, vec![], RET_ALLOW),
                "fsync" => (libc::SYS_fsync, vec![], RET_ALLOW),
                "ftruncate" => (libc::SYS_ftruncate, vec![], RET_ALLOW),
                "futex" => (libc::SYS_futex, vec![], RET_ALLOW),
                "getdents64" => (libc::SYS_getdents64, vec![], RET_ALLOW),
                "geteuid" => (libc::SYS_geteuid, vec![], RET_ALLOW),
                "getpid" => (libc::SYS_getpid, vec![], RET_ALLOW),
                "getrandom" => (libc::SYS_getrandom, vec![], RET_ALLOW),
                "gettid" => (libc::SYS_gettid, vec![], RET_ALLOW),
                "ioctl" => (libc::SYS_ioctl, vec![3, libc::FIONBIO], RET_ALLOW),
                "lseek" => (libc::SYS_lseek, vec![], RET_ALLOW),
                "madvise" => (libc::SYS_madvise, vec![], RET_ALLOW),
                "mkdir" => (libc::SYS_mkdir, vec![], RET_ALLOW),
                "mmap" => (libc::SYS_mmap, vec![], RET_ALLOW),
                "mprotect" => (libc::SYS_mprotect, vec![], RET_ALLOW),
                "munmap" => (libc::SYS_munmap, vec![], RET_ALLOW),
                "newfstatat" => (libc::SYS_newfstatat, vec![], RET_ALLOW),
                "openat" => (libc::SYS_openat, vec![], RET_ALLOW),
                "poll" => (libc::SYS_poll, vec![], RET_ALLOW),
                "prctl" => (libc::SYS_prctl, vec![u64::from(PR_SET_NAME)], RET_ALLOW),
                "pread64" => (libc::SYS_pread64, vec![], RET_ALLOW),
                "prlimit64" => (libc::SYS_prlimit64, vec![], RET_ALLOW),
                "pwrite64" => (libc::SYS_pwrite64, vec![], RET_ALLOW),
                "read" => (libc::SYS_read, vec![], RET_ALLOW),
                "recvfrom" => (libc::SYS_recvfrom, vec![], RET_ALLOW),
                "renameat" => (libc::SYS_renameat, vec![], RET_ALLOW),
                "rseq" => (libc::SYS_rseq, vec![], RET_ALLOW),
                "rt_sigaction" => (libc::SYS_rt_sigaction, vec![], RET_ALLOW),
                "rt_sigprocmask" => (libc::SYS_rt_sigprocmask, vec![], RET_ALLOW),
                "sched_getaffinity" => (libc::SYS_sched_getaffinity, vec![], RET_ALLOW),
                "sendto" => (libc::SYS_sendto, vec![], RET_ALLOW),
                "set_robust_list" => (libc::SYS_set_robust_list, vec![], RET_ALLOW),
                "set_tid_address" => (libc::SYS_set_tid_address, vec![], RET_ALLOW),
                "sigaltstack" => (libc::SYS_sigaltstack, vec![], RET_ALLOW),
                // tokio's signal driver, at runtime start.
                "socketpair" => (
                    libc::SYS_socketpair,
                    vec![libc::AF_UNIX as u64, (libc::SOCK_STREAM | libc::SOCK_CLOEXEC) as u64],
                    RET_ALLOW,
                ),
                "statx" => (libc::SYS_statx, vec![], RET_ALLOW),
                "unlink" => (libc::SYS_unlink, vec![], RET_ALLOW),
                "unlinkat" => (libc::SYS_unlinkat, vec![], RET_ALLOW),
                "write" => (libc::SYS_write, vec![], RET_ALLOW),
                other => panic!("give {other} a number and the arguments the trace showed"),
            };
            assert_eq!(call(&p, nr, &args), want, "{name}");
        }
    }

    #[test]
    fn the_count_for_doctor_leaves_out_what_only_fails() {
        let n = allowed_count();
        assert!(n > 100 && n < rules().len(), "{n}");
    }
}
