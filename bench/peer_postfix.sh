#!/bin/bash
# peer_postfix.sh - Postfix (Debian's package) as the comparison peer for
# salvo-bench: a separate instance whose config, queue and log live in DIR,
# listening on 127.0.0.1:2526 and relaying by MX lookups (its chrooted
# resolver reads DIR/spool/etc/resolv.conf -> 127.0.0.1, port 53: salvo-bench
# runs dnsmasq there for the postfix target). Tuned the way an ESP would run
# it for bulk: 20 connections per destination from the start, no TLS.
# Never touches the system's own Postfix instance or /etc.
#   peer_postfix.sh start DIR   set up, start, print the master's PID
#   peer_postfix.sh stop DIR    stop it (by its pid file) and wait
set -euo pipefail
cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
conf=$dir/etc; spool=$dir/spool; data=$dir/data

stop() {
    [ -s "$spool/pid/master.pid" ] || return 0
    local pid; pid=$(tr -d ' ' < "$spool/pid/master.pid")
    kill -0 "$pid" 2>/dev/null || return 0
    postfix -c "$conf" stop >&2 2>&1 || kill "$pid"
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
}

start() {
    command -v postfix >/dev/null || { echo "postfix is not installed" >&2; exit 1; }
    mkdir -p "$conf" "$spool/etc" "$data"
    chown postfix: "$data"
    # Debian's master.cf, the public smtpd moved to 127.0.0.1:2526.
    sed -e 's/^smtp      inet  n       -       y       -       -       smtpd$/127.0.0.1:2526 inet n - y - - smtpd/' \
        /usr/share/postfix/master.cf.dist > "$conf/master.cf"
    grep -q '^127.0.0.1:2526 inet' "$conf/master.cf" || { echo "master.cf: smtpd line not found" >&2; exit 1; }
    cat > "$conf/main.cf" <<CF
compatibility_level = 3.6
config_directory = $conf
queue_directory = $spool
data_directory = $data
maillog_file = $dir/maillog
maillog_file_prefixes = $dir
myhostname = relay.peer.test
mydomain = peer.test
myorigin = \$myhostname
mydestination =
relay_domains =
local_recipient_maps =
alias_maps =
alias_database =
biff = no
append_dot_mydomain = no
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
smtp_bind_address = 127.0.0.1
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtp_tls_security_level = none
smtpd_tls_security_level = none
default_process_limit = 200
default_destination_concurrency_limit = 20
smtp_destination_concurrency_limit = 20
initial_destination_concurrency = 20
CF
    for f in localtime hosts services nsswitch.conf host.conf; do
        [ -e /etc/$f ] && cp -L /etc/$f "$spool/etc/$f"
    done
    echo "nameserver 127.0.0.1" > "$spool/etc/resolv.conf"
    postfix -c "$conf" check >&2 2>&1 || true
    postfix -c "$conf" start >&2 2>&1
    for _ in $(seq 1 40); do
        [ -s "$spool/pid/master.pid" ] && { tr -d ' ' < "$spool/pid/master.pid"; return 0; }
        sleep 0.25
    done
    echo "postfix did not start; see $dir/maillog" >&2
    exit 1
}

case $cmd in
    start) stop; start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
