"""SGLang flag dialects: how each supported SGLang version spells the recipe.

Profiles write options the way the published recipe does (SGLang 0.5.6.post2). A `Dialect` holds the rules that
turn that spelling into what one SGLang version's own parser accepts: keep, rename, change a value, or drop
(always with the reason and the source line in that version's wheel). Every rule is checked by the tests, which
parse the result with that version's `ServerArgs.add_cli_args` parser.

Adding a version: copy the newest dialect, run the parser tests against the new wheel, add a rule per failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pdfleet.options import Opt


@dataclass(frozen=True)
class Rule:
    """One translation from the recipe's spelling to a version's spelling."""

    flag: str  # the recipe's flag
    action: str  # "rename" (same values), "value" (same flag), "replace" (new flag and values), "drop"
    reason: str
    source: str  # where in that version's wheel the change can be read
    to: str | None = None  # new flag (rename, replace)
    values: dict = field(default_factory=dict, hash=False)  # old value -> new value ("value")
    to_values: tuple[str, ...] = ()  # the new flag's values ("replace")
    only_with: str | None = None  # apply only when this recipe flag is also present

    def apply(self, opt: Opt) -> list[Opt]:
        if self.action == "drop":
            return []
        if self.action == "rename":
            return [Opt(self.to, opt.values)]
        if self.action == "value":
            return [Opt(opt.flag, tuple(self.values.get(v, v) for v in opt.values))]
        if self.action == "replace":
            return [Opt(self.to, self.to_values)]
        raise ValueError(f"unknown rule action {self.action!r}")


@dataclass(frozen=True)
class Dialect:
    version: str
    rules: tuple[Rule, ...]
    cache_vars: tuple[str, ...]  # environment that points this version's DeepGEMM cache at a directory
    # Where rank 0 reports its queues (requests running and waiting per DP rank): a drain waits for them to empty.
    load_path: str = "/v1/loads"
    notes: str = ""

    def spell(self, opts: list[Opt]) -> list[str]:
        present = {o.flag for o in opts}
        argv: list[str] = []
        for opt in opts:
            rule = self.rule_for(opt.flag, present)
            for out in rule.apply(opt) if rule else [opt]:
                argv += out.argv()
        return argv

    def rule_for(self, flag: str, present: set[str]) -> Rule | None:
        for rule in self.rules:
            if rule.flag == flag and (rule.only_with is None or rule.only_with in present):
                return rule
        return None

    def cache_env(self, deep_gemm_dir: str) -> dict[str, str]:
        env = {}
        for var in self.cache_vars:
            env[var] = deep_gemm_dir
        return env


# SGLang 0.5.6.post2 (2025-12-11): the recipe's own version. Spelled as written.
V0_5_6_POST2 = Dialect(
    version="0.5.6.post2",
    rules=(),
    # SGLang copies SGLANG_DG_CACHE_DIR into DeepGEMM's DG_JIT_CACHE_DIR at import, overriding it
    # (sglang/srt/layers/deep_gemm_wrapper/compile_utils.py:31-34), so that is the one to set.
    cache_vars=("SGLANG_DG_CACHE_DIR",),
    # GET /get_load: one {dp_rank, num_reqs, num_waiting_reqs, num_tokens} per DP rank, num_reqs counting the
    # waiting ones too (sglang/srt/entrypoints/http_server.py:564, managers/scheduler_metrics_mixin.py:400-426).
    load_path="/get_load",
)

_W23 = "sglang 0.5.23 wheel:"

# SGLang 0.5.23 (2026-10-30): the newest release, the default. Each rule was found by running the recipe through
# 0.5.23's own parser and reading the wheel (paths relative to its root; fields/ = sglang/srt/arg_groups/fields/).
V0_5_23 = Dialect(
    version="0.5.23",
    rules=(
        Rule(
            "--tp",
            "rename",
            to="--tp-size",
            reason="there is no --tp option: it parses only as an abbreviation of --tp-size, which breaks the day "
            "another --tp... flag appears (as --cuda-graph-bs did)",
            source=f"{_W23} fields/parallel.py:45",
        ),
        Rule(
            "--dp",
            "rename",
            to="--attn-dp-size",
            only_with="--enable-dp-attention",
            reason="--dp-size now counts model replicas; '--dp-size N --enable-dp-attention' is deprecated and "
            "resolves to attn_dp_size=N, dp_size=1, and --dp-size > 1 beside it is refused",
            source=f"{_W23} fields/parallel.py:73-90, arg_groups/parallel_hook.py:39-61,287-292",
        ),
        Rule(
            "--enable-dp-attention",
            "drop",
            reason="deprecated (DeprecatedStoreTrueAction, removal after 2026-12-31): --attn-dp-size > 1 is DP "
            "attention",
            source=f"{_W23} fields/parallel.py:192-194, sglang/srt/server_args.py:416-424",
        ),
        Rule(
            "--load-balance-method",
            "value",
            values={"round_robin": "follow_bootstrap_room"},
            reason="in PD mode the old round_robin dispatched by bootstrap room; that is now follow_bootstrap_room, "
            "while round_robin became a plain counter (parses, but changes behaviour)",
            source=f"{_W23} fields/parallel.py:91-103, sglang/srt/managers/data_parallel_controller.py:880-910",
        ),
        Rule(
            "--enable-expert-distribution-metrics",
            "replace",
            to="--expert-balancedness-report-mode",
            to_values=("server_log",),
            reason="removed; server_log records expert statistics the same way (recorder mode stat, buffer 1000) "
            "and logs the same [Expert Balancedness] line",
            source=f"{_W23} fields/exec_.py:943-946, arg_groups/parallel_hook.py:794-815",
        ),
        Rule(
            "--prefill-round-robin-balance",
            "drop",
            reason="removed: prefill publishes its load-balance method at bootstrap and decode derives the prefill "
            "DP rank from it (bootstrap_room % dp), always on",
            source=f"{_W23} sglang/srt/disaggregation/decode.py:878-895, disaggregation/common/conn.py:1601",
        ),
        Rule(
            "--cuda-graph-bs",
            "rename",
            to="--cuda-graph-bs-decode",
            reason="split into --cuda-graph-bs-decode and --cuda-graph-bs-prefill, so the old flag is an ambiguous "
            "prefix; the recipe's list is the decode capture list (DeepEP normal disables prefill graphs)",
            source=f"{_W23} fields/exec_.py:640-647, arg_groups/cuda_graph_hook.py:78-79",
        ),
        Rule(
            "--attention-backend",
            "value",
            values={"nsa": "dsa"},
            reason="'nsa' is a deprecated alias of 'dsa' (DeprecationWarning when the backend is built)",
            source=f"{_W23} arg_groups/choices.py:74-75, sglang/srt/layers/attention/attention_registry.py:166-174",
        ),
        Rule(
            "--collect-tokens-histogram",
            "drop",
            reason="removed: token histograms are always collected when --enable-metrics is on",
            source=f"{_W23} sglang/srt/observability/metrics_collector.py:1908-1931",
        ),
    ),
    # SGLANG_DG_CACHE_DIR still wins over the new default $SGLANG_CACHE_DIR/deep_gemm.
    cache_vars=("SGLANG_DG_CACHE_DIR",),
    # /get_load is gone; GET /v1/loads: {"loads": [{dp_rank, num_running_reqs, num_waiting_reqs, ...}]}
    # (sglang/srt/entrypoints/v1_loads.py:96).
    load_path="/v1/loads",
)

DIALECTS: dict[str, Dialect] = {d.version: d for d in (V0_5_6_POST2, V0_5_23)}
DEFAULT_VERSION = "0.5.23"


def translation_table() -> str:
    """The translations of every dialect as a Markdown table (docs/dialects.md is generated from it)."""
    lines = ["| SGLang | recipe (0.5.6.post2) | becomes | why | source |", "| --- | --- | --- | --- | --- |"]
    for dialect in DIALECTS.values():
        for rule in dialect.rules:
            if rule.action == "rename":
                becomes = f"`{rule.to}`"
            elif rule.action == "value":
                becomes = ", ".join(f"`{a}` -> `{b}`" for a, b in rule.values.items())
            elif rule.action == "replace":
                becomes = f"`{' '.join((rule.to, *rule.to_values))}`"
            else:
                becomes = "dropped"
            condition = f" (with `{rule.only_with}`)" if rule.only_with else ""
            lines.append(
                f"| {dialect.version} | `{rule.flag}`{condition} | {becomes} | {rule.reason} | {rule.source} |"
            )
    return "\n".join(lines) + "\n"
