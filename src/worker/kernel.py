# Session kernel: what a forked child of the forkserver runs. Connects to the worker, waits for its sandbox
# setup, applies it (sandbox.py), then runs cells in its shell (shell.py) as a notebook does, output streamed.
import ast
import functools
import gc
import io
import json
import os
import queue
import select
import signal
import socket
import sys
import threading
import time
import traceback

import container
import display
import interact
import introspect
import languages
import rinterrupt
import sandbox
import shell
from home import Home, HomeError

KIND = None
# the kernel's exit code when the worker's end of its socket closed
CONNECTION_CLOSED = 74
# The session's shell (shell.py) and its namespace, made once in the forkserver
SHELL = None
BASE_NS = {}
# The directories the forkserver's home had once the libraries were imported and warm (Sage makes some at import
# and counts on them): each session's home gets them too
SKELETON = []


def load(kind, gap_workspaces=None):
    """Runs once in the forkserver: the expensive imports every session then shares, and the shell that runs cells.
    `gap_workspaces`: the directory where sessions see the GAP workspace the forkserver builds for them (sage)."""
    global KIND, SHELL, BASE_NS
    KIND = kind
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401

    import shell

    if kind == "sage":
        SHELL = shell.sage_shell()
        if gap_workspaces is not None:
            _gap_from_shared(gap_workspaces)
    else:
        SHELL = shell.python_shell()
        SHELL.run_cell("import math\nimport numpy as np\nimport sympy\nfrom sympy import *\nimport matplotlib.pyplot as plt\nx, y, z, t = symbols('x y z t')", store_history=False)
    BASE_NS = SHELL.user_ns
    display.load(kind, SHELL)
    interact.install(BASE_NS, kind)
    SHELL.initial_ns = dict(BASE_NS)


def warm():
    """One real computation of each kind, through the shell and its display formatter, so that forked sessions do
    not pay for first-use initialisation. Nothing of it is left in the namespace, the history or `_`."""
    if KIND == "sage":
        code = "__warm = [factor(x^2-1), 2/3+1/3, integrate(sin(x)^2, x), matrix(QQ, 2, [1,2,3,4]).inverse()]"
    else:
        code = "__warm = [factor(x**2-1), integrate(sin(x)**2, x), np.linalg.inv(np.eye(3)), np.arange(3)]"
    SHELL.run_cell(code, store_history=False, silent=True)
    for value in SHELL.user_ns.pop("__warm", []):
        SHELL.display_formatter.format(value)
    if KIND == "sage":
        # A help (obj?, Shift-Tab: introspect.py) formats its docstring with Sphinx (sage.misc.sphinxify), which Sage
        # imports and sets up at its first use: ~0.45 s of a session's first help, 50 ms once done here (~0.4 s more
        # to get ready, ~30 MB more of the forkserver's memory, shared by every session). The text is the same.
        from sage.misc.sageinspect import sage_getdoc

        sage_getdoc(BASE_NS["factor"])
    display.warm()
    ast.parse("1")
    # Everything imported so far is shared with every session: keep the collector from touching (and so
    # copying) those pages in each forked child.
    gc.collect()
    gc.freeze()
    SKELETON.extend(container.skeleton(os.environ["HOME"]))


def gap_workspace(directory):
    """The GAP workspace's path in `directory`: the name Sage gives a session's own (its hash names GAP's install)."""
    from sage.interfaces.gap_workspace import gap_workspace_file

    return gap_workspace_file(dir=directory)


def gap_workspace_fresh(directory):
    """Whether the workspace in `directory` is there and newer than GAP's library and packages: Sage's own test."""
    from sage.libs.gap.saved_workspace import timestamp

    try:
        return os.path.getmtime(gap_workspace(directory)) >= timestamp()
    except OSError:
        return False


def build_gap_workspace(directory):
    """Builds the GAP workspace in `directory` as Sage's gap_reset_workspace() builds a session's own (GAP started from
    scratch, every installed package loaded, SaveWorkspace), into a temporary file renamed over the old one once
    complete: a session that starts GAP meanwhile finds the old one, or none. Runs in a child of the forkserver, which
    exits when done (forkserver.py: build_in_background): what it changes of Sage's is its own."""
    from sage.interfaces import gap as gap_interface

    path = gap_workspace(directory)
    # what a killed build left (Sage's atomic_write names its temporary files tmp*), or another GAP install's workspace
    for name in os.listdir(directory):
        other = os.path.join(directory, name)
        if other != path and os.path.isfile(other) and time.time() - os.lstat(other).st_mtime > 600:
            os.unlink(other)
    gap_interface.WORKSPACE = path
    # Sage would start its sage-cleaner daemon to kill the GAP if this process died first; it would outlive the build
    # (and, not contained, the forkserver). Killed, this process closes GAP's pty, and GAP ends on that hangup.
    gap_interface.Gap._do_cleaner = lambda self: False
    gap_interface.gap_reset_workspace()
    info = os.stat(path)
    if info.st_uid != os.geteuid() or info.st_mode & 0o777 != 0o644:
        raise RuntimeError(f"{path} is not 0644 and ours after its build")


def _gap_from_shared(directory):
    """Every session's GAP (Sage's `gap`, and any Gap()) starts from the workspace in `directory` that the forkserver
    built (build_gap_workspace), which the session reads and cannot write: in ~0.2 s, not the ~2 s in which Sage,
    finding no workspace in the session's new home, starts GAP from scratch and saves one there (50 MB of the home).
    Sage's own way is kept when the session has a workspace of its own (it ran gap.save_workspace() or
    gap_reset_workspace(): those write in its home, and its GAP then starts from it, as in Sage), and when the shared
    one is not there yet (the forkserver builds it in the background once it is ready) or is stale."""
    from sage.interfaces import gap as gap_interface

    shared = gap_workspace(directory)
    sage_start = gap_interface.Gap._start

    @functools.wraps(sage_start)
    def _start(self):
        self.quit()  # as Sage's _start does first: the command can change only while GAP is not running
        own = gap_interface.WORKSPACE
        command = getattr(self, "_sagews_command", None) or self.command()
        flag = f" -L {own} "
        if flag not in command:
            return sage_start(self)  # an instance that loads no workspace (gap_reset_workspace's own)
        self._sagews_command = command
        if not os.path.exists(own) and gap_workspace_fresh(directory):
            # Sage's _start touches the workspace it loads (os.utime, so that its clean-up keeps it) and, when that
            # fails, builds a new one at that path: the shared one is read-only for the session, so this start skips
            # that step of Sage's (the instance's workspace cache; freshness is checked here instead) and loads it.
            self.set_server_and_command(command=command.replace(flag, f" -L {shared} "))
            self._Gap__use_workspace_cache = False
            try:
                return sage_start(self)
            except RuntimeError:
                pass  # GAP did not start from it: Sage's own way, below
        self.set_server_and_command(command=command)
        self._Gap__use_workspace_cache = True
        return sage_start(self)

    gap_interface.Gap._start = _start
    gap_workspace_fresh(directory)  # imports what that test needs, here in the forkserver


class Channel:
    """JSON lines over the socket to the worker; send() is safe from any thread. Read by one thread at a time: the
    main thread until the kernel runs, then the output thread (OutputPipes.serve)."""

    def __init__(self, sock):
        self.sock = sock
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.buffer = bytearray()

    def send(self, message):
        if os.getpid() != self.pid:
            return  # a process forked by user code shares the socket but does not speak for the kernel
        data = (json.dumps(message) + "\n").encode()
        # An interrupt must never cut a line in half.
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            with self.lock:
                self.sock.sendall(data)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)

    def fill(self):
        """One read from the socket into the buffer (blocks until something comes)."""
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            # the worker closed this socket (it is gone, or it cut the kernel off for an oversized line): not the
            # user's exit(), which is 0; the worker reads this code as the connection's end (kernel-session.ts)
            os._exit(CONNECTION_CLOSED)
        self.buffer += chunk

    def take(self):
        """The complete lines buffered so far, parsed."""
        lines = []
        while True:
            end = self.buffer.find(b"\n")
            if end < 0:
                return lines
            lines.append(json.loads(bytes(self.buffer[:end])))
            del self.buffer[: end + 1]

    def receive(self):
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0:
                line = bytes(self.buffer[:end])
                del self.buffer[: end + 1]
                return json.loads(line)
            self.fill()


class OutputPipes:
    """fd 1 and 2 are pipes read by a thread, so output of subprocesses and C code streams as well as print(). Once
    the kernel runs, the same thread reads the worker's commands too (serve): no thread of its own, whose stack and
    malloc arena would come out of the address space the session's memory limit leaves to user code."""

    def __init__(self, channel):
        self.channel = channel
        self.current = None
        self.commands = None
        self.wake_r, self.wake_w = os.pipe()
        self.fds = {}
        for fd, name in ((1, "stdout"), (2, "stderr")):
            r, w = os.pipe()
            os.dup2(w, fd)
            os.close(w)
            os.set_blocking(r, False)
            self.fds[r] = name
        # Line-buffered, like a terminal: print() reaches the browser line by line, without a frame per write.
        sys.stdout = io.TextIOWrapper(open(1, "wb", buffering=0, closefd=False), "utf-8", "replace", line_buffering=True)
        sys.stderr = io.TextIOWrapper(open(2, "wb", buffering=0, closefd=False), "utf-8", "replace", line_buffering=True)
        threading.Thread(target=self.loop, daemon=True).start()

    def serve(self, handle):
        """From now on this thread reads the worker's commands and passes each to `handle`."""
        self.commands = handle
        os.write(self.wake_w, b"x")

    def loop(self):
        sock = self.channel.sock
        while True:
            handle = self.commands
            if handle is not None:
                for command in self.channel.take():
                    handle(command)
            watch = list(self.fds) + ([sock] if handle is not None else [self.wake_r])
            ready, _, _ = select.select(watch, [], [], 0.2)
            if sock in ready:
                self.channel.fill()
            if any(fd in self.fds for fd in ready):
                self.drain()

    def drain(self):
        if os.getpid() != self.channel.pid:
            return
        with self.channel.lock:
            for fd, name in self.fds.items():
                chunks = []
                size = 0
                while size < 1 << 20:  # at most 1 MiB per message; the rest follows in the next one
                    try:
                        chunk = os.read(fd, 65536)
                    except BlockingIOError:
                        break
                    if not chunk:
                        break
                    chunks.append(chunk)
                    size += len(chunk)
                if chunks:
                    text = b"".join(chunks).decode("utf-8", errors="replace")
                    line = json.dumps({"type": "output", "id": self.current, "msg": {"kind": name, "text": text}}) + "\n"
                    self.channel.sock.sendall(line.encode())

    def finish(self):
        sys.stdout.flush()
        sys.stderr.flush()
        self.drain()


class Kernel:
    def __init__(self, channel, setup, home):
        self.channel = channel
        self.home = home
        self.pid = os.getpid()
        self.nproc = setup.get("limits", {}).get("nproc")
        self.ns = BASE_NS
        self.memory_mib = setup.get("limits", {}).get("memory")
        self.home_mib = setup.get("limits", {}).get("home")
        self.tmp_mib = setup.get("limits", {}).get("tmp")
        self.pipes = OutputPipes(channel)
        display.bind(self.emit)
        shell.bind(self.emit, self.explain)
        interact.bind(self.emit, self.ns)

    @staticmethod
    def allow_interrupts():
        """SIGINT is blocked except while a cell runs; one that arrived in between is dropped, not carried over."""
        if signal.SIGINT in signal.sigpending():
            signal.sigwait({signal.SIGINT})
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})

    def emit(self, msg):
        self.pipes.finish()
        self.channel.send({"type": "output", "id": self.pipes.current, "msg": msg})

    def run(self, exec_id, body):
        try:
            self.run_cell(exec_id, body)
        finally:
            if os.getpid() != self.pid:
                os._exit(1)  # a process forked by user code must never act as the kernel

    def run_cell(self, exec_id, body):
        """Runs body() as the cell `exec_id`; body returns the cell's status, or raises what the user's code raised."""
        self.pipes.current = exec_id
        try:
            try:
                self.allow_interrupts()
                status = body() or "ok"
                display.flush_figures()
            finally:
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        except KeyboardInterrupt:
            status = "interrupted"
            self.emit({"kind": "error", "ename": "KeyboardInterrupt", "evalue": "interrupted", "traceback": []})
        except SystemExit:
            raise
        except BaseException as error:  # noqa: B902 - user code may raise anything; all of it is reported
            status = "error"
            self.report(error)
        self.pipes.finish()
        self.channel.send({"type": "output", "id": exec_id, "msg": {"kind": "done", "status": status}})

    def explain(self, error):
        """The error's message, with the session's limit named where one is the likely cause."""
        evalue = str(error)
        if isinstance(error, MemoryError):
            evalue = f"the session's memory limit was reached ({self.memory_mib} MiB above the kernel): OutOfMemory"
        elif isinstance(error, OSError) and error.errno == 27:
            evalue = f"{error} (the session's file size limit was reached)"
        elif isinstance(error, OSError) and error.errno == 28 and self.home_mib is not None:
            evalue = f"{error} (the session's private disk is full: its home holds {self.home_mib} MiB, /tmp {self.tmp_mib} MiB)"
        elif isinstance(error, BlockingIOError) and error.errno == 11:
            evalue = f"{error} (the session's limit of {self.nproc} processes may have been reached)"
        return evalue

    def report(self, error):
        """An error raised outside the shell (an interact's callback): the frames of code the user wrote."""
        frames = traceback.extract_tb(error.__traceback__)
        user = [f for f in frames if not f.filename.startswith(os.path.dirname(os.path.abspath(__file__)))] or frames[-1:]
        lines = traceback.format_list(user) + traceback.format_exception_only(type(error), error)
        self.emit({"kind": "error", "ename": type(error).__name__, "evalue": self.explain(error), "traceback": lines})

    def execute(self, exec_id, code, language=None):
        def body():
            source = languages.cell(KIND, language, code)
            if KIND == "sage":
                from sage.repl.attach import reload_attached_files_if_modified

                reload_attached_files_if_modified()
            rinterrupt.reset()
            with languages.preparsing(KIND, language):
                result = SHELL.run_cell(source, store_history=True)
            if SHELL.exit_now:
                raise SystemExit(0)  # exit() or quit(): the session ends, as a kernel does
            error = result.error_before_exec or result.error_in_exec
            if isinstance(error, KeyboardInterrupt) or (error is not None and rinterrupt.interrupted(type(error))):
                return "interrupted"
            return "ok" if error is None else "error"

        self.run(exec_id, body)

    def answer(self, command):
        """A question about the home, answered from the output thread (so also while a cell runs)."""
        ref = command.get("ref")
        try:
            if command.get("type") in ("complete", "inspect"):
                self.channel.send(introspect.answer(command, self.ns, KIND))
            elif command.get("type") == "listFiles":
                files, truncated = self.home.list(bool(command.get("all")))
                self.channel.send({"type": "fileList", "ref": ref, "files": files, "truncated": truncated})
            else:
                send = lambda data, more: self.channel.send({"type": "fileData", "ref": ref, "data": data, "more": more})  # noqa: E731
                self.home.read(str(command.get("path")), int(command.get("max", 0)), send)
        except HomeError as error:
            self.channel.send({"type": "fileError", "ref": ref, "message": str(error)})
        except Exception as error:  # noqa: B902 - reported to the worker; the kernel goes on
            self.channel.send({"type": "fileError", "ref": ref, "message": f"{type(error).__name__}: {error}"})

    def loop(self):
        # Home questions are answered by the output thread as they come; executions and interacts wait in `work` for
        # this (the main) thread, one at a time.
        work = queue.SimpleQueue()
        self.pipes.serve(lambda command: self.answer(command) if command.get("type") in ("listFiles", "readFile", "complete", "inspect") else work.put(command))
        while True:
            command = work.get()
            kind = command.get("type")
            if kind == "execute":
                self.execute(command["id"], command["code"], command.get("language"))
            elif kind == "interact":
                iid = command["interact"]
                self.run(f"interact:{iid}", lambda: interact.change(iid, command["control"], command["value"]))


def child_main(socket_path, kind, tag, contain):
    """Runs in a freshly forked child (in a container: its pid 2): own group, holds none of the forkserver's
    descriptors, dies with its parent. It connects to the worker, then (contained) builds its private view,
    which hides the kernel socket's directory among others."""
    os.setsid()
    sandbox.die_with_parent()
    devnull = os.open("/dev/null", os.O_RDWR)
    os.dup2(devnull, 0)
    os.closerange(3, 65536)
    # The host's /proc, still: it names our host pid (and our init's) for the worker's signals.
    pid, init = container.host_pids()
    sock = container.connect(socket_path)
    channel = Channel(sock)
    if contain is not None:
        container.view(contain)
    channel.send({"type": "hello", "pid": pid, "init": init if contain is not None else None, "tag": tag, "kind": kind})
    setup = channel.receive()
    try:
        sandbox.apply(setup)
    except Exception as error:  # noqa: B902 - reported to the worker, which ends the session
        channel.send({"type": "setupFailed", "message": f"{type(error).__name__}: {error}"})
        os._exit(71)
    for directory in SKELETON:
        os.makedirs(os.path.join(setup["home"], directory), mode=0o700, exist_ok=True)
    # The workspace's files, written as the session's uid into its own home: nothing of root's touches it.
    home = Home(setup["home"])
    try:
        home.put(int(setup.get("files", 0)), channel.receive)
    except Exception as error:  # noqa: B902 - reported to the worker, which ends the session
        channel.send({"type": "filesFailed", "message": str(error) if isinstance(error, HomeError) else f"{type(error).__name__}: {error}"})
        os._exit(71)
    kernel = Kernel(channel, setup, home)
    channel.send({"type": "ready"})
    try:
        kernel.loop()
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else 0
        os._exit(code)
