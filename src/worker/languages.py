# A cell's language (the page's selector; `language` of run and execute), as sagecell has them. sage and python are
# the kernels' own (python in a sage session: Sage's preparser off for that cell); gap, gp, maxima, singular, r and
# octave go through Sage's interfaces in the same session, as its %%gap-style cell magics do; html is shown as HTML.
# A first line `%gap` (one %) means the same as `%%gap`, as in sagecell.
import contextlib
import re

INTERFACES = ("gap", "gp", "maxima", "singular", "r", "octave")
LANGUAGES = ("sage", "python", "html") + INTERFACES
_FIRST_LINE = re.compile(r"^%(" + "|".join(INTERFACES + ("html",)) + r")[ \t]*(?:\n|$)")


class LanguageError(Exception):
    pass


def cell(kind, language, code):
    """The cell as the shell runs it."""
    if language is None or language == kind:
        return _FIRST_LINE.sub(lambda m: f"%%{m.group(1)}\n", code, count=1) if kind == "sage" else code
    if language not in LANGUAGES:
        raise LanguageError(f"unknown language {language!r}: one of {', '.join(LANGUAGES)}")
    if language == "html":
        return "%%html\n" + code
    if kind != "sage":
        raise LanguageError(f"{language} runs in a sage session (through Sage's interfaces); this session's kernel is {kind}")
    if language == "python":
        return code
    return f"%%{language}\n{code}"


@contextlib.contextmanager
def preparsing(kind, language):
    """Sage's preparser is off while a python cell runs in a sage session."""
    if kind != "sage" or language != "python":
        yield
        return
    from sage.repl import interpreter

    interpreter.preparser(False)
    try:
        yield
    finally:
        interpreter.preparser(True)
