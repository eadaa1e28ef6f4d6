#!/usr/bin/python3
"""queue_restart.py - a million queued recipients: memory per recipient and restart time.

Starts its own salvod (spool in a temp dir, no DNS needed: every recipient is held
with deliver_after a day ahead), injects N recipients over HTTP in requests of 10,000
(uniform content, one stored body per request; 100 domains), then reports:
  - salvod's anonymous memory (RssAnon) before and after, per queued recipient;
  - a restart (SIGTERM, then a new salvod on the same spool): seconds from exec to the
    "ready" line, which salvod prints after every recipient is back in a scheduler,
    and the queue size the API reports afterwards;
  - the same after kill -9 instead of SIGTERM.
A benchmark, not a test: run it by hand.

  bench/queue_restart.py [--salvod build/engine/salvod] [--n 1000000]
Ports: 127.0.0.1:22525 (SMTP) and 127.0.0.1:28025 (HTTP).
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
BODY = "From: news@senders.test\r\nSubject: held\r\n\r\n" + ("x" * 76 + "\r\n") * 50


def status_field(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            if ln.startswith(field + ":"):
                return int(ln.split()[1])
    return 0


def api(path, body=None):
    req = urllib.request.Request(API + path, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as r:
        return json.loads(r.read())


def start(salvod, conf, log):
    t0 = time.monotonic()
    err = open(log, "w+")
    p = subprocess.Popen([salvod, "-c", conf], stderr=err)
    while True:
        err.seek(0)
        if "ready:" in err.read():
            return p, time.monotonic() - t0
        if p.poll() is not None or time.monotonic() - t0 > 600:
            raise SystemExit("salvod did not get ready; see %s" % log)
        time.sleep(0.01)


def stop(p, sig):
    p.send_signal(sig)
    p.wait(timeout=120)


def queued():
    q = api("/api/v1/status")["queued"]
    return "%d (%d in the schedulers)" % (q["recipients"], q["scheduled"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--salvod", default="build/engine/salvod")
    ap.add_argument("--n", type=int, default=1000000)
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory (salvod's logs)")
    a = ap.parse_args()
    wd = tempfile.mkdtemp(prefix="salvo-qr.")
    conf = os.path.join(wd, "salvod.conf")
    with open(conf, "w") as f:
        f.write("spool-dir %s/spool\nsmtp-listener 127.0.0.1:22525\nhttp-listener 127.0.0.1:28025\n"
                "dns-server 127.0.0.1:1\n<source 127.0.0.1>\n always-allow-relaying yes\n</source>\n" % wd)
    p = None
    try:
        p, t_ready = start(a.salvod, conf, os.path.join(wd, "salvod.1.err"))
        time.sleep(1)
        anon0 = status_field(p.pid, "RssAnon")
        batch = 10000
        later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 86400))
        todo = list(range(a.n // batch))
        lock = threading.Lock()

        def client():
            while True:
                with lock:
                    if not todo:
                        return
                    k = todo.pop()
                rc = [{"email": "u%d@d%d.test" % (k * batch + i, i % 100)} for i in range(batch)]
                r = api("/api/inject/v1", json.dumps({"envelope_sender": "news@senders.test", "content": BODY,
                                                      "deliver_after": later, "recipients": rc}).encode())
                assert not r.get("failed_recipients"), r
        t0 = time.monotonic()
        ts = [threading.Thread(target=client) for _ in range(a.clients)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        t_inj = time.monotonic() - t0
        time.sleep(2)
        anon1 = status_field(p.pid, "RssAnon")
        q1 = queued()
        print("injected %d recipients in %.1f s (%.0f/s); salvod RssAnon %d -> %d KiB: %.0f bytes per queued "
              "recipient; API queue %s" % (a.n, t_inj, a.n / t_inj, anon0, anon1, (anon1 - anon0) * 1024.0 / a.n, q1))
        for n, sig in ((2, signal.SIGTERM), (3, signal.SIGKILL)):
            stop(p, sig)
            p = None
            p, t_ready = start(a.salvod, conf, os.path.join(wd, "salvod.%d.err" % n))
            time.sleep(1)
            print("after %s: ready in %.2f s with %s recipients queued; RssAnon %d KiB (%.0f bytes per recipient)"
                  % ("SIGTERM" if sig == signal.SIGTERM else "kill -9", t_ready, queued(),
                     status_field(p.pid, "RssAnon"), (status_field(p.pid, "RssAnon") - anon0) * 1024.0 / a.n))
    finally:
        if p is not None and p.poll() is None:
            stop(p, signal.SIGTERM)
        if a.keep:
            print("kept %s" % wd)
        else:
            shutil.rmtree(wd, ignore_errors=True)


if __name__ == "__main__":
    main()
