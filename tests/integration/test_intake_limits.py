#!/usr/bin/python3
"""test_intake_limits.py - who the listener's caps are for (issue 16, items 4-6).

  trusted    300 parallel sessions from a trusted injector are all served while 200
             idle strangers from one address fill the per-address and total caps for
             strangers; a stranger's slot is free again as soon as its session closes
  reports    a stranger (only the bounce domain reaches it) is told SIZE 1048576 and a
             2 MiB report is refused with 552; reports that match no delivery get 250
             but no spool commit (salvo_reports_unmatched_total); past
             bounce-max-reports-per-ip the RCPT gets 452
  slowloris  strangers dripping a report byte by byte are cut at smtp-max-session-time
             (421) while the trusted injector's mail is acknowledged throughout
  auth       an unknown user and a known one (crypt hash, wrong password) take the same
             work within 40% (salvod's CPU time per attempt, median of 12, interleaved); ten parallel wrong attempts from one address get at most
             five 535s (the rest 454); STARTTLS forgets an AUTH done in clear
"""

import os
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt  # deprecated in 3.11, still there; the hash needs its rounds=
import random
import re
import resource
import smtplib
import socket
import ssl
import statistics
import subprocess
import threading
import time
import urllib.request

import harness
from harness import Fail, Injected, log, make_body, wait_until

STRANGER = "127.0.0.60"


def metric(name):
    with urllib.request.urlopen("http://%s:%d/metrics" % harness.SALVOD_HTTP, timeout=5) as r:
        text = r.read().decode()
    m = re.search(r"^%s (\d+)" % re.escape(name), text, re.M)
    return int(m.group(1)) if m else None


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))


def banner_of(s):
    s.settimeout(10)
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = s.recv(512)
        if not chunk:
            break
        data += chunk
    return data


def delivered(env, rcpts, timeout):
    seen = harness.wait_for_recipients(env, set(rcpts), timeout, settle=0.5)
    missing = [r for r in rcpts if r.lower() not in seen]
    if missing:
        raise Fail("%d of %d never arrived (e.g. %s)" % (len(missing), len(rcpts), missing[:3]))


def test_trusted(env):
    raise_nofile()
    env.dns(mx={"far.test": [(10, "mx.sink.test")]}, a={"mx.sink.test": "127.0.0.2"}, check=[("far.test", "MX")])
    env.salvo_sink("sink", "127.0.0.2:25")
    d = env.salvod_daemon(extra="smtp-max-connections 150\nsmtp-max-connections-per-ip 100\n")
    d.start()
    addr = harness.SALVOD_SMTP

    # 200 idle strangers from one address: 100 served (the per-address cap), 100 told 421
    idle, refused = [], 0
    for k in range(200):
        s = socket.socket()
        s.bind((STRANGER, 0))
        s.connect(addr)
        b = banner_of(s)
        if b.startswith(b"220"):
            idle.append(s)
        else:
            refused += 1
            s.close()
    if len(idle) != 100 or refused != 100:
        raise Fail("strangers from one address: %d served, %d refused (want 100/100)" % (len(idle), refused))
    # 60 more strangers from other addresses reach the total cap for strangers (150)
    more, more_refused = [], 0
    for k in range(60):
        s = socket.socket()
        s.bind(("127.0.0.%d" % (70 + k % 30), 0))
        s.connect(addr)
        if banner_of(s).startswith(b"220"):
            more.append(s)
        else:
            more_refused += 1
            s.close()
    if len(more) != 50 or more_refused != 10:
        raise Fail("strangers up to the total cap: %d served, %d refused (want 50/10)" % (len(more), more_refused))

    # 300 parallel sessions of the trusted injector (127.0.0.1): every one is served
    socks = []
    for k in range(300):
        s = socket.socket()
        s.connect(addr)
        socks.append(s)
    bad = [b for b in (banner_of(s) for s in socks) if not b.startswith(b"220")]
    if bad:
        raise Fail("%d of 300 trusted sessions were refused: %r" % (len(bad), bad[:3]))
    rng = random.Random(7)
    results, lock = [], threading.Lock()

    def one(k, s):
        r = "t%d@far.test" % k
        body = make_body(rng, "t%d" % k, "esp@senders.test", [r], 300)
        try:
            c = smtplib.SMTP(timeout=20)
            c.sock = s
            c.file = None
            c.ehlo("esp.test")
            refused = c.sendmail("esp@senders.test", [r], body)
            c.quit()
            ok = not refused
        except Exception as e:  # noqa: BLE001 - any failure is the finding
            ok = "%s: %s" % (type(e).__name__, e)
        with lock:
            results.append((r, ok))

    threads = [threading.Thread(target=one, args=(k, s)) for k, s in enumerate(socks)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    failed = [x for x in results if x[1] is not True]
    if len(results) != 300 or failed:
        raise Fail("trusted injection: %d results, failures %r" % (len(results), failed[:3]))
    delivered(env, [r for r, _ in results], 60)
    log("300 trusted sessions served and delivered beside 150 strangers at their caps (%d refused)"
        % (refused + more_refused))

    # the strangers' slots are free as soon as their sessions close
    for s in idle:
        s.close()
    time.sleep(0.3)
    again = []
    for k in range(100):
        s = socket.socket()
        s.bind((STRANGER, 0))
        s.connect(addr)
        again.append(banner_of(s).startswith(b"220"))
        s.close()
    if not all(again):
        raise Fail("after 100 strangers closed, %d of 100 new ones were refused" % again.count(False))
    for s in more:
        s.close()


def dsn(rcpt):
    return ("From: MAILER-DAEMON@far.test\r\nTo: <%s>\r\nSubject: Undelivered\r\n"
            "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n"
            "--b\r\nContent-Type: text/plain\r\n\r\ngone\r\n"
            "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; far.test\r\n\r\n"
            "Final-Recipient: rfc822; nobody@far.test\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n--b--\r\n") % rcpt


def test_reports(env):
    env.dns(mx={"far.test": [(10, "mx.sink.test")]}, a={"mx.sink.test": "127.0.0.2"}, check=[("far.test", "MX")])
    env.salvo_sink("sink", "127.0.0.2:25", dump=False)
    d = env.salvod_daemon(extra="bounce-domain bounces.salvo.test\nbounce-max-reports-per-ip 3/h\n")
    d.start()
    addr = harness.SALVOD_SMTP
    verp = "b-0000000000000001-0-000000000000@bounces.salvo.test"
    commits0 = metric("salvo_spool_commit_requests_total")
    with smtplib.SMTP(*addr, timeout=10, source_address=(STRANGER, 0)) as s:
        s.ehlo("mx.far.test")
        if s.esmtp_features.get("size", "").strip() != "1048576":
            raise Fail("a stranger was told SIZE %r (want 1048576)" % s.esmtp_features.get("size"))
        code, _ = s.mail("", ["SIZE=2097152"])
        if code != 552:
            raise Fail("MAIL SIZE=2097152 from a stranger got %d" % code)
        s.mail("")
        s.rcpt(verp)
        code, text = s.data(dsn(verp) + "X" * (2 << 20) + "\r\n")
        if code != 552:
            raise Fail("a 2 MiB report got %d %s" % (code, text))
    codes = []
    for i in range(4):
        with smtplib.SMTP(*addr, timeout=10, source_address=(STRANGER, 0)) as s:
            s.ehlo("mx.far.test")
            s.mail("")
            code, _ = s.rcpt(verp)
            codes.append(code)
            if code == 250:
                code, text = s.data(dsn(verp))
                if code != 250:
                    raise Fail("an unmatched report got %d %s" % (code, text))
    if codes != [250, 250, 250, 452]:
        raise Fail("reports from one stranger against 3/h: RCPT codes %r" % codes)
    unmatched = metric("salvo_reports_unmatched_total")
    refused = metric("salvo_reports_refused_total")
    commits = metric("salvo_spool_commit_requests_total")
    if unmatched != 3 or refused != 1:
        raise Fail("metrics: unmatched %r refused %r (want 3, 1)" % (unmatched, refused))
    if commits != commits0:
        raise Fail("unmatched reports cost %d spool commits" % (commits - commits0))
    # a trusted client is not counted: mail from 127.0.0.1 to the bounce domain still passes
    with smtplib.SMTP(*addr, timeout=10) as s:
        s.ehlo("esp.test")
        s.mail("")
        code, _ = s.rcpt(verp)
        if code != 250:
            raise Fail("the trusted client's report got %d" % code)
    log("stranger: SIZE 1048576, 552 for 2 MiB, 3 reports then 452, no commit for unmatched ones")


def test_slowloris(env):
    env.dns(mx={"far.test": [(10, "mx.sink.test")]}, a={"mx.sink.test": "127.0.0.2"}, check=[("far.test", "MX")])
    env.salvo_sink("sink", "127.0.0.2:25")
    d = env.salvod_daemon(extra="bounce-domain bounces.salvo.test\nsmtp-max-session-time 3s\n")
    d.start()
    addr = harness.SALVOD_SMTP
    verp = "b-0000000000000001-0-000000000000@bounces.salvo.test"
    stop = threading.Event()
    cut = []

    def drip(k):
        s = socket.socket()
        s.bind(("127.0.0.%d" % (80 + k % 10), 0))
        s.connect(addr)
        s.settimeout(0.2)
        s.sendall(b"EHLO drip\r\nMAIL FROM:<>\r\nRCPT TO:<%s>\r\nDATA\r\n" % verp.encode())
        got = b""
        t0 = time.monotonic()
        while not stop.is_set() and time.monotonic() - t0 < 20:
            try:
                s.sendall(b"x")
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
                if b"421" in got:
                    break
            except socket.timeout:
                continue
            except OSError:
                break
        cut.append((time.monotonic() - t0, b"421" in got))
        s.close()

    drips = [threading.Thread(target=drip, args=(k,)) for k in range(40)]
    for t in drips:
        t.start()
    rng = random.Random(3)
    msgs = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < 4:
        r = "s%d@far.test" % len(msgs)
        m = Injected("s%d" % len(msgs), "esp@senders.test", [r], make_body(rng, "s%d" % len(msgs), "esp@senders.test", [r], 300))
        harness.inject([m], threads=1, per_conn=1, timeout=10)
        msgs.append(m)
    for t in drips:
        t.join(30)
    stop.set()
    if len(cut) != 40 or not all(ok for _, ok in cut) or max(t for t, _ in cut) > 10:
        raise Fail("dripping strangers: %d ended, %d told 421, longest %.1fs"
                   % (len(cut), sum(1 for _, ok in cut if ok), max((t for t, _ in cut), default=0)))
    delivered(env, [m.rcpts[0] for m in msgs], 60)
    log("40 dripping strangers cut at ~%.1fs; %d trusted messages acknowledged and delivered meanwhile"
        % (statistics.median(t for t, _ in cut), len(msgs)))


def tls_ctx():
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


def cpu_ns(pid):
    """CPU time salvod's AUTH checker thread ("salvo-auth") has run, in ns (schedstat:
    precise, unlike ticks); all of pid's threads if there is no such thread. The
    checker's time is the work an attempt costs; the other threads' ticks are noise."""
    total, auth = 0, None
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                ns = int(f.read().split()[0])
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                if f.read().strip() == "salvo-auth":
                    auth = ns
        except OSError:
            continue  # a thread that just ended
        total += ns
    return auth if auth is not None else total


def auth_once(src, user, password, pid=None):
    """One AUTH PLAIN over STARTTLS; returns (code, seconds, salvod CPU ns) for the AUTH
    alone."""
    with smtplib.SMTP(*harness.SALVOD_SMTP, timeout=20, source_address=(src, 0)) as s:
        s.ehlo("x")
        s.starttls(context=tls_ctx())
        s.ehlo("x")
        import base64
        arg = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
        c0 = cpu_ns(pid) if pid else 0
        t0 = time.perf_counter()
        code, _ = s.docmd("AUTH", "PLAIN " + arg)
        t = time.perf_counter() - t0
        return code, t, (cpu_ns(pid) - c0 if pid else 0)


def test_auth(env):
    cert, key = os.path.join(env.dir, "cert.pem"), os.path.join(env.dir, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=salvo.itest", "-keyout", key, "-out", cert], check=True, capture_output=True)
    # a deliberately slow hash (SHA-512 crypt, 100,000 rounds): the time the check takes
    # must not depend on whether the user exists
    slow = crypt.crypt("r1ght", crypt.mksalt(crypt.METHOD_SHA512, rounds=100000))
    env.dns(mx={"far.test": [(10, "mx.sink.test")]}, a={"mx.sink.test": "127.0.0.2"}, check=[("far.test", "MX")])
    env.salvo_sink("sink", "127.0.0.2:25", dump=False)
    extra = "\n".join(["tls-certificate %s" % cert, "tls-private-key %s" % key,
                       "<smtp-user carol>", "  password %s" % slow, "</smtp-user>",
                       "<smtp-user dave>", "  password plain-pass", "</smtp-user>"])
    d = env.salvod_daemon(sources={"127.0.0.1": {"always-allow-relaying": "yes"},
                                   "127.0.0.40/29": {"require-auth": "yes", "allow-unencrypted-plain-auth": "yes"},
                                   "0/0": {"require-auth": "yes"}}, extra=extra)
    d.start()
    # timing: interleaved, each attempt from its own address (the failure throttle is per address)
    # What an observer can time is the work salvod does: its CPU time per attempt is that
    # work, whatever else the machine runs (wall time on a shared 2-core box is mostly
    # the scheduler's). Both are reported; the CPU time decides.
    known, unknown = [], []
    for i in range(24):
        src = "127.0.1.%d" % (10 + i)
        code, t, cpu = auth_once(src, "carol" if i % 2 == 0 else "nosuchuser", "wrong", d.proc.pid)
        if code != 535:
            raise Fail("a wrong password got %d" % code)
        (known if i % 2 == 0 else unknown).append((t, cpu))
    ck, cu = statistics.median(c for _, c in known), statistics.median(c for _, c in unknown)
    log("AUTH failure, median of 12: known user %.1f ms CPU (%.1f ms wall), unknown user %.1f ms CPU "
        "(%.1f ms wall)" % (ck / 1e6, statistics.median(t for t, _ in known) * 1e3, cu / 1e6,
                            statistics.median(t for t, _ in unknown) * 1e3))
    # The oracle this guards against is a skipped hash (an unknown user answered in
    # microseconds against tens of ms); the bound leaves room for a neighbour test's
    # load, which slows a thread's CPU time too (shared cores and caches).
    if abs(ck - cu) > 0.4 * max(ck, cu):
        raise Fail("salvod's work for a known user %.1f ms vs an unknown one %.1f ms: more than 40%% apart"
                   % (ck / 1e6, cu / 1e6))
    code, _, _ = auth_once("127.0.1.100", "carol", "r1ght")
    if code != 235:
        raise Fail("the right password got %d" % code)

    # ten parallel wrong attempts from one address: at most five are counted as tries
    codes, lock = [], threading.Lock()

    def attempt():
        try:
            c, _, _ = auth_once("127.0.1.200", "carol", "wrong")
        except smtplib.SMTPServerDisconnected:
            c = -1
        with lock:
            codes.append(c)

    ts = [threading.Thread(target=attempt) for _ in range(10)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    if codes.count(535) > 5 or codes.count(535) + codes.count(454) != 10:
        raise Fail("ten parallel wrong attempts: %r (want at most five 535, the rest 454)" % sorted(codes))

    # STARTTLS forgets AUTH done in clear (RFC 3207 4.2)
    with smtplib.SMTP(*harness.SALVOD_SMTP, timeout=10, source_address=("127.0.0.41", 0)) as s:
        s.ehlo("x")
        s.login("dave", "plain-pass")
        s.starttls(context=tls_ctx())
        s.ehlo("x")
        s.mail("dave@senders.test")
        code, text = s.rcpt("victim@far.test")
        if code != 550:
            raise Fail("after STARTTLS the clear-text AUTH still relays: %d %s" % (code, text))
        s.rset()
        s.login("dave", "plain-pass")
        s.mail("dave@senders.test")
        code, _ = s.rcpt("victim@far.test")
        if code != 250:
            raise Fail("AUTH again after STARTTLS: RCPT got %d" % code)
    log("parallel wrong attempts %r; STARTTLS forgot the clear-text AUTH" % sorted(codes))


if __name__ == "__main__":
    harness.main([test_trusted, test_reports, test_slowloris, test_auth])
