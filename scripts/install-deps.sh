#!/bin/sh
# Install every Debian 12 package Salvo needs to build, run and test.
# Postfix is preseeded to "No configuration" so no system Postfix takes port 25:
# the tests only use its smtp-sink/smtp-source tools.
set -eu
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
$SUDO apt-get install -y -q --no-install-recommends \
    build-essential pkg-config meson ninja-build \
    liburing-dev libssl-dev liblmdb-dev libc-ares-dev libjemalloc-dev libcmocka-dev \
    libmicrohttpd-dev libjansson-dev libpcre2-dev libncurses-dev libcurl4-openssl-dev tmux \
    dnsmasq-base postfix swaks python3 python3-dkim python3-prometheus-client lmdb-utils curl \
    clang libclang-rt-14-dev valgrind procps iproute2 ca-certificates libbenchmark-dev g++ \
    libmail-deliverystatus-bounceparser-perl
