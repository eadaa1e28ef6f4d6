#!/usr/bin/python3
"""webhook_bench.py - accounting webhook figures for bench/RESULTS.md (root; runs itself
in a private network namespace so its fixed ports meet no one else's).

  events   salvod starts on a spool whose accounting log already holds N delivery
           records (synthetic, ~330 bytes each, like a real blast's) and a webhook
           position at its start; a local receiver (Python http.server, one keep-alive
           connection, checks every signature) counts them. Reported: events/s from
           the first POST to the last event, for each max-batch given.
  blast    salvo-bench's 4 KiB blast (-n MSGS, 100 domains, 4 sinks), runs alternating
           webhook off / on (every record type but reception, max-batch 100) in the
           same session; the receiver checks it got one delivery event per message.

Usage: bench/webhook_bench.py [--events N] [--batches 100,1000] [--msgs M] [--runs R]
       [--build DIR] [--before DIR]   (--before: also blast a build of the code before a change)
"""

import argparse
import hashlib
import hmac
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = b"bench-secret"
RECV = ("127.0.0.1", 18090)


class Receiver:
    def __init__(self):
        self.lock = threading.Lock()
        self.events = 0
        self.posts = 0
        self.bad_sig = 0
        self.first = self.last = None
        rcv = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                want = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
                ok = hmac.compare_digest(self.headers.get("X-Salvo-Signature", ""), want)
                n = body.count(b'"event_id":"')
                now = time.monotonic()
                with rcv.lock:
                    rcv.posts += 1
                    rcv.events += n
                    rcv.bad_sig += not ok
                    rcv.first = rcv.first or now
                    rcv.last = now
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.srv = ThreadingHTTPServer(RECV, H)
        self.srv.daemon_threads = True
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def reset(self):
        with self.lock:
            self.events = self.posts = self.bad_sig = 0
            self.first = self.last = None


def hook_block(batch, records=None):
    return ("<acct-webhook bench>\n    url http://%s:%d/events\n    max-batch %d\n    max-delay 100ms\n"
            "    secret %s\n%s</acct-webhook>\n" % (RECV + (batch, SECRET.decode(),
                                                      "    records %s\n" % records if records else "")))


def synthetic_log(path, n):
    rng = random.Random(7)
    with open(path, "w") as f:
        for i in range(n):
            mid = "%016x" % (i + 1)
            f.write('{"time":"2026-12-07T01:00:00.%03dZ","type":"delivery","id":"%s","sender":"news@senders.example",'
                    '"recipient":"user%d@d%d.test","queue":"d%d.test","vmta":"default","source_ip":"127.0.0.1",'
                    '"mx_host":"mx1.sink.test","mx_ip":"127.0.0.3","attempt":1,'
                    '"queued_time":"2026-12-07T00:59:59.000Z","size":4096,"response":{"code":250,"text":"2.0.0 Ok: '
                    'queued as %08X"},"event_id":"%s%016x"}\n'
                    % (i % 1000, mid, i, i % 100, i % 100, rng.getrandbits(32), mid, rng.getrandbits(64)))


def bench_events(args, rcv, batch):
    d = tempfile.mkdtemp(prefix="salvo-webhook-bench.")
    try:
        os.makedirs(d + "/spool/log")
        os.makedirs(d + "/spool/webhooks")
        log = d + "/spool/log/acct.jsonl"
        synthetic_log(log, args.events)
        with open(d + "/spool/webhooks/bench.pos", "w") as f:   # start at the log's beginning
            f.write(("%d 0 acct.jsonl" % os.stat(log).st_ino).ljust(255) + "\n")
        conf = d + "/salvod.conf"
        with open(conf, "w") as f:
            f.write("spool-dir %s/spool\nsmtp-listener 127.0.0.1:22525\nhttp-listener 127.0.0.1:28025\n"
                    "worker-threads 2\n%s" % (d, hook_block(batch)))
        rcv.reset()
        err = open(d + "/salvod.err", "wb")
        p = subprocess.Popen([args.build + "/engine/salvod", "-c", conf], stdout=err, stderr=err)
        deadline = time.monotonic() + 300
        cpu = 0.0
        try:
            while rcv.events < args.events and time.monotonic() < deadline and p.poll() is None:
                time.sleep(0.05)
            with open("/proc/%d/stat" % p.pid) as f:
                st = f.read().rsplit(")", 1)[1].split()
            cpu = (int(st[11]) + int(st[12])) / os.sysconf("SC_CLK_TCK")
        finally:
            p.terminate()
            p.wait(20)
        if rcv.events < args.events:
            sys.exit("events: only %d of %d arrived; see %s" % (rcv.events, args.events, d))
        secs = rcv.last - rcv.first
        rate = args.events / secs
        print("events max-batch %d: %d events in %d POSTs, %.2f s: %.0f events/s (bad signatures: %d); salvod "
              "CPU %.2f s in all (start-up included): %.1f us per event"
              % (batch, rcv.events, rcv.posts, secs, rate, rcv.bad_sig, cpu, cpu * 1e6 / rcv.events), flush=True)
        return rate
    finally:
        shutil.rmtree(d, ignore_errors=True)


def bench_blast(args, rcv):
    d = tempfile.mkdtemp(prefix="salvo-webhook-blast.")
    extra = d + "/hook.conf"
    with open(extra, "w") as f:
        f.write(hook_block(100))
    modes = ("off", "on") + (("before",) if args.before else ())
    rates = {m: [] for m in modes}
    cpu = {m: [] for m in modes}
    for r in range(args.runs):
        for mode in modes[r % len(modes):] + modes[:r % len(modes)]:   # rotated each run
            rcv.reset()
            out = d + "/%s-%d.json" % (mode, r)
            cmd = [args.build + "/bench/salvo-bench", "-n", str(args.msgs), "--runs", "1", "--json", out,
                   "--build", args.before if mode == "before" else args.build]
            if mode == "on":
                cmd += ["--salvod-extra", extra]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            med = json.load(open(out))["medians"]["salvod"]
            rate = med["e2e_rate"]
            rates[mode].append(rate)
            cpu[mode].append(med["mta_cpu_ms_per_1000"])
            note = ""
            if mode == "on":
                # the events of this run: one delivery per message (plus nothing else here)
                deadline = time.monotonic() + 30
                while rcv.events < args.msgs and time.monotonic() < deadline:
                    time.sleep(0.1)
                note = "; receiver got %d events in %d POSTs, %d bad signatures" % (rcv.events, rcv.posts,
                                                                                    rcv.bad_sig)
            print("blast run %d webhook %-3s: %.0f msg/s, salvod %.0f ms CPU per 1000 msgs%s"
                  % (r + 1, mode, rate, cpu[mode][-1], note), flush=True)
    off, on = statistics.median(rates["off"]), statistics.median(rates["on"])
    pairs = [b / a for a, b in zip(rates["off"], rates["on"])]
    print("blast medians: off %.0f msg/s, on %.0f msg/s: on/off %.3f (runs: off %s, on %s)"
          % (off, on, on / off, [round(x) for x in rates["off"]], [round(x) for x in rates["on"]]))
    print("blast on/off per pair (the two runs of a pair are back to back): %s, median %.3f"
          % ([round(x, 3) for x in pairs], statistics.median(pairs)))
    print("salvod CPU ms per 1000 messages: off median %.0f, on median %.0f (on/off %.3f)"
          % (statistics.median(cpu["off"]), statistics.median(cpu["on"]),
             statistics.median(cpu["on"]) / statistics.median(cpu["off"])))
    if args.before:
        bef = statistics.median(rates["before"])
        print("blast webhook off, before (%s) against now: before %.0f msg/s, now %.0f msg/s: now/before %.3f "
              "(runs: before %s); CPU ms per 1000: before %.0f, now %.0f"
              % (args.before, bef, off, off / bef, [round(x) for x in rates["before"]],
                 statistics.median(cpu["before"]), statistics.median(cpu["off"])))
    shutil.rmtree(d, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=500000)
    ap.add_argument("--batches", default="100,1000")
    ap.add_argument("--msgs", type=int, default=50000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--build", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build"))
    ap.add_argument("--skip-blast", action="store_true")
    ap.add_argument("--before", help="a build dir of the code before a change: its blast (webhook off) runs "
                    "in the same rotation, for a before/now rate")
    ap.add_argument("--in-netns", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.build = os.path.abspath(args.build)
    if args.before:
        args.before = os.path.abspath(args.before)
    if not args.in_netns:
        os.execvp("unshare", ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "sh",
                              sys.executable] + sys.argv + ["--in-netns"])
    rcv = Receiver()
    for b in [int(x) for x in args.batches.split(",") if x]:
        bench_events(args, rcv, b)
    if not args.skip_blast:
        bench_blast(args, rcv)


if __name__ == "__main__":
    main()
