#!/usr/bin/python3 -I
"""pdfleet sandbox stand-in for /usr/bin/docker (package docker-ce-cli 28.5.1).

There are no images and no container isolation in the sandbox. The "image" is whatever the host holds under
/opt/sglang-standin-image (the stand-in sglang engine in a venv), and `docker run` runs the command on the host:
  - with that venv's bin first on PATH and a container-like environment: the image's Env (defaults below, or
    /opt/sglang-standin-image/image.json {"Env": [...], "Cmd": [...], "Entrypoint": [...], "WorkingDir": ""}),
    then --env-file files, then -e; nothing is inherited from the caller (like a real container);
  - in the foreground by exec: the command takes the docker process's PID, so a systemd unit running
    `docker run ...` supervises the engine itself and its signals reach it directly;
  - -v SRC:DST[:ro] / --mount type=bind: bind mounts in a private mount namespace (unshare) when root;
    without root the paths are used as they are (a warning says so);
  - --ulimit is applied with setrlimit; --user switches uid/gid; -w changes directory;
  - --network, --ipc, --pid, --privileged, --shm-size, --restart, --cap-add, --device, --security-opt, --init,
    --log-driver and the like are recorded and shown by inspect, without effect;
  - --gpus needs nvidia-container-runtime-hook installed (nvidia-container-toolkit), --runtime=NAME (or the
    daemon's default-runtime) a runtime the running dockerd loaded and whose executable exists, as with the real
    engine; the errors are the real ones.
Every command but `docker version` (client part) needs the daemon (dockerd stand-in) to answer on its socket
(DOCKER_HOST or -H, default unix:///var/run/docker.sock), as with the real CLI.

Commands: version, info, pull, images / image ls, image inspect, inspect, run, ps, stop, kill, rm, rmi /
image rm, logs (detached containers only). --format supports Go-template field access ({{.A.B}}), json, index,
join, len, upper, lower, and the "table" and "json" keywords; not range/if/pipes. State (images.json,
containers.json, 0600) lives in /var/lib/docker-standin.

Known differences: a pulled image is recorded, not downloaded (a tag without digest gets a synthesised digest;
--pull=always fails as the real one would without a registry); -d runs the command under a small shim that
records its exit code and its output (for `docker logs`); the exit code of a foreground container that ended is
unknown to the stand-in (it exec'd) and shown as -1, except 137 after `docker stop` had to SIGKILL it; docker stop
signals the command and, after the timeout, SIGKILLs it and its descendants; bind mount targets are created on
the host's filesystem (the mounts themselves stay private).
"""

import contextlib
import fcntl
import hashlib
import json
import os
import pwd
import re
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time

from standin_lib import rooted

VERSION = "@@DOCKER_VERSION@@"
API_VERSION = "1.51"
MIN_API_VERSION = "1.24"
CLIENT_COMMIT = "e180ab8"  # docker/cli v28.5.1
ENGINE_COMMIT = "f8215cc"  # moby v28.5.1
GO_VERSION = "go1.24.8"
BUILD_TIME = "2025-10-08T12:17:26.000000000+00:00"
CONTAINERD_COMMIT = "b98a3aace656320842a23f4a392a33f46af97866"
RUNC_COMMIT = "v1.3.0-0-g4ca628d1"
INIT_COMMIT = "de40ad0"
STATE = "/var/lib/docker-standin"
IMAGE_ROOT = "/opt/sglang-standin-image"
DEFAULT_HOST = "unix:///var/run/docker.sock"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HOOK = "nvidia-container-runtime-hook"
NEVER = "0001-01-01T00:00:00Z"

RUN_VALUE_FLAGS = {
    "--name", "--network", "--net", "--ipc", "--pid", "--uts", "--gpus", "--runtime", "--ulimit", "--shm-size",
    "--env-file", "-e", "--env", "-v", "--volume", "--mount", "--entrypoint", "-w", "--workdir", "-u", "--user",
    "-h", "--hostname", "-l", "--label", "--label-file", "--restart", "--log-driver", "--log-opt", "--cap-add",
    "--cap-drop", "--security-opt", "--device", "--stop-timeout", "--stop-signal", "--pull", "--cpuset-cpus",
    "--cpuset-mems", "--cpus", "-m", "--memory", "--memory-swap", "-p", "--publish", "--add-host", "--dns",
    "--group-add", "--tmpfs", "--cgroupns", "--platform", "--sysctl", "--cidfile", "--oom-score-adj",
    "--health-cmd", "--health-interval", "--health-retries", "--health-timeout", "--health-start-period",
    "--device-cgroup-rule", "--userns", "--cgroup-parent", "--network-alias", "--ip", "--mac-address",
}  # fmt: skip
RUN_BOOL_FLAGS = {
    "--rm", "-d", "--detach", "-i", "--interactive", "-t", "--tty", "--privileged", "--init", "--read-only",
    "--sig-proxy", "--no-healthcheck", "-P", "--publish-all", "--oom-kill-disable", "-q", "--quiet",
}  # fmt: skip
REPEATED = {
    "ulimit", "env-file", "env", "volume", "mount", "label", "log-opt", "cap-add", "cap-drop", "security-opt",
    "device", "publish", "add-host", "dns", "group-add", "tmpfs", "sysctl", "filter",
}  # fmt: skip
RUN_ALIASES = {"-e": "env", "-v": "volume", "-w": "workdir", "-u": "user", "-h": "hostname", "-l": "label",
               "-m": "memory", "-p": "publish", "-d": "detach", "-i": "interactive", "-t": "tty",
               "-P": "publish-all", "-q": "quiet", "--net": "network"}  # fmt: skip
ULIMITS = {
    "memlock": resource.RLIMIT_MEMLOCK, "stack": resource.RLIMIT_STACK, "nofile": resource.RLIMIT_NOFILE,
    "nproc": resource.RLIMIT_NPROC, "core": resource.RLIMIT_CORE, "fsize": resource.RLIMIT_FSIZE,
    "as": resource.RLIMIT_AS, "cpu": resource.RLIMIT_CPU, "data": resource.RLIMIT_DATA,
    "rss": resource.RLIMIT_RSS, "msgqueue": resource.RLIMIT_MSGQUEUE, "nice": resource.RLIMIT_NICE,
    "rtprio": resource.RLIMIT_RTPRIO, "sigpending": resource.RLIMIT_SIGPENDING,
}  # fmt: skip
ADJECTIVES = ["admiring", "brave", "clever", "eager", "focused", "gallant", "jolly", "keen", "nifty", "quirky",
              "serene", "vibrant"]  # fmt: skip
SURNAMES = ["babbage", "curie", "darwin", "euler", "feynman", "hopper", "lovelace", "noether", "shannon", "turing"]


class Fail(Exception):
    """A user-facing error: message on stderr, exit status."""

    def __init__(self, message, code=1):
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------------------------------------- small helpers


def now_iso(stamp=None):
    stamp = time.time() if stamp is None else stamp
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(stamp)) + f".{int(stamp % 1 * 1e9):09d}Z"


def human_duration(seconds):
    """github.com/docker/go-units HumanDuration."""
    seconds = int(seconds)
    if seconds < 1:
        return "Less than a second"
    if seconds == 1:
        return "1 second"
    if seconds < 60:
        return f"{seconds} seconds"
    minutes = seconds // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{seconds // 3600 // 24 // 365} years"


def human_size(size):
    """go-units HumanSizeWithPrecision(size, 3): decimal units."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    value, i = float(size), 0
    while value >= 1000 and i < len(units) - 1:
        value /= 1000
        i += 1
    return f"{value:.3g}{units[i]}"


def bytes_size(size):
    """go-units BytesSize: binary units, %.4g."""
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    value, i = float(size), 0
    while value >= 1024 and i < len(units) - 1:
        value /= 1024
        i += 1
    return f"{value:.4g}{units[i]}"


def ellipsis(text, width):
    return text if len(text) <= width else text[: width - 1] + "…"


def go_quote(text):
    return json.dumps(text, ensure_ascii=False)


def go_json(value, indent=None):
    text = json.dumps(value, indent=indent, ensure_ascii=False, separators=(",", ":") if indent is None else None)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def tabwrite(rows, minwidth=10, padding=3):
    """text/tabwriter as docker's table formatter configures it (minwidth 10, padding 3); the last cell of a row
    is not padded."""
    widths = {}
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths.get(i, 0), len(cell) + padding, minwidth)
    return "".join("".join(c.ljust(widths[i]) for i, c in enumerate(row[:-1])) + row[-1] + "\n" for row in rows)


# ------------------------------------------------------------------------------------------- Go templates


class Template:
    """The part of Go's text/template docker users put in --format."""

    FUNCS = {"json", "index", "join", "len", "upper", "lower", "title", "println"}

    def __init__(self, text):
        self.text = text
        self.parts = []
        pos = 0
        for match in re.finditer(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", text):
            self.parts.append(("text", text[pos : match.start()]))
            expr = match.group(2)
            words = re.findall(r'"(?:\\.|[^"\\])*"|\S+', expr)
            if not words or "|" in words or words[0] in ("range", "if", "with", "end", "else", "define", "template"):
                raise Fail(f"template parsing error: pdfleet sandbox stand-in: {{{{{expr}}}}} is not supported "
                           "(field access, json, index, join, len, upper, lower only)", 64)  # fmt: skip
            if not words[0].startswith(".") and words[0] not in self.FUNCS:
                raise Fail(f'template parsing error: template: :1: function "{words[0]}" not defined', 64)
            self.parts.append(("expr", words))
            pos = match.end()
        self.parts.append(("text", text[pos:]))

    @staticmethod
    def lookup(data, path):
        value = data
        for name in [p for p in path.split(".") if p]:
            if isinstance(value, dict):
                value = value.get(name, "<no value>")
            else:
                return "<no value>"
        return value

    def arg(self, data, word):
        if word.startswith('"'):
            return json.loads(word)
        if word.startswith("."):
            return self.lookup(data, word)
        if re.fullmatch(r"-?\d+", word):
            return int(word)
        raise Fail(f"template: pdfleet sandbox stand-in: cannot evaluate {word}", 64)

    @staticmethod
    def show(value):
        if value is None:
            return "<nil>"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, list):
            return "[" + " ".join(Template.show(v) for v in value) + "]"
        if isinstance(value, dict):
            return "map[" + " ".join(f"{k}:{Template.show(value[k])}" for k in sorted(value)) + "]"
        return str(value)

    def render(self, data):
        out = []
        for kind, part in self.parts:
            if kind == "text":
                out.append(part)
                continue
            head, args = part[0], [self.arg(data, w) for w in part[1:]]
            if head.startswith("."):
                out.append(self.show(self.lookup(data, head)))
            elif head == "json":
                out.append(go_json(args[0] if args else data))
            elif head == "index":
                value = args[0]
                for key in args[1:]:
                    try:
                        value = value[key]
                    except (KeyError, IndexError, TypeError) as error:
                        raise Fail(f"template: executing at <index>: error calling index: {error}", 1) from None
                out.append(self.show(value))
            elif head == "join":
                out.append(args[1].join(str(v) for v in args[0]))
            elif head == "len":
                out.append(str(len(args[0])))
            elif head == "upper":
                out.append(str(args[0]).upper())
            elif head == "lower":
                out.append(str(args[0]).lower())
            elif head == "title":
                out.append(str(args[0]).title())
            elif head == "println":
                out.append(" ".join(self.show(a) for a in args) + "\n")
        return "".join(out)


def format_rows(fmt, rows, headers, default_table):
    """docker's formatter for ps/images: 'table ...', 'json', or a template; rows are dicts of strings."""
    fmt = fmt or default_table
    if fmt == "json":
        return "".join(go_json(dict(sorted(row.items()))) + "\n" for row in rows)
    table = fmt.startswith("table")
    body = fmt[len("table") :] if table else fmt
    body = body.strip(" ").replace("\\t", "\t").replace("\\n", "\n")
    template = Template(body)
    if not table:
        return "".join(template.render(row) + "\n" for row in rows)
    header = template.render({k: headers.get(k, k.upper()) for k in set(headers) | set(rows[0] if rows else {})})
    lines = [header.split("\t")] + [template.render(row).split("\t") for row in rows]
    return tabwrite(lines)


# ------------------------------------------------------------------------------------------------- references


class Ref:
    """An image reference normalised as github.com/distribution/reference does."""

    def __init__(self, text):
        self.text = text
        rest, self.digest = text, None
        if "@" in rest:
            rest, self.digest = rest.split("@", 1)
            if not re.fullmatch(r"sha256:[0-9a-f]{64}", self.digest):
                raise Fail("invalid reference format")
        self.tag = None
        slash = rest.rfind("/")
        colon = rest.rfind(":")
        if colon > slash:
            rest, self.tag = rest[:colon], rest[colon + 1 :]
        if not rest or not re.fullmatch(r"[a-z0-9]+(?:[._-][a-z0-9]+|[./:][A-Za-z0-9._-]+)*", rest):
            raise Fail("invalid reference format")
        first = rest.split("/", 1)[0]
        if "/" in rest and ("." in first or ":" in first or first == "localhost"):
            self.name = rest
        elif "/" in rest:
            self.name = "docker.io/" + rest
        else:
            self.name = "docker.io/library/" + rest

    @property
    def familiar_name(self):
        name = self.name
        if name.startswith("docker.io/"):
            name = name[len("docker.io/") :]
            if name.startswith("library/") and name.count("/") == 1:
                name = name[len("library/") :]
        return name

    def _with_reference(self, name):
        return name + (":" + self.tag if self.tag else "") + ("@" + self.digest if self.digest else "")

    def familiar(self):
        return self._with_reference(self.familiar_name)

    def full(self):
        return self._with_reference(self.name)


# ------------------------------------------------------------------------------------------------- state


class State:
    """images.json and containers.json under /var/lib/docker-standin, changed under an exclusive lock."""

    def __enter__(self):
        self.dir = rooted(STATE)
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        self.lock = open(os.path.join(self.dir, "lock"), "w")  # noqa: SIM115 (held until __exit__)
        fcntl.flock(self.lock, fcntl.LOCK_EX)
        self.images = self._load("images.json")
        self.containers = self._load("containers.json")
        self.refresh()
        return self

    def _load(self, name):
        try:
            with open(os.path.join(self.dir, name), encoding="utf-8") as handle:
                return json.load(handle)
        except FileNotFoundError:
            return []

    def save(self):
        for name, value in (("images.json", self.images), ("containers.json", self.containers)):
            path = os.path.join(self.dir, name)
            tmp = f"{path}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(value, handle, indent=1)
            os.replace(tmp, path)

    def __exit__(self, *exc):
        self.save()
        fcntl.flock(self.lock, fcntl.LOCK_UN)
        self.lock.close()

    def refresh(self):
        """Containers whose process is gone have exited; --rm ones are removed."""
        kept = []
        for c in self.containers:
            state = c["State"]
            shim = c["_standin"].get("shim")
            if shim and process_alive(*shim):
                pass  # a detached container's shim records its exit itself
            elif (
                state["Running"]
                and not c["_standin"].get("starting")
                and not process_alive(state["Pid"], c["_standin"]["starttime"])
            ):
                mark_exited(c)
            if not state["Running"] and c["HostConfig"]["AutoRemove"]:
                continue
            kept.append(c)
        self.containers = kept

    def find_container(self, key):
        for c in self.containers:
            if c["Name"] == "/" + key.lstrip("/") or c["Id"] == key:
                return c
        matches = [c for c in self.containers if c["Id"].startswith(key)]
        return matches[0] if len(matches) == 1 and key else None

    def find_image(self, text):
        try:
            ref = Ref(text)
        except Fail:
            ref = None
        if ref is not None:
            for image in self.images:
                if ref.digest and f"{ref.familiar_name}@{ref.digest}" in image["RepoDigests"]:
                    return image
                if not ref.digest and f"{ref.familiar_name}:{ref.tag or 'latest'}" in image["RepoTags"]:
                    return image
        key = text[len("sha256:") :] if text.startswith("sha256:") else text
        if re.fullmatch(r"[0-9a-f]{4,64}", key):
            matches = [i for i in self.images if i["Id"][len("sha256:") :].startswith(key)]
            if len(matches) == 1:
                return matches[0]
        return None


def process_alive(pid, starttime):
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return fields[0] != "Z" and fields[19] == str(starttime)


def process_starttime(pid):
    with open(f"/proc/{pid}/stat") as handle:
        return handle.read().rsplit(")", 1)[1].split()[19]


def descendants(pid):
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


# ------------------------------------------------------------------------------------------------- the daemon


class Client:
    def __init__(self, host):
        self.host = host or os.environ.get("DOCKER_HOST") or DEFAULT_HOST

    def info(self, prefix=""):
        """The daemon's answer, or Fail like the real CLI when it cannot be reached."""
        if not self.host.startswith("unix://"):
            raise Fail(f"{prefix}pdfleet sandbox stand-in: only unix:// daemon addresses are simulated")
        path = rooted(self.host[len("unix://") :])
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(30)
        try:
            sock.connect(path)
            sock.sendall(b"info\n")
            line = sock.makefile("r").readline()
        except PermissionError:
            raise Fail(
                f"{prefix}permission denied while trying to connect to the Docker daemon socket at {self.host}: "
                f'Get "http://%2Fvar%2Frun%2Fdocker.sock/v{API_VERSION}/info": dial unix {path}: connect: '
                "permission denied"
            ) from None
        except OSError:
            raise Fail(
                f"{prefix}Cannot connect to the Docker daemon at {self.host}. Is the docker daemon running?"
            ) from None
        finally:
            sock.close()
        if not line:
            raise Fail(f"{prefix}Cannot connect to the Docker daemon at {self.host}. Is the docker daemon running?")
        return json.loads(line)


# ------------------------------------------------------------------------------------------------- commands


def client_version():
    return {
        "Platform": {"Name": "Docker Engine - Community"},
        "Version": VERSION,
        "ApiVersion": API_VERSION,
        "DefaultAPIVersion": API_VERSION,
        "GitCommit": CLIENT_COMMIT,
        "GoVersion": GO_VERSION,
        "Os": "linux",
        "Arch": "amd64",
        "BuildTime": "Wed Oct  8 12:17:26 2025",
        "Context": "default",
    }


def server_version():
    details = {
        "ApiVersion": API_VERSION, "Arch": "amd64", "BuildTime": "Wed Oct  8 12:17:26 2025",
        "Experimental": "false", "GitCommit": ENGINE_COMMIT, "GoVersion": GO_VERSION,
        "KernelVersion": os.uname().release, "MinAPIVersion": MIN_API_VERSION, "Os": "linux",
    }  # fmt: skip
    return {
        "Platform": {"Name": "Docker Engine - Community"},
        "Components": [
            {"Name": "Engine", "Version": VERSION, "Details": details},
            {"Name": "containerd", "Version": "v1.7.28", "Details": {"GitCommit": CONTAINERD_COMMIT}},
            {"Name": "runc", "Version": "1.3.0", "Details": {"GitCommit": RUNC_COMMIT}},
            {"Name": "docker-init", "Version": "0.19.0", "Details": {"GitCommit": INIT_COMMIT}},
        ],
        "Version": VERSION,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": ENGINE_COMMIT,
        "GoVersion": GO_VERSION,
        "Os": "linux",
        "Arch": "amd64",
        "KernelVersion": os.uname().release,
        "BuildTime": BUILD_TIME,
    }


def with_go_names(value):
    """Template field names are Go's (APIVersion), JSON keys the json tags (ApiVersion): offer both."""
    if isinstance(value, dict):
        out = {k: with_go_names(v) for k, v in value.items()}
        for key in list(out):
            if "Api" in key:
                out[key.replace("Api", "API")] = out[key]
        return out
    if isinstance(value, list):
        return [with_go_names(v) for v in value]
    return value


def cmd_version(client, args):
    opts, _ = parse_options(args, flags(format=("-f", "--format")), {})
    fmt = opts.get("format")
    data = {"Client": client_version(), "Server": None}
    error = None
    try:
        client.info()
        data["Server"] = server_version()
    except Fail as fail:
        error = fail
    if fmt == "json" or fmt == "{{json .}}":
        print(go_json(data))
    elif fmt:
        print(Template(fmt).render(with_go_names(data)))
    else:
        c = data["Client"]
        lines = [
            "Client: Docker Engine - Community",
            f" Version:\t{c['Version']}",
            f" API version:\t{c['ApiVersion']}",
            f" Go version:\t{c['GoVersion']}",
            f" Git commit:\t{c['GitCommit']}",
            f" Built:\t{c['BuildTime']}",
            f" OS/Arch:\t{c['Os']}/{c['Arch']}",
            f" Context:\t{c['Context']}",
        ]
        if data["Server"]:
            lines += ["", "Server: Docker Engine - Community"]
            for component in data["Server"]["Components"]:
                d = component["Details"]
                lines.append(f" {component['Name']}:")
                if component["Name"] == "Engine":
                    lines += [
                        f"  Version:\t{component['Version']}",
                        f"  API version:\t{d['ApiVersion']} (minimum version {d['MinAPIVersion']})",
                        f"  Go version:\t{d['GoVersion']}",
                        f"  Git commit:\t{d['GitCommit']}",
                        f"  Built:\t{d['BuildTime']}",
                        f"  OS/Arch:\t{d['Os']}/{d['Arch']}",
                        f"  Experimental:\t{d['Experimental']}",
                    ]
                else:
                    lines.append(f"  Version:\t{component['Version']}")
                    lines += [f"  {key}:\t{d[key]}" for key in sorted(d)]
        # text/tabwriter(minwidth 20, tabwidth 1, padding 1)
        out = []
        for line in lines:
            if "\t" in line:
                label, value = line.split("\t", 1)
                line = label.ljust(max(20, len(label) + 1)) + value
            out.append(line)
        print("\n".join(out))
    if error:
        raise error
    return 0


def os_release_name():
    for line in (rooted_read("/etc/os-release") or "").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return "Linux"


def rooted_read(path):
    try:
        with open(rooted(path), encoding="utf-8") as handle:
            return handle.read()
    except OSError:
        return None


def mem_total():
    with open("/proc/meminfo", encoding="utf-8") as handle:
        text = handle.read()
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def cmd_info(client, args):
    opts, _ = parse_options(args, flags(format=("-f", "--format")), {})
    daemon = client.info()
    with State() as state:
        running = sum(1 for c in state.containers if c["State"]["Running"])
        containers, images = len(state.containers), len(state.images)
    info = {
        "ID": hashlib.sha256(os.uname().nodename.encode()).hexdigest()[:8],
        "Containers": containers,
        "ContainersRunning": running,
        "ContainersPaused": 0,
        "ContainersStopped": containers - running,
        "Images": images,
        "Driver": "overlay2",
        "LoggingDriver": "json-file",
        "CgroupDriver": "systemd",
        "CgroupVersion": "2",
        "KernelVersion": os.uname().release,
        "OperatingSystem": os_release_name(),
        "OSType": "linux",
        "Architecture": os.uname().machine,
        "NCPU": os.cpu_count(),
        "MemTotal": mem_total(),
        "DockerRootDir": daemon["DataRoot"],
        "Name": os.uname().nodename,
        "ServerVersion": daemon["ServerVersion"],
        "Runtimes": daemon["Runtimes"],
        "DefaultRuntime": daemon["DefaultRuntime"],
        "CDISpecDirs": ["/etc/cdi", "/var/run/cdi"],
        "Swarm": {"LocalNodeState": "inactive"},
        "InitBinary": "docker-init",
        "ContainerdCommit": {"ID": CONTAINERD_COMMIT},
        "RuncCommit": {"ID": RUNC_COMMIT},
        "InitCommit": {"ID": INIT_COMMIT},
        "LiveRestoreEnabled": bool(daemon["Config"].get("live-restore", False)),
        "ClientInfo": {"Version": VERSION, "Context": "default", "Debug": False},
    }
    fmt = opts.get("format")
    if fmt:
        print(go_json(info) if fmt in ("json", "{{json .}}") else Template(fmt).render(info))
        return 0
    lines = [
        "Client: Docker Engine - Community",
        f" Version:    {VERSION}",
        " Context:    default",
        " Debug Mode: false",
        "",
        "Server:",
        f" Containers: {containers}",
        f"  Running: {running}",
        "  Paused: 0",
        f"  Stopped: {containers - running}",
        f" Images: {images}",
        f" Server Version: {daemon['ServerVersion']}",
        " Storage Driver: overlay2",
        "  Backing Filesystem: extfs",
        "  Supports d_type: true",
        "  Using metacopy: false",
        "  Native Overlay Diff: true",
        "  userxattr: false",
        " Logging Driver: json-file",
        " Cgroup Driver: systemd",
        " Cgroup Version: 2",
        " Plugins:",
        "  Volume: local",
        "  Network: bridge host ipvlan macvlan null overlay",
        "  Log: awslogs fluentd gcplogs gelf journald json-file local splunk syslog",
        " CDI spec directories:",
        "  /etc/cdi",
        "  /var/run/cdi",
        " Swarm: inactive",
        " Runtimes: " + " ".join(sorted(daemon["Runtimes"])),
        f" Default Runtime: {daemon['DefaultRuntime']}",
        " Init Binary: docker-init",
        f" containerd version: {CONTAINERD_COMMIT}",
        f" runc version: {RUNC_COMMIT}",
        f" init version: {INIT_COMMIT}",
        " Security Options:",
        "  seccomp",
        "   Profile: builtin",
        "  cgroupns",
        f" Kernel Version: {info['KernelVersion']}",
        f" Operating System: {info['OperatingSystem']}",
        " OSType: linux",
        f" Architecture: {info['Architecture']}",
        f" CPUs: {info['NCPU']}",
        f" Total Memory: {bytes_size(info['MemTotal'])}",
        f" Name: {info['Name']}",
        f" ID: {info['ID']}",
        f" Docker Root Dir: {daemon['DataRoot']}",
        " Debug Mode: false",
        " Experimental: false",
        " Insecure Registries:",
        "  ::1/128",
        "  127.0.0.0/8",
        f" Live Restore Enabled: {'true' if info['LiveRestoreEnabled'] else 'false'}",
        "",
    ]
    print("\n".join(lines))
    return 0


def image_record(ref, digest):
    image_id = "sha256:" + hashlib.sha256(f"pdfleet-standin-config:{digest}".encode()).hexdigest()
    config = {
        "Env": [
            f"PATH={IMAGE_ROOT}/venv/bin:{SYSTEM_PATH}",
            "NVIDIA_VISIBLE_DEVICES=all",
            "NVIDIA_DRIVER_CAPABILITIES=compute,utility",
        ],
        "Cmd": ["/bin/bash"],
        "Entrypoint": None,
        "WorkingDir": "",
    }
    override = rooted_read(f"{IMAGE_ROOT}/image.json")
    if override:
        config.update(json.loads(override))
    return {
        "Id": image_id,
        "RepoTags": [],
        "RepoDigests": [],
        "Parent": "",
        "Comment": "",
        "Created": now_iso(),
        "DockerVersion": "",
        "Author": "",
        "Config": config,
        "Architecture": "amd64",
        "Os": "linux",
        "Size": 40_213_000_000,
        "Metadata": {"LastTagTime": NEVER},
        "_standin": {"name": ref.name, "created": time.time()},
    }


def cmd_pull(client, args):
    opts, positional = parse_options(
        args,
        flags("--platform"),
        flags("--disable-content-trust", quiet=("-q", "--quiet"), all_tags=("-a", "--all-tags")),
    )
    if len(positional) != 1:
        raise Fail("\"docker pull\" requires exactly 1 argument.\nSee 'docker pull --help'.")
    client.info()
    ref = Ref(positional[0])
    quiet = opts.get("quiet")
    lines = []
    if not ref.tag and not ref.digest:
        ref.tag = "latest"
        lines.append("Using default tag: latest")
    digest = (
        ref.digest or "sha256:" + hashlib.sha256(f"pdfleet-standin-image:{ref.name}:{ref.tag}".encode()).hexdigest()
    )
    with State() as state:
        fresh = Ref(ref.full())
        fresh.digest = digest
        existing = state.find_image(fresh.familiar())
        lines.append(f"{ref.full() if ref.digest else ref.tag}: Pulling from {ref.familiar_name}")
        if existing is None:
            image = next((i for i in state.images if i["Id"] == image_record(ref, digest)["Id"]), None)
            if image is None:
                image = image_record(ref, digest)
                state.images.append(image)
            layers = [hashlib.sha256(f"{digest}:{n}".encode()).hexdigest()[:12] for n in range(3)]
            lines += [f"{layer}: Pulling fs layer" for layer in layers]
            for layer in layers:
                lines += [f"{layer}: Verifying Checksum", f"{layer}: Download complete"]
            lines += [f"{layer}: Pull complete" for layer in layers]
            status = "Downloaded newer image for"
        else:
            image = existing
            status = "Image is up to date for"
        repo_digest = f"{ref.familiar_name}@{digest}"
        if repo_digest not in image["RepoDigests"]:
            image["RepoDigests"].append(repo_digest)
        if ref.tag:
            tag = f"{ref.familiar_name}:{ref.tag}"
            for other in state.images:
                if tag in other["RepoTags"] and other is not image:
                    other["RepoTags"].remove(tag)
            if tag not in image["RepoTags"]:
                image["RepoTags"].append(tag)
    lines += [f"Digest: {digest}", f"Status: {status} {ref.familiar()}"]
    if not quiet:
        print("\n".join(lines))
    print(ref.full())
    return 0


def image_rows(state, digests, filter_ref):
    rows = []
    for image in state.images:
        repos = {}
        for tag in image["RepoTags"]:
            repo, _, name = tag.rpartition(":")
            repos.setdefault(repo, {"tags": [], "digests": []})["tags"].append(name)
        for repo_digest in image["RepoDigests"]:
            repo, _, digest = repo_digest.partition("@")
            repos.setdefault(repo, {"tags": [], "digests": []})["digests"].append(digest)
        for repo, found in repos.items():
            if filter_ref and filter_ref != repo and not filter_ref.startswith(repo + ":"):
                continue
            for tag in found["tags"] or ["<none>"]:
                if filter_ref and ":" in filter_ref and filter_ref != f"{repo}:{tag}":
                    continue
                created = image["_standin"]["created"]
                rows.append({
                    "Repository": repo,
                    "Tag": tag,
                    "Digest": found["digests"][0] if found["digests"] else "<none>",
                    "ID": image["Id"][len("sha256:") :][:12],
                    "CreatedSince": human_duration(time.time() - created) + " ago",
                    "CreatedAt": time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(created)),
                    "Size": human_size(image["Size"]),
                    "VirtualSize": human_size(image["Size"]),
                    "SharedSize": "N/A",
                    "UniqueSize": "N/A",
                    "Containers": "N/A",
                })  # fmt: skip
    return rows


def cmd_images(client, args):
    opts, positional = parse_options(
        args,
        flags("--format", filter=("-f", "--filter")),
        flags("--digests", "--no-trunc", "--tree", quiet=("-q", "--quiet"), all=("-a", "--all")),
    )
    client.info()
    with State() as state:
        rows = image_rows(state, opts.get("digests"), positional[0] if positional else None)
    if opts.get("quiet"):
        print("".join(dict.fromkeys(row["ID"] + "\n" for row in rows)), end="")
        return 0
    headers = {"Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST", "ID": "IMAGE ID",
               "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE"}  # fmt: skip
    if opts.get("digests"):
        default = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    else:
        default = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    sys.stdout.write(format_rows(opts.get("format"), rows, headers, default))
    return 0


def public(record):
    return {k: v for k, v in record.items() if not k.startswith("_")}


def cmd_inspect(client, args, kind=None):
    opts, positional = parse_options(args, flags("--type", format=("-f", "--format")), flags(size=("-s", "--size")))
    kind = kind or opts.get("type")
    if not positional:
        raise Fail("\"docker inspect\" requires at least 1 argument.\nSee 'docker inspect --help'.")
    client.info()
    found, missing = [], []
    with State() as state:
        for name in positional:
            item = None
            if kind in (None, "container"):
                item = state.find_container(name)
            if item is None and kind in (None, "image"):
                item = state.find_image(name)
            if item is None:
                missing.append(name)
            else:
                found.append(public(item))
    fmt = opts.get("format")
    if fmt:
        template = Template(fmt)
        for item in found:
            print(template.render(item))
    else:
        print(json.dumps(found, indent=4, ensure_ascii=False))
    for name in missing:
        what = {"image": "image", "container": "container"}.get(kind, "object")
        print(f"Error response from daemon: No such {what}: {name}", file=sys.stderr)
    return 1 if missing else 0


def container_display_image(container):
    given = container["Config"]["Image"]
    try:
        ref = Ref(given)
    except Fail:
        return given
    if container["Image"][len("sha256:") :].startswith(given):
        return given[:12]
    if ref.tag:
        return f"{ref.familiar_name}:{ref.tag}"
    return ref.familiar_name


def container_status(container):
    state = container["State"]
    if state["Running"]:
        return "Up " + human_duration(time.time() - container["_standin"]["started"])
    finished = container["_standin"].get("finished") or time.time()
    return f"Exited ({state['ExitCode']}) {human_duration(time.time() - finished)} ago"


def container_row(container, trunc=True):
    command = " ".join((container["Config"]["Entrypoint"] or []) + container["Config"]["Cmd"])
    created = container["_standin"]["created"]
    return {
        "ID": container["Id"][:12] if trunc else container["Id"],
        "Image": container_display_image(container) if trunc else container["Config"]["Image"],
        "Command": go_quote(ellipsis(command, 20) if trunc else command),
        "CreatedAt": time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(created)),
        "RunningFor": human_duration(time.time() - created) + " ago",
        "Ports": "",
        "State": container["State"]["Status"],
        "Status": container_status(container),
        "Size": "0B",
        "Names": container["Name"].lstrip("/"),
        "Labels": ",".join(f"{k}={v}" for k, v in sorted(container["Config"]["Labels"].items())),
        "Mounts": ",".join(b.split(":")[0] for b in container["HostConfig"]["Binds"]),
        "Networks": container["HostConfig"]["NetworkMode"],
        "LocalVolumes": "0",
    }


def cmd_ps(client, args):
    opts, _ = parse_options(
        args,
        flags("--format", filter=("-f", "--filter"), last=("-n", "--last")),
        flags(
            "--no-trunc", all=("-a", "--all"), quiet=("-q", "--quiet"), size=("-s", "--size"), latest=("-l", "--latest")
        ),
    )
    client.info()
    filters = opts.get("filter", [])
    with State() as state:
        containers = list(state.containers)
    if not opts.get("all"):
        containers = [c for c in containers if c["State"]["Running"]]
    for item in filters:
        key, _, value = item.partition("=")
        if key == "name":
            containers = [c for c in containers if re.search(value, c["Name"].lstrip("/"))]
        elif key == "status":
            containers = [c for c in containers if c["State"]["Status"] == value]
        elif key == "id":
            containers = [c for c in containers if c["Id"].startswith(value)]
        elif key == "ancestor":
            containers = [c for c in containers if c["Config"]["Image"] == value or c["Image"].endswith(value)]
        else:
            raise Fail(f"Error response from daemon: invalid filter '{key}'")
    containers.sort(key=lambda c: c["_standin"]["created"], reverse=True)
    trunc = not opts.get("no-trunc")
    rows = [container_row(c, trunc) for c in containers]
    if opts.get("quiet"):
        print("".join(row["ID"] + "\n" for row in rows), end="")
        return 0
    headers = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "RunningFor": "CREATED",
               "CreatedAt": "CREATED AT", "Status": "STATUS", "State": "STATE", "Ports": "PORTS", "Names": "NAMES",
               "Size": "SIZE", "Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS"}  # fmt: skip
    default = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
    sys.stdout.write(format_rows(opts.get("format"), rows, headers, default))
    return 0


def signal_number(name):
    if name.isdigit():
        return int(name)
    name = name.upper()
    return getattr(signal, name if name.startswith("SIG") else "SIG" + name)


def stop_process(pid, starttime, timeout, sig):
    """Signal a container's process, wait up to timeout, then SIGKILL it and its descendants. True if killed."""
    if not process_alive(pid, starttime):
        return False
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process_alive(pid, starttime):
            return False
        time.sleep(0.05)
    for victim in [pid] + descendants(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)
    for _ in range(100):
        if not process_alive(pid, starttime):
            break
        time.sleep(0.05)
    return True


def stop_container(container, timeout, sig):
    if container["State"]["Running"] and stop_process(
        container["State"]["Pid"], container["_standin"]["starttime"], timeout, sig
    ):
        container["_standin"]["exit_code"] = 137


def mark_exited(container):
    container["State"].update(Running=False, Status="exited", Pid=0, FinishedAt=now_iso())
    container["State"]["ExitCode"] = container["_standin"].pop("exit_code", -1)
    container["_standin"]["finished"] = time.time()


def cmd_stop(client, args):
    opts, positional = parse_options(args, flags(time=("-t", "--time", "--timeout"), signal=("-s", "--signal")), {})
    if not positional:
        raise Fail("\"docker stop\" requires at least 1 argument.\nSee 'docker stop --help'.")
    client.info()
    code = 0
    for name in positional:
        with State() as state:  # not held while waiting: other docker commands go on meanwhile
            container = state.find_container(name)
            if container is None:
                print(f"Error response from daemon: No such container: {name}", file=sys.stderr)
                code = 1
                continue
            container_id, running = container["Id"], container["State"]["Running"]
            pid, starttime = container["State"]["Pid"], container["_standin"].get("starttime")
            timeout = int(opts.get("time", container["_standin"].get("stop_timeout", 10)))
            sig = signal_number(opts.get("signal") or container["_standin"].get("stop_signal", "SIGTERM"))
        killed = running and stop_process(pid, starttime, timeout, sig)
        with State() as state:
            container = state.find_container(container_id)
            shim = container and container["_standin"].get("shim")
            if container is not None and container["State"]["Running"] and not (shim and process_alive(*shim)):
                if killed:
                    container["_standin"]["exit_code"] = 137
                mark_exited(container)
            state.refresh()
        print(name)
    return code


def cmd_kill(client, args):
    opts, positional = parse_options(args, flags(signal=("-s", "--signal")), {})
    client.info()
    code = 0
    for name in positional:
        with State() as state:
            container = state.find_container(name)
            if container is None:
                print(f"Error response from daemon: No such container: {name}", file=sys.stderr)
                code = 1
                continue
            if not container["State"]["Running"]:
                print(f"Error response from daemon: cannot kill container: {name}: container {container['Id']} is "
                      "not running", file=sys.stderr)  # fmt: skip
                code = 1
                continue
            os.kill(container["State"]["Pid"], signal_number(opts.get("signal", "SIGKILL")))
        print(name)
    return code


def cmd_rm(client, args):
    opts, positional = parse_options(
        args, {}, flags(force=("-f", "--force"), volumes=("-v", "--volumes"), link=("-l", "--link"))
    )
    if not positional:
        raise Fail("\"docker rm\" requires at least 1 argument.\nSee 'docker rm --help'.")
    client.info()
    code = 0
    for name in positional:
        with State() as state:
            container = state.find_container(name)
            if container is None:
                print(f"Error response from daemon: No such container: {name}", file=sys.stderr)
                code = 1
                continue
            if container["State"]["Running"]:
                if not opts.get("force"):
                    print(f'Error response from daemon: cannot remove container "{container["Name"]}": container is '
                          "running: stop the container before removing or force remove", file=sys.stderr)  # fmt: skip
                    code = 1
                    continue
                stop_container(container, 0, signal.SIGKILL)
            state.containers.remove(container)
            shutil.rmtree(os.path.join(state.dir, "containers", container["Id"]), ignore_errors=True)
        print(name)
    return code


def cmd_rmi(client, args):
    opts, positional = parse_options(args, {}, flags("--no-prune", force=("-f", "--force")))
    client.info()
    code = 0
    with State() as state:
        for name in positional:
            image = state.find_image(name)
            if image is None:
                print(f"Error response from daemon: No such image: {name}", file=sys.stderr)
                code = 1
                continue
            users = [c for c in state.containers if c["Image"] == image["Id"]]
            if users and not opts.get("force"):
                print(f"Error response from daemon: conflict: unable to remove repository reference \"{name}\" "
                      f"(must force) - container {users[0]['Id'][:12]} is using its referenced image "
                      f"{image['Id'][7:19]}", file=sys.stderr)  # fmt: skip
                code = 1
                continue
            for tag in image["RepoTags"]:
                print(f"Untagged: {tag}")
            for digest in image["RepoDigests"]:
                print(f"Untagged: {digest}")
            print(f"Deleted: {image['Id']}")
            state.images.remove(image)
    return code


def cmd_logs(client, args):
    _opts, positional = parse_options(
        args,
        flags("--since", "--until", tail=("-n", "--tail")),
        flags("--details", follow=("-f", "--follow"), timestamps=("-t", "--timestamps")),
    )
    client.info()
    with State() as state:
        container = state.find_container(positional[0]) if positional else None
        if container is None:
            raise Fail(f"Error response from daemon: No such container: {positional[0] if positional else ''}")
        path = container["_standin"].get("log")
    if not path:
        print("pdfleet sandbox stand-in: a foreground container's output went to its caller (for a systemd unit: "
              "journalctl -u UNIT)", file=sys.stderr)  # fmt: skip
        return 0
    with open(path, "rb") as handle:
        sys.stdout.buffer.write(handle.read())
    return 0


# ------------------------------------------------------------------------------------------------- docker run


def parse_env_file(path):
    """docker's opts.ParseEnvFile: left-trimmed lines, # comments, KEY=VALUE kept verbatim, bare KEY from env."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as error:
        raise Fail(
            f"docker: open {path}: {error.strerror.lower()}\n\nRun 'docker run --help' for more information", 125
        ) from None
    env = []
    for number, line in enumerate(text.lstrip("\ufeff").splitlines(), start=1):
        line = line.lstrip()
        if not line or line.startswith("#"):
            continue
        key, eq, value = line.partition("=")
        if not key or re.search(r"\s", key):
            raise Fail(
                f"docker: poorly formatted environment: variable '{key}' contains whitespaces (line {number})", 125
            )
        if eq:
            env.append(f"{key}={value}")
        elif key in os.environ:
            env.append(f"{key}={os.environ[key]}")
    return env


def parse_options(args, value_flags, bool_flags, stop_at_positional=False):
    """cobra/pflag-like parsing: --flag=value, --flag value, -f value, combined short booleans (-it).
    value_flags and bool_flags map each flag to its option key; repeatable options collect lists."""
    opts, positional = {}, []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            positional += args[i + 1 :]
            break
        if not arg.startswith("-") or arg == "-":
            if stop_at_positional:
                positional += args[i:]
                break
            positional.append(arg)
            i += 1
            continue
        name, eq, inline = arg.partition("=")
        if name in value_flags:
            if not eq:
                i += 1
                if i >= len(args):
                    raise Fail(f"flag needs an argument: {name}", 125)
                inline = args[i]
            key = value_flags[name]
            if key in REPEATED:
                opts.setdefault(key, []).append(inline)
            else:
                opts[key] = inline
        elif name in bool_flags:
            opts[bool_flags[name]] = inline.lower() != "false" if eq else True
        elif not name.startswith("--") and len(name) > 2 and all(f"-{c}" in bool_flags for c in name[1:]):
            for c in name[1:]:
                opts[bool_flags[f"-{c}"]] = True
        else:
            raise Fail(f"unknown flag: {name}", 125)
        i += 1
    return opts, positional


def flags(*names, **short):
    """{"--name": "name", ...} plus short aliases given as key=("-x", ...)."""
    table = {name: name.lstrip("-") for name in names}
    for key, aliases in short.items():
        for alias in aliases if isinstance(aliases, tuple) else (aliases,):
            table[alias] = key.replace("_", "-")
    return table


def parse_ulimit(text):
    name, _, limits = text.partition("=")
    if name not in ULIMITS or not limits:
        raise Fail(f'docker: invalid argument "{text}" for "--ulimit" flag: invalid ulimit type: {name}', 125)
    soft, _, hard = limits.partition(":")
    soft = int(soft)
    hard = int(hard) if hard else soft
    return name, soft, hard


def parse_volume(text):
    parts = text.split(":")
    if len(parts) == 1:
        raise Fail(f"docker: pdfleet sandbox stand-in: anonymous volume {text!r} is not simulated", 125)
    source, target = parts[0], parts[1]
    options = parts[2].split(",") if len(parts) > 2 else []
    if not source.startswith("/"):
        raise Fail(
            f"docker: pdfleet sandbox stand-in: named volume {source!r} is not simulated (bind mounts only)", 125
        )
    if not target.startswith("/"):
        raise Fail(
            f"docker: Error response from daemon: invalid volume specification: '{text}': invalid mount config for "
            f"type \"bind\": invalid mount path: '{target}' mount path must be absolute",
            125,
        )
    return source, target, "ro" in options, True


def parse_mount(text):
    fields = dict(item.partition("=")[::2] for item in text.split(","))
    if fields.get("type", "volume") != "bind":
        raise Fail(
            f"docker: pdfleet sandbox stand-in: --mount type={fields.get('type', 'volume')} is not simulated", 125
        )
    source = fields.get("source") or fields.get("src")
    target = fields.get("target") or fields.get("destination") or fields.get("dst")
    readonly = "readonly" in fields or "ro" in fields
    if not os.path.exists(source):
        raise Fail(
            'docker: Error response from daemon: invalid mount config for type "bind": bind source path does not '
            f"exist: {source}",
            125,
        )
    return source, target, readonly, False


def generate_name(container_id):
    h = int(container_id[:8], 16)
    return f"{ADJECTIVES[h % len(ADJECTIVES)]}_{SURNAMES[(h // 7) % len(SURNAMES)]}"


def run_usage(message):
    return Fail(f"docker: {message}\n\nRun 'docker run --help' for more information", 125)


def cmd_run(client, args):
    opts, positional = parse_options(
        args,
        {f: RUN_ALIASES.get(f, f.lstrip("-")) for f in RUN_VALUE_FLAGS},
        {f: RUN_ALIASES.get(f, f.lstrip("-")) for f in RUN_BOOL_FLAGS},
        stop_at_positional=True,
    )
    if not positional:
        raise Fail(
            "\"docker run\" requires at least 1 argument.\nSee 'docker run --help'.\n\nUsage:  docker run [OPTIONS] "
            "IMAGE [COMMAND] [ARG...]\n\nCreate and run a new container from an image",
            125,
        )
    image_text, command = positional[0], positional[1:]
    try:
        daemon = client.info(prefix="docker: ")
    except Fail as fail:
        raise Fail(f"{fail}\n\nRun 'docker run --help' for more information", 125) from None
    try:
        Ref(image_text) if not re.fullmatch(r"(sha256:)?[0-9a-f]{12,64}", image_text) else None
    except Fail:
        raise run_usage("invalid reference format") from None
    env_files = [e for path in opts.get("env-file", []) for e in parse_env_file(path)]
    ulimits = [parse_ulimit(u) for u in opts.get("ulimit", [])]
    binds = [parse_volume(v) for v in opts.get("volume", [])] + [parse_mount(m) for m in opts.get("mount", [])]
    runtime = opts.get("runtime") or daemon["DefaultRuntime"]
    if runtime not in daemon["Runtimes"]:
        raise run_usage(f"Error response from daemon: unknown or invalid runtime name: {runtime}")
    runtime_path = daemon["Runtimes"][runtime]["path"]
    if runtime_path not in ("runc",) and not executable_on_host(runtime_path):
        raise run_usage(
            "Error response from daemon: failed to create task for container: failed to create shim task: OCI "
            f'runtime create failed: unable to retrieve OCI runtime error: exec: "{runtime_path}": executable file '
            "not found in $PATH: unknown"
        )
    if opts.get("gpus") and not executable_on_host(HOOK):
        raise run_usage('Error response from daemon: could not select device driver "" with capabilities: [[gpu]]')

    with State() as state:
        image = state.find_image(image_text)
        pull = opts.get("pull", "missing")
        if image is None or pull == "always":
            if image is None and pull != "never":
                print(f"Unable to find image '{image_text}' locally", file=sys.stderr)
            if pull == "never":
                raise run_usage(f"Error response from daemon: No such image: {image_text}")
            raise run_usage(
                'Error response from daemon: Get "https://registry-1.docker.io/v2/": dial tcp: lookup '
                "registry-1.docker.io: no such host\n(pdfleet sandbox stand-in: there is no registry; "
                "images exist only after `docker pull IMAGE`)"
            )
        container_id = hashlib.sha256(f"{time.time_ns()}:{os.getpid()}:{image_text}".encode()).hexdigest()
        name = opts.get("name") or generate_name(container_id)
        if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", name):
            raise run_usage(
                f"Error response from daemon: Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are "
                "allowed"
            )
        clash = state.find_container(name)
        if clash is not None and clash["Name"] == "/" + name:
            raise run_usage(
                f'Error response from daemon: Conflict. The container name "/{name}" is already in use by container '
                f'"{clash["Id"]}". You have to remove (or rename) that container to be able to reuse that name.'
            )
        config = image["Config"]
        entrypoint = [opts["entrypoint"]] if opts.get("entrypoint") else (config.get("Entrypoint") or [])
        if opts.get("entrypoint") == "":
            entrypoint = []
        cmd = command or ([] if opts.get("entrypoint") else list(config.get("Cmd") or []))
        argv = entrypoint + cmd
        if not argv:
            raise run_usage("Error response from daemon: no command specified")
        network = opts.get("network", "bridge")
        hostname = opts.get("hostname") or (os.uname().nodename if network == "host" else container_id[:12])
        env = {}
        for item in config.get("Env") or []:
            key, _, value = item.partition("=")
            env[key] = value
        venv_bin = f"{IMAGE_ROOT}/venv/bin"
        env["PATH"] = env.get("PATH", f"{venv_bin}:{SYSTEM_PATH}").replace(venv_bin, rooted(venv_bin))
        env["HOSTNAME"] = hostname
        settings = list(env_files)
        for item in opts.get("env", []):
            if "=" in item:
                settings.append(item)
            elif item in os.environ:
                settings.append(f"{item}={os.environ[item]}")
        for item in settings:
            key, _, value = item.partition("=")
            env[key] = value
        user = opts.get("user")
        uid = gid = None
        home = "/root"
        if user:
            name_part, _, group_part = user.partition(":")
            try:
                entry = pwd.getpwuid(int(name_part)) if name_part.isdigit() else pwd.getpwnam(name_part)
                uid, gid, home = entry.pw_uid, entry.pw_gid, entry.pw_dir
            except KeyError:
                if not name_part.isdigit():
                    raise run_usage(
                        f"Error response from daemon: unable to find user {name_part}: no matching entries in "
                        "passwd file"
                    ) from None
                uid, gid = int(name_part), 0
            if group_part:
                gid = int(group_part)
        env.setdefault("HOME", home)
        program = shutil.which(argv[0], path=env["PATH"]) if "/" not in argv[0] else argv[0]
        if program is None or not os.access(program, os.X_OK):
            raise Fail(
                "docker: Error response from daemon: failed to create task for container: failed to create shim task: "
                "OCI runtime create failed: runc create failed: unable to start container process: error during "
                f'container init: exec: "{argv[0]}": executable file not found in $PATH: unknown\n\n'
                "Run 'docker run --help' for more information",
                127,
            )
        workdir = opts.get("workdir") or config.get("WorkingDir") or "/"
        record = {
            "Id": container_id,
            "Created": now_iso(),
            "Path": argv[0],
            "Args": argv[1:],
            "State": {
                "Status": "running",
                "Running": True,
                "Paused": False,
                "Restarting": False,
                "OOMKilled": False,
                "Dead": False,
                "Pid": 0,
                "ExitCode": 0,
                "Error": "",
                "StartedAt": now_iso(),
                "FinishedAt": NEVER,
            },  # fmt: skip
            "Image": image["Id"],
            "Name": "/" + name,
            "RestartCount": 0,
            "Driver": "overlay2",
            "Platform": "linux",
            "HostConfig": {
                "Binds": [f"{s}:{t}{':ro' if ro else ''}" for s, t, ro, _ in binds],
                "NetworkMode": network,
                "IpcMode": opts.get("ipc", "private"),
                "PidMode": opts.get("pid", ""),
                "Privileged": bool(opts.get("privileged")),
                "AutoRemove": bool(opts.get("rm")),
                "Runtime": runtime,
                "ShmSize": opts.get("shm-size", "64m"),
                "RestartPolicy": {"Name": opts.get("restart", "no"), "MaximumRetryCount": 0},
                "Ulimits": [{"Name": n, "Soft": s, "Hard": h} for n, s, h in ulimits],
                "DeviceRequests": [{"Driver": "", "Count": -1, "Capabilities": [["gpu"]]}]
                if opts.get("gpus")
                else None,
                "CapAdd": opts.get("cap-add"),
                "SecurityOpt": opts.get("security-opt"),
                "Devices": opts.get("device", []),
            },
            "Config": {
                "Hostname": hostname,
                "User": user or "",
                "Env": [f"{k}={v}" for k, v in env.items()],
                "Cmd": cmd,
                "Image": image_text,
                "WorkingDir": workdir if workdir != "/" else "",
                "Entrypoint": entrypoint or None,
                "Labels": dict(item.partition("=")[::2] for item in opts.get("label", [])),
                "StopSignal": opts.get("stop-signal"),
            },
            "_standin": {
                "created": time.time(),
                "started": time.time(),
                "stop_timeout": int(opts.get("stop-timeout", 10)),
                "stop_signal": opts.get("stop-signal", "SIGTERM"),
            },
        }
        exec_argv = [program] + argv[1:]
        remap = [b for b in binds if b[0] != b[1] or b[2]]
        if remap:
            if os.geteuid() == 0 and shutil.which("unshare") and shutil.which("mount"):
                script = ""
                for source, target, readonly, create in binds:
                    if create:
                        os.makedirs(source, exist_ok=True)
                    quoted_source, quoted_target = shlex.quote(source), shlex.quote(target)
                    script += f"mkdir -p {quoted_target} && mount --bind {quoted_source} {quoted_target} && "
                    if readonly:
                        script += f"mount -o remount,bind,ro {shlex.quote(target)} && "
                script += 'exec "$@"'
                exec_argv = [
                    shutil.which("unshare"),
                    "--mount",
                    "--propagation",
                    "private",
                    "/bin/sh",
                    "-c",
                    script,
                    "sh",
                ] + exec_argv
            else:
                print("pdfleet sandbox stand-in: volumes are not remapped (needs root and unshare); the command sees "
                      "the host's paths", file=sys.stderr)  # fmt: skip
        else:
            for source, _target, _ro, create in binds:
                if create:
                    os.makedirs(source, exist_ok=True)

        def prepare():
            for limit_name, soft, hard in ulimits:
                soft = resource.RLIM_INFINITY if soft < 0 else soft
                hard = resource.RLIM_INFINITY if hard < 0 else hard
                try:
                    resource.setrlimit(ULIMITS[limit_name], (soft, hard))
                except (ValueError, OSError) as error:
                    print(f"pdfleet sandbox stand-in: --ulimit {limit_name}: {error}", file=sys.stderr)
            os.makedirs(workdir, exist_ok=True)
            os.chdir(workdir)
            if gid is not None:
                os.setgroups([])
                os.setgid(gid)
            if uid is not None:
                os.setuid(uid)

        if opts.get("detach"):
            log_dir = os.path.join(state.dir, "containers", container_id)
            os.makedirs(log_dir, exist_ok=True)
            record["_standin"].update(log=os.path.join(log_dir, f"{container_id}-json.log"), starting=True)
        else:
            record["State"]["Pid"] = os.getpid()
            record["_standin"]["starttime"] = process_starttime(os.getpid())
        state.containers.append(record)
    if opts.get("detach"):
        ready_r, ready_w = os.pipe()
        if os.fork() == 0:
            os.close(ready_r)
            shim(record, exec_argv, env, prepare, ready_w)
        os.close(ready_w)
        if os.read(ready_r, 1) != b"1":
            raise Fail(f"docker: Error response from daemon: failed to start container {container_id}", 125)
        print(container_id)
        return 0
    prepare()
    sys.stdout.flush()
    try:
        os.execve(exec_argv[0], exec_argv, env)
    except OSError as error:
        raise Fail(f"docker: Error response from daemon: failed to create task for container: {error}", 126) from None
    return 0


def shim(record, exec_argv, env, prepare, ready_w):
    """The detached container's parent (like containerd-shim): starts it, records its exit status. It lets go of
    the CLI's stdin/stdout/stderr, so that `docker run -d` returns to its caller (an SSH session, pyinfra)."""
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    with open(record["_standin"]["log"], "ab") as log:
        try:
            child = subprocess.Popen(exec_argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                     preexec_fn=prepare)  # fmt: skip
        except OSError as error:
            log.write(f"{error}\n".encode())
            with State() as state:
                container = state.find_container(record["Id"])
                container["_standin"].pop("starting", None)
                container["State"]["Pid"] = -1
                container["_standin"]["starttime"] = "0"
            os._exit(1)
    with State() as state:
        container = state.find_container(record["Id"])
        container["State"]["Pid"] = child.pid
        container["_standin"]["starttime"] = process_starttime(child.pid)
        container["_standin"]["shim"] = [os.getpid(), process_starttime(os.getpid())]
        container["_standin"].pop("starting", None)
    os.write(ready_w, b"1")
    os.close(ready_w)
    code = child.wait()
    with State() as state:
        container = state.find_container(record["Id"])
        if container is not None:
            code = 128 - code if code < 0 else code
            container["_standin"].pop("shim", None)
            if container["State"]["Running"]:
                container["_standin"]["exit_code"] = code
                mark_exited(container)
            else:
                container["State"]["ExitCode"] = code
            state.refresh()
    os._exit(0)


def executable_on_host(program):
    if program.startswith("/"):
        return os.access(rooted(program), os.X_OK)
    return any(os.access(rooted(f"{directory}/{program}"), os.X_OK) for directory in SYSTEM_PATH.split(":"))


# ------------------------------------------------------------------------------------------------- main

COMMANDS = {
    "version": cmd_version, "info": cmd_info, "pull": cmd_pull, "images": cmd_images, "inspect": cmd_inspect,
    "run": cmd_run, "ps": cmd_ps, "stop": cmd_stop, "kill": cmd_kill, "rm": cmd_rm, "rmi": cmd_rmi,
    "logs": cmd_logs,
}  # fmt: skip
SUBCOMMANDS = {
    ("image", "ls"): cmd_images, ("image", "list"): cmd_images, ("image", "pull"): cmd_pull,
    ("image", "rm"): cmd_rmi, ("image", "inspect"): lambda c, a: cmd_inspect(c, a, "image"),
    ("container", "ls"): cmd_ps, ("container", "list"): cmd_ps, ("container", "run"): cmd_run,
    ("container", "stop"): cmd_stop, ("container", "rm"): cmd_rm, ("container", "kill"): cmd_kill,
    ("container", "logs"): cmd_logs, ("container", "inspect"): lambda c, a: cmd_inspect(c, a, "container"),
    ("system", "info"): cmd_info,
}  # fmt: skip
REAL_COMMANDS = {
    "attach", "build", "commit", "cp", "create", "diff", "events", "exec", "export", "history", "import", "load",
    "login", "logout", "pause", "port", "push", "rename", "restart", "save", "search", "start", "stats", "tag",
    "top", "unpause", "update", "wait", "builder", "buildx", "compose", "config", "container", "context", "image",
    "manifest", "network", "node", "plugin", "secret", "service", "stack", "swarm", "system", "trust", "volume",
}  # fmt: skip


def main(argv):
    host = None
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        name, eq, inline = argv[i].partition("=")
        if name in ("-H", "--host", "-l", "--log-level", "--config", "-c", "--context"):
            if not eq:
                i += 1
                inline = argv[i] if i < len(argv) else ""
            if name in ("-H", "--host"):
                host = inline
        elif name in ("-v", "--version"):
            print(f"Docker version {VERSION}, build {CLIENT_COMMIT}")
            return 0
        elif name in ("-D", "--debug", "--tls", "--tlsverify"):
            pass
        elif name in ("-h", "--help"):
            print("Usage:  docker [OPTIONS] COMMAND\n\n(pdfleet sandbox stand-in: version info pull images inspect "
                  "run ps stop kill rm rmi logs image container)")  # fmt: skip
            return 0
        else:
            raise Fail(f"unknown flag: {name}\nSee 'docker --help'.", 125)
        i += 1
    args = argv[i:]
    if not args:
        print("Usage:  docker [OPTIONS] COMMAND")
        return 0
    client = Client(host)
    if tuple(args[:2]) in SUBCOMMANDS:
        return SUBCOMMANDS[tuple(args[:2])](client, args[2:])
    if args[0] in COMMANDS:
        return COMMANDS[args[0]](client, args[1:])
    if args[0] in REAL_COMMANDS:
        raise Fail(f"pdfleet sandbox stand-in: 'docker {' '.join(args[:2])}' is not simulated")
    raise Fail(f"docker: unknown command: docker {args[0]}\n\nRun 'docker --help' for more information")


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except Fail as fail:
        print(str(fail), file=sys.stderr)
        sys.exit(fail.code)
    except BrokenPipeError:
        sys.exit(0)
