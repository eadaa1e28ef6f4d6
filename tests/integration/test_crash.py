#!/usr/bin/python3
"""test_crash.py - crash safety and a full disk.

  blast      20,000 messages are injected while salvod is killed with SIGKILL at random
             moments, four times in a row, and restarted each time on the same spool:
             every recipient that got a 250 arrives at the sink; recipients that
             arrived more than once (in flight at a kill: at-least-once) are counted and
             reported, and must stay within what can have been in flight
  disk-full  the spool lives on a 6 MiB tmpfs: injection is answered 452 4.3.1 once it is
             full (never a 250 for what cannot be stored); while it is still full, mail
             accepted before that bounces (550 at the sink) is recorded with its DSN to
             the sender (outcomes may use the reserve that new mail may not) and the
             DSNs are delivered; the mail accepted before is still delivered intact,
             and once there is room again injection works
"""

import os
import random
import subprocess
import tempfile
import threading
import time

import harness
from harness import Fail, Injected, log, wait_until

SENDER = "crash@senders.test"
N = 20000
DOMAINS = ["c%d.test" % i for i in range(10)]


def _small(i, rcpt, size=300):
    body = ("From: <%s>\r\nTo: <%s>\r\nSubject: crash %d\r\nMessage-ID: <c%d@itest>\r\n\r\n" % (SENDER, rcpt, i, i))
    body += ("x" * 70 + "\r\n") * max(1, (size - len(body)) // 72)
    return Injected("c%d" % i, SENDER, [rcpt], body.encode())




def test_kill9_blast(env):
    env.dns(mx={d: [(10, "mx.sink.test")] for d in DOMAINS}, a={"mx.sink.test": "127.0.0.2"},
            check=[("c0.test", "MX")])
    sink = env.salvo_sink("sink", "127.0.0.2:25", dump=False)
    d = env.salvod_daemon(default_domain={"retry-after": "1s", "bounce-after": "1h", "max-smtp-out": "4",
                                          "max-msg-per-connection": "100"})
    d.start()
    rng = random.Random(31)
    acked = []
    done = threading.Event()

    def blast():
        """Inject all N; what a kill cut off (no 250) is sent again, as a client would,
        under a fresh address per attempt so every acknowledged recipient is unique."""
        pending, attempt = list(range(N)), 0
        deadline = time.monotonic() + 240
        try:
            while pending and time.monotonic() < deadline:
                batch = [_small(i, "u%d-a%d@%s" % (i, attempt, DOMAINS[i % len(DOMAINS)])) for i in pending]
                harness.inject(batch, threads=6, per_conn=100, timeout=max(5, deadline - time.monotonic()))
                acked.extend(m for m in batch if m.error is None)
                pending = [i for i, m in zip(pending, batch) if m.error is not None]
                attempt += 1
                if pending:
                    time.sleep(0.3)
        finally:
            done.set()
    t = threading.Thread(target=blast, daemon=True)
    t.start()
    kills = 0
    while kills < 4 and not done.is_set():
        time.sleep(rng.uniform(0.3, 1.2))
        if done.is_set():
            break
        d.kill9()
        kills += 1
        time.sleep(rng.uniform(0.0, 0.3))
        d.start()
    t.join(260)
    log("%d kills; %d of %d messages acknowledged" % (kills, len(acked), N))
    if len(acked) != N:
        raise Fail("only %d of %d messages were ever acknowledged" % (len(acked), N))
    if kills < 2:
        raise Fail("the blast ended after %d kills: too fast to test anything" % kills)
    expected = {m.rcpts[0].lower() for m in acked}
    ok = wait_until(lambda: expected <= set(sink.delivered()), 180, interval=0.5, what="every acknowledged recipient")
    seen = sink.delivered()
    missing = sorted(expected - set(seen))
    if not ok or missing:
        raise Fail("%d acknowledged recipients never arrived, e.g. %r" % (len(missing), missing[:5]))
    time.sleep(2.0)   # let late duplicates show up before counting
    seen = sink.delivered()
    dups = {r: n for r, n in seen.items() if n > 1}
    unacked = len(set(seen) - expected)
    log("all %d acknowledged recipients arrived; %d duplicated (in flight at a kill), %d unacknowledged "
        "ones delivered too (cut off before their 250)" % (len(expected), len(dups), unacked))
    # In flight at one kill: at most max-smtp-out (4) sessions x 10 queues, one message each,
    # plus what a sink accepted whose outcome had not been committed (one group commit).
    limit = kills * 500
    if len(dups) > limit:
        raise Fail("%d duplicates over %d kills: more than could have been in flight" % (len(dups), kills))


def test_disk_full(env):
    env.dns(mx={"df.test": [(10, "mx.sink.test")], "dfb.test": [(10, "mx-rej.sink.test")],
                "senders.test": [(10, "mx-snd.sink.test")]},
            a={"mx.sink.test": "127.0.0.2", "mx-rej.sink.test": "127.0.0.3", "mx-snd.sink.test": "127.0.0.4"},
            check=[("df.test", "MX")])
    sink = env.salvo_sink("sink", "127.0.0.2:25")
    env.salvo_sink("sinkRej", "127.0.0.3:25", reject=[r"@dfb\.test$"])
    env.salvo_sink("sinkSenders", "127.0.0.4:25")
    mnt = tempfile.mkdtemp(prefix="salvo-tmpfs-", dir=env.dir)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", mnt]).returncode != 0:
        raise Fail("cannot mount a tmpfs (needed to fill a disk safely)")
    try:
        _disk_full(env, sink, mnt)
    finally:
        if env.daemon is not None:
            env.daemon.stop()
        subprocess.run(["umount", "-l", mnt])


def _disk_full(env, sink, mnt):
    spool = os.path.join(mnt, "spool")
    cfg = harness.salvod_config(spool, domains={"df.test": {"max-smtp-out": "2"}})
    d = env.salvod_daemon(config_text=cfg)
    d.spool = spool
    d.start()
    # pause delivery so accepted mail stays in the spool and fills it
    import urllib.request
    def action(q, verb):
        urllib.request.urlopen(urllib.request.Request("http://%s:%d/api/v1/queues/%s/%s"
                                                      % (harness.SALVOD_HTTP + (q, verb)), method="POST"),
                               timeout=5).read()
    action("df.test", "pause")
    action("dfb.test", "pause")
    doomed = [_small(2000 + i, "b%d@dfb.test" % i) for i in range(10)]
    if len(harness.inject(doomed, threads=1, per_conn=10)) != len(doomed):
        raise Fail("mail for dfb.test refused before the disk filled: %r" % [(m.reply, m.error) for m in doomed])
    filler = os.path.join(mnt, "filler")
    with open(filler, "wb") as f:       # leave well under 2 MiB for the spool to grow into
        f.write(b"\0" * (3 << 20))
    msgs = [_small(i, "d%d@df.test" % i, size=20000) for i in range(400)]
    harness.inject(msgs, threads=2, per_conn=20, timeout=60)
    acked = [m for m in msgs if m.error is None]
    refused = [m for m in msgs if m.reply and m.reply[0] == 452]
    other = [m for m in msgs if m.error is not None and not (m.reply and m.reply[0] == 452)]
    log("disk full: %d acknowledged, %d answered 452, %d other" % (len(acked), len(refused), len(other)))
    if not refused:
        raise Fail("the disk never filled: no 452 among %d injections" % len(msgs))
    bad = [m.reply for m in refused if "4.3.1" not in m.reply[1]]
    if bad:
        raise Fail("452 without 4.3.1: %r" % bad[:3])
    if other:
        raise Fail("other failures than 452: %r" % [(m.reply, m.error) for m in other[:3]])
    # still full: bounces commit, each with its DSN, and the DSNs go out
    action("dfb.test", "resume")
    bounced = {m.rcpts[0] for m in doomed}
    snd = [x for x in env.sinks if x.name == "sinkSenders"][0]

    def bounces_with_dsn(recs):
        return bounced <= {r.get("recipient") for r in harness.find_records(recs, type="bounce") if r.get("dsn_id")}
    harness.wait_for_records(env, bounces_with_dsn, timeout=30, what="bounces with their DSNs on a full disk")
    if not wait_until(lambda: len(snd.arrivals()) >= len(doomed), 30, what="DSNs delivered"):
        raise Fail("only %d of %d DSNs delivered while the disk was full" % (len(snd.arrivals()), len(doomed)))
    still = harness.inject([_small(3000, "still@df.test", size=20000)], threads=1, per_conn=1)
    if still:
        raise Fail("new mail was acknowledged on a full disk after the bounces")
    log("disk still full: %d bounces recorded with their DSNs, %d DSNs delivered, new mail still refused"
        % (len(bounced), len(snd.arrivals())))
    # room again: delivery drains the spool, and injection is accepted again
    os.unlink(filler)
    urllib.request.urlopen(urllib.request.Request("http://%s:%d/api/v1/queues/df.test/resume" % harness.SALVOD_HTTP,
                                                  method="POST"), timeout=5).read()
    expected = {m.rcpts[0] for m in acked}
    seen = harness.wait_for_recipients(env, expected, 60, settle=0.2)
    if not expected <= set(seen):
        raise Fail("accepted mail was not all delivered after the disk had room again")
    for m in acked:
        why = harness.check_trace_prefix(seen[m.rcpts[0]][0].data, m.data)
        if why:
            raise Fail("%s damaged: %s" % (m.mid, why))
    late = [_small(1000 + i, "late%d@df.test" % i) for i in range(5)]
    if len(harness.inject(late, threads=1, per_conn=5)) != 5:
        raise Fail("injection still refused once there is room: %r" % [(m.reply, m.error) for m in late])
    log("after the disk had room: %d accepted messages delivered intact, injection accepted again" % len(expected))


if __name__ == "__main__":
    harness.main([test_kill9_blast, test_disk_full])
