#!/usr/bin/python3
"""test_campaigns.py - campaigns (X-Job at SMTP intake, `campaign` at HTTP inject):
counts, pauses that hold across restarts, and the API's and salvoctl's forms.

  pause-restart  three campaigns in one domain queue (camp.test), all held by a queue
                 pause while they are injected: A (X-Job, SMTP) paused before any of its
                 mail exists (no phantom queue `a` appears), C (HTTP inject) paused with
                 `salvoctl pause --campaign` while its recipients are ready in the queue.
                 The queue is resumed (`salvoctl resume camp.test`): B is delivered in full,
                 A and C not at all. salvod is killed (SIGKILL), restarted: A and C stay
                 paused and undelivered (not attempted: attempts 0, no transient records),
                 counts right (recovered recipients queued; received, delivered and the
                 reception times durable); a SIGTERM restart the same.
                 `salvoctl resume --campaign A` and the API's resume for C: each delivered
                 in full, exactly once at the sink; GET /api/v1/campaigns right at each step.
  errors         unknown JSON fields, a body that is not an object, bad ids, an unknown
                 action, a bad `paused` filter: each answers JSON naming the field;
                 `salvoctl pause --campaign` without an id is a usage error; `salvoctl pause
                 c1` still pauses a queue named c1 (the queue form), not a campaign; 24
                 pauses and resumes racing: the state shown agrees with the spool's after
                 a restart (six rounds).
  outcomes       a campaign with one recipient delivered, one deferred (451 at first),
                 one bounced (550): queued, deferred, delivered, bounced right before and
                 after a kill -9 during the retry wait, and once the retry delivers
  disk-full      the commit of a pause fails (the spool's fault hook, ENOSPC): 503 saying it
                 applies until a restart only; the next pause is stored; after a restart
                 only the stored one holds
  many           1,000 campaigns (and one of three messages) held in a paused queue:
                 GET /api/v1/campaigns pages (limit=300, after=next) show each exactly once,
                 `next` null at the end; /metrics has salvo_campaigns, the total queued and
                 per-campaign series for the top 100 by queued only (the biggest first);
                 bad limit/after answer 400 naming the field. Hostile ids: a campaign with
                 a control byte or NUL, or 10 KB long, at HTTP inject, in a campaign path
                 and in a delete filter: 400 naming the field; an X-Job with a control
                 byte names no campaign (its mail is queued all the same); a 10 MB JSON
                 body to /api/v1/delete is refused 400 and deletes nothing
  top            `salvoctl top`, Tab to the campaign view (tmux, 80x24): the campaigns with
                 their counts and states; `p` pauses the selected one (API agrees)
"""

import json
import os
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request

import harness
from harness import Fail, Injected, log, wait_until

DOM = "camp.test"
SENDER = "news@senders.test"
N_A, N_B, N_C = 60, 60, 40
SOURCES = {"127.0.0.1": {"always-allow-relaying": "yes", "process-x-job": "yes"}}


def api(method, path, body=None, raw=None):
    """(status, parsed JSON) for one request to salvod's API."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    if method == "POST" and data is None:
        data = b""
    req = urllib.request.Request("http://%s:%d%s" % (harness.SALVOD_HTTP + (path,)), data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        text = e.read()
        try:
            return e.code, json.loads(text)
        except ValueError:
            raise Fail("%s %s answered %d with non-JSON: %r" % (method, path, e.code, text[:200]))


def ctl(*args):
    env = dict(os.environ, SALVO_API="http://%s:%d" % harness.SALVOD_HTTP)
    p = subprocess.run([harness.SALVOCTL] + list(args), capture_output=True, text=True, timeout=30, env=env)
    return p.returncode, p.stdout, p.stderr


def must(res, rc=0, what=""):
    if res[0] != rc:
        raise Fail("salvoctl %s: exit %d (want %d)\nstdout: %s\nstderr: %s" % (what, res[0], rc, res[1], res[2]))
    return res[1]


def campaigns():
    st, j = api("GET", "/api/v1/campaigns")
    if st != 200:
        raise Fail("GET /api/v1/campaigns: %d %r" % (st, j))
    return {c["campaign"]: c for c in j["campaigns"]}


def expect_counts(want, what, timeout=15):
    """want: {campaign: {field: value}}; polls until every field matches."""
    last = {}

    def ok():
        last.clear()
        last.update(campaigns())
        return all(k in last and all(last[k].get(f) == v for f, v in fs.items()) for k, fs in want.items())
    if not wait_until(ok, timeout, what=what):
        raise Fail("%s: campaigns %s, want %r" % (what, json.dumps(last, sort_keys=True), want))
    return last


def smtp_msgs(job, n):
    out = []
    for i in range(n):
        rcpt = "%s%03d@%s" % (job.lower(), i, DOM)
        body = ("From: <%s>\r\nTo: <%s>\r\nSubject: %s %d\r\nX-Job: %s\r\nMessage-ID: <%s%d@itest>\r\n\r\n"
                "campaign %s, message %d\r\n" % (SENDER, rcpt, job, i, job, job, i, job, i))
        out.append(Injected("%s%d" % (job, i), SENDER, [rcpt], body.encode()))
    return out


def arrived(env):
    seen = {}
    for a in env.arrivals():
        for r in a.rcpt_to:
            seen.setdefault(r.lower(), []).append(a)
    return seen


def start(env, defer_first=(), reject=(), retry="2s"):
    env.dns(mx={DOM: [(10, "mx.sink.test")], "senders.test": [(10, "mx.sink.test")]},
            a={"mx.sink.test": "127.0.0.2"}, check=[(DOM, "MX")])
    env.salvo_sink("sink", "127.0.0.2:25", defer_first=defer_first, reject=reject)
    d = env.salvod_daemon(sources=SOURCES, default_domain={"retry-after": retry})
    d.start()
    wait_until(lambda: harness.port_open(harness.SALVOD_HTTP), 5, what="the API")
    return d


def no_transients(d, prefixes):
    for r in d.acct():
        if r.get("type") in ("transient", "delivery", "bounce") and r.get("recipient", "")[:1] in prefixes:
            raise Fail("a paused campaign's recipient was attempted: %r" % r)


def test_pause_restart(env):
    d = start(env)
    # A is paused before any of its mail exists: the pause is recorded, no queue is made
    st, j = api("POST", "/api/v1/campaigns/A/pause")
    if st != 200 or j.get("paused") is not True:
        raise Fail("pause A: %d %r" % (st, j))
    st, q = api("GET", "/api/v1/queues/a")
    if st != 404:
        raise Fail("pausing campaign A made a queue: %d %r" % (st, q))
    expect_counts({"A": {"paused": True, "queued": 0, "delivered": 0}}, "A paused, empty")
    # hold the queue while everything is injected (the queue form of pause)
    must(ctl("pause", DOM), 0, "pause " + DOM)
    harness.inject(smtp_msgs("A", N_A) + smtp_msgs("B", N_B), threads=2, per_conn=30)
    rc = [{"email": "c%03d@%s" % (i, DOM)} for i in range(N_C)]
    st, j = api("POST", "/api/inject/v1", {"envelope_sender": SENDER, "campaign": "C", "recipients": rc,
                                           "content": {"from": {"email": SENDER}, "subject": "C",
                                                       "text_body": "campaign C\n"}})
    if st != 200 or j.get("success_count") != N_C:
        raise Fail("inject C: %d %r" % (st, j))
    expect_counts({"A": {"queued": N_A, "paused": True}, "B": {"queued": N_B, "paused": False},
                   "C": {"queued": N_C, "paused": False}}, "all queued")
    # C is paused while its recipients are ready in the held queue
    out = must(ctl("pause", "--campaign", "C"), 0, "pause --campaign C")
    if "campaign C: paused" not in out:
        raise Fail("pause --campaign C said %r" % out)
    must(ctl("resume", DOM), 0, "resume " + DOM)
    want_b = {"b%03d@%s" % (i, DOM) for i in range(N_B)}
    seen = harness.wait_for_recipients(env, want_b, 30, settle=2.0)
    missing = want_b - set(seen)
    if missing:
        raise Fail("%d of B never arrived, e.g. %r" % (len(missing), sorted(missing)[:3]))
    held = [r for r in seen if r[0] in "ac"]
    if held:
        raise Fail("paused campaigns delivered: %r" % sorted(held)[:5])
    before = expect_counts({"A": {"queued": N_A, "received": N_A, "delivered": 0, "paused": True},
                            "B": {"queued": 0, "received": N_B, "delivered": N_B, "paused": False},
                            "C": {"queued": N_C, "received": N_C, "delivered": 0, "paused": True}}, "B delivered")
    for k in "ABC":
        if not before[k]["first_received"].endswith("Z") or before[k]["first_received"] > before[k]["last_received"]:
            raise Fail("%s's receptions: %r" % (k, before[k]))
    log("B delivered (%d); A and C held (%d, %d)" % (N_B, N_A, N_C))
    # kill -9: the pauses come back with the spool
    d.kill9()
    d.start()
    c = expect_counts({"A": {"queued": N_A, "received": N_A, "delivered": 0, "paused": True},
                       "B": {"queued": 0, "received": N_B, "delivered": N_B, "paused": False},
                       "C": {"queued": N_C, "received": N_C, "delivered": 0, "paused": True}}, "after kill -9")
    for k in "ABC":
        if before[k]["first_received"] != c[k]["first_received"] or before[k]["last_received"] != c[k]["last_received"]:
            raise Fail("%s's receptions before the restart %r, after %r" % (k, before[k], c[k]))
    time.sleep(3)   # several retry-after periods (2s): nothing of A or C may move
    if [r for r in arrived(env) if r[0] in "ac"]:
        raise Fail("a paused campaign was delivered after the restart")
    st, page = api("GET", "/api/v1/queues/%s/recipients?limit=1000" % DOM)
    if st != 200 or len(page["recipients"]) != N_A + N_C or any(r["attempts"] for r in page["recipients"]):
        raise Fail("the queue's recipients after the restart: %d %r" % (st, page.get("recipients", page)[:3]))
    no_transients(d, "ac")
    # SIGTERM restart: the same
    if d.stop() != 0:
        raise Fail("salvod did not exit 0 on SIGTERM")
    d.start()
    expect_counts({"A": {"queued": N_A, "paused": True}, "B": {"delivered": N_B, "queued": 0},
                   "C": {"queued": N_C, "paused": True}}, "after SIGTERM")
    out = must(ctl("campaigns"), 0, "campaigns")
    if not any(ln.split()[:2] == ["A", str(N_A)] and ln.rstrip().endswith("paused") for ln in out.splitlines()):
        raise Fail("salvoctl campaigns:\n" + out)
    j = json.loads(must(ctl("--json", "campaigns", "--paused"), 0, "--json campaigns --paused"))
    if sorted(x["campaign"] for x in j["campaigns"]) != ["A", "C"]:
        raise Fail("campaigns --paused: %r" % j)
    # resume A (salvoctl): delivered in full, exactly once; C still held
    out = must(ctl("resume", "--campaign", "A"), 0, "resume --campaign A")
    want_a = {"a%03d@%s" % (i, DOM) for i in range(N_A)}
    seen = harness.wait_for_recipients(env, want_a, 30, settle=2.0)
    if want_a - set(seen):
        raise Fail("%d of A never arrived after resume" % len(want_a - set(seen)))
    if [r for r in seen if r[0] == "c"]:
        raise Fail("C was delivered while paused")
    expect_counts({"A": {"queued": 0, "delivered": N_A, "paused": False},
                   "C": {"queued": N_C, "paused": True}}, "A delivered")
    # resume C (the API; the body may be an empty object)
    st, j = api("POST", "/api/v1/campaigns/C/resume", {})
    if st != 200 or j.get("paused") is not False:
        raise Fail("resume C: %d %r" % (st, j))
    want_c = {"c%03d@%s" % (i, DOM) for i in range(N_C)}
    seen = harness.wait_for_recipients(env, want_c | want_a | want_b, 30, settle=2.0)
    if want_c - set(seen):
        raise Fail("%d of C never arrived after resume" % len(want_c - set(seen)))
    dup = {r: len(v) for r, v in seen.items() if len(v) != 1}
    if dup:
        raise Fail("delivered more than once: %r" % dict(list(dup.items())[:5]))
    if set(seen) != want_a | want_b | want_c:
        raise Fail("unexpected recipients at the sink: %r" % sorted(set(seen) - (want_a | want_b | want_c))[:5])
    expect_counts({"A": {"queued": 0, "delivered": N_A, "paused": False},
                   "C": {"queued": 0, "delivered": N_C, "paused": False, "deferred": 0, "bounced": 0}},
                  "C delivered")
    log("A (%d) and C (%d) delivered exactly once after resume" % (N_A, N_C))


def test_errors(env):
    d = start(env)
    cases = [
        ("POST", "/api/v1/campaigns/A/pause", b'{"force": true}', 400, "force"),
        ("POST", "/api/v1/campaigns/A/pause", b'not json', 400, "body"),
        ("POST", "/api/v1/campaigns/A/pause", b'[1]', 400, "body"),
        ("POST", "/api/v1/campaigns/%01bad/pause", b'', 400, "id"),
        ("POST", "/api/v1/campaigns/" + "x" * 200 + "/pause", b'', 400, "id"),
        ("POST", "/api/v1/campaigns//pause", b'', 400, "id"),
        ("POST", "/api/v1/campaigns/A/frobnicate", b'', 404, "action"),
        ("POST", "/api/v1/campaigns/A", b'', 404, "action"),
        ("GET", "/api/v1/campaigns/nope", None, 404, "id"),
        ("GET", "/api/v1/campaigns/%7f", None, 400, "id"),
        ("GET", "/api/v1/campaigns?paused=maybe", None, 400, "paused"),
    ]
    for method, path, raw, want, field in cases:
        st, j = api(method, path, raw=raw)
        if st != want or j.get("field") != field or not j.get("error"):
            raise Fail("%s %s %r: %d %r (want %d naming %s)" % (method, path, raw, st, j, want, field))
    if campaigns():
        raise Fail("refused requests left campaigns behind: %r" % campaigns())
    must(ctl("pause", "--campaign"), 2, "pause --campaign (no id)")
    must(ctl("resume", "--campaign=", "x"), 2, "resume --campaign= x")
    must(ctl("pause", "--frob"), 2, "pause --frob")
    rc, out, err = ctl("campaigns", "nope")
    if rc != 1 or "field id" not in err:
        raise Fail("campaigns nope: %d %r %r" % (rc, out, err))
    # the queue form: a queue pause named c1 is recorded (one more key in the spool's
    # "pause" database), no campaign c1 appears
    keys = harness.mdb_entries(d.spool, "pause")
    must(ctl("pause", "c1"), 0, "pause c1")
    if not wait_until(lambda: harness.mdb_entries(d.spool, "pause") == keys + 1, 3, what="the queue pause stored"):
        raise Fail("salvoctl pause c1 stored no queue pause")
    if "c1" in campaigns():
        raise Fail("the queue form of pause made a campaign")
    must(ctl("resume", "c1"), 0, "resume c1")
    if not wait_until(lambda: harness.mdb_entries(d.spool, "pause") == keys, 3, what="the queue pause gone"):
        raise Fail("salvoctl resume c1 left the queue pause stored")
    # pauses and resumes racing each other: whatever wins, memory and spool agree
    for rnd in range(6):
        threads = [threading.Thread(target=api, args=("POST", "/api/v1/campaigns/flip/%s" % ("pause", "resume")[i % 2]))
                   for i in range(24)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        now = campaigns()["flip"]["paused"]
        if d.stop() != 0:
            raise Fail("salvod did not exit 0 on SIGTERM")
        d.start()
        if campaigns().get("flip", {}).get("paused", False) != now:
            raise Fail("round %d: flip was paused=%r before the restart, %r after" % (rnd, now, campaigns().get("flip")))
    log("every error names its field; the queue form stays a queue; racing pauses agree with the spool")


def test_outcomes(env):
    # one delivered, one deferred at first (retried after 8s), one bounced (5xx)
    d = start(env, defer_first=("^d001@",), reject=("^d002@",), retry="8s")
    harness.inject(smtp_msgs("D", 3), threads=1, per_conn=3)
    mid = {"queued": 1, "deferred": 1, "delivered": 1, "bounced": 1, "received": 3, "expired": 0}
    expect_counts({"D": mid}, "one deferred, one delivered, one bounced")
    d.kill9()   # while d1 waits for its retry: deferred comes back from the spool
    d.start()
    expect_counts({"D": mid}, "the same after kill -9", timeout=5)
    expect_counts({"D": {"queued": 0, "deferred": 0, "delivered": 2, "bounced": 1}}, "d1 delivered on retry",
                  timeout=20)
    log("deferred and bounced counted, across a kill -9 too")


def test_disk_full(env):
    # the pause's commit fails (ENOSPC): the answer says so, naming what holds
    os.environ["SALVO_SPOOL_FAIL_COMMITS"] = "1:ENOSPC@0"
    try:
        d = start(env)
    finally:
        del os.environ["SALVO_SPOOL_FAIL_COMMITS"]
    st, j = api("POST", "/api/v1/campaigns/full/pause")
    if st != 503 or "not stored" not in j.get("error", ""):
        raise Fail("pause on a full disk: %d %r" % (st, j))
    if not campaigns()["full"]["paused"]:
        raise Fail("the answer says the pause applies until a restart; GET says %r" % campaigns()["full"])
    st, j = api("POST", "/api/v1/campaigns/later/pause")     # the next commit works
    if st != 200:
        raise Fail("pause after the failed commit: %d %r" % (st, j))
    d.stop()
    d.start()
    c = campaigns()
    if c.get("full", {}).get("paused") or not c["later"]["paused"]:
        raise Fail("after a restart: %r" % c)
    log("a pause that cannot be stored says so and lasts until the restart only")


def _screen(session):
    return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout


def test_top(env):
    start(env)
    must(ctl("pause", "--campaign", "spring-sale"), 0, "pause --campaign spring-sale")
    must(ctl("pause", DOM), 0, "pause " + DOM)
    harness.inject(smtp_msgs("Autumn", 7), threads=1, per_conn=7)
    expect_counts({"Autumn": {"queued": 7}}, "Autumn queued")
    session = "salvocamp%d" % os.getpid()
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "80", "-y", "24",
                    "env SALVO_API=http://%s:%d LANG=C.UTF-8 %s top" % (harness.SALVOD_HTTP + (harness.SALVOCTL,))],
                   check=True)
    try:
        time.sleep(1.0)
        subprocess.run(["tmux", "send-keys", "-t", session, "Tab"])
        subprocess.run(["tmux", "send-keys", "-t", session, "Tab"])

        def rows():
            return {ln.split()[0]: ln.split() for ln in _screen(session).splitlines()
                    if ln.split() and ln.split()[0] in ("spring-sale", "Autumn")}
        if not wait_until(lambda: len(rows()) == 2, 5, what="the campaign view"):
            raise Fail("no campaign view after Tab Tab:\n" + _screen(session))
        r = rows()
        if r["spring-sale"][1:] != ["0", "0", "0", "0", "paused"] or r["Autumn"][1:] != ["7", "0", "0", "0", "active"]:
            raise Fail("campaign rows %r:\n%s" % (r, _screen(session)))
        if any(len(ln) > 80 for ln in _screen(session).splitlines()):
            raise Fail("a line is wider than 80 columns:\n" + _screen(session))
        # the first row is spring-sale (first seen); select Autumn, pause it
        subprocess.run(["tmux", "send-keys", "-t", session, "Down", "p"])
        if not wait_until(lambda: rows().get("Autumn", [""])[-1] == "paused", 5, what="Autumn paused on screen"):
            raise Fail("p did not pause Autumn:\n" + _screen(session))
        if not campaigns()["Autumn"]["paused"]:
            raise Fail("the screen says Autumn is paused, the API does not")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session])
    log("salvoctl top shows the campaigns and pauses one")


def test_many(env):
    d = start(env)
    if api("POST", "/api/v1/queues/%s/pause" % DOM)[0] != 200:
        raise Fail("pause %s" % DOM)
    msgs = []
    for i in range(1000):
        job = "m%04d" % i
        rcpt = "%s@%s" % (job, DOM)
        msgs.append(Injected(job, SENDER, [rcpt], ("From: <%s>\r\nTo: <%s>\r\nSubject: x\r\nX-Job: %s\r\n\r\nhi\r\n"
                                                   % (SENDER, rcpt, job)).encode()))
    msgs += smtp_msgs("big", 3)
    bad = "bad@%s" % DOM
    msgs.append(Injected("bad", SENDER, [bad], ("From: <%s>\r\nTo: <%s>\r\nSubject: x\r\nX-Job: ev\x01il\r\n\r\nhi\r\n"
                                                % (SENDER, bad)).encode()))
    harness.inject_all(msgs, threads=4, per_conn=100, timeout=60)

    def pages(limit):
        seen, after, n = [], None, 0
        while True:
            st, j = api("GET", "/api/v1/campaigns?limit=%d%s" % (limit, "&after=" + after if after else ""))
            if st != 200 or len(j["campaigns"]) > limit:
                raise Fail("page %d: %d %r" % (n, st, j if st != 200 else len(j["campaigns"])))
            seen += [c["campaign"] for c in j["campaigns"]]
            n += 1
            after = j["next"]
            if after is None or n > 10:
                return seen, n
    want = {"m%04d" % i for i in range(1000)} | {"big"}
    wait_until(lambda: len(pages(1000)[0]) >= 1001, 20, what="1001 campaigns")
    seen, n = pages(300)
    if sorted(seen) != sorted(want):
        raise Fail("paged campaigns: %d (%d distinct) in %d pages, want the 1001 exactly once: extra %r"
                   % (len(seen), len(set(seen)), n, sorted(set(seen) - want)[:5]))
    if n != 4:
        raise Fail("1001 campaigns in pages of 300: %d pages" % n)
    out = json.loads(must(ctl("--json", "campaigns"), what="--json campaigns"))
    if sorted(c["campaign"] for c in out["campaigns"]) != sorted(want):
        raise Fail("salvoctl --json campaigns: %d campaigns" % len(out["campaigns"]))

    with urllib.request.urlopen("http://%s:%d/metrics" % harness.SALVOD_HTTP, timeout=20) as r:
        m = r.read().decode()
    series = [ln for ln in m.split("\n") if ln.startswith("salvo_campaign_queued{")]
    if len(series) != 100 or series[0] != 'salvo_campaign_queued{campaign="big"} 3':
        raise Fail("salvo_campaign_queued: %d series, first %r; want 100, big first" % (len(series), series[:1]))
    for want_line in ("salvo_campaigns 1001", "salvo_campaigns_queued 1003", "salvo_deletes_total 0",
                      "salvo_cancelled_total 0"):
        if want_line not in m.split("\n"):
            raise Fail("/metrics lacks %r" % want_line)
    for q, field in (("limit=0", "limit"), ("limit=10001", "limit"), ("limit=x", "limit"), ("after=-1", "after"),
                     ("after=abc", "after"), ("paused=maybe", "paused")):
        st, j = api("GET", "/api/v1/campaigns?" + q)
        if st != 400 or j.get("field") != field:
            raise Fail("GET /api/v1/campaigns?%s: %d %r, want 400 naming %s" % (q, st, j, field))
    # hostile ids
    long_id = "x" * 10240
    for camp in ("a\x01b", "a\x00b", "tab\there", long_id, ""):
        st, j = api("POST", "/api/inject/v1", {"envelope_sender": SENDER, "campaign": camp,
                                               "content": "Subject: x\r\n\r\nhi\r\n",
                                               "recipients": [{"email": "h@%s" % DOM}]})
        if st != 400 or (j.get("field") != "campaign" and "\x00" not in camp):
            raise Fail("inject with campaign %r: %d %r, want 400 naming campaign" % (camp[:20], st, j))
    for path in ("/api/v1/campaigns/" + long_id, "/api/v1/campaigns/a%01b"):
        st, j = api("GET", path)
        if st != 400 or j.get("field") != "id":
            raise Fail("GET %s: %d %r" % (path[:40], st, j))
    st, j = api("POST", "/api/v1/campaigns/a%01b/pause")
    if st != 400 or j.get("field") != "id":
        raise Fail("pause of a%%01b: %d %r" % (st, j))
    st, j = api("POST", "/api/v1/delete", {"campaign": long_id})
    if st != 400 or j.get("field") != "campaign":
        raise Fail("delete with a 10 KB campaign: %d %r" % (st, j))
    t0 = time.monotonic()
    st, j = api("POST", "/api/v1/delete", raw=b'{"campaign":"big","pad":"' + b"a" * (10 << 20) + b'"}')
    if st != 400 or j.get("field") != "pad":
        raise Fail("a 10 MB delete body: %d %r" % (st, j))
    st, j = api("POST", "/api/v1/delete", raw=b"[" * (5 << 20))
    if st != 400:
        raise Fail("a 5 MB nested delete body: %d %r" % (st, j))
    log("10 MB and 5 MB delete bodies refused in %.1fs" % (time.monotonic() - t0))
    got = campaigns()
    if got["big"]["queued"] != 3 or any(ord(ch) < 32 for c in got for ch in c):
        raise Fail("after hostile requests: big %r, names %r" % (got["big"], [c for c in got if not c.isalnum()]))
    st, j = api("GET", "/api/v1/queues/%s/recipients?limit=1000" % DOM)
    mine = [r for r in j["recipients"] if r["recipient"] == bad]
    if len(mine) != 1 or mine[0].get("campaign"):
        raise Fail("the X-Job with a control byte: %r, want queued with no campaign" % mine)
    d.check_alive()
    log("1001 campaigns in 4 pages; metrics: 100 series, big first; hostile ids refused")


if __name__ == "__main__":
    for tool in ("tmux",):
        if not shutil.which(tool):
            print("SKIP: needs %s" % tool)
            raise SystemExit(77)
    harness.main([test_pause_restart, test_errors, test_outcomes, test_disk_full, test_many, test_top])
