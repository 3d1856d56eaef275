# Interrupting R. Sage's R interface embeds R through rpy2, whose SIGINT handler raises KeyboardInterrupt inside R's
# event callback, where cffi drops it ("Exception ignored from cffi callback"): R runs on until a limit ends the
# session. This handler tells R itself (R_interrupts_pending), which unwinds to rpy2 as an RRuntimeError; the cell
# then reports the interrupt as any other (shell.py, kernel.py).
_interrupted = False


def install():
    """Before R starts (rpy2 installs the handler it finds here when it initialises R)."""
    try:
        import rpy2.rinterface
    except ImportError:
        return
    rpy2.rinterface._sigint_handler = _handler


def _handler(signum, frame):
    global _interrupted
    if frame is not None and frame.f_code.co_name == "_processevents":
        from rpy2.rinterface_lib import openrlib

        openrlib.rlib.R_interrupts_pending = 1
        _interrupted = True
        return
    raise KeyboardInterrupt


def reset():
    """At the start of a cell: an interrupt of an earlier one is not carried over."""
    global _interrupted
    _interrupted = False


def interrupted(etype):
    """Whether an error of type `etype` is R unwinding from an interrupt."""
    return _interrupted and etype.__name__ == "RRuntimeError"
