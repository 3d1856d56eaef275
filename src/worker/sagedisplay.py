# Sage's rich output, as its Jupyter kernel has it (BackendIPythonNotebook), with what a sagews page shows in place of
# what needs Jupyter's front end: animations as image/gif rather than HTML, typeset LaTeX as text/latex (the page typesets it with KaTeX) rather than HTML for
# MathJax, and three.js scenes as data for the page's own 3-D viewer (static/three/) rather than inline scripts.
import json
import math
import re

from sage.repl.rich_output.backend_ipython import BackendIPythonNotebook
from sage.repl.rich_output.output_catalog import OutputHtml, OutputImageGif, OutputLatex, OutputSceneThreejs

# Sage's LaTeX for display starts with its own macro definitions; KaTeX knows \newcommand, but not inside $$…$$.
_DOLLARS = re.compile(r"^\s*\$\$?|\$\$?\s*$")

THREEJS_MIME = "application/vnd.sagews.threejs+json"

# Sage's threejs_template.html assigns each scene part on a line of its own: `var NAME = JSON;` (the bounds with a
# trailing `// bounds`). json.dumps never writes a raw newline, so one line holds the whole value. The viewer's key
# for each template variable:
_SCENE_VARS = {
    "options": "options",
    "b": "bounds",
    "lights": "lights",
    "ambient": "ambient",
    "texts": "texts",
    "points": "points",
    "lines": "lines",
    "surfaces": "surfaces",
}
_SCENE_LINE = re.compile(r"^[ \t]*var (" + "|".join(_SCENE_VARS) + r") = (.*);(?: // bounds)?[ \t]*$", re.M)
# The bounds are Python floats formatted into the template, so an unbounded scene writes nan or inf there
_PY_FLOAT = re.compile(r"(?<![\w\"])(-?)(nan|inf)(?![\w\"])")


def _wire(value):
    """The value with every NaN or infinity (json.dumps writes them, JSON.parse refuses them) as null, and every float
    to 7 significant digits: WebGL draws in 32-bit floats, which hold no more, and a scene is ~40% smaller."""
    if isinstance(value, float):
        return float(f"{value:.7g}") if math.isfinite(value) else None
    if isinstance(value, list):
        return [_wire(v) for v in value]
    if isinstance(value, dict):
        return {k: _wire(v) for k, v in value.items()}
    return value


def threejs_scene(html):
    """The scene that Sage filled into its three.js page, as one JSON text for the viewer; None if a part is missing."""
    scene = {}
    for match in _SCENE_LINE.finditer(html):
        key = _SCENE_VARS[match.group(1)]
        if key in scene:
            continue  # the template's own line comes first; animation.js, appended after it, has others
        text = match.group(2)
        if key == "bounds":
            text = _PY_FLOAT.sub(lambda m: m.group(1) + ("NaN" if m.group(2) == "nan" else "Infinity"), text)
        try:
            scene[key] = _wire(json.loads(text))
        except ValueError:
            return None
    if len(scene) != len(_SCENE_VARS):
        return None
    return json.dumps(scene, separators=(",", ":"), allow_nan=False)


class Backend(BackendIPythonNotebook):
    def _repr_(self):
        return "sagews"

    def displayhook(self, plain_text, rich_output):
        data, metadata = super().displayhook(plain_text, rich_output)
        if isinstance(rich_output, (OutputHtml, OutputLatex)) and "text/latex" in data:
            latex = data["text/latex"]
            # show(x), %display latex: one typeset formula, and the plain text for copying and for text clients
            return {"text/latex": _DOLLARS.sub("", latex), "text/plain": data["text/plain"]}, metadata
        if isinstance(rich_output, OutputSceneThreejs):
            # Sage's page runs inline scripts, which the page's CSP refuses: the scene goes to the page's viewer as data
            scene = threejs_scene(rich_output.html.get_str())
            plain = {"text/plain": plain_text.text.get_str()}
            return ({THREEJS_MIME: scene, **plain} if scene is not None else plain), metadata
        if isinstance(rich_output, OutputImageGif):
            # an animation: Sage's notebook wraps it in an <img> of HTML; as a picture it is one in every client
            return {"image/gif": rich_output.gif.get(), "text/plain": plain_text.text.get_str()}, metadata
        return data, metadata

    def threejs_offline_scripts(self):
        # Sage's page is only parsed for its data (threejs_scene): the viewer loads three.js itself, from /three/lib/
        return ""
