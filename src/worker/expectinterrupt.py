# Interrupting a pexpect interface that does not come back by itself. Sage's Expect answers a Ctrl-C in a cell by
# sending one to the program and waiting, with no timeout, for its prompt twice; ECL (lisp), interrupted, enters its
# debugger and never shows that prompt, so the cell hung until a limit ended the session. Giac's own handler raises a
# RuntimeError and leaves Giac reading the rest of the interrupted line, so its next command fails. Here the wait has
# a bound, a program that does not come back within it is restarted, and so is Giac, as Sage does for Maxima: its
# variables are gone, which the KeyboardInterrupt's message says in Sage's own words.
import pexpect

# s an interrupted program may take to show its prompt again: gp, GAP and Singular take a few ms
PROMPT_TIMEOUT = 3.0


def _restart(interface):
    interface.quit()  # closes it (SIGKILL if it must) and forgets it: the next use starts it again
    raise KeyboardInterrupt(f"Restarting {interface} (WARNING: all variables defined in previous session are now invalid)")


def install():
    """Once, in the forkserver, after Sage is imported."""
    from sage.interfaces.expect import Expect
    from sage.interfaces.giac import Giac

    sage_interrupt = Expect._keyboard_interrupt

    def _keyboard_interrupt(self):
        if self._restart_on_ctrlc or self._expect is None:
            return sage_interrupt(self)
        print(f"Interrupting {self}...")
        try:
            self._expect.sendline(chr(3))
            self._expect.expect(self._prompt, timeout=PROMPT_TIMEOUT)
            self._expect.expect(self._prompt, timeout=PROMPT_TIMEOUT)
        except (pexpect.TIMEOUT, pexpect.EOF):
            _restart(self)
        raise KeyboardInterrupt(f"Ctrl-c pressed while running {self}")

    def _giac_keyboard_interrupt(self):
        print(f"Interrupting {self}...")
        _restart(self)

    Expect._keyboard_interrupt = _keyboard_interrupt
    Giac._keyboard_interrupt = _giac_keyboard_interrupt
