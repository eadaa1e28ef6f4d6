#!/usr/bin/python3
"""test_api.py - the HTTP management API and /metrics against a live salvod.

  shape      /api/v1/status, /api/v1/queues, /api/v1/queues/{d}, /api/v1/vmtas answer
             JSON with the documented fields; unknown paths 404, wrong methods 405
  pause      a paused queue holds its mail (mode "paused", size counts it) and
             delivers it after resume
  retry      a recipient deferred with retry-after 1h goes out at once after POST retry
  mode       POST .../mode {"mode":"backoff"} and back; bad modes are a 400 naming the field
  metrics    /metrics parses with prometheus_client's parser; its counters equal the
             accounting log's record counts; a histogram for spool commits
  auth       a client that is not on loopback gets 401 without the token, 200 with it
  limits     a body over http-max-body-size gets 413
"""

import http.client
import json
import random
import subprocess
import time

import harness
from harness import Fail, Injected, find_records, log, make_body, wait_until

SENDER = "owner@senders.test"
TOKEN = "t0ken-for-the-itest-0123456789"


def api(method, path, body=None, source=None, headers=None, timeout=5):
    c = http.client.HTTPConnection(harness.SALVOD_HTTP[0], harness.SALVOD_HTTP[1], timeout=timeout,
                                   source_address=source)
    try:
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        c.request(method, path, body=data, headers=headers or {})
        r = c.getresponse()
        raw = r.read()
        ctype = r.getheader("Content-Type", "")
        return r.status, (json.loads(raw) if ctype.startswith("application/json") else raw.decode())
    finally:
        c.close()


def queue(name):
    st, q = api("GET", "/api/v1/queues/" + name)
    return q if st == 200 else None


def _msgs(rng, prefix, rcpts):
    return [Injected("%s%d" % (prefix, i), SENDER, [r], make_body(rng, "%s%d" % (prefix, i), SENDER, [r], 500))
            for i, r in enumerate(rcpts)]


def test_api(env):
    rng = random.Random(11)
    doms = ("api.test", "hold.test", "slow.test")
    env.dns(mx={d: [(10, "mx.sink.test")] for d in doms}, a={"mx.sink.test": "127.0.0.2"},
            check=[("hold.test", "MX")])
    sink = env.salvo_sink("sink", "127.0.0.2:25", defer_first=[r"@slow\.test$"])
    d = env.salvod_daemon(domains={"slow.test": {"retry-after": "1h"}},
                          extra="http-api-token %s\nhttp-max-body-size 2k\n" % TOKEN)
    d.start()
    wait_until(lambda: api("GET", "/api/v1/status")[0] == 200, 5, what="the API")

    # -- shape
    st, s = api("GET", "/api/v1/status")
    for k in ("version", "uptime_s", "totals", "rates_per_min", "queued", "connections", "spool"):
        if k not in s:
            raise Fail("status lacks %r: %r" % (k, s))
    if api("GET", "/api/v1/queues/nowhere.test")[0] != 404:
        raise Fail("an unknown queue is not a 404")
    if api("GET", "/api/v1/nothing")[0] != 404 or api("DELETE", "/api/v1/status")[0] != 405:
        raise Fail("unknown path / wrong method not answered 404 / 405")
    st, v = api("GET", "/api/v1/vmtas")
    if st != 200 or [x["name"] for x in v["vmtas"]] != ["default"]:
        raise Fail("vmtas: %s %r" % (st, v))

    # -- pause before any mail, then inject: the mail waits
    st, r = api("POST", "/api/v1/queues/hold.test/pause")
    if st != 200 or r.get("action") != "pause":
        raise Fail("pause: %s %r" % (st, r))
    held = _msgs(rng, "hold", ["h%d@hold.test" % i for i in range(5)])
    harness.inject(held, threads=1, per_conn=5)
    wait_until(lambda: (queue("hold.test") or {}).get("size") == 5, 5, what="the held queue's size")
    q = queue("hold.test")
    if not q or q["mode"] != "paused" or q["size"] != 5:
        raise Fail("held queue: %r" % q)
    time.sleep(1.0)
    if any(r.endswith("@hold.test") for a in sink.arrivals() for r in a.rcpt_to):
        raise Fail("a paused queue delivered")
    api("POST", "/api/v1/queues/hold.test/resume")
    harness.wait_for_recipients(env, {m.rcpts[0] for m in held}, 15, settle=0.2)
    wait_until(lambda: (queue("hold.test") or {}).get("mode") == "normal", 3, what="mode normal")

    # -- retry now: the 451 answer schedules the next try an hour away
    slow = _msgs(rng, "slow", ["s@slow.test"])
    harness.inject(slow, threads=1, per_conn=1)
    harness.wait_for_records(env, lambda recs: find_records(recs, type="transient", recipient="s@slow.test"), 10,
                             what="the transient record")
    wait_until(lambda: (queue("slow.test") or {}).get("waiting") == 1, 3, what="a waiting recipient")
    t0 = time.monotonic()
    api("POST", "/api/v1/queues/slow.test/retry")
    harness.wait_for_records(env, lambda recs: find_records(recs, type="delivery", recipient="s@slow.test"), 10,
                             what="the delivery after retry")
    log("retry now: delivered %.2f s after the request" % (time.monotonic() - t0))

    # -- mode
    st, r = api("POST", "/api/v1/queues/api.test/mode", {"mode": "backoff"})
    wait_until(lambda: (queue("api.test") or {}).get("mode") == "backoff", 3, what="backoff mode")
    api("POST", "/api/v1/queues/api.test/mode", {"mode": "normal"})
    wait_until(lambda: (queue("api.test") or {}).get("mode") == "normal", 3, what="normal mode")
    st, r = api("POST", "/api/v1/queues/api.test/mode", {"mode": "turbo"})
    if st != 400 or r.get("field") != "mode":
        raise Fail("bad mode: %s %r" % (st, r))
    st, r = api("POST", "/api/v1/queues/api.test/mode", b"{not json")
    if st != 400 or "error" not in r:
        raise Fail("broken JSON: %s %r" % (st, r))

    # -- traffic, then metrics against the log
    more = _msgs(rng, "m", ["m%d@api.test" % i for i in range(30)])
    harness.inject(more, threads=2, per_conn=15)
    harness.wait_for_recipients(env, {m.rcpts[0] for m in more}, 20, settle=1.5)  # >= one publication
    metrics_vs_log(env, d)

    # -- limits and auth
    st, r = api("POST", "/api/v1/queues/api.test/mode", b"{" + b" " * 4000 + b"}")
    if st != 413:
        raise Fail("a 4 KB body against http-max-body-size 2k: %s %r" % (st, r))
    check_auth()


def metrics_vs_log(env, d):
    from prometheus_client.parser import text_string_to_metric_families

    def sample(fams, name, labels=None):
        for f in fams.values():
            for s in f.samples:
                if s.name == name and (labels is None or all(s.labels.get(k) == v for k, v in labels.items())):
                    return s.value
        return None

    def agree():
        st, text = api("GET", "/metrics")
        fams = {f.name: f for f in text_string_to_metric_families(text)}
        recs = d.acct()
        want = {"salvo_messages_delivered_total": len(find_records(recs, type="delivery")),
                "salvo_messages_transient_total": len(find_records(recs, type="transient")),
                "salvo_messages_bounced_total": len(find_records(recs, type="bounce")),
                "salvo_recipients_received_total": len(find_records(recs, type="reception"))}
        got = {k: sample(fams, k) for k in want}
        agree.last = (want, got, fams)
        return all(got[k] == want[k] for k in want)
    if not wait_until(agree, 5, what="metrics to match the log"):
        raise Fail("metrics vs log records: want %r, got %r" % (agree.last[0], agree.last[1]))
    fams = agree.last[2]
    if sample(fams, "salvo_spool_commit_seconds_count") in (None, 0):
        raise Fail("no spool commit histogram samples")
    if sample(fams, "salvo_queue_size", {"queue": "api.test"}) is None:
        raise Fail("no salvo_queue_size{queue=\"api.test\"}")
    log("metrics agree with the log: %r" % agree.last[1])


def check_auth():
    if not harness._in_private_netns[0]:
        log("auth: not in a private network namespace, skipping the non-loopback client")
        return
    subprocess.run(["ip", "addr", "add", "10.77.0.1/32", "dev", "lo"], check=True)
    src = ("10.77.0.1", 0)
    st, r = api("GET", "/api/v1/status", source=src)
    if st != 401:
        raise Fail("a non-loopback client without a token got %s %r" % (st, r))
    st, r = api("GET", "/api/v1/status", source=src, headers={"Authorization": "Bearer wrong-token-123456789"})
    if st != 401:
        raise Fail("a wrong token got %s" % st)
    st, r = api("GET", "/api/v1/status", source=src, headers={"Authorization": "Bearer " + TOKEN})
    if st != 200:
        raise Fail("the right token got %s %r" % (st, r))
    log("auth: 401 without / with a wrong token, 200 with it")


if __name__ == "__main__":
    harness.main([test_api])
