#!/bin/sh
# Desktop install of the full Studio for one user (no root needed):
#
#   install-desktop.sh install     a virtual environment with the pinned stack, `studio` on PATH, menu entries
#   install-desktop.sh upgrade     install the new version beside the old one, then switch; the old one stays
#                                  in use if anything fails
#   install-desktop.sh uninstall   remove the program, launchers, menu entries and icon; projects, devices, keys
#                                  and measured runs stay (add --purge to remove those too)
#
# Where: program in $XDG_DATA_HOME/studio/app (default ~/.local/share/studio/app), launchers in ~/.local/bin,
# menu entries in $XDG_DATA_HOME/applications, icon in $XDG_DATA_HOME/icons/hicolor/scalable/apps.
# It installs the studio wheel next to this script (the dist/studio-desktop folder `make installer` writes), or the
# source tree it sits in. STUDIO_PIP_ARGS adds pip options (for example a local index: --find-links DIR).
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
DATA=${XDG_DATA_HOME:-$HOME/.local/share}
APP=$DATA/studio/app
BIN=${STUDIO_BIN_DIR:-$HOME/.local/bin}
MENU=$DATA/applications
ICONS=$DATA/icons/hicolor/scalable/apps
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}

say() { printf 'studio-installer: %s\n' "$*"; }
die() { printf 'studio-installer: error: %s\n' "$*" >&2; exit 1; }

source_spec() {
    wheel=$(ls "$HERE"/studio-*.whl 2>/dev/null | tail -n 1 || true)
    if [ -n "$wheel" ]; then echo "$wheel"; return; fi
    [ -f "$HERE/../pyproject.toml" ] && { (cd "$HERE/.." && pwd); return; }
    die "no studio wheel next to $0 and no source tree above it"
}

constraints() {
    [ -f "$HERE/constraints.txt" ] || die "$HERE/constraints.txt is missing"
    echo "$HERE/constraints.txt"
}

write_entries() {  # $1: the release folder the launchers point at (through $APP/current)
    mkdir -p "$BIN" "$MENU" "$ICONS"
    ln -sfn "$APP/current/bin/studio" "$BIN/studio.tmp" && mv -f "$BIN/studio.tmp" "$BIN/studio"
    ln -sfn "$APP/current/bin/studio-flash" "$BIN/studio-flash.tmp" && mv -f "$BIN/studio-flash.tmp" "$BIN/studio-flash"
    icon_src=$(ls "$1"/share/studio/icons/studio.svg 2>/dev/null || echo "$HERE/../resources/icons/studio.svg")
    cp "$icon_src" "$ICONS/studio.svg.tmp" && mv -f "$ICONS/studio.svg.tmp" "$ICONS/studio.svg"
    entry "studio" "Studio" "Optimize, package and deploy models to edge devices" "$APP/current/bin/studio gui" \
        "Development;Science;"
    entry "studio-flash" "Studio Flash" "Flash model bundles onto devices" "$APP/current/bin/studio-flash" \
        "Utility;"
    command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$MENU" || true
}

entry() {  # id name comment exec categories
    cat > "$MENU/$1.desktop.tmp" <<EOF
[Desktop Entry]
Type=Application
Version=1.5
Name=$2
Comment=$3
Exec=$4
Icon=studio
Terminal=false
Categories=$5
StartupWMClass=studio
EOF
    mv -f "$MENU/$1.desktop.tmp" "$MENU/$1.desktop"
}

install_release() {
    [ -n "$PYTHON" ] || die "Python 3.11 not found (set PYTHON=/path/to/python3.11)"
    mkdir -p "$APP/releases"
    release="$APP/releases/$(date +%Y%m%d-%H%M%S)-$$"
    spec=$(source_spec)
    say "creating $release"
    "$PYTHON" -m venv "$release"
    # shellcheck disable=SC2086 - STUDIO_PIP_ARGS is a list of options
    if ! "$release/bin/python" -m pip install --quiet --disable-pip-version-check -c "$(constraints)" \
            ${STUDIO_PIP_ARGS:-} "$spec"; then
        rm -rf "$release"
        die "installing $spec failed; nothing was changed"
    fi
    "$release/bin/studio" --version >/dev/null || { rm -rf "$release"; die "the new install does not start"; }
    old=$(readlink "$APP/current" 2>/dev/null || true)
    ln -sfn "$release" "$APP/current.tmp" && mv -Tf "$APP/current.tmp" "$APP/current"
    write_entries "$release"
    if [ -n "$old" ] && [ "$old" != "$release" ]; then rm -rf "$old"; fi
    say "installed $("$APP/current/bin/studio" --version) in $APP (run: studio gui, or Studio in the menu)"
}

uninstall() {
    rm -f "$BIN/studio" "$BIN/studio-flash" "$MENU/studio.desktop" "$MENU/studio-flash.desktop" "$ICONS/studio.svg"
    rm -rf "$APP"
    command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$MENU" || true
    if [ "${1:-}" = "--purge" ]; then
        rm -rf "$DATA/studio" "${XDG_CONFIG_HOME:-$HOME/.config}/studio" "${XDG_CACHE_HOME:-$HOME/.cache}/studio"
        say "removed Studio and all its data"
    else
        say "removed Studio; projects, devices, keys and runs are kept (uninstall --purge removes them)"
    fi
}

case "${1:-}" in
    install)
        [ -e "$APP/current" ] && die "already installed in $APP: use upgrade"
        install_release ;;
    upgrade)
        [ -e "$APP/current" ] || say "not installed yet: installing"
        install_release ;;
    uninstall)
        shift
        uninstall "${1:-}" ;;
    *)
        echo "usage: $0 install | upgrade | uninstall [--purge]" >&2
        exit 2 ;;
esac
