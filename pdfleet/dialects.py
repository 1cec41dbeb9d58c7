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
    action: str  # "rename", "value", "drop"
    reason: str
    source: str  # where in that version's wheel the change can be read
    to: str | None = None  # new flag (rename)
    values: dict = field(default_factory=dict, hash=False)  # old value -> new value ("value")
    only_with: str | None = None  # apply only when this recipe flag is also present

    def apply(self, opt: Opt) -> list[Opt]:
        if self.action == "drop":
            return []
        if self.action == "rename":
            return [Opt(self.to, opt.values)]
        if self.action == "value":
            return [Opt(opt.flag, tuple(self.values.get(v, v) for v in opt.values))]
        raise ValueError(f"unknown rule action {self.action!r}")

    def describe(self) -> str:
        if self.action == "rename":
            return f"{self.flag} -> {self.to}"
        if self.action == "value":
            return f"{self.flag} " + ", ".join(f"{a} -> {b}" for a, b in self.values.items())
        return f"{self.flag} dropped"


@dataclass(frozen=True)
class Dialect:
    version: str
    rules: tuple[Rule, ...]
    cache_vars: tuple[str, ...]  # environment that points this version's DeepGEMM cache at a directory
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
    # (sglang/srt/layers/deep_gemm_wrapper/compile_utils.py), so that is the one to set.
    cache_vars=("SGLANG_DG_CACHE_DIR",),
)

_W23 = "sglang 0.5.23 wheel"

# SGLang 0.5.23 (2026-10-30): the newest release, the default.
V0_5_23 = Dialect(
    version="0.5.23",
    rules=(
        Rule(
            "--dp",
            "rename",
            to="--attn-dp-size",
            only_with="--enable-dp-attention",
            reason="DP attention has its own size flag; '--dp N --enable-dp-attention' is deprecated and "
            "resolves to attn_dp_size=N, dp_size=1",
            source=f"{_W23}: sglang/srt/server_args.py (deprecated enable_dp_attention)",
        ),
        Rule(
            "--enable-dp-attention",
            "drop",
            reason="deprecated switch: a DP-attention size > 1 enables it",
            source=f"{_W23}: sglang/srt/arg_groups/fields/parallel.py (DeprecatedStoreTrueAction)",
        ),
        Rule(
            "--attention-backend",
            "value",
            values={"nsa": "dsa"},
            reason="'nsa' is a deprecated alias of 'dsa'",
            source=f"{_W23}: sglang/srt/arg_groups/choices.py ATTENTION_BACKEND_CHOICES",
        ),
        Rule(
            "--cuda-graph-bs",
            "rename",
            to="--cuda-graph-bs-decode",
            reason="split into --cuda-graph-bs-decode and --cuda-graph-bs-prefill; the old prefix is ambiguous",
            source=f"{_W23}: sglang/srt/arg_groups/fields/exec_.py",
        ),
        Rule("--enable-expert-distribution-metrics", "drop", reason="removed", source=f"{_W23}"),
        Rule("--prefill-round-robin-balance", "drop", reason="removed", source=f"{_W23}"),
        Rule("--collect-tokens-histogram", "drop", reason="removed", source=f"{_W23}"),
    ),
    cache_vars=("SGLANG_DG_CACHE_DIR",),
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
            else:
                becomes = "dropped"
            condition = f" (with `{rule.only_with}`)" if rule.only_with else ""
            lines.append(
                f"| {dialect.version} | `{rule.flag}`{condition} | {becomes} | {rule.reason} | {rule.source} |"
            )
    return "\n".join(lines) + "\n"
