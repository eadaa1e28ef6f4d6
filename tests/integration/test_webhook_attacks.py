#!/usr/bin/python3
"""test_webhook_attacks.py - accounting webhooks against hostile and broken receivers
(real sockets: http.server, ssl), each as its own <acct-webhook> block beside a healthy one.

  hostile   one salvod, nine webhooks, each receiver misbehaving in its own way for its
            first POSTs (or all of them): never answers (timeout 1 s), answers 2xx
            byte by byte with a body that trickles on for seconds, 2xx with an endless
            chunked body, 302 to another receiver, 429 with Retry-After: 2, 400 (and
            records bounce only), a reset in the middle of the status line, a host that
            does not resolve; then each behaves. 300 messages (10% bounced) all reach
            the sink while the webhooks fail; the healthy webhook gets each event within
            a few seconds of its record (not held back by the others); every webhook
            gets every record of its types, in log order, none acknowledged twice (a
            2xx is acknowledged once its headers are in: a trickling or endless body
            does not make salvod send the batch again); a failed batch is retried with
            the same bytes; a redirect is never followed (the other receiver sees
            nothing) and counts as a failure; the POST after a 429 waits its
            Retry-After; the API shows failures, the never-answering webhook's backlog,
            oldest-record age (growing) and stall while it hangs
  deaddns   the system resolver's server swallows queries (a webhook whose host cannot
            be looked up, each lookup hanging for seconds) beside a healthy webhook and
            two HTTPS webhooks, one whose certificate is for another name, one signed
            by a CA it does not trust: the healthy one is not held back; the TLS ones
            fail (never sent unverified) and retry; the receiver gets the right
            certificate, a reload trusts the right CA (POST /api/v1/reload, which
            answers promptly despite the hanging lookup), and a fourth webhook's ca-file
            gets the right CA in place (its block unchanged): then everything arrives;
            SIGTERM stops salvod promptly
  backlog   the receiver is down (connection refused) while 60,000 records accumulate
            (synthetic delivery lines appended to acct.jsonl between two real blasts):
            salvod's RSS stays within 24 MiB of where it was, GET /api/v1/webhooks and
            /metrics report the backlog (in bytes, and in records: exactly the records
            unsent) and a growing oldest-record age; after recovery
            every record arrives once, in order
  midbatch  a batch held by a receiver that never answers when salvod gets SIGTERM
            (it stops promptly; after the restart the batch is sent again first, the
            same event_ids); then three kill -9 during blasts, each with a batch held:
            every event arrives once (records the outbox writes to the log again at a
            start, the same event_id further down, are not sent twice); SIGTERM while
            a receiver takes 0.4 s to answer: salvod waits for it, nothing is resent
  toolarge  a receiver that answers 413 to a POST of more than 7 records (max-batch 40):
            the same records go in smaller POSTs (halved at each 413, so at most three
            413s), each signed over its own bytes, every event once and in order
  proxy     https_proxy set for salvod: the proxy's "200 Connection established" is
            not taken for the answer of a receiver behind it that never answers
"""

import hashlib
import hmac
import json
import os
import re
import socket
import ssl
import struct
import subprocess
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import harness
from harness import Fail, Injected, log, wait_until

SENDER = "hooks@senders.test"
SECRET = "attack-secret"
DOMAINS = ["a%d.test" % i for i in range(4)]
HOST = "127.0.0.1"


class Rcv:
    """An http.server receiver whose POSTs follow a script of modes (then `default`).
    Every POST is recorded: t, mode, ids, body hash, path, acked (a 2xx header block
    went out), sig_ok, t_end."""

    def __init__(self, port, script=(), default="ok", tls=None):
        self.port, self.tls = port, tls
        self.script, self.default = list(script), default
        self.lock = threading.Lock()
        self.posts = []
        self.release = threading.Event()     # ends the "hang"s
        self.srv = None

    def up(self):
        rcv = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def raw(self, data, gap=0.0):
                """Write data (byte by byte with gap); False when the peer went away."""
                try:
                    if not gap:
                        self.wfile.write(data)
                        self.wfile.flush()
                        return True
                    for i in range(len(data)):
                        self.wfile.write(data[i:i + 1])
                        self.wfile.flush()
                        time.sleep(gap)
                    return True
                except OSError:
                    return False

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                want = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
                try:
                    ids = [e["event_id"] for e in json.loads(body)]
                    types = [e["type"] for e in json.loads(body)]
                except (ValueError, KeyError, TypeError):
                    ids, types = None, None
                with rcv.lock:
                    mode = rcv.script.pop(0) if rcv.script else rcv.default
                    p = {"t": time.monotonic(), "mode": mode, "ids": ids, "types": types, "path": self.path,
                         "hash": hashlib.sha256(body).hexdigest(), "acked": False, "t_end": None,
                         "sig_ok": hmac.compare_digest(self.headers.get("X-Salvo-Signature", ""), want)}
                    rcv.posts.append(p)
                self.close_connection = mode != "ok"
                if ids is None:
                    self.raw(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                elif mode == "ok":
                    if self.raw(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"):
                        p["acked"] = True
                elif mode == "hang":
                    rcv.release.wait(60)
                elif mode == "slow":
                    time.sleep(0.4)
                    if self.raw(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"):
                        p["acked"] = True
                elif mode == "trickle":
                    # the whole answer byte by byte: headers in ~0.4 s, then a body
                    # that would take 8 s
                    if self.raw(b"HTTP/1.1 200 OK\r\nContent-Length: 400\r\n\r\n", 0.01):
                        p["acked"] = True
                        self.raw(b"x" * 400, 0.02)
                elif mode == "huge":
                    if self.raw(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"):
                        p["acked"] = True
                        chunk = b"%x\r\n%s\r\n" % (65536, b"z" * 65536)
                        for _ in range(3000):      # up to ~200 MB, while salvod reads
                            if not self.raw(chunk):
                                break
                elif mode == "redirect":
                    self.raw(b"HTTP/1.1 302 Found\r\nLocation: http://%s:%d/stolen\r\nContent-Length: 0\r\n\r\n"
                             % (HOST.encode(), rcv.redirect_to))
                elif mode == "429":
                    self.raw(b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 2\r\nContent-Length: 0\r\n\r\n")
                elif mode == "max7":
                    # a body limit (nginx's client_max_body_size): 413 above 7 records
                    if len(ids) > 7:
                        self.raw(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n")
                    elif self.raw(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"):
                        p["acked"] = True
                elif mode == "400":
                    self.raw(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 16\r\n\r\n{\"error\":\"bad\"}\n")
                elif mode == "reset":
                    self.raw(b"HTTP/1.1 200 O")
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                p["t_end"] = time.monotonic()

        self.srv = ThreadingHTTPServer((HOST, self.port), H)
        self.srv.daemon_threads = True
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*self.tls)
            self.srv.socket = ctx.wrap_socket(self.srv.socket, server_side=True)
        threading.Thread(target=self.srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def down(self):
        if self.srv:
            self.release.set()
            self.srv.shutdown()
            self.srv.server_close()
            self.srv = None
            self.release = threading.Event()

    def url(self, path="/hook"):
        return "%s://%s:%d%s" % ("https" if self.tls else "http", HOST, self.port, path)

    def snapshot(self):
        with self.lock:
            return [dict(p) for p in self.posts]

    def acked_ids(self):
        return [i for p in self.snapshot() if p["acked"] for i in p["ids"]]


def block(name, url, extra="", records="delivery,bounce"):
    return ("<acct-webhook %s>\n    url %s\n    records %s\n    max-batch 40\n    max-delay 100ms\n"
            "    secret %s\n    timeout 1s\n    retry-max 1s\n%s</acct-webhook>\n" % (name, url, records, SECRET, extra))


def api_json(path, method="GET", timeout=30):
    req = urllib.request.Request("http://%s:%d%s" % (harness.SALVOD_HTTP + (path,)), method=method,
                                 data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        raw = r.read().decode()
    return json.loads(raw) if raw.startswith("{") else raw


def hooks():
    return {w["name"]: w for w in api_json("/api/v1/webhooks")["webhooks"]}


def msgs(prefix, n, bad_every=10):
    out = []
    for i in range(n):
        rcpt = "%s%s%d@%s" % ("bad" if bad_every and i % bad_every == 3 else "u", prefix, i, DOMAINS[i % len(DOMAINS)])
        body = ("From: <%s>\r\nTo: <%s>\r\nSubject: %s %d\r\nMessage-ID: <%s%d@itest>\r\n\r\nhello\r\n"
                % (SENDER, rcpt, prefix, i, prefix, i))
        out.append(Injected("%s%d" % (prefix, i), SENDER, [rcpt], body.encode()))
    return out


def setup_mail(env):
    env.dns(mx={d: [(10, "mx.sink.test")] for d in DOMAINS + ["senders.test"]}, a={"mx.sink.test": "127.0.0.2"},
            check=[("a0.test", "MX")])
    return env.salvo_sink("sink", "127.0.0.2:25", dump=False,
                          extra_args=["--fault", r"at=rcpt,match=^bad,reply=550 5.1.1 user unknown"])


def n_records(d):
    """Lines in the accounting log (a cheap count to wait on)."""
    n = 0
    for p in os.listdir(os.path.join(d.spool, "log")):
        if p.endswith(".jsonl"):
            with open(os.path.join(d.spool, "log", p), "rb") as f:
                n += f.read().count(b"\n")
    return n


def log_events(d, types=("delivery", "bounce")):
    """[(event_id, wall time s)] of the log's records of those types, in log order, once each."""
    out, seen = [], set()
    for r in d.acct():
        if r["type"] in types and r["event_id"] not in seen:
            seen.add(r["event_id"])
            t = time.mktime(time.strptime(r["time"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
            out.append((r["event_id"], t + int(r["time"][20:23]) / 1000.0))
    return out


def check_arrived(name, rcv, want_ids, dup_ok=False):
    """Every id of want_ids acknowledged by rcv, first arrivals in want_ids' order; no id
    acknowledged twice unless dup_ok."""
    got = rcv.acked_ids()
    have = set(got)
    missing = [i for i in want_ids if i not in have]
    if missing:
        raise Fail("webhook %s: %d of %d events never acknowledged (posts: %r)" % (
            name, len(missing), len(want_ids), [(p["mode"], p["acked"], len(p["ids"] or [])) for p in rcv.snapshot()][:12]))
    pos = {e: k for k, e in enumerate(want_ids)}
    first, seen = [], set()
    for i in got:
        if i not in seen:
            seen.add(i)
            first.append(pos.get(i, -1))
    if -1 in first:
        raise Fail("webhook %s: got an event of a type it did not ask for, or one not in the log" % name)
    if first != sorted(first):
        raise Fail("webhook %s: events out of log order" % name)
    if not dup_ok and len(got) != len(set(got)):
        raise Fail("webhook %s: %d events acknowledged twice (modes %r)" % (
            name, len(got) - len(set(got)), [p["mode"] for p in rcv.snapshot()][:12]))


def retried_same(name, rcv, failing):
    """Each POST answered in a failing mode is followed by one with the same bytes."""
    posts = rcv.snapshot()
    for k, p in enumerate(posts):
        if p["mode"] in failing:
            if k + 1 >= len(posts) or posts[k + 1]["hash"] != p["hash"]:
                raise Fail("webhook %s: the batch that got %r was not sent again as it was" % (name, p["mode"]))
        if not p["sig_ok"]:
            raise Fail("webhook %s: a POST whose signature does not verify" % name)


def test_hostile(env):
    setup_mail(env)
    ports = iter(range(18101, 18120))
    healthy = Rcv(next(ports)).up()
    rcv = {
        "hang": Rcv(next(ports), default="hang"),    # until the test lets it answer
        "trickle": Rcv(next(ports), default="trickle"),
        "huge": Rcv(next(ports), default="huge"),
        "redirect": Rcv(next(ports), ["redirect"] * 3),
        "ratelimit": Rcv(next(ports), ["429"] * 2),
        "badreq": Rcv(next(ports), ["400"] * 3),
        "reset": Rcv(next(ports), ["reset"] * 3),
    }
    rcv["redirect"].redirect_to = healthy.port
    for r in rcv.values():
        r.redirect_to = getattr(r, "redirect_to", healthy.port)
        r.up()
    extra = block("healthy", healthy.url())
    for name, r in rcv.items():
        extra += block(name, r.url(), records="bounce" if name == "badreq" else "delivery,bounce")
    extra += block("nodns", "http://hook.nowhere.invalid:18199/hook")
    d = env.salvod_daemon(default_domain={"retry-after": "1s", "max-smtp-out": "4"}, extra=extra)
    d.start()
    n, t0 = 300, time.monotonic()
    for k in range(3):
        harness.inject_all(msgs("h%d-" % k, n // 3), threads=2, per_conn=50, timeout=30)
        time.sleep(0.5)
    # delivery goes on while the webhooks fail: every recipient finished at the sink
    want_log = lambda: len(log_events(d)) >= n
    if not wait_until(want_log, 40, interval=0.3, what="a delivery or bounce record for every message"):
        raise Fail("only %d of %d messages finished while the webhooks failed" % (len(log_events(d)), n))
    log("300 messages finished in %.1f s with 8 webhooks failing" % (time.monotonic() - t0))
    # while "hang" hangs: backlog, age, stall in the API
    wait_until(lambda: hooks()["hang"]["stalled"], 10, what="the hanging webhook flagged stalled")
    st1 = hooks()["hang"]
    time.sleep(1.2)
    st2 = hooks()
    h = st2["hang"]
    log("hang while hanging: %r" % {k: h[k] for k in ("records_sent", "failures", "backlog_bytes",
                                                      "oldest_unsent_seconds", "stalled", "last_error")})
    if h["records_sent"] != 0 or h["backlog_bytes"] <= 0 or h["oldest_unsent_seconds"] <= 0 or \
            h["failures"] < 3 or not h["stalled"] or not re.search(r"timed? ?out", h["last_error"] or "", re.I):
        raise Fail("a webhook whose receiver never answers: %r" % h)
    if h["oldest_unsent_seconds"] <= st1["oldest_unsent_seconds"]:
        raise Fail("the oldest-record age does not grow: %r -> %r" % (st1, h))
    hang_failures = h["failures"]
    with rcv["hang"].lock:
        rcv["hang"].default = "ok"
    rcv["hang"].release.set()
    events = log_events(d)
    ids = [e for e, _ in events]
    bounce_ids = [e for e, _ in log_events(d, ("bounce",))]
    if not wait_until(lambda: all(set(ids) <= set(r.acked_ids()) for nm, r in rcv.items() if nm != "badreq")
                      and set(bounce_ids) <= set(rcv["badreq"].acked_ids()), 40, interval=0.3,
                      what="every event at every receiver"):
        pass  # check_arrived says which
    check_arrived("healthy", healthy, ids)
    for name, r in rcv.items():
        check_arrived(name, r, bounce_ids if name == "badreq" else ids)
    # not held back: the healthy webhook had each event within a few seconds of its record
    when = {}
    for p in healthy.snapshot():
        for i in p["ids"]:
            when.setdefault(i, p["t"])
    wall_minus_mono = time.time() - time.monotonic()
    lags = [when[e] + wall_minus_mono - t for e, t in events]
    log("healthy webhook: lag of its events behind their records: max %.2f s, mean %.2f s"
        % (max(lags), sum(lags) / len(lags)))
    if max(lags) > 4.0 * harness.SLOW:
        raise Fail("the healthy webhook was held back: an event arrived %.1f s after its record" % max(lags))
    # failures were retried with the same bytes; redirects never followed
    for name, modes in (("hang", {"hang"}), ("redirect", {"redirect"}), ("ratelimit", {"429"}),
                        ("badreq", {"400"}), ("reset", {"reset"})):
        retried_same(name, rcv[name], modes)
        if not any(p["mode"] in modes for p in rcv[name].snapshot()):
            raise Fail("webhook %s: its receiver never misbehaved (script not used)" % name)
    if any(p["path"] == "/stolen" for p in healthy.snapshot()):
        raise Fail("a 302 was followed to another receiver")
    posts = rcv["ratelimit"].snapshot()
    gaps = [posts[k + 1]["t"] - posts[k]["t_end"] for k in range(len(posts) - 1) if posts[k]["mode"] == "429"]
    log("ratelimit: after each 429 (Retry-After: 2) the next POST came %s s later" % ["%.2f" % g for g in gaps])
    if not gaps or min(gaps) < 1.8:
        raise Fail("Retry-After: 2 was not honoured: next POST %r s after the 429s" % gaps)
    for name in ("trickle", "huge"):
        if any(not p["acked"] for p in rcv[name].snapshot()):
            raise Fail("webhook %s: a POST its receiver did not answer 2xx" % name)
    wait_until(lambda: all(v["records_sent"] == (len(bounce_ids) if k == "badreq" else len(ids)) and
                           v["backlog_bytes"] == 0 for k, v in hooks().items() if k != "nodns"), 10,
               interval=0.2, what="every webhook's figures caught up")
    st = hooks()
    summary = {k: (v["records_sent"], v["failures"], v["stalled"], v["last_error"]) for k, v in st.items()}
    log("api: %r" % summary)
    # (at least: on a loaded machine a POST may also time out now and then)
    want_fail = {"hang": hang_failures, "redirect": 3, "ratelimit": 2, "badreq": 3, "reset": 3}
    for name, k in want_fail.items():
        if st[name]["failures"] < k:
            raise Fail("webhook %s: %d failures counted, want %d" % (name, st[name]["failures"], k))
    for name in ("healthy", "trickle", "huge"):
        if st[name]["records_sent"] != len(ids):
            raise Fail("webhook %s: %r" % (name, st[name]))
    nd = st["nodns"]
    if nd["records_sent"] != 0 or nd["failures"] < 3 or not nd["stalled"] or not nd["last_error"] or \
            not re.search(r"resolve", nd["last_error"], re.I) or nd["backlog_bytes"] <= 0:
        raise Fail("a webhook whose host does not resolve: %r" % nd)
    with open(d.stderr_paths[-1], errors="replace") as f:
        said = f.read()
    for name, why in (("redirect", "HTTP status 302 (a redirect: not followed)"), ("ratelimit", "HTTP status 429"),
                      ("badreq", "HTTP status 400"), ("hang", "timed out"), ("reset", "reset")):
        if not re.search(r"webhook %s: POST of \d+ records failed \([^\n]*%s" % (name, re.escape(why)), said):
            raise Fail("salvod's log does not say why webhook %s failed (%r)" % (name, why))
    t = time.monotonic()
    d.stop()
    log("SIGTERM with a webhook retrying an unresolvable host: stopped in %.2f s" % (time.monotonic() - t))
    for r in rcv.values():
        r.down()
    healthy.down()


def _blackhole_resolver():
    """Make the system resolver's nameserver (this private network namespace's copy of
    its address) swallow every query; None when that cannot be done here."""
    try:
        with open("/etc/resolv.conf") as f:
            ns = [ln.split()[1] for ln in f if ln.startswith("nameserver") and len(ln.split()) > 1]
    except OSError:
        return None
    if not ns or not re.match(r"^\d+\.\d+\.\d+\.\d+$", ns[0]) or not harness._in_private_netns[0]:
        return None
    addr = ns[0]
    if not addr.startswith("127."):
        r = subprocess.run(["ip", "addr", "add", addr + "/32", "dev", "lo"], capture_output=True)
        if r.returncode != 0:
            return None
    socks = []
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        s = socket.socket(socket.AF_INET, kind)
        s.bind((addr, 53))
        if kind == socket.SOCK_STREAM:
            s.listen(16)
        socks.append(s)
    return addr, socks


def _ca(env, name):
    key, crt = os.path.join(env.dir, name + ".key"), os.path.join(env.dir, name + ".crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt, "-days",
                    "2", "-subj", "/CN=" + name, "-addext", "basicConstraints=critical,CA:TRUE",
                    "-addext", "keyUsage=keyCertSign"], check=True, capture_output=True)
    return crt, key


def _leaf(env, ca, name, san):
    key, csr, crt = (os.path.join(env.dir, name + x) for x in (".key", ".csr", ".crt"))
    ext = env.write(name + ".ext", "subjectAltName=%s\n" % san)
    subprocess.run(["openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
                    "-subj", "/CN=" + name], check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
                    "-out", crt, "-days", "2", "-extfile", ext], check=True, capture_output=True)
    return crt, key


def test_deaddns(env):
    setup_mail(env)
    bh = _blackhole_resolver()
    if bh is None:
        log("note: cannot blackhole the system resolver here; the dead-DNS webhook only fails to resolve")
    ca_a, ca_b = _ca(env, "ca-a"), _ca(env, "ca-b")
    wrong = _leaf(env, ca_a, "wrongname", "DNS:wrong.name.test")
    right = _leaf(env, ca_a, "rightname", "IP:127.0.0.1")
    healthy = Rcv(18131).up()
    rw = Rcv(18132, tls=wrong).up()              # trusted CA, certificate for another name
    ru = Rcv(18133, tls=right).up()              # right name, signed by a CA it does not trust
    rf = Rcv(18135, tls=right).up()              # the same, its ca-file to be fixed in place
    inplace = env.write("inplace-ca.pem", open(ca_b[0]).read())
    hook_ca = lambda ca_u: (block("healthy", healthy.url()) +
                            block("wrongname", rw.url(), "    ca-file %s\n" % ca_a[0]) +
                            block("untrusted", ru.url(), "    ca-file %s\n" % ca_u) +
                            block("cafile", rf.url(), "    ca-file %s\n" % inplace) +
                            block("deaddns", "http://hook.dead-dns.test:18134/hook", "    timeout 1s\n"))
    d = env.salvod_daemon(default_domain={"retry-after": "1s"}, extra=hook_ca(ca_b[0]))
    d.start()
    for k in range(6):
        harness.inject_all(msgs("d%d-" % k, 10, bad_every=0), threads=1, per_conn=10, timeout=20)
        time.sleep(0.5)
    wait_until(lambda: len(log_events(d)) >= 60, 30, interval=0.3, what="60 records")
    events = log_events(d)
    ids = [e for e, _ in events]
    wait_until(lambda: set(ids) <= set(healthy.acked_ids()), 15, interval=0.2, what="the healthy webhook's events")
    check_arrived("healthy", healthy, ids)
    when = {}
    for p in healthy.snapshot():
        for i in p["ids"]:
            when.setdefault(i, p["t"])
    off = time.time() - time.monotonic()
    lag = max(when[e] + off - t for e, t in events)
    log("healthy webhook beside a dead-DNS one: max lag %.2f s" % lag)
    if lag > 4.0 * harness.SLOW:
        raise Fail("the healthy webhook was held back by the dead-DNS one: %.1f s behind" % lag)
    wait_until(lambda: all(hooks()[k]["failures"] >= 2 for k in ("wrongname", "untrusted", "cafile", "deaddns")), 15,
               interval=0.2, what="two failures of each broken webhook")
    st = hooks()
    log("api: %r" % {k: (v["records_sent"], v["failures"], v["last_error"]) for k, v in st.items()})
    for name, pat in (("wrongname", r"certificate|name|subject|match"), ("untrusted", r"certificate|issuer|verify"),
                      ("cafile", r"certificate|issuer|verify"),
                      ("deaddns", r"resolve|timed? ?out|timeout")):
        if st[name]["records_sent"] != 0 or st[name]["failures"] < 2 or \
                not re.search(pat, st[name]["last_error"] or "", re.I):
            raise Fail("webhook %s: %r" % (name, st[name]))
    if rw.acked_ids() or ru.acked_ids() or rf.acked_ids():
        raise Fail("a TLS webhook sent to a receiver it must not trust")
    # the wrong-name receiver gets its right certificate: the retries get through
    rw.down()
    rw.tls = right
    rw.up()
    # the "cafile" one's file gets the right CA in place, the config is unchanged, a
    # reload (which restarts no webhook: none changed) and its retries get through
    with open(inplace + ".new", "w") as f:
        f.write(open(ca_a[0]).read())
    os.rename(inplace + ".new", inplace)
    api_json("/api/v1/reload", "POST")
    if not wait_until(lambda: set(ids) <= set(rf.acked_ids()), 10, interval=0.2, what="the cafile webhook's events"):
        raise Fail("a ca-file fixed in place is not used (%r)" % hooks()["cafile"])
    # the untrusted one: a reload points ca-file at the right CA
    with open(d.config, "w") as f:
        f.write(harness.salvod_config(d.spool, default_domain={"retry-after": "1s"}, extra=hook_ca(ca_a[0])))
    t = time.monotonic()
    j = api_json("/api/v1/reload", "POST")
    took = time.monotonic() - t
    log("reload with a webhook in a hanging lookup: %.2f s; %r" % (took, j))
    if took > 5.0 * harness.SLOW:
        raise Fail("the reload took %.1f s (the webhooks' stop waited for a DNS lookup)" % took)
    if any("acct-webhook" in w for w in j.get("warnings", [])):
        raise Fail("reload warnings: %r" % j)
    harness.inject_all(msgs("e", 10, bad_every=0), threads=1, per_conn=10, timeout=20)
    wait_until(lambda: len(log_events(d)) >= 70, 20, interval=0.3, what="70 records")
    ids = [e for e, _ in log_events(d)]
    for name, r in (("wrongname", rw), ("untrusted", ru), ("cafile", rf), ("healthy", healthy)):
        wait_until(lambda: set(ids) <= set(r.acked_ids()), 20, interval=0.3, what="webhook %s's events" % name)
        check_arrived(name, r, ids)
    t = time.monotonic()
    d.stop()
    took = time.monotonic() - t
    log("SIGTERM with a webhook in a hanging lookup: stopped in %.2f s" % took)
    if took > 5.0 * harness.SLOW:
        raise Fail("salvod took %.1f s to stop (waited for a DNS lookup)" % took)
    for r in (healthy, rw, ru, rf):
        r.down()
    if bh:
        for s in bh[1]:
            s.close()


class ConnectProxy:
    """An HTTP proxy that only tunnels (CONNECT host:port), counting the tunnels."""

    def __init__(self, port):
        self.tunnels = 0
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind((HOST, port))
        self.ls.listen(16)
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while True:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            threading.Thread(target=self.tunnel, args=(c,), daemon=True).start()

    def tunnel(self, c):
        head = b""
        while b"\r\n\r\n" not in head:
            got = c.recv(4096)
            if not got:
                return c.close()
            head += got
        host, port = head.split()[1].decode().rsplit(":", 1)
        up = socket.create_connection((host, int(port)))
        self.tunnels += 1
        c.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")

        def pipe(a, b):
            try:
                while True:
                    data = a.recv(65536)
                    if not data:
                        break
                    b.sendall(data)
            except OSError:
                pass
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        threading.Thread(target=pipe, args=(up, c), daemon=True).start()
        pipe(c, up)

    def close(self):
        self.ls.close()


def test_proxy(env):
    """https_proxy in salvod's environment: the proxy's "200 Connection established"
    to CONNECT is not the receiver's answer; a receiver behind it that never answers
    acknowledges nothing, and the batch arrives once it answers."""
    setup_mail(env)
    ca = _ca(env, "ca-p")
    leaf = _leaf(env, ca, "proxied", "IP:127.0.0.1")
    rcv = Rcv(18161, default="hang", tls=leaf).up()
    proxy = ConnectProxy(18162)
    d = env.salvod_daemon(extra=block("backend", rcv.url(), "    ca-file %s\n" % ca[0]))
    saved = {k: os.environ.get(k) for k in ("https_proxy", "no_proxy", "NO_PROXY")}
    os.environ.update({"https_proxy": "http://%s:%d" % (HOST, 18162), "no_proxy": "", "NO_PROXY": ""})
    try:
        d.start()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    harness.inject_all(msgs("p", 20), threads=1, per_conn=20, timeout=20)
    if not wait_until(lambda: hooks()["backend"]["failures"] >= 2, 15, what="two timeouts through the proxy"):
        raise Fail("the webhook did not fail against a receiver that never answers: %r" % hooks()["backend"])
    st = hooks()["backend"]
    log("through the proxy (%d tunnels) to a receiver that never answers: %r"
        % (proxy.tunnels, {k: st[k] for k in ("records_sent", "failures", "last_error")}))
    if proxy.tunnels < 1 or st["records_sent"] != 0:
        raise Fail("the proxy's answer to CONNECT was taken for the receiver's: %r" % st)
    with rcv.lock:
        rcv.default = "ok"
    rcv.release.set()
    wait_until(lambda: len(log_events(d)) >= 20, 20, interval=0.2, what="20 records")
    ids = [e for e, _ in log_events(d)]
    wait_until(lambda: set(ids) <= set(rcv.acked_ids()), 20, interval=0.3, what="every event through the proxy")
    check_arrived("backend", rcv, ids)
    d.stop()
    rcv.down()
    proxy.close()


def _rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1])
    return 0


def _line(i):
    eid = "%032x" % (0xabc000000 + i)
    return ('{"time":"%s","type":"delivery","id":"%016x","recipient":"r%d@backlog.test","vmta":"default",'
            '"dsn_status":"2.0.0","dsn_diag":"250 2.0.0 Ok: queued as X%d","event_id":"%s"}\n'
            % (time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()), i, i, i, eid))


def test_backlog(env):
    setup_mail(env)
    port = 18141
    d = env.salvod_daemon(extra=block("backend", "http://%s:%d/hook" % (HOST, port), "    max-batch 1000\n")
                          .replace("max-batch 40\n", ""))
    d.start()
    harness.inject_all(msgs("b", 20, bad_every=0), threads=1, per_conn=20, timeout=20)
    if not wait_until(lambda: len(log_events(d)) >= 20, 20, interval=0.2, what="20 records"):
        raise Fail("20 messages made %d delivery records" % len(log_events(d)))
    if not wait_until(lambda: hooks()["backend"]["failures"] >= 1, 10, what="a failure"):
        raise Fail("the webhook never failed against a receiver that is down: %r" % hooks())
    time.sleep(1.0)
    rss0 = _rss_kib(d.proc.pid)
    n = 60000
    data = "".join(_line(i) for i in range(n)).encode()
    logd = os.path.join(d.spool, "log")
    if not os.path.exists(os.path.join(logd, "acct.jsonl")):
        raise Fail("no acct.jsonl to append to: %r" % (os.listdir(logd) if os.path.isdir(logd) else logd))
    fd = os.open(os.path.join(logd, "acct.jsonl"), os.O_WRONLY | os.O_APPEND)
    try:
        if os.write(fd, data) != len(data):
            raise Fail("short write to acct.jsonl")
    finally:
        os.close(fd)
    harness.inject_all(msgs("c", 20, bad_every=0), threads=1, per_conn=20, timeout=20)
    wait_until(lambda: n_records(d) >= n + 80, 20, interval=0.3, what="the later records")
    time.sleep(1.5)
    s1 = hooks()["backend"]
    time.sleep(1.5)
    s2 = hooks()["backend"]
    rss1 = _rss_kib(d.proc.pid)
    m = api_json("/metrics")
    log("backlog: %d bytes, oldest %.1f s -> %.1f s, failures %d; RSS %d KiB -> %d KiB"
        % (s2["backlog_bytes"], s1["oldest_unsent_seconds"], s2["oldest_unsent_seconds"], s2["failures"], rss0, rss1))
    if s2["backlog_bytes"] < len(data) or s2["oldest_unsent_seconds"] <= s1["oldest_unsent_seconds"] \
            or s2["oldest_unsent_seconds"] < 3 or not s2["stalled"]:
        raise Fail("the backlog is not reported: %r then %r" % (s1, s2))
    if not re.search(r'salvo_webhook_backlog_bytes\{webhook="backend"\} (\d{7,})', m):
        raise Fail("/metrics does not show the backlog")
    # in records: every delivery record of the log (none acknowledged), counted
    # within a few seconds (32 MiB of log read per second)
    unsent = len(log_events(d))
    if not wait_until(lambda: hooks()["backend"]["backlog_records"] == unsent, 10, what="backlog_records"):
        raise Fail("backlog_records %r, want the %d records unsent" % (hooks()["backend"]["backlog_records"], unsent))
    if not re.search(r'salvo_webhook_backlog_records\{webhook="backend"\} %d\n' % unsent, api_json("/metrics")):
        raise Fail("/metrics does not show the backlog in records")
    if rss1 - rss0 > 24 * 1024:
        raise Fail("salvod's RSS grew by %d KiB with a backlog of %d records" % (rss1 - rss0, n))
    ids = [e for e, _ in log_events(d)]
    t = time.monotonic()
    rcv = Rcv(port).up()
    if not wait_until(lambda: len(rcv.acked_ids()) >= len(ids), 60, interval=0.5, what="the whole backlog"):
        raise Fail("%d of %d backlog events arrived" % (len(set(rcv.acked_ids())), len(ids)))
    log("%d events of the backlog delivered in %.1f s after the receiver came back" % (len(ids), time.monotonic() - t))
    check_arrived("backend", rcv, ids)
    wait_until(lambda: hooks()["backend"]["backlog_bytes"] == 0 and hooks()["backend"]["backlog_records"] == 0, 5,
               what="the backlog at 0")
    st = hooks()["backend"]
    if st["backlog_bytes"] != 0 or st["backlog_records"] != 0 or st["stalled"] or st["oldest_unsent_seconds"] != 0:
        raise Fail("after recovery: %r" % st)
    rcv.down()


def test_midbatch(env):
    setup_mail(env)
    port = 18151
    rcv = Rcv(port, ["hang"]).up()
    d = env.salvod_daemon(extra=block("backend", "http://%s:%d/hook" % (HOST, port), "    timeout 20s\n"))
    d.start()
    harness.inject_all(msgs("m", 30), threads=1, per_conn=30, timeout=20)
    wait_until(lambda: rcv.snapshot(), 10, what="a POST held by the receiver")
    held = rcv.snapshot()[0]["ids"]
    t = time.monotonic()
    d.stop()
    took = time.monotonic() - t
    log("SIGTERM with a batch of %d held by the receiver: stopped in %.2f s" % (len(held), took))
    if took > 5.0 * harness.SLOW:
        raise Fail("salvod took %.1f s to stop with a batch in flight" % took)
    rcv.release.set()
    with rcv.lock:
        rcv.script = ["hang"]
        rcv.release = threading.Event()
    d.start()
    # the held batch comes again (same ids first), is held again: kill -9 now
    wait_until(lambda: len(rcv.snapshot()) >= 2, 10, what="the batch sent again after SIGTERM")
    posts = rcv.snapshot()
    if posts[1]["ids"][:len(held)] != held:
        raise Fail("after SIGTERM the held batch was not sent again first: %r" % posts[1]["ids"][:3])
    rcv.release.set()
    # kill -9 while mail flows and a batch is held (never answered, so never a
    # legitimate duplicate): the outbox writes its last records to the log again at
    # the start; the webhook must still send each event once
    relogged = 0
    for k in range(3):
        with rcv.lock:
            rcv.default = "hang"
            rcv.release = threading.Event()
        held_before = len(rcv.snapshot())
        blast = threading.Thread(target=harness.inject, args=(msgs("k%d-" % k, 150, bad_every=0),),
                                 kwargs={"threads": 2, "per_conn": 25, "timeout": 20}, daemon=True)
        blast.start()
        wait_until(lambda: len(rcv.snapshot()) > held_before and rcv.snapshot()[-1]["t_end"] is None, 10,
                   what="a batch held by the receiver")
        time.sleep(0.3)
        d.kill9()
        blast.join(30)
        rcv.release.set()
        with rcv.lock:
            rcv.default = "ok"
        d.start()
    last = [-1, time.monotonic()]

    def settled():
        n = n_records(d)
        if n != last[0]:
            last[:] = [n, time.monotonic()]
        return time.monotonic() - last[1] > 1.5
    wait_until(settled, 30, interval=0.2, what="the log settled")
    recs = [r["event_id"] for r in d.acct() if r["type"] in ("delivery", "bounce")]
    relogged = len(recs) - len(set(recs))
    ids = [e for e, _ in log_events(d)]
    wait_until(lambda: set(ids) <= set(rcv.acked_ids()), 30, interval=0.3, what="every event")
    check_arrived("backend", rcv, ids)
    log("3 kill -9 during blasts: %d events, %d records the outbox wrote to the log twice, each sent once "
        "(API duplicates_skipped %d)" % (len(ids), relogged, hooks()["backend"]["duplicates_skipped"]))
    posts = rcv.snapshot()
    if posts[2]["ids"][:len(held)] != held and posts[1]["ids"][:len(held)] != held:
        raise Fail("the held batch was not sent again first")
    # SIGTERM while a receiver takes 0.4 s to answer: salvod waits for that answer
    # (up to 1 s), so the batch is not sent again after the restart
    with rcv.lock:
        rcv.default = "slow"
    n_posts = len(rcv.snapshot())
    harness.inject_all(msgs("s", 20, bad_every=0), threads=1, per_conn=20, timeout=20)
    wait_until(lambda: any(p["mode"] == "slow" and p["t_end"] is None for p in rcv.snapshot()[n_posts:]), 10,
               interval=0.02, what="a POST being answered slowly")
    d.stop()
    with rcv.lock:
        rcv.default = "ok"
    d.start()
    wait_until(settled, 30, interval=0.2, what="the log settled")
    ids = [e for e, _ in log_events(d)]
    wait_until(lambda: set(ids) <= set(rcv.acked_ids()), 20, interval=0.3, what="every event")
    time.sleep(0.5)
    check_arrived("backend", rcv, ids)
    rcv.down()


def test_toolarge(env):
    setup_mail(env)
    rcv = Rcv(18161, default="max7").up()
    try:
        d = env.salvod_daemon(default_domain={"max-smtp-out": "4"}, extra=block("backend", rcv.url()))
        d.start()
        harness.inject_all(msgs("t", 150), threads=2, per_conn=50, timeout=30)
        want = lambda: [e for e, _ in log_events(d)]
        # 150 records, and the deliveries of the 15 bounces' DSNs to senders.test
        wait_until(lambda: len(want()) >= 165 and set(want()) <= set(rcv.acked_ids()), 30 * harness.SLOW,
                   what="every event past the 413s")
        check_arrived("backend", rcv, want())
        posts = rcv.snapshot()
        big = [len(p["ids"]) for p in posts if len(p["ids"] or []) > 7]
        if not all(p["sig_ok"] for p in posts):
            raise Fail("a POST split after a 413 whose signature does not verify")
        if len(big) > 3:
            raise Fail("%d POSTs over the receiver's limit (sizes %r): the batch did not shrink and stay small"
                       % (len(big), big))
        w = hooks()["backend"]
        if w["records_sent"] != len(want()):
            raise Fail("records_sent %r for %d events" % (w["records_sent"], len(want())))
        log("413 above 7 records: %d POSTs refused (%r), %d accepted, %d events once each, in order"
            % (len(big), big, len(posts) - len(big), len(want())))
    finally:
        rcv.down()


if __name__ == "__main__":
    harness.main([test_hostile, test_deaddns, test_backlog, test_midbatch, test_toolarge, test_proxy])
