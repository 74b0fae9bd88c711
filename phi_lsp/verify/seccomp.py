"""A seccomp-BPF filter the sandbox child applies to itself before the checked module loads.

Runs inside the sandbox (``python -I -S``, the project's interpreter): standard library
only, Python 3.9 syntax. Hand-built BPF, so nothing needs installing:

- the architecture is checked first: any other ABI (i386 through ``int 0x80`` on x86_64,
  32-bit ARM on aarch64) kills the process, and so does an x32 syscall number
  (``>= 0x40000000``) on x86_64;
- new processes and programs are refused: fork/vfork (EAGAIN), clone without
  CLONE_THREAD (EAGAIN; threads stay allowed), clone3 (ENOSYS, so glibc falls back to
  clone for threads), execve/execveat (EPERM);
- ptrace, reading/writing other processes' memory, io_uring (its operations bypass
  seccomp), new namespaces, mounts, kernel modules, keyrings, bpf, perf: EPERM;
- ``socket()`` of any family but AF_INET/AF_INET6 (``allow_inet``: those too) fails with
  EACCES, so no Unix-domain socket file can be connected to; ``socketpair`` stays (asyncio);
- ``prctl(PR_SET_PDEATHSIG)``, setsid and setpgid: EPERM, so the child cannot detach
  from the process that reaps it.
"""

import struct

# BPF opcodes
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06

_RET_KILL_PROCESS = 0x80000000
_RET_ERRNO = 0x00050000
_RET_ALLOW = 0x7FFF0000

_EPERM, _EAGAIN, _EACCES, _ENOSYS = 1, 11, 13, 38
_CLONE_THREAD = 0x10000
_AF_INET, _AF_INET6 = 2, 10
_PR_SET_PDEATHSIG = 1
_X32_BIT = 0x40000000

# Calls added since Linux 5.1 have one number on every architecture.
_UNIFIED = {
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    "open_tree": 428,
    "move_mount": 429,
    "fsopen": 430,
    "fsmount": 432,
}

# (audit arch, syscall numbers by name); names absent on an arch are left out.
_ARCHES = {
    "x86_64": (
        0xC000003E,
        {
            "fork": 57,
            "vfork": 58,
            "clone": 56,
            "clone3": 435,
            "execve": 59,
            "execveat": 322,
            "ptrace": 101,
            "process_vm_readv": 310,
            "process_vm_writev": 311,
            "socket": 41,
            "prctl": 157,
            "setsid": 112,
            "setpgid": 109,
            "unshare": 272,
            "setns": 308,
            "mount": 165,
            "umount2": 166,
            "pivot_root": 155,
            "chroot": 161,
            "bpf": 321,
            "perf_event_open": 298,
            "userfaultfd": 323,
            "keyctl": 250,
            "add_key": 248,
            "request_key": 249,
            "kexec_load": 246,
            "kexec_file_load": 320,
            "init_module": 175,
            "finit_module": 313,
            "delete_module": 176,
            **_UNIFIED,
        },
    ),
    "aarch64": (
        0xC00000B7,
        {
            "clone": 220,
            "clone3": 435,
            "execve": 221,
            "execveat": 281,
            "ptrace": 117,
            "process_vm_readv": 270,
            "process_vm_writev": 271,
            "socket": 198,
            "prctl": 167,
            "setsid": 157,
            "setpgid": 154,
            "unshare": 97,
            "setns": 268,
            "mount": 40,
            "umount2": 39,
            "pivot_root": 41,
            "chroot": 51,
            "bpf": 280,
            "perf_event_open": 241,
            "userfaultfd": 282,
            "keyctl": 219,
            "add_key": 217,
            "request_key": 218,
            "kexec_load": 104,
            "kexec_file_load": 294,
            "init_module": 105,
            "finit_module": 273,
            "delete_module": 106,
            **_UNIFIED,
        },
    ),
}
_ARCHES["arm64"] = _ARCHES["aarch64"]
_ARCHES["amd64"] = _ARCHES["x86_64"]

_EPERM_CALLS = (
    "execve",
    "execveat",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "setsid",
    "setpgid",
    "unshare",
    "setns",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "keyctl",
    "add_key",
    "request_key",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsmount",
)


def supported(machine: str) -> bool:
    return machine in _ARCHES


def build(machine: str, allow_inet: bool) -> bytes:
    """The filter program for ``machine`` (``platform.machine()``) as packed sock_filters."""
    audit_arch, nr = _ARCHES[machine]
    # Each row: (label or None, code, jump-true label, jump-false label, k); a label of
    # None for a jump means "next instruction".
    rows = []

    def add(code, k, jt=None, jf=None, label=None):
        rows.append((label, code, jt, jf, k))

    add(_LD_W_ABS, 4)  # seccomp_data.arch
    add(_JEQ_K, audit_arch, None, "kill")
    add(_LD_W_ABS, 0)  # seccomp_data.nr
    if machine in ("x86_64", "amd64"):
        add(_JGE_K, _X32_BIT, "kill", None)
    for name in ("fork", "vfork"):
        if name in nr:
            add(_JEQ_K, nr[name], "again", None)
    add(_JEQ_K, nr["clone3"], "nosys", None)
    add(_JEQ_K, nr["clone"], "clone", None)
    add(_JEQ_K, nr["socket"], "socket", None)
    add(_JEQ_K, nr["prctl"], "prctl", None)
    for name in _EPERM_CALLS:
        if name in nr:
            add(_JEQ_K, nr[name], "perm", None)
    add(_RET_K, _RET_ALLOW)
    # clone: args[0] (flags), low 32 bits at offset 16 (little-endian)
    add(_LD_W_ABS, 16, label="clone")
    add(_JSET_K, _CLONE_THREAD, "allow", "again")
    add(_LD_W_ABS, 16, label="socket")  # args[0]: the address family
    if allow_inet:
        add(_JEQ_K, _AF_INET, "allow", None)
        add(_JEQ_K, _AF_INET6, "allow", None)
    add(_RET_K, _RET_ERRNO | _EACCES)
    add(_LD_W_ABS, 16, label="prctl")  # args[0]: the option
    add(_JEQ_K, _PR_SET_PDEATHSIG, "perm", "allow")
    add(_RET_K, _RET_ERRNO | _EAGAIN, label="again")
    add(_RET_K, _RET_ERRNO | _ENOSYS, label="nosys")
    add(_RET_K, _RET_ERRNO | _EPERM, label="perm")
    add(_RET_K, _RET_ALLOW, label="allow")
    add(_RET_K, _RET_KILL_PROCESS, label="kill")
    labels = {row[0]: k for k, row in enumerate(rows) if row[0]}
    out = []
    for k, (_, code, jt, jf, value) in enumerate(rows):
        t = labels[jt] - k - 1 if jt else 0
        f = labels[jf] - k - 1 if jf else 0
        if not (0 <= t < 256 and 0 <= f < 256):
            raise ValueError("seccomp filter jump out of range")
        out.append(struct.pack("<HBBI", code, t, f, value))
    return b"".join(out)


def install(program: bytes) -> bool:
    """Load ``program`` for this thread and the threads it starts later (no_new_privs
    first, which unprivileged seccomp needs). False where the kernel refuses it."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    buf = ctypes.create_string_buffer(program, len(program))
    fprog = SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p))
    pr_set_no_new_privs, pr_set_seccomp, seccomp_mode_filter = 38, 22, 2
    if libc.prctl(pr_set_no_new_privs, 1, 0, 0, 0) != 0:
        return False
    return libc.prctl(pr_set_seccomp, seccomp_mode_filter, ctypes.byref(fprog), 0, 0) == 0
