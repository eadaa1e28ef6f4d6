#!/usr/bin/python3
"""test_memory.py - per-domain state does not outlive its mail.

  many-domains  N recipients (20,000 here; bench/many_domains.sh runs 100,000) at N
                distinct domains that do not exist (NXDOMAIN: all bounce at once), from
                the null sender (no DSNs, to keep it bounded). Once everything is
                bounced and salvod has been idle for queue-free-after (3 s here), its
                queues are freed (salvo_queues back to a handful), its anonymous memory
                (RssAnon) is back within 40 MB of what it was before the mail came,
                and GET /api/v1/queues answers quickly and lists no leftovers.
  pause-unknown POST /api/v1/queues/<name>/pause for 500 names that have no mail makes
                no queue (salvo_queues does not grow by 500) but is recorded as a pause,
                in the spool (mdb_stat counts them): the names are listed as paused,
                also after a restart, and mail that comes for one later waits until it
                is resumed; resumes empty the pause database
Numbers (RssAnon before, at the peak, after; freeing time; API latency) are logged.
"""

import os
import re
import subprocess
import time
import urllib.request

import harness
from harness import Fail, Injected, find_records, log, wait_until

N = int(os.environ.get("SALVO_MANY_DOMAINS", "20000"))
PER_MSG = 1000


def api(method, path, timeout=30):
    req = urllib.request.Request("http://%s:%d%s" % (harness.SALVOD_HTTP + (path,)), method=method)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read().decode()


def metric(name):
    m = re.search(r"^%s (\S+)$" % re.escape(name), api("GET", "/metrics"), re.M)
    return float(m.group(1)) if m else None


def rss_anon_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    raise Fail("no RssAnon for pid %d" % pid)


def sanitized(pid):
    """Is salvod an ASan build? Its allocator keeps freed memory (quarantine)."""
    with open("/proc/%d/maps" % pid) as f:
        return "libasan" in f.read()


def test_many_domains(env):
    env.dns()
    free_after = os.environ.get("SALVO_QUEUE_FREE_AFTER", "3s")   # "" = salvod's default
    d = env.salvod_daemon(extra="queue-free-after %s\n" % free_after if free_after else "")
    d.start()
    pid = d.proc.pid
    time.sleep(2.0)
    api("GET", "/api/v1/queues")
    api("GET", "/metrics")
    before = rss_anon_kb(pid)
    msgs = []
    for i in range(0, N, PER_MSG):
        rcpts = ["u@d%d-%d.test" % (i, j) for j in range(min(PER_MSG, N - i))]
        body = ("From: <m@x.test>\r\nTo: <u@x.test>\r\nSubject: many %d\r\nMessage-ID: <many%d@itest>\r\n\r\n"
                "hello\r\n" % (i, i)).encode()
        msgs.append(Injected("many%d" % i, "", rcpts, body))
    t0 = time.monotonic()
    harness.inject(msgs, threads=2, per_conn=5, timeout=600)
    bad = [(m.mid, m.error) for m in msgs if m.error]
    if bad:
        raise Fail("not acknowledged: %r" % bad[:3])
    t_inj = time.monotonic() - t0
    peak = [rss_anon_kb(pid)]

    def all_bounced():
        peak[0] = max(peak[0], rss_anon_kb(pid))
        return metric("salvo_messages_bounced_total") == N
    if not wait_until(all_bounced, 600, interval=0.5, what="every recipient bounced"):
        raise Fail("only %r of %d recipients bounced" % (metric("salvo_messages_bounced_total"), N))
    t_bounced = time.monotonic() - t0
    queues_peak = metric("salvo_queues")
    t1 = time.monotonic()
    def freed():
        n = metric("salvo_queues")
        return n is not None and n <= 2
    if not wait_until(freed, 150, interval=0.5, what="idle queues freed"):
        raise Fail("queues not freed: salvo_queues %r (freed %r); RssAnon %.1f MB, %.1f MB before"
                   % (metric("salvo_queues"), metric("salvo_queues_freed_total"), rss_anon_kb(pid) / 1024,
                      before / 1024))
    t_freed = time.monotonic() - t1
    # allocator returns freed pages within a few seconds (jemalloc decay); give it that
    after = None
    deadline = time.monotonic() + (0 if sanitized(pid) else 30)
    while True:
        after = rss_anon_kb(pid)
        if after - before <= 40 * 1024 or time.monotonic() >= deadline:
            break
        time.sleep(1.0)
    lat = []
    for _ in range(5):
        t = time.monotonic()
        text = api("GET", "/api/v1/queues")
        lat.append(time.monotonic() - t)
    listed = text.count('"domain"')
    log("%d recipients at %d domains: injected in %.1fs, all bounced after %.1fs; queues at their peak %r, "
        "freed %.1fs after; RssAnon %.1f MB before, %.1f MB peak, %.1f MB after (+%.1f MB); "
        "GET /api/v1/queues %.1f ms (max of 5), %d queues listed"
        % (N, N, t_inj, t_bounced, queues_peak, t_freed, before / 1024, peak[0] / 1024, after / 1024,
           (after - before) / 1024, max(lat) * 1000, listed))
    if sanitized(pid):
        log("salvod runs with AddressSanitizer (freed memory sits in its quarantine): RssAnon not checked")
    elif after - before > 40 * 1024:
        raise Fail("RssAnon %.1f MB after idle, %.1f MB before: %.1f MB more (limit 40)"
                   % (after / 1024, before / 1024, (after - before) / 1024))
    if listed > 2:
        raise Fail("/api/v1/queues still lists %d queues" % listed)
    if max(lat) > 1.0:
        raise Fail("GET /api/v1/queues took %.0f ms" % (max(lat) * 1000))
    d.check_alive()




def _paused_listed():
    return api("GET", "/api/v1/queues?mode=paused").count('"domain"')


def test_pause_unknown(env):
    env.dns(mx={"later.test": [(10, "mx.sink.test")]}, a={"mx.sink.test": "127.0.0.2"},
            check=[("later.test", "MX")])
    sink = env.salvo_sink("sink", "127.0.0.2:25")
    d = env.salvod_daemon()
    d.start()
    q0 = metric("salvo_queues")
    for i in range(500):
        api("POST", "/api/v1/queues/nobody%d.test/pause" % i)
    api("POST", "/api/v1/queues/later.test/pause")
    if not wait_until(lambda: _paused_listed() == 501, 10, what="501 paused names listed"):
        raise Fail("want the 501 paused names listed as paused, got %d" % _paused_listed())
    q1 = metric("salvo_queues")
    if q1 > q0 + 1:
        raise Fail("pauses of unknown names made queues: salvo_queues %r -> %r" % (q0, q1))
    # the pauses are in the spool: a restart keeps them
    d.stop()
    wait_until(lambda: not harness.port_open(harness.SALVOD_SMTP), 10, what="salvod's port to close")
    if harness.mdb_entries(d.spool, "pause") != 501:
        raise Fail("mdb_stat: %d entries in pause, want 501" % harness.mdb_entries(d.spool, "pause"))
    d.start()
    if not wait_until(lambda: _paused_listed() == 501, 10, what="pauses after a restart"):
        raise Fail("after a restart %d paused names are listed, want 501" % _paused_listed())
    m = Injected("pl1", "owner@senders.test", ["x@later.test"],
                 b"From: <owner@senders.test>\r\nTo: <x@later.test>\r\nSubject: later\r\n\r\nhi\r\n")
    harness.inject([m], threads=1, per_conn=1)
    if m.error:
        raise Fail("not acknowledged: %r" % m.error)
    time.sleep(2.0)
    if sink.arrivals():
        raise Fail("mail for a queue paused before it existed (and before a restart) was delivered")
    api("POST", "/api/v1/queues/later.test/resume")
    if not wait_until(lambda: len(sink.arrivals()) == 1, 15, what="delivery after resume"):
        raise Fail("not delivered after resume")
    for i in range(500):
        api("POST", "/api/v1/queues/nobody%d.test/resume" % i)
    if not wait_until(lambda: "nobody" not in api("GET", "/api/v1/queues"), 10, what="resumed names gone"):
        raise Fail("resumed names still listed")
    d.stop()
    if harness.mdb_entries(d.spool, "pause") != 0:
        raise Fail("resumes not recorded: %d entries left in pause" % harness.mdb_entries(d.spool, "pause"))
    log("500 pauses of unknown queues: recorded in the spool (mdb_stat: 501 with later.test) and listed as "
        "paused, no queue made (salvo_queues %r -> %r); kept across a restart; a queue paused before its "
        "mail came held it until resumed; resumes emptied the pause database" % (q0, q1))


if __name__ == "__main__":
    harness.main([test_many_domains, test_pause_unknown], needs_sink=True)
