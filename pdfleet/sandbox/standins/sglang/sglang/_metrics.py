"""The stand-in engine's `/metrics`: the real metric families of the SGLang version it stands in for, with the real
names, types, help texts, label sets and histogram buckets, in the text that SGLang's multiprocess Prometheus
collector writes.

Sources (read in the real wheels): 0.5.6.post2 `sglang/srt/metrics/collector.py` (SchedulerMetricsCollector,
TokenizerMetricsCollector) and `sglang/srt/managers/scheduler_metrics_mixin.py` (scheduler labels); 0.5.23
`sglang/srt/observability/metrics_collector.py` (the same collectors, `tokenizer_metric_labels`, the scheduler labels)
and `sglang/srt/managers/data_parallel_controller.py` (which scheduler gets which tp/dp rank).
tests/test_standin_metrics.py checks every family served here against the wheels' own source when .cache/parsers has
them.

What is mirrored:
- Who serves what. Every scheduler process of a node writes its families (labels: model_name, engine_type, tp_rank,
  pp_rank, 0.5.23 also moe_ep_rank, and dp_rank where a data-parallel rank exists, which is every scheduler under DP
  attention); only schedulers whose attention-TP rank is 0 record stats unless --enable-metrics-for-all-schedulers.
  The tokenizer families (labels: model_name, 0.5.23 also engine_type) exist on node rank 0 only: ranks >= 1 run
  no tokenizer, and their /metrics (launch_dummy_health_check_server mounts it with --enable-metrics) shows the
  schedulers of that node only.
- engine_type: "unified" always in 0.5.6.post2 (hard-coded there); the PD mode in 0.5.23 ("prefill", "decode",
  "unified"; "dynamic" on schedulers with --enable-pd-role-switch).
- Versions: the prefill bootstrap queue is `num_prefill_prealloc_queue_reqs` in 0.5.6.post2 and
  `num_prefill_bootstrap_queue_reqs` in 0.5.23; the kv_transfer_* families are gauges in 0.5.6.post2 and histograms
  in 0.5.23; 0.5.23 splits the request counters and TTFT / e2e histograms by `is_streaming`.
- Format: gauges recorded in multiprocess mode "all" (num_retracted_reqs, num_paused_reqs) carry a `pid` label;
  values and `le` bounds are written as prometheus_client writes them (floatToGoString).
- What requests do: prompt/generation tokens, requests, TTFT (not on a PD prefill, as in SGLang), inter-token latency
  (streamed requests), e2e latency, queue time, 0.5.23's per-request TPOT and token-length histograms; requests the
  engine refuses count as aborted; a decode that cannot reach the prefill's bootstrap server counts a bootstrap
  failure; a 0.5.23 prefill observes each request's KV transfer (synthesised: no KV moves here).

Not mirrored: a labelled series of the real engine appears at its first observation; the stand-in shows every
family it serves from the start (zeros). Families for features the stand-in has no use for (grammar, LoRA,
HiCache, storage, EPLB, per-stage latency, routing keys, CPU and startup breakdowns, HTTP middleware counters) are
left out.
"""

from __future__ import annotations

import math
import os
import threading
import time

# (name without "sglang:", type, help, multiprocess mode of a gauge, extra label names, buckets or None)
_SCHEDULER_0_5_6 = (
    ("num_running_reqs", "gauge", "The number of running requests.", "mostrecent", (), None),
    ("num_used_tokens", "gauge", "The number of used tokens.", "mostrecent", (), None),
    ("token_usage", "gauge", "The token usage.", "mostrecent", (), None),
    ("pending_prealloc_token_usage", "gauge",
     "The token usage for pending preallocated tokens (not preallocated yet).", "mostrecent", (), None),
    ("swa_token_usage", "gauge", "The token usage for SWA layers.", "mostrecent", (), None),
    ("mamba_usage", "gauge", "The token usage for Mamba layers.", "mostrecent", (), None),
    ("gen_throughput", "gauge", "The generation throughput (token/s).", "mostrecent", (), None),
    ("num_queue_reqs", "gauge", "The number of requests in the waiting queue.", "mostrecent", (), None),
    ("num_grammar_queue_reqs", "gauge", "The number of requests in the grammar waiting queue.", "mostrecent", (),
     None),
    ("num_running_reqs_offline_batch", "gauge",
     "The number of running low-priority offline batch requests(label is 'batch').", "mostrecent", (), None),
    ("cache_hit_rate", "gauge", "The prefix cache hit rate.", "mostrecent", (), None),
    ("max_total_num_tokens", "gauge", "Maximum total number of tokens in the KV cache pool.", "mostrecent", (), None),
    ("spec_accept_length", "gauge", "The average acceptance length of speculative decoding.", "mostrecent", (), None),
    ("spec_accept_rate", "gauge",
     "The average acceptance rate of speculative decoding (`accepted tokens / total draft tokens` in batch).",
     "mostrecent", (), None),
    ("num_prefill_prealloc_queue_reqs", "gauge", "The number of requests in the prefill prealloc queue.",
     "mostrecent", (), None),
    ("num_prefill_inflight_queue_reqs", "gauge", "The number of requests in the prefill inflight queue.",
     "mostrecent", (), None),
    ("num_decode_prealloc_queue_reqs", "gauge", "The number of requests in the decode prealloc queue.", "mostrecent",
     (), None),
    ("num_decode_transfer_queue_reqs", "gauge", "The number of requests in the decode transfer queue.", "mostrecent",
     (), None),
    ("kv_transfer_speed_gb_s", "gauge", "The transfer speed of the KV cache in GB/s.", "mostrecent", (), None),
    ("kv_transfer_latency_ms", "gauge", "The transfer latency of the KV cache in ms.", "mostrecent", (), None),
    ("kv_transfer_bootstrap_ms", "gauge", "The bootstrap time of the KV transfer in ms.", "mostrecent", (), None),
    ("kv_transfer_alloc_ms", "gauge", "The allocation waiting time of the KV transfer in ms.", "mostrecent", (), None),
    ("num_retracted_reqs", "gauge", "The number of retracted requests.", "all", (), None),
    ("num_paused_reqs", "gauge", "The number of paused requests by async weight sync.", "all", (), None),
    ("utilization", "gauge", "The utilization.", "mostrecent", (), None),
    ("engine_startup_time", "gauge", "The time taken for the engine to start up.", "mostrecent", (), None),
    ("engine_load_weights_time", "gauge", "The time taken for the engine to load weights.", "mostrecent", (), None),
    ("new_token_ratio", "gauge", "The new token ratio.", "mostrecent", (), None),
    ("is_cuda_graph", "gauge", "Whether the batch is using CUDA graph.", "mostrecent", (), None),
    ("num_bootstrap_failed_reqs_total", "counter", "The number of bootstrap failed requests.", None, (), None),
    ("num_transfer_failed_reqs_total", "counter", "The number of transfer failed requests.", None, (), None),
    ("queue_time_seconds", "histogram", "Histogram of queueing time in seconds.", None, (),
     (0.0, 0.1, 0.2, 0.5, 1, 2, 3, 4, 5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 100, 200, 300, 400, 500, 600, 700,
      800, 900, 1000, 1200, 1400, 1600, 1800, 2000, 2500, 3000)),
)  # fmt: skip

_SCHEDULER_0_5_23 = (
    ("num_running_reqs", "gauge", "The number of running requests.", "mostrecent", (), None),
    ("num_queue_reqs", "gauge", "The number of requests in the waiting queue.", "mostrecent", (), None),
    ("num_grammar_queue_reqs", "gauge", "The number of requests in the grammar waiting queue.", "mostrecent", (),
     None),
    ("gen_throughput", "gauge", "The generation throughput (token/s).", "mostrecent", (), None),
    ("cache_hit_rate", "gauge", "The prefix cache hit rate.", "mostrecent", (), None),
    ("decode_sum_seq_lens", "gauge", "The sum of all sequence lengths in decode.", "mostrecent", (), None),
    ("token_usage", "gauge", "The token usage.", "mostrecent", (), None),
    ("full_token_usage", "gauge", "The token usage for full attention layers.", "mostrecent", (), None),
    ("swa_token_usage", "gauge", "The token usage for SWA layers.", "mostrecent", (), None),
    ("mamba_usage", "gauge", "The token usage for Mamba layers.", "mostrecent", (), None),
    ("num_used_tokens", "gauge", "The number of used tokens.", "mostrecent", (), None),
    ("kv_available_tokens", "gauge", "Number of free token slots in the KV cache pool.", "mostrecent", (), None),
    ("kv_evictable_tokens", "gauge", "Number of evictable (radix-cached) token slots in the KV cache pool.",
     "mostrecent", (), None),
    ("kv_used_tokens", "gauge", "Number of actively used token slots in the KV cache pool.", "mostrecent", (), None),
    ("spec_accept_length", "gauge",
     "Mean acceptance length of speculative decoding (accepted drafts + bonus token per forward).", "mostrecent", (),
     None),
    ("spec_accept_rate", "gauge", "Speculative acceptance rate (`accepted drafts / proposed drafts` in batch).",
     "mostrecent", (), None),
    ("spec_num_steps", "gauge", "Currently active speculative_num_steps.", "mostrecent", (), None),
    ("spec_num_draft_tokens", "gauge",
     "Currently active speculative_num_draft_tokens (decouples from steps under topk>1).", "mostrecent", (), None),
    ("num_retracted_reqs", "gauge", "The number of retracted requests.", "all", (), None),
    ("num_paused_reqs", "gauge", "The number of paused requests by async weight sync.", "all", (), None),
    ("num_prefill_bootstrap_queue_reqs", "gauge", "The number of requests in the prefill bootstrap queue.",
     "mostrecent", (), None),
    ("num_prefill_inflight_queue_reqs", "gauge", "The number of requests in the prefill inflight queue.",
     "mostrecent", (), None),
    ("num_decode_prealloc_queue_reqs", "gauge", "The number of requests in the decode prealloc queue.", "mostrecent",
     (), None),
    ("num_decode_transfer_queue_reqs", "gauge", "The number of requests in the decode transfer queue.", "mostrecent",
     (), None),
    ("num_decode_host_receive_queue_reqs", "gauge",
     "Requests in the decode transfer queue receiving into host memory or waiting for device admission.",
     "mostrecent", (), None),
    ("num_decode_deferred_kv_release_reqs", "gauge",
     "The number of failed decode requests whose KV allocations are held pending transfer drain acknowledgement or "
     "timeout.", "mostrecent", (), None),
    ("pending_prealloc_token_usage", "gauge",
     "The token usage for pending preallocated tokens (not preallocated yet).", "mostrecent", (), None),
    ("utilization", "gauge", "The utilization.", "mostrecent", (), None),
    ("fwd_occupancy", "gauge", "Forward pass GPU occupancy percentage.", "mostrecent", (), None),
    ("new_token_ratio", "gauge", "The new token ratio.", "mostrecent", (), None),
    ("is_cuda_graph", "gauge", "Whether the batch is using CUDA graph.", "mostrecent", (), None),
    ("max_total_num_tokens", "gauge", "Maximum total number of tokens in the KV cache pool.", "mostrecent", (), None),
    ("page_size", "gauge", "KV cache page size in tokens.", "mostrecent", (), None),
    ("num_pages", "gauge", "Number of KV cache pages.", "mostrecent", (), None),
    ("context_len", "gauge", "Maximum context length.", "mostrecent", (), None),
    ("num_bootstrap_failed_reqs_total", "counter", "The number of bootstrap failed requests.", None, (), None),
    ("num_transfer_failed_reqs_total", "counter", "The number of transfer failed requests.", None, (), None),
    ("num_prefill_retries_total", "counter", "Total number of prefill retries.", None, (), None),
    ("queue_time_seconds", "histogram", "Histogram of queueing time in seconds.", None, (),
     (0.0, 0.001, 0.005, 0.01, 0.05, 0.1, 0.2, 0.5, 1, 2, 3, 4, 5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 100, 200,
      300, 400, 500, 600, 700, 800, 900, 1000, 1200, 1400, 1600, 1800, 2000, 2500, 3000)),
    ("kv_transfer_speed_gb_s", "histogram", "Histogram of KV cache transfer speed in GB/s.", None, (),
     (0.1, 0.5, 1, 5, 10, 25, 50, 100, 200, 400)),
    ("kv_transfer_latency_ms", "histogram", "Histogram of KV cache transfer latency in ms.", None, (),
     (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)),
    ("kv_transfer_bootstrap_ms", "histogram", "Histogram of KV transfer bootstrap time in ms.", None, (),
     (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500)),
    ("kv_transfer_alloc_ms", "histogram", "Histogram of KV transfer allocation waiting time in ms.", None, (),
     (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500)),
    ("kv_transfer_total_mb", "histogram", "Histogram of KV cache transfer size in MB.", None, (),
     (1, 5, 10, 50, 100, 500, 1000, 5000, 10000)),
)  # fmt: skip

# TokenizerMetricsCollector's default buckets (the same in both versions) and its token-length buckets.
_TTFT = (0.1, 0.2, 0.4, 0.6, 0.8, 1, 2, 4, 6, 8, 10, 20, 40, 60, 80, 100, 200, 400)
_E2E = (0.1, 0.2, 0.4, 0.6, 0.8, 1, 2, 4, 6, 8, 10, 20, 40, 60, 80, 100, 200, 400, 600, 1200, 1800, 2400)
_ITL = (0.002, 0.004, 0.006, 0.008, 0.010, 0.015, 0.020, 0.025, 0.030, 0.035, 0.040, 0.060, 0.080, 0.100, 0.200,
        0.400, 0.600, 0.800, 1.000, 2.000, 4.000, 6.000, 8.000)  # fmt: skip
_TOKENS_0_5_6 = (100, 300, 500, 700, 1000, 1500, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000, 10000, 12000,
                 15000, 20000, 22000, 25000, 30000, 35000, 40000, 66000, 99000, 132000, 300000, 600000, 900000,
                 1100000)  # fmt: skip
_TOKENS_0_5_23 = (100, 300, 500, 700, 1000, 1500, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000, 10000, 12500,
                  15000, 17500, 20000, 22500, 25000, 27500, 30000, 35000, 40000, 60000, 80000, 100000, 200000,
                  300000, 400000, 600000, 800000, 1000000, 1100000)  # fmt: skip

_TOKENIZER_0_5_6 = (
    ("prompt_tokens_total", "counter", "Number of prefill tokens processed.", None, (), None),
    ("generation_tokens_total", "counter", "Number of generation tokens processed.", None, (), None),
    ("num_requests_total", "counter", "Number of requests processed.", None, (), None),
    ("num_aborted_requests_total", "counter", "Number of requests aborted.", None, (), None),
    ("time_to_first_token_seconds", "histogram", "Histogram of time to first token in seconds.", None, (), _TTFT),
    ("inter_token_latency_seconds", "histogram", "Histogram of inter-token latency in seconds.", None, (), _ITL),
    ("e2e_request_latency_seconds", "histogram", "Histogram of End-to-end request latency in seconds", None, (),
     _E2E),
    ("num_retractions", "histogram", "Histogram of retraction counts per request.", None, (),
     (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 40, 50, 75, 100)),
)  # fmt: skip
_TOKENS_HISTOGRAMS_0_5_6 = (  # only with --collect-tokens-histogram
    ("prompt_tokens_histogram", "histogram", "Histogram of prompt token length.", None, (), _TOKENS_0_5_6),
    ("generation_tokens_histogram", "histogram", "Histogram of generation token length.", None, (), _TOKENS_0_5_6),
)
_TOKENIZER_0_5_23 = (
    ("prompt_tokens_total", "counter", "Number of prefill tokens processed.", None, ("is_streaming",), None),
    ("generation_tokens_total", "counter", "Number of generation tokens processed.", None, ("is_streaming",), None),
    ("num_requests_total", "counter", "Number of requests processed.", None, ("is_streaming",), None),
    ("num_aborted_requests_total", "counter", "Number of requests aborted.", None, (), None),
    ("time_to_first_token_seconds", "histogram", "Histogram of time to first token in seconds.", None,
     ("is_streaming",), _TTFT),
    ("inter_token_latency_seconds", "histogram", "Histogram of inter-token latency in seconds.", None, (), _ITL),
    ("request_time_per_output_token_seconds", "histogram",
     "Per-request TPOT in seconds: (finished_time - first_token_time) / (completion_tokens - 1).", None,
     ("is_streaming",), _ITL),
    ("e2e_request_latency_seconds", "histogram", "Histogram of End-to-end request latency in seconds", None,
     ("is_streaming",), _E2E),
    ("prompt_tokens_histogram", "histogram", "Histogram of prompt token length.", None, (), _TOKENS_0_5_23),
    ("uncached_prompt_tokens_histogram", "histogram", "Histogram of uncached (compute) prompt token length.", None,
     (), _TOKENS_0_5_23),
    ("generation_tokens_histogram", "histogram", "Histogram of generation token length.", None, (), _TOKENS_0_5_23),
)  # fmt: skip

# Synthesised KV transfer of a 0.5.23 prefill: DeepSeek-V3.2's MLA cache, about 70 KB per token (fp8, 61 layers).
_KV_MB_PER_TOKEN = 0.07
_STREAMS = ("false", "true")


def float_to_go_string(value) -> str:
    """prometheus_client.utils.floatToGoString: how values and `le` bounds are written."""
    value = float(value)
    if value == math.inf:
        return "+Inf"
    if value == -math.inf:
        return "-Inf"
    if math.isnan(value):
        return "NaN"
    text = repr(value)
    dot = text.find(".")
    if value > 0 and dot > 6:
        mantissa = f"{text[0]}.{text[1:dot]}{text[dot + 1 :]}".rstrip("0.")
        return f"{mantissa}e+0{dot - 1}"
    return text


def _escape(value) -> str:
    return str(value).replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _labels(pairs) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}" if pairs else ""


class _Histogram:
    """One labelled series: per-bucket counts (not cumulative), sum."""

    def __init__(self, bounds):
        self.bounds = tuple(float(b) for b in bounds) + (math.inf,)
        self.counts = [0.0] * len(self.bounds)
        self.sum = 0.0

    def observe(self, value: float, count: float = 1.0, total: float | None = None) -> None:
        for i, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[i] += count
                break
        self.sum += value * count if total is None else total

    def samples(self, name: str, pairs) -> list[str]:
        lines, acc = [], 0.0
        for bound, count in zip(self.bounds, self.counts, strict=True):
            acc += count
            lines.append(
                f"{name}_bucket{_labels([*pairs, ('le', float_to_go_string(bound))])} {float_to_go_string(acc)}"
            )
        lines.append(f"{name}_count{_labels(pairs)} {float_to_go_string(acc)}")
        lines.append(f"{name}_sum{_labels(pairs)} {float_to_go_string(self.sum)}")
        return lines


def _arg(args, *names, default=None):
    for name in names:
        value = getattr(args, name, None)
        if value is not None:
            return value
    return default


class Scheduler:
    """One scheduler process of this node: its ranks and whether it records stats."""

    def __init__(self, tp_rank: int, pp_rank: int, dp_rank: int | None, moe_ep_rank: int, records: bool):
        self.tp_rank, self.pp_rank, self.dp_rank, self.moe_ep_rank = tp_rank, pp_rank, dp_rank, moe_ep_rank
        self.records = records


def schedulers(args, legacy: bool) -> list[Scheduler]:
    """The scheduler processes a node runs (DataParallelController.launch_tensor_parallel_group / launch_dp_attention_
    schedulers): its share of the TP ranks; under DP attention each has dp_rank = tp_rank // attn_tp_size; without it,
    --dp-size > 1 launches that many replicas (dp_rank = the replica), --dp-size 1 none (no dp_rank)."""
    tp = int(_arg(args, "tp_size", default=1) or 1)
    pp = int(_arg(args, "pp_size", default=1) or 1)
    dp = int(_arg(args, "dp_size", default=1) or 1)
    nnodes = int(_arg(args, "nnodes", default=1) or 1)
    node = int(_arg(args, "node_rank", default=0) or 0)
    if legacy:
        attn_dp = dp if getattr(args, "enable_dp_attention", False) else 1
        replicas = 1 if attn_dp > 1 else dp
    else:
        attn_dp = int(_arg(args, "attn_dp_size", default=1) or 1)
        replicas = dp
    attn_tp = max(tp // attn_dp, 1)
    ep = tp if _arg(args, "moe_a2a_backend", default="none") in ("deepep", "mooncake") else None
    ep = ep or int(_arg(args, "ep_size", "expert_parallel_size", default=1) or 1)
    pp_per_node, nodes_per_pp = max(pp // nnodes, 1), max(nnodes // pp, 1)
    tp_per_node = max(tp // nodes_per_pp, 1)
    pp_ranks = range(pp_per_node * (node // nodes_per_pp), pp_per_node * (node // nodes_per_pp + 1))
    tp_ranks = range(tp_per_node * (node % nodes_per_pp), tp_per_node * (node % nodes_per_pp + 1))
    everyone = bool(getattr(args, "enable_metrics_for_all_schedulers", False))
    found = []
    for replica in range(replicas):
        for pp_rank in pp_ranks:
            for tp_rank in tp_ranks:
                if attn_dp > 1:
                    dp_rank, attn_tp_rank = tp_rank // attn_tp, tp_rank % attn_tp
                else:
                    dp_rank, attn_tp_rank = (replica if replicas > 1 else None), tp_rank
                moe_ep_rank = tp_rank // max(tp // max(ep, 1), 1)
                found.append(Scheduler(tp_rank, pp_rank, dp_rank, moe_ep_rank, attn_tp_rank == 0 or everyone))
    return found


class Metrics:
    """What one stand-in process shows on /metrics, updated by the requests it answers."""

    def __init__(self, engine, legacy: bool):
        self.engine = engine
        self.legacy = legacy
        args = engine.args
        self.lock = threading.Lock()
        self.pid = str(os.getpid())
        self.schedulers = [s for s in schedulers(args, legacy) if s.records]
        model = engine.served_model_name
        role = engine.role
        engine_type = {"prefill": "prefill", "decode": "decode"}.get(role, "unified")
        extra = getattr(args, "extra_metric_labels", None) if not legacy else None
        extra = list(extra.items()) if isinstance(extra, dict) else []
        priority = [("priority", "")] if getattr(args, "enable_priority_scheduling", False) and not legacy else []
        custom = [(label, "") for label in (getattr(args, "tokenizer_metrics_allowed_custom_labels", None) or [])]
        if legacy:
            self.tokenizer_labels = [("model_name", model), *custom]
            self.scheduler_families = _SCHEDULER_0_5_6
            self.tokenizer_families = _TOKENIZER_0_5_6
            if getattr(args, "collect_tokens_histogram", False):
                self.tokenizer_families += _TOKENS_HISTOGRAMS_0_5_6
        else:
            self.tokenizer_labels = [("model_name", model), ("engine_type", engine_type), *priority, *custom, *extra]
            self.scheduler_families = _SCHEDULER_0_5_23
            self.tokenizer_families = _TOKENIZER_0_5_23
        scheduler_type = "unified" if legacy else ("dynamic" if getattr(args, "enable_pd_role_switch", False) else
                                                   engine_type)  # fmt: skip
        self.scheduler_labels = []
        for s in self.schedulers:
            pairs = [("model_name", model), ("engine_type", scheduler_type), ("tp_rank", s.tp_rank),
                     ("pp_rank", s.pp_rank)]  # fmt: skip
            if not legacy:
                pairs += [("moe_ep_rank", s.moe_ep_rank), *priority]
            if s.dp_rank is not None:
                pairs.append(("dp_rank", s.dp_rank))
            self.scheduler_labels.append(pairs + extra)
        buckets = {
            "time_to_first_token_seconds": getattr(args, "bucket_time_to_first_token", None),
            "inter_token_latency_seconds": getattr(args, "bucket_inter_token_latency", None),
            "e2e_request_latency_seconds": getattr(args, "bucket_e2e_request_latency", None),
        }
        self.counters: dict[tuple, float] = {}
        self.histograms: dict[tuple, _Histogram] = {}
        for name, kind, _help, _mode, extra_labels, bounds in self.tokenizer_families:
            bounds = buckets.get(name) or bounds
            for stream in _STREAMS if "is_streaming" in extra_labels else (None,):
                key = (name, stream)
                if kind == "counter":
                    self.counters[key] = 0.0
                elif kind == "histogram":
                    self.histograms[key] = _Histogram(bounds)
        for name, kind, _help, _mode, _extra, bounds in self.scheduler_families:
            for index in range(len(self.schedulers)):
                if kind == "counter":
                    self.counters[(name, index)] = 0.0
                elif kind == "histogram":
                    self.histograms[(name, index)] = _Histogram(bounds)
        self.recent: list[tuple[float, int]] = []  # (time, generated tokens): gen_throughput
        self.kv_last = {"kv_transfer_speed_gb_s": 0.0, "kv_transfer_latency_ms": 0.0}

    # -- what requests do ---------------------------------------------------------------------------------------------

    def aborted(self) -> None:
        with self.lock:
            self.counters[("num_aborted_requests_total", None)] += 1

    def bootstrap_failed(self) -> None:
        if self.schedulers:
            with self.lock:
                self.counters[("num_bootstrap_failed_reqs_total", 0)] += 1

    def finished(self, prompt_tokens: int, completion_tokens: int, started_at: float, stream: bool) -> None:
        now = time.time()
        e2e = max(now - started_at, 0.0)
        ttft = e2e  # the stand-in produces its answer at once, after the configured latency
        prefill = self.engine.role == "prefill"
        streaming = ("true" if stream else "false") if not self.legacy else None
        with self.lock:
            for name, value in (("prompt_tokens_total", prompt_tokens), ("generation_tokens_total", completion_tokens),
                                ("num_requests_total", 1)):  # fmt: skip
                self.counters[(name, streaming)] += value
            if not prefill:  # PD prefill workers never observe TTFT, nor what follows from it
                self.histograms[("time_to_first_token_seconds", streaming)].observe(ttft)
                if stream and completion_tokens > 1:
                    interval = max(e2e - ttft, 0.0)
                    itl = self.histograms[("inter_token_latency_seconds", None)]
                    itl.observe(interval / (completion_tokens - 1), completion_tokens - 1, interval)
                if not self.legacy and completion_tokens > 1:
                    tpot = (e2e - ttft) / (completion_tokens - 1)
                    self.histograms[("request_time_per_output_token_seconds", streaming)].observe(tpot)
            self.histograms[("e2e_request_latency_seconds", streaming)].observe(e2e)
            if self.legacy:
                self.histograms[("num_retractions", None)].observe(0)
            for name, value in (("prompt_tokens_histogram", prompt_tokens),
                                ("uncached_prompt_tokens_histogram", prompt_tokens),
                                ("generation_tokens_histogram", completion_tokens)):  # fmt: skip
                if (name, None) in self.histograms:
                    self.histograms[(name, None)].observe(value)
            if self.schedulers:
                self.histograms[("queue_time_seconds", 0)].observe(0.0)
                if prefill:
                    latency_ms = max(e2e * 1000.0, 0.1)
                    total_mb = prompt_tokens * _KV_MB_PER_TOKEN
                    speed = total_mb / 1000.0 / (latency_ms / 1000.0)
                    self.kv_last = {"kv_transfer_speed_gb_s": speed, "kv_transfer_latency_ms": latency_ms}
                    if not self.legacy:
                        self.histograms[("kv_transfer_latency_ms", 0)].observe(latency_ms)
                        self.histograms[("kv_transfer_total_mb", 0)].observe(total_mb)
                        self.histograms[("kv_transfer_speed_gb_s", 0)].observe(speed)
                elif self.engine.role == "decode" and not self.legacy:
                    self.histograms[("kv_transfer_bootstrap_ms", 0)].observe(0.0)
                    self.histograms[("kv_transfer_alloc_ms", 0)].observe(0.0)
            self.recent.append((now, completion_tokens))

    # -- exposition ---------------------------------------------------------------------------------------------------

    def _gauges(self, index: int) -> dict[str, float]:
        """The scheduler's gauges. Requests run on the node's first recording scheduler (as /v1/loads says)."""
        engine = self.engine
        max_tokens = engine.context_len * 4
        page = int(getattr(engine.args, "page_size", None) or 1)
        values = {
            "max_total_num_tokens": max_tokens,
            "page_size": page,
            "num_pages": max_tokens // page,
            "context_len": engine.context_len,
        }
        if index != 0:
            return values
        now = time.time()
        with engine.lock:
            running = engine.running
        self.recent = [(t, n) for t, n in self.recent if now - t <= 10.0]
        used = running * 64
        values.update({
            "num_running_reqs": running,
            "num_used_tokens": used,
            "kv_used_tokens": used,
            "kv_available_tokens": max_tokens - used,
            "token_usage": round(used / max_tokens, 2) if max_tokens else 0.0,
            "full_token_usage": round(used / max_tokens, 2) if max_tokens else 0.0,
            "gen_throughput": 0.0 if engine.role == "prefill" else sum(n for _, n in self.recent) / 10.0,
            "num_prefill_inflight_queue_reqs": running if engine.role == "prefill" else 0,
            **(self.kv_last if self.legacy else {}),
        })  # fmt: skip
        return values

    def text(self) -> str:
        """The exposition text (this node's schedulers; the tokenizer's families on node rank 0 only)."""
        lines: list[str] = []
        with self.lock:
            families = list(self.scheduler_families)
            if self.engine.rank == 0:
                families += list(self.tokenizer_families)
            gauges = [self._gauges(i) for i in range(len(self.schedulers))]
            for name, kind, help_text, mode, extra_labels, _bounds in families:
                scheduler = any(name == f[0] for f in self.scheduler_families)
                if scheduler and not self.schedulers:
                    continue
                full = "sglang:" + name
                family = full[: -len("_total")] if kind == "counter" and full.endswith("_total") else full
                lines += [f"# HELP {family} {help_text}", f"# TYPE {family} {kind}"]
                if scheduler:
                    series = [((name, i), self.scheduler_labels[i]) for i in range(len(self.schedulers))]
                else:
                    streams = _STREAMS if "is_streaming" in extra_labels else (None,)
                    series = [((name, s), self.tokenizer_labels + ([("is_streaming", s)] if s else []))
                              for s in streams]  # fmt: skip
                for key, pairs in series:
                    if kind == "gauge":
                        value = gauges[key[1]].get(name, 0.0)
                        pid = [("pid", self.pid)] if mode == "all" else []
                        lines.append(f"{full}{_labels([*pairs, *pid])} {float_to_go_string(value)}")
                    elif kind == "counter":
                        lines.append(f"{full}{_labels(pairs)} {float_to_go_string(self.counters[key])}")
                    else:
                        lines += self.histograms[key].samples(full, pairs)
        return "\n".join(lines) + "\n"
