#!/bin/sh
# pdfleet sandbox stand-in for /usr/sbin/grafana, /usr/sbin/grafana-server, /usr/sbin/grafana-cli and
# /usr/share/grafana/bin/grafana-{server,cli} (package grafana): the entry points Grafana's deb ships, each running
# /usr/share/grafana/bin/grafana (`grafana-server` and `grafana-cli` say they are deprecated, as Grafana's do).
root=${PDFLEET_STANDIN_ROOT:-/}
grafana="${root%/}/usr/share/grafana/bin/grafana"
case "$(basename "$0")" in
grafana-server)
    echo "Deprecation warning: The standalone 'grafana-server' program is deprecated and will be removed in the" \
        "future. Please update all uses of 'grafana-server' to 'grafana server'" >&2
    exec "$grafana" server "$@" ;;
grafana-cli)
    echo "Deprecation warning: The standalone 'grafana-cli' program is deprecated and will be removed in the" \
        "future. Please update all uses of 'grafana-cli' to 'grafana cli'" >&2
    exec "$grafana" cli "$@" ;;
*) exec "$grafana" "$@" ;;
esac
