#!/usr/bin/python3
"""http_inject.py - HTTP injection into the spool: recipients accepted per second.

Starts its own salvod (spool in a temp dir, queues paused so nothing is delivered and
the spool is the only cost) and POSTs /api/inject/v1 requests of B recipients each
from C concurrent clients until N recipients are in, for B in 1, 100 and 10,000, with
uniform content (one stored body per request) and with per-recipient substitutions
(one rendered body per recipient). Reports recipients/s, requests/s and salvod's CPU
per 1,000 recipients. A benchmark, not a test: run it by hand.

  bench/http_inject.py [--salvod build/engine/salvod] [--n 50000] [--clients 4]
Ports: 127.0.0.1:22525 (SMTP, unused) and 127.0.0.1:28025 (HTTP).
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request

API = "http://127.0.0.1:28025"
BODY = "From: news@senders.test\r\nSubject: {subj}\r\n\r\n" + ("x" * 76 + "\r\n") * 50


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        v = f.read().rsplit(")", 1)[1].split()
    return (int(v[11]) + int(v[12])) / os.sysconf("SC_CLK_TCK")


def rss_kb(pid, field="VmRSS"):
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            if ln.startswith(field + ":"):
                return int(ln.split()[1])
    return 0


def run(n, batch, clients, templated):
    reqs = []
    per = max(1, n // batch)
    for k in range(per):
        rc = [{"email": "u%d-%d@bench.test" % (k, i), "substitutions": {"code": str(i)}} for i in range(batch)]
        reqs.append(json.dumps({"envelope_sender": "news@senders.test",
                                "content": BODY.format(subj="code {{code}}" if templated else "same for all"),
                                "recipients": rc}).encode())
    lock = threading.Lock()
    done = [0]

    def worker():
        while True:
            with lock:
                if not reqs:
                    return
                body = reqs.pop()
            with urllib.request.urlopen(urllib.request.Request(API + "/api/inject/v1", data=body), timeout=120) as r:
                got = json.loads(r.read())
            with lock:
                done[0] += got["success_count"]
    t0 = time.monotonic()
    ts = [threading.Thread(target=worker) for _ in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return done[0], time.monotonic() - t0, per


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--salvod", default="build/engine/salvod")
    ap.add_argument("--n", type=int, default=50000)
    ap.add_argument("--clients", type=int, default=4)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="salvo-httpbench-")
    conf = os.path.join(tmp, "s.conf")
    with open(conf, "w") as f:
        f.write("spool-dir %s/spool\nsmtp-listener 127.0.0.1:22525\nhttp-listener 127.0.0.1:28025\n"
                "http-max-body-size 64M\n<domain *>\n route [127.0.0.1]:9\n retry-after 4h\n</domain>\n" % tmp)
    p = subprocess.Popen([a.salvod, "-c", conf], stderr=open(os.path.join(tmp, "err"), "w"))
    try:
        for _ in range(50):
            try:
                urllib.request.urlopen(API + "/api/v1/status", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        urllib.request.urlopen(urllib.request.Request(API + "/api/v1/queues/bench.test/pause", data=b"",
                                                      method="POST"), timeout=5).read()
        print("| recipients per request | content | recipients/s | requests/s | salvod CPU per 1,000 recipients | salvod anonymous memory after |")
        print("|---|---|---|---|---|---|")
        for batch in (1, 100, 10000):
            for templated in (False, True):
                n = min(a.n, 5000) if batch == 1 else a.n
                c0 = cpu_s(p.pid)
                got, dt, per = run(n, batch, a.clients, templated)
                cpu = cpu_s(p.pid) - c0
                print("| %d | %s | %.0f | %.1f | %.1f ms | %d MiB |" % (batch, "per-recipient" if templated else "uniform",
                                                               got / dt, per / dt, cpu * 1e6 / got,
                                                               rss_kb(p.pid, "RssAnon") // 1024))
        print("salvod peak RSS over all runs: %d MiB" % (rss_kb(p.pid, "VmHWM") // 1024))
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
