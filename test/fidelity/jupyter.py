# Runs tutorial examples through Jupyter's `sagemath` kernel, one kernel per file, examples in order, and prints
# what a doctest would have seen of each. stdin: examples.py's JSON; stdout: one JSON line per file, as it ends:
# {file, start_seconds, results: [{got, raised, traceback, timed_out, seconds}]}.
# Run with Debian's /usr/bin/python3; the kernels get a private HOME, DOT_SAGE, TMPDIR and Jupyter dirs (--home).
import argparse
import json
import os
import queue
import re
import shutil
import signal
import sys
import tempfile
import time

# how long a kernel may take to start (Sage's import is ~1-3 s; a loaded machine is slower)
KERNEL_START_TIMEOUT = 120
# how long an interrupted example may take to stop before its kernel is restarted
INTERRUPT_GRACE = 10
# how long the execute_reply may lag behind the kernel's idle status
REPLY_TIMEOUT = 10
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# a display_data bundle holding one of these is a picture: a doctest shows nothing of it (BackendDoctest)
PICTURES = ("image/", "video/", "application/x-canvas3d", "model/")


def private_environment(root):
    """The environment of the kernels: their own HOME, DOT_SAGE and Jupyter dirs, and this interpreter first."""
    env = {"HOME": root, "DOT_SAGE": os.path.join(root, ".sage"), "JUPYTER_RUNTIME_DIR": os.path.join(root, "runtime"),
           "JUPYTER_DATA_DIR": os.path.join(root, "data"), "JUPYTER_CONFIG_DIR": os.path.join(root, "config"),
           "IPYTHONDIR": os.path.join(root, "ipython"), "MPLCONFIGDIR": os.path.join(root, "matplotlib"),
           "TMPDIR": os.path.join(root, "tmp")}
    for d in env.values():
        os.makedirs(d, exist_ok=True)
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"  # else ipykernel's debugger warns on stderr at every start
    # `sage --python` execs the first python3 on PATH: it must be the one with Sage (this one), not a pyenv shim
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    return env


class Kernel:
    """One sagemath kernel and its client; `run` executes one example and returns what a doctest would see."""

    def __init__(self):
        from jupyter_client.manager import start_new_kernel

        started = time.monotonic()
        self.manager, self.client = start_new_kernel(startup_timeout=KERNEL_START_TIMEOUT, kernel_name="sagemath")
        self.start_seconds = time.monotonic() - started

    def run(self, source, timeout):
        started = time.monotonic()
        # stop_on_error would abort the next example after a failed one: a session goes on after an error
        msg_id = self.client.execute(source, allow_stdin=False, stop_on_error=False)
        got, raised, traceback, timed_out = [], None, None, False
        deadline = started + timeout
        interrupted_at = None
        while True:
            now = time.monotonic()
            if interrupted_at is None and now > deadline:
                timed_out, interrupted_at = True, now
                self.manager.interrupt_kernel()
            if interrupted_at is not None and now > interrupted_at + INTERRUPT_GRACE:
                self.restart()
                break
            if not self.manager.is_alive():
                raised = raised or "KernelDied: the kernel process exited"
                self.restart()
                break
            try:
                msg = self.client.get_iopub_msg(timeout=0.5)
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                got.append(content["text"])
            elif kind == "execute_result":
                got.append(content["data"].get("text/plain", "") + "\n")
            elif kind == "display_data":
                data = content["data"]
                if "text/plain" in data and not any(m.startswith(PICTURES) for m in data):
                    got.append(data["text/plain"] + "\n")
            elif kind == "error":
                ename, evalue = content["ename"], ANSI.sub("", content["evalue"])
                raised = f"{ename}: {evalue}" if evalue else ename
                traceback = ANSI.sub("", "\n".join(content["traceback"]))
            elif kind == "status" and content["execution_state"] == "idle":
                raised = raised or self.aborted(msg_id)
                break
        return {"got": "".join(got), "raised": raised, "traceback": traceback, "timed_out": timed_out,
                "seconds": round(time.monotonic() - started, 4)}

    def aborted(self, msg_id):
        """The kernel's reply, if it says it did not run the example at all."""
        while True:
            try:
                reply = self.client.get_shell_msg(timeout=REPLY_TIMEOUT)
            except queue.Empty:
                return "NoReply: the kernel sent no execute_reply"
            if reply["parent_header"].get("msg_id") == msg_id:
                return "Aborted: the kernel did not run it" if reply["content"]["status"] == "aborted" else None

    def restart(self):
        """A hung or dead kernel is replaced: the file's later examples run without the state before."""
        self.manager.restart_kernel(now=True)
        self.client.wait_for_ready(timeout=KERNEL_START_TIMEOUT)

    def shutdown(self):
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


def run_file(entry, timeout):
    kernel = Kernel()
    try:
        results = [kernel.run(ex["source"], timeout) for ex in entry["examples"]]
        return {"file": entry["file"], "start_seconds": round(kernel.start_seconds, 3), "results": results}
    finally:
        kernel.shutdown()


def main():
    args = argparse.ArgumentParser(description=__doc__)
    args.add_argument("--timeout", type=float, default=60, help="seconds an example may run before it is interrupted")
    args.add_argument("--home", help="the kernels' private directory (default: a temp dir, removed at the end)")
    opts = args.parse_args()
    files = [f for f in json.load(sys.stdin) if f["examples"]]
    # SIGTERM (a test giving up) ends through the finally blocks, which shut the kernels down
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    root = opts.home or tempfile.mkdtemp(prefix="sagews-fidelity-jupyter-")
    try:
        env = private_environment(root)
        os.environ.update(env)
        tempfile.tempdir = env["TMPDIR"]  # jupyter_client writes the connection files there
        # with a fresh MPLCONFIGDIR the first plotting kernel would print "Matplotlib is building the font cache":
        # build it once here, as a sagews worker has it built
        import matplotlib.font_manager  # noqa: F401
        for entry in files:
            sys.stdout.write(json.dumps(run_file(entry, opts.timeout)) + "\n")
            sys.stdout.flush()
    finally:
        if opts.home is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
