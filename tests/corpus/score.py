#!/usr/bin/python3
"""score.py - the bounce classifier (`salvoctl classify`) over the public corpus.

For every labelled recipient in bounces/labels.jsonl: was the recipient found (by
address when the label has one, else by position), is hard/soft right, is the category
right (labels without a category are not scored for it; an auto-reply must not come
out hard). Prints a table per MTA family and overall; exits 1 below the targets
(recipient >= 97%, hard/soft >= 97%, category >= 92%) unless --report-only.

  tests/corpus/score.py SALVOCTL [CORPUS_DIR] [--report-only] [-v]
"""

import collections
import json
import os
import subprocess
import sys

TARGETS = {"recipient": 97.0, "hard": 97.0, "category": 92.0}


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("-")]
    report_only = "--report-only" in sys.argv
    verbose = "-v" in sys.argv
    salvoctl = args[0]
    corpus = args[1] if len(args) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "bounces")
    labels = [json.loads(l) for l in open(os.path.join(corpus, "labels.jsonl")) if l.strip()]
    out = {}
    for f in sorted({l["file"] for l in labels}):
        p = subprocess.run([salvoctl, "classify", os.path.join(corpus, f)], capture_output=True, text=True,
                           timeout=30)
        if p.returncode != 0:
            print("FAIL: salvoctl classify %s exited %d: %s" % (f, p.returncode, p.stderr.strip()))
            return 1
        out[f] = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
    fam = collections.defaultdict(lambda: collections.Counter())
    for l in labels:
        got = out[l["file"]]
        if l["recipient"]:
            match = next((g for g in got if (g.get("recipient") or "").lower() == l["recipient"].lower()), None)
        else:
            match = got[l["idx"] - 1] if len(got) >= l["idx"] else None
        c = fam[l["mta"]]
        c["n"] += 1
        ok_rcpt = match is not None if l["kind"] != "autoreply" else all(not g.get("hard") for g in got)
        c["recipient"] += ok_rcpt
        hard = bool(match and match.get("hard"))
        c["hard"] += hard == bool(l["hard"]) if l["kind"] != "autoreply" else ok_rcpt
        if l["category"] is not None:
            c["cat_n"] += 1
            c["category"] += bool(match and match.get("category") == l["category"])
        if verbose and (not ok_rcpt or (match and match.get("category") != l["category"] and l["category"])):
            print("  %-36s want %-28s %-16s got %r" % (l["file"], l["recipient"], l["category"],
                                                      [(g.get("recipient"), g.get("category")) for g in got]))
    tot = collections.Counter()
    print("%-16s %5s %10s %10s %10s" % ("family", "n", "recipient", "hard/soft", "category"))
    for m in sorted(fam):
        c = fam[m]
        tot.update(c)
        print("%-16s %5d %9.0f%% %9.0f%% %9s" % (m, c["n"], 100 * c["recipient"] / c["n"], 100 * c["hard"] / c["n"],
                                               "%.0f%%" % (100 * c["category"] / c["cat_n"]) if c["cat_n"] else "-"))
    res = {"recipient": 100 * tot["recipient"] / tot["n"], "hard": 100 * tot["hard"] / tot["n"],
           "category": 100 * tot["category"] / max(1, tot["cat_n"])}
    print("%-16s %5d %9.1f%% %9.1f%% %9.1f%%" % ("OVERALL", tot["n"], res["recipient"], res["hard"], res["category"]))
    below = [k for k, v in TARGETS.items() if res[k] < v]
    if below and not report_only:
        print("FAIL: below target for %s" % ", ".join(below))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
