#!/usr/bin/python3
"""test_outcome.py - delivery outcomes that cannot be committed at once, and the
"sent" index's retention.

  commit-faults  the spool's fault hook (SALVO_SPOOL_FAIL_COMMITS=N@K) fails ten commits
                 right after the intake of five messages (their queues paused in an
                 earlier run, so the intake commits are exactly the first five; the
                 resumes' commits fail too, and apply all the same): every outcome commit that
                 fails is retried in-process until it holds, so without a restart every
                 recipient is delivered or bounced exactly once, each bounced message
                 gets exactly one DSN, and the spool ends empty
  fatal          an I/O error on a commit (SALVO_SPOOL_FAIL_COMMITS=1:EIO@2): the mail
                 is not acknowledged (4xx, or the connection closes as salvod stops), salvod says why and exits with status 75 (restart
                 me) without delivering anything; restarted, it delivers what it had
                 acknowledged, once
  sent-prune     bounce-domain set (VERP: deliveries are indexed in "sent") and
                 bounce-verp-retention 2s: the index fills, then empties on the timer;
                 salvo_sent_pruned_total and mdb_stat's entry count for "sent" agree
"""

import os
import random
import re
import subprocess
import time
import urllib.error
import urllib.request

import harness
from harness import Fail, Injected, find_records, log, make_body, wait_until

SENDER = "owner@senders.test"


def api(method, path):
    req = urllib.request.Request("http://%s:%d%s" % (harness.SALVOD_HTTP + (path,)), method=method)
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.read().decode()


def metric(name):
    """The value of an unlabelled series from /metrics (None when absent)."""
    m = re.search(r"^%s (\S+)$" % re.escape(name), api("GET", "/metrics"), re.M)
    return float(m.group(1)) if m else None


def _restart_gap(d):
    """Stop salvod and wait until its listener is gone (io_uring teardown is async)."""
    d.stop()
    wait_until(lambda: not harness.port_open(harness.SALVOD_SMTP), 10, what="salvod's port to close")


def _paused():
    return api("GET", "/api/v1/queues?mode=paused").count('"domain"')


def _with_hook(value, fn):
    os.environ["SALVO_SPOOL_FAIL_COMMITS"] = value
    try:
        return fn()
    finally:
        del os.environ["SALVO_SPOOL_FAIL_COMMITS"]




def test_commit_faults(env):
    env.dns(mx={"ok.test": [(10, "mx-ok.test")], "reject.test": [(10, "mx-rej.test")],
                "senders.test": [(10, "mx-senders.test")]},
            a={"mx-ok.test": "127.0.0.2", "mx-rej.test": "127.0.0.3", "mx-senders.test": "127.0.0.4"},
            check=[("ok.test", "MX")])
    s_ok = env.salvo_sink("sinkOk", "127.0.0.2:25")
    env.salvo_sink("sinkRej", "127.0.0.3:25", reject=[r"@reject\.test$"])
    s_snd = env.salvo_sink("sinkSenders", "127.0.0.4:25")
    d = env.salvod_daemon(default_domain={"retry-after": "1s", "bounce-after": "1h"})
    # Pauses are commits too: make them in a first run; the second (with the hook)
    # restores them from the spool without writing, so its first commits are the intake.
    d.start()
    for q in ("ok.test", "reject.test"):
        api("POST", "/api/v1/queues/%s/pause" % q)
    wait_until(lambda: _paused() == 2, 10, what="both queues paused")
    _restart_gap(d)
    n_msgs, n_fail = 5, 10
    _with_hook("%d@%d" % (n_fail, n_msgs), d.start)
    if not wait_until(lambda: _paused() == 2, 5, what="the pauses after the restart"):
        raise Fail("the pauses did not survive the restart")
    rng = random.Random(7)
    msgs = []
    for i in range(n_msgs):
        rcpts = ["u%d-%d@ok.test" % (i, j) for j in range(15)] + ["g%d-%d@reject.test" % (i, j) for j in range(5)]
        msgs.append(Injected("cf%d" % i, SENDER, rcpts, make_body(rng, "cf%d" % i, SENDER, rcpts, 1500)))
    harness.inject(msgs, threads=1, per_conn=n_msgs, timeout=20)
    bad = [(m.mid, m.reply, m.error) for m in msgs if m.error]
    if bad:
        raise Fail("intake was not acknowledged (the hook should spare the first %d commits): %r" % (n_msgs, bad))
    for q in ("ok.test", "reject.test"):   # these commits fail (a resume applies all the same)
        try:
            api("POST", "/api/v1/queues/%s/resume" % q)
            raise Fail("a resume whose commit failed answered 200")
        except urllib.error.HTTPError as e:     # and says so: 503, applied until a restart
            if e.code != 503 or b"not stored" not in e.read():
                raise Fail("a resume whose commit failed: %d" % e.code)
    ok = {r for m in msgs for r in m.rcpts if r.endswith("@ok.test")}
    rej = {r for m in msgs for r in m.rcpts if r.endswith("@reject.test")}

    def settled(recs):
        bo = {r.get("recipient") for r in find_records(recs, type="bounce")}
        dl = {r.get("recipient") for r in find_records(recs, type="delivery")}
        return rej <= bo and ok <= dl and len(s_snd.delivered()) >= 1
    recs = harness.wait_for_records(env, settled, timeout=40, what="every outcome recorded")
    wait_until(lambda: metric("salvo_spool_recipients") == 0, 20, what="an empty spool")
    time.sleep(2.5)   # room for a duplicate to show up
    d.check_alive()
    problems = []
    seen = s_ok.delivered()
    if set(seen) != ok or any(n != 1 for n in seen.values()):
        problems.append("ok.test arrivals: %d distinct of %d, duplicates %r"
                        % (len(set(seen) & ok), len(ok), {r: n for r, n in seen.items() if n != 1}))
    recs = d.acct()
    for r in rej:
        b = [x for x in recs if x.get("type") == "bounce" and x.get("recipient") == r]
        if len(b) != 1 or not b[0].get("dsn_id"):
            problems.append("%s: want one bounce record with a dsn_id, got %r" % (r, b))
    for r in ok:
        n = len([x for x in recs if x.get("type") == "delivery" and x.get("recipient") == r])
        if n != 1:
            problems.append("%s: %d delivery records" % (r, n))
    dsns = [a for a in s_snd.arrivals() if SENDER in a.rcpt_to]
    if len(dsns) != n_msgs:
        problems.append("want %d DSNs (one per message) at the sender's sink, got %d" % (n_msgs, len(dsns)))
    failures, retries = metric("salvo_spool_commit_failures_total"), metric("salvo_spool_retries_total")
    if failures != n_fail:
        problems.append("salvo_spool_commit_failures_total %r, want %d (the hook's)" % (failures, n_fail))
    if not retries:
        problems.append("no outcome was retried (salvo_spool_retries_total %r): the hook missed them" % retries)
    if problems:
        raise Fail("; ".join(problems[:8]))
    log("%d failed commits, %d outcome retries: %d delivered once, %d bounced once, %d DSNs, spool empty, "
        "no restart" % (failures, retries, len(ok), len(rej), len(dsns)))


def test_fatal(env):
    env.dns(mx={"ok.test": [(10, "mx-ok.test")]}, a={"mx-ok.test": "127.0.0.2"}, check=[("ok.test", "MX")])
    sink = env.salvo_sink("sinkOk", "127.0.0.2:25")
    d = env.salvod_daemon(default_domain={"retry-after": "1s", "bounce-after": "1h"})
    _with_hook("1:EIO@2", d.start)
    api("POST", "/api/v1/queues/ok.test/pause")   # commit 1
    wait_until(lambda: _paused() == 1, 10, what="the queue paused")
    rng = random.Random(8)
    first = Injected("f1", SENDER, ["a1@ok.test"], make_body(rng, "f1", SENDER, ["a1@ok.test"], 800))
    second = Injected("f2", SENDER, ["a2@ok.test"], make_body(rng, "f2", SENDER, ["a2@ok.test"], 800))
    harness.inject([first], threads=1, per_conn=1, timeout=10)
    if first.error:
        raise Fail("the first message was refused: %r %r" % (first.reply, first.error))
    harness.inject([second], threads=1, per_conn=1, timeout=10)
    # a 4xx, or the connection closing as salvod goes down: never a 250
    if not second.error or (second.reply and second.reply[0] // 100 != 4):
        raise Fail("the message whose commit failed with EIO got %r %r (want a 4xx or no answer)"
                   % (second.reply, second.error))
    if not wait_until(lambda: not d.alive(), 15, what="salvod to exit"):
        raise Fail("salvod did not exit after a fatal spool error")
    status = d.proc.returncode
    err = open(d.stderr_paths[-1], "rb").read().decode("utf-8", "replace")
    if status != 75:
        raise Fail("exit status %r after a fatal spool error, want 75:\n%s" % (status, err[-2000:]))
    if "cannot be written" not in err or "Input/output error" not in err:
        raise Fail("salvod did not say why it stopped:\n%s" % err[-2000:])
    if sink.delivered():
        raise Fail("delivered after the spool failed: %r" % sink.delivered())
    wait_until(lambda: not harness.port_open(harness.SALVOD_SMTP), 10, what="salvod's port to close")
    d.start()   # no hook now: what was acknowledged goes out, once (the pause was kept)
    api("POST", "/api/v1/queues/ok.test/resume")
    wait_until(lambda: "a1@ok.test" in sink.delivered(), 20, what="the acknowledged message after a restart")
    time.sleep(1.5)
    seen = sink.delivered()
    if seen != {"a1@ok.test": 1}:
        raise Fail("after the restart: want exactly a1@ok.test once, got %r" % seen)
    log("EIO on a commit: 4xx to the client, exit 75 with the reason, nothing delivered meanwhile; "
        "after the restart the acknowledged message went out once")




def test_sent_prune(env):
    env.dns(mx={"ok.test": [(10, "mx-ok.test")]}, a={"mx-ok.test": "127.0.0.2"}, check=[("ok.test", "MX")])
    sink = env.salvo_sink("sinkOk", "127.0.0.2:25")
    d = env.salvod_daemon(extra="bounce-domain bounces.salvo.test\nbounce-verp-retention 3s\n")
    d.start()
    rng = random.Random(9)
    n = 40
    rcpts = ["p%d@ok.test" % i for i in range(n)]
    msgs = [Injected("sp%d" % i, SENDER, [r], make_body(rng, "sp%d" % i, SENDER, [r], 600)) for i, r in enumerate(rcpts)]
    harness.inject(msgs, threads=2, per_conn=20, timeout=20)
    if any(m.error for m in msgs):
        raise Fail("not acknowledged: %r" % [(m.reply, m.error) for m in msgs if m.error][:3])
    wait_until(lambda: len(sink.delivered()) == n, 20, what="all deliveries")
    peak = metric("salvo_sent_records")
    if not peak:
        raise Fail("deliveries with VERP were not indexed (salvo_sent_records %r)" % peak)
    if not wait_until(lambda: metric("salvo_sent_records") == 0, 15, what="the sent index to be pruned"):
        raise Fail("sent index not pruned after its 3 s retention: %r records left" % metric("salvo_sent_records"))
    pruned = metric("salvo_sent_pruned_total")
    if pruned != n:
        raise Fail("salvo_sent_pruned_total %r, want %d" % (pruned, n))
    d.stop()
    left = harness.mdb_entries(d.spool, "sent")
    if left != 0:
        raise Fail("mdb_stat shows %d entries left in sent" % left)
    log("sent index: %d records at most, all %d pruned after 3 s (metric and mdb_stat agree)" % (peak, pruned))


if __name__ == "__main__":
    harness.main([test_commit_faults, test_fatal, test_sent_prune])
