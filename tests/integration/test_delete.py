#!/usr/bin/python3
"""test_delete.py - an operator deletes queued recipients (issue 19, item 4).

  filters    mail held by a receiver that answers every RCPT with 451 (retry-after 1h,
             so each recipient waits in its shard's heap after one try). Delete by age
             (older_than), by campaign with dsn:true, by sender through `salvoctl
             delete`, a paused campaign (its recipients parked in their queue) and one
             recipient of a three-recipient message: each answers the number matching,
             and the JSON log has exactly that many `cancelled` records, for exactly
             those recipients, each carrying the filter; the CSV accounting file gets a
             "b" record each (dsnDiag "deleted by the operator: ..."); the campaigns'
             queued counts drop. dsn:true sends a DSN (Action failed, Status 5.0.0) to
             the sender's domain, one per message (naming both recipients of a two-
             recipient one). A repeated delete finds nothing. Then salvod is killed
             (-9) and restarted, and the receiver takes mail: the recipients left are
             delivered, the deleted ones never arrive, and the spool holds nothing more
  race       a delete while a campaign is being delivered (10 sessions, each waiting 2 s
             for the reply to DATA, 451 for half of the messages): no recipient is both delivered and
             cancelled, every one ends delivered or cancelled, `cancelled` records
             beyond `deleted` come only from the recipients reported in flight
  commit-faults  the delete's commit fails three times (the spool's fault hook, ENOSPC):
             it is retried until it holds; the answer counts every recipient once,
             one record and one DSN each, and a restart brings none back
  restart    a delete that matches ten recipients in flight at a slow receiver (four
             answered after 2.5 s, six after 30 s) and ten held in a paused queue; salvod
             is killed (-9) after the four fast ones are delivered and restarted: the six
             still in flight are cancelled at start (one record each, with the filter),
             the four delivered are not, none is attempted again
  concurrent a delete of 2,000 held recipients while five reloads run (POST
             /api/v1/reload), and a delete of a paused campaign (200 recipients) racing its
             resume: the first deletes all 2,000; of the campaign every recipient ends
             delivered or cancelled, never both, none twice, `cancelled` beyond `deleted`
             only from those in flight; every reload counts (generation 6); the metrics'
             salvo_deletes_total and salvo_cancelled_total agree with the records
  errors     unknown fields, wrong types, a bad duration, an empty filter and a body
             that is not a JSON object answer 400 naming the field, and delete nothing;
             `salvoctl delete` without a filter is a usage error (2), with a bad one 1
"""

import csv
import io
import json
import math
import os
import subprocess
import time
import urllib.error
import urllib.request

import harness
from harness import Fail, log, wait_until



def api(method, path, body=None, raw=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request("http://%s:%d%s" % (harness.SALVOD_HTTP + (path,)), method=method, data=data)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def salvoctl(*args):
    return subprocess.run([harness.SALVOCTL, "--api", "http://%s:%d" % harness.SALVOD_HTTP] + list(args),
                          capture_output=True, text=True, timeout=60)


inject = harness.http_inject


def of_type(recs, t):
    return [r for r in recs if r.get("type") == t]


def queued(queue):
    st, out = api("GET", "/api/v1/queues/%s/recipients?limit=1000" % queue)
    if st != 200:
        raise Fail("listing %s: %d %r" % (queue, st, out))
    return {r["recipient"] for r in out["recipients"]}


def delete(body, want):
    st, out = api("POST", "/api/v1/delete", body)
    if st != 200 or out.get("deleted") != want or out.get("in_flight") != 0:
        raise Fail("delete %r: want deleted=%d in_flight=0, got %d %r" % (body, want, st, out))
    return out


def check_cancelled(spool, rcpts, filt):
    """Exactly these recipients have a cancelled record with this filter (compact JSON).
    The records are flushed after the commit's answer: wait for them."""
    def records():
        return [r for r in of_type(harness.read_acct(spool), "cancelled") if json.loads(r.get("filter", "{}")) == filt]
    wait_until(lambda: len(records()) >= len(rcpts), 5 * harness.SLOW, what="%d cancelled records" % len(rcpts))
    time.sleep(0.2)  # and no more
    got = records()
    names = sorted(r["recipient"] for r in got)
    if names != sorted(rcpts):
        raise Fail("cancelled records for %r: %d %r, want %d" % (filt, len(names), names[:5], len(rcpts)))
    for r in got:
        for k in ("id", "sender", "recipient", "queue", "queued_time", "event_id"):
            if k not in r:
                raise Fail("a cancelled record lacks %s: %r" % (k, r))
    return got


def test_filters(env):
    env.dns(mx={"held.test": [(10, "mx.sink.test")], "other.test": [(10, "mx.sink.test")],
                "senders.test": [(10, "mx.dsn.test")]},
            a={"mx.sink.test": "127.0.0.2", "mx.dsn.test": "127.0.0.3"}, check=[("held.test", "MX")])
    env.salvo_sink("deferring", "127.0.0.2:25", extra_args=["--fault", "at=rcpt,reply=451 4.7.1 not now"])
    dsn_sink = env.salvo_sink("dsn", "127.0.0.3:25")
    acct_csv = os.path.join(env.dir, "acct.csv")
    d = env.salvod_daemon(default_domain={"retry-after": "1h", "bounce-after": "4h"},
                          extra="<acct-file %s>\n  records d,b\n</acct-file>\n" % acct_csv)
    d.start()

    old = ["old%d@held.test" % i for i in range(8)]
    inject(old, campaign="spring")
    t_old = time.monotonic()
    harness.wait_for_records(env, lambda r: len(of_type(r, "transient")) >= len(old), 30 * harness.SLOW,
                             what="a first (deferred) try of the old batch")
    autumn = ["a%02d@held.test" % i for i in range(20)]
    winter = ["w%02d@held.test" % i for i in range(15)]
    promo = ["p%02d@held.test" % i for i in range(12)]
    keep = ["k%02d@other.test" % i for i in range(10)]
    wait_until(lambda: time.monotonic() - t_old >= 6.0, 10, what="the old batch to age")
    t_new = time.monotonic()
    inject(autumn, campaign="autumn")
    inject(winter, campaign="winter")
    inject(promo, sender="promo@senders.test")
    inject(keep, campaign="winter")
    # one message with three recipients (SMTP): one of them is deleted, the others stay
    multi = ["m1@held.test", "m2@held.test", "m3@held.test"]
    harness.inject([harness.Injected("multi", "esp@senders.test", multi,
                                     b"From: news@senders.test\r\nTo: m1@held.test\r\nSubject: three\r\n\r\nHi\r\n")],
                   threads=1)
    # and one with two, from another sender: one DSN names both
    pair = ["n1@held.test", "n2@held.test"]
    harness.inject([harness.Injected("pair", "pair@senders.test", pair,
                                     b"From: pair@senders.test\r\nTo: n1@held.test\r\nSubject: two\r\n\r\nHi\r\n")],
                   threads=1)
    everyone = old + autumn + winter + promo + keep + multi + pair

    # -- by age: the old batch only. The new ones are younger than the threshold
    # (injected within it), the old ones 6 s older than the new ones.
    age = "%ds" % (math.ceil(time.monotonic() - t_new) + 2)
    delete({"older_than": age}, len(old))
    check_cancelled(d.spool, old, {"older_than": age})
    harness.wait_for_records(env, lambda r: len(of_type(r, "transient")) >= len(everyone), 30 * harness.SLOW,
                             what="a first (deferred) try of each recipient")
    # -- by campaign, with a DSN to the sender
    delete({"campaign": "autumn", "queue": "HELD.test", "dsn": True}, len(autumn))
    got = check_cancelled(d.spool, autumn, {"queue": "HELD.test", "campaign": "autumn"})
    if any(r.get("campaign") != "autumn" or not r.get("dsn_id") for r in got):
        raise Fail("a cancelled record without its campaign or dsn_id: %r" % got[0])
    # -- by sender, through salvoctl
    p = salvoctl("delete", "--sender", "PROMO@senders.test")
    if p.returncode != 0 or p.stdout.strip() != "deleted %d" % len(promo):
        raise Fail("salvoctl delete --sender: %d %r %r" % (p.returncode, p.stdout, p.stderr))
    check_cancelled(d.spool, promo, {"sender": "PROMO@senders.test"})
    # -- one recipient of a message with three; no DSN asked: none sent
    delete({"recipient": "M2@held.test"}, 1)
    check_cancelled(d.spool, ["m2@held.test"], {"recipient": "M2@held.test"})
    delete({"sender": "pair@senders.test", "dsn": True}, len(pair))
    check_cancelled(d.spool, pair, {"sender": "pair@senders.test"})
    # -- nothing left to match; a filter on two fields is an AND
    delete({"campaign": "autumn"}, 0)
    delete({"campaign": "winter", "queue": "nowhere.test"}, 0)
    # -- a paused campaign: its recipients are parked in their queue, not ready
    if api("POST", "/api/v1/campaigns/frozen/pause")[0] != 200:
        raise Fail("pausing campaign frozen")
    frozen = ["f%d@held.test" % i for i in range(6)]
    inject(frozen, campaign="frozen")
    delete({"campaign": "frozen"}, len(frozen))
    check_cancelled(d.spool, frozen, {"campaign": "frozen"})
    log("deleted %d by age, %d by campaign, %d by sender, %d of a paused campaign; cancelled records match"
        % (len(old), len(autumn), len(promo), len(frozen)))
    for name, want in (("autumn", 0), ("spring", 0), ("frozen", 0), ("winter", len(winter) + len(keep))):
        st, c = api("GET", "/api/v1/campaigns/" + name)
        if st != 200 or c.get("queued") != want or c.get("deferred") != (want if name != "frozen" else 0):
            raise Fail("campaign %s after the deletes: want %d queued, got %d %r" % (name, want, st, c))
    left = queued("held.test")
    want_left = set(winter + ["m1@held.test", "m3@held.test"])
    if left != want_left:
        raise Fail("held.test holds %d, want %d: %r" % (len(left), len(want_left), sorted(left ^ want_left)[:5]))

    # -- the DSNs: one per deleted message (HTTP injection makes one message per recipient)
    def dsns():
        return [a for a in dsn_sink.arrivals() if a.rcpt_to == ["esp@senders.test"]]
    wait_until(lambda: len(dsns()) >= len(autumn), 20, what="%d DSNs at senders.test" % len(autumn))
    reported = set()
    for a in dsns():
        text = a.data.decode("utf-8", "replace")
        if "Action: failed" not in text or "Status: 5.0.0" not in text or "deleted by the operator" not in text:
            raise Fail("a DSN without failed / 5.0.0 / the operator's diagnostic:\n%s" % text[:2000])
        reported |= {r for r in autumn if "Final-Recipient: rfc822;" + r in text.replace("rfc822; ", "rfc822;")}
    if reported != set(autumn) or len(dsns()) != len(autumn):
        raise Fail("DSNs: %d, reporting %d of %d autumn recipients" % (len(dsns()), len(reported), len(autumn)))
    wait_until(lambda: any(a.rcpt_to == ["pair@senders.test"] for a in dsn_sink.arrivals()), 20,
               what="the DSN to pair@senders.test")
    two = [a for a in dsn_sink.arrivals() if a.rcpt_to == ["pair@senders.test"]]
    text = two[0].data.decode("utf-8", "replace").replace("rfc822; ", "rfc822;") if two else ""
    if len(two) != 1 or not all("Final-Recipient: rfc822;" + r in text for r in pair):
        raise Fail("want one DSN naming both recipients of the pair message, got %d:\n%s" % (len(two), text[:1500]))
    if any(a.rcpt_to not in (["esp@senders.test"], ["pair@senders.test"]) for a in dsn_sink.arrivals()):
        raise Fail("a DSN went elsewhere: %r" % [a.rcpt_to for a in dsn_sink.arrivals()])
    log("%d DSNs (failed, 5.0.0, deleted by the operator) at senders.test" % len(dsns()))

    # -- the CSV file: a "b" record per cancelled recipient
    wait_until(lambda: os.path.exists(acct_csv), 5, what="the CSV file")
    rows = list(csv.DictReader(io.StringIO(open(acct_csv, newline="").read())))
    b = [r for r in rows if r["type"] == "b" and r.get("dsnDiag", "").startswith("deleted by the operator")]
    deleted = old + autumn + promo + frozen + pair + ["m2@held.test"]
    if sorted(r["rcpt"] for r in b) != sorted(deleted) or \
            any(r["dsnStatus"] != "5.0.0" or r["dsnAction"] != "failed" for r in b):
        raise Fail("CSV cancelled rows: %d of %d, e.g. %r" % (len(b), len(deleted), b[:1]))

    # -- restart; the receiver takes mail now: only what was not deleted arrives
    d.kill9()  # the answer came after the commit: nothing deleted may come back
    for s in list(env.sinks):
        if s.name == "deferring":
            s.stop()
    env.salvo_sink("taking", "127.0.0.2:25")
    d.start()
    for q in ("held.test", "other.test"):
        if api("POST", "/api/v1/queues/%s/retry" % q)[0] != 200:
            raise Fail("retry %s" % q)
    stay = winter + keep + ["m1@held.test", "m3@held.test"]
    seen = harness.wait_for_recipients(env, set(stay), 30, settle=2.0)
    gone = sorted(set(seen) & set(deleted))
    if gone:
        raise Fail("deleted recipients were delivered after the restart: %r" % gone[:5])
    missing = set(stay) - set(seen)
    if missing:
        raise Fail("not delivered after the restart: %r" % sorted(missing)[:5])
    if queued("held.test") or queued("other.test"):
        raise Fail("the spool still holds recipients after the deliveries")
    recs = d.acct()
    if of_type(recs, "delivery") and {r["recipient"] for r in of_type(recs, "delivery")} & {
            r["recipient"] for r in of_type(recs, "cancelled")}:
        raise Fail("a recipient both delivered and cancelled")
    log("after a restart: %d delivered, none of the %d deleted" % (len(stay), len(deleted)))


def test_race(env):
    env.dns(mx={"race.test": [(10, "mx.sink.test")]}, a={"mx.sink.test": "127.0.0.2"},
            check=[("race.test", "MX")])
    # every transaction waits 2 s for its reply to DATA (451 for half of them), so
    # once the first outcomes are in, the next ten transactions are on the wire
    sink = env.salvo_sink("slow", "127.0.0.2:25", extra_args=[
        "--fault", "at=data,percent=50,delay=2000,reply=451 4.7.1 later", "--fault", "at=data,delay=2000"])
    d = env.salvod_daemon(default_domain={"retry-after": "1s", "bounce-after": "4h", "max-smtp-out": "10"})
    d.start()
    rcpts = ["r%03d@race.test" % i for i in range(300)]
    inject(rcpts, campaign="race")
    harness.wait_for_records(env, lambda r: len(of_type(r, "delivery")) + len(of_type(r, "transient")) >= 5,
                             30 * harness.SLOW, what="the first outcomes")
    st, out = api("POST", "/api/v1/delete", {"campaign": "race"})
    if st != 200:
        raise Fail("delete during delivery: %d %r" % (st, out))
    log("delete during delivery: %r" % out)
    if out["in_flight"] < 1:
        raise Fail("no recipient was in flight with 10 busy sessions: %r" % out)

    def settled():
        recs = d.acct()
        fin = {r["recipient"] for r in of_type(recs, "delivery")} | {r["recipient"] for r in of_type(recs, "cancelled")}
        return len(fin) >= len(rcpts)
    wait_until(settled, 30 * harness.SLOW, what="every recipient delivered or cancelled")
    time.sleep(1.5)  # nothing more may come: no retry of a cancelled recipient
    recs = d.acct()
    delivered = [r["recipient"] for r in of_type(recs, "delivery")]
    cancelled = [r["recipient"] for r in of_type(recs, "cancelled")]
    both = set(delivered) & set(cancelled)
    if both:
        raise Fail("both delivered and cancelled: %r" % sorted(both)[:5])
    if len(cancelled) != len(set(cancelled)):
        raise Fail("a recipient cancelled twice")
    arrived = set()
    for a in sink.arrivals():
        arrived |= set(a.rcpt_to)
    if arrived & set(cancelled):
        raise Fail("the receiver got cancelled recipients: %r" % sorted(arrived & set(cancelled))[:5])
    if set(delivered) | set(cancelled) != set(rcpts):
        raise Fail("recipients neither delivered nor cancelled: %r" % sorted(set(rcpts) - set(delivered)
                                                                            - set(cancelled))[:5])
    late = len(cancelled) - out["deleted"]
    if late < 0 or late > out["in_flight"]:
        raise Fail("%d cancelled records for deleted=%d in_flight=%d" % (len(cancelled), out["deleted"],
                                                                          out["in_flight"]))
    if queued("race.test"):
        raise Fail("race.test still holds recipients")
    log("race: %d delivered, %d cancelled (%d at once, %d back from flight of %d), none both"
        % (len(delivered), len(cancelled), out["deleted"], late, out["in_flight"]))


def test_commit_faults(env):
    env.dns(mx={"held.test": [(10, "mx.sink.test")], "senders.test": [(10, "mx.dsn.test")]},
            a={"mx.sink.test": "127.0.0.2", "mx.dsn.test": "127.0.0.3"}, check=[("held.test", "MX")])
    sink = env.salvo_sink("sink", "127.0.0.2:25")
    dsn_sink = env.salvo_sink("dsn", "127.0.0.3:25")
    d = env.salvod_daemon()
    d.start()
    if api("POST", "/api/v1/queues/held.test/pause")[0] != 200:
        raise Fail("pause held.test")
    rcpts = ["c%d@held.test" % i for i in range(10)]
    inject(rcpts, campaign="cf")
    d.stop()
    wait_until(lambda: not harness.port_open(harness.SALVOD_SMTP), 10, what="salvod's port to close")
    # The restart writes nothing (the pause and the mail are read back): its first
    # three commits, the delete's, fail with ENOSPC.
    os.environ["SALVO_SPOOL_FAIL_COMMITS"] = "3@0"
    try:
        d.start()
    finally:
        del os.environ["SALVO_SPOOL_FAIL_COMMITS"]
    delete({"campaign": "cf", "dsn": True}, len(rcpts))
    err = open(d.stderr_paths[-1], errors="replace").read()
    if "delete of %d recipients not recorded yet" % len(rcpts) not in err:
        raise Fail("the delete's commit never failed (the hook missed it):\n%s" % err[-2000:])
    check_cancelled(d.spool, rcpts, {"campaign": "cf"})
    wait_until(lambda: len(dsn_sink.arrivals()) >= len(rcpts), 20, what="the DSNs")
    time.sleep(1.0)
    if len(dsn_sink.arrivals()) != len(rcpts):
        raise Fail("%d DSNs for %d deleted messages (a failed commit's DSN went out?)" % (len(dsn_sink.arrivals()),
                                                                                           len(rcpts)))
    d.stop()
    wait_until(lambda: not harness.port_open(harness.SALVOD_SMTP), 10, what="salvod's port to close")
    d.start()
    if queued("held.test"):
        raise Fail("deleted recipients are back after a restart")
    api("POST", "/api/v1/queues/held.test/resume")
    time.sleep(1.0)
    if sink.arrivals():
        raise Fail("deleted recipients were delivered: %r" % [a.rcpt_to for a in sink.arrivals()])
    log("the delete's commit failed 3 times (ENOSPC) and was retried: %d deleted, %d records, %d DSNs, "
        "nothing back after a restart" % (len(rcpts), len(rcpts), len(dsn_sink.arrivals())))


def test_errors(env):
    env.dns(mx={"held.test": [(10, "mx.sink.test")]}, a={"mx.sink.test": "127.0.0.2"}, check=[("held.test", "MX")])
    env.salvo_sink("deferring", "127.0.0.2:25", extra_args=["--fault", "at=rcpt,reply=451 4.7.1 not now"])
    d = env.salvod_daemon(default_domain={"retry-after": "1h"})
    d.start()
    inject(["x%d@held.test" % i for i in range(5)], campaign="c1")
    harness.wait_for_records(env, lambda r: len(of_type(r, "transient")) >= 5, 20, what="5 deferrals")
    cases = [({"campaign": "c1", "colour": "red"}, "colour"),
             ({"campaign": 5}, "campaign"),
             ({"queue": ""}, "queue"),
             ({"recipient": None}, "recipient"),
             ({"sender": ["a@b.test"]}, "sender"),
             ({"older_than": "2x"}, "older_than"),
             ({"older_than": -7200}, "older_than"),
             ({"campaign": "c1", "dsn": "yes"}, "dsn"),
             ({"campaign": "c1\nx"}, "campaign"),
             ({}, "filter"),
             ({"dsn": True}, "filter")]
    for body, field in cases:
        st, out = api("POST", "/api/v1/delete", body)
        if st != 400 or out.get("field") != field or not out.get("error"):
            raise Fail("delete %r: want 400 naming %s, got %d %r" % (body, field, st, out))
    for raw in (b"[1]", b"not json", b"", b'{"campaign":"c1"'):
        st, out = api("POST", "/api/v1/delete", raw=raw)
        if st != 400 or not out.get("error"):
            raise Fail("delete with body %r: want 400, got %d %r" % (raw, st, out))
    if api("GET", "/api/v1/delete")[0] != 405:
        raise Fail("GET /api/v1/delete is not refused")
    if len(queued("held.test")) != 5 or of_type(d.acct(), "cancelled"):
        raise Fail("a refused delete changed something")
    p = salvoctl("delete")
    if p.returncode != 2:
        raise Fail("salvoctl delete without a filter: %d %r" % (p.returncode, p.stderr))
    p = salvoctl("delete", "--older-than", "2x")
    if p.returncode != 1 or "older_than" not in p.stderr:
        raise Fail("salvoctl delete --older-than 2x: %d %r" % (p.returncode, p.stderr))
    p = salvoctl("--json", "delete", "--campaign=c1", "--older-than", "1ms")
    if p.returncode != 0 or json.loads(p.stdout) != {"deleted": 5, "in_flight": 0}:
        raise Fail("salvoctl --json delete: %d %r %r" % (p.returncode, p.stdout, p.stderr))
    log("%d bad filters and %d bad bodies refused naming the field; salvoctl exit codes 2, 1, 0"
        % (len(cases), 4))


def test_restart(env):
    env.dns(mx={"rs.test": [(10, "mx.sink.test")], "fs.test": [(10, "mx.sink.test")],
                "held.test": [(10, "mx.sink.test")]},
            a={"mx.sink.test": "127.0.0.2"}, check=[("rs.test", "MX")])
    env.salvo_sink("slow", "127.0.0.2:25", extra_args=[
        "--fault", "at=data,match=@rs[.]test,delay=30000", "--fault", "at=data,delay=2500"])
    d = env.salvod_daemon(default_domain={"retry-after": "1s", "bounce-after": "4h"})
    d.start()
    if api("POST", "/api/v1/queues/held.test/pause")[0] != 200:
        raise Fail("pause held.test")
    slow = ["s%d@rs.test" % i for i in range(6)]
    fast = ["f%d@fs.test" % i for i in range(4)]
    held = ["h%d@held.test" % i for i in range(10)]
    # no placeholders: one message, so each domain's recipients share one transaction
    st, out = api("POST", "/api/inject/v1", {
        "envelope_sender": "esp@senders.test", "campaign": "gone",
        "content": "From: news@senders.test\r\nSubject: hello\r\n\r\nHi\r\n",
        "recipients": [{"email": r} for r in slow + fast + held]})
    if st != 200 or out.get("success_count") != 20:
        raise Fail("injection: %d %r" % (st, out))

    def on_wire():
        st, out = api("GET", "/api/v1/queues")
        qs = out.get("queues", []) if isinstance(out, dict) else out
        return st == 200 and sum(q.get("in_flight", 0) for q in qs) >= 10
    if not wait_until(on_wire, 10 * harness.SLOW, what="ten recipients on the wire"):
        raise Fail("the two transactions never went out")
    st, out = api("POST", "/api/v1/delete", {"campaign": "gone"})
    if st != 200 or out != {"deleted": 10, "in_flight": 10}:
        raise Fail("delete with ten in flight: %d %r" % (st, out))
    harness.wait_for_records(env, lambda r: len(of_type(r, "delivery")) >= 4, 20 * harness.SLOW,
                             what="the four fast deliveries")
    d.kill9()
    d.start()
    err = open(d.stderr_paths[-1], errors="replace").read()
    if "6 recipients cancelled by deletes made before the restart" not in err:
        raise Fail("the restart did not finish the delete:\n%s" % err[-1500:])
    time.sleep(1.5)  # retry-after 1s: a forgotten recipient would be tried again
    # a kill -9 may write the last records to the log twice: one per event_id
    recs = list({r["event_id"]: r for r in d.acct() if "event_id" in r}.values())
    cancelled = sorted(r["recipient"] for r in of_type(recs, "cancelled"))
    if cancelled != sorted(slow + held):
        raise Fail("cancelled %r, want %r" % (cancelled, sorted(slow + held)))
    delivered = sorted(r["recipient"] for r in of_type(recs, "delivery"))
    if delivered != sorted(fast):
        raise Fail("delivered %r, want %r" % (delivered, sorted(fast)))
    if of_type(recs, "transient") or queued("rs.test") or queued("held.test"):
        raise Fail("a cancelled recipient is queued or tried again after the restart")
    log("delete with 10 in flight, kill -9, restart: 6 cancelled at start, 4 delivered before, none both")

def test_concurrent(env):
    import threading
    env.dns(mx={"race.test": [(10, "mx.sink.test")], "held.test": [(10, "mx.sink.test")]},
            a={"mx.sink.test": "127.0.0.2"}, check=[("race.test", "MX")])
    sink = env.salvo_sink("sink", "127.0.0.2:25", extra_args=["--fault", "at=data,delay=200"])
    d = env.salvod_daemon(default_domain={"retry-after": "1s", "max-smtp-out": "10"})
    d.start()
    text = open(d.config).read()
    if api("POST", "/api/v1/queues/held.test/pause")[0] != 200 or api("POST", "/api/v1/campaigns/cr/pause")[0] != 200:
        raise Fail("pauses")
    held = ["h%04d@held.test" % i for i in range(2000)]
    st, out = api("POST", "/api/inject/v1", {"envelope_sender": "esp@senders.test", "campaign": "bulk",
                                             "content": "Subject: x\r\n\r\nhi\r\n",
                                             "recipients": [{"email": r} for r in held]})
    if st != 200 or out.get("success_count") != 2000:
        raise Fail("inject 2000: %d %r" % (st, out))
    rcpts = ["r%03d@race.test" % i for i in range(200)]
    inject(rcpts, campaign="cr")
    res = {}

    def reloads():
        for i in range(5):
            with open(d.config, "w") as f:
                f.write(text.replace("max-smtp-out             10", "max-smtp-out             %d" % (5 + i)))
            res.setdefault("reload", []).append(api("POST", "/api/v1/reload")[0])

    def call(key, method, path, body=None):
        res[key] = api(method, path, body)
    ts = [threading.Thread(target=reloads),
          threading.Thread(target=call, args=("bulk", "POST", "/api/v1/delete", {"campaign": "bulk"})),
          threading.Thread(target=call, args=("resume", "POST", "/api/v1/campaigns/cr/resume")),
          threading.Thread(target=call, args=("cr", "POST", "/api/v1/delete", {"campaign": "cr"}))]
    for t in ts[:3]:
        t.start()
    time.sleep(0.4)  # the resume's recipients on their way: some delivered, some in flight
    ts[3].start()
    for t in ts:
        t.join(60)
    if res.get("reload") != [200] * 5 or res["bulk"] != (200, {"deleted": 2000, "in_flight": 0}):
        raise Fail("reloads %r, delete of bulk %r" % (res.get("reload"), res.get("bulk")))
    st, cr = res["cr"]
    if st != 200 or res["resume"][0] != 200:
        raise Fail("resume %r, delete of cr %d %r" % (res["resume"], st, cr))

    def settled():
        recs = d.acct()
        fin = {r["recipient"] for r in recs if r.get("type") in ("delivery", "cancelled") and "race" in r["recipient"]}
        return len(fin) >= len(rcpts)
    wait_until(settled, 30 * harness.SLOW, what="every cr recipient delivered or cancelled")
    time.sleep(1.5)
    recs = d.acct()
    delivered = [r["recipient"] for r in of_type(recs, "delivery")]
    cancelled = [r["recipient"] for r in of_type(recs, "cancelled") if "race" in r["recipient"]]
    if set(delivered) & set(cancelled) or len(cancelled) != len(set(cancelled)) or len(delivered) != len(set(delivered)):
        raise Fail("a recipient both delivered and cancelled, or one of them twice")
    if set(delivered) | set(cancelled) != set(rcpts):
        raise Fail("cr recipients neither delivered nor cancelled: %r" % sorted(set(rcpts) - set(delivered) - set(cancelled))[:5])
    late = len(cancelled) - cr["deleted"]
    if late < 0 or late > cr["in_flight"]:
        raise Fail("%d cancelled for deleted=%d in_flight=%d" % (len(cancelled), cr["deleted"], cr["in_flight"]))
    with urllib.request.urlopen("http://%s:%d/metrics" % harness.SALVOD_HTTP, timeout=20) as r:
        m = r.read().decode().split("\n")
    n_cancel = len(of_type(recs, "cancelled"))
    for want in ("salvo_deletes_total 2", "salvo_cancelled_total %d" % n_cancel, "salvo_config_generation 6",
                 "salvo_delete_in_flight 0"):
        if want not in m:
            raise Fail("/metrics lacks %r: %r" % (want, [l for l in m if l.startswith(want.split()[0])]))
    log("delete of 2000 during 5 reloads; cr: %d delivered, %d cancelled (deleted %d, in flight %d)"
        % (len(delivered), len(cancelled), cr["deleted"], cr["in_flight"]))


if __name__ == "__main__":
    harness.main([test_filters, test_race, test_commit_faults, test_restart, test_concurrent, test_errors])
