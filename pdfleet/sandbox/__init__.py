"""The sandbox: a simulated cluster of real hosts on one Linux machine, for people without GPUs, tests and CI.

Each host of `inventories/sandbox.yaml` gets its own network namespace and address on a bridge, its own overlay
filesystem over one cached Debian rootfs, real systemd as PID 1 and a real sshd. The image carries an offline apt
repository (real Debian packages plus stand-ins with the real names of NVIDIA's and the RDMA vendor's packages)
and a local Python package index (the real smg router, a stand-in sglang engine). Nothing leaves the machine.

Modules: `image` builds and caches the rootfs; `hosts` starts, supervises and stops hosts; `cli` is
`pdfleet sandbox ...`. The deploy code never imports any of this: the hosts differ from real ones only in what
their image holds.
"""
