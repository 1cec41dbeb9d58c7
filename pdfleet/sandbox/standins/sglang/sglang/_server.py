"""The stand-in engine's HTTP side: what SGLang 0.5.23's server shows the PD router and health checks.

Node rank 0 (sglang/srt/entrypoints/http_server.py): /health, /health_generate, /ready, /ping, /v1/models,
/v1/models/{model}, /server_info + /get_server_info, /model_info + /get_model_info, /v1/loads, /metrics (only with
--enable-metrics: the real families of this version, sglang/_metrics.py), /flush_cache, POST /generate,
/v1/completions, /v1/chat/completions (streaming too). No /version
(a 200 there makes smg take the worker for vLLM) and no /loads (SGLang has only /v1/loads): both 404 as in SGLang.
Node rank >= 1 (launch_dummy_health_check_server): /health, /health_generate, /ping, and /metrics with
--enable-metrics; everything else 404.
Prefill (--disaggregation-mode prefill, rank 0): the KV bootstrap server on --disaggregation-bootstrap-port
(CommonKVBootstrapServer): GET /health "OK", GET/PUT /route, POST /register_dp_rank, /query_dp_ranks.

Requests in PD mode without a bootstrap_room fail with 400 as SGLang's scheduler fails them; decode checks that the
bootstrap server the request names answers (knob check-bootstrap) the way a real decode fetches the prefill's
layout from it before the KV transfer. Every request is logged as one JSON line (event "request").
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import sys
import threading
import time
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from sglang import __version__
from sglang._metrics import Metrics
from sglang._standin import FAKE_BOOTSTRAP_HOST, jsonable, knob_bool, knob_float, log_event

ANSWER = "This is the SGLang stand-in of the pdfleet sandbox, not a language model."

# What differs between the versions the sandbox speaks (../shared/reference/day2-router-and-runbooks.md §3):
# the prefill's bootstrap query (a 0.5.6.post2 decode asks engine_rank/target_dp_group/target_pp_rank; a 0.5.23
# prefill wants prefill_dp_rank/prefill_cp_rank/target_tp_rank/target_pp_rank and answers 400 "Missing inputs for
# bootstrap server." otherwise, and the other way round), so a mixed pair fails every request; /ready (0.5.23
# only); the load endpoint (/get_load before 0.5.23's /v1/loads).
LEGACY = tuple(int(part) for part in __version__.split(".")[:3]) < (0, 5, 7)
if LEGACY:
    ROUTE_KEYS: tuple[str, ...] = ("engine_rank", "target_dp_group", "target_pp_rank")
else:
    ROUTE_KEYS = ("prefill_dp_rank", "prefill_cp_rank", "target_tp_rank", "target_pp_rank")
LAYOUT_QUERY = "&".join(f"{key}=-1" for key in ROUTE_KEYS)  # what a decode asks first: the prefill's layout
_REDACT = ("api_key", "admin_api_key", "ssl_keyfile_password", "watermark_key", "watermark_key_b")


class StandinError(Exception):
    def __init__(self, status: int, message: str, err_type: str = "BadRequestError"):
        super().__init__(message)
        self.status = status
        self.err_type = err_type


class Engine:
    """State shared by the handlers of one stand-in process."""

    def __init__(self, args, argv: list[str]):
        self.args = args
        self.argv = argv
        self.role = args.disaggregation_mode  # "null" | "prefill" | "decode"
        self.rank = args.node_rank
        self.model_path = args.model_path
        self.served_model_name = args.served_model_name or args.model_path
        self.hf_config = _read_hf_config(args.model_path)
        self.context_len = (
            args.context_length
            or self.hf_config.get("max_position_embeddings")
            or int(knob_float("context-length", 163840))
        )
        self.latency = knob_float("latency-ms", 0) / 1000.0
        self.check_bootstrap = knob_bool("check-bootstrap", True)
        self.bootstrap_timeout = knob_float("bootstrap-timeout", 5)
        self.startup_time = time.time()
        # What SGLang's /health costs: it queues a one-token generation and looks again after a second.
        self.health_seconds = knob_float("health-generate-seconds", 1.0)
        self.health_generation = os.environ.get("SGLANG_ENABLE_HEALTH_ENDPOINT_GENERATION", "true").lower() not in (
            "0",
            "false",
            "no",
            "off",
        )
        self.exiting = False  # SIGTERM: draining, /health answers 503 (tokenizer_manager.gracefully_exit)
        self.unhealthy: str | None = None  # a peer rank was lost: collectives hang (knob peer-loss=hang)
        self.lock = threading.Lock()
        self.running = 0
        self.requests_total = 0
        self.prompt_tokens_total = 0
        self.generation_tokens_total = 0
        self._bootstrap_ok: dict[tuple[str, int], float] = {}
        attn_dp = max(getattr(args, "attn_dp_size", 1) or 1, 1)
        self.dp_size = max(args.dp_size or 1, attn_dp)
        self.attn_tp_size = max((args.tp_size or 1) // self.dp_size, 1) if attn_dp > 1 else (args.tp_size or 1)
        self.prom = Metrics(self, LEGACY)

    # -- descriptions ---------------------------------------------------------------------------------------------

    def server_info(self) -> dict:
        info = {k: jsonable(v) for k, v in sorted(vars(self.args).items())}
        for key in _REDACT:
            if info.get(key):
                info[key] = "<redacted>"
        info["served_model_name"] = self.served_model_name
        info["tokenizer_path"] = self.args.tokenizer_path or self.model_path
        info["dp_size"] = self.dp_size
        info["enable_dp_attention"] = (getattr(self.args, "attn_dp_size", 1) or 1) > 1
        info["launch_command"] = " ".join(["python3", "-m", "sglang.launch_server", *self.argv])
        info["max_total_num_tokens"] = self.context_len * 4
        info["startup_time"] = self.startup_time
        info["internal_states"] = [
            {"dp_rank": r, "avg_spec_accept_length": None, "last_gen_throughput": 0.0} for r in range(self.dp_size)
        ]
        info["version"] = __version__
        info["frontend"] = "python"
        info["standin"] = True
        return info

    def model_info(self) -> dict:
        a = self.args
        return {
            "model_path": self.model_path,
            "served_model_name": self.served_model_name,
            "tokenizer_path": a.tokenizer_path or self.model_path,
            "is_generation": not a.is_embedding,
            "preferred_sampling_params": a.preferred_sampling_params,
            "weight_version": a.weight_version if hasattr(a, "weight_version") else "default",
            "load_format": a.load_format,
            "reasoning_parser": a.reasoning_parser,
            "tool_call_parser": a.tool_call_parser,
            "disaggregation_mode": self.role,
            "has_image_understanding": False,
            "has_audio_understanding": False,
            "model_type": self.hf_config.get("model_type"),
            "architectures": self.hf_config.get("architectures"),
        }

    def models(self) -> dict:
        return {"object": "list", "data": [self.model_card(self.served_model_name)]}

    def model_card(self, name: str) -> dict:
        return {
            "id": name,
            "object": "model",
            "created": int(self.startup_time),
            "owned_by": "sglang",  # smg classifies the worker as SGLang from this
            "root": name,
            "parent": None,
            "max_model_len": self.context_len,
        }

    def loads(self, include: set[str] | None) -> dict:
        valid = {"core", "memory", "spec", "lora", "disagg", "queues", "all"}
        if include is not None and not include <= valid:
            raise StandinError(
                400, f"Invalid include sections: {include - valid}. Valid options: {sorted(valid)}", "HTTPException"
            )
        every = include is None or "all" in include
        loads = []
        with self.lock:
            running = self.running
        for rank in range(self.dp_size):
            load = {
                "timestamp": time.time(),
                "dp_rank": rank,
                "num_running_reqs": running if rank == 0 else 0,
                "num_waiting_reqs": 0,
                "num_used_tokens": 0,
                "num_total_tokens": 0,
                "max_total_num_tokens": self.context_len * 4,
                "max_running_requests": self.args.max_running_requests or 0,
                "token_usage": 0.0,
                "gen_throughput": 0.0,
                "cache_hit_rate": 0.0,
                "utilization": 0.0,
            }
            if every or "memory" in include:
                load["memory"] = {"weight_gb": 0.0, "kv_cache_gb": 0.0, "graph_gb": 0.0, "token_capacity": 0}
            if every or "disagg" in include:
                load["disaggregation"] = {"mode": self.role}
            if every or "queues" in include:
                load["queues"] = {"waiting": 0, "grammar": 0, "paused": 0, "retracted": 0, "prealloc_ready": 0}
            loads.append(load)
        return {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
            "version": __version__,
            "accelerator": "stand-in (no GPU)",
            "num_accelerators": max((self.args.tp_size or 1) * (self.args.pp_size or 1) // self.dp_size, 1),
            "loads": loads,
        }

    def metrics(self) -> str:
        """/metrics: the real families of this SGLang version (sglang/_metrics.py)."""
        return self.prom.text()

    # -- requests -------------------------------------------------------------------------------------------------

    def admit(self, path: str, body: dict) -> dict:
        """Log the request; enforce what SGLang enforces in PD mode. Returns the bootstrap fields."""
        fields = {
            "bootstrap_host": body.get("bootstrap_host"),
            "bootstrap_port": body.get("bootstrap_port"),
            "bootstrap_room": body.get("bootstrap_room"),
        }
        record = {
            "path": path,
            "role": self.role,
            "node_rank": self.rank,
            "port": self.args.port,
            **fields,
            "stream": bool(body.get("stream")),
            "model": body.get("model"),
            "body_keys": sorted(body),
        }
        with self.lock:
            self.requests_total += 1
        pd = self.role in ("prefill", "decode") and self.args.disaggregation_transfer_backend != "fake"
        if pd and _none_in(fields["bootstrap_room"]):
            rid = body.get("rid") or uuid.uuid4().hex
            message = f"Invalid request: Disaggregated request received without bootstrap room id. req.rid={rid!r}"
            log_event("request", **record, status=400, error=message)
            self.prom.aborted()
            raise StandinError(400, message)
        if pd and self.role == "decode" and self.check_bootstrap:
            error = self._reach_bootstrap(fields)
            if error:
                log_event("request", **record, status=500, error=error)
                self.prom.bootstrap_failed()
                self.prom.aborted()
                raise StandinError(500, error, "InternalServerError")
        log_event("request", **record, status=200)
        return fields

    def _reach_bootstrap(self, fields: dict) -> str | None:
        """Decode fetches the prefill's layout from its bootstrap server (GET /route?...=-1) before the transfer."""
        hosts = _as_list(fields["bootstrap_host"])
        ports = _as_list(fields["bootstrap_port"])
        targets = set()
        for index, host in enumerate(hosts):
            if host is None or host == FAKE_BOOTSTRAP_HOST:
                continue
            port = ports[index] if index < len(ports) else ports[-1] if ports else None
            targets.add((str(host), int(port) if port is not None else self.args.disaggregation_bootstrap_port))
        for host, port in sorted(targets):
            if time.monotonic() - self._bootstrap_ok.get((host, port), -1e9) < 2.0:
                continue
            deadline = time.monotonic() + self.bootstrap_timeout
            last = ""
            while True:
                try:
                    # smg names an IPv6 prefill [ADDRESS], as its worker URL does; SGLang's decode puts it in a
                    # URL as is (0.5.6.post2) or strips the brackets (0.5.23's NetworkAddress)
                    conn = http.client.HTTPConnection(host.strip("[]"), port, timeout=2)
                    try:
                        conn.request("GET", f"/route?{LAYOUT_QUERY}")
                        response = conn.getresponse()
                        response.read()
                    finally:
                        conn.close()
                    if response.status == 200:
                        self._bootstrap_ok[(host, port)] = time.monotonic()
                        break
                    last = f"HTTP {response.status}"
                except OSError as exc:
                    last = f"{type(exc).__name__}: {exc}"
                if time.monotonic() >= deadline:
                    return (
                        f"KV transfer failed: the prefill bootstrap server at {host}:{port} did not answer "
                        f"GET /route ({last}) within {self.bootstrap_timeout:g} s"
                    )
                time.sleep(0.2)
        return None

    def started(self) -> float:
        """A request starts running; returns when it arrived (for its latency metrics)."""
        arrived = time.time()
        with self.lock:
            self.running += 1
        while self.unhealthy:  # the forward pass waits on a collective whose peer is gone: it never returns
            time.sleep(1)
        if self.latency:
            time.sleep(self.latency)
        return arrived

    def finished(self, prompt_tokens: int, completion_tokens: int, arrived: float, stream: bool = False) -> None:
        with self.lock:
            self.running -= 1
            self.prompt_tokens_total += prompt_tokens
            self.generation_tokens_total += completion_tokens
        self.prom.finished(prompt_tokens, completion_tokens, arrived, stream)

    def answer(self, max_tokens) -> tuple[str, int, str]:
        words = ANSWER.split(" ")
        if self.role == "prefill":
            max_tokens = 1  # a prefill server computes the first token only
        limit = len(words) if max_tokens is None else max(int(max_tokens), 0)
        taken = words[:limit]
        finish = "length" if limit < len(words) else "stop"
        return " ".join(taken), len(taken), finish


# ------------------------------------------------------------------------------------------------------------------


def _read_hf_config(model_path: str) -> dict:
    try:
        return json.loads((Path(model_path) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _as_list(value) -> list:
    if isinstance(value, list):
        return value
    return [value]


def _none_in(value) -> bool:
    return value is None or (isinstance(value, list) and any(v is None for v in value))


def _count_tokens(value) -> int:
    if value is None:
        return 0
    if isinstance(value, str):
        return max(len(value.split()), 1)
    if isinstance(value, (int, float)):
        return 1
    if isinstance(value, list):
        return sum(_count_tokens(v) for v in value)
    if isinstance(value, dict):
        return sum(_count_tokens(v) for k, v in value.items() if k in ("content", "text"))
    return 1


def _example(schema, depth: int = 0):
    """A small value that satisfies a JSON schema's shape (required properties only)."""
    if not isinstance(schema, dict) or depth > 4:
        return {}
    if "enum" in schema and schema["enum"]:
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        props = schema.get("properties") or {}
        return {name: _example(props.get(name, {}), depth + 1) for name in schema.get("required") or []}
    return {"string": "stand-in", "integer": 1, "number": 1.0, "boolean": True, "array": [], "null": None}.get(kind, {})


def _pick_tool(body: dict) -> dict | None:
    tools = body.get("tools") or []
    choice = body.get("tool_choice", "auto")
    if not tools or choice == "none":
        return None
    if isinstance(choice, dict):
        wanted = (choice.get("function") or {}).get("name")
        for tool in tools:
            if (tool.get("function") or {}).get("name") == wanted:
                return tool
    return tools[0]


# ------------------------------------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address, handler, engine: Engine):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.engine = engine
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "uvicorn"
    sys_version = ""

    def log_message(self, format, *args):
        return  # requests are logged as JSON lines; keep stderr for errors

    @property
    def engine(self) -> Engine:
        return self.server.engine

    # -- plumbing -------------------------------------------------------------------------------------------------

    def _body(self) -> bytes:
        """The request body, read once by _dispatch (so a keep-alive connection stays in step on any answer)."""
        return self._raw

    def _read_raw(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes = b"", content_type: str | None = None) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def _not_found(self) -> None:
        self._json(404, {"detail": "Not Found"})

    def _stream(self, events) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for event in events:
                data = b"data: " + (event if isinstance(event, bytes) else json.dumps(event).encode()) + b"\n\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        try:
            self._raw = self._read_raw()
            self.route(method, url.path, parse_qs(url.query))
        except StandinError as exc:
            self._error(exc)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # a stand-in bug: answer 500 and say so, rather than drop the connection
            traceback.print_exc()
            self.close_connection = True
            self._error(
                StandinError(500, f"sglang stand-in internal error: {type(exc).__name__}: {exc}", "InternalError")
            )

    def _error(self, exc: StandinError) -> None:
        self._json(
            exc.status,
            {"object": "error", "message": str(exc), "type": exc.err_type, "param": None, "code": exc.status},
        )

    def route(self, method: str, path: str, query: dict) -> None:
        raise NotImplementedError


class HealthOnlyHandler(_Handler):
    """Node rank >= 1: SGLang's launch_dummy_health_check_server."""

    def route(self, method: str, path: str, query: dict) -> None:
        if path in ("/health", "/health_generate", "/ping"):
            if method in ("GET", "HEAD"):
                return self._send(200)
            return self._json(405, {"detail": "Method Not Allowed"})
        if path.startswith("/metrics") and self.engine.args.enable_metrics and method in ("GET", "HEAD"):
            return self._send(200, self.engine.metrics().encode(), "text/plain; version=0.0.4; charset=utf-8")
        return self._not_found()


class ApiHandler(_Handler):
    """Node rank 0: the HTTP API."""

    GET_ROUTES = {
        "/health": "_health",
        "/health_generate": "_health",
        "/ready": "_ready",
        "/ping": "_ok",
        "/v1/models": "_models",
        "/server_info": "_server_info",
        "/get_server_info": "_server_info",
        "/model_info": "_model_info",
        "/get_model_info": "_model_info",
        "/v1/loads": "_loads",
        "/flush_cache": "_flush_cache",
    }
    if LEGACY:
        GET_ROUTES = {p: m for p, m in GET_ROUTES.items() if p not in ("/ready", "/v1/loads")}
        GET_ROUTES["/get_load"] = "_get_load"
    POST_ROUTES = {
        "/generate": "_generate",
        "/v1/completions": "_completions",
        "/v1/chat/completions": "_chat",
        "/flush_cache": "_flush_cache",
    }

    def route(self, method: str, path: str, query: dict) -> None:
        self._query = query
        if path.startswith("/metrics") and self.engine.args.enable_metrics:
            if method not in ("GET", "HEAD"):
                return self._json(405, {"detail": "Method Not Allowed"})
            return self._send(200, self.engine.metrics().encode(), "text/plain; version=0.0.4; charset=utf-8")
        if not self._authorized(method, path):
            return self._json(401, {"error": "Unauthorized"})
        if path.startswith("/v1/models/") and method in ("GET", "HEAD"):
            return self._model(path[len("/v1/models/") :])
        get = self.GET_ROUTES.get(path)
        post = self.POST_ROUTES.get(path)
        if path == "/generate" and method == "PUT":
            post, method = "_generate", "POST"
        if method in ("GET", "HEAD") and get:
            return getattr(self, get)()
        if method == "POST" and post:
            return getattr(self, post)()
        if get or post:
            return self._json(405, {"detail": "Method Not Allowed"})
        return self._not_found()

    def _authorized(self, method: str, path: str) -> bool:
        """SGLang's API key middleware, before any route: OPTIONS and the probe paths pass without a key; 0.5.6.post2
        (utils/common.py add_api_key_middleware) exempts /health* and /metrics* and wants exactly "Bearer <key>";
        0.5.23 (utils/auth.py decide_request_auth) also exempts /ready* and takes any case of "bearer". Refused:
        401 {"error": "Unauthorized"}, unknown paths included."""
        key = self.engine.args.api_key
        exempt = ("/health", "/metrics") if LEGACY else ("/health", "/ready", "/metrics")
        if not key or method == "OPTIONS" or path.startswith(exempt):
            return True
        header = self.headers.get("Authorization") or ""
        if LEGACY:
            return header == "Bearer " + key
        parts = header.split(" ", 1)
        return len(parts) == 2 and parts[0].lower() == "bearer" and parts[1] == key

    # -- GET ------------------------------------------------------------------------------------------------------

    def _ok(self) -> None:
        self._send(200)

    def _health(self) -> None:
        """SGLang's health_generate (http_server.py): 503 while shutting down; otherwise a one-token generation
        that answers 200 when the scheduler replied within SGLANG_HEALTH_CHECK_TIMEOUT (20 s), else 503."""
        engine = self.engine
        if engine.exiting:
            print("Health check request received during shutdown. Returning 503.", file=sys.stderr, flush=True)
            return self._send(503)
        if self.path.split("?")[0] == "/health" and not engine.health_generation:
            return self._send(200)
        if engine.unhealthy:
            time.sleep(float(os.environ.get("SGLANG_HEALTH_CHECK_TIMEOUT", "20")))
            print("Health check failed. Server couldn't get a response from detokenizer", file=sys.stderr, flush=True)
            return self._send(503)
        time.sleep(engine.health_seconds)
        self._send(200)

    def _ready(self) -> None:
        """0.5.23's /ready: 200 only when not paused, not exiting and up."""
        engine = self.engine
        self._send(503 if engine.exiting or engine.unhealthy else 200)

    def _models(self) -> None:
        self._json(200, self.engine.models())

    def _model(self, name: str) -> None:
        if name != self.engine.served_model_name:
            return self._json(
                404,
                {
                    "error": {
                        "message": f"The model '{name}' does not exist",
                        "type": "invalid_request_error",
                        "param": "model",
                        "code": "model_not_found",
                    }
                },
            )
        self._json(200, self.engine.model_card(name))

    def _server_info(self) -> None:
        self._json(200, self.engine.server_info())

    def _model_info(self) -> None:
        self._json(200, self.engine.model_info())

    def _loads(self) -> None:
        include = self._query.get("include")
        sections = {s.strip() for s in include[0].split(",")} if include else None
        self._json(200, self.engine.loads(sections))

    def _get_load(self) -> None:
        """0.5.6.post2's /get_load: per DP rank, num_reqs counting the waiting requests too."""
        loads = self.engine.loads(None)["loads"]
        self._json(200, [
            {"dp_rank": x["dp_rank"], "num_reqs": x["num_running_reqs"] + x["num_waiting_reqs"],
             "num_waiting_reqs": x["num_waiting_reqs"], "num_tokens": x["num_used_tokens"]}
            for x in loads
        ])  # fmt: skip

    def _flush_cache(self) -> None:
        self._body()
        text = (
            "Cache flushed.\nPlease check backend logs for more details. "
            "(When there are running or waiting requests, the operation will not be performed.)\n"
        )
        self._send(200, text.encode(), "text/plain; charset=utf-8")

    # -- POST -----------------------------------------------------------------------------------------------------

    def _read_json(self) -> dict:
        raw = self._body()
        try:
            body = json.loads(raw or b"{}")
        except ValueError as exc:
            raise StandinError(400, f"Invalid JSON body: {exc}") from None
        if not isinstance(body, dict):
            raise StandinError(400, "The request body must be a JSON object")
        return body

    def _generate(self) -> None:
        engine = self.engine
        try:
            body = self._read_json()
            engine.admit("/generate", body)
        except StandinError as exc:
            return self._json(exc.status, {"error": {"message": str(exc)}})
        sampling = body.get("sampling_params") or {}
        batch = body.get("text") if isinstance(body.get("text"), list) else None
        ids = body.get("input_ids")
        if batch is None and isinstance(ids, list) and ids and isinstance(ids[0], list):
            batch = ids
        prompts = batch if batch is not None else [body.get("text", body.get("input_ids"))]
        arrived = engine.started()
        outputs = []
        total_prompt = total_completion = 0
        for prompt in prompts:
            text, n, finish = engine.answer(sampling.get("max_new_tokens"))
            prompt_tokens = len(prompt) if isinstance(prompt, list) else _count_tokens(prompt)
            total_prompt += prompt_tokens
            total_completion += n
            outputs.append(
                {
                    "text": text,
                    "output_ids": list(range(100, 100 + n)),
                    "meta_info": {
                        "id": body.get("rid") or uuid.uuid4().hex,
                        "finish_reason": {"type": "length", "length": n}
                        if finish == "length"
                        else {"type": "stop", "matched": 1},
                        "prompt_tokens": prompt_tokens,
                        "completion_tokens": n,
                        "cached_tokens": 0,
                        "weight_version": "default",
                        "e2e_latency": 0.0,
                    },
                }
            )
        engine.finished(total_prompt, total_completion, arrived, bool(body.get("stream")))
        result = outputs if batch is not None else outputs[0]
        if body.get("stream"):
            return self._stream([*(result if isinstance(result, list) else [result]), b"[DONE]"])
        self._json(200, result)

    def _completions(self) -> None:
        engine = self.engine
        body = self._read_json()
        engine.admit("/v1/completions", body)
        arrived = engine.started()
        prompt_tokens = _count_tokens(body.get("prompt"))
        text, n, finish = engine.answer(body.get("max_tokens"))
        engine.finished(prompt_tokens, n, arrived, bool(body.get("stream")))
        rid = "cmpl-" + uuid.uuid4().hex
        created = int(time.time())
        model = body.get("model") or engine.served_model_name
        usage = {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens + n, "completion_tokens": n}
        if body.get("stream"):

            def events():
                for index, word in enumerate(text.split(" ") if text else []):
                    piece = word if index == 0 else " " + word
                    yield {
                        "id": rid,
                        "object": "text_completion",
                        "created": created,
                        "model": model,
                        "choices": [{"index": 0, "text": piece, "logprobs": None, "finish_reason": None}],
                    }
                yield {
                    "id": rid,
                    "object": "text_completion",
                    "created": created,
                    "model": model,
                    "choices": [{"index": 0, "text": "", "logprobs": None, "finish_reason": finish}],
                }
                if (body.get("stream_options") or {}).get("include_usage"):
                    yield {
                        "id": rid,
                        "object": "text_completion",
                        "created": created,
                        "model": model,
                        "choices": [],
                        "usage": usage,
                    }
                yield b"[DONE]"

            return self._stream(events())
        self._json(
            200,
            {
                "id": rid,
                "object": "text_completion",
                "created": created,
                "model": model,
                "choices": [
                    {"index": 0, "text": text, "logprobs": None, "finish_reason": finish, "matched_stop": None}
                ],
                "usage": usage,
            },
        )

    def _chat(self) -> None:
        engine = self.engine
        body = self._read_json()
        engine.admit("/v1/chat/completions", body)
        arrived = engine.started()
        prompt_tokens = _count_tokens(body.get("messages"))
        tool = _pick_tool(body)
        rid = uuid.uuid4().hex
        created = int(time.time())
        model = body.get("model") or engine.served_model_name
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        if tool is not None:
            function = tool.get("function") or {}
            arguments = json.dumps(_example(function.get("parameters") or {}))
            call = {
                "id": "call_" + uuid.uuid4().hex[:24],
                "index": 0,
                "type": "function",
                "function": {"name": function.get("name"), "arguments": arguments},
            }
            text, n, finish = None, max(len(arguments) // 4, 1), "tool_calls"
            message = {"role": "assistant", "content": None, "reasoning_content": None, "tool_calls": [call]}
        else:
            text, n, finish = engine.answer(max_tokens)
            message = {"role": "assistant", "content": text, "reasoning_content": None, "tool_calls": None}
        engine.finished(prompt_tokens, n, arrived, bool(body.get("stream")))
        usage = {
            "prompt_tokens": prompt_tokens,
            "total_tokens": prompt_tokens + n,
            "completion_tokens": n,
            "prompt_tokens_details": None,
            "reasoning_tokens": 0,
        }
        if body.get("stream"):

            def chunk(delta: dict, finish_reason=None) -> dict:
                return {
                    "id": rid,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "delta": delta,
                            "logprobs": None,
                            "finish_reason": finish_reason,
                            "matched_stop": None,
                        }
                    ],
                    "usage": None,
                }

            def events():
                yield chunk({"role": "assistant", "content": ""})
                if tool is not None:
                    yield chunk({"tool_calls": [call]})
                else:
                    for index, word in enumerate(text.split(" ") if text else []):
                        yield chunk({"content": word if index == 0 else " " + word})
                yield chunk({}, finish)
                if (body.get("stream_options") or {}).get("include_usage"):
                    yield {
                        "id": rid,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": model,
                        "choices": [],
                        "usage": usage,
                    }
                yield b"[DONE]"

            return self._stream(events())
        self._json(
            200,
            {
                "id": rid,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "logprobs": None,
                        "finish_reason": finish,
                        "matched_stop": None if tool is not None else 1,
                    }
                ],
                "usage": usage,
                "metadata": {"weight_version": "default"},
            },
        )


class BootstrapHandler(_Handler):
    """The prefill's KV bootstrap server (sglang/srt/disaggregation/common/conn.py, CommonKVBootstrapServer)."""

    server_version = "Python/3.11 aiohttp"

    def _text(self, status: int, text: str) -> None:
        self._send(status, text.encode(), "text/plain; charset=utf-8")

    def route(self, method: str, path: str, query: dict) -> None:
        engine = self.engine
        log_event(
            "bootstrap_request",
            method=method,
            path=path,
            query={k: v[0] for k, v in query.items()},
            client=self.client_address[0],
            port=self.server.server_address[1],
        )
        if path == "/health" and method in ("GET", "HEAD"):
            return self._text(200, "OK")
        if path == "/route":
            if method == "PUT":
                self._body()
                return self._text(200, "OK")
            if method != "GET":
                return self._send(405, b"Method not allowed", "application/json")
            values = [(query.get(k) or [""])[0] for k in ROUTE_KEYS]
            if not all(values):
                return self._text(400, "Missing inputs for bootstrap server.")
            try:
                numbers = [int(v) for v in values]
            except ValueError:
                return self._text(400, "Missing inputs for bootstrap server.")
            a = engine.args
            if LEGACY and numbers == [-1] * len(ROUTE_KEYS):
                return self._json(
                    200,
                    {
                        "prefill_attn_tp_size": engine.attn_tp_size,
                        "prefill_dp_size": engine.dp_size,
                        "prefill_pp_size": a.pp_size or 1,
                    },
                )
            if numbers == [-1] * len(ROUTE_KEYS):
                return self._json(
                    200,
                    {
                        "attn_tp_size": engine.attn_tp_size,
                        "attn_cp_size": 1,
                        "dp_size": engine.dp_size,
                        "pp_size": a.pp_size or 1,
                        "page_size": a.page_size or 1,
                        "kv_cache_dtype": a.kv_cache_dtype,
                        "follow_bootstrap_room": a.load_balance_method in ("follow_bootstrap_room", "auto"),
                        "enable_dsa_cache_layer_split": bool(a.enable_dsa_cache_layer_split),
                        "enable_kv_cache_sharding": bool(a.enable_kv_cache_sharding),
                        "prefill_http_port": a.port,
                        "decode_allocation_policy": "early",
                    },
                )
            return self._json(200, {"rank_ip": self.server.server_address[0], "rank_port": a.port + 1000})
        if path == "/register_dp_rank" and method == "POST":
            self._body()
            return self._text(200, "OK")
        if path == "/query_dp_ranks" and method == "POST":
            self._body()
            return self._json(200, {})
        return self._text(404, "404: Not Found")


def make_servers(engine: Engine) -> list[tuple[str, ThreadingHTTPServer]]:
    """Bind every listener this process has (raises OSError when a port is taken, as SGLang fails to start)."""
    args = engine.args
    servers: list[tuple[str, ThreadingHTTPServer]] = []
    try:
        if engine.rank == 0:
            servers.append(("http", _Server((args.host, args.port), ApiHandler, engine)))
            switch = getattr(args, "enable_pd_role_switch", False)  # 0.5.23 on
            bootstrap = engine.role == "prefill" or (switch and engine.role != "null")
            if bootstrap:
                server = _Server((args.host, args.disaggregation_bootstrap_port), BootstrapHandler, engine)
                servers.append(("bootstrap", server))
        else:
            servers.append(("http", _Server((args.host, args.port), HealthOnlyHandler, engine)))
    except OSError:
        for _, server in servers:
            server.server_close()
        raise
    return servers


def serve(servers: list[tuple[str, ThreadingHTTPServer]]) -> list[threading.Thread]:
    threads = []
    for name, server in servers:
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, name=name, daemon=True)
        thread.start()
        threads.append(thread)
    return threads


def shutdown(servers: list[tuple[str, ThreadingHTTPServer]]) -> None:
    for _, server in servers:
        server.shutdown()
        server.server_close()
