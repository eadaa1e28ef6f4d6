"""harness.py - the integration tests' peers and plumbing.

Starts real programs as Salvo's peers, each in one temporary directory per test:

  dnsmasq      DNS for the *.test zone (MX with preferences, A, null MX), on
               127.0.0.1:10053, from a generated configuration file
  salvo-sink   the project's sink on 127.0.0.X:25, with --dump, --stats and faults
  smtp-sink    Postfix's sink on 127.0.0.X:25 (runs as nobody), dumping each message
  salvod       the daemon under test, from a generated PowerMTA-style config,
               in the foreground with its stderr captured to a file

Every process started here is stopped by PID: at the end of each test (finally),
at interpreter exit (atexit), on SIGTERM/SIGHUP/SIGINT (turned into exceptions so the
finally blocks run), and, as a last resort, by PR_SET_PDEATHSIG when this Python
process dies. Every wait polls against a deadline; nothing waits forever.

A test is a function taking an Env. run_tests() runs each one in a fresh Env, prints
PASS/FAIL/SKIP, and on failure prints salvod's stderr and keeps the temp directory
(its path is printed); on success the directory is removed. A sanitizer report
(ASan/UBSan/LSan) in any daemon's stderr fails the test too.

Isolation: the ports are fixed (127.0.0.x:25, 10053, 12525, 18025), so run_tests()
first moves the process into a private network namespace (unshare(CLONE_NEWNET), a
loopback of its own): concurrent runs, a developer's sinks or a real MTA on port 25
cannot interfere. Where that is refused, runs are serialized with a lock file
(/tmp/salvo-itest.lock) and every listener's address is checked free before use.

Binaries: $SALVOD and $SALVO_SINK (set by meson), else --salvod/--sink on the command
line, else build/ or /tmp/build-itest/ next to the source tree.

Exit status of run_tests(): 0 all passed, 1 some failed, 77 cannot run (not root, a
peer program or a binary missing), which meson reports as SKIP.
"""

import atexit
import ctypes
import email
import email.policy
import fcntl
import glob
import json
import os
import random
import re
import shlex
import shutil
import signal
import smtplib
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request

PY = "/usr/bin/python3"
DNSMASQ = "/usr/sbin/dnsmasq"
SMTP_SINK = "/usr/sbin/smtp-sink"
SALVOCTL = None   # set by run_tests(): $SALVOCTL, --salvoctl, or the build dir

DNS_ADDR = ("127.0.0.1", 10053)
SALVOD_SMTP = ("127.0.0.1", 12525)
SALVOD_HTTP = ("127.0.0.1", 18025)

LOCK_FILE = "/tmp/salvo-itest.lock"
LOCK_WAIT = 150

HERE = os.path.dirname(os.path.abspath(__file__))
SRC_ROOT = os.path.dirname(os.path.dirname(HERE))

VERBOSE = bool(os.environ.get("SALVO_ITEST_VERBOSE"))
# A command salvod runs under, e.g. SALVOD_WRAPPER="valgrind --fair-sched=yes
# --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99": start-up and
# shut-down then get longer deadlines, and a non-zero exit at the final stop fails the test.
SALVOD_WRAPPER = shlex.split(os.environ.get("SALVOD_WRAPPER", ""))
SLOW = 10.0 if SALVOD_WRAPPER else 1.0
KEEP = bool(os.environ.get("SALVO_ITEST_KEEP"))


class Skip(Exception):
    """The test cannot run here (exit 77)."""


class Fail(AssertionError):
    pass


def log(*a):
    print("  [%7.3f]" % (time.monotonic() - _T0), *a, flush=True)


def vlog(*a):
    if VERBOSE:
        log(*a)


_T0 = time.monotonic()


# --------------------------------------------------------------------------
# processes: registry, death signal, signal handlers

_live = {}          # pid -> (name, Popen)
_live_lock = threading.Lock()

try:
    _libc = ctypes.CDLL("libc.so.6", use_errno=True)
except OSError:
    _libc = None


def _pdeathsig():
    # In the child between fork and exec: die with the parent. (Cleared by the
    # kernel when a program drops privileges, so smtp-sink and dnsmasq rely on the
    # other mechanisms.) Also its own process group so a Ctrl-C on the terminal goes
    # only to us, and we stop the children in order.
    os.setpgid(0, 0)
    if _libc is not None:
        _libc.prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG


def _register(name, p):
    with _live_lock:
        _live[p.pid] = (name, p)


def _unregister(p):
    with _live_lock:
        _live.pop(p.pid, None)


def stop_process(p, name="", sig=signal.SIGTERM, grace=5.0):
    """Stop one process we started, by PID: sig, then SIGKILL after grace seconds.
    Returns its exit status."""
    if p.poll() is None:
        try:
            os.kill(p.pid, sig)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            log("%s (pid %d) ignored signal %d for %.0fs; SIGKILL" % (name, p.pid, sig, grace))
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                log("%s (pid %d) did not die after SIGKILL" % (name, p.pid))
    _unregister(p)
    return p.returncode


def _stop_all_registered():
    with _live_lock:
        items = list(_live.values())
    for name, p in items:
        stop_process(p, name, grace=2.0)


atexit.register(_stop_all_registered)


def _on_signal(signum, frame):
    raise KeyboardInterrupt("signal %d" % signum)


for _s in (signal.SIGTERM, signal.SIGHUP):
    signal.signal(_s, _on_signal)


def wait_until(pred, timeout, interval=0.05, what="condition"):
    """Poll pred() until it returns a true value (returned) or timeout seconds pass
    (returns the last false value)."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            vlog("timed out after %.1fs waiting for %s" % (timeout, what))
            return v
        time.sleep(interval)


def tail(path, lines=200):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return "(cannot read %s: %s)" % (path, e)
    text = data.decode("utf-8", "replace").splitlines()
    if len(text) > lines:
        return "\n".join(["... (%d lines omitted)" % (len(text) - lines)] + text[-lines:])
    return "\n".join(text)


def port_open(addr, timeout=0.3):
    try:
        with socket.create_connection(addr, timeout=timeout):
            return True
    except OSError:
        return False


def assert_port_free(addr, what="", grace=2.0):
    """Fail clearly when something already listens on addr (TCP): another test run or a
    leftover process would otherwise answer in place of the peer we start. A daemon we
    just stopped may hold its listener for some milliseconds after it exited: io_uring
    drops the files its pending requests hold (an armed accept) when the kernel tears the
    ring down, after the process is gone. So a listener may take `grace` seconds to go."""
    deadline = time.monotonic() + grace
    while port_open(addr, timeout=0.3) and time.monotonic() < deadline:
        time.sleep(0.05)
    if port_open(addr, timeout=0.3):
        raise Fail("%s:%d is already in use%s (another test run or a leftover process? see `ss -ltnp`)"
                   % (addr[0], addr[1], " (wanted for %s)" % what if what else ""))


def read_banner(addr, timeout=1.0):
    """Connect, return the first reply line (b'220 ...') or None."""
    try:
        with socket.create_connection(addr, timeout=timeout) as s:
            s.settimeout(timeout)
            buf = b""
            while b"\n" not in buf and len(buf) < 4096:
                d = s.recv(4096)
                if not d:
                    break
                buf += d
            try:
                s.sendall(b"QUIT\r\n")
                s.recv(512)
            except OSError:
                pass
            return buf.split(b"\n")[0] if buf else None
    except OSError:
        return None


# --------------------------------------------------------------------------
# a tiny DNS client (enough to check dnsmasq answers)

QTYPE = {"A": 1, "MX": 15, "AAAA": 28}


def _dns_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def _dns_read_name(msg, off):
    labels = []
    jumped = False
    end = off
    for _ in range(128):
        n = msg[off]
        if n & 0xC0 == 0xC0:
            ptr = ((n & 0x3F) << 8) | msg[off + 1]
            if not jumped:
                end = off + 2
            jumped = True
            off = ptr
            continue
        if n == 0:
            if not jumped:
                end = off + 1
            break
        labels.append(msg[off + 1:off + 1 + n].decode("ascii", "replace"))
        off += 1 + n
    return ".".join(labels), end


def dns_query(name, qtype="MX", server=DNS_ADDR, timeout=1.0):
    """Returns (rcode, answers): answers are (pref, host) for MX, address strings for A.
    Raises OSError on timeout."""
    qid = random.randrange(65536)
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + _dns_name(name) + struct.pack(">HH", QTYPE[qtype], 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(q, server)
        deadline = time.monotonic() + timeout
        while True:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            msg, _ = s.recvfrom(4096)
            if len(msg) >= 12 and struct.unpack(">H", msg[:2])[0] == qid:
                break
    _, flags, qd, an, _, _ = struct.unpack(">HHHHHH", msg[:12])
    rcode = flags & 0xF
    off = 12
    for _ in range(qd):
        _, off = _dns_read_name(msg, off)
        off += 4
    answers = []
    for _ in range(an):
        _, off = _dns_read_name(msg, off)
        rtype, _, _, rdlen = struct.unpack(">HHIH", msg[off:off + 10])
        off += 10
        rd = msg[off:off + rdlen]
        if rtype == 15 and qtype == "MX":
            pref = struct.unpack(">H", rd[:2])[0]
            host, _ = _dns_read_name(msg, off + 2)
            answers.append((pref, host))
        elif rtype == 1 and qtype == "A":
            answers.append(socket.inet_ntoa(rd))
        elif rtype == 28 and qtype == "AAAA":
            answers.append(socket.inet_ntop(socket.AF_INET6, rd))
        off += rdlen
    return rcode, answers


# --------------------------------------------------------------------------
# message dumps, as seen by either sink

class Arrival:
    """One message as a sink accepted it."""
    __slots__ = ("sink", "file", "client_ip", "helo", "mail_from", "rcpt_to", "data")

    def __init__(self, sink, file, client_ip, helo, mail_from, rcpt_to, data):
        self.sink, self.file, self.client_ip, self.helo = sink, file, client_ip, helo
        self.mail_from, self.rcpt_to, self.data = mail_from, rcpt_to, data

    def __repr__(self):
        return "<Arrival %s %s from=%r to=%r %d bytes>" % (self.sink, os.path.basename(self.file),
                                                           self.mail_from, self.rcpt_to, len(self.data))


def _angle_addr(args):
    """'<a@b> BODY=8BITMIME' -> 'a@b'; '<>' -> ''."""
    m = re.match(r"\s*<([^>]*)>", args)
    if m:
        return m.group(1)
    return args.split()[0] if args.split() else ""


class SalvoSink:
    def __init__(self, env, name, listen, proc, dump, stats, stderr):
        self.env, self.name, self.listen, self.proc = env, name, listen, proc
        self.dump, self.stats_file, self.stderr = dump, stats, stderr
        self._cache = {}

    def stats(self):
        try:
            with open(self.stats_file) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def vias(self):
        """How the accepted messages came so far: {"data": n, "bdat": m} (from --events)."""
        out = {}
        for e in self.events():
            if e.get("ev") == "msg":
                out[e.get("via")] = out.get(e.get("via"), 0) + 1
        return out

    def delivered(self):
        """{recipient (lower-case): times accepted} so far (from --events)."""
        seen = {}
        for e in self.events():
            if e.get("ev") == "msg":
                for r in e["rcpt_to"]:
                    seen[r.lower()] = seen.get(r.lower(), 0) + 1
        return seen

    def events(self):
        """The --events log so far (flushed every 200 ms): a list of dicts."""
        out = []
        try:
            with open(self.events_file, "rb") as f:
                data = f.read()
        except OSError:
            return out
        for ln in data.split(b"\n"):
            if ln.strip():
                try:
                    out.append(json.loads(ln))
                except ValueError:
                    pass   # a line being written
        return out

    def arrivals(self):
        """Every message dumped so far (a .json exists => its .eml is complete)."""
        out = []
        for meta_path in glob.glob(os.path.join(self.dump, "*.json")):
            a = self._cache.get(meta_path)
            if a is None:
                try:
                    with open(meta_path) as f:
                        meta = json.load(f)
                    with open(meta_path[:-5] + ".eml", "rb") as f:
                        data = f.read()
                except (OSError, ValueError):
                    continue
                a = Arrival(self.name, meta_path[:-5] + ".eml", meta.get("client_ip"), meta.get("helo"),
                            meta.get("mail_from"), list(meta.get("rcpt_to") or []), data)
                if meta.get("size") is not None and meta["size"] != len(data):
                    raise Fail("%s: %s says size %d, .eml has %d bytes" % (self.name, meta_path, meta["size"], len(data)))
                self._cache[meta_path] = a
            out.append(a)
        return out

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc, self.name)


class PostfixSink:
    """Postfix smtp-sink with -d: one file per transaction, text lines ending in LF:
    X-Client-Addr, X-Client-Proto, [X-Helo-Args], X-Mail-Args, X-Rcpt-Args..., a
    three-line Received header, then the message lines (unstuffed, CRLF -> LF), then
    one empty line. The file is written while the transaction runs, so read it only
    once the transaction is over (after salvod logged the delivery, plus a pause)."""

    def __init__(self, env, name, listen, proc, dump, stderr):
        self.env, self.name, self.listen, self.proc = env, name, listen, proc
        self.dump, self.stderr = dump, stderr

    def arrivals(self):
        out = []
        for path in sorted(glob.glob(os.path.join(self.dump, "m.*"))):
            try:
                with open(path, "rb") as f:
                    raw = f.read()
            except OSError:
                continue
            a = self._parse(path, raw)
            if a is not None:
                out.append(a)
        return out

    def _parse(self, path, raw):
        lines = raw.split(b"\n")
        hdr = {"X-Client-Addr": None, "X-Helo-Args": None, "X-Mail-Args": None}
        rcpts = []
        i = 0
        while i < len(lines):
            ln = lines[i].decode("utf-8", "replace")
            if ln.startswith("Received:"):
                break
            k, _, v = ln.partition(": ")
            if k == "X-Rcpt-Args":
                rcpts.append(_angle_addr(v))
            elif k in hdr:
                hdr[k] = v
            i += 1
        else:
            return None                  # still being written
        i += 1
        while i < len(lines) and lines[i][:1] in (b"\t", b" "):
            i += 1
        body = lines[i:]
        # The dump ends with the message's last LF, then one empty line and its LF.
        if len(body) < 2 or body[-1] != b"" or body[-2] != b"":
            return None                  # incomplete
        body = body[:-2]
        data = b"".join(ln + b"\r\n" for ln in body)
        return Arrival(self.name, path, hdr["X-Client-Addr"], hdr["X-Helo-Args"],
                       _angle_addr(hdr["X-Mail-Args"] or ""), rcpts, data)

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc, self.name)


# --------------------------------------------------------------------------
# salvod

def salvod_config(spool_dir, domains=None, sources=None, default_domain=None, host_name="salvo.itest",
                  extra=""):
    """PowerMTA-style config text. domains: {name: {directive: value}} ('*' for the
    default block, which default_domain also fills); sources: {cidr: {directive: value}},
    default {'127.0.0.1': {'always-allow-relaying': 'yes'}}."""
    if sources is None:
        sources = {"127.0.0.1": {"always-allow-relaying": "yes"}}
    dflt = {"retry-after": "2s", "bounce-after": "1h", "max-smtp-out": "4", "max-msg-per-connection": "50"}
    dflt.update(default_domain or {})
    doms = {"*": dflt}
    for k, v in (domains or {}).items():
        if k == "*":
            doms["*"] = dict(dflt, **v)
        else:
            doms[k] = v
    out = [
        "# generated by tests/integration/harness.py",
        "host-name        %s" % host_name,
        "spool-dir        %s" % spool_dir,
        "smtp-listener    %s:%d" % SALVOD_SMTP,
        "http-listener    %s:%d" % SALVOD_HTTP,
        "dns-server       %s:%d" % DNS_ADDR,
        "worker-threads   2",
        "",
    ]
    for cidr, d in sources.items():
        out.append("<source %s>" % cidr)
        out += ["    %-24s %s" % kv for kv in d.items()]
        out += ["</source>", ""]
    for name, d in doms.items():
        out.append("<domain %s>" % name)
        out += ["    %-24s %s" % kv for kv in d.items()]
        out += ["</domain>", ""]
    if extra:
        out.append(extra)
    return "\n".join(out) + "\n"


def _read_bytes(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


class Salvod:
    def __init__(self, env, config_path, spool_dir):
        self.env, self.config, self.spool = env, config_path, spool_dir
        self.proc = None
        self.runs = 0
        self.stderr_paths = []
        self.killed = False              # the test killed it on purpose (kill9)

    def start(self, timeout=10.0):
        """Start in the foreground; ready when the SMTP listener answers 220."""
        assert self.proc is None or self.proc.poll() is not None, "salvod already running"
        assert_port_free(SALVOD_SMTP, "salvod's SMTP listener")
        self.runs += 1
        self.killed = False
        err = os.path.join(self.env.dir, "salvod.%d.stderr" % self.runs)
        self.stderr_paths.append(err)
        with open(err, "wb") as ef:
            self.proc = subprocess.Popen(SALVOD_WRAPPER + [self.env.salvod, "-c", self.config], stdin=subprocess.DEVNULL,
                                         stdout=ef, stderr=subprocess.STDOUT, cwd=self.env.dir,
                                         preexec_fn=_pdeathsig)
        _register("salvod", self.proc)
        self.env.on_fail_show.append(("salvod run %d stderr" % self.runs, err))
        banner = None
        timeout *= SLOW
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Fail("salvod exited with status %s during start-up:\n%s" % (self.proc.returncode, tail(err, 60)))
            banner = read_banner(SALVOD_SMTP, timeout=0.5)
            # the SMTP listener answers before the HTTP one is up; "ready:" comes after both
            if banner and banner.startswith(b"220") and b"ready:" in _read_bytes(err):
                vlog("salvod up (pid %d): %s" % (self.proc.pid, banner.decode("utf-8", "replace")))
                return self
            time.sleep(0.05)
        raise Fail("salvod did not answer a 220 banner on %s:%d within %.0fs (last: %r)"
                   % (SALVOD_SMTP + (timeout, banner)))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        self.killed = True
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        if self.proc is not None:
            _unregister(self.proc)

    def stop(self, grace=10.0):
        """SIGTERM; returns the exit status."""
        if self.proc is None:
            return None
        return stop_process(self.proc, "salvod", grace=grace * SLOW)

    def check_alive(self):
        if self.proc is not None and self.proc.poll() is not None and not self.killed:
            raise Fail("salvod died with status %s:\n%s" % (self.proc.returncode, tail(self.stderr_paths[-1], 20)))

    def acct(self):
        return read_acct(self.spool)


def read_acct(spool_dir):
    """Every accounting record under SPOOL/log/*.jsonl (rotated files first, in name
    order, then acct.jsonl). A last line without its newline is being written; skip it."""
    files = sorted(glob.glob(os.path.join(spool_dir, "log", "*.jsonl")),
                   key=lambda p: (os.path.basename(p) == "acct.jsonl", p))
    recs = []
    for p in files:
        try:
            with open(p, "rb") as f:
                data = f.read()
        except OSError:
            continue
        lines = data.split(b"\n")
        if lines and lines[-1] != b"":
            lines = lines[:-1]
        for n, ln in enumerate(lines, 1):
            if not ln.strip():
                continue
            try:
                recs.append(json.loads(ln))
            except ValueError as e:
                raise Fail("%s:%d: not JSON (%s): %r" % (p, n, e, ln[:200]))
    return recs


def acct_summary(recs):
    c = {}
    for r in recs:
        c[r.get("type")] = c.get(r.get("type"), 0) + 1
    return c


# --------------------------------------------------------------------------
# the per-test environment

class Env:
    def __init__(self, name, salvod, sink):
        self.name = name
        self.salvod = salvod
        self.sink = sink
        self.dir = tempfile.mkdtemp(prefix="salvo-itest-%s-" % name)
        os.chmod(self.dir, 0o755)        # smtp-sink runs as nobody and writes below here
        self.procs = []                  # (name, Popen) in start order
        self.on_fail_show = []           # (title, path)
        self.daemon = None
        self.sinks = []
        self.died = None                 # set by close() when salvod was found dead
        self.wrapper_failed = False      # SALVOD_WRAPPER (valgrind) reported errors

    # -- DNS ---------------------------------------------------------------
    def dns(self, mx=None, a=None, extra_lines=(), check=None):
        """Start dnsmasq. mx: {domain: [(pref, host), ...]} ('.' as host = null MX);
        a: {host: ip}. check: list of (name, qtype) that must answer before we return."""
        conf = os.path.join(self.dir, "dnsmasq.conf")
        lines = ["local=/test/"]
        for host, ip in (a or {}).items():
            lines.append("host-record=%s,%s" % (host, ip))
        for dom, mxs in (mx or {}).items():
            for pref, host in mxs:
                lines.append("mx-host=%s,%s,%d" % (dom, host, pref))
        lines += list(extra_lines)
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        pidf = os.path.join(self.dir, "dnsmasq.pid")
        err = os.path.join(self.dir, "dnsmasq.stderr")
        if _udp_port_busy(DNS_ADDR):
            raise Fail("something already listens on udp %s:%d (a stale dnsmasq?)" % DNS_ADDR)
        p = self._spawn("dnsmasq", [DNSMASQ, "--keep-in-foreground", "--no-resolv", "--no-hosts",
                                    "--bind-interfaces", "--listen-address=127.0.0.1", "--port=%d" % DNS_ADDR[1],
                                    "--conf-file=%s" % conf, "--pid-file=%s" % pidf, "--user=root",
                                    "--log-facility=%s" % os.path.join(self.dir, "dnsmasq.log")], err)

        probe = (check or [])[:1] or [("itest-probe.test", "A")]

        def ready():
            if p.poll() is not None:
                raise Fail("dnsmasq exited with %s:\n%s" % (p.returncode, tail(err, 30)))
            try:
                dns_query(probe[0][0], probe[0][1], timeout=0.2)
                return True
            except OSError:
                return False
        if not wait_until(ready, 5.0, what="dnsmasq"):
            raise Fail("dnsmasq did not answer within 5s:\n" + tail(err, 30))
        for name, qt in (check or []):
            rc, ans = dns_query(name, qt)
            if rc != 0 or not ans:
                raise Fail("dnsmasq: %s %s -> rcode %d %r" % (qt, name, rc, ans))
        return p

    # -- sinks -------------------------------------------------------------
    def salvo_sink(self, name, listen, defer_first=(), reject=(), defer_data_first=(), hostname=None,
                   extra_args=(), dump=True):
        """salvo-sink on listen, with --stats, --events (see SalvoSink.events) and,
        unless dump=False, --dump. extra_args: more options (--fault SPEC, ...)."""
        listen = [listen] if isinstance(listen, str) else list(listen)
        for l in listen:
            h, _, pt = l.rpartition(":")
            assert_port_free((h.strip("[]"), int(pt)), name)
        base = os.path.join(self.dir, name)
        os.makedirs(base + ".dump")
        cmd = [self.sink]
        for l in listen:
            cmd += ["-l", l]
        if dump:
            cmd += ["--dump", base + ".dump"]
        cmd += ["--stats", base + ".stats.json", "--pid-file", base + ".pid",
                "--hostname", hostname or (name + ".sink.test"), "--events", base + ".events.jsonl"]
        cmd += list(extra_args)
        for r in defer_first:
            cmd += ["--defer-first", r]
        for r in reject:
            cmd += ["--reject", r]
        for r in defer_data_first:
            cmd += ["--defer-data-first", r]
        err = base + ".stderr"
        p = self._spawn(name, cmd, err)

        def ready():
            if p.poll() is not None:
                raise Fail("%s exited with %s:\n%s" % (name, p.returncode, tail(err, 30)))
            return os.path.exists(base + ".pid") and os.path.getsize(base + ".pid") > 0
        if not wait_until(ready, 5.0, what=name):
            raise Fail("%s: no pid file within 5s:\n%s" % (name, tail(err, 30)))
        s = SalvoSink(self, name, listen, p, base + ".dump", base + ".stats.json", err)
        s.events_file = base + ".events.jsonl"
        s.ip = listen[0].rsplit(":", 1)[0]
        self.sinks.append(s)
        return s

    def postfix_sink(self, name, listen):
        """Postfix smtp-sink on listen (ADDR:PORT), dropping to nobody."""
        base = os.path.join(self.dir, name)
        dump = base + ".dump"
        os.makedirs(dump)
        shutil.chown(dump, user="nobody")
        err = base + ".stderr"
        host, port = listen.rsplit(":", 1)
        assert_port_free((host, int(port)), name)
        p = self._spawn(name, [SMTP_SINK, "-u", "nobody", "-h", name + ".sink.test", "-d", dump + "/m.",
                               listen, "128"], err)

        def ready():
            if p.poll() is not None:
                raise Fail("%s exited with %s:\n%s" % (name, p.returncode, tail(err, 30)))
            b = read_banner((host, int(port)), timeout=0.3)
            return b is not None and b.startswith(b"220")
        if not wait_until(ready, 5.0, what=name):
            raise Fail("%s: no 220 within 5s:\n%s" % (name, tail(err, 30)))
        s = PostfixSink(self, name, listen, p, dump, err)
        s.ip = host
        self.sinks.append(s)
        return s

    def arrivals(self):
        out = []
        for s in self.sinks:
            out += s.arrivals()
        return out

    # -- salvod ------------------------------------------------------------
    def salvod_daemon(self, config_text=None, **cfg):
        spool = os.path.join(self.dir, "spool")
        if config_text is None:
            config_text = salvod_config(spool, **cfg)
        path = os.path.join(self.dir, "salvod.conf")
        with open(path, "w") as f:
            f.write(config_text)
        self.on_fail_show.append(("salvod.conf", path))
        self.daemon = Salvod(self, path, spool)
        return self.daemon

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    # -- plumbing ----------------------------------------------------------
    def _spawn(self, name, cmd, errpath):
        vlog("start %s: %s" % (name, " ".join(cmd)))
        with open(errpath, "wb") as ef:
            p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=ef, stderr=subprocess.STDOUT,
                                 cwd=self.dir, preexec_fn=_pdeathsig)
        _register(name, p)
        self.procs.append((name, p))
        return p

    def close(self):
        """Stop salvod first (so it does not log a burst of failures), then the rest,
        newest first."""
        if self.daemon is not None and self.daemon.proc is not None:
            if self.daemon.proc.poll() is not None and not self.daemon.killed:
                rc = self.daemon.proc.returncode
                self.died = "salvod had died by itself with %s" % (
                    "signal %d (%s)" % (-rc, signal.Signals(-rc).name) if rc < 0 else "exit status %d" % rc)
            st = self.daemon.stop()
            vlog("salvod exit status %s" % st)
            if SALVOD_WRAPPER and st not in (0, None) and not self.daemon.killed and not self.died:
                self.died = "salvod under %s exited with status %s at the final stop" % (SALVOD_WRAPPER[0], st)
                self.wrapper_failed = True
        for name, p in reversed(self.procs):
            stop_process(p, name)


CLONE_NEWNET = 0x40000000
_in_private_netns = [False]


def enter_private_netns():
    """Move this process (and so every peer it starts) into a fresh network namespace
    with only a loopback interface, brought up here: the fixed ports (127.0.0.x:25,
    10053, 12525) are then private to this run, so concurrent runs, a developer's
    sinks or a real MTA on port 25 cannot interfere. Needs CAP_SYS_ADMIN; returns False
    (and changes nothing) where that is refused. Call while single-threaded.
    SALVO_ITEST_NETNS=0 turns it off."""
    if os.environ.get("SALVO_ITEST_NETNS", "1") == "0" or _libc is None:
        return False
    if _libc.unshare(CLONE_NEWNET) != 0:
        vlog("unshare(CLONE_NEWNET) failed: %s" % os.strerror(ctypes.get_errno()))
        return False
    _in_private_netns[0] = True
    SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifr = struct.pack("16sh14x", b"lo", 0)
        flags = struct.unpack("16sh14x", fcntl.ioctl(s, SIOCGIFFLAGS, ifr))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sh14x", b"lo", flags | IFF_UP))
    return True


def _udp_port_busy(addr):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(addr)
            return False
        except OSError:
            return True


# --------------------------------------------------------------------------
# messages and injection

def make_body(rng, msg_id, sender, rcpts, size=None, kinds=None):
    """A message (bytes, CRLF lines, ending with CRLF) with the hard cases: lines starting
    with '.' and '..', a line that is only '.', a ~990-byte line, 8-bit UTF-8, and
    filler up to size bytes. Carries X-Itest-Id: msg_id."""
    hdr = [
        "From: Itest Sender <%s>" % sender,
        "To: %s" % ", ".join("<%s>" % r for r in rcpts),
        "Subject: itest %s \u00fcber caf\u00e9 \u2713" % msg_id,
        "Message-ID: <%s@itest.salvo>" % msg_id,
        "X-Itest-Id: %s" % msg_id,
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
    ]
    body = [
        ".leading dot on the first body line",
        "..two leading dots",
        ".",
        "...",
        "the previous lines were a lone dot and three dots; next a long line",
        ("L%s " % msg_id + "".join(rng.choice("abcdefghij.klmnop qrstuvwxyz0123456789") for _ in range(990)))[:990],
        "Gr\u00fc\u00dfe aus K\u00f6ln \u2014 \u65e5\u672c\u8a9e \u0440\u0443\u0441\u0441\u043a\u0438\u0439 \U0001F4E8",
        " . a space then a dot",
        ".\t.tab",
    ]
    rng.shuffle(body)
    lines = hdr + [""] + body
    text = "\r\n".join(lines) + "\r\n"
    data = text.encode("utf-8")
    if size and size > len(data):
        filler = []
        n = len(data)
        i = 0
        while n < size:
            i += 1
            w = rng.randint(1, 120)
            pre = rng.choice(["", "", "", ".", "..", " ", "\u00e9"])
            ln = (pre + "%s-%d " % (msg_id, i) + "x" * w)
            if rng.random() < 0.01:
                ln = "."              # a lone dot in the filler, too
            b = ln.encode("utf-8") + b"\r\n"
            filler.append(b)
            n += len(b)
        data += b"".join(filler)
    # always end with a dot line right before the terminator
    data += b".\r\n"
    return data


class Injected:
    __slots__ = ("mid", "sender", "rcpts", "data", "reply", "queue_id", "error", "took")

    def __init__(self, mid, sender, rcpts, data):
        self.mid, self.sender, self.rcpts, self.data = mid, sender, rcpts, data
        self.reply = self.queue_id = self.error = None


def make_msgs(rng, prefix, rcpts_by_msg, sender, size=400):
    """One Injected per entry of rcpts_by_msg (a list of recipient lists), ids
    PREFIX0, PREFIX1, ... and make_body()'s hard cases."""
    out = []
    for i, rcpts in enumerate(rcpts_by_msg):
        mid = "%s%d" % (prefix, i)
        out.append(Injected(mid, sender, rcpts, make_body(rng, mid, sender, rcpts, size=size)))
    return out


def inject(msgs, threads=4, per_conn=10, timeout=60.0, addr=SALVOD_SMTP, source_address=None,
           on_ack=None):
    """Send msgs (list of Injected) through SMTP with `threads` parallel connections,
    up to per_conn messages per connection. Sets .reply (code, text) for DATA and
    .error (str) when refused. Returns the list of acknowledged (250) messages."""
    deadline = time.monotonic() + timeout
    work = [msgs[i:i + per_conn] for i in range(0, len(msgs), per_conn)]
    lock = threading.Lock()

    def next_batch():
        with lock:
            return work.pop(0) if work else None

    def worker():
        while time.monotonic() < deadline:
            batch = next_batch()
            if batch is None:
                return
            try:
                s = smtplib.SMTP(addr[0], addr[1], local_hostname="itest.client", timeout=15,
                                 source_address=source_address)
            except OSError as e:
                for m in batch:
                    m.error = "connect: %s" % e
                continue
            try:
                code, _ = s.ehlo()
                if code != 250:
                    raise smtplib.SMTPException("EHLO answered %d" % code)
                for m in batch:
                    if time.monotonic() >= deadline:
                        m.error = "injection deadline"
                        continue
                    _send_one(s, m)
                    if m.error is None and on_ack is not None:
                        on_ack(m)
                    if m.error is not None and m.error.startswith("disconnected"):
                        for rest in batch[batch.index(m) + 1:]:
                            rest.error = "not sent: the session was lost before it"
                        break
                try:
                    s.quit()
                except (smtplib.SMTPException, OSError):
                    pass
            except (smtplib.SMTPException, OSError) as e:
                for m in batch:
                    if m.reply is None and m.error is None:
                        m.error = "session: %s" % e
            finally:
                s.close()

    ts = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(max(0.1, deadline - time.monotonic() + 20))
    for m in msgs:
        if m.reply is None and m.error is None:
            m.error = "not sent (deadline)"
    return [m for m in msgs if m.error is None]


def inject_all(msgs, **kw):
    """inject(), and Fail unless every message was acknowledged."""
    acked = inject(msgs, **kw)
    if len(acked) != len(msgs):
        bad = [m for m in msgs if m not in acked][:3]
        raise Fail("only %d of %d messages acknowledged: %r" % (len(acked), len(msgs),
                                                             [(m.mid, m.reply, m.error) for m in bad]))
    return acked


def http_inject(rcpts, sender="esp@senders.test", campaign=None):
    """One templated message to rcpts through POST /api/inject/v1 (optionally in a
    campaign); Fail unless every recipient was accepted."""
    req = {"envelope_sender": sender,
           "content": "From: news@senders.test\r\nTo: {{email}}\r\nSubject: hello\r\n\r\nHi {{email}}\r\n",
           "recipients": [{"email": r} for r in rcpts]}
    if campaign:
        req["campaign"] = campaign
    r = urllib.request.Request("http://%s:%d/api/inject/v1" % SALVOD_HTTP, method="POST",
                               data=json.dumps(req).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(r, timeout=60) as resp:
            st, out = resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        st, out = e.code, json.loads(e.read() or b"{}")
    if st != 200 or out.get("success_count") != len(rcpts):
        raise Fail("injection of %d: %d %r" % (len(rcpts), st, out))


def _send_one(s, m):
    try:
        opts = ["BODY=8BITMIME"]
        if "size" in s.esmtp_features:
            opts.append("SIZE=%d" % len(m.data))
        code, resp = s.mail(m.sender, opts)
        if code != 250:
            s.rset()
            m.error = "MAIL: %d %s" % (code, resp.decode("utf-8", "replace"))
            return
        for r in m.rcpts:
            code, resp = s.rcpt(r)
            if code not in (250, 251):
                s.rset()
                m.error = "RCPT %s: %d %s" % (r, code, resp.decode("utf-8", "replace"))
                return
        code, resp = s.data(m.data)
        m.reply = (code, resp.decode("utf-8", "replace"))
        if code != 250:
            m.error = "DATA: %d %s" % m.reply
            return
        mm = re.search(r"\b([0-9a-fA-F]{16})\b", m.reply[1])
        m.queue_id = mm.group(1).lower() if mm else None
    except smtplib.SMTPServerDisconnected as e:
        m.error = "disconnected: %s" % e
    except smtplib.SMTPResponseException as e:
        m.error = "%d %s" % (e.smtp_code, e.smtp_error)


# --------------------------------------------------------------------------
# checks

TRACE_START = re.compile(rb"^Received:")


def check_trace_prefix(arrived, sent):
    """arrived must be salvod's trace header lines followed by exactly sent. Returns
    None when so, else a description of the difference."""
    if not arrived.endswith(sent):
        # find where they diverge, for the report
        pre = arrived.find(sent[:64]) if len(sent) >= 64 else -1
        if pre < 0:
            return "the sent message is not a suffix of what arrived (no alignment; first 300 bytes arrived: %r)" % arrived[:300]
        got = arrived[pre:]
        i = 0
        n = min(len(got), len(sent))
        while i < n and got[i] == sent[i]:
            i += 1
        return ("body differs at byte %d of %d (arrived %d bytes after a %d-byte prefix): sent %r... got %r..."
                % (i, len(sent), len(got), pre, sent[max(0, i - 40):i + 40], got[max(0, i - 40):i + 40]))
    prefix = arrived[:len(arrived) - len(sent)]
    if not prefix:
        return None
    if not prefix.endswith(b"\r\n"):
        return "trace prefix does not end with CRLF: %r" % prefix[-100:]
    lines = prefix[:-2].split(b"\r\n")
    if not TRACE_START.match(lines[0]):
        return "prefix before the message is not a Received: header: %r" % prefix[:200]
    for ln in lines:
        if not (TRACE_START.match(ln) or ln[:1] in (b" ", b"\t")):
            return "prefix line is neither Received: nor a continuation: %r" % ln[:200]
        if b"\r" in ln or b"\n" in ln:
            return "bare CR/LF in the trace prefix: %r" % ln[:200]
    return None


def wait_for_recipients(env, expected, timeout, settle=2.0, check_alive=True):
    """Poll all sinks until every address in `expected` (a set) has arrived at least
    once, then wait `settle` seconds more (to catch duplicates). Returns
    {rcpt: [Arrival, ...]} including unexpected recipients."""
    deadline = time.monotonic() + timeout
    last_count = -1
    while True:
        arrivals = env.arrivals()
        seen = {}
        for a in arrivals:
            for r in a.rcpt_to:
                seen.setdefault(r.lower(), []).append(a)
        missing = [r for r in expected if r.lower() not in seen]
        if len(seen) != last_count:
            vlog("arrived %d/%d recipients" % (len(expected) - len(missing), len(expected)))
            last_count = len(seen)
        if not missing or time.monotonic() >= deadline:
            break
        if check_alive and env.daemon is not None:
            env.daemon.check_alive()
        time.sleep(0.2)
    env.all_arrived_at = None
    if not missing:
        env.all_arrived_at = time.monotonic()
        time.sleep(settle)
    arrivals = env.arrivals()
    seen = {}
    for a in arrivals:
        for r in a.rcpt_to:
            seen.setdefault(r.lower(), []).append(a)
    return seen


def mdb_entries(spool, db):
    """Entries in one LMDB database of a spool, by lmdb-utils' mdb_stat."""
    out = subprocess.run(["mdb_stat", "-s", db, os.path.join(spool, "data")], capture_output=True, text=True)
    m = re.search(r"Entries:\s*(\d+)", out.stdout)
    if out.returncode != 0 or not m:
        raise Fail("mdb_stat -s %s failed: %s %s" % (db, out.stdout, out.stderr))
    return int(m.group(1))


def find_records(recs, **match):
    out = []
    for r in recs:
        ok = True
        for k, v in match.items():
            rv = r.get(k)
            if k == "recipient" and isinstance(rv, str) and isinstance(v, str):
                rv, v = rv.lower(), v.lower()
            if rv != v:
                ok = False
                break
        if ok:
            out.append(r)
    return out


def wait_for_records(env, pred, timeout, what="log records"):
    """Poll the accounting log until pred(records) is true; returns the records."""
    recs = []

    def probe():
        nonlocal recs
        recs = env.daemon.acct()
        if env.daemon is not None:
            env.daemon.check_alive()
        return pred(recs)
    wait_until(probe, timeout, interval=0.2, what=what)
    return recs


def parse_message(data):
    return email.message_from_bytes(data, policy=email.policy.compat32)


# --------------------------------------------------------------------------
# runner

SANITIZER_RE = re.compile(r"runtime error:|ERROR: AddressSanitizer|ERROR: LeakSanitizer|"
                          r"WARNING: ThreadSanitizer|SUMMARY: (Address|Undefined|Leak)|"
                          r"==\d+== (ERROR SUMMARY: [1-9]|definitely lost: [1-9]|Invalid (read|write|free))")


def sanitizer_reports(d):
    """(file, line) for every ASan/UBSan/LSan report in d/*.stderr (salvod, sinks)."""
    out = []
    for path in sorted(glob.glob(os.path.join(d, "*.stderr"))):
        try:
            with open(path, "rb") as f:
                for ln in f.read().decode("utf-8", "replace").splitlines():
                    if SANITIZER_RE.search(ln):
                        out.append((path, ln.strip()[:300]))
        except OSError:
            pass
    return out


def _find_binary(envvar, opt, rel):
    v = os.environ.get(envvar)
    for i, a in enumerate(sys.argv):
        if a == opt and i + 1 < len(sys.argv):
            v = sys.argv[i + 1]
        elif a.startswith(opt + "="):
            v = a.split("=", 1)[1]
    if v:
        return v
    for b in (os.path.join(SRC_ROOT, "build"), "/tmp/build-itest"):
        p = os.path.join(b, rel)
        if os.path.exists(p):
            return p
    return os.path.join(SRC_ROOT, "build", rel)


def run_tests(tests, needs_sink=True, needs_postfix=False, needs_salvod=True):
    """tests: list of functions f(env). Command line: [--salvod P] [--sink P] [-v] [-k]
    [NAME ...] to run only tests whose name contains NAME."""
    global VERBOSE, KEEP
    args = sys.argv[1:]
    names = []
    skip_next = False
    for i, a in enumerate(args):
        if skip_next:
            skip_next = False
            continue
        if a in ("--salvod", "--sink"):
            skip_next = True
        elif a.startswith("--salvod=") or a.startswith("--sink="):
            pass
        elif a == "-v":
            VERBOSE = True
        elif a == "-k":
            KEEP = True
        else:
            names.append(a)
    salvod = _find_binary("SALVOD", "--salvod", "engine/salvod")
    global SALVOCTL
    SALVOCTL = _find_binary("SALVOCTL", "--salvoctl", "tools/salvoctl/salvoctl")
    sink = _find_binary("SALVO_SINK", "--sink", "tools/salvo-sink/salvo-sink")

    why = []
    if os.geteuid() != 0:
        why.append("needs root (sinks listen on 127.0.0.x:25)")
    if needs_salvod and not os.access(salvod, os.X_OK):
        why.append("no salvod executable at %s" % salvod)
    if needs_sink and not os.access(sink, os.X_OK):
        why.append("no salvo-sink executable at %s" % sink)
    if not os.access(DNSMASQ, os.X_OK):
        why.append("%s missing (Debian package dnsmasq)" % DNSMASQ)
    if needs_postfix and not os.access(SMTP_SINK, os.X_OK):
        why.append("%s missing (Debian package postfix)" % SMTP_SINK)
    if why:
        # CI installs every peer: there a missing one is a failure, not a skip.
        if os.environ.get("SALVO_REQUIRE_PEERS"):
            print("FAIL: cannot run: " + "; ".join(why), flush=True)
            return 1
        print("SKIP: " + "; ".join(why), flush=True)
        return 77

    # Integration runs use fixed ports. In a private network namespace they cannot
    # collide with anything; without one, serialize runs across processes (another
    # build dir, CI and a developer on one machine) instead of letting them collide.
    if enter_private_netns():
        vlog("running in a private network namespace")
    else:
        print("note: not in a private network namespace (unshare refused or SALVO_ITEST_NETNS=0): using the host loopback", flush=True)
    lock_fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    deadline = time.monotonic() + LOCK_WAIT
    announced = False
    while not _in_private_netns[0]:
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                print("FAIL: another integration run held %s for %ds" % (LOCK_FILE, LOCK_WAIT), flush=True)
                return 1
            if not announced:
                print("waiting for another integration run to finish (%s)" % LOCK_FILE, flush=True)
                announced = True
            time.sleep(0.2)

    failed = []
    ran = 0
    for t in tests:
        tname = t.__name__
        if names and not any(n in tname for n in names):
            continue
        ran += 1
        env = Env(tname.replace("test_", ""), salvod, sink)
        print("=== %s (dir %s)" % (tname, env.dir), flush=True)
        t0 = time.monotonic()
        ok = False
        interrupted = False
        try:
            t(env)
            ok = True
        except Skip as e:
            print("--- SKIP %s: %s" % (tname, e), flush=True)
            ok = True
        except KeyboardInterrupt:
            interrupted = True
            print("--- INTERRUPTED %s" % tname, flush=True)
        except Exception as e:
            print("--- FAIL %s (%.1fs): %s" % (tname, time.monotonic() - t0, e), flush=True)
            if not isinstance(e, Fail):
                traceback.print_exc(file=sys.stdout)
        finally:
            try:
                env.close()
            except Exception:
                traceback.print_exc(file=sys.stdout)
        reports = sanitizer_reports(env.dir)
        if reports:
            print("--- %s: sanitizer reports in the daemons' stderr:" % tname, flush=True)
            for path, line in reports[:20]:
                print("    %s: %s" % (os.path.basename(path), line))
            if ok:
                ok = False
                print("--- FAIL %s: sanitizer reports" % tname, flush=True)
        if ok and env.wrapper_failed:
            ok = False
            print("--- FAIL %s: %s" % (tname, env.died), flush=True)
        if ok:
            print("--- PASS %s (%.1fs)" % (tname, time.monotonic() - t0), flush=True)
            if KEEP:
                print("    kept %s" % env.dir)
            else:
                shutil.rmtree(env.dir, ignore_errors=True)
        else:
            failed.append(tname)
            if env.died:
                print("    NOTE: %s (see its stderr below)" % env.died, flush=True)
            for title, path in env.on_fail_show:
                print("----- %s (%s) -----" % (title, path))
                print(tail(path, 150))
            if env.daemon is not None:
                try:
                    recs = env.daemon.acct()
                    print("----- accounting log: %s; last records:" % acct_summary(recs))
                    for r in recs[-15:]:
                        print("  " + json.dumps(r)[:400])
                except Exception as e:
                    print("----- accounting log unreadable: %s" % e)
            for s in env.sinks:
                if os.path.exists(s.stderr) and os.path.getsize(s.stderr):
                    print("----- %s stderr -----" % s.name)
                    print(tail(s.stderr, 30))
            print("    kept %s" % env.dir, flush=True)
        if interrupted:
            return 130
    if ran == 0:
        print("no test matched %r" % names)
        return 1
    if failed:
        print("FAILED: %s" % " ".join(failed), flush=True)
        return 1
    return 0


def main(tests, **kw):
    try:
        rc = run_tests(tests, **kw)
    except KeyboardInterrupt:
        rc = 130
    finally:
        _stop_all_registered()
    sys.exit(rc)
