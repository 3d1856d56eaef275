# Parses Sage's tutorial (.rst) the way `sage -t --long` does (FileDocTestSource, DocTestDefaults) and prints JSON:
# per file, the examples in order (source as typed, want, exc_msg, line, tags, ends_in_show) and how many sage -t
# would skip.
# Run with Debian's /usr/bin/python3: `examples.py [--dir DIR] [FILE ...]` (files by stem: tour_algebra).
import argparse
import ast
import doctest
import glob
import json
import os
import re
import sys
import tempfile

import sage.all  # noqa: F401  (the doctest framework expects Sage loaded, as sage -t has it)
import sage.doctest.parsing as parsing
from sage.doctest.control import DocTestDefaults
from sage.doctest.sources import FileDocTestSource, RestSource

TUTORIAL = "/usr/share/doc/sagemath/html/en/tutorial/_sources"
# sage -t appends this to every docstring to check cysignals' sig_on/sig_off pairing; no user typed it
SIG_ON_COUNT = "sig_on_count() # check sig_on/off pairings (virtual doctest)\n"
# an example's first line (not a comment-only one, which is no example to sage -t either)
PROMPT = re.compile(r"^\s*sage: (?!\s*#)")


def parse_file(path, options):
    """The examples sage -t would run from `path`, in order, and the counts of the ones it would skip."""
    stem = os.path.basename(path).split(".")[0]
    with open(path, encoding="utf-8") as f:
        text = f.read()
    doctests, in_skip_blocks = doctests_of(stem, text, options)
    examples = []
    skipped_by_directive = 0  # `# doctest: +SKIP`: the runner passes over it (forker: optionflags & SKIP)
    python_prompts = 0
    for test in doctests:
        for ex in test.examples:
            if getattr(ex, "sage_source", None) == SIG_ON_COUNT:
                continue
            if getattr(ex, "sage_source", None) is None:
                python_prompts += 1  # a `>>>` example shows plain Python (2^8 == 10): no input to a Sage cell
                continue
            if ex.options.get(doctest.SKIP):
                skipped_by_directive += 1
                continue
            examples.append({
                "line": test.lineno + ex.lineno + 1,
                "source": ex.sage_source,
                "want": str(ex.want),
                "exc_msg": ex.exc_msg,
                "tags": sorted(tags_of(ex.sage_source)),
                "options": {str(flag): on for flag, on in ex.options.items()},
                "ends_in_show": ends_in_show(ex.source),
            })
    skipped = {"tags": typed_count(doctests, options) - len(examples) - skipped_by_directive, "directives": skipped_by_directive,
               "skip blocks": in_skip_blocks, "python prompts": python_prompts}
    return {"file": stem, "examples": examples, "skipped": skipped}


def doctests_of(stem, text, options):
    """The doctests of one ReST text, as sage -t reads a file, and how many examples its `.. skip` blocks hold."""
    # RestSource passes over a block after `.. skip` line by line, in starting_docstring: count its prompts there
    in_skip_blocks = 0
    starting = RestSource.starting_docstring

    def counting(self, line):
        nonlocal in_skip_blocks
        inside = self.skipping
        started = starting(self, line)
        if inside and self.skipping and PROMPT.match(line):
            in_skip_blocks += 1
        return started

    RestSource.starting_docstring = counting
    # FileDocTestSource knows a file by its extension: the docs ship .rst.txt, so write the text to a .rst
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, stem + ".rst")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        try:
            doctests, _ = FileDocTestSource(path, options).create_doctests({})
        finally:
            RestSource.starting_docstring = starting
    return doctests, in_skip_blocks


def typed_count(doctests, options):
    """How many examples the docstrings hold as written, also those the parser drops for their tags."""
    # the parser drops those without a trace: record every example's first line as it reads its tags, once per
    # final docstring (linked ReST blocks are parsed again and again while the file is read, so not during that)
    seen = []
    read_tags = parsing.parse_optional_tags

    def recording(string):
        seen.append(string)
        return read_tags(string)

    parsing.parse_optional_tags = recording
    try:
        for test in doctests:
            parsing.SageDocTestParser(options.optional, options.long).parse(test.docstring)
    finally:
        parsing.parse_optional_tags = read_tags
    return sum(1 for s in seen if PROMPT.match(s))


def ends_in_show(preparsed):
    """Whether the example ends in a `show(...)` or `obj.show(...)` statement: a display that is not its value."""
    # a doctest prints the text of a plot that is a cell's value, never of one that is shown; a session's display
    # output may not say which it is, so the examples say
    try:
        body = ast.parse(preparsed).body
    except SyntaxError:
        return False
    last = body[-1] if body else None
    if not (isinstance(last, ast.Expr) and isinstance(last.value, ast.Call)):
        return False
    called = last.value.func
    return (isinstance(called, ast.Name) and called.id == "show") or (isinstance(called, ast.Attribute) and called.attr == "show")


def tags_of(sage_source):
    """The doctest tags of an example (its first line's comment): optional, long time, random, tolerances."""
    tags = set(parsing.parse_optional_tags("sage: " + sage_source))
    marked = parsing.parse_tolerance("sage: " + sage_source, "")
    if isinstance(marked, parsing.MarkedOutput):
        tags |= {name.replace("_", " ") for name in ("random", "tol", "rel_tol", "abs_tol") if getattr(marked, name)}
    return tags


def main():
    args = argparse.ArgumentParser(description=__doc__)
    args.add_argument("--dir", default=TUTORIAL, help="the tutorial's _sources directory")
    args.add_argument("files", nargs="*", help="file stems to parse (default: every .rst.txt)")
    opts = args.parse_args()
    paths = sorted(glob.glob(os.path.join(opts.dir, "*.rst.txt")))
    if opts.files:
        paths = [p for p in paths if os.path.basename(p).split(".")[0] in opts.files]
        missing = set(opts.files) - {os.path.basename(p).split(".")[0] for p in paths}
        if missing:
            sys.exit(f"examples.py: no tutorial file {sorted(missing)} in {opts.dir}")
    # sage -t's defaults (optional = sage + installed features), with --long: the tutorial's long examples run too
    options = DocTestDefaults(long=True)
    json.dump([parse_file(p, options) for p in paths], sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
