#!/usr/bin/python3
"""test_control_attacks.py - hostile input and bad timing against the operator controls
of issue 19 (campaigns, delete, inspection, pauses), beyond the cases their own tests
were built against.

  input        one salvod holding mail for campaign c1 in a paused queue. Delete bodies
               that are not JSON, not an object, with NUL / control / non-UTF-8 bytes, a
               1 MB sender, wrong types, unknown fields, an empty filter, and durations
               0, -1h, 2x, 1.5h, 99999999999h, 1d1d; campaign actions on ids that are not
               UTF-8, hold %00 or a control byte, or carry an unknown body field;
               inspection with limit 0, -1, 1000000, x and a garbage or truncated cursor;
               /api/v1/messages/ for a malformed and an unknown id. Every answer is a 4xx
               JSON object with an `error` and the `field` at fault, and nothing changed:
               the 5 recipients still queued, no `cancelled` record, no campaign made.
               Accepted edge cases: `1h30m` deletes nothing new; an encoded `/` or UTF-8
               in a campaign id names that campaign; a resume of a campaign never paused
               makes none; a pause of a queue that does not exist shows no phantom queue
               in /api/v1/queues (nor GET /api/v1/queues/NAME).
  paging       300 recipients held; pages of 40 while, between pages, the recipient the
               cursor points at and others on the pages still to come are deleted: no
               recipient is shown twice, every one that stayed queued is shown once, the
               paging ends (next null).
  queue-pause  a queue pause whose spool commit fails (ENOSPC, the fault hook) answers 503
               saying it is not stored (as a campaign pause does), not 200; one that is
               answered 200 survives a kill -9 sent right after the answer.
  delete-kill  a campaign of 400 delivered at full speed (fast receiver, 8 sessions):
               delete it mid-stream, kill -9 salvod as soon as the answer arrives, restart:
               every recipient ends delivered or cancelled, never both, none twice, the
               receiver got no cancelled one, `cancelled` records beyond `deleted` only from
               those in flight, and the campaign's counters after the restart agree with
               the accounting log (delivered, queued 0). A second delete answers 0.
  delete-reload  the same (20% of transactions 451, retried after 1s) while four reloads
               change max-smtp-out: the same invariants without a restart, no cancelled
               recipient ever reaches the receiver.
  dsn-bounce   delete with dsn:true for mail whose sender's domain rejects everything:
               the DSN is tried once, bounces, and makes no DSN of its own (no loop); the
               deleted recipients are cancelled exactly once.
  double       six overlapping deletes (campaign, sender in two cases, queue, older_than 1ms)
               of 500 held recipients at once: the answers sum to 500, one `cancelled`
               record each, the campaign's queued count 0.
  counters     a campaign of 200: 50 rejected (550), 50 deferred once, the rest delivered;
               kill -9 mid-stream. Its counters (received, queued, deferred, delivered,
               bounced) agree with the accounting log, live and after a kill -9 and a SIGTERM.
  pause-kill   campaign P paused before its mail exists, Q in the same queue delivered; kill
               -9; P still paused (never attempted); resumed: both delivered exactly once.
  fuzz         2,000 seeded random requests at the control endpoints from 8 threads: all
               JSON, every 4xx names a field, salvod stays up, the held mail stays.
  many         10,000 distinct X-Job campaigns (one message each) held in a paused queue:
               GET /api/v1/campaigns pages of 1000 show each exactly once; an X-Job in
               Latin-1 names no campaign, one in UTF-8 does; the queue pages in full; the time of a
               page and the daemon's RSS growth are measured and bounded (loosely); then one
               delete takes the whole queue (10,002, timed), one `cancelled` record each.
"""

import json
import os
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

import harness
from harness import Fail, Injected, log, wait_until

SENDER = "esp@senders.test"


def api(method, path, body=None, raw=None, timeout=60):
    """(status, parsed JSON) for one request; a non-JSON answer is a failure."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    if method == "POST" and data is None:
        data = b""
    req = urllib.request.Request("http://%s:%d%s" % (harness.SALVOD_HTTP + (path,)), method=method, data=data)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            text, st = r.read(), r.status
    except urllib.error.HTTPError as e:
        text, st = e.read(), e.code
    try:
        return st, json.loads(text)
    except ValueError:
        raise Fail("%s %s answered %d with non-JSON: %r" % (method, path, st, text[:200]))


def raw_http(method, path, body=b""):
    """A request with a path sent byte for byte (urllib would re-encode it)."""
    s = socket.create_connection(harness.SALVOD_HTTP, timeout=20)
    try:
        s.sendall(b"%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                  % (method.encode(), path, len(body)) + body)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    head, _, text = data.partition(b"\r\n\r\n")
    st = int(head.split(b" ")[1])
    if b"chunked" in head.lower():
        out, rest = b"", text
        while rest:
            size, _, rest = rest.partition(b"\r\n")
            n = int(size, 16)
            if not n:
                break
            out, rest = out + rest[:n], rest[n + 2:]
        text = out
    try:
        return st, json.loads(text)
    except ValueError:
        raise Fail("%s %r answered %d with non-JSON: %r" % (method, path, st, text[:200]))


inject = harness.http_inject


def of_type(recs, t):
    return [r for r in recs if r.get("type") == t]


def unique(recs):
    """After a kill -9 the outbox may log a record twice, as the same event_id."""
    seen, out = set(), []
    for r in recs:
        if r.get("event_id") not in seen:
            seen.add(r.get("event_id"))
            out.append(r)
    return out


def campaigns():
    st, j = api("GET", "/api/v1/campaigns")
    if st != 200:
        raise Fail("GET /api/v1/campaigns: %d %r" % (st, j))
    return {c["campaign"]: c for c in j["campaigns"]}


def queued(queue):
    st, out = api("GET", "/api/v1/queues/%s/recipients?limit=1000" % queue)
    if st != 200:
        raise Fail("listing %s: %d %r" % (queue, st, out))
    return [r["recipient"] for r in out["recipients"]]


PROBLEMS = []


def refused(what, st, j, field, codes=(400,)):
    """Collected, so that one run shows every miss; raised by problems()."""
    if st not in codes or not isinstance(j, dict) or not j.get("error") or j.get("field") != field:
        PROBLEMS.append("%s: %d %.300r, want %s naming %r" % (what, st, j, "/".join(map(str, codes)), field))


def problems():
    if PROBLEMS:
        msg = "\n  ".join(PROBLEMS)
        del PROBLEMS[:]
        raise Fail("%d refusals wrong:\n  %s" % (len(msg.split("\n  ")), msg))


def held_env(env, doms=("held.test",)):
    env.dns(mx=dict((d, [(10, "mx.sink.test")]) for d in doms) | {"senders.test": [(10, "mx.sink.test")]},
            a={"mx.sink.test": "127.0.0.2"}, check=[(doms[0], "MX")])
    env.salvo_sink("sink", "127.0.0.2:25")


def test_input(env):
    held_env(env)
    d = env.salvod_daemon(default_domain={"retry-after": "1h"})
    d.start()
    if api("POST", "/api/v1/queues/held.test/pause")[0] != 200:
        raise Fail("pause held.test")
    rcpts = ["x%d@held.test" % i for i in range(5)]
    inject(rcpts, campaign="c1")
    wait_until(lambda: len(queued("held.test")) == 5, 10, what="5 recipients queued")
    before = campaigns()

    # ---- delete ----
    bad_json = [b"", b"not json", b"[1]", b'"campaign"', b"null", b"42", b'{"campaign":"c1"',
                b'{"campaign":"c1","campaign":"c1"}', b'{"campaign":"\xff\xfe"}', b'{"campaign":"c1"}x']
    for raw in bad_json:
        st, j = api("POST", "/api/v1/delete", raw=raw)
        refused("delete with body %r" % raw, st, j, "body")
    cases = [({"campaign": "c\u0000x"}, "campaign"),
             ({"sender": "a\u0000@b.test"}, "sender"),
             ({"recipient": "x0@held.test\r\nX: y"}, "recipient"),
             ({"campaign": "c1", "queue": "held.test\x7f"}, "queue"),
             ({"sender": "s" * (1 << 20) + "@senders.test"}, "sender"),
             ({"campaign": "c1", "dsn": "yes"}, "dsn"),
             ({"campaign": "c1", "dsn": 1}, "dsn"),
             ({"campaign": "c1", "dsn": None}, "dsn"),
             ({"older_than": 0}, "older_than"),
             ({"older_than": -5}, "older_than"),
             ({"older_than": 1.5}, "older_than"),
             ({"older_than": True}, "older_than"),
             ({"older_than": 315360001}, "older_than"),
             ({"older_than": "-1h"}, "older_than"),
             ({"older_than": "2x"}, "older_than"),
             ({"older_than": "1.5h"}, "older_than"),
             ({"older_than": "1d1d"}, "older_than"),
             ({"older_than": " 1h"}, "older_than"),
             ({"older_than": "99999999999h"}, "older_than"),
             ({"older_than": "99999999999999999999h"}, "older_than"),
             ({"older_than": ""}, "older_than"),
             ({"older_than": "0"}, "older_than"),
             ({"older_than": "0s", "campaign": "c1"}, "older_than"),
             ({"campaign": {"eq": "c1"}}, "campaign"),
             ({"campaign": "c1", "Campaign": "c1"}, "Campaign"),
             ({"campaign": "c1", "filter": {}}, "filter"),
             ({}, "filter"),
             ({"dsn": False}, "filter")]
    for body, field in cases:
        st, j = api("POST", "/api/v1/delete", body)
        refused("delete %.80r" % (body,), st, j, field)
    problems()
    st, j = api("POST", "/api/v1/delete", {"older_than": "1h30m"})
    if st != 200 or j.get("deleted") != 0:
        raise Fail("delete older_than 1h30m (nothing that old): %d %r" % (st, j))

    # salvoctl: a filter it cannot send must not be dropped (that would widen the delete)
    ctl = [harness.SALVOCTL, "--api", "http://%s:%d" % harness.SALVOD_HTTP, "delete"]
    for args in ([b"--queue", b"held.test", b"--campaign", b"\xff"], [b"--queue=held.test", b"--sender=a\xfe@b"],
                 [b"--queue", b"held.test", b"--queue", b"other.test"], [b"--queue", b"held.test", b"--campaign"]):
        p = subprocess.run(ctl + args, capture_output=True, timeout=30)
        if p.returncode == 0:
            raise Fail("salvoctl delete %r: exit 0 %r" % (args, p.stdout))
    if len(queued("held.test")) != 5:
        raise Fail("a refused salvoctl delete deleted mail: %d left" % len(queued("held.test")))

    # salvoctl: an id too long to be one is refused before it is encoded (and cut)
    for verb in ("pause", "resume"):
        p = subprocess.run([harness.SALVOCTL, "--api", "http://%s:%d" % harness.SALVOD_HTTP, verb, "--campaign",
                            "\u00e9" * 150], capture_output=True, timeout=30)
        if p.returncode == 0:
            raise Fail("salvoctl %s --campaign with a 300-byte id: exit 0 %r" % (verb, p.stdout))

    # ---- campaigns ----
    for path, field in ((b"/api/v1/campaigns/%ff%fe/pause", "id"),
                        (b"/api/v1/campaigns/a%ffb/resume", "id"),
                        (b"/api/v1/campaigns/%c3/pause", "id"),
                        # libmicrohttpd decodes %00 and the path ends there: the
                        # action is then missing (and nothing is paused)
                        (b"/api/v1/campaigns/a%00b/pause", "action"),
                        (b"/api/v1/campaigns/%00/pause", "action"),
                        (b"/api/v1/campaigns/a%0ab/pause", "id"),
                        (b"/api/v1/campaigns/%ff", "id")):
        method = "GET" if not path.endswith((b"pause", b"resume")) else "POST"
        st, j = raw_http(method, path)
        refused("%s %s" % (method, path.decode()), st, j, field, codes=(400, 404))
    for body, field in ((b'{"force":true}', "force"), (b"[]", "body"), (b"null", "body"), (b'"x"', "body"),
                        (b'{"x":"\xff"}', "body"), (b"{" * 100000, "body")):
        st, j = api("POST", "/api/v1/campaigns/c1/pause", raw=body)
        refused("pause with %r" % body[:20], st, j, field)
    st, j = api("POST", "/api/v1/campaigns/never-paused/resume")
    if st != 200 or j.get("paused") is not False:
        raise Fail("resume of a campaign never paused: %d %r" % (st, j))
    problems()
    after = campaigns()
    if after != before:
        raise Fail("refused campaign requests changed the campaigns: %r -> %r" % (sorted(before), sorted(after)))
    # an encoded '/' and UTF-8 are part of an id
    for enc, name in ((b"a%2Fb", "a/b"), (b"%C3%A9t%C3%A9", "\u00e9t\u00e9")):
        st, j = raw_http("POST", b"/api/v1/campaigns/" + enc + b"/pause")
        if st != 200 or j.get("campaign") != name or j.get("paused") is not True:
            raise Fail("pause of %r: %d %r" % (enc, st, j))
        st, j = raw_http("GET", b"/api/v1/campaigns/" + enc)
        if st != 200 or j.get("campaign") != name or j.get("paused") is not True:
            raise Fail("GET of %r: %d %r" % (enc, st, j))

    # ---- inspection ----
    for q in ("limit=0", "limit=-1", "limit=1000000", "limit=x", "limit=", "limit=1e3", "limit=%2B5", "limit=%205"):
        st, j = api("GET", "/api/v1/queues/held.test/recipients?" + q)
        refused("recipients?%s" % q, st, j, "limit")
    for cur in ("x", "", "0000000000000000", "0000000000000000.", "000000000000000g.1", "0000000000000000.-1",
                "0000000000000000.99999999999", "0000000000000000.1.2", "0000000000000000.+1",
                "00000000000000000.1"):
        st, j = api("GET", "/api/v1/queues/held.test/recipients?after=" + cur)
        refused("recipients?after=%s" % cur, st, j, "after")
    for q, field in (("limit=%2B5", "limit"), ("limit=%205", "limit"), ("limit=0", "limit"), ("limit=10001", "limit"),
                     ("limit=-1", "limit"), ("after=%2B1", "after"), ("after=%201", "after"), ("after=4294967296", "after"),
                     ("after=-0", "after")):
        st, j = api("GET", "/api/v1/campaigns?" + q)
        refused("campaigns?%s" % q, st, j, field)
    st, j = api("GET", "/api/v1/queues/held.test/recipients?after=ffffffffffffffff.4294967295")
    if st != 200 or j["recipients"] or j["next"] is not None:
        raise Fail("a cursor past the end: %d %r" % (st, j))
    for mid in ("xyz", "0123456789abcdeg", "0123456789abcdef0", "0123456789abcde", "%00", "-123456789abcdef"):
        st, j = api("GET", "/api/v1/messages/" + mid)
        refused("message %s" % mid, st, j, "id")
    st, j = api("GET", "/api/v1/messages/0000000000000001")
    refused("an unknown message", st, j, "id", codes=(404,))
    mid = api("GET", "/api/v1/queues/held.test/recipients?limit=1")[1]["recipients"][0]["id"]
    st, j = api("GET", "/api/v1/messages/" + mid.upper())
    if st != 200 or j.get("id") != mid:
        raise Fail("message %s in upper case: %d %r" % (mid, st, j))
    for arg in ("a b", "0123?limit=1", "../status"):
        p = subprocess.run([harness.SALVOCTL, "--api", "http://%s:%d" % harness.SALVOD_HTTP, "message", arg],
                           capture_output=True, text=True, timeout=30)
        if p.returncode != 1 or "id" not in p.stderr:
            raise Fail("salvoctl message %r: %d %r %r" % (arg, p.returncode, p.stdout, p.stderr))

    problems()

    # ---- queue actions take the same bodies as campaign actions ----
    for verb, body, field in (("resume", b'{"force":true}', "force"), ("resume", b"[]", "body"),
                              ("resume", b"not json", "body"), ("retry", b'{"now":1}', "now"),
                              ("mode", b'{"mode":"normal","x":1}', "x"), ("mode", b"{bad", "body"),
                              ("mode", b'{"mode":"turbo"}', "mode"), ("mode", b"", "mode")):
        st, j = api("POST", "/api/v1/queues/held.test/" + verb, raw=body)
        refused("queue %s with %r" % (verb, body), st, j, field)
    st, j = api("POST", "/api/v1/queues/held.test/frob")
    refused("queue action frob", st, j, "action", codes=(404,))
    problems()
    wait_until(lambda: api("GET", "/api/v1/queues/held.test")[0] == 200, 5, what="held.test in the queue list")
    st, j = api("GET", "/api/v1/queues/held.test")
    if st != 200 or j.get("mode") != "paused":
        raise Fail("a refused resume changed the queue: %d %r" % (st, j))

    # ---- wrong methods name the method ----
    for method, path in (("GET", "/api/v1/delete"), ("PUT", "/api/v1/campaigns/c1/pause"),
                         ("POST", "/api/v1/campaigns"), ("POST", "/api/v1/messages/0000000000000001"),
                         ("PUT", "/api/v1/queues/held.test/recipients"), ("DELETE", "/api/v1/queues/held.test/pause")):
        st, j = api(method, path, raw=b"" if method != "GET" else None)
        refused("%s %s" % (method, path), st, j, "method", codes=(405,))
    problems()

    # ---- a queue that does not exist ----
    st, j = api("POST", "/api/v1/queues/ghost.test/pause")
    if st != 200:
        raise Fail("pause of a queue with no mail: %d %r" % (st, j))
    st, j = api("GET", "/api/v1/queues")
    if any(q["domain"] == "ghost.test" for q in j["queues"]):
        raise Fail("a pause made a phantom queue: %r" % [q for q in j["queues"] if q["domain"] == "ghost.test"])
    st, j = api("GET", "/api/v1/queues/ghost.test")
    if st != 404 or j.get("field") != "domain":
        raise Fail("GET of the paused queue that has no mail: %d %r" % (st, j))
    st, j = raw_http("POST", b"/api/v1/queues/gh%00ost/pause")
    if st < 400 or not j.get("error"):
        raise Fail("pause of gh%%00ost: %d %r" % (st, j))

    # nothing changed
    if sorted(queued("held.test")) != sorted(rcpts) or of_type(d.acct(), "cancelled"):
        raise Fail("a refused request changed the queue: %r" % queued("held.test"))
    d.check_alive()
    log("%d bad delete bodies, %d bad filters, bad campaign ids/bodies, bad paging refused naming the field"
        % (len(bad_json), len(cases)))


def test_paging(env):
    held_env(env)
    d = env.salvod_daemon()
    d.start()
    api("POST", "/api/v1/queues/held.test/pause")
    rcpts = ["p%03d@held.test" % i for i in range(300)]
    for i in range(0, 300, 100):
        inject(rcpts[i:i + 100], campaign="pg")
    wait_until(lambda: len(queued("held.test")) == 300, 10, what="300 queued")
    seen, deleted, after, pages = [], set(), None, 0
    while True:
        st, j = api("GET", "/api/v1/queues/held.test/recipients?limit=40" + ("&after=" + after if after else ""))
        if st != 200:
            raise Fail("page %d: %d %r" % (pages, st, j))
        got = [r["recipient"] for r in j["recipients"]]
        if set(got) & deleted:
            raise Fail("page %d shows deleted recipients: %r" % (pages, sorted(set(got) & deleted)))
        seen += got
        pages += 1
        after = j["next"]
        if after is None or pages > 20:
            break
        # the cursor's own recipient, and two of those still to come
        later = [r for r in rcpts if r not in seen and r not in deleted]
        for r in [got[-1]] + later[5:7]:
            st, k = api("POST", "/api/v1/delete", {"recipient": r})
            if st != 200 or k["deleted"] != 1:
                raise Fail("delete of %s: %d %r" % (r, st, k))
            deleted.add(r)
    if after is not None:
        raise Fail("paging did not end in %d pages" % pages)
    dup = {r for r in seen if seen.count(r) > 1}
    stayed = set(rcpts) - deleted
    if dup or not stayed <= set(seen):
        raise Fail("paging under deletes: duplicates %r, missed %r" % (sorted(dup)[:5], sorted(stayed - set(seen))[:5]))
    log("300 recipients in %d pages of 40 with %d deleted between pages: none twice, none missed"
        % (pages, len(deleted)))


def test_queue_pause(env):
    held_env(env, doms=("qp.test", "qk.test"))
    os.environ["SALVO_SPOOL_FAIL_COMMITS"] = "1:ENOSPC@0"
    try:
        d = env.salvod_daemon()
        d.start()
    finally:
        del os.environ["SALVO_SPOOL_FAIL_COMMITS"]
    st, j = api("POST", "/api/v1/queues/qp.test/pause")
    if st != 503 or "not stored" not in j.get("error", ""):
        raise Fail("a queue pause that could not be stored: %d %r (want 503 saying so)" % (st, j))
    # the next pause is stored before its answer: kill -9 at once after it
    for i in range(3):
        st, j = api("POST", "/api/v1/queues/qk%d.test/pause" % i)
        if st != 200:
            raise Fail("pause qk%d.test: %d %r" % (i, st, j))
        d.kill9()
        d.start()
        inject(["k%d@qk%d.test" % (i, i)])
        time.sleep(1.0)
        st, j = api("GET", "/api/v1/queues/qk%d.test" % i)
        if st != 200 or j.get("mode") != "paused" or j.get("delivered"):
            raise Fail("qk%d.test after kill -9 right after the pause's answer: %d %r" % (i, st, j))
    log("an unstored queue pause answers 503; a stored one survives kill -9 at once")


def test_delete_kill(env):
    env.dns(mx={"fast.test": [(10, "mx.sink.test")]}, a={"mx.sink.test": "127.0.0.2"}, check=[("fast.test", "MX")])
    sink = env.salvo_sink("fast", "127.0.0.2:25", extra_args=["--fault", "at=data,delay=30"])
    d = env.salvod_daemon(default_domain={"retry-after": "1s", "max-smtp-out": "8"})
    d.start()
    rcpts = ["f%03d@fast.test" % i for i in range(400)]
    for i in range(0, 400, 100):
        inject(rcpts[i:i + 100], campaign="blast")
    harness.wait_for_records(env, lambda r: len(of_type(r, "delivery")) >= 40, 30 * harness.SLOW,
                             what="the first deliveries")
    st, out = api("POST", "/api/v1/delete", {"campaign": "blast"})
    d.kill9()
    if st != 200:
        raise Fail("delete mid-stream: %d %r" % (st, out))
    d.start()

    def settled():
        recs = d.acct()
        fin = {r["recipient"] for r in recs if r.get("type") in ("delivery", "cancelled")}
        return fin >= set(rcpts)
    wait_until(settled, 30 * harness.SLOW, what="every recipient delivered or cancelled")
    time.sleep(1.5)
    recs = unique(d.acct())
    delivered = [r["recipient"] for r in of_type(recs, "delivery")]
    cancelled = [r["recipient"] for r in of_type(recs, "cancelled")]
    if set(delivered) & set(cancelled):
        raise Fail("both delivered and cancelled: %r" % sorted(set(delivered) & set(cancelled))[:5])
    if len(cancelled) != len(set(cancelled)):
        raise Fail("a recipient cancelled twice")
    if set(delivered) | set(cancelled) != set(rcpts):
        raise Fail("neither delivered nor cancelled: %r" % sorted(set(rcpts) - set(delivered) - set(cancelled))[:5])
    got = set()
    for a in sink.arrivals():
        got |= {r.lower() for r in a.rcpt_to}
    # a transaction the receiver took but salvod had not recorded when killed: at
    # the restart it is cancelled (never sent again); only one in flight can be
    both = got & set(cancelled)
    if len(both) > out["in_flight"]:
        raise Fail("the receiver got %d cancelled recipients, %d were in flight: %r"
                   % (len(both), out["in_flight"], sorted(both)[:5]))
    late = len(cancelled) - out["deleted"]
    if late < 0 or late > out["in_flight"]:
        raise Fail("%d cancelled for deleted=%d in_flight=%d" % (len(cancelled), out["deleted"], out["in_flight"]))
    c = campaigns().get("blast")
    want = {"queued": 0, "deferred": 0, "delivered": len(set(delivered)), "received": 400}
    if not c or any(c.get(k) != v for k, v in want.items()):
        raise Fail("campaign counters after the restart: %r, want %r" % (c, want))
    st, again = api("POST", "/api/v1/delete", {"campaign": "blast"})
    if st != 200 or again.get("deleted") != 0:
        raise Fail("a second delete: %d %r" % (st, again))
    log("delete + kill -9 at full speed: %d delivered, %d cancelled (deleted %d, in flight %d, %d of them had"
        " reached the receiver); counters agree" % (len(delivered), len(cancelled), out["deleted"], out["in_flight"],
                                                   len(both)))


def test_delete_reload(env):
    env.dns(mx={"fast.test": [(10, "mx.sink.test")]}, a={"mx.sink.test": "127.0.0.2"}, check=[("fast.test", "MX")])
    sink = env.salvo_sink("fast", "127.0.0.2:25", extra_args=["--fault", "at=data,delay=20",
                                                               "--fault", "at=data,percent=20,reply=451 4.7.1 later"])
    d = env.salvod_daemon(default_domain={"retry-after": "1s", "max-smtp-out": "8"})
    d.start()
    rcpts = ["g%03d@fast.test" % i for i in range(400)]
    for i in range(0, 400, 100):
        inject(rcpts[i:i + 100], campaign="blast2")
    harness.wait_for_records(env, lambda r: len(of_type(r, "delivery")) >= 40, 30 * harness.SLOW,
                             what="the first deliveries")
    with open(d.config) as f:
        text = f.read()
    reloads = []

    def reload_loop():
        for i in range(4):
            with open(d.config, "w") as f:
                f.write(text.replace("max-smtp-out             8", "max-smtp-out             %d" % (2 + 3 * (i % 2))))
            reloads.append(api("POST", "/api/v1/reload")[0])
    t = threading.Thread(target=reload_loop)
    t.start()
    st, out = api("POST", "/api/v1/delete", {"campaign": "blast2"})
    t.join()
    if st != 200 or reloads != [200] * 4:
        raise Fail("delete during reloads: %d %r; reloads %r" % (st, out, reloads))

    def settled():
        recs = d.acct()
        fin = {r["recipient"] for r in recs if r.get("type") in ("delivery", "cancelled")}
        return fin >= set(rcpts)
    wait_until(settled, 30 * harness.SLOW, what="every recipient delivered or cancelled")
    time.sleep(2.0)   # past a retry: nothing more may come
    recs = d.acct()
    delivered = [r["recipient"] for r in of_type(recs, "delivery")]
    cancelled = [r["recipient"] for r in of_type(recs, "cancelled")]
    got = set()
    for a in sink.arrivals():
        got |= {r.lower() for r in a.rcpt_to}
    if set(delivered) & set(cancelled) or len(cancelled) != len(set(cancelled)) or got & set(cancelled):
        raise Fail("delivered and cancelled %r, cancelled twice %d, cancelled at the receiver %r"
                   % (sorted(set(delivered) & set(cancelled))[:5], len(cancelled) - len(set(cancelled)),
                      sorted(got & set(cancelled))[:5]))
    late = len(cancelled) - out["deleted"]
    if late < 0 or late > out["in_flight"]:
        raise Fail("%d cancelled for deleted=%d in_flight=%d" % (len(cancelled), out["deleted"], out["in_flight"]))
    c = campaigns()["blast2"]
    if c["queued"] != 0 or c["delivered"] != len(delivered):
        raise Fail("campaign blast2: %r, %d delivered records" % (c, len(delivered)))
    log("delete during 4 reloads at full speed: %d delivered, %d cancelled (deleted %d, in flight %d)"
        % (len(delivered), len(cancelled), out["deleted"], out["in_flight"]))


def test_dsn_bounce(env):
    env.dns(mx={"held.test": [(10, "mx.sink.test")], "senders.test": [(10, "mx.rej.test")]},
            a={"mx.sink.test": "127.0.0.2", "mx.rej.test": "127.0.0.3"}, check=[("held.test", "MX")])
    env.salvo_sink("held", "127.0.0.2:25")
    rej = env.salvo_sink("rej", "127.0.0.3:25", reject=(".",))
    d = env.salvod_daemon()
    d.start()
    api("POST", "/api/v1/queues/held.test/pause")
    rcpts = ["b%d@held.test" % i for i in range(6)]
    inject(rcpts, campaign="bb")
    wait_until(lambda: len(queued("held.test")) == 6, 10, what="6 queued")
    st, out = api("POST", "/api/v1/delete", {"campaign": "bb", "dsn": True})
    if st != 200 or out.get("deleted") != 6:
        raise Fail("delete with dsn: %d %r" % (st, out))
    harness.wait_for_records(env, lambda r: any(x.get("type") == "bounce" and x.get("recipient") == SENDER
                                                for x in r), 20 * harness.SLOW, what="the DSN bouncing")
    time.sleep(2.0)
    recs = d.acct()
    cancelled = [r["recipient"] for r in of_type(recs, "cancelled")]
    if sorted(cancelled) != sorted(rcpts):
        raise Fail("cancelled records: %r" % cancelled)
    to_sender = [r for r in recs if r.get("recipient") == SENDER and r.get("type") in ("bounce", "delivery")]
    tries = len(rej.events()) if hasattr(rej, "events") else 0
    others = [r for r in recs if r.get("type") in ("bounce", "delivery", "transient")
              and r.get("recipient") not in (SENDER,)]
    if len(to_sender) != len({r.get("id") for r in to_sender}) or others:
        raise Fail("the bounced DSN made more mail: to sender %r, others %r" % (to_sender, others[:3]))
    if harness.mdb_entries(d.spool, "rcpt") != 0:
        raise Fail("the spool still holds %d recipients" % harness.mdb_entries(d.spool, "rcpt"))
    log("delete with dsn to a bouncing sender: 6 cancelled, %d DSN bounced, no loop (%d sink events)"
        % (len(to_sender), tries))


def test_double(env):
    held_env(env)
    d = env.salvod_daemon()
    d.start()
    api("POST", "/api/v1/queues/held.test/pause")
    rcpts = ["d%03d@held.test" % i for i in range(500)]
    for i in range(0, 500, 100):
        inject(rcpts[i:i + 100], campaign="dd")
    wait_until(lambda: len(queued("held.test")) == 500, 10, what="500 queued")
    bodies = [{"campaign": "dd"}, {"sender": SENDER}, {"queue": "held.test"}, {"campaign": "dd", "older_than": "1ms"},
              {"campaign": "dd"}, {"sender": SENDER.upper()}]
    outs = [None] * len(bodies)

    def one(i):
        outs[i] = api("POST", "/api/v1/delete", bodies[i])
    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if any(st != 200 or o.get("in_flight") for st, o in outs):
        raise Fail("overlapping deletes: %r" % outs)
    total = sum(o["deleted"] for st, o in outs)
    time.sleep(0.5)
    cancelled = [r["recipient"] for r in of_type(d.acct(), "cancelled")]
    if total != 500 or sorted(cancelled) != sorted(rcpts) or queued("held.test"):
        raise Fail("overlapping deletes answered %r (sum %d), %d cancelled records (%d distinct)"
                   % ([o["deleted"] for st, o in outs], total, len(cancelled), len(set(cancelled))))
    c = campaigns()["dd"]
    if c["queued"] != 0 or c["received"] != 500:
        raise Fail("campaign dd after the deletes: %r" % c)
    log("6 overlapping deletes of 500: answered %r, 500 cancelled once each" % [o["deleted"] for st, o in outs])


def test_counters(env):
    env.dns(mx={"cnt.test": [(10, "mx.sink.test")], "senders.test": [(10, "mx.sink.test")]},
            a={"mx.sink.test": "127.0.0.2"}, check=[("cnt.test", "MX")])
    env.salvo_sink("sink", "127.0.0.2:25", reject=("^c0[0-4]",), defer_first=("^c1[0-4]",),
                   extra_args=["--fault", "at=data,delay=20"])
    d = env.salvod_daemon(default_domain={"retry-after": "2s", "max-smtp-out": "4"})
    d.start()
    rcpts = ["c%03d@cnt.test" % i for i in range(200)]
    for i in range(0, 200, 50):
        inject(rcpts[i:i + 50], campaign="cc")
    harness.wait_for_records(env, lambda r: len(of_type(r, "delivery")) >= 30, 30 * harness.SLOW,
                             what="30 deliveries")
    d.kill9()
    d.start()

    def fin():
        recs = [r for r in unique(d.acct()) if r.get("campaign") == "cc"]
        return {r["recipient"] for r in recs if r.get("type") in ("delivery", "bounce")}
    wait_until(lambda: fin() >= set(rcpts), 40 * harness.SLOW, what="every cc recipient delivered or bounced")
    time.sleep(1.0)
    for restart in ("live", "kill -9", "SIGTERM"):
        if restart == "kill -9":
            d.kill9()
            d.start()
        elif restart == "SIGTERM":
            d.stop()
            d.start()
        recs = [r for r in unique(d.acct()) if r.get("campaign") == "cc"]
        dl = {r["recipient"] for r in of_type(recs, "delivery")}
        bo = {r["recipient"] for r in of_type(recs, "bounce")}
        tr = {r["recipient"] for r in of_type(recs, "transient")}
        if dl & bo or len(dl) != 150 or len(bo) != 50 or not tr:
            raise Fail("records: %d delivered, %d bounced (%d both), %d deferred once" % (len(dl), len(bo),
                                                                                        len(dl & bo), len(tr)))
        c = campaigns().get("cc")
        want = {"received": 200, "queued": 0, "deferred": 0, "delivered": len(dl), "bounced": len(bo), "expired": 0}
        if not c or any(c.get(k) != v for k, v in want.items()):
            raise Fail("campaign cc (%s): %r, the log says %r" % (restart, c, want))
    log("campaign counters agree with the log (150 delivered, 50 bounced, some deferred first) live, after"
        " kill -9 and after SIGTERM")


def test_pause_kill(env):
    env.dns(mx={"pk.test": [(10, "mx.sink.test")]}, a={"mx.sink.test": "127.0.0.2"}, check=[("pk.test", "MX")])
    sink = env.salvo_sink("sink", "127.0.0.2:25")
    d = env.salvod_daemon(default_domain={"retry-after": "1s"})
    d.start()
    st, j = api("POST", "/api/v1/campaigns/P/pause")          # before any of its mail exists
    if st != 200 or not j.get("paused"):
        raise Fail("pause of P before its mail: %d %r" % (st, j))
    p_rcpts = ["p%02d@pk.test" % i for i in range(50)]
    q_rcpts = ["q%02d@pk.test" % i for i in range(50)]
    inject(p_rcpts, campaign="P")
    inject(q_rcpts, campaign="Q")

    def arrivals():
        got = {}
        for a in sink.arrivals():
            for r in a.rcpt_to:
                got[r.lower()] = got.get(r.lower(), 0) + 1
        return got
    # delivered and recorded (so the kill -9 cannot send one again)
    harness.wait_for_records(env, lambda recs: len({r["recipient"] for r in of_type(recs, "delivery")}) >= 50,
                             20 * harness.SLOW, what="Q delivered")
    d.kill9()
    d.start()
    time.sleep(1.5)
    got = arrivals()
    if any(r in got for r in p_rcpts) or campaigns().get("P", {}).get("paused") is not True:
        raise Fail("P after kill -9: %d arrived, %r" % (sum(r in got for r in p_rcpts), campaigns().get("P")))
    if any(r.get("type") in ("delivery", "transient") and r.get("campaign") == "P" for r in d.acct()):
        raise Fail("a paused campaign's recipient was attempted")
    st, j = api("POST", "/api/v1/campaigns/P/resume")
    if st != 200 or j.get("paused") is not False:
        raise Fail("resume of P: %d %r" % (st, j))
    wait_until(lambda: all(r in arrivals() for r in p_rcpts), 20 * harness.SLOW, what="P delivered")
    time.sleep(1.0)
    got = arrivals()
    twice = [r for r in p_rcpts + q_rcpts if got.get(r) != 1]
    if twice:
        raise Fail("not delivered exactly once: %r" % [(r, got.get(r)) for r in twice[:5]])
    c = campaigns()
    if c["P"]["delivered"] != 50 or c["P"]["queued"] != 0 or c["Q"]["delivered"] != 50:
        raise Fail("counters: %r" % c)
    log("P paused before its mail, kept across kill -9 while Q flowed, then delivered exactly once")


def test_fuzz(env):
    """2,000 random requests (seeded) at the control endpoints from 8 threads: every
    answer is JSON, every 4xx names a field, salvod stays up and the held mail of a
    campaign no request can name stays queued."""
    import random
    held_env(env)
    d = env.salvod_daemon()
    d.start()
    api("POST", "/api/v1/queues/held.test/pause")
    keep = ["k%02d@held.test" % i for i in range(20)]
    inject(keep, campaign="keep", sender="keeper@senders.test")
    rng = random.Random(19)
    keys = ["queue", "campaign", "sender", "recipient", "older_than", "dsn", "x", "", "Queue"]
    vals = [None, True, False, 0, -1, 1.5, 2 ** 70, "", "\u0000", "zz", "\x7f", "1h", "0", "-1h", "9" * 30 + "h",
            "\ud800", "\u00e9", "a" * 600, [], {}, ["zz"], {"a": 1}]
    paths = ["/api/v1/delete", "/api/v1/campaigns/%s/pause", "/api/v1/campaigns/%s/resume", "/api/v1/campaigns/%s",
             "/api/v1/queues/held.test/recipients?limit=%s&after=%s", "/api/v1/messages/%s", "/api/v1/campaigns?after=%s"]
    reqs = []
    for _ in range(2000):
        path = rng.choice(paths)
        junk = "".join(rng.choice("zZ%09/.?&=+-_ \u00e9\x01") for _ in range(rng.randint(0, 12)))
        enc = urllib.request.quote(junk.encode("utf-8", "surrogatepass"), safe="")
        if rng.random() < 0.3:
            enc = "%" + "".join(rng.choice("0123456789abcdefgXYZ") for _ in range(2)) + enc
        path = path.replace("%s", enc) if "%s" in path else path
        if path == "/api/v1/delete":
            body = {}
            for _ in range(rng.randint(0, 4)):
                body[rng.choice(keys)] = rng.choice(vals)
            if "campaign" not in body or not isinstance(body.get("campaign"), str):
                body["campaign"] = "zz-no-such"          # never the held mail's
            raw = json.dumps(body).encode() if rng.random() < 0.8 else bytes(rng.randrange(256) for _ in range(40))
            reqs.append(("POST", path, raw))
        else:
            method = rng.choice(["GET", "POST", "PUT"])
            raw = rng.choice([b"", b"{}", b'{"x":1}', b"[", b"\xff"]) if method != "GET" else None
            reqs.append((method, path, raw))
    bad = []
    counts = {}

    def worker(part):
        for method, path, raw in part:
            try:
                st, j = api(method, path, raw=raw, timeout=30)
            except Fail as e:
                bad.append(str(e))
                continue
            except (urllib.error.URLError, OSError, ValueError) as e:
                # a path urllib itself refuses to send is no test of salvod
                if "URL can't contain control characters" in str(e) or isinstance(e, ValueError):
                    continue
                bad.append("%s %s: %r" % (method, path, e))
                continue
            counts[st // 100] = counts.get(st // 100, 0) + 1
            if 400 <= st < 500 and (not j.get("error") or (st != 404 and not isinstance(j.get("field"), str))):
                bad.append("%s %s %r: %d %r" % (method, path, raw and raw[:40], st, j))
            if st >= 500:
                bad.append("%s %s %r: %d %r" % (method, path, raw and raw[:40], st, j))
    threads = [threading.Thread(target=worker, args=(reqs[i::8],)) for i in range(8)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    d.check_alive()
    if bad:
        raise Fail("%d bad answers:\n  %s" % (len(bad), "\n  ".join(bad[:15])))
    if sorted(queued("held.test")) != sorted(keep) or of_type(d.acct(), "cancelled"):
        raise Fail("the fuzz changed the held mail")
    log("2000 random control requests in %.1fs: answers by class %r, all JSON naming the field"
        % (time.monotonic() - t0, counts))


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0



def page_all(path, key, field, max_pages=20):
    """Every item's field through a paged GET (path has its limit; `next` is the
    cursor): (values, pages, slowest page in seconds)."""
    out, after, pages, worst = [], None, 0, 0.0
    while True:
        t1 = time.monotonic()
        st, j = api("GET", path + ("&after=" + after if after else ""))
        worst = max(worst, time.monotonic() - t1)
        if st != 200:
            raise Fail("%s page %d: %d %r" % (key, pages, st, j))
        out += [x[field] for x in j[key]]
        pages += 1
        after = j["next"]
        if after is None or pages > max_pages:
            return out, pages, worst

def test_many(env):
    dom = "many.test"
    env.dns(mx={dom: [(10, "mx.sink.test")]}, a={"mx.sink.test": "127.0.0.2"}, check=[(dom, "MX")])
    env.salvo_sink("sink", "127.0.0.2:25")
    d = env.salvod_daemon(sources={"127.0.0.1": {"always-allow-relaying": "yes", "process-x-job": "yes"}})
    d.start()
    api("POST", "/api/v1/queues/%s/pause" % dom)
    n = 10000
    rss0 = rss_kb(d.proc.pid)
    msgs = []
    for i in range(n):
        job, rcpt = "job%05d" % i, "r%05d@%s" % (i, dom)
        msgs.append(Injected(job, SENDER, [rcpt], ("From: <%s>\r\nTo: <%s>\r\nSubject: x\r\nX-Job: %s\r\n\r\nhi\r\n"
                                                   % (SENDER, rcpt, job)).encode()))
    t0 = time.monotonic()
    harness.inject_all(msgs, threads=4, per_conn=500, timeout=120)
    t_inj = time.monotonic() - t0
    wait_until(lambda: api("GET", "/api/v1/campaigns?limit=1&after=%d" % (n - 1))[1]["campaigns"], 20,
               what="%d campaigns" % n)
    t0 = time.monotonic()
    seen, pages, worst = page_all("/api/v1/campaigns?limit=1000", "campaigns", "campaign")
    t_all = time.monotonic() - t0
    if len(seen) != n or len(set(seen)) != n:
        raise Fail("%d campaigns paged: %d shown, %d distinct" % (n, len(seen), len(set(seen))))
    t1 = time.monotonic()
    st, j = api("GET", "/api/v1/campaigns")
    t_one = time.monotonic() - t1
    rss1 = rss_kb(d.proc.pid)
    # measured: +33 MB for 10,000 queued messages and campaigns; ASan's shadow about 5x that
    with open("/proc/%d/maps" % d.proc.pid) as f:
        asan = "libasan" in f.read()
    if worst > 5 * harness.SLOW or rss1 - rss0 > (600 if asan else 120) * 1024:
        raise Fail("paging %d campaigns: worst page %.2fs, RSS %d -> %d kB" % (n, worst, rss0, rss1))
    # an X-Job in UTF-8 names its campaign; one in Latin-1 names none (JSON could not)
    harness.inject_all([Injected("u8", SENDER, ["u8@" + dom], ("From: <%s>\r\nSubject: x\r\nX-Job: caf\u00e9\r\n\r\nhi\r\n"
                                                                % SENDER).encode("utf-8")),
                        Injected("l1", SENDER, ["l1@" + dom], ("From: <%s>\r\nSubject: x\r\nX-Job: caf\u00e9!\r\n\r\nhi\r\n"
                                                                % SENDER).encode("latin-1"))], threads=1)
    wait_until(lambda: api("GET", "/api/v1/campaigns?after=%d" % n)[1]["campaigns"], 10, what="the UTF-8 campaign")
    extra = [c["campaign"] for c in api("GET", "/api/v1/campaigns?after=%d" % n)[1]["campaigns"]]
    if extra != ["caf\u00e9"]:
        raise Fail("campaigns from a UTF-8 and a Latin-1 X-Job: %r, want only the UTF-8 one" % extra)
    n_rc = n + 2

    # the queue's 10,000 recipients, paged
    t1 = time.monotonic()
    shown, rpages, _ = page_all("/api/v1/queues/%s/recipients?limit=1000" % dom, "recipients", "recipient")
    t_rc = time.monotonic() - t1
    if len(shown) != n_rc or len(set(shown)) != n_rc:
        raise Fail("%d recipients paged: %d shown, %d distinct" % (n_rc, len(shown), len(set(shown))))
    # and all of them deleted at once
    t1 = time.monotonic()
    st, k = api("POST", "/api/v1/delete", {"queue": dom}, timeout=120)
    t_del = time.monotonic() - t1
    if st != 200 or k.get("deleted") != n_rc or k.get("in_flight"):
        raise Fail("delete of the queue's %d: %d %r" % (n_rc, st, k))
    harness.wait_for_records(env, lambda r: len(of_type(r, "cancelled")) >= n_rc, 30 * harness.SLOW,
                             what="%d cancelled records" % n_rc)
    if queued(dom) or len({r["recipient"] for r in of_type(unique(d.acct()), "cancelled")}) != n_rc:
        raise Fail("after deleting the queue's %d" % n_rc)
    log("%d campaigns injected in %.1fs; %d pages of 1000 in %.2fs (worst %.3fs); the default page (%d) in %.2fs;"
        " %d recipients in %d pages in %.2fs; salvod RSS %d -> %d kB; all %d deleted in %.2fs"
        % (n, t_inj, pages, t_all, worst, len(j["campaigns"]), t_one, n_rc, rpages, t_rc, rss0, rss1, n_rc, t_del))


if __name__ == "__main__":
    harness.main([test_input, test_paging, test_queue_pause, test_delete_kill, test_delete_reload, test_dsn_bounce, test_double, test_counters, test_pause_kill, test_fuzz, test_many])
