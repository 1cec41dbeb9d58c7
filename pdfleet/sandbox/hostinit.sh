#!/bin/bash
# PID 1 of one sandbox host, before it becomes systemd. Runs in the host's new mount, PID, UTS, IPC and cgroup
# namespaces (made by unshare) inside its network namespace (entered by nsenter); see supervise.sh.
#
# It assembles the host's root (overlay over the shared image), makes everything that could reach this machine's
# global state read-only or absent, and execs systemd. Nothing here outlives the namespaces: when PID 1 exits, the
# kernel tears the mounts and processes down with it.
#
# usage: hostinit.sh IMAGE_ROOTFS UPPER WORK MERGED HOSTNAME
set -euo pipefail
rootfs=$1 upper=$2 work=$3 m=$4 name=$5

mount --make-rprivate /
mount -t overlay overlay -o "lowerdir=$rootfs,upperdir=$upper,workdir=$work" "$m"

mount -t proc -o nosuid,nodev,noexec proc "$m/proc"
mount -t tmpfs -o mode=755,nosuid,nodev tmpfs "$m/run"
# /proc/sys is global for vm.*, kernel.*, fs.*: a sysctl there would change this machine. Only net.* is
# per network namespace, so only /proc/sys/net stays writable (what systemd-nspawn does too).
mount --bind "$m/proc/sys" "$m/proc/sys"
mount --bind "$m/proc/sys/net" "$m/proc/sys/net"
mount -o remount,bind,ro "$m/proc/sys"
# Also read-only: entries that reach this machine's hardware or kernel (PCI config space through /proc/bus,
# IRQ affinity, ACPI, filesystem tunables, sysrq, kernel memory), as systemd-nspawn does.
for entry in sysrq-trigger kcore bus irq acpi fs; do
    if [ -e "$m/proc/$entry" ]; then
        mount --bind "$m/proc/$entry" "$m/proc/$entry"
        mount -o remount,bind,ro "$m/proc/$entry"
    fi
done
# The host's own kernel state where the deploys change it (standins/kernel): the few global sysctls the deploys
# set get private copies, seeded from this machine's values at every boot, in the host's /run (a reboot resets
# them as it resets a kernel).
standin="$m/run/pdfleet-standin"
mkdir -p "$standin/sysctl"
# Each boot has its own boot ID (journalctl --list-boots tells a host's boots apart).
cat /proc/sys/kernel/random/uuid > "$standin/boot_id"
mount --bind -o ro "$standin/boot_id" "$m/proc/sys/kernel/random/boot_id"
for key in kernel/numa_balancing vm/max_map_count; do
    [ -e "/proc/sys/$key" ] || continue
    copy="$standin/sysctl/${key//\//.}"
    cat "/proc/sys/$key" > "$copy"
    mount --bind "$copy" "$m/proc/sys/$key"
done
# sysfs mounted from inside the network namespace lists this host's interfaces only; read-only.
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$m/sys"
# Loaded modules, per boot: /sys/module becomes a private tmpfs holding this machine's entries (read-only binds)
# plus the simulated vendor modules the sandbox's modprobe adds (standins/kernel/modprobe).
mount -t tmpfs -o mode=755,nosuid,nodev,noexec,size=1m tmpfs "$m/sys/module"
for entry in /sys/module/*; do
    [ -d "$entry" ] || continue
    mkdir "$m$entry"
    mount --bind -o ro "$entry" "$m$entry"
done
# The cgroup namespace is rooted at this host's own cgroup: systemd manages that subtree and nothing above it.
mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$m/sys/fs/cgroup"

# A private /dev with the harmless character devices only: no disks, no way to make one (CAP_MKNOD is dropped).
mount -t tmpfs -o mode=755,size=16m,nosuid tmpfs "$m/dev"
for dev in null zero full random urandom tty; do
    touch "$m/dev/$dev"
    mount --bind "/dev/$dev" "$m/dev/$dev"
done
mkdir -p "$m/dev/pts" "$m/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=620,gid=5 devpts "$m/dev/pts"
ln -s pts/ptmx "$m/dev/ptmx"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$m/dev/shm"
ln -s /proc/self/fd "$m/dev/fd"
ln -s /proc/self/fd/0 "$m/dev/stdin"
ln -s /proc/self/fd/1 "$m/dev/stdout"
ln -s /proc/self/fd/2 "$m/dev/stderr"

hostname "$name"
cd "$m"
pivot_root . .
umount -l .

# Capabilities that reach beyond the namespaces go: kernel modules, raw I/O, the clock, device nodes.
# CAP_SYS_BOOT stays: reboot() in a PID namespace only ends that namespace's init, which is how a host reboots.
exec setpriv --bounding-set -sys_module,-sys_rawio,-sys_time,-mknod,-mac_admin,-mac_override,-wake_alarm,-block_suspend,-syslog \
    env -i container=pdfleet-sandbox TERM=dumb PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    /lib/systemd/systemd
