# Figures and show() in a session kernel, beside what the shell displays itself (shell.py: each value through
# IPython's formatters, and for Sage through its display manager, sagedisplay.py): Matplotlib figures open at the
# end of a cell are shown as PNG and closed, as Jupyter's inline backend does, and plt.show() shows them at once.
import base64
import io

KIND = None
_emit = None


def load(kind, shell):
    global KIND
    KIND = kind
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    plt.show = lambda *args, **kwargs: flush_figures()
    # A Figure as a cell's value is its picture (and closed: it is not shown again at the end of the cell)
    shell.display_formatter.formatters["image/png"].for_type(Figure, _figure_png)
    if kind == "python":
        shell.user_ns["show"] = show


def warm():
    import matplotlib.pyplot as plt

    fig = plt.figure()
    plt.plot([0, 1], [0, 1])
    fig.savefig(io.BytesIO(), format="png")
    plt.close("all")
    if KIND == "sage":
        from sage.all import SR, latex, plot, sin

        plot(sin(SR.var("x")), (-1, 1)).matplotlib().savefig(io.BytesIO(), format="png")
        latex(SR.var("x") ** 2)


def bind(emit):
    global _emit
    _emit = emit


def _png(figure):
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def _figure_png(figure):
    import matplotlib.pyplot as plt

    data = _png(figure)
    plt.close(figure)
    return data


def show(*values):
    """A python kernel's show(obj, ...): display each as a cell's value would be; show() alone shows open figures."""
    from IPython.display import display

    if not values:
        flush_figures()
    for value in values:
        display(value)


def flush_figures():
    import matplotlib.pyplot as plt

    for number in plt.get_fignums():
        figure = plt.figure(number)
        _emit({"kind": "display", "data": {"text/plain": repr(figure), "image/png": base64.b64encode(_png(figure)).decode("ascii")}})
    plt.close("all")
