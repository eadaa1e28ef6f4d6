#!/usr/bin/python3
"""test_salvoctl.py - the operator's tools against a live salvod delivering a blast.

  cli        every salvoctl command: output, exit status, --json parses; an unreachable
             daemon gives a clear message and exit status 2; a bad command or usage 2
  top        `salvoctl top` inside tmux (120x40): the domains being delivered are on the
             screen with the rates /api/v1/queues reports; `p` on the selected queue turns
             its mode to paused (screen and API agree); `?` shows the help; at 80x24 every
             line fits and no cell is cut in the middle of a word
The blast: four domains with max-msg-rate 20/s each, so queues drain over ~10 seconds.
"""

import json
import os
import random
import re
import shutil
import subprocess
import time

import harness
from harness import Fail, Injected, log, make_body, wait_until

SENDER = "ops@senders.test"
DOMS = ["gmail.test", "yahoo.test", "outlook.test", "aol.test"]


def ctl(*args, api=None, env_extra=None):
    env = dict(os.environ)
    env["SALVO_API"] = api or "http://%s:%d" % harness.SALVOD_HTTP
    env.update(env_extra or {})
    p = subprocess.run([harness.SALVOCTL] + list(args), capture_output=True, text=True, timeout=30, env=env)
    return p.returncode, p.stdout, p.stderr


def must(rc_out, want_rc=0, what=""):
    rc, out, err = rc_out
    if rc != want_rc:
        raise Fail("salvoctl %s: exit %d (want %d)\nstdout: %s\nstderr: %s" % (what, rc, want_rc, out[-800:], err[-800:]))
    return out


def test_cli(env):
    rng = random.Random(51)
    env.dns(mx={d: [(10, "mx.sink.test")] for d in DOMS + ["senders.test"]}, a={"mx.sink.test": "127.0.0.2"},
            check=[("gmail.test", "MX")])
    env.salvo_sink("sink", "127.0.0.2:25", dump=False)
    d = env.salvod_daemon()
    d.start()
    wait_until(lambda: ctl("status")[0] == 0, 5, what="salvoctl status")
    # unreachable: a port nobody listens on
    rc, out, err = ctl("status", api="http://127.0.0.1:1")
    if rc != 2 or "cannot reach salvod" not in err:
        raise Fail("unreachable daemon: exit %d, stderr %r" % (rc, err))
    must(ctl("frobnicate"), 2, "frobnicate")
    must(ctl("set-mode", "x.test", "turbo"), 2, "set-mode x.test turbo")
    # traffic for the read commands
    msgs = [Injected("m%d" % i, SENDER, ["u%d@%s" % (i, DOMS[i % 4])], None) for i in range(40)]
    for m in msgs:
        m.data = make_body(rng, m.mid, SENDER, m.rcpts, 300)
    harness.inject(msgs, threads=2, per_conn=20)
    time.sleep(1.5)
    out = must(ctl("status"), 0, "status")
    if "delivered" not in out or "queued" not in out:
        raise Fail("status output:\n" + out)
    j = json.loads(must(ctl("--json", "status"), 0, "--json status"))
    if "totals" not in j:
        raise Fail("status --json: %r" % j)
    out = must(ctl("queues"), 0, "queues")
    for dom in DOMS:
        if dom not in out:
            raise Fail("queues lacks %s:\n%s" % (dom, out))
    j = json.loads(must(ctl("queues", "--json", "--sort=rate"), 0, "queues --json"))
    if {q["domain"] for q in j["queues"]} < set(DOMS):
        raise Fail("queues --json: %r" % j)
    must(ctl("queues", "--sort=bogus"), 2, "queues --sort=bogus")
    out = must(ctl("queues", "gmail.test"), 0, "queues gmail.test")
    if "gmail.test" not in out or "yahoo.test" in out:
        raise Fail("queues DOMAIN:\n" + out)
    must(ctl("queues", "nowhere.test"), 1, "queues nowhere.test")
    out = must(ctl("vmtas"), 0, "vmtas")
    if "default" not in out:
        raise Fail("vmtas:\n" + out)
    json.loads(must(ctl("--json", "vmtas"), 0, "--json vmtas"))
    # actions
    must(ctl("pause", "aol.test"), 0, "pause")
    wait_until(lambda: "paused" in ctl("queues", "--mode=paused")[1], 3, what="paused in queues")
    must(ctl("resume", "aol.test"), 0, "resume")
    must(ctl("retry", "aol.test"), 0, "retry")
    must(ctl("set-mode", "aol.test", "backoff"), 0, "set-mode backoff")
    wait_until(lambda: "aol.test" in ctl("queues", "--mode=backoff")[1], 3, what="backoff in queues")
    must(ctl("set-mode", "aol.test", "normal"), 0, "set-mode normal")
    must(ctl("pause"), 2, "pause without a domain")
    # suppressions
    must(ctl("suppress", "add", "Gone@Gmail.TEST", "left"), 0, "suppress add")
    out = must(ctl("suppress", "check", "Gone@gmail.test"), 0, "suppress check")
    if "left" not in out:
        raise Fail("suppress check:\n" + out)
    must(ctl("suppress", "check", "here@gmail.test"), 1, "suppress check (not suppressed)")
    csv = os.path.join(env.dir, "in.csv")
    with open(csv, "w") as f:
        f.write("address,reason\na@gmail.test,old list\nb@gmail.test,old list\nnot-an-address,x\n")
    out = must(ctl("suppress", "import", csv), 0, "suppress import")
    if "imported 2" not in out or "line 4" not in out:
        raise Fail("suppress import:\n" + out)
    out = must(ctl("suppress", "list"), 0, "suppress list")
    if "a@gmail.test" not in out or "Gone@gmail.test" not in out:
        raise Fail("suppress list:\n" + out)
    j = json.loads(must(ctl("--json", "suppress", "list"), 0, "--json suppress list"))
    if len(j["suppressions"]) != 3:
        raise Fail("suppress list --json: %r" % j)
    out = must(ctl("suppress", "export"), 0, "suppress export")
    if not out.startswith("address,") or out.count("\n") != 4:
        raise Fail("suppress export:\n" + out)
    must(ctl("suppress", "del", "Gone@gmail.test"), 0, "suppress del")
    must(ctl("suppress", "del", "Gone@gmail.test"), 1, "suppress del (again)")
    must(ctl("suppress", "frob"), 2, "suppress frob")
    # inject
    eml = os.path.join(env.dir, "test.eml")
    with open(eml, "w") as f:
        f.write("From: ops@senders.test\nSubject: quick test\n\nhello\n")
    out = must(ctl("inject", "--from", SENDER, "--to", "q1@gmail.test", "--to", "a@gmail.test", eml), 1,
               "inject (one suppressed)")
    if "accepted 1, failed 1" not in out:
        raise Fail("inject:\n" + out)
    must(ctl("inject", "--from", SENDER, eml), 2, "inject without --to")
    log("every salvoctl command behaves")


def _screen(session):
    return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout


def test_top(env):
    rng = random.Random(52)
    env.dns(mx={d: [(10, "mx.sink.test")] for d in DOMS}, a={"mx.sink.test": "127.0.0.2"},
            check=[("gmail.test", "MX")])
    env.salvo_sink("sink", "127.0.0.2:25", dump=False)
    d = env.salvod_daemon(default_domain={"max-msg-rate": "20/s", "max-smtp-out": "2"})
    d.start()
    msgs = [Injected("t%d" % i, SENDER, ["u%d@%s" % (i, DOMS[i % 4])], None) for i in range(1200)]
    for m in msgs:
        m.data = make_body(rng, m.mid, SENDER, m.rcpts, 300)
    harness.inject(msgs, threads=4, per_conn=100)
    session = "salvotop%d" % os.getpid()
    api = "http://%s:%d" % harness.SALVOD_HTTP
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "40",
                    "env SALVO_API=%s LANG=C.UTF-8 %s top" % (api, harness.SALVOCTL)], check=True)
    try:
        _top_checks(env, session)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session])


def _top_checks(env, session):
    if not wait_until(lambda: all(dd in _screen(session) for dd in DOMS), 8, what="the domains on screen"):
        raise Fail("salvoctl top does not show the domains:\n" + _screen(session))
    time.sleep(8)   # rates are smoothed over about ten seconds
    # rates on screen agree with the API (same snapshot period: within one refresh)
    scr = _screen(session)
    st, body = 0, json.loads(subprocess.run(["curl", "-s", "http://%s:%d/api/v1/queues" % harness.SALVOD_HTTP],
                                             capture_output=True, text=True).stdout)
    api = {q["domain"]: q for q in body["queues"]}
    for dom in DOMS:
        row = next(ln for ln in scr.splitlines() if ln.startswith(dom))
        cols = row.split()
        shown = float(cols[4])
        want = api[dom]["delivered_per_min"]
        log("%s: screen %s/min, API %.0f/min" % (dom, cols[4], want))
        if abs(shown - want) > max(60, want * 0.35):
            raise Fail("%s: the screen says %s delivered/min, the API %.1f\n%s" % (dom, cols[4], want, scr))
        if shown < 300:
            raise Fail("%s: %s delivered/min on screen; the blast runs at 20/s" % (dom, cols[4]))
    # select the first row and pause it
    first = next(ln for ln in scr.splitlines() if any(ln.startswith(dd) for dd in DOMS)).split()[0]
    subprocess.run(["tmux", "send-keys", "-t", session, "p"])
    if not wait_until(lambda: re.search(r"^%s\s.*\bpaused\b" % re.escape(first), _screen(session), re.M), 4,
                      what="paused on screen"):
        raise Fail("after p the selected queue %s does not show paused:\n%s" % (first, _screen(session)))
    q = json.loads(subprocess.run(["curl", "-s", "http://%s:%d/api/v1/queues/%s" % (harness.SALVOD_HTTP + (first,))],
                                  capture_output=True, text=True).stdout)
    if q["mode"] != "paused":
        raise Fail("the screen says paused, the API says %r" % q["mode"])
    subprocess.run(["tmux", "send-keys", "-t", session, "?"])
    if not wait_until(lambda: "salvoctl top - keys" in _screen(session), 3, what="the help"):
        raise Fail("no help after ?:\n" + _screen(session))
    subprocess.run(["tmux", "send-keys", "-t", session, "x"])   # any key closes it
    # 80x24: every line fits, cells are whole
    subprocess.run(["tmux", "resize-window", "-t", session, "-x", "80", "-y", "24"])
    time.sleep(1.5)
    scr = _screen(session)
    lines = scr.splitlines()
    if any(len(ln) > 80 for ln in lines):
        raise Fail("a line is wider than 80 columns:\n" + scr)
    header = next((ln for ln in lines if ln.startswith("QUEUE ")), None)
    if not header or header.split() != ["QUEUE", "QUEUED", "INFLT", "CONN/LIM", "DLV/m", "DEF/m", "BNC/m", "MODE"]:
        raise Fail("at 80x24 the queue table's columns are %r" % (header.split() if header else None))
    for dd in DOMS:
        row = next((ln for ln in lines if ln.startswith(dd + " ")), None)
        if not row or len(row.split()) != 8:
            raise Fail("at 80x24 the row for %s is cut or merged: %r" % (dd, row))
    if "? help" not in lines[-1] and not lines[-1].endswith(": paused"):   # keys, or the action's note
        raise Fail("at 80x24 the last line is neither the keys nor the action's note: %r" % lines[-1])
    log("top at 80x24:\n" + scr)
    subprocess.run(["tmux", "send-keys", "-t", session, "q"])


if __name__ == "__main__":
    for tool in ("tmux", "curl"):
        if not shutil.which(tool):
            print("SKIP: needs %s" % tool)
            raise SystemExit(77)
    harness.main([test_cli, test_top])
