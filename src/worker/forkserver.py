#!/usr/bin/python3
# Kernel forkserver: imports one kernel kind's libraries once, warms them with a real computation, then forks
# session kernels on request. Protocol with the worker: JSON lines, commands on stdin, events on stdout.
#   worker -> forkserver: {"type":"spawn","kernels":[{"tag","cgroup":[cgroup.procs files]}]}
#   forkserver -> worker: {"type":"ready",...} {"type":"exited","tag","code"|"signal"}
#                         {"type":"gapWorkspace","ok","path","ms"} (sage: the shared GAP workspace is there, or failed)
# Each forked child connects to the worker's kernel socket itself (see kernel.py: child_main). With --contain
# (root), each child is a session container (container.py): the pid reported is its holder's, whose exit is
# the kernel's.
import argparse
import json
import os
import resource
import select
import signal
import stat
import sys
import time
import traceback

from sandbox import die_with_parent, libc  # beside this file: a SIGKILLed worker leaves no forkserver

PR_SET_CHILD_SUBREAPER = 36


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kind", choices=["sage", "python"], required=True)
    parser.add_argument("--socket", required=True)
    parser.add_argument("--contain", help="JSON: the container of every session (container.py: view)")
    parser.add_argument("--shared", help="the directory of what is built once for every session (sage: the GAP workspace)")
    args = parser.parse_args()
    contain = json.loads(args.contain) if args.contain else None

    # Events go out on a private copy of fd 1; fd 1 itself becomes stderr so that a library printing at
    # import time can never corrupt the protocol.
    events = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    die_with_parent()
    # Orphans of sessions (double forks) are re-parented to us, and we reap them: no zombie is left behind.
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1)

    def emit(message):
        events.write(json.dumps(message) + "\n")

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    t0 = time.monotonic()
    if contain is not None:
        import container

        container.check_reaper()
        container.private_home(contain["home"])
    # Sage's interfaces keep the directory they are made in (Expect's path: the cwd when Sage is imported) and start
    # their program there: make that the home, which every session has, not the worker's cwd, which a session's
    # private view may hide (a checkout in /tmp: FileNotFoundError at gp's first use).
    args.socket, args.shared = os.path.abspath(args.socket), args.shared and os.path.abspath(args.shared)
    os.chdir(os.environ["HOME"])
    import kernel

    if contain is not None:
        container.prepare_filter()
    gap_dir = seen = None  # where the shared GAP workspace is built, and where sessions see it
    if args.kind == "sage" and args.shared:
        try:
            gap_dir = shared_directory(os.path.join(shared_directory(args.shared), "gap"))
            # contained, a session sees the shared directory at container.SHARED (read-only: container.view)
            seen = gap_dir if contain is None else os.path.join(container.SHARED, "gap")
        except (OSError, RuntimeError) as error:
            print(f"no shared GAP workspace: each session's GAP builds its own ({error})", file=sys.stderr)
    kernel.load(args.kind, seen)
    t1 = time.monotonic()
    kernel.warm()
    t2 = time.monotonic()
    emit({
        "type": "ready",
        "kind": args.kind,
        "pid": os.getpid(),
        "importMs": round((t1 - t0) * 1000, 1),
        "warmMs": round((t2 - t1) * 1000, 1),
        "maxrssKiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    })
    builder = None  # (pid, start) of the child building the shared GAP workspace
    if gap_dir is not None:
        if kernel.gap_workspace_fresh(gap_dir):
            emit({"type": "gapWorkspace", "ok": True, "path": kernel.gap_workspace(gap_dir), "ms": 0})
        else:
            builder = (build_in_background(lambda: kernel.build_gap_workspace(gap_dir)), time.monotonic())

    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)
    # Block (not ignore) SIGINT: Sage's cysignals handler stays installed for the kernels, which unblock it
    # only while a cell runs.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    stdin = sys.stdin.buffer
    pending = b""
    tags = {}  # pid of each living child -> the tag of the spawn request it answers

    def reap():
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if builder is not None and pid == builder[0]:
                ok = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
                emit({"type": "gapWorkspace", "ok": ok, "path": kernel.gap_workspace(gap_dir), "ms": round((time.monotonic() - builder[1]) * 1000)})
                continue
            tag = tags.pop(pid, None)
            if tag is None:
                continue  # an orphan of user code, re-parented to us (we are its subreaper)
            if os.WIFSIGNALED(status):
                emit({"type": "exited", "tag": tag, "signal": signal.Signals(os.WTERMSIG(status)).name})
            else:
                emit({"type": "exited", "tag": tag, "code": os.WEXITSTATUS(status)})

    def spawn(spec):
        tag = str(spec.get("tag", ""))
        pid = os.fork()
        if pid == 0:
            try:
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                os.closerange(3, 65536)  # nothing of the forkserver's (its stdin, its events) goes with a session
                if contain is None:
                    kernel.child_main(args.socket, args.kind, tag, None)
                else:
                    container.hold({**contain, "cgroup": spec.get("cgroup", [])}, lambda: kernel.child_main(args.socket, args.kind, tag, contain))
            except BaseException:  # noqa: B902 - a child must never return into the forkserver's loop
                traceback.print_exc()
            finally:
                os._exit(70)
        tags[pid] = tag

    while True:
        ready, _, _ = select.select([stdin, wake_r], [], [])
        if wake_r in ready:
            try:
                os.read(wake_r, 4096)
            except BlockingIOError:
                pass
            reap()
        if stdin in ready:
            chunk = os.read(stdin.fileno(), 65536)
            if not chunk:
                return  # the worker closed our stdin: it is going away
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if not line.strip():
                    continue
                command = json.loads(line)
                if command.get("type") == "spawn":
                    for spec in command.get("kernels", []):
                        spawn(spec)
        reap()


def shared_directory(path):
    """`path`, made ours and 0755: what is built in it, every session trusts (contained, sessions read it, never write)."""
    os.makedirs(path, mode=0o755, exist_ok=True)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise RuntimeError(f"{path} is not a directory of uid {os.geteuid()}: nothing in it can be shared with sessions")
    os.chmod(path, 0o755)
    return path


def build_in_background(build):
    """Runs build() in a child of the forkserver, at the lowest priority, while the forkserver goes on forking sessions:
    it takes seconds (the GAP workspace: ~2 s of CPU) that readiness then does not wait for. The child ends with the
    forkserver (and, contained, with its pid namespace); its exit code says whether build() succeeded."""
    pid = os.fork()
    if pid != 0:
        return pid
    code = 1
    try:
        die_with_parent()
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # pexpect waits for the programs it runs
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        devnull = os.open("/dev/null", os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(2, 1)
        os.closerange(3, 65536)  # the events and the kernel socket are the forkserver's
        os.nice(19)
        os.umask(0o022)
        build()
        code = 0
    except BaseException:  # noqa: B902 - reported on stderr (the worker's log); sessions then do without
        traceback.print_exc()
    finally:
        os._exit(code)


if __name__ == "__main__":
    main()
