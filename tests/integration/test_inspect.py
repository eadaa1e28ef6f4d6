#!/usr/bin/python3
"""test_inspect.py - looking into the queue (issue 19, inspection).

  pages      10,000 recipients held in a paused queue, beside another queue's mail:
             GET /api/v1/queues/{q}/recipients pages through all of them exactly once
             (limit 1000, then the `next` cursor), each with its message id, sender,
             campaign, attempts and next attempt; another queue's recipients never show;
             `salvoctl show` lists the same 10,000
  message    GET /api/v1/messages/{id}: headers, size, sender, campaign and each
             recipient's state (queued, or finished once delivered); `salvoctl message`
  errors     a bad limit, cursor or id answers 400 naming the field; an unknown id 404
"""

import json
import subprocess
import urllib.error
import urllib.request

import harness
from harness import Fail, log, wait_until


def api(method, path, body=None):
    req = urllib.request.Request("http://%s:%d%s" % (harness.SALVOD_HTTP + (path,)), method=method,
                                 data=json.dumps(body).encode() if body is not None else None)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


inject = harness.http_inject


def test_inspect(env):
    env.dns(mx={"held.test": [(10, "mx.sink.test")], "free.test": [(10, "mx.sink.test")]},
            a={"mx.sink.test": "127.0.0.2"}, check=[("free.test", "MX")])
    sink = env.salvo_sink("sink", "127.0.0.2:25")
    d = env.salvod_daemon(sources={"127.0.0.1": {"always-allow-relaying": "yes", "process-x-job": "yes"}})
    d.start()
    if api("POST", "/api/v1/queues/held.test/pause")[0] != 200:
        raise Fail("pause held.test")
    held = ["u%05d@held.test" % i for i in range(10000)]
    inject(held[:5000], campaign="autumn")
    inject(held[5000:], campaign="autumn")
    inject(["f%d@free.test" % i for i in range(50)])
    # one message for both queues (SMTP: HTTP makes a message per recipient)
    body = (b"X-Job: mix\r\nFrom: news@senders.test\r\nTo: mixed@free.test, mixed@held.test\r\n"
            b"Subject: hello\r\n\r\nHi\r\n")
    harness.inject([harness.Injected("mix", "esp@senders.test", ["mixed@free.test", "mixed@held.test"], body)],
                   threads=1)
    harness.wait_for_recipients(env, {"f0@free.test", "mixed@free.test"}, 30, settle=0.5)

    # -- pages
    seen, after, pages = [], None, 0
    while True:
        path = "/api/v1/queues/held.test/recipients?limit=1000" + ("&after=" + after if after else "")
        st, out = api("GET", path)
        if st != 200:
            raise Fail("GET %s: %d %r" % (path, st, out))
        pages += 1
        for r in out["recipients"]:
            for k in ("id", "index", "recipient", "sender", "campaign", "attempts", "next_attempt", "queued",
                      "last_response"):
                if k not in r:
                    raise Fail("a listed recipient lacks %s: %r" % (k, r))
            if not r["recipient"].endswith("@held.test"):
                raise Fail("another queue's recipient listed: %r" % r)
            seen.append(r["recipient"])
        after = out["next"]
        if after is None or pages > 100:
            break
    want = set(held) | {"mixed@held.test"}
    if len(seen) != len(want) or set(seen) != want:
        raise Fail("paged listing: %d entries, %d distinct, %d wanted" % (len(seen), len(set(seen)), len(want)))
    first = api("GET", "/api/v1/queues/held.test/recipients?limit=3")[1]["recipients"]
    if first[0]["sender"] != "esp@senders.test" or first[0]["campaign"] != "autumn" or first[0]["attempts"] != 0:
        raise Fail("a listed recipient: %r" % first[0])
    log("%d recipients of held.test in %d pages, each once; free.test's never listed" % (len(seen), pages))
    p = subprocess.run([harness.SALVOCTL, "--api", "http://%s:%d" % harness.SALVOD_HTTP, "--json", "show",
                        "held.test"], capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise Fail("salvoctl show: %d %s" % (p.returncode, p.stderr))
    out = json.loads(p.stdout)
    if len(out) != len(want) or {r["recipient"] for r in out} != want:
        raise Fail("salvoctl show listed %d" % len(out))

    # -- one message: the mixed one, half delivered
    recs = harness.read_acct(d.spool)
    mid = next(r["id"] for r in recs if r["type"] == "reception" and r["recipient"] == "mixed@held.test")
    if not any(r["id"] == mid and r["recipient"] == "mixed@free.test" for r in recs if r["type"] == "reception"):
        raise Fail("the mixed message was split: %r" % [r for r in recs if r.get("id") == mid])
    wait_until(lambda: any(r["type"] == "delivery" and r["recipient"] == "mixed@free.test"
                           for r in harness.read_acct(d.spool)), 20, what="mixed@free.test's delivery record")
    st, m = api("GET", "/api/v1/messages/" + mid)
    if st != 200:
        raise Fail("GET message %s: %d %r" % (mid, st, m))
    states = {r["index"]: r["state"] for r in m["recipients"]}
    if m["sender"] != "esp@senders.test" or m["campaign"] != "mix" or "Subject: hello" not in m["headers"] \
            or m["size"] <= 0 or sorted(states.values()) != ["finished", "queued"]:
        raise Fail("GET message: %r" % m)
    p = subprocess.run([harness.SALVOCTL, "--api", "http://%s:%d" % harness.SALVOD_HTTP, "message", mid],
                       capture_output=True, text=True, timeout=30)
    if p.returncode != 0 or "Subject: hello" not in p.stdout or "finished" not in p.stdout:
        raise Fail("salvoctl message: %d %s %s" % (p.returncode, p.stdout, p.stderr))
    log("message %s: campaign %s, %d bytes, states %r" % (mid, m["campaign"], m["size"], states))

    # -- errors name their field
    for path, field, code in (("/api/v1/queues/held.test/recipients?limit=0", "limit", 400),
                              ("/api/v1/queues/held.test/recipients?limit=5000", "limit", 400),
                              ("/api/v1/queues/held.test/recipients?after=zzz", "after", 400),
                              ("/api/v1/messages/xyz", "id", 400),
                              ("/api/v1/messages/0000000000000001", "id", 404)):
        st, out = api("GET", path)
        if st != code or out.get("field") != field:
            raise Fail("GET %s: want %d naming %s, got %d %r" % (path, code, field, st, out))
    if api("POST", "/api/v1/messages/" + mid)[0] != 405:
        raise Fail("POST on a message is not refused")


if __name__ == "__main__":
    harness.main([test_inspect])
