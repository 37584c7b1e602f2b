# SPDX-License-Identifier: MIT
"""Per-test outcomes of CPython's regression suite, without and with the shim.

    compare.py WITHOUT.xml WITH.xml
        prints the per-module table and every test that passed without the
        shim and not with it; writes the units (regrtest's names) holding
        such tests to stdout's last line "RERUN unit...".
    compare.py --final WITHOUT.xml WITH.xml RE_WITHOUT.xml RE_WITH.xml \
            [WITH_LOG RE_WITH_LOG]
        (RE_* empty: nothing was rerun)
        the rule: a test counts as broken by the shim only when it passed
        without and failed with in the first run AND passed without and
        failed with in the rerun of its unit; the others are "flaky"
        (reported, not counted).

Each XML or LOG argument is a comma-separated list of files.
The outcomes come from regrtest's --junit-xml, never from its exit status.
A test that passed without the shim and has no outcome with it (its worker
hung and was killed, the process crashed, or a subTest failed: regrtest
writes a nameless <testcase> then) counts as not passed.
"""
import re
import sys
import xml.etree.ElementTree as ET

MOD = re.compile(r"\btest\.(\w+)")


def outcome(tc):
    for tag, what in (("failure", "failed"), ("error", "error"),
                      ("skipped", "skipped")):
        if tc.find(tag) is not None:
            return what
    return "passed"  # success, expected failure, unexpected success


def load(paths):
    """{test id: (outcome, failure text)}, {module: nameless testcases}
    from the comma-separated junit files"""
    tests, nameless = {}, {}
    suites = []
    for path in filter(None, paths.split(",")):
        try:
            suites += ET.parse(path).getroot().iter("testsuite")
        except (OSError, ET.ParseError):
            pass
    for suite in suites:
        last = None
        for tc in suite.iter("testcase"):
            name = tc.get("name")
            if not name:
                # a test whose subTest failed: no name; its module is the
                # one of the test before it in the same suite
                m = MOD.search(last or "")
                mod = m.group(1) if m else "?"
                nameless[mod] = nameless.get(mod, 0) + 1
                continue
            last = name
            o = outcome(tc)
            text = ""
            for tag in ("failure", "error"):
                e = tc.find(tag)
                if e is not None:
                    text = (e.text or e.get("message") or "").rstrip()
            if name in tests and tests[name][0] != "passed":
                continue  # duplicates: keep the worst
            tests[name] = (o, text)
    return tests, nameless


def module(tid):
    m = MOD.search(tid)
    return m.group(1) if m else "?"


def counts(tests, nameless):
    c = {}
    for tid, (o, _) in tests.items():
        d = c.setdefault(module(tid), {"passed": 0, "failed": 0, "error": 0,
                                       "skipped": 0})
        d[o] += 1
    for mod, n in nameless.items():
        d = c.setdefault(mod, {"passed": 0, "failed": 0, "error": 0,
                               "skipped": 0})
        d["failed"] += n
    return c


def from_log(logs, tid):
    """regrtest's own report of a failure: the FAIL:/ERROR: block."""
    text = ""
    for log in filter(None, (logs or "").split(",")):
        try:
            text += open(log, errors="replace").read()
        except OSError:
            pass
    meth = tid.rsplit(".", 1)[-1]
    pat = re.compile(r"^(FAIL|ERROR): " + re.escape(meth) + r" \(" +
                     re.escape(tid) + r"\).*?(?=^={20,}|^-{20,}\nRan |\Z)",
                     re.M | re.S)
    m = pat.search(text)
    return m.group(0).rstrip() if m else ""


def unit_report(logs, unit):
    """regrtest's verdict on a unit without per-test outcomes (killed at
    its timeout, crashed): its line and what follows it, up to the next
    progress line."""
    out = []
    for log in filter(None, (logs or "").split(",")):
        try:
            lines = open(log, errors="replace").read().splitlines()
        except OSError:
            continue
        for i, line in enumerate(lines):
            if re.search(r"\] " + re.escape(unit) + r" (?!passed|skipped)",
                         line):
                out.append(line)
                for l in lines[i + 1:]:
                    if re.match(r"\d+:\d\d:\d\d load avg|== Tests result", l):
                        break
                    out.append(l)
    return fold("\n".join(out))


FRAMEWORK = re.compile(r'File "(.*/(unittest/|test/libregrtest/|test/regrtest\.py'
                       r'|test/support/__init__\.py|test/support/testresult)'
                       r'|<frozen runpy>)')


def fold(text):
    """the same line repeated (a warning per process) once, with its count;
    the stack frames of unittest and regrtest left out"""
    out, seen = [], {}
    for l in text.splitlines():
        if FRAMEWORK.search(l):
            continue
        key = re.sub(r"^\S+ (\w+ \w+)\[\d+\]", r"\1", l)  # time, pid
        if key in seen and key.strip():
            seen[key] += 1
            continue
        seen[key] = 1
        out.append(key)
    return "\n".join(l + (" (x%d)" % seen[l] if seen[l] > 1 else "")
                     for l in out)


def show(text, limit=25):
    lines = text.splitlines()
    if len(lines) > limit:
        # the end of a traceback says most: the exception and its line
        lines = lines[:6] + ["      ..."] + lines[-(limit - 7):]
    return "\n".join("      " + l for l in lines)


def regressions(a, b):
    """tests that passed in a and not in b: {id: (outcome in b, text)}"""
    out = {}
    for tid, (o, _) in a.items():
        if o != "passed":
            continue
        ob = b.get(tid)
        if ob is None:
            out[tid] = ("no outcome", "")
        elif ob[0] != "passed":
            out[tid] = ob
    return out


def table(wo, wn, w, wn2):
    cw, cn = counts(wo, wn), counts(w, wn2)
    if not wo:
        print("no outcomes without the shim: the oracle itself did not run")
    mods = sorted(set(cw) | set(cn))
    print("%-28s %23s   %23s" % ("", "without the shim", "with the shim"))
    print("%-28s %7s %7s %7s   %7s %7s %7s  %s" % (
        "module", "passed", "failed", "errors", "passed", "failed", "errors",
        "skipped(without/with)"))
    z = {"passed": 0, "failed": 0, "error": 0, "skipped": 0}
    for m in mods:
        a, b = cw.get(m, z), cn.get(m, z)
        same = "  <- worse with the shim" if (
            b["passed"] < a["passed"] or b["failed"] > a["failed"] or
            b["error"] > a["error"]) else ""
        print("%-28s %7d %7d %7d   %7d %7d %7d  %d/%d%s" % (
            m, a["passed"], a["failed"], a["error"], b["passed"], b["failed"],
            b["error"], a["skipped"], b["skipped"], same))


def main(argv):
    final = argv[:1] == ["--final"]
    if final:
        argv = argv[1:]
    wo, wo_n = load(argv[0])
    w, w_n = load(argv[1])
    first = regressions(wo, w)
    if not final:
        table(wo, wo_n, w, w_n)
        units_w = {unit_of(t) for t in w}
        lost = {}
        for tid in first:
            u = unit_of(tid)
            lost[u] = lost.get(u, 0) + 1
        for u, n in sorted(lost.items()):
            if u not in units_w:
                print("  differs: %s: no outcome with the shim for its %d "
                      "tests that passed without (killed or crashed)" % (u, n))
        for tid in sorted(first):
            if unit_of(tid) in units_w:
                print("  differs: %s: passed without the shim, %s with it" %
                      (tid, first[tid][0]))
        units = sorted({unit_of(t) for t in first})
        print("RERUN " + " ".join(units))
        return 0
    rwo, _ = load(argv[2])
    rw, _ = load(argv[3])
    logs = argv[4:6] + [None, None]
    if not argv[2] and not argv[3]:
        rwo, rw = wo, w  # nothing was rerun: nothing differed
    broken, flaky = {}, {}
    for tid, (o, text) in first.items():
        r_without = rwo.get(tid, ("no outcome", ""))[0]
        r_with = rw.get(tid, ("no outcome", ""))
        if r_without == "passed" and r_with[0] != "passed":
            broken[tid] = (o, text, r_with)
        else:
            flaky[tid] = (o, r_without, r_with[0])
    groups = {}
    for tid in sorted(flaky):
        groups.setdefault((unit_of(tid),) + flaky[tid], []).append(tid)
    for (u, o, a, b), tids in sorted(groups.items()):
        what = tids[0] if len(tids) == 1 else "%s: %d tests" % (u, len(tids))
        print("  flaky, not counted: %s: %s with the shim, then on the rerun "
              "%s without and %s with" % (what, o, a, b))
    # a unit with no outcome at all with the shim: one report, not a line
    # per test
    whole = {}
    for tid, (o, _, (o2, _)) in broken.items():
        whole.setdefault(unit_of(tid), []).append(o == o2 == "no outcome")
    units_w = {unit_of(t) for t in w}
    whole = {u for u, v in whole.items() if all(v) and u not in units_w}
    for u in sorted(whole):
        n = sum(1 for t in broken if unit_of(t) == u)
        print("  BROKEN by the shim: %s: no outcome with the shim, in both "
              "runs, for its %d tests that passed without; regrtest said:" %
              (u, n))
        print(show(unit_report(logs[0], u) or unit_report(logs[1], u) or
                   "(nothing: the run was killed at its bound?)", 40))
    for tid in sorted(broken):
        if unit_of(tid) in whole:
            continue
        o, text, (o2, text2) = broken[tid]
        print("  BROKEN by the shim: %s: %s with the shim (rerun: %s)" %
              (tid, o, o2))
        print(show(fold(text) or from_log(logs[0], tid) or text2 or
                   from_log(logs[1], tid) or
                   "(no failure text: the test has no outcome; see the logs)"))
    compared = sum(1 for o, _ in wo.values() if o == "passed")
    not_compared = len(wo) - compared + sum(wo_n.values())
    # a flaky test is neither passed nor failed: skipped, with its reason
    print("COUNTS %d %d %d %d" % (compared - len(broken) - len(flaky),
                                  len(broken), not_compared, len(flaky)))
    return 0


def unit_of(tid):
    """the regrtest name that runs tid: test_asyncio runs as its modules"""
    m = re.search(r"\btest\.(test_asyncio\.test_\w+|\w+)", tid)
    return m.group(1) if m else "?"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
