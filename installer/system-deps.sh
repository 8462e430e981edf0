#!/bin/sh
# Debian packages the test suite needs: OpenSSH's server (real devices for deploy tests) and Xvfb (screenshots).
# Installs only what is missing; needs root or sudo when something is missing.
set -e
missing=""
[ -x /usr/sbin/sshd ] || missing="$missing openssh-server"
command -v Xvfb >/dev/null 2>&1 || missing="$missing xvfb"
[ -z "$missing" ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
    echo "system-deps: please install:$missing (no apt-get on this machine)" >&2
    exit 1
fi
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
echo "system-deps: installing$missing"
$SUDO apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
