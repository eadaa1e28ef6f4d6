#!/usr/bin/python3
"""test_pmta_rest.py - the last <domain> directives of issue 18 at work in delivery.

  queue_priority   salvod under `prlimit --nofile=N`, a few descriptors above what it
                   holds idle, so that only about two outbound sessions fit; lo.test
                   (queue-priority 10) gets 40 messages and starts delivering, then
                   hi.test (queue-priority 90) gets 40; the sink holds each DATA reply
                   60 ms and sessions carry 3 messages. Among the messages that reach
                   the sink after hi.test's first, hi.test's mean arrival rank is under
                   0.6 of lo.test's (they take the descriptors that free up; without
                   priority the queue holding them keeps them: 0.8 and 1.7 measured),
                   and /metrics counts the yields.
                   A rank statistic, no time bound.
  retry_rcpts      retry-recipients-after 40m with retry-after 5m: a recipient whose
                   RCPT got 451 (salvo-sink --defer-first) on a session that delivered
                   its sibling waits ~40m (next_attempt in GET
                   /api/v1/queues/{q}/recipients); a recipient whose connection failed
                   (a dead MX) and one whose message got 451 at MAIL FROM (the message's
                   failure, not the recipient's) keep the queue's 5m.
"""

import datetime
import json
import os
import re
import time
import urllib.request

import harness
from harness import Fail, Injected, log, make_body, wait_until

SENDER = "owner@senders.test"


def _msgs(rng, prefix, rcpts_by_msg, size=400):
    return harness.make_msgs(rng, prefix, rcpts_by_msg, SENDER, size)


def _get(path):
    with urllib.request.urlopen("http://%s:%d%s" % (harness.SALVOD_HTTP + (path,)), timeout=10) as r:
        return r.read().decode()


def _arrivals(sink):
    """Recipients' domains in the order the sink accepted their messages."""
    evs = [e for e in sink.events() if e["ev"] == "msg"]
    evs.sort(key=lambda e: e["seq"])
    return [e["rcpt_to"][0].rpartition("@")[2] for e in evs]


def test_queue_priority(env):
    rng = __import__("random").Random(18)
    env.dns(mx={"lo.test": [(10, "mx.prio.test")], "hi.test": [(10, "mx.prio.test")],
                "warm.test": [(10, "mx.prio.test")]},
            a={"mx.prio.test": "127.0.0.2"}, check=[("lo.test", "MX")])
    sink = env.salvo_sink("sinkPrio", "127.0.0.2:25", dump=False, extra_args=["--fault", "at=data,delay=60"])
    d = env.salvod_daemon(default_domain={"max-smtp-out": "20", "max-msg-per-connection": "3",
                                          "retry-after": "1s"},
                          domains={"lo.test": {"queue-priority": "10"}, "hi.test": {"queue-priority": "90"}})
    # What salvod holds idle, once a delivery has opened its DNS sockets.
    d.start()
    harness.inject_all(_msgs(rng, "warm", [["w@warm.test"]]), threads=1)
    if not wait_until(lambda: len(_arrivals(sink)) >= 1, 20, what="the warm-up message"):
        raise Fail("the warm-up message did not arrive")
    wait_until(lambda: any(e["ev"] == "close" for e in sink.events()), 2, what="")
    idle = len(os.listdir("/proc/%d/fd" % d.proc.pid)) - 1
    d.stop()
    wait_until(lambda: not harness.port_open(harness.SALVOD_SMTP), 5, what="the listener to close")
    limit = idle + 5  # the injection session, the reserve of two, and about two outbound sessions
    log("salvod holds %d descriptors idle; running it under prlimit --nofile=%d" % (idle, limit))
    saved = harness.SALVOD_WRAPPER
    harness.SALVOD_WRAPPER = ["prlimit", "--nofile=%d" % limit] + saved
    try:
        d.start()
    finally:
        harness.SALVOD_WRAPPER = saved
    n = 40
    harness.inject_all(_msgs(rng, "lo", [["l%d@lo.test" % i] for i in range(n)]), threads=1, per_conn=n)
    if not wait_until(lambda: "lo.test" in _arrivals(sink), 20, what="lo.test's first delivery"):
        raise Fail("lo.test did not start delivering")
    harness.inject_all(_msgs(rng, "hi", [["h%d@hi.test" % i] for i in range(n)]), threads=1, per_conn=n)
    if not wait_until(lambda: len(_arrivals(sink)) >= 1 + 2 * n, 90, what="all messages at the sink"):
        raise Fail("only %d of %d messages delivered" % (len(_arrivals(sink)) - 1, 2 * n))
    order = _arrivals(sink)
    after = order[order.index("hi.test"):]
    lo_after = after.count("lo.test")
    log("arrivals from hi.test's first on: %d (%d lo.test): %s" % (
        len(after), lo_after, "".join("h" if x == "hi.test" else "l" for x in after)))
    if lo_after < 10:
        raise Fail("lo.test had only %d messages left when hi.test began: the test proves nothing" % lo_after)
    ranks = {dom: [i for i, x in enumerate(after) if x == dom] for dom in ("hi.test", "lo.test")}
    mean = {dom: sum(r) / len(r) for dom, r in ranks.items()}
    log("mean arrival rank: hi.test %.1f, lo.test %.1f (of %d)" % (mean["hi.test"], mean["lo.test"], len(after)))
    # all of hi.test's first would be 0.35; without priority runs gave 0.8 and 1.7
    if mean["hi.test"] >= 0.6 * mean["lo.test"]:
        raise Fail("hi.test (queue-priority 90) did not go first: mean rank %.1f vs lo.test's %.1f; order %s" % (
            mean["hi.test"], mean["lo.test"], "".join("h" if x == "hi.test" else "l" for x in after)))
    yields = int(re.search(r"^salvo_connect_priority_yields_total (\d+)$", _get("/metrics"), re.M).group(1))
    log("sessions put off for the higher priority: %d" % yields)
    if not yields:
        raise Fail("no session yielded: the descriptor limit did not bite")


def _next_attempt(queue, rcpt):
    page = json.loads(_get("/api/v1/queues/%s/recipients?limit=100" % queue))
    for r in page["recipients"]:
        if r["recipient"] == rcpt and r["next_attempt"]:
            t = datetime.datetime.strptime(r["next_attempt"][:19], "%Y-%m-%dT%H:%M:%S")
            return t.replace(tzinfo=datetime.timezone.utc).timestamp()
    return None


def test_retry_rcpts(env):
    rng = __import__("random").Random(19)
    # dead.test's MX answers nothing: a connection-level failure
    env.dns(mx={"rr.test": [(10, "mx.rr.test")], "dead.test": [(10, "mx.dead.test")]},
            a={"mx.rr.test": "127.0.0.2", "mx.dead.test": "127.0.0.3"}, check=[("rr.test", "MX")])
    sink = env.salvo_sink("sinkRr", "127.0.0.2:25", defer_first=[r"^held@rr\.test$"],
                          extra_args=["--fault", r"at=mail,match=^late@,first=1,reply=451 4.3.0 not now"])
    d = env.salvod_daemon(default_domain={"retry-after": "5m", "retry-recipients-after": "40m"})
    d.start()
    msgs = _msgs(rng, "rr", [["ok@rr.test", "held@rr.test"], ["x@dead.test"]])
    late = Injected("late", "late@senders.test", ["m@rr.test"],
                    make_body(rng, "late", "late@senders.test", ["m@rr.test"], size=400))
    harness.inject_all(msgs + [late], threads=1)
    harness.wait_for_recipients(env, {"ok@rr.test"}, 30, settle=0.2)
    want = [("rr.test", "held@rr.test"), ("dead.test", "x@dead.test"), ("rr.test", "m@rr.test")]
    if not wait_until(lambda: all(_next_attempt(*w) for w in want), 30, what="three recipients deferred"):
        raise Fail("not deferred: %r" % [(w, _next_attempt(*w)) for w in want])
    now = time.time()
    held, dead, mail = [_next_attempt(*w) - now for w in want]
    log("next attempt in %.0f s (its own 451), %.0f s (connection failed), %.0f s (451 to MAIL)" % (
        held, dead, mail))
    if not 4 * 60 < mail <= 5 * 60 + 5:
        raise Fail("a 451 to MAIL FROM waits %.0f s, not retry-after (5m)" % mail)
    if not 35 * 60 < held <= 40 * 60 + 5:
        raise Fail("a recipient's own 451 waits %.0f s, not retry-recipients-after (40m)" % held)
    if not 4 * 60 < dead <= 5 * 60 + 5:
        raise Fail("a connection failure waits %.0f s, not retry-after (5m)" % dead)
    if [e for e in sink.events() if e["ev"] == "msg" and "held@rr.test" in e["rcpt_to"]]:
        raise Fail("held@rr.test was delivered: the 451 did not happen")


if __name__ == "__main__":
    harness.main([test_queue_priority, test_retry_rcpts])
