"""`pdfleet bench`, the pure part: the published scenarios and figures, the bench_serving command line of each
scenario for this inventory, bench_serving's results read back, the comparison table, the JSON document and the
chart. No host, no network; pdfleet/bench.py runs the plan through deploys/bench.py.

The reference is GPUStack's performance-lab study of DeepSeek-V3.2 on 8 x H200 (PUBLISHED below, every figure
copied from the page's result blocks of the optimised SGLang configuration). They measured with vLLM's
`vllm bench serve`, all prompts sent at once (rate unlimited), "Total TPS" = (input + output tokens) / duration.
pdfleet measures with SGLang's own `sglang.bench_serving` (pdfleet/benchclient.py pins it), from the router's node
against the router's local URL, so every request takes the PD path a client's takes. How each scenario maps onto
SGLang's tool, and why (one line per flag in `scenario_argv`):

* random scenarios: `--dataset-name random-ids`: each prompt the sequence (offset + i + j) % vocab_size of token
  ids, decoded, exactly vLLM's `random` dataset (vllm/benchmarks/datasets.py); SGLang's own `random` samples text
  from ShareGPT instead (`--random-prompts sharegpt` picks that). `--random-range-ratio 1`: fixed lengths (SGLang's
  default 0.0 draws lengths uniformly from [1, len]; vLLM's 0.0 means fixed). bench_serving ignores EOS by default,
  so every request generates its full output length, as every published random run did (the published output
  totals are exact multiples).
* ShareGPT: `--disable-ignore-eos` (vLLM honours EOS: the published output total varies run to run),
  `--sharegpt-context-len 2048` (vLLM keeps prompts <= 1024 and prompt + output <= 2048 tokens; SGLang can only
  bound the sum). The samples still differ: another shuffle, another filter, so totals do not match exactly.
* `--request-rate inf`, no `--max-concurrency`: every prompt at once, as published. `--seed 42` everywhere.
* `--backend sglang-oai-chat`: /v1/chat/completions, streamed, as vLLM's `openai-chat`.
"""

from __future__ import annotations

import json
import math
import re
import shlex
from dataclasses import asdict, dataclass, field

from pdfleet import netaddr
from pdfleet.apikeys import KEY_FILE
from pdfleet.benchclient import CLIENT_VERSION, DATASET, RUNNER, STATE_DIR, VENV
from pdfleet.cluster import Cluster
from pdfleet.serving import ServingPlan

SOURCE = {
    "title": "Optimizing DeepSeek-V3.2 Throughput on NVIDIA H200 GPUs (GPUStack performance lab)",
    "url": "https://docs.gpustack.ai/latest/performance-lab/deepseek-v3.2/h200",
    "file": "gpustack/gpustack docs/performance-lab/deepseek-v3.2/h200.md @ 1f37f1b8",
    "configuration": "the page's optimised SGLang command: --tp-size 8 --dp-size 8 --enable-dp-attention "
    "--reasoning-parser deepseek-v3 --tool-call-parser deepseekv32 --context-length=32768 "
    "--attention-backend nsa --nsa-prefill-backend fa3 --nsa-decode-backend fa3",
}
# What the published figures were measured on, item by item (setup_differences() puts this run beside it).
PUBLISHED_SETUP = {
    "hardware": "8 x H200 SXM, one node",
    "serving": "one SGLang 0.5.6.post2 server: TP8, DP8 attention, no PD, no MTP, context 32768, NSA fa3/fa3",
    "entry point": "the server's own port, no router",
    "client": "vLLM `vllm bench serve` (vLLM v0.13.0), backend openai-chat; where it ran is not said",
    "random prompts": "vLLM `random`: token-id sequences, fixed lengths",
    "ShareGPT sample": "vLLM: prompt <= 1024 and prompt + output <= 2048 tokens, seed 0, EOS honoured",
    "prompts": "as each scenario says (1000, 500 or 100), all at once",
}
PUBLISHED_GPUS = 8  # the published node: a per-GPU ratio is RATIO x 8 / this cluster's serving GPUs
DEFAULT_SEED = 42
RANDOM_PROMPTS = ("ids", "sharegpt")
# Beyond this difference between the output tokens bench_serving counts (the requested lengths unless the server
# streams usage) and those its tokenizer finds in the text, the table says so.
RETOKENIZED_TOLERANCE = 0.10


@dataclass(frozen=True)
class Latency:
    """Milliseconds: mean, median (p50) and 99th percentile."""

    mean: float
    p50: float
    p99: float


@dataclass(frozen=True)
class Figures:
    """What one bench run reports (published, or read from bench_serving's JSONL)."""

    completed: int
    duration_s: float
    input_tokens: int
    output_tokens: int
    request_throughput: float
    output_throughput: float
    total_throughput: float  # (input + output tokens) / duration: GPUStack's "Total TPS"
    ttft: Latency
    tpot: Latency
    itl: Latency


@dataclass(frozen=True)
class Scenario:
    name: str
    label: str  # the published page's name of the case
    dataset: str  # sharegpt or random
    prompts: int
    input_len: int | None
    output_len: int | None
    published: Figures
    default: bool = True

    @property
    def described(self) -> str:
        """The page's name of the case and its lengths: "Medium Prompt, 2000 in / 100 out"."""
        if self.input_len is None:
            return f"{self.label}, the dataset's lengths"
        return f"{self.label}, {self.input_len} in / {self.output_len} out"


def _figures(completed, duration, tokens_in, tokens_out, req, out, total, ttft, tpot, itl) -> Figures:
    return Figures(completed, duration, tokens_in, tokens_out, req, out, total, Latency(*ttft), Latency(*tpot),
                   Latency(*itl))  # fmt: skip


# The published result blocks (optimised SGLang), in the page's order of cases. The short case is on the page but
# not in issue 16's list: available with --scenarios, not run by default.
SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "sharegpt", "ShareGPT", "sharegpt", 1000, None, None,
        _figures(1000, 46.37, 219111, 196786, 21.56, 4243.46, 8968.32,
                 (5303.50, 5145.47, 9366.93), (203.05, 85.23, 1399.48), (74.03, 53.86, 177.03)),
    ),
    Scenario(
        "medium", "Medium Prompt", "random", 500, 2000, 100,
        _figures(500, 37.89, 1000000, 50000, 13.20, 1319.64, 27712.54,
                 (18696.78, 18939.89, 32138.14), (192.24, 189.20, 349.96), (189.18, 55.05, 219.74)),
    ),
    Scenario(
        "long", "Long Prompt", "random", 500, 4000, 200,
        _figures(500, 102.21, 2000000, 100000, 4.89, 978.37, 20545.67,
                 (44019.81, 40806.24, 90171.38), (177.95, 161.14, 321.10), (177.57, 49.55, 224.52)),
    ),
    Scenario(
        "very-long", "Very Long Prompt", "random", 100, 32000, 100,
        _figures(100, 160.14, 3200000, 10000, 0.62, 62.45, 20045.18,
                 (83964.72, 88265.70, 157005.30), (246.26, 229.67, 514.42), (244.63, 33.21, 898.58)),
    ),
    Scenario(
        "generation-heavy", "Generation-Heavy Prompt", "random", 100, 1000, 2000,
        _figures(100, 80.99, 100000, 200000, 1.23, 2469.32, 3703.98,
                 (2103.54, 2216.52, 3514.77), (39.45, 39.40, 40.17), (40.56, 38.90, 43.63)),
    ),
    Scenario(
        "short", "Short Prompt", "random", 1000, 128, 4,
        _figures(984, 7.13, 125952, 3936, 138.09, 552.34, 18227.38,
                 (4441.81, 4685.89, 6735.22), (776.55, 714.97, 1659.07), (465.93, 59.97, 4564.16)),
        default=False,
    ),
)  # fmt: skip
BY_NAME = {s.name: s for s in SCENARIOS}
DEFAULT_SCENARIOS = tuple(s.name for s in SCENARIOS if s.default)


class BenchError(ValueError):
    """A bench option that cannot work (named in the message); nothing was contacted."""


@dataclass(frozen=True)
class Options:
    scenarios: tuple[str, ...] = DEFAULT_SCENARIOS
    prompts_scale: float = 1.0  # < 1: a smoke run (a first check); its ratios are not comparable
    dataset_path: str = DATASET  # the ShareGPT file on the router's node
    random_prompts: str = "ids"  # ids: vLLM's token-id prompts; sharegpt: SGLang's `random` (ShareGPT text)
    seed: int = DEFAULT_SEED


def options(
    scenarios: str | None = None,
    prompts_scale: float = 1.0,
    dataset_path: str | None = None,
    random_prompts: str = "ids",
    seed: int = DEFAULT_SEED,
) -> Options:
    """Validated options from the command line's spelling (scenarios comma-separated, or "all")."""
    if scenarios in (None, ""):
        names = DEFAULT_SCENARIOS
    elif scenarios == "all":
        names = tuple(BY_NAME)
    else:
        names = tuple(dict.fromkeys(n.strip() for n in scenarios.split(",") if n.strip()))
        unknown = [n for n in names if n not in BY_NAME]
        if unknown or not names:
            raise BenchError(
                f"--scenarios: found {', '.join(unknown) or repr(scenarios)}, expected names from "
                f"{', '.join(BY_NAME)} (or all), comma-separated"
            )
    if not 0 < prompts_scale <= 1:
        raise BenchError(f"--num-prompts-scale: found {prompts_scale}, expected a number in (0, 1]")
    if random_prompts not in RANDOM_PROMPTS:
        raise BenchError(f"--random-prompts: found {random_prompts!r}, expected one of {', '.join(RANDOM_PROMPTS)}")
    path = dataset_path or DATASET
    if not path.startswith("/"):
        raise BenchError(f"--dataset-path: found {path!r}, expected an absolute path on the router's node")
    return Options(names, prompts_scale, path, random_prompts, seed)


def scaled_prompts(scenario: Scenario, scale: float) -> int:
    return max(1, round(scenario.prompts * scale))


def needs_dataset(scenario: Scenario, opts: Options) -> bool:
    return scenario.dataset == "sharegpt" or opts.random_prompts == "sharegpt"


@dataclass(frozen=True)
class ScenarioRun:
    name: str
    label: str
    prompts: int
    argv: tuple[str, ...]  # bench_serving's command line on the router's node
    jsonl: str  # its --output-file there
    log: str  # the runner's copy of its output there


@dataclass(frozen=True)
class BenchPlan:
    cluster: str
    run_id: str
    node: str  # the router's node: the client runs there
    router_url: str  # the router's local URL on that node
    served_model: str
    tokenizer: str  # model.path on the router's node
    dataset_path: str | None  # the ShareGPT file, when a scenario reads it
    env: dict[str, str]
    runs: tuple[ScenarioRun, ...]
    options: Options
    python: str = f"{VENV}/bin/python3"
    runner: str = RUNNER
    run_dir: str = ""
    gpus: int = 0  # the GPUs of the serving instances (the published node had PUBLISHED_GPUS)
    key_file: str = ""  # with API keys: the router node's key file, the runner hands it over as OPENAI_API_KEY

    def command(self, run: ScenarioRun) -> list[str]:
        """The whole command the router's node runs for one scenario: the runner, the environment, the client."""
        env = [f"{k}={v}" for k, v in self.env.items()]
        keys = ["--key-file", self.key_file] if self.key_file else []
        return [self.python, self.runner, "--log", run.log, "--fresh", run.jsonl, *keys, "--", "env", *env, *run.argv]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @staticmethod
    def from_json(text: str) -> BenchPlan:
        data = json.loads(text)
        data["runs"] = tuple(ScenarioRun(**{**r, "argv": tuple(r["argv"])}) for r in data["runs"])
        data["options"] = Options(**{**data["options"], "scenarios": tuple(data["options"]["scenarios"])})
        return BenchPlan(**data)


# The client's environment: nothing from a hub (the tokenizer is model.path, the dataset a path), output unbuffered,
# and nothing but the router reachable: every other HTTP request goes to a proxy on the discard port and fails at
# once (bench_serving fetches ShareGPT from the hub by itself when its dataset file is not valid JSON).
_NOWHERE = "http://127.0.0.1:9"
CLIENT_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "PYTHONUNBUFFERED": "1",
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
    "HTTP_PROXY": _NOWHERE,
    "HTTPS_PROXY": _NOWHERE,
    "http_proxy": _NOWHERE,
    "https_proxy": _NOWHERE,
}


def client_env(router_address: str) -> dict[str, str]:
    """CLIENT_ENV for a router reached at `router_address`: an IPv6 router's local URL is http://[::1]:PORT, so ::1
    bypasses the proxy too (urllib and aiohttp compare the bare and the bracketed host with NO_PROXY)."""
    env = dict(CLIENT_ENV)
    if netaddr.is_ipv6(router_address):
        env["NO_PROXY"] = env["no_proxy"] = f"{CLIENT_ENV['NO_PROXY']},::1,[::1]"
    return env


def scenario_argv(
    cluster: Cluster, serving: ServingPlan, scenario: Scenario, opts: Options, prompts: int, jsonl: str, python: str
) -> list[str]:
    model = cluster.model
    argv = [
        python, "-m", "sglang.bench_serving",
        "--backend", "sglang-oai-chat",  # /v1/chat/completions, streamed (vLLM's openai-chat)
        "--base-url", serving.router.local_url,  # the router, from its own node
        "--model", model.path,  # bench_serving reads the tokenizer's config here
        "--served-model-name", model.served_name,  # what requests name
        "--tokenizer", model.path,
        "--num-prompts", str(prompts),
        "--request-rate", "inf",  # every prompt at once; no --max-concurrency
        "--seed", str(opts.seed),
    ]  # fmt: skip
    if scenario.dataset == "sharegpt":
        argv += [
            "--dataset-name", "sharegpt",
            "--dataset-path", opts.dataset_path,
            "--sharegpt-context-len", "2048",  # vLLM's sample: prompt + output <= 2048 tokens
            "--disable-ignore-eos",  # vLLM honours EOS
        ]  # fmt: skip
    else:
        argv += [
            "--dataset-name", "random-ids" if opts.random_prompts == "ids" else "random",
            "--random-input-len", str(scenario.input_len),
            "--random-output-len", str(scenario.output_len),
            "--random-range-ratio", "1",  # fixed lengths (SGLang's default 0.0 draws from [1, len])
        ]  # fmt: skip
        if opts.random_prompts == "sharegpt":
            argv += ["--dataset-path", opts.dataset_path]  # else it downloads ShareGPT for the text
    return argv + ["--output-file", jsonl, "--tag", scenario.name]


def plan(
    cluster: Cluster,
    serving: ServingPlan,
    opts: Options,
    run_id: str,
    *,
    python: str = f"{VENV}/bin/python3",
    runner: str = RUNNER,
    state_dir: str = STATE_DIR,
) -> BenchPlan:
    """Every scenario's command line for this inventory. `python`, `runner` and `state_dir` say where the client,
    the runner and the run's files live on the router's node (pdfleet/benchclient.py's places by default)."""
    run_dir = f"{state_dir.rstrip('/')}/runs/{run_id}"
    runs = []
    for name in opts.scenarios:
        scenario = BY_NAME[name]
        prompts = scaled_prompts(scenario, opts.prompts_scale)
        jsonl = f"{run_dir}/{name}.jsonl"
        argv = scenario_argv(cluster, serving, scenario, opts, prompts, jsonl, python)
        runs.append(ScenarioRun(name, scenario.described, prompts, tuple(argv), jsonl, f"{run_dir}/{name}.log"))
    reads_dataset = any(needs_dataset(BY_NAME[n], opts) for n in opts.scenarios)
    serving_nodes = {m.node for i in cluster.instances for m in i.members}
    return BenchPlan(
        cluster=cluster.name,
        run_id=run_id,
        node=serving.router.host,
        router_url=serving.router.local_url,
        served_model=cluster.model.served_name,
        tokenizer=cluster.model.path,
        dataset_path=opts.dataset_path if reads_dataset else None,
        env=client_env(cluster.node(cluster.router.node).address),
        runs=tuple(runs),
        options=opts,
        python=python,
        runner=runner,
        run_dir=run_dir,
        gpus=sum(cluster.node(n).gpus for n in serving_nodes),
        key_file=KEY_FILE if cluster.security.api_keys else "",
    )


def shell_line(argv) -> str:
    return " ".join(shlex.quote(a) for a in argv)


# -- results -------------------------------------------------------------------------------------------------------


def read_jsonl(text: str) -> dict | None:
    """bench_serving's record: the last JSON line of its --output-file (it appends one per run)."""
    records = [json.loads(line) for line in text.splitlines() if line.strip()]
    return records[-1] if records else None


def measured(record: dict) -> Figures:
    """Figures from a bench_serving 0.5.6.post2 JSONL record."""

    def latency(kind: str) -> Latency:
        return Latency(float(record[f"mean_{kind}_ms"]), float(record[f"median_{kind}_ms"]),
                       float(record[f"p99_{kind}_ms"]))  # fmt: skip

    return Figures(
        completed=int(record["completed"]),
        duration_s=float(record["duration"]),
        input_tokens=int(record["total_input_tokens"]),
        output_tokens=int(record["total_output_tokens"]),
        request_throughput=float(record["request_throughput"]),
        output_throughput=float(record["output_throughput"]),
        total_throughput=float(record["total_throughput"]),
        ttft=latency("ttft"),
        tpot=latency("tpot"),
        itl=latency("itl"),
    )


_SECRET = re.compile(r"(^|_)(api_key|password|secret|token)$|^watermark_key")
# What results.json keeps of the server's /get_server_info (the router answers with its first prefill's).
SERVER_INFO_KEYS = (
    "version", "model_path", "served_model_name", "tp_size", "dp_size", "ep_size", "enable_dp_attention",
    "disaggregation_mode", "speculative_algorithm", "speculative_num_steps", "speculative_num_draft_tokens",
    "attention_backend", "context_length", "max_running_requests", "chunked_prefill_size", "mem_fraction_static",
)  # fmt: skip


def redacted(value):
    """A JSON value with secrets (api keys, passwords, tokens) replaced, and non-finite floats as strings (strict
    JSON: bench_serving writes `Infinity` for the unlimited request rate)."""
    if isinstance(value, dict):
        return {k: ("<redacted>" if _SECRET.search(str(k)) and v else redacted(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redacted(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


@dataclass
class Outcome:
    """What became of one scenario of a run."""

    run: ScenarioRun
    status: str = "not run"  # done, incomplete (some requests failed), failed (no record), not run
    exit_status: int | None = None
    seconds: float | None = None
    record: dict | None = None
    figures: Figures | None = None
    notes: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def scenario(self) -> Scenario:
        return BY_NAME[self.run.name]

    @property
    def ratio(self) -> float | None:
        if self.figures is None or not self.scenario.published.total_throughput:
            return None
        return self.figures.total_throughput / self.scenario.published.total_throughput

    def ratio_per_gpu(self, gpus: int) -> float | None:
        """The ratio per GPU: this run's total per serving GPU / the published total per GPU (8 of them)."""
        ratio = self.ratio
        return None if ratio is None or not gpus else ratio * PUBLISHED_GPUS / gpus


def outcome(run: ScenarioRun, jsonl_text: str | None, exit_status: int | None, seconds: float | None,
            error: str = "", scale: float = 1.0) -> Outcome:  # fmt: skip
    """One scenario's outcome from its JSONL (None when it never ran) and the runner's exit status."""
    result = Outcome(run, exit_status=exit_status, seconds=seconds, error=error)
    record = read_jsonl(jsonl_text) if jsonl_text else None
    if record is None:
        result.status = "not run" if exit_status is None and not error else "failed"
        return result
    result.record = redacted(record)
    figures = result.figures = measured(record)
    result.status = "done" if figures.completed == run.prompts and exit_status in (0, None) else "incomplete"
    if figures.completed < run.prompts:
        result.notes.append(f"{run.prompts - figures.completed} of {run.prompts} requests failed")
    if run.prompts != result.scenario.prompts:
        result.notes.append(f"{run.prompts} of the published {result.scenario.prompts} prompts: ratio not comparable")
    retokenized = record.get("total_output_tokens_retokenized")
    if retokenized is not None and figures.output_tokens:
        off = abs(retokenized - figures.output_tokens) / figures.output_tokens
        if off > RETOKENIZED_TOLERANCE:
            result.notes.append(
                f"output tokens: counted {figures.output_tokens}, the answers' text retokenizes to {retokenized} "
                f"({off:.0%} apart): bench_serving counts the requested lengths when the server streams no usage, "
                "so the output figures are nominal (a server that stopped early, or one that streams no usage)"
            )
    return result


# -- what differed -------------------------------------------------------------------------------------------------


def _flag(args: tuple[str, ...], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args and args.index(flag) + 1 < len(args) else None


def setup_differences(cluster: Cluster, serving: ServingPlan, plan_: BenchPlan) -> list[tuple[str, str, str]]:
    """(item, published, this run) for every item of PUBLISHED_SETUP."""
    serving_nodes = {m.node for i in cluster.instances for m in i.members}
    gpus = sum(cluster.node(n).gpus for n in serving_nodes)
    models = sorted({cluster.node(n).gpu_model for n in serving_nodes})
    instances = ", ".join(
        f"{i.name} ({i.role}, TP{i.tp} DP{i.dp}, {i.nnodes} node{'s' if i.nnodes > 1 else ''})"
        for i in cluster.instances
    )
    heads = [s for s in serving.servers if s.rank == 0]
    spec_algo = sorted({_flag(s.server_args, "--speculative-algorithm") or "none" for s in heads})
    context = sorted({_flag(s.server_args, "--context-length") or "model default" for s in heads})
    attention = sorted({_flag(s.server_args, "--attention-backend") or "default" for s in heads})
    router = cluster.router
    opts = plan_.options
    scaled = [
        f"{r.name} {r.prompts}/{BY_NAME[r.name].prompts}" for r in plan_.runs if r.prompts != BY_NAME[r.name].prompts
    ]
    ours = {
        "hardware": f"{gpus} x {'/'.join(models)} on {len(serving_nodes)} nodes",
        "serving": f"PD, SGLang {cluster.sglang_version}: {instances}; MTP {'/'.join(spec_algo)}, "
        f"context {'/'.join(context)}, attention {'/'.join(attention)}",
        "entry point": f"smg {router.version} PD router on {router.node} "
        f"(prefill {router.prefill_policy}, decode {router.decode_policy}), {plan_.router_url}",
        "client": f"SGLang `sglang.bench_serving` {CLIENT_VERSION}, backend sglang-oai-chat, on the router's node",
        "random prompts": "bench_serving `random-ids`: the same token-id sequences, fixed lengths"
        if opts.random_prompts == "ids"
        else "bench_serving `random`: ShareGPT text cut to fixed lengths",
        "ShareGPT sample": "bench_serving: prompt + output <= 2048 tokens, another shuffle (seed "
        f"{opts.seed}), EOS honoured",
        "prompts": "as published, all at once" if not scaled else "scaled: " + ", ".join(scaled),
    }
    return [(item, PUBLISHED_SETUP[item], ours[item]) for item in PUBLISHED_SETUP]


# -- the table, the document, the chart ----------------------------------------------------------------------------


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _grid(rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for row in rows:
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        out.append("  ".join(cells).rstrip())
    return out


def table(outcomes: list[Outcome], differences: list[tuple[str, str, str]] | None = None, gpus: int = 0) -> str:
    """Per scenario: this run beside the published figures (total and output tokens/s, the ratio of the totals and
    the same per GPU, TTFT, TPOT and ITL p50 and p99 in ms), then the notes and what differed in the setup."""
    head = ["SCENARIO", "", "OK", "TOTAL TOK/S", "RATIO", "PER GPU", "OUT TOK/S", "TTFT P50", "TTFT P99",
            "TPOT P50", "TPOT P99", "ITL P50", "ITL P99"]  # fmt: skip
    rows = [head]
    for o in outcomes:
        p = o.scenario.published
        f = o.figures
        ratio, per_gpu = o.ratio, o.ratio_per_gpu(gpus)
        if f is None:
            rows.append([o.run.name, "this run", o.status, *["-"] * (len(head) - 3)])
        else:
            rows.append([
                o.run.name, "this run", f"{f.completed}/{o.run.prompts}", _num(f.total_throughput),
                "-" if ratio is None else f"{ratio:.2f}x", "-" if per_gpu is None else f"{per_gpu:.2f}x",
                _num(f.output_throughput),
                _num(f.ttft.p50, 1), _num(f.ttft.p99, 1), _num(f.tpot.p50, 1), _num(f.tpot.p99, 1),
                _num(f.itl.p50, 1), _num(f.itl.p99, 1),
            ])  # fmt: skip
        rows.append([
            "", "published", f"{p.completed}/{o.scenario.prompts}", _num(p.total_throughput), "", "",
            _num(p.output_throughput), _num(p.ttft.p50, 1), _num(p.ttft.p99, 1), _num(p.tpot.p50, 1),
            _num(p.tpot.p99, 1), _num(p.itl.p50, 1), _num(p.itl.p99, 1),
        ])  # fmt: skip
    lines = _grid(rows, right=set(range(2, len(head))))
    notes = [f"  {o.run.name}: {note}" for o in outcomes for note in o.notes]
    notes += [f"  {o.run.name}: {o.status}: {o.error}" for o in outcomes if o.error and o.figures is None]
    if notes:
        lines += ["", "notes:", *notes]
    lines += [
        "",
        "TOTAL = (input + output tokens) / duration; RATIO = this run's total / the published total; PER GPU = RATIO"
        f" x {PUBLISHED_GPUS} published GPUs / {gpus or '?'} serving GPUs here; latencies in ms.",
        f"published: {SOURCE['url']} ({SOURCE['file']})",
    ]
    if differences:
        lines += ["", "what differed:"]
        rows = [["ITEM", "PUBLISHED", "THIS RUN"], *[list(d) for d in differences]]
        lines += ["  " + line for line in _grid(rows, right=set())]
    return "\n".join(lines) + "\n"


def document(plan_: BenchPlan, outcomes: list[Outcome], differences: list[tuple[str, str, str]]) -> dict:
    """Everything of a run as one JSON-able object (results.json)."""

    def scenario_entry(o: Outcome) -> dict:
        info = (o.record or {}).get("server_info") or {}
        if isinstance(info, dict) and "decode" in info and isinstance(info["decode"], list) and info["decode"]:
            info = info["decode"][0]
        return {
            "name": o.run.name,
            "label": o.run.label,
            "prompts": o.run.prompts,
            "published_prompts": o.scenario.prompts,
            "status": o.status,
            "exit_status": o.exit_status,
            "seconds": o.seconds,
            "argv": list(o.run.argv),
            "measured": asdict(o.figures) if o.figures else None,
            "published": asdict(o.scenario.published),
            "ratio_total_throughput": o.ratio,
            "ratio_per_gpu": o.ratio_per_gpu(plan_.gpus),
            "notes": o.notes,
            "error": o.error,
            "server_info": {k: info[k] for k in SERVER_INFO_KEYS if isinstance(info, dict) and k in info},
            "raw": {k: v for k, v in (o.record or {}).items() if k != "server_info"} or None,
        }

    return redacted(
        {
            "cluster": plan_.cluster,
            "run_id": plan_.run_id,
            "node": plan_.node,
            "router_url": plan_.router_url,
            "serving_gpus": plan_.gpus,
            "published_gpus": PUBLISHED_GPUS,
            "client": f"sglang.bench_serving {CLIENT_VERSION}",
            "options": asdict(plan_.options),
            "source": SOURCE,
            "setup": [{"item": i, "published": p, "this_run": t} for i, p, t in differences],
            "scenarios": [scenario_entry(o) for o in outcomes],
        }
    )


class ChartUnavailable(RuntimeError):
    """matplotlib is not installed: the chart is optional (pip install 'pdfleet[bench]')."""


def chart(outcomes: list[Outcome], path, title: str) -> None:
    """A PNG: per scenario, this run's total and output token throughput beside the published ones, the ratio of
    the totals over each pair of bars."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ChartUnavailable(
            "no chart: matplotlib is not installed (pip install 'pdfleet[bench]', or matplotlib into this venv)"
        ) from error
    names = [o.run.name for o in outcomes]
    xs = range(len(outcomes))
    width = 0.38
    fig, axes = plt.subplots(1, 2, figsize=(max(8.0, 2.4 * len(outcomes) + 3), 4.8), dpi=110)
    for ax, what, label in ((axes[0], "total_throughput", "total tokens/s"),
                            (axes[1], "output_throughput", "output tokens/s")):  # fmt: skip
        ours = [getattr(o.figures, what) if o.figures else 0.0 for o in outcomes]
        published = [getattr(o.scenario.published, what) for o in outcomes]
        ax.bar([x - width / 2 for x in xs], ours, width, label="this run", color="#2b6cb0")
        ax.bar([x + width / 2 for x in xs], published, width, label="published (8xH200, no PD)", color="#a0aec0")
        ax.set_xticks(list(xs), names, rotation=20, ha="right")
        ax.set_ylabel(label)
        ax.set_title(label)
        ax.grid(axis="y", alpha=0.3)
        values = [v for v in (*ours, *published) if v > 0]
        top = max(values, default=1.0)
        log = len(values) > 1 and top / min(values) > 30  # a smoke run next to the published ones
        if log:
            ax.set_yscale("log")
        for x, o, a, b in zip(xs, outcomes, ours, published, strict=True):
            text = f"{a / b:.2f}x" if b and o.figures else o.status
            ax.text(x, max(a, b) * (1.3 if log else 1) + (0 if log else top * 0.02), text, ha="center",
                    va="bottom", fontsize=8)  # fmt: skip
        if log:
            ax.set_ylim(min(values) / 2, top * 5)
        else:
            ax.set_ylim(0, top * 1.15)
    axes[0].legend(fontsize=8, loc="upper right")
    if any(o.run.prompts != o.scenario.prompts for o in outcomes):
        title += "\n(prompts scaled down: a smoke run, its ratios are not comparable)"
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


def published_markdown() -> str:
    """The published figures as a Markdown table (docs/bench.md holds this text; a test keeps them equal)."""

    def lengths(s: Scenario) -> str:
        return "ShareGPT's own" if s.input_len is None else f"{s.input_len} / {s.output_len}"

    rows = [
        "| scenario | published case | prompts (ok) | input / output tokens | total tok/s | output tok/s "
        "| TTFT p50 / p99 ms | TPOT p50 / p99 ms | ITL p50 / p99 ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in SCENARIOS:
        p = s.published
        rows.append(
            f"| `{s.name}`{'' if s.default else ' (not by default)'} | {s.label} | {s.prompts} ({p.completed}) "
            f"| {lengths(s)} | {p.total_throughput:.2f} | {p.output_throughput:.2f} "
            f"| {p.ttft.p50:.2f} / {p.ttft.p99:.2f} | {p.tpot.p50:.2f} / {p.tpot.p99:.2f} "
            f"| {p.itl.p50:.2f} / {p.itl.p99:.2f} |"
        )
    return "\n".join(rows) + "\n"
