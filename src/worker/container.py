# A session's container (root only): its cgroup, its own pid, mount, IPC, network and UTS namespaces, a private
# filesystem view and a seccomp filter. One session is three processes, from the forkserver (or the worker) down:
#   holder  joins the session's cgroup, unshares the namespaces, forks init and, once init has exec'd, replaces
#           itself with the reaper (reaper.c, as `sagews-holder`): it waits for init and exits the way the session's
#           main process did, so that whoever waits for the holder learns the real reason
#   init    pid 1 of the session's pid namespace: forks the main process, then replaces itself with the reaper (as
#           `sagews-init`): it reaps every orphan and exits when the main process ends; the kernel then kills
#           whatever is left in the namespace, however it forks
#   main    pid 2: the kernel (kernel.py) or a terminal's shell; it builds the private view (view()) and later
#           drops to the session's uid (sandbox.py) and locks itself down (lock_down()) before any user code
# Holder and init exec so that only the main process keeps the forkserver's (Sage's) address space: ending many
# sessions at once then tears down one copy of it per session, not three.
import ctypes
import errno
import os
import shutil
import signal
import socket
import tempfile

libc = ctypes.CDLL(None, use_errno=True)
libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWCGROUP = 0x02000000
NAMESPACES = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID | CLONE_NEWNET

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18

PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
PR_SET_NO_NEW_PRIVS = 38

# Writable by everyone on a stock host: each session gets an empty one of its own instead.
PRIVATE_TMP = ("/tmp", "/var/tmp", "/dev/shm")
# The host's daemons keep their sockets and pid files here: a session gets an empty one, with its own /run/lock.
PRIVATE_RUN = "/run"
# World-writable host caches that Sage fills on demand: each session gets a private copy.
PRIVATE_COPIES = ("/var/cache/sympow/datafiles",)
# What a session has no business reading: the cgroup tree of the host (other sessions' names and usage).
HIDDEN = ("/sys/fs/cgroup",)
# Where a session sees, read-only, the host directory of what its forkserver built once for every session (spec
# "shared": the GAP workspace, kernel.py). Inside the session's own /run, which is root's: nothing there is the
# session's to replace.
SHARED = "/run/shared"
HOSTNAME = b"sagews"
# The reaper that holder and init exec (src/worker/reaper.c), compiled by `npm run setup` (src/setup/setup.mjs).
REAPER = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../build/sagews-reaper"))


def _check(result, what):
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def _mount(source, target, fstype, flags=0, data=None):
    enc = lambda s: s.encode() if isinstance(s, str) else s  # noqa: E731
    _check(libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), f"mount {fstype or ''} on {target}")


def _die_with_parent():
    parent = os.getppid()
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def _write(path, text):
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _name(comm):
    """What ps and top show for this process (its command line stays its parent's)."""
    libc.prctl(PR_SET_NAME, comm, 0, 0, 0)


def reaper():
    """An open descriptor of the reaper (close-on-exec). Opened before anything is unshared or forked: the exec
    goes through it, so the main process's view (a tmpfs on /home or /tmp, say) can never hide the file."""
    try:
        return os.open(REAPER, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, f"the session reaper {REAPER} is missing: build it with `npm run setup` (src/setup/setup.mjs compiles src/worker/reaper.c)") from None


def check_reaper():
    """Fails now, with the path and the fix, rather than in every session's holder."""
    os.close(reaper())


def hold(spec, main):
    """The holder: runs in a freshly forked child, never returns. `main` runs as pid 2 of the new namespaces."""
    _name(b"sagews-holder")
    program = reaper()
    for procs in spec.get("cgroup", []):
        _write(procs, str(os.getpid()))
    flags = NAMESPACES if spec.get("network", "isolated") == "isolated" else NAMESPACES & ~CLONE_NEWNET
    _check(libc.unshare(flags), "unshare")
    report_r, report_w = os.pipe()
    # Its write end is init's alone and closes on exec, that is once init has forked the main process and its
    # execve has torn down init's copy of Sage's address space.
    execd_r, execd_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(report_r)
        os.close(execd_r)
        _init(program, report_w, execd_w, main)
    os.close(report_w)
    os.close(execd_w)
    # Our own execve tears down this process's copy. Done while init forks the main process, it slowed that fork
    # (both take the locks of the forkserver's mappings): the main process started ~3 ms later.
    os.read(execd_r, 1)
    os.close(execd_r)
    os.set_inheritable(report_r, True)
    # The rest is reaper.c's: wait for init, read the report, exit the way the main process did (exit_like).
    os.execve(program, ["sagews-holder", str(pid), str(report_r)], {})


def _init(program, report_w, execd_w, main):
    """pid 1 of the session: forks the main process, then becomes the reaper, which reaps everything and, when
    the main process ends, reports how and exits."""
    try:
        _die_with_parent()  # kept across the execve below (same credentials, not setuid); reaper.c sets it again
        _name(b"sagews-init")
        pid = os.fork()
        if pid == 0:
            os.close(report_w)
            os.close(execd_w)
            os.close(program)
            try:
                main()
            except BaseException:  # noqa: B902 - whatever main raised ends the session, with a trace on stderr
                import traceback

                traceback.print_exc()
            finally:
                os._exit(70)
        # init keeps no descriptor that user code could need to see closed (the kernel socket, the pty): only the
        # report pipe, and two that close on exec (the reaper's, and the holder's signal that init has exec'd)
        keep = (report_w, execd_w, program)
        for fd in range(0, 3):
            if fd not in keep:
                try:
                    os.close(fd)
                except OSError:
                    pass
        low = 3
        for fd in sorted(keep):
            os.closerange(low, fd)
            low = max(low, fd + 1)
        os.closerange(low, 65536)
        os.set_inheritable(report_w, True)
        os.execve(program, ["sagews-init", str(pid), str(report_w)], {})
    finally:
        os._exit(70)


def private_home(path):
    """The forkserver's own empty home at the sessions' home path, in a mount namespace of its own: Sage's import
    writes its state directory there and binds its paths (DOT_SAGE, each interface's log and caches) to it, and those
    paths are then each session's own, since every session's view mounts a fresh home at the same path."""
    os.makedirs(path, mode=0o755, exist_ok=True)  # the mount point on the host, which stays empty
    _check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "size=64m,mode=0700")


def skeleton(path):
    """The directories under `path` (relative), parents first: what a session's home needs to look like the
    forkserver's did when Sage was imported (it made some of them at import and counts on them)."""
    found = []
    for top, dirs, _files in os.walk(path):
        dirs.sort()
        found.extend(os.path.relpath(os.path.join(top, d), path) for d in dirs)
    return found


def host_pids():
    """(main, init) as the host sees them: read from the host's /proc, so call before view() mounts our own."""
    with open("/proc/self/stat") as stat:
        ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
    return int(os.readlink("/proc/self")), ppid


def view(spec):
    """The private filesystem view, built by the main process while still root, before it takes its uid."""
    # opened before any mount below can hide it (a data directory in /tmp, say); bound once /run is the session's
    shared = os.open(spec["shared"], os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC) if spec.get("shared") and os.path.isdir(spec["shared"]) else None
    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing mounted here reaches the host, and nothing back
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)  # our pid namespace's processes only
    tmp = f"size={int(spec['tmpMiB'])}m,nr_inodes={int(spec['inodes'])},mode=1777"
    for path in PRIVATE_TMP:
        if os.path.isdir(path):
            _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, tmp)
    _mount("tmpfs", PRIVATE_RUN, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, f"size={int(spec['tmpMiB'])}m,nr_inodes={int(spec['inodes'])},mode=0755")
    os.mkdir(os.path.join(PRIVATE_RUN, "lock"))
    os.chmod(os.path.join(PRIVATE_RUN, "lock"), 0o1777)
    if shared is not None:
        _bind_read_only(f"/proc/self/fd/{shared}", SHARED)
        os.close(shared)
    for path in PRIVATE_COPIES:
        if os.path.isdir(path):
            _private_copy(path)
    _mount("tmpfs", "/home", "tmpfs", MS_NOSUID | MS_NODEV, f"size={int(spec['homeMiB'])}m,nr_inodes={int(spec['inodes'])},mode=0755")
    for path in list(HIDDEN) + list(spec.get("hide", [])):
        if os.path.isdir(path):
            _mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,nr_inodes=16,mode=0755")
    libc.sethostname(HOSTNAME, len(HOSTNAME))


def _bind_read_only(source, target):
    os.mkdir(target, 0o755)
    _mount(source, target, None, MS_BIND)
    # a bind mount takes flags only from a remount; the session cannot undo them (no mount syscall, no capability)
    _mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)


def _private_copy(path):
    stage = tempfile.mkdtemp(dir="/tmp")
    copy = os.path.join(stage, "copy")
    shutil.copytree(path, copy, symlinks=True)
    mode = os.stat(path).st_mode & 0o7777
    _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, f"size=64m,mode={mode:o}")
    shutil.copytree(copy, path, symlinks=True, dirs_exist_ok=True)
    shutil.rmtree(stage)


# Syscalls no cell needs, refused with EPERM: new namespaces and mounts (a way back out of the view), kernel
# keyrings, BPF, perf, ptrace and reading other processes' memory, modules, io_uring (it bypasses this filter).
REFUSED = (
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen", "fsmount",
    "fsconfig", "fspick", "mount_setattr", "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "ptrace",
    "process_vm_readv", "process_vm_writev", "kcmp", "init_module", "finit_module", "delete_module", "kexec_load",
    "kexec_file_load", "reboot", "swapon", "swapoff", "open_by_handle_at", "name_to_handle_at", "userfaultfd",
    "io_uring_setup", "io_uring_enter", "io_uring_register", "acct", "quotactl", "syslog", "lookup_dcookie",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "sethostname", "setdomainname", "iopl", "ioperm",
)
NEW_NAMESPACE_FLAGS = (CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWCGROUP)

_filter = None


def prepare_filter():
    """Builds the seccomp filter once (in the forkserver); lock_down() only loads it."""
    global _filter
    import seccomp

    f = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    for name in REFUSED:
        try:
            f.add_rule(seccomp.ERRNO(errno.EPERM), name)
        except (RuntimeError, ValueError):
            pass  # a syscall this architecture does not have
    for flag in NEW_NAMESPACE_FLAGS:
        f.add_rule(seccomp.ERRNO(errno.EPERM), "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    # clone3 passes its flags in memory that a filter cannot read: make libc fall back to clone.
    f.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    _filter = f
    return f


def lock_down():
    """no_new_privs (no setuid binary gives anything back) and the seccomp filter, for this process and all it starts."""
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
    (_filter or prepare_filter()).load()


def connect(path):
    """The kernel socket, connected before view() hides the directory it lives in."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    return sock
