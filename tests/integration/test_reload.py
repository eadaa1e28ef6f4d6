#!/usr/bin/python3
"""test_reload.py - live reload of the configuration (SIGHUP, POST /api/v1/reload,
salvoctl reload) in one salvod process.

  speedup    a blast of 300 messages to fast.test (MX at a salvo-sink, through
             dnsmasq) throttled by max-msg-rate 5/s arrives at ~5/s; a broken config
             (an unknown directive and a bad max-smtp-out) is refused on SIGHUP (its
             FILE:LINE errors in the log) and on POST /api/v1/reload (400 with every
             line in the JSON), and the 5/s limit stays (measured at the sink); POST
             /api/v1/reload with a monitor token is refused 403; then the file is edited
             to 50/s and SIGHUP makes the rest arrive at >= 30/s, same PID; the
             generation (status JSON and metrics) goes 1 -> 2 only on the success;
             every message arrives exactly once
  warnings   salvoctl reload and POST /api/v1/reload: a worker-threads change is
             reported "worker-threads changes on restart only" and the reload still
             happens (generation +1); a config dropping a virtual-mta is refused (400,
             generation unchanged) and mail keeps flowing through that virtual MTA
  loop       32 reloads (SIGHUP and API in turn, once both at once; throttles, caps
             changing) while 300 messages flow through two virtual MTAs, the last
             adding a virtual MTA and a pool: every message arrives once, the
             generation counts every reload (meant for valgrind too)
  listeners  smtp-listener added (answers 220) and removed (new connections refused,
             a session opened before finishes and is delivered) by reloads; an
             unchanged listener refuses nothing across 11 reloads; a port held by
             another process refuses the reload naming it
  http-access  http-api-token and http-access follow a reload (SIGHUP): a token added
             works at once, a removed one gets 401, a monitor role given to loopback
             by http-access refuses a POST (403) and taking it away restores it; no
             "changes on restart only" warning for them
  http-listener  the API moved by a reload (POST /api/v1/reload on the old address) to a
             new one: the answer still comes on the old connection, the new address
             answers, the old one refuses new connections while a live trace opened on
             it keeps streaming; once the trace ends the old listener is stopped (its
             threads gone) and a reload can take the address back; a port another
             process holds refuses the reload (400 naming it), nothing changes
  webhooks   an <acct-webhook> url moved by a reload: later records go to the new
             receiver only, acknowledged ones are not sent again; removing the block
             stops it
"""

import http.client
import http.server
import json
import os
import random
import re
import signal
import smtplib
import socket
import subprocess
import threading
import time

import harness
from harness import Fail, Injected, log, make_body, wait_until

SENDER = "owner@senders.test"
MON_TOKEN = "monitor-token-for-the-reload-test-0123"


def api(method, path, token=None, timeout=30):
    c = http.client.HTTPConnection(harness.SALVOD_HTTP[0], harness.SALVOD_HTTP[1], timeout=timeout)
    try:
        hdrs = {"Authorization": "Bearer " + token} if token else {}
        c.request(method, path, body=b"" if method == "POST" else None, headers=hdrs)
        r = c.getresponse()
        raw = r.read()
        ctype = r.getheader("Content-Type", "")
        return r.status, (json.loads(raw) if ctype.startswith("application/json") else raw.decode())
    finally:
        c.close()


def generation():
    """(generation, config_loaded_at, metrics' loaded timestamp); status and metrics
    must agree (read again when a reload finished between the two requests)."""
    for _ in range(5):
        st, j = api("GET", "/api/v1/status")
        if st != 200:
            raise Fail("GET /api/v1/status: %s %r" % (st, j))
        st, m = api("GET", "/metrics")
        g = re.search(r"^salvo_config_generation (\d+)$", m, re.M)
        t = re.search(r"^salvo_config_loaded_timestamp_seconds ([0-9.]+)$", m, re.M)
        if g and t and int(g.group(1)) == j.get("config_generation"):
            return j["config_generation"], j["config_loaded_at"], float(t.group(1))
        if api("GET", "/api/v1/status")[1].get("config_generation") == j.get("config_generation"):
            break    # no reload in between: they really disagree
    raise Fail("metrics and status disagree on the generation: %r vs %r" % (g and g.group(0), j.get("config_generation")))


def reloads(result):
    _, m = api("GET", "/metrics")
    g = re.search(r'^salvo_config_reloads_total\{result="%s"\} (\d+)$' % result, m, re.M)
    return int(g.group(1)) if g else None


def msg_times(sink):
    return sorted(e["time"] for e in sink.events() if e["ev"] == "msg")


def rate_between(times, a, b):
    n = sum(1 for t in times if a <= t < b)
    return n / (b - a) if b > a else 0.0


def line_of(text, needle):
    for i, ln in enumerate(text.split("\n"), 1):
        if needle in ln:
            return i
    raise AssertionError(needle)


def blast(n, domain, prefix):
    rng = random.Random(19)
    msgs = []
    for i in range(n):
        mid = "%s%d" % (prefix, i)
        rc = ["u%d@%s" % (i, domain)]
        msgs.append(Injected(mid, SENDER, rc, make_body(rng, mid, SENDER, rc, size=500)))
    harness.inject_all(msgs, threads=4, per_conn=25, timeout=60)
    return msgs


def config(env, rate, extra_dom=None, extra=""):
    spool = os.path.join(env.dir, "spool")
    dom = {"max-msg-rate": rate, "max-smtp-out": "4"}
    dom.update(extra_dom or {})
    return harness.salvod_config(spool, domains={"fast.test": dom},
                                 extra="http-api-token %s monitor\n%s" % (MON_TOKEN, extra))


# --------------------------------------------------------------------------

def test_speedup(env):
    env.dns(mx={"fast.test": [(10, "mx.fast.test")]}, a={"mx.fast.test": "127.0.0.2"},
            check=[("fast.test", "MX")])
    sink = env.salvo_sink("sinkFast", "127.0.0.2:25", dump=False)
    d = env.salvod_daemon(config_text=config(env, "5/s"))
    d.start()
    pid = d.proc.pid
    g0, loaded0, _ = generation()
    if g0 != 1:
        raise Fail("generation at start is %r, want 1" % g0)
    n = 300
    blast(n, "fast.test", "r")
    t0 = time.time()
    time.sleep(5)

    # a broken config: SIGHUP and the API refuse it, every error named
    bad = config(env, "50/s", extra_dom={"max-smtp-out": "lots"}, extra="no-such-directive yes\n")
    with open(d.config, "w") as f:
        f.write(bad)
    l1, l2 = line_of(bad, "lots"), line_of(bad, "no-such-directive")
    os.kill(pid, signal.SIGHUP)
    errlog = d.stderr_paths[-1]

    def logged():
        with open(errlog, errors="replace") as f:
            t = f.read()
        return "refused" in t and ("%s:%d:" % (d.config, l1)) in t and ("%s:%d:" % (d.config, l2)) in t
    if not wait_until(logged, 10, what="the refused reload in the log"):
        raise Fail("SIGHUP with a broken config: no refusal naming lines %d and %d in the log:\n%s"
                   % (l1, l2, harness.tail(errlog, 20)))
    st, j = api("POST", "/api/v1/reload")
    want = ["%s:%d:" % (d.config, l1), "%s:%d:" % (d.config, l2)]
    if st != 400 or not isinstance(j, dict) or j.get("config_generation") != 1 or \
       not all(any(e.startswith(w) for e in j.get("errors", [])) for w in want):
        raise Fail("POST /api/v1/reload of a broken config: %s %r, want 400 with errors at %r" % (st, j, want))
    log("broken config refused: %r" % j["errors"])
    st, j = api("POST", "/api/v1/reload", token=MON_TOKEN)
    if st != 403:
        raise Fail("POST /api/v1/reload as monitor: %s %r, want 403" % (st, j))
    if generation()[0] != 1 or reloads("error") != 2 or reloads("ok") != 0:
        raise Fail("after refused reloads: generation %r, reloads ok %r error %r; want 1, 0, 2"
                   % (generation()[0], reloads("ok"), reloads("error")))
    time.sleep(4)
    t_reload = time.time()
    times = msg_times(sink)
    slow = rate_between(times, t0 + 2, t_reload)
    log("before the reload: %d delivered, %.1f/s over the last %.1f s (limit 5/s)"
        % (len(times), slow, t_reload - t0 - 2))
    if not 3.0 <= slow <= 6.5:
        raise Fail("rate under max-msg-rate 5/s (the broken config refused) was %.1f/s" % slow)

    # the good edit: 50/s, same process
    with open(d.config, "w") as f:
        f.write(config(env, "50/s"))
    os.kill(pid, signal.SIGHUP)
    if not wait_until(lambda: generation()[0] == 2, 10, what="generation 2"):
        raise Fail("SIGHUP with a valid config: generation stays %r" % generation()[0])
    g, loaded, ts = generation()
    if loaded <= loaded0 or abs(ts - time.time()) > 30:
        raise Fail("config_loaded_at %r (was %r), metrics timestamp %r" % (loaded, loaded0, ts))
    left = n - len(msg_times(sink))
    if left < 100:
        raise Fail("only %d messages left for the fast phase: the 5/s limit did not hold" % left)
    if not wait_until(lambda: len(msg_times(sink)) >= n, 30, what="all messages"):
        raise Fail("%d of %d arrived" % (len(msg_times(sink)), n))
    times = msg_times(sink)
    t_end = times[-1]
    fast = rate_between(times, t_reload + 0.5, t_end + 0.001)
    log("after the reload: %d messages at %.1f/s (limit 50/s)" % (left, fast))
    if fast < 30:
        raise Fail("after the reload to 50/s the rate was %.1f/s" % fast)
    if d.proc.pid != pid or not d.alive():
        raise Fail("salvod was restarted")
    seen = sink.delivered()
    dup = {r: k for r, k in seen.items() if k != 1}
    if len(seen) != n or dup:
        raise Fail("%d distinct recipients arrived (want %d), duplicates %r" % (len(seen), n, dup))
    if reloads("ok") != 1 or reloads("error") != 2:
        raise Fail("reloads ok %r error %r, want 1 and 2" % (reloads("ok"), reloads("error")))


def test_warnings(env):
    env.dns(mx={"pool.test": [(10, "mx.pool.test")]}, a={"mx.pool.test": "127.0.0.3"},
            check=[("pool.test", "MX")])
    sink = env.salvo_sink("sinkPool", "127.0.0.3:25", dump=False)
    vm = "\n".join(["<virtual-mta mta1>", "  smtp-source-host 127.0.0.12 mta1.itest", "</virtual-mta>",
                    "<virtual-mta mta2>", "  smtp-source-host 127.0.0.13 mta2.itest", "</virtual-mta>",
                    "<virtual-mta-pool blast>", "  virtual-mta mta1", "  virtual-mta mta2", "</virtual-mta-pool>", ""])
    spool = os.path.join(env.dir, "spool")
    src = {"127.0.0.1": {"always-allow-relaying": "yes", "default-virtual-mta": "blast"}}
    text = harness.salvod_config(spool, sources=src, extra=vm,
                                 domains={"pool.test": {"max-msg-rate": "10/s", "max-smtp-out": "1"}})
    d = env.salvod_daemon(config_text=text)
    d.start()
    with open(d.config, "w") as f:
        f.write(text.replace("worker-threads   2", "worker-threads   3"))
    r = subprocess.run([harness.SALVOCTL, "--api", "http://%s:%d" % harness.SALVOD_HTTP, "reload"],
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0 or "generation 2" not in r.stdout or "worker-threads changes on restart only" not in r.stdout:
        raise Fail("salvoctl reload with worker-threads changed: rc %d\n%s%s" % (r.returncode, r.stdout, r.stderr))
    log("salvoctl reload: %s" % r.stdout.strip().replace("\n", " | "))
    # mta2 dropped: refused, nothing changes
    dropped = text.replace("  virtual-mta mta2\n", "").replace(
        "<virtual-mta mta2>\n  smtp-source-host 127.0.0.13 mta2.itest\n</virtual-mta>\n", "")
    with open(d.config, "w") as f:
        f.write(dropped)
    st, j = api("POST", "/api/v1/reload")
    if st != 400 or j.get("config_generation") != 2 or not any("mta2" in e for e in j.get("errors", [])):
        raise Fail("a config without virtual-mta mta2: %s %r, want 400 naming mta2 at generation 2" % (st, j))
    r = subprocess.run([harness.SALVOCTL, "--api", "http://%s:%d" % harness.SALVOD_HTTP, "reload"],
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 1 or "mta2" not in r.stderr:
        raise Fail("salvoctl reload of a refused config: rc %d\n%s%s" % (r.returncode, r.stdout, r.stderr))
    blast(40, "pool.test", "p")
    if not wait_until(lambda: len(sink.delivered()) >= 40, 30, what="40 messages"):
        raise Fail("%d of 40 arrived after the refused reload" % len(sink.delivered()))
    ips = {e["client"] for e in sink.events() if e["ev"] == "msg"}
    if ips != {"127.0.0.12", "127.0.0.13"}:
        raise Fail("after the refused reload mail left from %r, want both virtual MTAs" % sorted(ips))
    # a DKIM key that cannot be read: refused, nothing changes
    with open(d.config, "w") as f:
        f.write(text + "domain-key k1,senders.test,%s/missing.pem\n" % env.dir)
    st, j = api("POST", "/api/v1/reload")
    if st != 400 or j.get("config_generation") != 2 or not any("missing.pem" in e for e in j.get("errors", [])):
        raise Fail("a config with an unreadable DKIM key: %s %r, want 400 naming it at generation 2" % (st, j))
    # the file gone: refused, nothing changes
    os.rename(d.config, d.config + ".away")
    st, j = api("POST", "/api/v1/reload")
    os.rename(d.config + ".away", d.config)
    if st != 400 or j.get("config_generation") != 2 or not j.get("errors"):
        raise Fail("reload with the config file gone: %s %r, want 400 at generation 2" % (st, j))
    log("file gone: %r" % j["errors"])
    # and a plain valid reload through the API
    with open(d.config, "w") as f:
        f.write(text)
    st, j = api("POST", "/api/v1/reload")
    if st != 200 or j.get("config_generation") != 3 or j.get("warnings"):
        raise Fail("POST /api/v1/reload of the original config: %s %r, want 200 at generation 3, no warning" % (st, j))


def test_loop(env):
    """32 reloads (SIGHUP and API in turn, once both at once) while 300 messages flow through two
    virtual MTAs; the last one adds a virtual MTA and a pool: each message arrives
    once, the generation counts every reload. Run it under valgrind
    (SALVOD_WRAPPER) for the generations' lifetimes."""
    env.dns(mx={"loop.test": [(10, "mx.loop.test")]}, a={"mx.loop.test": "127.0.0.4"},
            check=[("loop.test", "MX")])
    sink = env.salvo_sink("sinkLoop", "127.0.0.4:25", dump=False)
    vm = "\n".join(["<virtual-mta mta1>", "  smtp-source-host 127.0.0.12 mta1.itest", "</virtual-mta>",
                    "<virtual-mta mta2>", "  smtp-source-host 127.0.0.13 mta2.itest", "</virtual-mta>",
                    "<virtual-mta-pool blast>", "  virtual-mta mta1", "  virtual-mta mta2", "</virtual-mta-pool>", ""])
    more = "\n".join(["<virtual-mta mta3>", "  smtp-source-host 127.0.0.14 mta3.itest", "</virtual-mta>",
                      "<virtual-mta-pool extra>", "  virtual-mta mta3", "</virtual-mta-pool>", ""])
    spool = os.path.join(env.dir, "spool")
    src = {"127.0.0.1": {"always-allow-relaying": "yes", "default-virtual-mta": "blast"}}
    texts = [harness.salvod_config(spool, sources=src, extra=vm,
                                   domains={"loop.test": {"max-msg-rate": r, "max-smtp-out": m,
                                                          "max-msg-per-connection": k}})
             for r, m, k in (("100/s", "2", "7"), ("300/s", "3", "3"))]
    d = env.salvod_daemon(config_text=texts[0])
    d.start()
    pid = d.proc.pid
    n = 300
    done = []
    th = threading.Thread(target=lambda: done.append(blast(n, "loop.test", "l")))
    th.start()
    reloads_done = 0
    for i in range(30):
        with open(d.config, "w") as f:
            f.write(texts[(i + 1) % 2] + (more if i == 29 else ""))
        if i % 2:
            st, j = api("POST", "/api/v1/reload")
            if st != 200:
                raise Fail("reload %d: %s %r" % (i, st, j))
        else:
            os.kill(pid, signal.SIGHUP)
        reloads_done += 1
        if i == 15:
            # SIGHUP and the API at once: one after the other, both count
            t2 = threading.Thread(target=lambda: os.kill(pid, signal.SIGHUP))
            t2.start()
            st, j = api("POST", "/api/v1/reload")
            t2.join()
            if st != 200:
                raise Fail("concurrent reload: %s %r" % (st, j))
            reloads_done += 2
        want = reloads_done + 1
        if not wait_until(lambda: generation()[0] == want, 10 * harness.SLOW, what="generation %d" % want):
            raise Fail("reload %d: generation %r, want %d" % (i, generation()[0], want))
        time.sleep(0.1)
    th.join(120)
    if not done:
        raise Fail("injection did not finish")
    if not wait_until(lambda: len(sink.delivered()) >= n, 60 * harness.SLOW, what="all messages"):
        raise Fail("%d of %d arrived" % (len(sink.delivered()), n))
    seen = sink.delivered()
    dup = {r: k for r, k in seen.items() if k != 1}
    if len(seen) != n or dup:
        raise Fail("%d distinct recipients arrived (want %d), duplicates %r" % (len(seen), n, dup))
    st, j = api("GET", "/api/v1/vmtas")
    if st != 200 or [v["name"] for v in j["vmtas"]][-1:] != ["mta3"]:
        raise Fail("after adding mta3: /api/v1/vmtas %s %r" % (st, j))
    log("%d reloads while %d messages flowed; generation %d" % (reloads_done, n, generation()[0]))


def test_listeners(env):
    """smtp-listener follows a reload: an added address answers 220 on the same
    process; a removed one refuses new connections while a session opened on it
    before finishes its message (250) and is delivered; an address that stays is
    never refused across 10 reloads (a client connecting in a loop); an address
    another process holds refuses the reload (400 naming it)."""
    env.dns(mx={"lst.test": [(10, "mx.lst.test")]}, a={"mx.lst.test": "127.0.0.5"},
            check=[("lst.test", "MX")])
    sink = env.salvo_sink("sinkLst", "127.0.0.5:25", dump=False)
    spool = os.path.join(env.dir, "spool")
    base = harness.salvod_config(spool)
    old = "smtp-listener    %s:%d" % harness.SALVOD_SMTP
    new_addr = (harness.SALVOD_SMTP[0], harness.SALVOD_SMTP[1] + 1)
    new = "smtp-listener    %s:%d" % new_addr
    d = env.salvod_daemon(config_text=base)
    d.start()

    def reload_to(text, want_status=200):
        with open(d.config, "w") as f:
            f.write(text)
        st, j = api("POST", "/api/v1/reload")
        if st != want_status:
            raise Fail("reload: %s %r, want %d" % (st, j, want_status))
        return j

    both = base.replace(old, old + "\n" + new)
    reload_to(both)
    b = harness.read_banner(new_addr, timeout=2.0)
    if not b or not b.startswith(b"220"):
        raise Fail("added listener %s:%d answers %r, want 220" % (new_addr + (b,)))
    # a session on the old address, open across its removal
    s = smtplib.SMTP(harness.SALVOD_SMTP[0], harness.SALVOD_SMTP[1], timeout=10)
    s.ehlo("client.itest")
    # a client connecting in a loop to the address that stays
    failures, tries, stop = [], [0], threading.Event()

    def hammer():
        while not stop.is_set():
            tries[0] += 1
            b = harness.read_banner(new_addr, timeout=2.0)
            if not b or not b.startswith(b"220"):
                failures.append(b)
    th = threading.Thread(target=hammer)
    th.start()
    only_new = base.replace(old, new)
    try:
        for i in range(10):
            reload_to(only_new if i % 2 == 0 else both)
            time.sleep(0.05)
        reload_to(only_new)
    finally:
        stop.set()
        th.join(10)
    if failures:
        raise Fail("%d of %d connections to the listener that stayed failed across reloads: %r"
                   % (len(failures), tries[0], failures[:3]))
    log("%d connections to %s:%d across 11 reloads, none refused" % (tries[0], new_addr[0], new_addr[1]))

    def old_refused():
        try:
            socket.create_connection(harness.SALVOD_SMTP, timeout=1).close()
            return False
        except OSError:
            return True
    if not wait_until(old_refused, 5, what="the removed listener closed"):
        raise Fail("the removed listener %s:%d still accepts connections" % harness.SALVOD_SMTP)
    body = ("From: owner@senders.test\r\nTo: a@lst.test\r\nSubject: across a reload\r\n\r\nhello\r\n")
    try:
        s.sendmail(SENDER, ["a@lst.test"], body)
        s.quit()
    except smtplib.SMTPException as e:
        raise Fail("the session opened before its listener was removed failed: %r" % e)
    if not wait_until(lambda: sink.delivered().get("a@lst.test") == 1, 20, what="the message"):
        raise Fail("the message sent on the removed listener's session did not arrive: %r" % sink.delivered())
    # a port another process holds: refused, nothing changes
    held = socket.socket()
    held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    held.bind((harness.SALVOD_SMTP[0], harness.SALVOD_SMTP[1] + 2))
    held.listen(1)
    try:
        g = generation()[0]
        busy = "smtp-listener    %s:%d" % (harness.SALVOD_SMTP[0], harness.SALVOD_SMTP[1] + 2)
        j = reload_to(only_new.replace(new, new + "\n" + busy), want_status=400)
        if not any("cannot listen on %s:%d" % (harness.SALVOD_SMTP[0], harness.SALVOD_SMTP[1] + 2) in e
                   for e in j.get("errors", [])) or generation()[0] != g:
            raise Fail("a held port: %r (generation %r, was %r)" % (j, generation()[0], g))
    finally:
        held.close()
    b = harness.read_banner(new_addr, timeout=2.0)
    if not b or not b.startswith(b"220"):
        raise Fail("after the refused reload %s:%d answers %r" % (new_addr + (b,)))


class Receiver:
    """An HTTP endpoint that records the recipients of the delivery records POSTed to it."""

    def __init__(self, port):
        rcv, self.rcpts, self.lock = self, [], threading.Lock()

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with rcv.lock:
                    rcv.rcpts += [e.get("recipient") for e in json.loads(body) if e.get("type") == "delivery"]
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
        self.srv.daemon_threads = True
        threading.Thread(target=self.srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def got(self):
        with self.lock:
            return list(self.rcpts)

    def down(self):
        self.srv.shutdown()
        self.srv.server_close()


def test_webhooks(env):
    """<acct-webhook> follows a reload: its url moves from receiver A to receiver B;
    records written after the reload go to B (none to A), B does not get the ones A
    acknowledged (the position survives the restart of the sender), GET
    /api/v1/webhooks shows the new url; a reload without the block stops it."""
    env.dns(mx={"wh.test": [(10, "mx.wh.test")]}, a={"mx.wh.test": "127.0.0.6"}, check=[("wh.test", "MX")])
    sink = env.salvo_sink("sinkWh", "127.0.0.6:25", dump=False)
    ra, rb = Receiver(18081), Receiver(18082)
    try:
        spool = os.path.join(env.dir, "spool")
        hook = "<acct-webhook hook>\n    url http://127.0.0.1:%d/\n    records delivery\n    max-delay 200ms\n</acct-webhook>\n"
        d = env.salvod_daemon(config_text=harness.salvod_config(spool, extra=hook % 18081))
        d.start()
        blast(20, "wh.test", "a")
        if not wait_until(lambda: len(set(ra.got())) >= 20, 20, what="20 records at A"):
            raise Fail("receiver A got %d of 20 delivery records" % len(set(ra.got())))
        with open(d.config, "w") as f:
            f.write(harness.salvod_config(spool, extra=hook % 18082))
        st, j = api("POST", "/api/v1/reload")
        if st != 200 or any("acct-webhook" in w for w in j.get("warnings", [])):
            raise Fail("reload with a new webhook url: %s %r" % (st, j))
        n_a = len(ra.got())
        rng = random.Random(5)
        msgs = []
        for i in range(20):
            rc = ["b%d@wh.test" % i]
            msgs.append(Injected("b%d" % i, SENDER, rc, make_body(rng, "b%d" % i, SENDER, rc, size=300)))
        harness.inject_all(msgs, threads=2, per_conn=10, timeout=30)
        second = {"b%d@wh.test" % i for i in range(20)}
        if not wait_until(lambda: second <= set(rb.got()), 20, what="20 records at B"):
            raise Fail("receiver B got %d of the 20 records written after the reload"
                       % len(second & set(rb.got())))
        late_a = [r for r in ra.got()[n_a:] if r in second]
        old_at_b = [r for r in rb.got() if r not in second]
        if late_a or len(old_at_b) > 0:
            raise Fail("after the reload A got %r, B got records A already had: %r" % (late_a, old_at_b))
        st, j = api("GET", "/api/v1/webhooks")
        urls = [w.get("url") for w in j.get("webhooks", [])]
        if urls != ["http://127.0.0.1:18082/"]:
            raise Fail("GET /api/v1/webhooks after the reload: %r" % j)
        with open(d.config, "w") as f:
            f.write(harness.salvod_config(spool))
        st, j = api("POST", "/api/v1/reload")
        st2, j2 = api("GET", "/api/v1/webhooks")
        if st != 200 or j2.get("webhooks"):
            raise Fail("reload without the webhook: %s %r, then %r" % (st, j, j2))
        # the sink writes its event after its 250 went out, so salvod's records
        # (and the webhooks) can be ahead of the sink's file for a moment
        if not wait_until(lambda: len(sink.delivered()) == 40, 10, what="40 at the sink"):
            raise Fail("sink got %d of 40" % len(sink.delivered()))
    finally:
        ra.down()
        rb.down()


def test_http_access(env):
    spool = os.path.join(env.dir, "spool")
    old_tok, new_tok = "old-token-0123456789abcdef", "new-token-0123456789abcdef"
    base = harness.salvod_config(spool)
    d = env.salvod_daemon(config_text=base + "http-api-token %s admin\n" % old_tok)
    d.start()
    pid = d.proc.pid

    def hup(text, gen):
        with open(d.config, "w") as f:
            f.write(text)
        os.kill(pid, signal.SIGHUP)
        if not wait_until(lambda: generation()[0] == gen, 10, what="generation %d" % gen):
            raise Fail("SIGHUP: generation stays %r" % generation()[0])

    if api("GET", "/api/v1/status", token=old_tok)[0] != 200 or api("GET", "/api/v1/status", token=new_tok)[0] != 401:
        raise Fail("before the reload: the old token must work, the new one get 401")
    hup(base + "http-api-token %s admin\n" % new_tok, 2)
    st, _ = api("POST", "/api/v1/queues/x.test/pause", token=new_tok)
    if st != 200:
        raise Fail("a token added by SIGHUP: %s, want 200" % st)
    if api("GET", "/api/v1/status", token=old_tok)[0] != 401:
        raise Fail("a token removed by SIGHUP still works")
    # http-access: loopback only monitors now, then admin again
    hup(base + "http-access 127.0.0.1/32 monitor\n", 3)
    if api("POST", "/api/v1/queues/x.test/resume")[0] != 403 or api("GET", "/api/v1/status")[0] != 200:
        raise Fail("http-access 127.0.0.1/32 monitor after SIGHUP: a POST must get 403, a GET 200")
    hup(base, 4)
    if api("POST", "/api/v1/queues/x.test/resume")[0] != 200:
        raise Fail("http-access removed by SIGHUP: loopback is not admin again")
    err = open(d.stderr_paths[-1], errors="replace").read()
    if "http-access" in err or "http-api-token" in err:
        raise Fail("a reload warned about http-access or http-api-token:\n%s" % err[-1500:])
    log("SIGHUP: added token 200, removed token 401, http-access monitor 403 then admin again")


def test_http_listener(env):
    spool = os.path.join(env.dir, "spool")
    host, port = harness.SALVOD_HTTP
    port2 = port + 1
    base = harness.salvod_config(spool)
    old_line = "http-listener    %s:%d" % (host, port)
    moved = base.replace(old_line, "http-listener    %s:%d" % (host, port2))
    both = base.replace(old_line, old_line + "\nhttp-listener    %s:%d" % (host, port2))
    d = env.salvod_daemon(config_text=base)
    d.start()
    pid = d.proc.pid

    def call(p, method, path):
        c = http.client.HTTPConnection(host, p, timeout=10)
        try:
            c.request(method, path, body=b"" if method == "POST" else None)
            r = c.getresponse()
            return r.status, json.loads(r.read())
        finally:
            c.close()

    def threads():
        return len(os.listdir("/proc/%d/task" % pid))
    t0 = threads()
    trace = socket.create_connection((host, port), timeout=10)
    trace.sendall(b"GET /api/v1/trace?domain=a.test&seconds=60 HTTP/1.1\r\nHost: x\r\n\r\n")
    if not trace.recv(4096).startswith(b"HTTP/1.1 200"):
        raise Fail("the live trace did not start")
    with open(d.config, "w") as f:
        f.write(moved)
    st, j = call(port, "POST", "/api/v1/reload")
    if st != 200 or j.get("config_generation") != 2 or any("http-listener" in w for w in j.get("warnings", [])):
        raise Fail("reload moving the API: %d %r" % (st, j))
    if call(port2, "GET", "/api/v1/status")[1].get("config_generation") != 2:
        raise Fail("the new http-listener does not answer")
    if not wait_until(lambda: not harness.port_open((host, port)), 5, what="the old address to refuse"):
        raise Fail("the removed http-listener still accepts connections")
    trace.settimeout(0.5)
    try:
        if trace.recv(4096) == b"":
            raise Fail("the live trace on the removed listener was cut")
    except socket.timeout:
        pass  # open and quiet: fine
    time.sleep(1.5)  # a second reap at least: the trace holds the old listener
    t_both = threads()
    log("threads: %d at start, %d with the old listener retiring" % (t0, t_both))
    if t_both < t0 + 2:
        raise Fail("the removed listener's threads are gone while its trace is open (%d, %d at start)" % (t_both, t0))
    trace.close()
    if not wait_until(lambda: threads() <= t_both - 2, 10, interval=0.2, what="the retired listener to stop"):
        raise Fail("the removed listener is still running after its last connection (%d threads, %d before)"
                   % (threads(), t_both))
    with open(d.config, "w") as f:
        f.write(both)
    st, j = call(port2, "POST", "/api/v1/reload")
    if st != 200 or call(port, "GET", "/api/v1/status")[0] != 200:
        raise Fail("the old address back by a reload: %d %r" % (st, j))
    # a port another process holds: refused, nothing changes
    holder = socket.socket()
    holder.bind((host, port + 2))
    holder.listen(1)
    try:
        with open(d.config, "w") as f:
            f.write(both + "http-listener    %s:%d\n" % (host, port + 2))
        st, j = call(port, "POST", "/api/v1/reload")
        if st != 400 or not any("%s:%d" % (host, port + 2) in e for e in j.get("errors", [])) \
                or j.get("config_generation") != 3:
            raise Fail("a held port: %d %r, want 400 naming it at generation 3" % (st, j))
        if call(port2, "GET", "/api/v1/status")[0] != 200:
            raise Fail("a refused reload closed a listener")
    finally:
        holder.close()
    d.check_alive()
    log("http-listener moved by a reload: answer on the old connection, trace kept, old listener "
        "stopped when idle, address taken back; a held port refused")


if __name__ == "__main__":
    harness.main([test_speedup, test_warnings, test_loop, test_listeners, test_http_access, test_http_listener, test_webhooks])
