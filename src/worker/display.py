# Rich display of values in a session kernel: text/plain, text/latex (Sage latex(), SymPy), image/png
# (Matplotlib figures, Sage Graphics), text/html (_repr_html_). Also replaces show() and plt.show().
import base64
import io
import os

KIND = None
_emit = None
_home = None
_png_counter = 0


def load(kind, ns):
    global KIND
    KIND = kind
    import matplotlib.pyplot as plt

    plt.show = lambda *args, **kwargs: flush_figures()
    ns["show"] = show_command
    if kind == "sage":
        from sage.plot.graphics import Graphics

        Graphics.show = lambda self, **kwargs: show(self, **kwargs)


def warm():
    import matplotlib.pyplot as plt

    fig = plt.figure()
    plt.plot([0, 1], [0, 1])
    fig.savefig(io.BytesIO(), format="png")
    plt.close("all")
    if KIND == "sage":
        from sage.all import plot, sin, latex, SR

        plot(sin(SR.var("x")), (-1, 1)).matplotlib().savefig(io.BytesIO(), format="png")
        latex(SR.var("x") ** 2)


def bind(emit):
    global _emit
    _emit = emit


def after_sandbox(setup):
    global _home
    _home = setup["home"]
    if KIND == "sage":
        try:
            import sage.env

            sage.env.DOT_SAGE = os.path.join(_home, ".sage")
        except Exception:  # noqa: B902 - an older or newer Sage without this attribute still works
            pass


def _png(fig_or_graphics):
    buffer = io.BytesIO()
    if hasattr(fig_or_graphics, "savefig"):
        fig_or_graphics.savefig(buffer, format="png", bbox_inches="tight")
    else:
        fig_or_graphics.matplotlib().savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _is_graphics(value):
    if KIND != "sage":
        return False
    from sage.plot.graphics import Graphics

    try:
        from sage.plot.multigraphics import MultiGraphics
    except ImportError:
        MultiGraphics = Graphics
    return isinstance(value, (Graphics, MultiGraphics))


def _latex(value):
    if isinstance(value, (bool, str)) and type(value).__name__ != "LatexExpr":
        return None
    if KIND == "sage":
        from sage.all import latex
        from sage.misc.latex import LatexExpr

        if isinstance(value, LatexExpr):
            return str(value)
        if hasattr(value, "_latex_"):
            return str(latex(value))
    try:
        import sympy

        if isinstance(value, sympy.Basic):
            return sympy.latex(value)
    except ImportError:
        pass
    if hasattr(value, "_repr_latex_"):
        text = value._repr_latex_()
        return text.strip("$") if isinstance(text, str) else None
    return None


def rich(value):
    from matplotlib.figure import Figure

    if _is_graphics(value):
        return {"text/plain": repr(value), "image/png": _png(value)}
    if isinstance(value, Figure):
        import matplotlib.pyplot as plt

        data = {"text/plain": repr(value), "image/png": _png(value)}
        plt.close(value)
        return data
    data = {"text/plain": repr(value)}
    latex = _latex(value)
    if latex is not None:
        data["text/latex"] = latex
    if hasattr(value, "_repr_html_"):
        html = value._repr_html_()
        if isinstance(html, str):
            data["text/html"] = html
    return data


def show(value, **_kwargs):
    _emit({"kind": "display", "data": rich(value)})


def show_command(*values, **kwargs):
    """show(obj): display it (Sage's show, with LaTeX and plots); show() alone shows pending figures."""
    if not values:
        flush_figures()
    for value in values:
        show(value, **kwargs)


def html(text):
    _emit({"kind": "display", "data": {"text/html": str(text), "text/plain": str(text)}})


def flush_figures():
    import matplotlib.pyplot as plt

    for number in plt.get_fignums():
        figure = plt.figure(number)
        _emit({"kind": "display", "data": {"text/plain": repr(figure), "image/png": _png(figure)}})
    plt.close("all")
