# Judges what examples printed the way `sage -t` does (forker.SageDocTestRunner.run, parsing.SageOutputChecker).
# stdin: JSON [{source, want, exc_msg, options, got, raised}], where got is what the example wrote (stdout, stderr
# and the last value's text) and raised the exception's last line ("ZeroDivisionError: ...") or null.
# stdout: JSON [{pass, outcome}], outcome one of "ok", "wrong output", "unexpected exception", "wrong exception".
# Run with Debian's /usr/bin/python3.
import doctest
import json
import re
import sys

from sage.doctest.parsing import SageOutputChecker, parse_tolerance

# what sage -t runs every example with (forker.DocTestTask: SageDocTestRunner(..., optionflags=...))
SAGE_T_OPTIONFLAGS = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS
# doctest's own reading of an exception line when only its type has to match (forker, IGNORE_EXCEPTION_DETAIL)
EXCEPTION_TYPE = re.compile(r"(?:[^:]*\.)?([^:]*:)")


def judge(case, checker):
    """One example's verdict: its outcome as SageDocTestRunner.run would record it."""
    flags = SAGE_T_OPTIONFLAGS
    for flag, on in (case.get("options") or {}).items():
        flags = flags | int(flag) if on else flags & ~int(flag)
    # the parser marks `# random` and `# tol` outputs from the example's first line; the checker reads the marks
    want = parse_tolerance("sage: " + case["source"], case["want"])
    raised = case.get("raised")
    if raised is None:
        return "ok" if checker.check_output(want, case["got"], flags) else "wrong output"
    expected = case.get("exc_msg")
    if expected is None:
        return "unexpected exception"
    got = raised if raised.endswith("\n") else raised + "\n"
    if checker.check_output(expected, got, flags):
        return "ok"
    if flags & doctest.IGNORE_EXCEPTION_DETAIL:
        m1, m2 = EXCEPTION_TYPE.match(expected), EXCEPTION_TYPE.match(got)
        if m1 and m2 and checker.check_output(m1.group(1), m2.group(1), flags):
            return "ok"
    return "wrong exception"


def main():
    checker = SageOutputChecker()
    verdicts = []
    for case in json.load(sys.stdin):
        outcome = judge(case, checker)
        verdicts.append({"pass": outcome == "ok", "outcome": outcome})
    json.dump(verdicts, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
