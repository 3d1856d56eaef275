# Interacts: `@interact` around a function whose defaults are controls (slider, input_box, checkbox, selector).
# The kernel sends the controls' description, runs the function once, and re-runs it on every control change.
import inspect
import itertools

_emit = None
_ns = None
_kind = None
_ids = itertools.count(1)
_interacts = {}


class Control:
    def __init__(self, control, default, label=None, **extra):
        self.control = control
        self.default = default
        self.label = label
        self.extra = {k: v for k, v in extra.items() if v is not None}

    def describe(self, name):
        out = {"name": name, "control": self.control, "label": self.label or name, "default": _plain(self.default)}
        for key, value in self.extra.items():
            out[key] = [_plain(v) for v in value] if key == "values" else _plain(value)
        return out

    def coerce(self, value):
        if self.control == "checkbox":
            return bool(value)
        if self.control == "slider":
            number = float(value)
            integral = all(float(v).is_integer() for v in (self.extra.get("min", 0), self.extra.get("step", 1)))
            return _number(int(number)) if number.is_integer() and integral else _number(number)
        if self.control == "selector":
            for option in self.extra.get("values", []):
                if option == value or str(option) == str(value):
                    return option
            raise ValueError(f"{value!r} is not one of the selector's values")
        if isinstance(self.default, (int, float)) and not isinstance(self.default, bool):
            return type(self.default)(value)
        return value


def _number(value):
    """Sage users expect Sage numbers (exact integers): 1/n must stay a rational."""
    if _kind == "sage":
        from sage.all import Integer, RealNumber

        return Integer(value) if isinstance(value, int) else RealNumber(value)
    return value


def _plain(value):
    if isinstance(value, (bool, str)) or value is None:
        return value
    try:
        number = float(value)
        return int(number) if number.is_integer() else number
    except (TypeError, ValueError):
        return str(value)


def slider(vmin, vmax=None, step_size=None, default=None, label=None):
    if vmax is None:
        vmin, vmax = 0, vmin
    step = step_size if step_size is not None else (1 if isinstance(vmin, int) and isinstance(vmax, int) else (vmax - vmin) / 100)
    return Control("slider", vmin if default is None else default, label, min=vmin, max=vmax, step=step)


def input_box(default="", label=None, type=None):  # noqa: A002 - Sage's own name for the argument
    return Control("input_box", default, label)


def checkbox(default=True, label=None):
    return Control("checkbox", bool(default), label)


def selector(values, label=None, default=None, buttons=False):
    values = list(values)
    return Control("selector", values[0] if default is None and values else default, label, values=values)


def _control_for(default):
    if isinstance(default, Control):
        return default
    if isinstance(default, bool):
        return checkbox(default)
    if isinstance(default, (list, tuple)):
        return selector(default)
    return input_box(default)


def interact(function):
    iid = str(next(_ids))
    controls = {}
    for name, parameter in inspect.signature(function).parameters.items():
        default = None if parameter.default is inspect.Parameter.empty else parameter.default
        controls[name] = _control_for(default)
    values = {name: control.default for name, control in controls.items()}
    _interacts[iid] = (function, controls, values)
    _emit({"kind": "interact", "interact": iid, "controls": [c.describe(n) for n, c in controls.items()]})
    function(**values)
    return function


def change(iid, name, value):
    if iid not in _interacts:
        raise KeyError(f"no interact {iid} in this session")
    function, controls, values = _interacts[iid]
    if name not in controls:
        raise KeyError(f"interact {iid} has no control {name!r}")
    values[name] = controls[name].coerce(value)
    function(**values)


def install(ns, kind):
    global _kind
    _kind = kind
    ns.update({"interact": interact, "slider": slider, "input_box": input_box, "checkbox": checkbox, "selector": selector})


def bind(emit, ns):
    global _emit, _ns
    _emit = emit
    _ns = ns
