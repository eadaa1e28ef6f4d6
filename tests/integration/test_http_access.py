#!/usr/bin/python3
"""test_http_access.py - who may use the HTTP API, decided before a request's body is read.

  early      a 60 MB POST without a token, from a raw socket that sends only the headers:
             the 401 arrives before any body byte is sent; 50 such connections at once
             leave salvod's anonymous memory (RssAnon) essentially unchanged; curl with
             its default "Expect: 100-continue" gets the 401 having uploaded nothing; a
             monitor's 60 MB POST gets its 403 the same way, and an admin announcing more than
             http-max-body-size with "Expect: 100-continue" its 413
  roles      http-access CIDR rules (most specific wins) and tokens with roles: monitor
             reads status, queues, vmtas, metrics and suppressions but cannot inject,
             pause, add or delete suppressions (and nothing changes); none is refused;
             admin may do everything; a valid token's role replaces the address's; a
             wrong token is a 401 even from an admin address
  conncap    http-max-connections-per-ip 5: the 6th connection from one address is
             closed unserved while another address is served; once the 5 close, the
             address is served again
  https      http-listener ... tls=yes with a certificate made by openssl here: curl and
             Python's ssl verify it and get 200; plain HTTP on that port gets nothing; a
             token crosses it from a non-loopback address; tls=yes without a certificate
             is a config error naming the line
"""

import http.client
import json
import os
import socket
import ssl
import subprocess
import time

import harness
from harness import Fail, Skip, log, wait_until

ADMIN_TOKEN = "admin-token-for-the-itest-0123456789"
MON_TOKEN = "monitor-token-for-the-itest-0123456789"
SIXTY_MB = 60 * 1000 * 1000
HTTPS = ("127.0.0.1", 8443)


def add_addr(ip):
    """A non-loopback source address on lo (only inside the private namespace)."""
    if not harness._in_private_netns[0]:
        raise Skip("needs a private network namespace for extra client addresses")
    r = subprocess.run(["ip", "addr", "add", ip + "/32", "dev", "lo"], capture_output=True, text=True)
    if r.returncode != 0 and "already assigned" not in r.stderr and "exists" not in r.stderr:
        raise Fail("ip addr add %s: %s" % (ip, r.stderr))


def api(method, path, body=None, source=None, token=None, timeout=10, conn=None):
    c = conn or http.client.HTTPConnection(harness.SALVOD_HTTP[0], harness.SALVOD_HTTP[1], timeout=timeout,
                                           source_address=(source, 0) if source else None)
    try:
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        hdrs = {"Authorization": "Bearer " + token} if token else {}
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        c.request(method, path, body=data, headers=hdrs)
        r = c.getresponse()
        raw = r.read()
        ctype = r.getheader("Content-Type", "")
        return r.status, (json.loads(raw) if ctype.startswith("application/json") else raw.decode())
    finally:
        c.close()


def rss(pid):
    """(VmRSS, RssAnon) in kB from /proc/PID/status."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "RssAnon"):
                out[k] = int(v.split()[0])
    return out["VmRSS"], out["RssAnon"]


def headers_only(path, length, source=None, token=None, method="POST", expect=False):
    """A socket that has sent only the request's headers (announcing length body bytes)."""
    s = socket.create_connection(harness.SALVOD_HTTP, timeout=10, source_address=(source, 0) if source else None)
    h = "%s %s HTTP/1.1\r\nHost: salvo\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % (
        method, path, length)
    if token:
        h += "Authorization: Bearer %s\r\n" % token
    if expect:
        h += "Expect: 100-continue\r\n"
    s.sendall((h + "\r\n").encode())
    return s


def read_answer(s, timeout=10):
    """The whole answer on s (the server closes after it) as (status, body)."""
    s.settimeout(timeout)
    data = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep and b"content-length:" in head.lower():
                n = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                if len(body) >= n:
                    break
    except socket.timeout:
        if not data:
            raise Fail("no answer within %ds to headers alone: the server waits for the body" % timeout)
    line = data.split(b"\r\n", 1)[0].split()
    if len(line) < 2:
        raise Fail("no HTTP status line in %r" % data[:200])
    return int(line[1]), data.partition(b"\r\n\r\n")[2]


def config(env, extra):
    spool = os.path.join(env.dir, "spool")
    return harness.salvod_config(spool, extra=extra)


# ------------------------------------------------------------------------------------------

def test_early(env):
    add_addr("10.77.0.1")
    d = env.salvod_daemon(extra="http-api-token %s\nhttp-api-token %s monitor\n" % (ADMIN_TOKEN, MON_TOKEN))
    d.start()
    wait_until(lambda: api("GET", "/api/v1/status")[0] == 200, 5, what="the API")
    pid = d.proc.pid
    before = rss(pid)

    # one: the 401 comes back while no body byte has been sent
    s = headers_only("/api/inject/v1", SIXTY_MB, source="10.77.0.1")
    t0 = time.monotonic()
    st, body = read_answer(s)
    s.close()
    if st != 401 or b"token" not in body:
        raise Fail("headers alone from 10.77.0.1: %s %r, want 401" % (st, body))
    log("60 MB POST without a token: 401 after the headers alone (%.0f ms), no body byte sent"
        % ((time.monotonic() - t0) * 1000))

    # fifty at once, each trickling a little body after its headers: all refused, no memory held
    socks = [headers_only("/api/inject/v1", SIXTY_MB, source="10.77.0.1") for _ in range(50)]
    for s in socks:
        try:
            s.sendall(b"{" + b" " * 1000)
        except OSError:
            pass  # already answered and closed: fine
    codes = []
    for s in socks:
        codes.append(read_answer(s)[0])
        s.close()
    after = rss(pid)
    if codes != [401] * 50:
        raise Fail("50 anonymous 60 MB POSTs: %r" % codes)
    grew = after[1] - before[1]
    log("50 anonymous 60 MB POSTs: all 401; VmRSS %d -> %d kB, RssAnon %d -> %d kB"
        % (before[0], after[0], before[1], after[1]))
    if grew > 8 * 1024:
        raise Fail("salvod's anonymous memory grew by %d kB over 50 refused POSTs" % grew)

    # curl: 60 MB file, default Expect: 100-continue -> 401 with nothing uploaded
    big = os.path.join(env.dir, "big.json")
    with open(big, "wb") as f:
        f.truncate(SIXTY_MB)
    r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_upload}",
                        "--interface", "10.77.0.1", "--expect100-timeout", "30", "--max-time", "60",
                        "-H", "Content-Type: application/json", "--data-binary", "@" + big,
                        "http://%s:%d/api/inject/v1" % harness.SALVOD_HTTP], capture_output=True, text=True)
    code, up = (r.stdout.split() + ["", ""])[:2]
    if code != "401" or int(float(up or 0)) > 1 << 20:
        raise Fail("curl 60 MB without a token: %r (stderr %r), want 401 with < 1 MB uploaded" % (r.stdout, r.stderr))
    log("curl 60 MB without a token: HTTP %s, %s bytes uploaded" % (code, up))

    # a monitor token may not POST: 403, also before the body
    s = headers_only("/api/inject/v1", SIXTY_MB, source="10.77.0.1", token=MON_TOKEN)
    st, body = read_answer(s)
    s.close()
    if st != 403:
        raise Fail("a monitor's 60 MB POST: %s %r, want 403 before the body" % (st, body))
    # a wrong token: 401, even from loopback (admin by address)
    s = headers_only("/api/inject/v1", SIXTY_MB, token="not-a-configured-token-0000")
    st, body = read_answer(s)
    s.close()
    if st != 401:
        raise Fail("a wrong token from loopback: %s %r, want 401" % (st, body))
    # an admin announcing more than http-max-body-size and waiting for 100 Continue: 413 at once
    s = headers_only("/api/inject/v1", 100 * 1000 * 1000, expect=True)
    st, body = read_answer(s)
    s.close()
    if st != 413:
        raise Fail("100 MB announced with Expect: 100-continue: %s %r, want 413 before the body" % (st, body))
    final = rss(pid)
    log("monitor POST 403, wrong token 401, oversized admin POST 413, all before the body; RssAnon now %d kB"
        % final[1])
    if final[1] - before[1] > 8 * 1024:
        raise Fail("salvod's anonymous memory grew by %d kB" % (final[1] - before[1]))
    st, s = api("GET", "/api/v1/status")
    if s["totals"]["received"] != 0:
        raise Fail("a refused POST queued something: %r" % s["totals"])


def test_roles(env):
    for ip in ("10.77.0.1", "10.77.0.2", "10.77.1.1"):
        add_addr(ip)
    extra = "\n".join([
        "http-access 127.0.0.1 monitor",
        "http-access 10.77.0.0/24 none",
        "http-access 10.77.0.2/32 admin",      # more specific than the /24
        "http-access 10.77.0.0/16 monitor",
        "http-api-token %s" % ADMIN_TOKEN,     # the one-argument form: admin
        "http-api-token %s monitor" % MON_TOKEN,
    ])
    env.dns()
    d = env.salvod_daemon(extra=extra + "\n")
    d.start()
    wait_until(lambda: api("GET", "/api/v1/status")[0] == 200, 5, what="the API")
    inj = {"envelope_sender": "news@senders.test", "content": "Subject: x\r\n\r\nbody\r\n",
           "recipients": [{"email": "a@roles.test"}]}
    sup = {"address": "gone@roles.test", "reason": "test"}

    # admin by address (the /32 beats the /24): everything
    st, r = api("POST", "/api/v1/suppressions", sup, source="10.77.0.2")
    if st != 200:
        raise Fail("admin address: POST suppression %s %r" % (st, r))

    reads = ["/api/v1/status", "/api/v1/queues", "/api/v1/vmtas", "/metrics", "/api/v1/suppressions",
             "/api/v1/suppressions/gone@roles.test"]
    writes = [("POST", "/api/inject/v1", inj), ("POST", "/api/v1/suppressions", {"address": "x@roles.test"}),
              ("DELETE", "/api/v1/suppressions/gone@roles.test", None),
              ("POST", "/api/v1/queues/roles.test/pause", None)]

    def can_read(who, **kw):
        for p in reads:
            st, r = api("GET", p, **kw)
            if st != 200:
                raise Fail("%s: GET %s -> %s %r, want 200" % (who, p, st, r))

    def cannot_write(who, want, **kw):
        for m, p, b in writes:
            st, r = api(m, p, b, **kw)
            if st != want or not isinstance(r, dict) or "error" not in r:
                raise Fail("%s: %s %s -> %s %r, want %d" % (who, m, p, st, r, want))

    # monitor by address (loopback, and 10.77.1.1 by the /16)
    for who, kw in (("loopback (monitor)", {}), ("10.77.1.1 (monitor by /16)", {"source": "10.77.1.1"}),
                    ("monitor token from a none address", {"source": "10.77.0.1", "token": MON_TOKEN})):
        can_read(who, **kw)
        cannot_write(who, 403, **kw)
    # none by address, no token
    st, r = api("GET", "/api/v1/status", source="10.77.0.1")
    if st != 401:
        raise Fail("none address: GET status %s %r, want 401" % (st, r))
    cannot_write("none address", 401, source="10.77.0.1")
    # nothing changed
    st, s = api("GET", "/api/v1/status")
    if s["totals"]["received"] != 0:
        raise Fail("a refused injection queued something: %r" % s["totals"])
    if api("GET", "/api/v1/suppressions/gone@roles.test")[0] != 200:
        raise Fail("a refused DELETE removed the suppression")
    if api("GET", "/api/v1/suppressions/x@roles.test")[0] != 404:
        raise Fail("a refused POST added a suppression")
    if api("GET", "/api/v1/queues/roles.test")[0] == 200 and api("GET", "/api/v1/queues/roles.test")[1].get(
            "mode") == "paused":
        raise Fail("a refused pause paused the queue")
    log("monitor (by address and by token) reads %d endpoints, its %d writes get 403; none gets 401; "
        "nothing changed" % (len(reads), len(writes)))

    # an admin token from a none address and from a monitor one: everything
    st, r = api("DELETE", "/api/v1/suppressions/gone@roles.test", source="10.77.0.1", token=ADMIN_TOKEN)
    if st != 200:
        raise Fail("admin token from a none address: DELETE %s %r" % (st, r))
    st, r = api("POST", "/api/inject/v1", inj, token=ADMIN_TOKEN)
    if st != 200 or r.get("success_count") != 1:
        raise Fail("admin token from loopback (monitor): inject %s %r" % (st, r))
    # a wrong token is a 401 even where the address alone would be admin
    st, r = api("GET", "/api/v1/status", source="10.77.0.2", token="wrong-token-0123456789abc")
    if st != 401:
        raise Fail("a wrong token from an admin address: %s %r" % (st, r))
    log("admin token works from none and monitor addresses; a wrong token is 401 everywhere")


def test_conncap(env):
    add_addr("10.77.0.3")
    d = env.salvod_daemon(extra="http-access 127.0.0.1 admin\nhttp-access 10.77.0.3 admin\n"
                                "http-max-connections-per-ip 5\n")
    d.start()
    wait_until(lambda: api("GET", "/api/v1/status")[0] == 200, 5, what="the API")
    held = [socket.create_connection(harness.SALVOD_HTTP, timeout=5, source_address=("10.77.0.3", 0))
            for _ in range(5)]
    time.sleep(0.3)  # let the server accept them all

    def sixth_refused():
        try:
            st, _ = api("GET", "/api/v1/status", source="10.77.0.3", timeout=3)
            return False
        except (ConnectionError, http.client.HTTPException, socket.timeout, OSError):
            return True
    if not sixth_refused():
        raise Fail("a 6th connection from 10.77.0.3 was served with http-max-connections-per-ip 5")
    if api("GET", "/api/v1/status")[0] != 200:
        raise Fail("loopback not served while 10.77.0.3 is at its cap")
    for s in held:
        s.close()
    if not wait_until(lambda: not sixth_refused(), 5, what="10.77.0.3 served again"):
        raise Fail("10.77.0.3 not served again after its connections closed")
    log("per-address cap 5: the 6th is closed unserved, another address is served, and the cap frees on close")


def make_cert(env):
    cert, key = os.path.join(env.dir, "api-cert.pem"), os.path.join(env.dir, "api-key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=salvo.itest", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


def test_https(env):
    add_addr("10.77.0.4")
    cert, key = make_cert(env)
    # tls=yes without a certificate: a config error naming the line
    bad = env.write("bad.conf", "http-listener 127.0.0.1:8443 tls=yes\n")
    r = subprocess.run([env.salvod, "--check-config", "-c", bad], capture_output=True, text=True)
    if r.returncode != 2 or "bad.conf:1:" not in r.stderr + r.stdout or "tls-certificate" not in r.stderr + r.stdout:
        raise Fail("tls=yes without a certificate: exit %s %r" % (r.returncode, r.stderr + r.stdout))

    extra = "http-listener 127.0.0.1:8443 tls=yes\ntls-certificate %s\ntls-private-key %s\nhttp-api-token %s\n" % (
        cert, key, ADMIN_TOKEN)
    d = env.salvod_daemon(extra=extra)
    d.start()
    wait_until(lambda: harness.port_open(HTTPS), 5, what="the HTTPS listener")

    r = subprocess.run(["curl", "-sS", "--cacert", cert, "-w", "\n%{http_code}", "--max-time", "10",
                        "https://127.0.0.1:8443/api/v1/status"], capture_output=True, text=True)
    body, _, code = r.stdout.rpartition("\n")
    if code != "200" or "uptime_s" not in body:
        raise Fail("curl over HTTPS: %r %r" % (r.stdout[-300:], r.stderr))
    ctx = ssl.create_default_context(cafile=cert)
    c = http.client.HTTPSConnection(HTTPS[0], HTTPS[1], context=ctx, timeout=10, source_address=("10.77.0.4", 0))
    st, r2 = api("GET", "/api/v1/status", conn=c)
    if st != 401:
        raise Fail("HTTPS from 10.77.0.4 without a token: %s %r" % (st, r2))
    c = http.client.HTTPSConnection(HTTPS[0], HTTPS[1], context=ctx, timeout=10, source_address=("10.77.0.4", 0))
    st, r2 = api("POST", "/api/v1/suppressions", {"address": "tls@roles.test"}, token=ADMIN_TOKEN, conn=c)
    if st != 200:
        raise Fail("HTTPS from 10.77.0.4 with the token: %s %r" % (st, r2))
    with socket.create_connection(HTTPS, timeout=5) as s:
        s.sendall(b"GET /api/v1/status HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(5)
        try:
            got = s.recv(4096)
        except (socket.timeout, ConnectionError):
            got = b""
        if got.startswith(b"HTTP/1.1 200"):
            raise Fail("plain HTTP on the TLS port was served")
    r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:8443", "-CAfile", cert, "-verify_return_error",
                        "-brief"], input="", capture_output=True, text=True, timeout=20)
    if r.returncode != 0 or "Verification: OK" not in r.stderr:
        raise Fail("openssl s_client: %s %r" % (r.returncode, r.stderr[-500:]))
    proto = [l for l in r.stderr.splitlines() if "Protocol version" in l]
    # the plain listener still answers
    if api("GET", "/api/v1/status")[0] != 200:
        raise Fail("the plain listener stopped answering")
    log("HTTPS: curl and Python verify the test certificate (%s); a token crosses it from 10.77.0.4; "
        "plain HTTP on 8443 is not served" % (proto[0].strip() if proto else "?"))


def test_api_key(env):
    """PowerMTA's http-api-key: an admin key, taken from X-API-Key (or as a token);
    a wrong key is 401, no key leaves the address's role (monitor here)."""
    env.dns()
    d = env.salvod_daemon(extra="http-access 127.0.0.1 monitor\nhttp-api-key pmtakey1\n")
    d.start()
    wait_until(lambda: api("GET", "/api/v1/status")[0] == 200, 5, what="the API")

    def post(hdrs):
        c = http.client.HTTPConnection(harness.SALVOD_HTTP[0], harness.SALVOD_HTTP[1], timeout=10)
        try:
            c.request("POST", "/api/v1/queues/key.test/pause", body=b"", headers=hdrs)
            r = c.getresponse()
            r.read()
            return r.status
        finally:
            c.close()
    got = {"none": post({}), "x-api-key": post({"X-API-Key": "pmtakey1"}),
           "bearer": post({"Authorization": "Bearer pmtakey1"}), "wrong": post({"X-API-Key": "pmtakey2"})}
    if got != {"none": 403, "x-api-key": 200, "bearer": 200, "wrong": 401}:
        raise Fail("http-api-key: %r, want none 403, the key 200 either way, a wrong key 401" % got)
    r = subprocess.run([harness._find_binary("SALVOD", "--salvod", "engine/salvod"), "--check-config", "-c", d.config],
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0 or "http-api-key is shorter than 16 characters" not in r.stderr:
        raise Fail("--check-config of a short http-api-key: exit %d, %s" % (r.returncode, r.stderr))
    log("http-api-key: X-API-Key and Bearer admit, a wrong key 401, none keeps the address's role; short key warned")


if __name__ == "__main__":
    harness.main([test_api_key, test_early, test_roles, test_conncap, test_https], needs_sink=False)
