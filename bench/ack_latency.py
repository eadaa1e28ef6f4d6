#!/usr/bin/python3
"""ack_latency.py - SMTP acknowledgement latency while a big HTTP injection runs.

Starts its own salvod (spool in a temp dir, a 2048-bit RSA domain key for rsa.test,
every route pointing at a tarpit that accepts TCP and never answers, so nothing is
delivered and nothing else competes for the spool writer). One smtplib client sends
small unsigned messages one at a time on one connection and times each DATA (the
end-of-data dot to its 250). Meanwhile one POST /api/inject/v1 carries R recipients
with per-recipient content ({{code}}) From news@rsa.test, so every recipient's message
is rendered and RSA-signed. Reports the acknowledgement latency p50/p99/max while the
injection runs (and while idle, for reference), and how long the injection took.
A benchmark, not a test: run it by hand; the machine's other load shows in the numbers.

  bench/ack_latency.py [--salvod build/engine/salvod] [--rcpts 10000] [--runs 3] [--solo]
--solo: the injection alone, no SMTP client (its duration without competition).
Ports: chosen free on 127.0.0.1 at start.
"""

import argparse
import json
import os
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request

BODY = ("From: news@rsa.test\r\nTo: {{email}}\r\nSubject: code {{code}}\r\n\r\n"
        + ("Dear customer, your code is {{code}}. " * 2 + "\r\n") * 40)
SMALL = ("From: ops@plain.test\r\nTo: <ack@acks.test>\r\nSubject: ack %d\r\n\r\n"
         + ("y" * 70 + "\r\n") * 10)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def tarpit(stop):
    """Accept and hold every connection; never say a word."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(64)
    ls.settimeout(0.2)
    held = []

    def loop():
        while not stop.is_set():
            try:
                held.append(ls.accept()[0])
            except OSError:
                pass
        for c in held:
            c.close()
        ls.close()
    threading.Thread(target=loop, daemon=True).start()
    return ls.getsockname()[1]


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))] if xs else float("nan")


class Acker:
    """One SMTP client, one message at a time, each DATA timed (ms)."""

    def __init__(self, port):
        self.c = smtplib.SMTP("127.0.0.1", port, timeout=30)
        self.c.ehlo("bench.client")
        self.n = 0

    def one(self):
        self.n += 1
        self.c.mail("ops@plain.test")
        self.c.rcpt("ack%d@acks.test" % self.n)
        t0 = time.perf_counter()
        code, _ = self.c.data(SMALL % self.n)
        dt = (time.perf_counter() - t0) * 1000
        if code != 250:
            raise RuntimeError("DATA answered %d" % code)
        return dt

    def for_seconds(self, secs):
        out, end = [], time.monotonic() + secs
        while time.monotonic() < end:
            out.append(self.one())
        return out


def inject(api, n, result):
    rc = [{"email": "u%d@bench%d.test" % (i, i % 50), "substitutions": {"code": "%06d" % i}} for i in range(n)]
    body = json.dumps({"envelope_sender": "news@rsa.test", "content": BODY, "recipients": rc}).encode()
    t0 = time.monotonic()
    with urllib.request.urlopen(urllib.request.Request(api + "/api/inject/v1", data=body), timeout=600) as r:
        result["reply"] = json.loads(r.read())
    result["secs"] = time.monotonic() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--salvod", default="build/engine/salvod")
    ap.add_argument("--rcpts", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--solo", action="store_true")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="salvo-ackbench-")
    stop = threading.Event()
    pit = tarpit(stop)
    smtp, http = free_port(), free_port()
    pem = os.path.join(tmp, "rsa.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", pem],
                   check=True, capture_output=True)
    conf = os.path.join(tmp, "s.conf")
    with open(conf, "w") as f:
        f.write("spool-dir %s/spool\nsmtp-listener 127.0.0.1:%d\nhttp-listener 127.0.0.1:%d\n"
                "http-max-body-size 64M\nworker-threads 2\ndomain-key s1,rsa.test,%s\n"
                "<source 127.0.0.1>\n always-allow-relaying yes\n</source>\n"
                "<domain *>\n route [127.0.0.1]:%d\n retry-after 4h\n max-smtp-out 2\n</domain>\n"
                % (tmp, smtp, http, pem, pit))
    api = "http://127.0.0.1:%d" % http
    p = subprocess.Popen([a.salvod, "-c", conf], stderr=open(os.path.join(tmp, "err"), "w"))
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(api + "/api/v1/status", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        print("salvod %s, %d-recipient templated RSA-signed injection, load average %s"
              % (a.salvod, a.rcpts, open("/proc/loadavg").read().split()[0]))
        if a.solo:
            print("| run | injection alone took | recipients/s |")
            print("|---|---|---|")
            for run in range(1, a.runs + 1):
                res = {}
                inject(api, a.rcpts, res)
                print("| %d | %.1f s | %.0f |" % (run, res["secs"], a.rcpts / res["secs"]), flush=True)
            return
        ack = Acker(smtp)
        print("| run | idle p50 | idle p99 | during: acks | p50 | p99 | max | injection took |")
        print("|---|---|---|---|---|---|---|---|")
        for run in range(1, a.runs + 1):
            idle = ack.for_seconds(2.0)
            res = {}
            t = threading.Thread(target=inject, args=(api, a.rcpts, res))
            t.start()
            during = []
            while t.is_alive():
                during.append(ack.one())
            t.join()
            ok = res.get("reply", {}).get("success_count")
            if ok != a.rcpts:
                raise SystemExit("the injection stored %r of %d recipients: %r" % (ok, a.rcpts, res))
            print("| %d | %.1f ms | %.1f ms | %d | %.1f ms | %.1f ms | %.1f ms | %.1f s |"
                  % (run, pct(idle, 50), pct(idle, 99), len(during), pct(during, 50), pct(during, 99),
                     max(during) if during else float("nan"), res["secs"]), flush=True)
        ack.c.quit()
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        stop.set()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
