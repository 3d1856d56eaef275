# A session's interpreter: an IPython shell, as Sage's notebook and Jupyter kernels run cells. For sage kernels it is
# Sage's own (its preparser, magics, %gap/%%gp-style interface magics, `?`/`??`, display manager); for python ones
# IPython's. The three places IPython writes output (the display hook, the display publisher, tracebacks) go to
# the worker as output messages instead.
import base64
import json

from IPython.core.displayhook import DisplayHook
from IPython.core.displaypub import DisplayPublisher
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

import expectinterrupt
import rinterrupt

_emit = None
_explain = None


def bind(emit, explain):
    """emit(msg) sends one output message; explain(error) gives the evalue a user reads for an error."""
    global _emit, _explain
    _emit = emit
    _explain = explain


def _data(format_dict):
    """A mime bundle as the wire carries it: text as text, images base64 (as Jupyter's wire has them)."""
    data = {}
    for mime, value in format_dict.items():
        if isinstance(value, bytes):
            value = base64.b64encode(value).decode("ascii")
        elif not isinstance(value, str):
            value = json.dumps(value)
        data[mime] = value
    return data


def display(format_dict):
    _emit({"kind": "display", "data": _data(format_dict)})


class _Hook(DisplayHook):
    """The cell's last value (`Out[n]`, `_`, `__`): one display message; a trailing `;` still silences it."""

    def start_displayhook(self):
        pass

    def write_output_prompt(self):
        pass

    def write_format_data(self, format_dict, md_dict=None):
        display(format_dict)

    def finish_displayhook(self):
        pass


class _Publisher(DisplayPublisher):
    """display(), show(), plots shown while the cell runs."""

    def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kwargs):
        display(data)

    def clear_output(self, wait=False):
        pass


class _Outputs:
    """Mixed into the shell class: tracebacks go out as error messages; an interrupt says KeyboardInterrupt once."""

    displayhook_class = _Hook
    display_pub_class = _Publisher

    # `!cmd` writes to the cell's own stdout and stderr (not through a pty of its own, whose \r\n a page would show)
    def system(self, cmd):
        return InteractiveShell.system_raw(self, cmd)

    def enable_gui(self, gui=None):
        """Sage's attach() asks for its terminal input hook: a session instead reloads attached files before each
        cell (kernel.py), as that hook does between prompts."""

    # what the namespace held once the kernel was loaded (Sage's globals, show, interact): %reset keeps it, as Sage's
    # own reset() does, rather than leave a Sage session without Sage
    initial_ns = {}

    def reset(self, new_session=True, aggressive=False):
        super().reset(new_session, aggressive)
        for name, value in self.initial_ns.items():
            self.user_ns.setdefault(name, value)

    def _showtraceback(self, etype, evalue, stb):
        if issubclass(etype, KeyboardInterrupt) or rinterrupt.interrupted(etype):
            _emit({"kind": "error", "ename": "KeyboardInterrupt", "evalue": "interrupted", "traceback": []})
            return
        _emit({"kind": "error", "ename": etype.__name__, "evalue": _explain(evalue), "traceback": [line + "\n" for line in stb]})


def _config():
    c = Config()
    # No history database: a file opened in the forkserver would be shared by every session forked from it
    c.HistoryManager.hist_file = ":memory:"
    c.InteractiveShell.colors = "NoColor"
    return c


def python_shell():
    class Shell(_Outputs, InteractiveShell):
        pass

    return Shell.instance(config=_config())


def sage_shell():
    from sage.repl.interpreter import SageNotebookInteractiveShell
    from sage.repl.ipython_extension import SageCustomizations

    from sagedisplay import Backend

    class Shell(_Outputs, SageNotebookInteractiveShell):
        def init_display_formatter(self):
            backend = Backend()
            backend.get_display_manager().switch_backend(backend, shell=self)

    shell = Shell.instance(config=_config())
    SageCustomizations(shell)
    rinterrupt.install()
    expectinterrupt.install()
    return shell
