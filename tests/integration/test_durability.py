#!/usr/bin/python3
"""test_durability.py - no acknowledged message is lost to kill -9.

The sinks are down (nothing listens on the MX hosts), so every first attempt fails
with a refused connection. 100 messages go in; salvod is killed with SIGKILL right
after the last 250. Then the sinks come up and salvod starts again on the same spool
(retry-after 1s): every acknowledged message must arrive, each recipient exactly once,
with its bytes intact, and the accounting log of both runs together must hold one
delivery record per recipient.

A second case kills salvod while it is delivering (sinks up from the start): nothing
acknowledged may be lost; duplicates are allowed (at-least-once) but counted.
"""

import random
import threading

import harness
from harness import Fail, Injected, check_trace_prefix, find_records, log, make_body

HOSTS = {"mx-a.test": "127.0.0.2", "mx-b.test": "127.0.0.3", "mx-pf.test": "127.0.0.5"}
DOMAINS = {"k%d.test" % j: [(10, ["mx-a.test", "mx-b.test", "mx-pf.test"][j % 3])] for j in range(6)}


def _messages(n, seed):
    rng = random.Random(seed)
    msgs = []
    for i in range(n):
        rcpts = []
        for k in range(rng.choice([1, 1, 2, 3])):
            rcpts.append("p%03dr%d@k%d.test" % (i, k, rng.randrange(len(DOMAINS))))
        size = rng.choice([200, 1500, 8000, 30000, 120000])
        mid = "p%03d" % i
        msgs.append(Injected(mid, "durable@senders.example", rcpts,
                             make_body(rng, mid, "durable@senders.example", rcpts, size=size)))
    return msgs


def _start_sinks(env):
    return [env.salvo_sink("sinkA", "127.0.0.2:25"), env.salvo_sink("sinkB", "127.0.0.3:25"),
            env.postfix_sink("postfix", "127.0.0.5:25")]


def _check_arrivals(env, acked, seen, allow_dups=False):
    problems = []
    expected = {r.lower(): m for m in acked for r in m.rcpts}
    missing = sorted(r for r in expected if r not in seen)
    if missing:
        problems.append("%d of %d acknowledged recipients were lost, e.g. %s" % (len(missing), len(expected), missing[:8]))
    dups = sorted(r for r, a in seen.items() if len(a) > 1)
    if dups and not allow_dups:
        problems.append("%d recipients arrived more than once, e.g. %s: %r" % (len(dups), dups[0], seen[dups[0]]))
    for r, arrs in sorted(seen.items()):
        m = expected.get(r)
        if m is None:
            continue
        for a in arrs:
            why = check_trace_prefix(a.data, m.data)
            if why:
                problems.append("%s (%s): %s" % (r, a.file, why))
                break
    return problems, dups


def test_kill9_sinks_down(env):
    env.dns(mx=DOMAINS, a=HOSTS, check=[("k0.test", "MX")])
    for ip in HOSTS.values():
        harness.assert_port_free((ip, 25), "the sinks, which must be down at first")
    d = env.salvod_daemon(default_domain={"retry-after": "1s", "bounce-after": "1h"})
    d.start()
    msgs = _messages(100, 100)
    acked = harness.inject(msgs, threads=4, per_conn=10, timeout=30)
    d.kill9()
    log("%d of %d acknowledged; salvod killed with SIGKILL right after the last 250" % (len(acked), len(msgs)))
    if len(acked) < len(msgs):
        bad = [m for m in msgs if m.error]
        raise Fail("only %d of %d acknowledged; first error: %s" % (len(acked), len(msgs), bad[0].error))
    recs1 = d.acct()
    log("accounting before the kill: %s" % harness.acct_summary(recs1))
    if find_records(recs1, type="delivery"):
        raise Fail("deliveries logged while every MX was down: %s" % find_records(recs1, type="delivery")[:2])

    _start_sinks(env)
    d.start()
    expected = {r.lower() for m in acked for r in m.rcpts}
    seen = harness.wait_for_recipients(env, expected, timeout=45, settle=2.0)
    problems, _ = _check_arrivals(env, acked, seen)
    recs = harness.wait_for_records(env, lambda rs: len(find_records(rs, type="delivery")) >= len(expected),
                                    timeout=10)
    deliv = {}
    for r in find_records(recs, type="delivery"):
        deliv.setdefault((r.get("recipient") or "").lower(), []).append(r)
    nodel = sorted(r for r in expected if r not in deliv)
    if nodel:
        problems.append("%d recipients have no delivery record, e.g. %s" % (len(nodel), nodel[:5]))
    dup = sorted(r for r, v in deliv.items() if len(v) > 1)
    if dup:
        problems.append("%d recipients have several delivery records, e.g. %s" % (len(dup), deliv[dup[0]]))
    for t in ("bounce", "expiration"):
        if find_records(recs, type=t):
            problems.append("%s records: %s" % (t, find_records(recs, type=t)[:2]))
    if problems:
        raise Fail("\n  - " + "\n  - ".join(problems))
    log("all %d recipients of %d messages arrived once after the restart" % (len(expected), len(acked)))


def test_kill9_while_delivering(env):
    """salvod is killed while it injects and delivers; after a restart every
    acknowledged recipient arrives (duplicates allowed, reported)."""
    env.dns(mx=DOMAINS, a=HOSTS, check=[("k0.test", "MX")])
    _start_sinks(env)
    d = env.salvod_daemon(default_domain={"retry-after": "1s", "bounce-after": "1h"})
    d.start()
    msgs = _messages(150, 150)
    killed = threading.Event()

    def on_ack(m):
        # after the 60th acknowledgement, kill salvod mid-stream
        with lock:
            count[0] += 1
            if count[0] == 60 and not killed.is_set():
                killed.set()
                d.kill9()
    lock = threading.Lock()
    count = [0]
    harness.inject(msgs, threads=4, per_conn=10, timeout=30, on_ack=on_ack)
    if not killed.is_set():
        d.kill9()
    acked = [m for m in msgs if m.error is None]
    log("%d of %d acknowledged before the kill" % (len(acked), len(msgs)))
    d.start()
    expected = {r.lower() for m in acked for r in m.rcpts}
    seen = harness.wait_for_recipients(env, expected, timeout=45, settle=2.0)
    problems, dups = _check_arrivals(env, acked, seen, allow_dups=True)
    if dups:
        log("note: %d recipients arrived twice (in flight at the kill; at-least-once)" % len(dups))
        # In flight at the kill: at most max-smtp-out (4) sessions per queue (6 queues),
        # each with one transaction of at most 3 recipients, plus what had been accepted
        # by a sink but not yet committed as delivered. Half of everything is far beyond.
        if len(dups) > len(expected) // 2:
            problems.append("%d of %d recipients duplicated: more than what can have been in flight"
                            % (len(dups), len(expected)))
    if problems:
        raise Fail("\n  - " + "\n  - ".join(problems))
    log("all %d acknowledged recipients arrived" % len(expected))


if __name__ == "__main__":
    harness.main([test_kill9_sinks_down, test_kill9_while_delivering], needs_postfix=True)
