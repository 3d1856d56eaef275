# Sandbox of one session kernel, applied in the forked child before any user code runs:
# private home (0700), rlimits, a fresh uid with no supplementary groups, a clean environment, and (contained,
# as root) no_new_privs and the seccomp filter. The namespaces and the private view are container.py's.
import ctypes
import os
import resource
import signal
import tempfile

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
libc = ctypes.CDLL(None, use_errno=True)


def die_with_parent():
    """SIGKILL this process when its parent (the forkserver) dies. setuid clears this, so call it again after."""
    parent = os.getppid()
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def vm_size_bytes():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def apply(setup):
    """setup: {"uid", "gid", "home", "env", "contained", "limits": {"memory" MiB, "cpu" s, "nofile", "nproc", "fsize" bytes}}"""
    uid = setup.get("uid")
    gid = setup.get("gid")
    home = setup["home"]
    limits = setup["limits"]
    root = os.geteuid() == 0
    os.makedirs(home, mode=0o700, exist_ok=True)
    if root and uid is not None:
        os.chown(home, uid, gid)
    os.chmod(home, 0o700)

    # Address space: what the kernel already maps plus the memory the session may add.
    address_space = vm_size_bytes() + int(limits["memory"]) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
    # CPU: SIGXCPU at the soft limit (reported as CpuLimit), SIGKILL one second later.
    cpu = int(limits["cpu"])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_NOFILE, (int(limits["nofile"]), int(limits["nofile"])))
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(limits["fsize"]), int(limits["fsize"])))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if root and uid is not None:
        # The uid is this session's alone, so RLIMIT_NPROC (counted per real uid) caps this session only.
        resource.setrlimit(resource.RLIMIT_NPROC, (int(limits["nproc"]), int(limits["nproc"])))
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
        if os.getuid() != uid or os.geteuid() != uid:
            raise PermissionError(f"could not switch to uid {uid}")
    if setup.get("contained"):
        import container

        container.lock_down()
    die_with_parent()
    os.chdir(home)
    os.environ.clear()
    os.environ.update(setup.get("env", {}))
    os.environ["HOME"] = home
    tempfile.tempdir = home
