#!/bin/bash
# mmdebstrap customize hook for the sandbox image. Runs as root on the build machine with the new rootfs as $1;
# everything that touches the rootfs goes through "$root" or `chroot "$root"`.
#
# usage: customize.sh ROOTFS STANDIN_DEB_DIR PYPI_DIR "REAL PACKAGES..."
set -euo pipefail
root=$1
standin_debs=$2
pypi=$3
real_packages=$4

step() { printf '    image | %s\n' "$*"; }

step "download the real Debian packages the deploys install into the offline repository"
repo="$root/srv/pdfleet-repo"
mkdir -p "$repo/debian" "$repo/standin"
# shellcheck disable=SC2086  # a word list on purpose
chroot "$root" apt-get install --download-only -y -q --no-install-recommends $real_packages >/dev/null
find "$root/var/cache/apt/archives" -maxdepth 1 -name '*.deb' -exec mv -t "$repo/debian/" {} +

step "add the stand-in vendor packages (NVIDIA driver set, fabric manager, DCGM and its exporter, Grafana, container engine, RDMA tools)"
cp "$standin_debs"/*.deb "$repo/standin/"
chroot "$root" sh -c 'cd /srv/pdfleet-repo && apt-ftparchive packages . > Packages && apt-ftparchive release . > Release'

step "point apt at the offline repository only (the hosts have no route off the machine)"
rm -f "$root/etc/apt/sources.list" "$root"/etc/apt/sources.list.d/*
echo 'deb [trusted=yes] file:/srv/pdfleet-repo ./' > "$root/etc/apt/sources.list.d/pdfleet-sandbox.list"
chroot "$root" apt-get update -q >/dev/null

step "add the local Python package index (real smg router, stand-in sglang engine)"
mkdir -p "$root/srv/pdfleet-pypi"
cp -r "$pypi"/. "$root/srv/pdfleet-pypi/"

step "the stand-in container image's content: the stand-in sglang engine, run by the stand-in docker"
chroot "$root" apt-get install -y -q --no-install-recommends python3-venv >/dev/null
chroot "$root" python3 -m venv /opt/sglang-standin-image/venv
chroot "$root" /opt/sglang-standin-image/venv/bin/pip install -q --no-cache-dir \
    --index-url file:///srv/pdfleet-pypi/simple sglang==0.5.23

step "quiet, deterministic boot: no timers or gettys that race a deploy for the dpkg lock"
for unit in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer \
    console-getty.service getty@tty1.service systemd-timesyncd.service; do
    ln -sf /dev/null "$root/etc/systemd/system/$unit"
done

step "sshd: keys only; each host gets its own host key when it is created"
rm -f "$root"/etc/ssh/ssh_host_*
mkdir -p "$root/etc/ssh/sshd_config.d"
cat > "$root/etc/ssh/sshd_config.d/pdfleet-sandbox.conf" <<'EOF'
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UseDNS no
EOF

step "empty machine-id: each host gets its own"
: > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"

step "the kernel's stand-ins: simulated vendor modules, boot-time modules and sysctls, chrony without the clock"
kernel="$(dirname "$0")/standins/kernel"
chroot "$root" dpkg-divert --quiet --local --rename --divert /usr/sbin/modprobe.kmod --add /usr/sbin/modprobe
install -m 0755 "$kernel/modprobe" "$root/usr/sbin/modprobe"
mkdir -p "$root/usr/lib/pdfleet-standin/modules"
install -m 0755 "$kernel/kernel-boot" "$root/usr/lib/pdfleet-standin/kernel-boot"
install -m 0644 "$kernel/pdfleet-standin-kernel-boot.service" "$root/etc/systemd/system/"
mkdir -p "$root/etc/systemd/system/sysinit.target.wants" "$root/etc/systemd/system/chrony.service.d"
ln -sf ../pdfleet-standin-kernel-boot.service "$root/etc/systemd/system/sysinit.target.wants/"
install -m 0644 "$kernel/chrony-sandbox.conf" "$root/etc/systemd/system/chrony.service.d/pdfleet-sandbox.conf"
