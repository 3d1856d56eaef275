# Sage's rich output, as its Jupyter kernel has it (BackendIPythonNotebook), with what a sagews page shows in place of
# what needs Jupyter's front end: typeset LaTeX as text/latex (the page typesets it with KaTeX) rather than HTML for
# MathJax, and three.js scenes for the page's own 3-D viewer rather than an iframe of inline scripts.
import re

from sage.repl.rich_output.backend_ipython import BackendIPythonNotebook
from sage.repl.rich_output.output_catalog import OutputHtml, OutputLatex, OutputSceneThreejs

# Sage's LaTeX for display starts with its own macro definitions; KaTeX knows \newcommand, but not inside $$…$$.
_DOLLARS = re.compile(r"^\s*\$\$?|\$\$?\s*$")


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
            return {"text/html": rich_output.html.get_str(), "text/plain": plain_text.text.get_str()}, metadata
        return data, metadata

    def threejs_offline_scripts(self):
        # three.js from the page's own static files (no CDN): conf/nginx serves them under /static/three/
        return '<script src="/three/three.min.js"></script><script src="/three/OrbitControls.js"></script>'
