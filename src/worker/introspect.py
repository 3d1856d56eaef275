# Completion and `obj?` / `obj??` help in a session's kernel, from the session's namespace. kernel.py answers the
# worker's `complete` and `inspect` commands with `answer`, from its output thread, so also while a cell runs: nothing
# here evaluates the text or calls the user's objects (names are looked up, attributes read), and warnings it raises
# are dropped rather than printed into the running cell's output.
import builtins
import inspect
import keyword
import os
import re
import threading
import warnings

# Names one completion answers with at most, sorted (protocol/worker.ts MAX_COMPLETIONS): a prefix of one letter in a
# Sage session has a few hundred; an empty one, thousands.
MAX_MATCHES = 1_000
# Characters of help text at most (protocol/worker.ts MAX_INSPECTION_CHARS): the source of a large class is cut there.
MAX_TEXT = 100_000
# Characters of a value's repr shown in its help ("String form"), and entries of a directory a file name is completed from.
MAX_REPR = 200
MAX_DIR_ENTRIES = 5_000
# How far back from the cursor the call it is in is looked for (`factorial(` … `|`), in characters.
MAX_CALL_LOOKBACK = 10_000

_TAIL = re.compile(r"[\w.]*$")
_HEAD = re.compile(r"\w*")
_DOTTED = re.compile(r"[^\W\d]\w*(?:\.[^\W\d]\w*)*$")
# Sage's preparser makes `2.factor()` Integer(2).factor() and `1.5.n()` RealNumber('1.5').n()
_SAGE_NUMBER = re.compile(r"(\d+(?:\.\d+)?)((?:\.[^\W\d]\w*)*)$")


class IntrospectError(Exception):
    """A command that cannot be answered, for the user: what was wrong with it."""


def answer(command, ns, kind):
    """The reply to a `complete` or `inspect` command, with its `ref`; a bad command gets the kernel's `fileError`."""
    ref = command.get("ref")
    try:
        code, cursor = _code_and_cursor(command)
        if command.get("type") == "complete":
            matches, start, end = _quietly(complete, code, cursor, ns, kind)
            return {"type": "completions", "ref": ref, "matches": matches, "cursor_start": start, "cursor_end": end}
        detail = command.get("detail", 0)
        if detail not in (0, 1):
            raise IntrospectError(f"detail {detail!r} is neither 0 (the help) nor 1 (the source)")
        found, name, text = _quietly(inspect_at, code, cursor, detail, ns, kind)
        return {"type": "inspection", "ref": ref, "found": found, "name": name, "text": text}
    except IntrospectError as error:
        return {"type": "fileError", "ref": ref, "message": str(error)}


def _code_and_cursor(command):
    code, cursor = command.get("code"), command.get("cursor")
    if not isinstance(code, str):
        raise IntrospectError("the command has no code")
    if not isinstance(cursor, int) or isinstance(cursor, bool) or not 0 <= cursor <= len(code):
        raise IntrospectError(f"cursor {cursor!r} is outside the code, which is {len(code)} characters long")
    return code, cursor


def _quietly(f, *args):
    """Runs f with the warnings of this thread dropped: printed, they would land in the running cell's output."""
    shown = warnings.showwarning
    me = threading.get_ident()

    def show(message, category, filename, lineno, file=None, line=None):
        if threading.get_ident() != me:
            shown(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        return f(*args)
    finally:
        if warnings.showwarning is show:
            warnings.showwarning = shown


# ---------------- completion ----------------


def complete(code, cursor, ns, kind):
    """(matches, start, end): what may replace code[start:end], the text typed before the cursor."""
    line = code[code.rfind("\n", 0, cursor) + 1 : cursor]
    where, at = _context(line)
    if where == "comment":
        return [], cursor, cursor
    if where == "string":
        typed = line[at:]
        return _paths(typed), cursor - len(typed) + typed.rfind("/") + 1, cursor
    token = _TAIL.search(line).group()
    if "." not in token:
        return _names(token, ns), cursor - len(token), cursor
    expr, _, prefix = token.rpartition(".")
    found, obj = _resolve(expr, ns, kind)
    if not found:
        return [], cursor - len(prefix), cursor
    return _attributes(obj, prefix), cursor - len(prefix), cursor


def _context(line):
    """("code", None), ("comment", None), or ("string", where the string open at the end of `line` starts)."""
    i, quote, start = 0, None, None
    while i < len(line):
        c = line[i]
        if quote is None:
            if c == "#":
                return "comment", None
            if c in "'\"":
                quote = line[i : i + 3] if line[i : i + 3] in ('"""', "'''") else c
                i += len(quote)
                start = i
                continue
        elif c == "\\":
            i += 2
            continue
        elif line.startswith(quote, i):
            i += len(quote)
            quote = None
            continue
        i += 1
    return ("string", start) if quote is not None else ("code", None)


def _ranked(names, prefix):
    """The names starting with prefix, sorted: case-blind, those starting with _ last (and only for a prefix with one)."""
    hidden = not prefix.startswith("_")
    picked = {n for n in names if isinstance(n, str) and n.startswith(prefix) and not (hidden and n.startswith("_"))}
    return sorted(picked, key=lambda n: (n.startswith("_"), n.lower(), n))[:MAX_MATCHES]


def _names(prefix, ns):
    if prefix and not prefix.isidentifier():
        return []  # a number, or half of one
    names = list(ns) + dir(builtins) + keyword.kwlist + keyword.softkwlist
    return _ranked(names, prefix)


def _attributes(obj, prefix):
    if prefix and not prefix.isidentifier():
        return []
    try:
        names = dir(obj)
    except Exception:  # noqa: B902 - a user's __dir__ may raise anything: nothing to offer
        return []
    return _ranked(names, prefix)


def _paths(typed):
    """File names of the home (the working directory) that complete the path typed so far inside a string."""
    folder, slash, base = typed.rpartition("/")
    directory = (folder or "/") if slash else "."
    names = []
    try:
        with os.scandir(os.path.expanduser(directory)) as entries:
            for n, entry in enumerate(entries):
                if n >= MAX_DIR_ENTRIES:
                    break
                if entry.name.startswith(base) and (base.startswith(".") or not entry.name.startswith(".")):
                    names.append(entry.name + ("/" if entry.is_dir(follow_symlinks=False) else ""))
    except OSError:
        return []
    return sorted(names)[:MAX_MATCHES]


def _resolve(expr, ns, kind):
    """(found, object) of a dotted name (`ZZ.random_element`), or, in Sage, of a number literal and what follows it."""
    number = _SAGE_NUMBER.match(expr) if kind == "sage" else None
    if number is not None:
        literal, rest = number.groups()
        make = ns.get("RealNumber" if "." in literal else "Integer")
        if make is None:
            return False, None
        try:
            obj = make(literal)
        except Exception:  # noqa: B902
            return False, None
        parts = rest.split(".")[1:]
    elif _DOTTED.match(expr):
        first, *parts = expr.split(".")
        if first in ns:
            obj = ns[first]
        elif hasattr(builtins, first):
            obj = getattr(builtins, first)
        else:
            return False, None
    else:
        return False, None
    for part in parts:
        try:
            obj = getattr(obj, part)
        except Exception:  # noqa: B902 - a property may raise anything: then there is no such object
            return False, None
    return True, obj


# ---------------- inspection ----------------


def inspect_at(code, cursor, detail, ns, kind):
    """(found, name, text): the help (detail 0) or source (1) of the object named at the cursor."""
    name = _name_at(code, cursor)
    if not name:
        return False, "", ""
    found, obj = _resolve(name, ns, kind)
    if not found:
        return False, name, ""
    text = _sage_help(obj, name, detail) if kind == "sage" else _python_help(obj, name, detail)
    if len(text) > MAX_TEXT:
        text = text[:MAX_TEXT] + f"\n… (cut at {MAX_TEXT} characters)\n"
    return True, name, text


def _name_at(code, cursor):
    """The dotted name the cursor is on (or just after), else that of the call the cursor is in."""
    start = code.rfind("\n", 0, cursor) + 1
    end = code.find("\n", cursor)
    head = _TAIL.search(code[start:cursor]).group()
    tail = _HEAD.match(code[cursor : end if end >= 0 else len(code)]).group()
    name = (head + tail).strip(".")
    if name:
        return name
    depth = 0
    for i in range(cursor - 1, max(-1, cursor - 1 - MAX_CALL_LOOKBACK), -1):
        c = code[i]
        if c in ")]}":
            depth += 1
        elif c in "([{":
            if depth > 0:
                depth -= 1
            elif c == "(":
                return _TAIL.search(code[max(0, i - 1000) : i]).group().strip(".")
            else:
                return ""
    return ""


def _fields(rows):
    return "".join(f"{label + ':':<12} {value}\n" for label, value in rows if value)


def _string_form(obj):
    if inspect.ismodule(obj) or inspect.isclass(obj) or inspect.isroutine(obj):
        return None
    try:
        text = repr(obj)
    except Exception:  # noqa: B902
        return None
    text = " ".join(text.split())
    return text if len(text) <= MAX_REPR else text[:MAX_REPR] + "…"


def _type_name(obj):
    t = type(obj)
    return t.__name__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def _attempt(f, *args):
    try:
        return f(*args)
    except Exception:  # noqa: B902 - the object does not say: that field is left out
        return None


def _sage_help(obj, name, detail):
    from sage.misc import sageinspect

    short = name.rpartition(".")[2]
    signature = _attempt(sageinspect.sage_getdef, obj, short) if callable(obj) else None
    head = _fields([
        ("Signature", signature),
        ("Type", _type_name(obj)),
        ("String form", _string_form(obj)),
        ("File", _attempt(sageinspect.sage_getfile, obj)),
    ])
    if detail == 1:
        source = _attempt(sageinspect.sage_getsource, obj)
        if source:
            return f"{head}Source:\n{source}"
        head += "Source:     not available (a built-in or compiled object, or defined where no file keeps it)\n"
    # Sage's `obj?`: the docstring with its LaTeX and reST made text (sphinxify, when sphinx is there)
    doc = _attempt(sageinspect.sage_getdoc, obj) or _attempt(sageinspect.sage_getdoc, obj, True) or ""
    return f"{head}Docstring:\n{doc.rstrip() or '<no docstring>'}\n"


def _python_help(obj, name, detail):
    signature = None
    if callable(obj):
        sig = _attempt(inspect.signature, obj)
        signature = f"{name.rpartition('.')[2]}{sig}" if sig is not None else None
    head = _fields([
        ("Signature", signature),
        ("Type", _type_name(obj)),
        ("String form", _string_form(obj)),
        ("File", _attempt(inspect.getsourcefile, obj) or _attempt(inspect.getfile, obj)),
    ])
    if detail == 1:
        source = _attempt(inspect.getsource, obj)
        if source:
            return f"{head}Source:\n{source}"
        head += "Source:     not available (a built-in or compiled object, or defined where no file keeps it)\n"
    doc = _attempt(inspect.getdoc, obj) or ""
    return f"{head}Docstring:\n{doc.rstrip() or '<no docstring>'}\n"
