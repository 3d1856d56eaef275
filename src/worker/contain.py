#!/usr/bin/python3
# Starts a terminal session's shell in a session container (container.py), as the worker's pty child (root):
#   contain.py SPEC   SPEC = JSON {"contain": {view spec, "cgroup": [...]}, "setup": {sandbox.py setup}, "argv": [...]}
# This process becomes the holder (its exit is the shell's); the shell is pid 2 of its own namespaces, owns the
# pty as its controlling terminal, and runs as the session's uid under no_new_privs and the seccomp filter.
import fcntl
import json
import os
import sys
import termios

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import container  # noqa: E402
import sandbox  # noqa: E402


def main():
    spec = json.loads(sys.argv[1])
    contain = spec["contain"]
    setup = {**spec["setup"], "contained": True}
    argv = spec["argv"]

    def shell():
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 1)  # the pty is ours, not the holder's
        container.view(contain)
        sandbox.apply(setup)
        os.execve(argv[0], argv, dict(os.environ))

    container.prepare_filter()
    sandbox.die_with_parent()
    container.hold(contain, shell)


if __name__ == "__main__":
    main()
