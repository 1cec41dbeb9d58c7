"""Model serving profiles: what to run, said once, in the recipe's own vocabulary.

A profile turns (cluster, instance, rank, node) into an ordered list of `Opt` spelled as the published recipe
spells them (SGLang 0.5.6.post2). It never looks at the target SGLang version: `pdfleet.dialects` translates the
list for the pinned version. So the recipe is written down exactly once and every version's command line is
derived from it.

The DeepSeek-V3.2 profile is the published 2P1D recipe for 4 x 8 H200: prefill TP8/DP8 attention with DeepEP
normal mode, decode TP16/DP16 over two nodes with DeepEP low_latency, EAGLE MTP, NSA attention, Mooncake KV
transfer over the node's HCAs.
"""

from __future__ import annotations

from pdfleet import netaddr
from pdfleet.cluster import Cluster, Instance, Node
from pdfleet.options import Opt, opt

# Decode batch sizes captured as CUDA graphs (the recipe's list).
DECODE_CUDA_GRAPH_BS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 24, 32, 64)

# The recipe's debugging options: per-request logs, token histograms and the cache-hit report. Off by default
# (sglang.debug_logging) because request logs hold prompts and the histograms cost CPU on every request.
DEBUG_OPTS = (
    opt("--log-requests"),
    opt("--log-requests-level", 2),
    opt("--collect-tokens-histogram"),
    opt("--enable-cache-report"),
)


def deepseek_v32_opts(cluster: Cluster, instance: Instance, rank: int, node: Node) -> list[Opt]:
    """The launch options of one node of a DeepSeek-V3.2 PD instance, in the recipe's order and spelling."""
    model = cluster.model
    prefill = instance.role == "prefill"
    opts = [
        opt("--model-path", model.path),
        opt("--host", netaddr.wildcard(node.address)),
        opt("--port", instance.ports.http),
        opt("--trust-remote-code"),
        opt("--served-model-name", model.served_name),
        opt("--tp", instance.tp),
        opt("--dp", instance.dp),
        opt("--enable-dp-attention"),
        opt("--moe-dense-tp-size", 1),
        opt("--enable-dp-lm-head"),
        opt("--moe-a2a-backend", "deepep"),
        # normal mode for long prefill batches, low_latency (CUDA-graph friendly) for decode
        opt("--deepep-mode", "normal" if prefill else "low_latency"),
        opt("--ep-num-redundant-experts", 0),
    ]
    if prefill:
        opts.append(opt("--load-balance-method", "round_robin"))
    else:
        opts.append(opt("--prefill-round-robin-balance"))
    opts += [
        opt("--enable-expert-distribution-metrics"),
        opt("--mem-fraction-static", "0.8"),
        opt("--max-running-requests", 512 if prefill else 1024),
    ]
    if prefill:
        opts.append(opt("--chunked-prefill-size", 65536))
    else:
        opts.append(opt("--cuda-graph-bs", *DECODE_CUDA_GRAPH_BS))
    opts += [
        opt("--speculative-algorithm", "EAGLE"),
        opt("--speculative-num-steps", 1),
        opt("--speculative-eagle-topk", 1),
        opt("--speculative-num-draft-tokens", 2),
        opt("--attention-backend", "nsa"),
        opt("--tool-call-parser", "deepseekv32"),
        opt("--reasoning-parser", "deepseek-v3"),
        opt("--disaggregation-mode", instance.role),
        opt("--disaggregation-transfer-backend", "mooncake"),
        opt("--disaggregation-ib-device", ",".join(node.hcas)),
    ]
    if prefill:
        # The bootstrap server decode instances reach for KV-transfer handshakes; the router names it too.
        opts.append(opt("--disaggregation-bootstrap-port", instance.ports.bootstrap))
    if instance.nnodes > 1:
        head = cluster.node(instance.head)
        opts += [
            opt("--nnodes", instance.nnodes),
            opt("--node-rank", rank),
            opt("--dist-init-addr", netaddr.host_port(head.address, instance.ports.dist_init)),
        ]
    opts.append(opt("--enable-metrics"))
    if instance.dp > 1 and instance.tp // instance.dp > 1:
        # DP attention with an attention-TP group of several ranks: only the group's first rank records scheduler
        # stats unless told otherwise (with tp == dp, as in the recipe, every scheduler already reports, dp_rank
        # labelled: scheduler_metrics_mixin.py in 0.5.6.post2)
        opts.append(opt("--enable-metrics-for-all-schedulers"))
    if cluster.debug_logging:
        opts += DEBUG_OPTS
    return opts


# The recipe's PD environment. The two timeouts give up on a KV handshake after 80 s instead of 300 s, so a dead
# peer fails requests fast instead of stalling them (SGLANG_DISAGGREGATION_* in sglang/srt/environ.py).
# SGLANG_DP_ATTENTION_HANDSHAKE_PORT_DELTA is carried because the recipe sets it, but neither 0.5.6.post2 nor
# 0.5.23 reads it: both hard-code the handshake at dist-init port + 13 (DP_ATTENTION_HANDSHAKE_PORT_DELTA in
# sglang/srt/server_args.py), which is the port the inventory check reserves.
PD_ENV = {
    "SGLANG_DP_ATTENTION_HANDSHAKE_PORT_DELTA": "30",
    "SGLANG_DISAGGREGATION_WAITING_TIMEOUT": "80",
    "SGLANG_DISAGGREGATION_BOOTSTRAP_TIMEOUT": "80",
}


def fabric_env(cluster: Cluster, node: Node) -> dict[str, str]:
    """NCCL, Gloo, NVSHMEM and Mooncake settings for one node: one traffic class, one GID index, its HCAs."""
    tc = str(cluster.network.traffic_class)
    gid = str(cluster.network.gid_index)
    iface = node.management_interface
    hcas = ",".join(node.hcas)
    env = {
        # '=' asks NCCL for exact names: plain 'mlx5_1' would also match mlx5_10 and mlx5_11 (NCCL env docs).
        "NCCL_IB_HCA": f"={hcas}",
        "NCCL_IB_TC": tc,
        "NCCL_IB_GID_INDEX": gid,
        "NCCL_SOCKET_IFNAME": f"={iface}",
        "GLOO_SOCKET_IFNAME": iface,
        "NVSHMEM_HCA_LIST": hcas,
        "NVSHMEM_IB_TRAFFIC_CLASS": tc,
        "NVSHMEM_IB_GID_INDEX": gid,
        "NVSHMEM_BOOTSTRAP_UID_SOCK_IFNAME": iface,
        "MC_IB_TC": tc,
        # Mooncake logs "GID is NULL" and fails every transfer on RoCE unless told the GID (SGLang PR #30737).
        "MC_GID_INDEX": gid,
    }
    if netaddr.is_ipv6(node.address):
        # A node reached over IPv6. SGLang takes the address its KV sender and receiver advertise to Mooncake and
        # its peers from SGLANG_HOST_IP before guessing one (get_local_ip_auto in sglang/srt/utils/common.py of
        # 0.5.6.post2, sglang/srt/utils/network.py of 0.5.23; called by disaggregation/common/conn.py): the guess
        # tries IPv4 first. NCCL's bootstrap and socket transport pick an interface address of either family
        # unless told which (NCCL_SOCKET_FAMILY, NCCL's environment variables). IPv4 nodes get neither, as before.
        env["SGLANG_HOST_IP"] = node.address
        env["NCCL_SOCKET_FAMILY"] = "AF_INET6"
    return env


PROFILES = {"deepseek-v3.2": deepseek_v32_opts}
