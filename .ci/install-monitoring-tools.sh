#!/usr/bin/env bash
# Monitoring tools for the offline tests (tests/test_alerts.py, tests/test_dashboards.py), extracted, not installed:
#
#   .cache/monitoring-tools/usr/bin/promtool                    from Debian's `prometheus` package
#   .cache/monitoring-tools/usr/bin/prometheus-node-exporter    from Debian's `prometheus-node-exporter` package
#
# `apt-get install` would start a Prometheus and a node exporter service on this machine, so the packages are only
# downloaded (`apt-get download`, the distribution's candidate version) and unpacked with `dpkg-deb -x`; nothing runs.
# The tests run promtool (check rules, test rules, the queries' syntax) and start the node exporter on 127.0.0.1 to
# read the metric names it really serves.
#
# Idempotent: a stamp holds the package versions it extracted; a second run with the same candidates does nothing.
# Start from scratch with `rm -rf .cache/monitoring-tools`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/.cache/monitoring-tools"
STAMP="$DEST/.pdfleet-stamp"
PACKAGES=(prometheus prometheus-node-exporter)

say() { printf 'install-monitoring-tools: %s\n' "$*"; }

mkdir -p "$(dirname "$DEST")"
exec 9>"$DEST.lock"
if command -v flock >/dev/null; then flock 9; fi

candidate() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}'; }

want=""
for package in "${PACKAGES[@]}"; do
    version="$(candidate "$package")"
    if [[ -z "$version" || "$version" == "(none)" ]]; then
        if [[ $EUID -eq 0 ]]; then
            say "apt has no candidate for $package: apt-get update"
            apt-get update -qq
            version="$(candidate "$package")"
        fi
        if [[ -z "$version" || "$version" == "(none)" ]]; then
            say "FAILED: apt has no candidate for $package (Debian 12 / Ubuntu: it is in main / universe)"
            exit 1
        fi
    fi
    want+="$package=$version "
done
want="${want% }"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" && -x "$DEST/usr/bin/promtool" && -x "$DEST/usr/bin/prometheus-node-exporter" ]]; then
    say "$want already in .cache/monitoring-tools, nothing to do"
    exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
say "downloading $want"
# apt-get download writes into the current directory; as root it drops to the _apt user, who needs write access.
chmod 0777 "$work"
(cd "$work" && apt-get download -qq "${PACKAGES[@]}" >/dev/null)
rm -rf "$DEST.tmp"
mkdir -p "$DEST.tmp"
for deb in "$work"/*.deb; do
    say "extracting $(basename "$deb")"
    dpkg-deb -x "$deb" "$DEST.tmp"
done
for tool in promtool prometheus-node-exporter; do
    if ! "$DEST.tmp/usr/bin/$tool" --version >/dev/null 2>&1; then
        say "FAILED: $DEST.tmp/usr/bin/$tool --version"
        exit 1
    fi
done
rm -rf "$DEST"
mv "$DEST.tmp" "$DEST"
printf '%s' "$want" >"$STAMP"
say "ready: $("$DEST/usr/bin/promtool" --version 2>&1 | head -n 1); $("$DEST/usr/bin/prometheus-node-exporter" --version 2>&1 | head -n 1)"
