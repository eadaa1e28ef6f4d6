#!/usr/bin/python3
"""test_acct_csv_attacks.py - PowerMTA's CSV accounting (<acct-file>) under attack.

  hostile   a receiver whose multi-line 550 reply holds commas, double quotes and bytes
            that are not UTF-8, a sender with a quoted local part holding a comma and a
            quote, and a message header (header_X-Tag) with the same: the file parses
            with Python's csv module as strict UTF-8, every row has the header's width,
            and every field equals what the JSON log says of the same event (the
            columns in the order record-fields gives them)
  rotate    max-size 3k and move-interval 1s under load (120 messages from 4 threads),
            move-to on another file system (a tmpfs: the move is a copy): every record
            is in exactly one file, whole; every file starts with the header; names are
            NAME-YYYY-MM-DD-HHMM[.n].csv; delete-after removes an old archive and
            keeps a file that is not one
  pipes     `<acct-file |head -n 3 >> F>` (a program that exits early) and
            `<acct-file |exec sleep 300>` (one that never reads): salvod delivers every
            message and lives on; F holds only whole lines; the restarted program got
            records after the first ones; salvo_acct_csv_dropped_total is exported.
            A pipe whose program is not there and a move-to that is not there stop
            salvod at start with a message naming the line
  disk-full the acct-file's directory is a full 256 KiB tmpfs: mail is delivered,
            salvod says the file cannot be written, the outbox holds the records; kill -9
            then, space freed, a restart: every d record reaches the file, no line split
            by the failed writes (a record of a commit not known written may come twice,
            as the same row, as in the JSON log)
"""

import calendar
import csv
import glob
import io
import os
import random
import re
import socket
import subprocess
import threading
import time
import urllib.request

import harness
from harness import Fail, Injected, log, make_body, wait_until

SENDER = "owner@senders.test"


def read_csv(path):
    """Header and rows of a CSV file: strict UTF-8, CRLF records, every row as wide as the header."""
    raw = open(path, "rb").read()
    if raw and not raw.endswith(b"\r\n"):
        raise Fail("%s does not end in CRLF: %r" % (path, raw[-60:]))
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8"), newline="")))
    if not rows:
        raise Fail("%s is empty" % path)
    for r in rows[1:]:
        if len(r) != len(rows[0]):
            raise Fail("%s: a row of %d fields under a header of %d: %r" % (path, len(r), len(rows[0]), r))
    return rows[0], [dict(zip(rows[0], r)) for r in rows[1:]]


def metrics():
    with urllib.request.urlopen("http://%s:%d/metrics" % harness.SALVOD_HTTP, timeout=5) as r:
        return r.read().decode()


def metric(name):
    m = re.search(r"^%s (\d+)$" % re.escape(name), metrics(), re.M)
    return int(m.group(1)) if m else None


# ---- a receiver that answers RCPT with a hostile multi-line reply ---------------------------

HOSTILE_REPLY = (b'550-5.1.1 first, "quoted" part\r\n'
                 b'550 5.1.1 second \xff\xfe bytes, and \xc3\xa9\r\n')


class HostileMx(threading.Thread):
    def __init__(self, addr):
        super().__init__(daemon=True)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(addr)
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.stop = False
        self.rcpts = 0

    def run(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            threading.Thread(target=self.session, args=(c,), daemon=True).start()
        self.sock.close()

    def session(self, c):
        f = c.makefile("rb")
        try:
            c.sendall(b"220 hostile.test ESMTP\r\n")
            for line in f:
                cmd = line[:4].upper()
                if cmd in (b"EHLO", b"HELO"):
                    c.sendall(b"250-hostile.test\r\n250 8BITMIME\r\n")
                elif cmd == b"MAIL" or cmd == b"RSET" or cmd == b"NOOP":
                    c.sendall(b"250 2.0.0 ok\r\n")
                elif cmd == b"RCPT":
                    self.rcpts += 1
                    c.sendall(HOSTILE_REPLY)
                elif cmd == b"QUIT":
                    c.sendall(b"221 bye\r\n")
                    break
                else:
                    c.sendall(b"503 5.5.1 no\r\n")
        except OSError:
            pass
        finally:
            c.close()


def test_hostile(env):
    rng = random.Random(31)
    env.dns(mx={"h.test": [(10, "mx.h.test")], "ok.test": [(10, "mx.ok.test")]},
            a={"mx.h.test": "127.0.0.3", "mx.ok.test": "127.0.0.2"}, check=[("h.test", "MX")])
    env.salvo_sink("sink", "127.0.0.2:25")
    mx = HostileMx(("127.0.0.3", 25))
    mx.start()
    path = os.path.join(env.dir, "h.csv")
    extra = "\n".join(["<acct-file %s>" % path, "  records d,b",
                       "  record-fields d rcpt,orig,header_X-Tag,*,!orcpt",
                       "  record-fields b rcpt,dsnDiag,orig,dsnStatus,bounceCat,header_X-Tag,timeLogged", "</acct-file>"])
    d = env.salvod_daemon(extra=extra)
    d.start()
    try:
        senders = [SENDER, '"o,w \\"n\\""@senders.test']
        msgs = []
        for i, (rcpt, snd) in enumerate([("a@ok.test", senders[0]), ("b@h.test", senders[0]),
                                        ("c@ok.test", senders[1]), ("e@h.test", senders[1])]):
            m = Injected("h%d" % i, snd, [rcpt], make_body(rng, "h%d" % i, SENDER, [rcpt], 200))
            m.data = b'X-Tag: one, "two"\r\n \xff three\r\n' + m.data
            msgs.append(m)
        harness.inject(msgs, threads=1, per_conn=4)
        ours = {"a@ok.test", "b@h.test", "c@ok.test", "e@h.test"}
        recs = harness.wait_for_records(env, lambda r: ours <= {x["recipient"] for x in r
                                                                if x["type"] in ("delivery", "bounce")},
                                        20, what="two deliveries and two bounces")
        d.stop()
    finally:
        mx.stop = True
    head, rows = read_csv(path)
    want_head = ["type", "rcpt", "orig", "header_X-Tag", "timeLogged", "timeQueued", "dsnAction", "dsnStatus",
                 "dsnDiag", "dsnMta", "bounceCat", "srcType", "srcMta", "dlvType", "dlvSourceIp", "dlvDestinationIp",
                 "dlvEsmtpAvailable", "dlvSize", "vmta", "jobId", "envId", "queue", "vmtaPool"]
    if head != want_head:
        raise Fail("header (the order record-fields gives):\n got %r\nwant %r" % (head, want_head))
    by = {r["rcpt"]: r for r in rows if r["rcpt"] in ours}
    if len(by) != 4 or len([r for r in rows if r["rcpt"] in ours]) != 4:
        raise Fail("want one row for each of %r, got %r" % (sorted(ours), rows))
    for j in recs:
        if j["type"] not in ("delivery", "bounce") or j["recipient"] not in ours:
            continue
        r = by.get(j["recipient"])
        if r is None:
            raise Fail("no CSV row for %r" % j)
        resp = j.get("response", {})
        diag = "smtp;%d %s%s%s" % (resp["code"], resp.get("enhanced", ""), " " if resp.get("enhanced") else "",
                                   resp.get("text", ""))
        want = {"type": "d" if j["type"] == "delivery" else "b", "orig": j["sender"], "dsnDiag": diag,
                "dsnStatus": resp.get("enhanced", ""), "header_X-Tag": 'one, "two" \ufffd three',
                "timeLogged": str(calendar.timegm(time.strptime(j["time"][:19], "%Y-%m-%dT%H:%M:%S")))}
        if j["type"] == "bounce":
            want["bounceCat"] = j.get("bounce_category", "")
        else:
            want.update({"dlvDestinationIp": j["mx_ip"], "queue": j["queue"], "dsnAction": "relayed",
                         "dlvSize": str(j["size"]), "bounceCat": "success",
                         "dsnMta": "%s (%s)" % (j["mx_host"], j["mx_ip"]), "dlvType": "smtp"})
        for k, v in want.items():
            if r[k] != v:
                raise Fail("%s: field %s is %r, the JSON log says %r\nrow %r\njson %r" % (j["recipient"], k, r[k], v, r, j))
        if j["type"] == "bounce" and ("first, \"quoted\" part second" not in r["dsnDiag"]
                                      or not r["dsnDiag"].endswith("and \u00e9")):
            raise Fail("the hostile reply is not in dsnDiag: %r" % r["dsnDiag"])
    if by["c@ok.test"]["orig"] != senders[1]:
        raise Fail("quoted local part: %r" % by["c@ok.test"]["orig"])
    log("4 rows with hostile values parse as strict UTF-8 CSV, every field equal to the JSON log's")


# ---- rotation under load ---------------------------------------------------------------------

def test_rotate(env):
    rng = random.Random(32)
    env.dns(mx={"r.test": [(10, "mx.r.test")]}, a={"mx.r.test": "127.0.0.2"}, check=[("r.test", "MX")])
    sink = env.salvo_sink("sink", "127.0.0.2:25")
    path = os.path.join(env.dir, "acct.csv")
    archive = os.path.join(env.dir, "archive")
    os.mkdir(archive)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", archive]).returncode != 0:
        raise Fail("cannot mount a tmpfs (move-to on another file system)")
    try:
        old = os.path.join(archive, "acct-2001-01-01-0000.csv")
        other = os.path.join(archive, "acct-bounces-2001-01-01-0000.csv")  # another acct-file's archive
        for p in (old, other):
            open(p, "w").close()
            os.utime(p, (1e9, 1e9))
        extra = "\n".join(["<acct-file %s>" % path, "  records d", "  max-size 3k", "  move-interval 1s",
                           "  move-to %s" % archive, "  delete-after 1d", "</acct-file>"])
        d = env.salvod_daemon(extra=extra)
        d.start()
        msgs = [Injected("r%d" % i, SENDER, ["r%d@r.test" % i], make_body(rng, "r%d" % i, SENDER, ["r%d@r.test" % i], 300))
                for i in range(120)]
        t0 = time.monotonic()
        harness.inject_all(msgs[:60], threads=4, per_conn=5, timeout=30)
        time.sleep(1.2)  # a move by age too, not only by size
        harness.inject_all(msgs[60:], threads=4, per_conn=5, timeout=30)
        want = {m.rcpts[0] for m in msgs}
        if not wait_until(lambda: want <= set(sink.delivered()), 30, what="every message delivered"):
            raise Fail("not delivered: %r" % sorted(want - set(sink.delivered()))[:5])
        harness.wait_for_records(env, lambda r: len([x for x in r if x["type"] == "delivery"]) >= 120, 10,
                                 what="120 delivery records")
        d.stop()
        elapsed = time.monotonic() - t0
        files = sorted(set(glob.glob(os.path.join(archive, "acct-*.csv"))) - {other})
        if old in files:
            raise Fail("delete-after 1d kept %s" % old)
        if not os.path.exists(other):
            raise Fail("delete-after removed a file that is not an archive of this one")
        seen = []
        heads = set()
        for p in files + [path]:
            if p != path and not re.search(r"/acct-\d{4}-\d\d-\d\d-\d{4}(\.\d+)?\.csv$", p):
                raise Fail("archive name %s" % p)
            if p != path and os.path.getsize(p) > 3072:
                raise Fail("%s is %d bytes, past max-size 3k" % (p, os.path.getsize(p)))
            h, rows = read_csv(p)
            heads.add(tuple(h))
            seen += [r["rcpt"] for r in rows]
        if len(heads) != 1 or list(heads)[0][0] != "type":
            raise Fail("headers differ or are missing: %r" % heads)
        dup = {r for r in seen if seen.count(r) > 1}
        if dup or set(seen) != want:
            raise Fail("records lost %r or twice %r" % (sorted(want - set(seen))[:5], sorted(dup)[:5]))
        log("120 messages in %.1fs: %d files of at most 3k on another file system, each with the header; "
            "every record once; delete-after removed the old archive only" % (elapsed, len(files) + 1))
    finally:
        if env.daemon is not None:
            env.daemon.stop()
        subprocess.run(["umount", "-l", archive])


# ---- pipes -----------------------------------------------------------------------------------

def test_pipes(env):
    rng = random.Random(33)
    env.dns(mx={"p.test": [(10, "mx.p.test")]}, a={"mx.p.test": "127.0.0.2"}, check=[("p.test", "MX")])
    sink = env.salvo_sink("sink", "127.0.0.2:25")
    out = os.path.join(env.dir, "early.csv")
    extra = "\n".join(["<acct-file |head -n 3 >> %s>" % out, "  records d", "  record-fields d rcpt", "</acct-file>",
                       "<acct-file |exec sleep 300>", "  records d", "</acct-file>"])
    d = env.salvod_daemon(extra=extra)
    d.start()
    want = set()
    for wave in range(3):
        msgs = [Injected("p%d.%d" % (wave, i), SENDER, ["p%d.%d@p.test" % (wave, i)],
                         make_body(rng, "p%d" % i, SENDER, ["p%d.%d@p.test" % (wave, i)], 200)) for i in range(10)]
        harness.inject_all(msgs, threads=2, per_conn=5, timeout=20)
        want |= {m.rcpts[0] for m in msgs}
        if not wait_until(lambda: want <= set(sink.delivered()), 20, what="wave %d delivered" % wave):
            raise Fail("not delivered while the pipes misbehave: %r" % sorted(want - set(sink.delivered()))[:5])
        time.sleep(1.2)  # the program that exited is started again a second later
    d.check_alive()
    dropped = metric("salvo_acct_csv_dropped_total")
    if dropped is None:
        raise Fail("no salvo_acct_csv_dropped_total in /metrics")
    d.stop()
    lines = open(out, "rb").read().split(b"\r\n")
    if lines[-1] != b"":
        raise Fail("%s ends mid-line: %r" % (out, lines[-1]))
    bad = [ln for ln in lines[:-1] if ln != b"type,rcpt" and not re.match(rb"^d,p\d\.\d+@p\.test$", ln)]
    if bad:
        raise Fail("broken lines from the restarted program: %r" % bad[:3])
    starts = lines.count(b"type,rcpt")
    if starts < 2:
        raise Fail("the program that exits was not started again (%d headers): %r" % (starts, lines))
    log("30 delivered with one pipe program exiting after 3 lines (started %d times, whole lines only) and one "
        "never reading; salvo_acct_csv_dropped_total %d" % (starts, dropped))

    # refused at start: a program that is not there, a move-to that is not there
    for block, words in ((["<acct-file |/nonexistent/acct-reader -x>", "</acct-file>"], "the program cannot be run"),
                         (["<acct-file %s>" % os.path.join(env.dir, "m.csv"), "  move-to /nonexistent/dir",
                           "</acct-file>"], "move-to /nonexistent/dir")):
        d = env.salvod_daemon(extra="\n".join(block))
        try:
            d.start(timeout=5)
        except Fail as e:
            if words not in str(e) or "No such file or directory" not in str(e):
                raise Fail("salvod stopped but did not say why: %s" % e)
            continue
        d.stop()
        raise Fail("salvod started with %r" % block)
    log("a missing pipe program and a missing move-to stop salvod at start with the line")


# ---- the acct-file's disk is full ------------------------------------------------------------

def test_disk_full(env):
    rng = random.Random(34)
    env.dns(mx={"f.test": [(10, "mx.f.test")]}, a={"mx.f.test": "127.0.0.2"}, check=[("f.test", "MX")])
    sink = env.salvo_sink("sink", "127.0.0.2:25")
    acct_dir = os.path.join(env.dir, "acctdir")
    os.mkdir(acct_dir)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", acct_dir]).returncode != 0:
        raise Fail("cannot mount a tmpfs (needed to fill the acct-file's disk)")
    try:
        path = os.path.join(acct_dir, "full.csv")
        d = env.salvod_daemon(extra="\n".join(["<acct-file %s>" % path, "  records d", "</acct-file>"]))
        d.start()
        filler = os.path.join(acct_dir, "filler")
        with open(filler, "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 512)
            except OSError:
                pass
        msgs = [Injected("f%d" % i, SENDER, ["f%d@f.test" % i], make_body(rng, "f%d" % i, SENDER, ["f%d@f.test" % i], 400))
                for i in range(40)]
        harness.inject_all(msgs, threads=2, per_conn=10, timeout=20)
        want = {m.rcpts[0] for m in msgs}
        if not wait_until(lambda: want <= set(sink.delivered()), 20, what="every message delivered"):
            raise Fail("not delivered with the acct-file's disk full: %r" % sorted(want - set(sink.delivered()))[:5])
        time.sleep(0.5)
        err = harness.tail(d.stderr_paths[-1], 80)
        if "acct-file %s: write: No space left on device" % path not in err:
            raise Fail("salvod did not say that the acct-file could not be written:\n" + err)
        held = metric("salvo_acct_outbox_entries")
        if not held:
            raise Fail("salvo_acct_outbox_entries %r while the acct-file's disk is full: want some" % held)
        # the worst moment: killed while the records are only in memory and the outbox
        d.kill9()
        os.unlink(filler)
        d.start()
        harness.inject_all([Injected("g", SENDER, ["g@f.test"], make_body(rng, "g", SENDER, ["g@f.test"], 100))],
                           threads=1, timeout=10)
        want.add("g@f.test")

        def complete():
            try:
                return want <= {r["rcpt"] for r in read_csv(path)[1]}
            except (Fail, OSError, UnicodeDecodeError):
                return False
        if not wait_until(complete, 15, what="every d record in the file"):
            raise Fail("records lost while the disk was full: %r"
                       % sorted(want - {r["rcpt"] for r in read_csv(path)[1]})[:5])
        d.stop()
        head, rows = read_csv(path)
        # the outbox's promise (queue/outbox.h): a record of a commit not known written may be
        # written again after a crash, as the same row; never lost, never a different row
        first = {}
        for r in rows:
            if first.setdefault(r["rcpt"], r) != r:
                raise Fail("two different rows for %s: %r / %r" % (r["rcpt"], first[r["rcpt"]], r))
        again = len(rows) - len(first)
        if any(r["type"] != "d" or not r["timeLogged"].isdigit() for r in rows):
            raise Fail("a row split by the failed writes: %r" % [r for r in rows if not r["timeLogged"].isdigit()][:2])
        log("40 messages delivered with the acct-file's disk full (%d commits held in the outbox); kill -9, space "
            "freed, restart: every record in the file, none split (%d written again, identical)" % (held, again))
    finally:
        if env.daemon is not None:
            env.daemon.stop()
        subprocess.run(["umount", "-l", acct_dir])


if __name__ == "__main__":
    harness.main([test_hostile, test_rotate, test_pipes, test_disk_full])
