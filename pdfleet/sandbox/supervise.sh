#!/bin/bash
# Keeps one sandbox host running: boots it, and boots it again when it reboots (`systemctl reboot` inside ends
# its PID namespace's init with SIGHUP, which unshare passes on). Ends when the host powers off or when
# `pdfleet sandbox down` marks it stopping. Runs detached, in the host's own cgroup.
#
# usage: supervise.sh NAME NETNS CGROUP_DIR IMAGE_ROOTFS HOST_DIR
set -u
name=$1 netns=$2 cgroup=$3 rootfs=$4 dir=$5
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

echo $$ > "$cgroup/cgroup.procs"
boots=0
while :; do
    boots=$((boots + 1))
    echo "$(date -Is) $name: boot $boots"
    nsenter --net="/run/netns/$netns" -- \
        unshare --mount --uts --ipc --pid --cgroup --fork --kill-child \
        bash "$here/hostinit.sh" "$rootfs" "$dir/upper" "$dir/work" "$dir/merged" "$name" &
    echo $! > "$dir/unshare.pid"
    wait $!
    rc=$?
    rm -f "$dir/unshare.pid"
    # What the old systemd left in this host's cgroup: empty groups, removed so the next boot starts clean.
    find "$cgroup" -mindepth 1 -depth -type d -exec rmdir {} + 2>/dev/null
    if [ -e "$dir/stopping" ]; then
        echo "$(date -Is) $name: stopped"
        break
    fi
    if [ "$rc" -eq 129 ]; then
        echo "$(date -Is) $name: rebooted"
        continue
    fi
    echo "$(date -Is) $name: powered off (exit $rc)"
    break
done
