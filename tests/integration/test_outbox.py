#!/usr/bin/python3
"""test_outbox.py - accounting records are as durable as the state change they report.

  exit-before-flush  the test-only fault hook SALVO_ACCT_EXIT_AFTER_BATCHES=N makes
                     salvod _exit(137) right after its Nth spool commit, before that
                     batch's records reach spool-dir/log/acct.jsonl (the worst moment
                     for a kill -9). Messages are injected one at a time while they are
                     delivered, so the cut batch holds receptions or outcomes. After a
                     restart: every recipient the sink received has its reception and
                     its delivery record in the log, each event keeps one event_id (a
                     re-flushed record is the same line again), and after a clean stop
                     the spool's "outbox" database is empty.
  log-full           spool-dir/log is a full 1 MiB tmpfs: mail is still taken and
                     delivered (the spool has room), the records cannot be written
                     and salvod says so, salvo_acct_outbox_entries counts them; a
                     kill -9 then, the space freed, a restart: every reception and
                     delivery record is in the log, the outbox empty.
"""

import os
import random
import re
import subprocess
import urllib.request
import time

import harness
from harness import Fail, Injected, log, make_body, wait_until

SENDER = "owner@senders.test"
HOOK = "SALVO_ACCT_EXIT_AFTER_BATCHES"


def outbox_metric():
    with urllib.request.urlopen("http://%s:%d/metrics" % harness.SALVOD_HTTP, timeout=5) as r:
        m = re.search(r"^salvo_acct_outbox_entries (\d+)$", r.read().decode(), re.M)
    return int(m.group(1)) if m else None


def test_exit_before_flush(env):
    env.dns(mx={"ok.test": [(10, "mx-ok.test")]}, a={"mx-ok.test": "127.0.0.2"}, check=[("ok.test", "MX")])
    sink = env.salvo_sink("sinkOk", "127.0.0.2:25")
    d = env.salvod_daemon(default_domain={"retry-after": "1s", "bounce-after": "1h"})
    rng = random.Random(20)
    msgs = [Injected("ob%d" % i, SENDER, ["u%d@ok.test" % i], make_body(rng, "ob%d" % i, SENDER,
                                                                         ["u%d@ok.test" % i], 800))
            for i in range(40)]
    os.environ[HOOK] = "14"
    try:
        d.start()
    finally:
        del os.environ[HOOK]
    for m in msgs:      # one at a time: receptions and deliveries take turns in the batches
        harness.inject([m], threads=1, per_conn=1, timeout=5)
        if not d.alive():
            break
        time.sleep(0.05)
    if not wait_until(lambda: not d.alive(), 10, what="salvod to exit at the hook"):
        raise Fail("salvod did not exit at the fault hook")
    d.kill9()          # reaps it; marks the exit as intended
    if d.proc.returncode != 137:
        raise Fail("salvod exited with %r, want 137 (the hook)" % d.proc.returncode)
    before = d.acct()
    acked = [m for m in msgs if m.error is None and m.reply is not None and m.reply[0] == 250]
    log("hook fired after %d acknowledged messages; %d records in the log" % (len(acked), len(before)))
    d.start()
    want = {m.rcpts[0] for m in acked}

    def settled():
        got = set(sink.delivered())
        recs = d.acct()
        dl = {r["recipient"] for r in recs if r["type"] == "delivery"}
        return want <= got and got <= dl
    wait_until(settled, 20, what="every acknowledged message delivered and logged")
    time.sleep(0.5)
    recs = d.acct()
    got = set(sink.delivered())
    problems = []
    if not want <= got:
        problems.append("acknowledged but never delivered: %r" % sorted(want - got)[:5])
    for typ in ("reception", "delivery"):
        have = {r["recipient"] for r in recs if r["type"] == typ}
        lost = sorted(got - have)
        if lost:
            problems.append("%d delivered recipients have no %s record (lost at the exit): %r"
                            % (len(lost), typ, lost[:5]))
    by_event = {}
    for r in recs:
        key = (r["type"], r["recipient"], r.get("attempt"))
        by_event.setdefault(key, set()).add(r["event_id"])
    unstable = {k: v for k, v in by_event.items() if len(v) > 1}
    if unstable:
        problems.append("one event logged under several event_ids: %r" % list(unstable.items())[:2])
    cut = len({r["event_id"] for r in recs} - {r["event_id"] for r in before})
    if problems:
        raise Fail("; ".join(problems))
    d.stop()
    left = harness.mdb_entries(d.spool, "outbox")
    if left:
        raise Fail("%d records left in the outbox after a clean stop" % left)
    log("%d delivered; %d events written after the restart, none lost; %d duplicate lines; outbox empty"
        % (len(got), cut, len(recs) - len({r["event_id"] for r in recs})))


def test_log_full(env):
    env.dns(mx={"ok.test": [(10, "mx-ok.test")]}, a={"mx-ok.test": "127.0.0.2"}, check=[("ok.test", "MX")])
    sink = env.salvo_sink("sinkOk", "127.0.0.2:25")
    d = env.salvod_daemon(default_domain={"retry-after": "1s", "bounce-after": "1h"})
    logdir = os.path.join(d.spool, "log")
    os.makedirs(logdir)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", logdir]).returncode != 0:
        raise Fail("cannot mount a tmpfs (needed to fill the log's disk)")
    try:
        _log_full(env, d, sink, logdir)
    finally:
        if env.daemon is not None:
            env.daemon.stop()
        subprocess.run(["umount", "-l", logdir])


def _log_full(env, d, sink, logdir):
    d.start()
    filler = os.path.join(logdir, "filler")
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    rng = random.Random(21)
    msgs = [Injected("lf%d" % i, SENDER, ["f%d@ok.test" % i], make_body(rng, "lf%d" % i, SENDER,
                                                                         ["f%d@ok.test" % i], 800))
            for i in range(30)]
    harness.inject_all(msgs, threads=2, per_conn=15, timeout=20)
    want = {m.rcpts[0] for m in msgs}
    if not wait_until(lambda: want <= set(sink.delivered()), 20, what="every message delivered"):
        raise Fail("not delivered with the log's disk full: %r" % sorted(want - set(sink.delivered()))[:5])
    time.sleep(0.5)
    err = harness.tail(d.stderr_paths[-1], 50)
    if "accounting log write failed" not in err:
        raise Fail("salvod did not say that the log could not be written:\n" + err)
    before = {r["recipient"] for r in d.acct() if r["type"] == "delivery"}
    if before & want:
        raise Fail("records reached a full disk? %r" % sorted(before & want)[:3])
    held = outbox_metric()
    if not held:
        raise Fail("salvo_acct_outbox_entries %r while the log is full: want some" % held)
    d.kill9()
    os.unlink(filler)
    d.start()
    recs = harness.wait_for_records(env, lambda rs: want <= {r["recipient"] for r in rs if r["type"] == "delivery"},
                                    10, what="the delivery records after the restart")
    for typ in ("reception", "delivery"):
        lost = want - {r["recipient"] for r in recs if r["type"] == typ}
        if lost:
            raise Fail("%d %s records lost while the log's disk was full: %r" % (len(lost), typ, sorted(lost)[:5]))
    left = outbox_metric()
    if left != 0:
        raise Fail("salvo_acct_outbox_entries %r after the restart wrote them, want 0" % left)
    log("30 messages delivered while the log's disk was full (%d commits' records held in the outbox), kill -9, space "
        "freed: all 60 records written, the outbox empty" % held)


if __name__ == "__main__":
    harness.main([test_exit_before_flush, test_log_full])
