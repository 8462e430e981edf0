#!/bin/sh
# Debian packages `make test` needs: OpenSSH's server (real devices for the deploy tests), iproute2 (shaped links), the libraries and fonts
# Qt needs to render the window offscreen (GUI tests, screenshots), and binutils (PyInstaller reads binaries with
# objdump). Installs only what is missing; needs root or sudo when something is missing.
set -e
missing=""
[ -x /usr/sbin/sshd ] || missing="$missing openssh-server"
command -v tc >/dev/null 2>&1 || missing="$missing iproute2"  # ip netns and tc: the shaped-link fleet test
for pkg in libegl1 libgl1 libxkbcommon0 libfontconfig1 libdbus-1-3 libglib2.0-0 fonts-dejavu-core binutils; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
done
# What QtWebEngine (the graph window) links to beyond Qt's own libraries: ldd of libQt6WebEngineCore and
# QtWebEngineProcess, less what the packages above already bring.
for pkg in libnss3 libxcomposite1 libxdamage1 libxrandr2 libxtst6 libxkbfile1 libasound2; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
done
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
