#!/usr/bin/python3
"""test_bench.py - salvo-bench measures what really happened, and cleans up after itself.

  plain      salvod and the loopback limit, 400 messages each: every recipient delivered
             once, latency, CPU and RSS filled in, the ratio printed, JSON parses
  realistic  1,000 messages against the realistic sink profile: every recipient is
             either delivered or bounced (a 5xx), and the 4xx deferrals were seen
  http       500 recipients over /api/inject/v1 in batches of 50 with substitutions
  usage      a bad option exits 2; no process of a run survives it
"""

import json
import os
import signal
import subprocess

import harness
from harness import Fail, log

BENCH = os.environ.get("SALVO_BENCH", "build/bench/salvo-bench")


def bench(env, name, *args, timeout=240):
    out = os.path.join(env.dir, name + ".json")
    wd = os.path.join(env.dir, name)
    p = subprocess.Popen([BENCH, "--json", out, "--workdir", wd] + list(args), stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    try:
        text, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGTERM)      # salvo-bench stops what it started, then exits
        p.communicate(timeout=30)
        raise Fail("salvo-bench %s did not finish in %d s" % (name, timeout))
    log(text.strip().splitlines()[-1] if text.strip() else "(no output)")
    if p.returncode != 0:
        raise Fail("salvo-bench %s exited %d:\n%s" % (name, p.returncode, text))
    with open(out) as f:
        return json.load(f), text


def leftovers(wd):
    """Processes whose command line names this run's scratch directory."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                if wd.encode() in f.read():
                    found.append(pid)
        except OSError:
            pass
    return found


def test_plain(env):
    doc, text = bench(env, "plain", "-n", "400", "--domains", "8", "--target", "salvod,loopback")
    runs = {r["target"]: r for r in doc["runs"]}
    for t in ("salvod", "loopback"):
        r = runs[t]
        if (r["delivered"], r["accepted"], r["duplicates"], r["complete"]) != (400, 400, 0, True):
            raise Fail("%s: %r" % (t, r))
        if not r["e2e_rate"] > 0 or not r["inject_rate"] > 0:
            raise Fail("%s: no rates: %r" % (t, r))
    s = runs["salvod"]
    if not (0 < s["latency_p50_ms"] <= s["latency_p99_ms"] <= s["latency_max_ms"]):
        raise Fail("salvod latency percentiles out of order: %r" % s)
    if not (s["mta_cpu_seconds"] > 0 and s["mta_peak_rss_kib"] > 1000):
        raise Fail("salvod CPU/RSS not measured: %r" % s)
    if not doc["ratios"].get("salvod/loopback", 0) > 0 or "ratio salvod/loopback" not in text:
        raise Fail("no salvod/loopback ratio: %r" % doc["ratios"])
    if leftovers(os.path.join(env.dir, "plain")):
        raise Fail("processes of the run are still alive")
    log("plain: salvod %.0f msg/s, loopback %.0f msg/s, p99 %.1f ms"
        % (s["e2e_rate"], runs["loopback"]["e2e_rate"], s["latency_p99_ms"]))


def test_realistic(env):
    doc, _ = bench(env, "realistic", "-n", "1000", "--domains", "8", "--profile", "realistic")
    r = doc["runs"][0]
    if r["delivered"] + r["bounced"] != 1000 or r["duplicates"]:
        raise Fail("delivered %d + bounced %d != 1000 (dups %d)" % (r["delivered"], r["bounced"], r["duplicates"]))
    if not r["deferrals"] or not r["bounced"]:
        raise Fail("the realistic profile's 4xx and 5xx were not seen: %r" % r)
    log("realistic: %d delivered, %d bounced, %d deferrals" % (r["delivered"], r["bounced"], r["deferrals"]))


def test_http(env):
    doc, _ = bench(env, "http", "-n", "500", "--domains", "8", "--http", "--batch", "50", "--sessions", "2",
                   "--subst")
    r = doc["runs"][0]
    if (r["delivered"], r["duplicates"]) != (500, 0):
        raise Fail("http: %r" % r)


def test_usage(env):
    for args in (["--target", "nosuch"], ["--profile", "odd"], ["-n", "0"], ["--http", "--target", "loopback"]):
        p = subprocess.run([BENCH] + args, capture_output=True, text=True, timeout=30)
        if p.returncode != 2 or "usage" not in p.stderr + p.stdout and "salvo-bench:" not in p.stderr:
            raise Fail("%r: exit %d, %r" % (args, p.returncode, p.stderr))


if __name__ == "__main__":
    harness.main([test_plain, test_realistic, test_http, test_usage], needs_salvod=False)
