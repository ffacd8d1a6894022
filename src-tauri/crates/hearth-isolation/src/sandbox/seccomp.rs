//! The seccomp filter, assembled by hand.
//!
//! Why not a crate: the program is about forty instructions of one shape (compare the system
//! call number, sometimes the first argument), a unit test below runs it through a small BPF
//! interpreter, and a crate such as `seccompiler` would add a JSON front end and a dependency
//! for the same result.
//!
//! Layout (every jump is forward, as classic BPF requires):
//!
//! ```text
//!   A = arch;  if A != native  -> KILL            (first, so numbers are never misread)
//!   A = nr;    [x86_64] if A & X32_BIT -> KILL
//!   socket, socketpair -> SOCKET;  clone -> CLONE;  clone3 -> ENOSYS
//!   each denied call   -> DENY
//!   ALLOW
//!   SOCKET: A = args[0] (low half);  A == AF_UNIX ? ALLOW : DENY
//!   CLONE:  A = args[0] (low half);  A & CLONE_NEW* ? DENY : ALLOW
//! ```

use std::io;

// Classic BPF opcodes (BPF_LD|BPF_W|BPF_ABS is 0x00|0x00|0x20).
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JEQ_K: u16 = 0x05 | 0x10;
const BPF_JMP_JSET_K: u16 = 0x05 | 0x40;
const BPF_RET_K: u16 = 0x06;

// Offsets into `struct seccomp_data`.
const NR: u32 = 0;
const ARCH: u32 = 4;
/// The low 32 bits of `args[0]` (the kernel reads `int` arguments from there).
#[cfg(target_endian = "little")]
const ARG0_LO: u32 = 16;

pub(super) const RET_ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
pub(super) const RET_KILL: u32 = libc::SECCOMP_RET_KILL_PROCESS;
pub(super) const RET_EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
pub(super) const RET_ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;

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

/// Refused with EPERM: what a worker never needs and an attacker would reach for.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(super) const DENIED: &[libc::c_long] = &[
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_move_mount,
    libc::SYS_open_tree,
    libc::SYS_mount_setattr,
    libc::SYS_pivot_root,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_reboot,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_userfaultfd,
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Label {
    Kill,
    Deny,
    Enosys,
    Allow,
    Socket,
    Clone,
}

enum Insn {
    Stmt {
        code: u16,
        k: u32,
    },
    /// `jt`/`jf`: `None` falls through to the next instruction.
    Jump {
        code: u16,
        k: u32,
        jt: Option<Label>,
        jf: Option<Label>,
    },
    Mark(Label),
}

fn assemble(insns: &[Insn]) -> Vec<libc::sock_filter> {
    let mut at = Vec::new();
    let mut n = 0usize;
    for i in insns {
        match i {
            Insn::Mark(l) => at.push((*l, n)),
            _ => n += 1,
        }
    }
    let pos = |l: Label| at.iter().find(|(m, _)| *m == l).map(|(_, p)| *p).expect("every label is placed");
    let mut out = Vec::with_capacity(n);
    for i in insns {
        match *i {
            Insn::Mark(_) => {}
            Insn::Stmt { code, k } => out.push(libc::sock_filter { code, jt: 0, jf: 0, k }),
            Insn::Jump { code, k, jt, jf } => {
                let here = out.len() + 1;
                let off = |t: Option<Label>| -> u8 {
                    let Some(l) = t else { return 0 };
                    let d = pos(l).checked_sub(here).expect("classic BPF jumps forward only");
                    u8::try_from(d).expect("jump fits in 8 bits")
                };
                out.push(libc::sock_filter { code, jt: off(jt), jf: off(jf), k });
            }
        }
    }
    out
}

/// The filter for this CPU architecture, or `None` where none is written.
pub(super) fn program() -> Option<Vec<libc::sock_filter>> {
    #[cfg(all(any(target_arch = "x86_64", target_arch = "aarch64"), target_endian = "little"))]
    {
        let arch = NATIVE_ARCH?;
        let jeq = |k: u32, jt: Label| Insn::Jump { code: BPF_JMP_JEQ_K, k, jt: Some(jt), jf: None };
        let mut p = vec![
            Insn::Stmt { code: BPF_LD_W_ABS, k: ARCH },
            Insn::Jump { code: BPF_JMP_JEQ_K, k: arch, jt: None, jf: Some(Label::Kill) },
            Insn::Stmt { code: BPF_LD_W_ABS, k: NR },
        ];
        if cfg!(target_arch = "x86_64") {
            p.push(Insn::Jump { code: BPF_JMP_JSET_K, k: X32_SYSCALL_BIT, jt: Some(Label::Kill), jf: None });
        }
        p.push(jeq(libc::SYS_socket as u32, Label::Socket));
        p.push(jeq(libc::SYS_socketpair as u32, Label::Socket));
        p.push(jeq(libc::SYS_clone as u32, Label::Clone));
        p.push(jeq(libc::SYS_clone3 as u32, Label::Enosys));
        for nr in DENIED {
            p.push(jeq(*nr as u32, Label::Deny));
        }
        p.push(Insn::Stmt { code: BPF_RET_K, k: RET_ALLOW });
        p.extend([
            Insn::Mark(Label::Socket),
            Insn::Stmt { code: BPF_LD_W_ABS, k: ARG0_LO },
            Insn::Jump { code: BPF_JMP_JEQ_K, k: libc::AF_UNIX as u32, jt: Some(Label::Allow), jf: Some(Label::Deny) },
            Insn::Mark(Label::Clone),
            Insn::Stmt { code: BPF_LD_W_ABS, k: ARG0_LO },
            Insn::Jump { code: BPF_JMP_JSET_K, k: CLONE_NEW_ANY, jt: Some(Label::Deny), jf: Some(Label::Allow) },
            Insn::Mark(Label::Kill),
            Insn::Stmt { code: BPF_RET_K, k: RET_KILL },
            Insn::Mark(Label::Deny),
            Insn::Stmt { code: BPF_RET_K, k: RET_EPERM },
            Insn::Mark(Label::Enosys),
            Insn::Stmt { code: BPF_RET_K, k: RET_ENOSYS },
            Insn::Mark(Label::Allow),
            Insn::Stmt { code: BPF_RET_K, k: RET_ALLOW },
        ]);
        Some(assemble(&p))
    }
    #[cfg(not(all(any(target_arch = "x86_64", target_arch = "aarch64"), target_endian = "little")))]
    {
        None
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
    /// test, so the program cannot grow an instruction this test does not understand.
    fn run(prog: &[libc::sock_filter], arch: u32, nr: u32, arg0: u64) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_le_bytes());
        data[4..8].copy_from_slice(&arch.to_le_bytes());
        data[16..24].copy_from_slice(&arg0.to_le_bytes());
        let mut a = 0u32;
        let mut pc = 0usize;
        for _ in 0..prog.len() {
            let i = prog.get(pc).unwrap_or_else(|| panic!("fell off the end at {pc}"));
            match i.code {
                BPF_LD_W_ABS => {
                    let k = i.k as usize;
                    a = u32::from_le_bytes(data[k..k + 4].try_into().unwrap());
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

    #[test]
    fn the_architecture_is_checked_before_anything_else() {
        let p = prog();
        assert_eq!((p[0].code, p[0].k), (BPF_LD_W_ABS, ARCH));
        assert_eq!((p[1].code, p[1].k), (BPF_JMP_JEQ_K, native()));
        let foreign = if native() == AUDIT_ARCH_X86_64 { AUDIT_ARCH_AARCH64 } else { AUDIT_ARCH_X86_64 };
        const AUDIT_ARCH_I386: u32 = 0x4000_0003;
        for arch in [foreign, AUDIT_ARCH_I386, 0] {
            for nr in [libc::SYS_read, libc::SYS_socket, libc::SYS_ptrace] {
                assert_eq!(run(&p, arch, nr as u32, libc::AF_UNIX as u64), RET_KILL, "arch {arch:#x} nr {nr}");
            }
        }
        if native() == AUDIT_ARCH_X86_64 {
            // x32 system calls share the arch value; they are killed too.
            assert_eq!(run(&p, native(), X32_SYSCALL_BIT | libc::SYS_socket as u32, 2), RET_KILL);
        }
        assert!(p.len() < 255, "jump offsets stay in range");
    }

    #[test]
    fn only_unix_sockets_are_allowed() {
        let p = prog();
        for nr in [libc::SYS_socket, libc::SYS_socketpair] {
            assert_eq!(run(&p, native(), nr as u32, libc::AF_UNIX as u64), RET_ALLOW);
            for family in [libc::AF_INET, libc::AF_INET6, libc::AF_NETLINK, libc::AF_PACKET, libc::AF_VSOCK, 0] {
                assert_eq!(run(&p, native(), nr as u32, family as u64), RET_EPERM, "family {family}");
            }
        }
        // The kernel reads an int: high bits do not turn AF_UNIX into anything else.
        assert_eq!(run(&p, native(), libc::SYS_socket as u32, (1 << 32) | libc::AF_UNIX as u64), RET_ALLOW);
    }

    #[test]
    fn dangerous_calls_are_refused_and_ordinary_ones_pass() {
        let p = prog();
        for nr in DENIED {
            assert_eq!(run(&p, native(), *nr as u32, 0), RET_EPERM, "nr {nr}");
        }
        for nr in [
            libc::SYS_read,
            libc::SYS_write,
            libc::SYS_openat,
            libc::SYS_mmap,
            libc::SYS_connect,
            libc::SYS_execve,
            libc::SYS_kill,
            libc::SYS_landlock_restrict_self,
            libc::SYS_exit_group,
        ] {
            assert_eq!(run(&p, native(), nr as u32, 0), RET_ALLOW, "nr {nr}");
        }
        let thread =
            (libc::CLONE_VM | libc::CLONE_FS | libc::CLONE_FILES | libc::CLONE_SIGHAND | libc::CLONE_THREAD) as u64;
        assert_eq!(run(&p, native(), libc::SYS_clone as u32, thread), RET_ALLOW);
        assert_eq!(run(&p, native(), libc::SYS_clone as u32, libc::SIGCHLD as u64), RET_ALLOW);
        for ns in [libc::CLONE_NEWUSER, libc::CLONE_NEWNET, libc::CLONE_NEWNS, libc::CLONE_NEWPID] {
            assert_eq!(run(&p, native(), libc::SYS_clone as u32, ns as u64 | libc::SIGCHLD as u64), RET_EPERM);
        }
        // clone3 hides its flags behind a pointer: the C library falls back to clone.
        assert_eq!(run(&p, native(), libc::SYS_clone3 as u32, 0), RET_ENOSYS);
    }
}
