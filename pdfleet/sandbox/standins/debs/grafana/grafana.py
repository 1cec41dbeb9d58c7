#!/usr/bin/python3 -I
"""pdfleet sandbox stand-in for /usr/share/grafana/bin/grafana (package grafana @@GRAFANA_VERSION@@).

`grafana server [--config FILE] [--homepath DIR] [--pidfile FILE] [--packaging deb] [cfg:[default.]SECTION.KEY=V]`
reads its settings the way Grafana does: conf/defaults.ini under the home path, then the `cfg:default.*` arguments,
then --config (the deb's unit passes /etc/grafana/grafana.ini), then GF_<SECTION>_<KEY> environment variables, then
the other `cfg:` arguments; ${VAR} and $__env{VAR} are expanded. It provisions what Grafana provisions from
[paths] provisioning at start:
  datasources/*.yaml   apiVersion 1, datasources (name, type, uid, url, access, isDefault, jsonData, ...); a file
                       that does not parse, a data source without a name or two defaults in one org stop the server
                       (exit 1), as they stop Grafana
  dashboards/*.yaml    providers of type file (name, folder, options.path, foldersFromFilesStructure,
                       updateIntervalSeconds); every *.json under options.path (hidden directories skipped) is a
                       dashboard; one that does not parse or has no title is logged ("failed to load dashboard from ",
                       "failed to save dashboard") and left out, and the server goes on; the directories are read
                       again every updateIntervalSeconds (10)
and serves [server] http_addr:http_port (3000): GET /api/health (no login), /api/search, /api/folders,
/api/dashboards/uid/UID, /api/datasources[/uid/UID|/name/NAME] (Admin only, as in Grafana), /login; logins are
HTTP basic auth with [security] admin_user / admin_password (admin/admin) or [auth.anonymous] (org_role, Viewer).
It writes --pidfile, logs in Grafana's logfmt to stdout and [paths] logs/grafana.log, and tells systemd it is ready.

Grafana itself saves a dashboard whose panels name a data source that does not exist (the panel shows an error when
viewed); so does the stand-in, which also logs a warning marked "pdfleet sandbox stand-in" naming it.
Not simulated: the web UI, users and organisations beyond the admin, saving through the API, alerting, plugins,
`grafana cli` (exit 1).
"""

import base64
import configparser
import contextlib
import datetime
import hashlib
import json
import os
import re
import signal
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standin_lib import rooted, sd_notify, write_text

VERSION = "@@GRAFANA_VERSION@@"
COMMIT = "pdfleet-sandbox-stand-in"
HOME = "/usr/share/grafana"
BUILTIN_DATASOURCES = {"grafana", "-- Grafana --", "-- Mixed --", "-- Dashboard --", "dashboard"}
LOG_FILE = None
LOG_LOCK = threading.Lock()


# ------------------------------------------------------------------------------------------------ logging


def log(logger, level, msg, context=(), **attrs):
    """Grafana's console/file format (logfmt): logger, the logger's context, time, level, message, attributes."""

    def quote(value):
        value = str(value)
        if value == "" or any(c in value for c in ' ="\\\n\t'):
            return json.dumps(value)
        return value

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"
    line = f"logger={logger}" + "".join(f" {k}={quote(v)}" for k, v in context)
    line += f" t={now} level={level} msg={quote(msg)}"
    line += "".join(f" {k}={quote(v)}" for k, v in attrs.items())
    with LOG_LOCK:
        print(line, flush=True)
        if LOG_FILE:
            try:
                with open(LOG_FILE, "a", encoding="utf-8") as handle:
                    handle.write(line + "\n")
            except OSError:
                pass


def die(message):
    print(f"Error: \u2717 {message}", file=sys.stderr, flush=True)
    sys.exit(1)


# ------------------------------------------------------------------------------------------------ settings


def expand(value):
    value = re.sub(r"\$__env\{([^}]*)\}", lambda m: os.environ.get(m.group(1), ""), value)
    return re.sub(r"\$\{([^}]*)\}", lambda m: os.environ.get(m.group(1), ""), value)


def read_ini(path):
    """go-ini as Grafana uses it: keys before any section, ';' and '#' comments, no interpolation."""
    parser = configparser.RawConfigParser(comment_prefixes=(";", "#"), inline_comment_prefixes=None, strict=False,
                                          default_section="__default_unused__", allow_no_value=True)  # fmt: skip
    parser.optionxform = str
    with open(rooted(path), encoding="utf-8") as handle:
        parser.read_string("[__root__]\n" + handle.read(), source=path)
    return {section: dict(parser.items(section)) for section in parser.sections()}


class Settings:
    def __init__(self, homepath, config, overrides):
        self.values = {}
        self.files = []
        defaults = f"{homepath}/conf/defaults.ini"
        if not os.path.exists(rooted(defaults)):
            die("Grafana-server Init Failed: Could not find config defaults, make sure homepath command line "
                "parameter is set or working directory is homepath")  # fmt: skip
        self.merge(read_ini(defaults))
        self.files.append(defaults)
        for default, section, key, value in overrides:
            if default:
                self.values.setdefault(section, {})[key] = value
        if config and not os.path.exists(rooted(config)):
            die(f"failed to load configuration: could not find config file {config}")
        config = config or f"{homepath}/conf/custom.ini"  # optional without --config
        if os.path.exists(rooted(config)):
            self.merge(read_ini(config))
            self.files.append(config)
        for section, keys in self.values.items():
            for key in keys:
                env = "GF_" + re.sub(r"[.-]", "_", section.upper()) + "_" + key.upper()
                if env in os.environ:
                    keys[key] = os.environ[env]
        for default, section, key, value in overrides:
            if not default:
                self.values.setdefault(section, {})[key] = value
        self.homepath = homepath

    def merge(self, data):
        for section, keys in data.items():
            target = self.values.setdefault(section, {})
            target.update({k: v for k, v in keys.items() if v is not None})

    def get(self, section, key, default=""):
        return expand(str(self.values.get(section, {}).get(key, default)))

    def boolean(self, section, key, default=False):
        return self.get(section, key, str(default)).strip().lower() in ("true", "1", "yes", "on")

    def path(self, section, key):
        value = self.get(section, key)
        return value if value.startswith("/") else f"{self.homepath}/{value}"


# ------------------------------------------------------------------------------------------------ provisioning


def load_yaml(path):
    import yaml  # python3-yaml: a dependency of the stand-in package

    with open(rooted(path), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def interpolate(value):
    """Provisioning files: $VAR / ${VAR} from the environment, $$ for a literal $."""
    if isinstance(value, str):
        return re.sub(r"\$\$|\$\{(\w+)\}|\$(\w+)",
                      lambda m: "$" if m.group(0) == "$$" else os.environ.get(m.group(1) or m.group(2), ""),
                      value)  # fmt: skip
    if isinstance(value, list):
        return [interpolate(v) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v) for k, v in value.items()}
    return value


def yaml_files(directory):
    real = rooted(directory)
    if not os.path.isdir(real):
        return []
    return [f"{directory}/{name}" for name in sorted(os.listdir(real)) if name.endswith((".yaml", ".yml"))]


def short_uid(seed):
    return hashlib.sha256(seed.encode()).hexdigest()[:14]


TYPE_NAMES = {"prometheus": "Prometheus", "loki": "Loki", "alertmanager": "Alertmanager", "tempo": "Tempo"}


def provision_datasources(directory):
    sources = []
    for path in yaml_files(f"{directory}/datasources"):
        try:
            doc = interpolate(load_yaml(path)) or {}
        except Exception as exc:  # yaml.YAMLError, OSError
            log("provisioning", "error", "Failed to read data source provisioning file", file=path, error=str(exc))
            die(f"Datasource provisioning error: {path}: {exc}")
        if not isinstance(doc, dict):
            die(f"Datasource provisioning error: {path}: not a mapping")
        for item in doc.get("datasources") or []:
            if not isinstance(item, dict) or not item.get("name"):
                die(f"Datasource provisioning error: datasource name missing in {path}")
            sources.append(item)
    defaults = {}
    for item in sources:
        if item.get("isDefault"):
            org = item.get("orgId", 1)
            if org in defaults:
                die("Datasource provisioning error: datasource.yaml config is invalid. Only one datasource per "
                    "organization can be marked as default")  # fmt: skip
            defaults[org] = item["name"]
    result = []
    for number, item in enumerate(sources, start=1):
        kind = item.get("type", "")
        result.append({
            "id": number,
            "uid": str(item.get("uid") or short_uid("datasource:" + item["name"])),
            "orgId": item.get("orgId", 1),
            "name": item["name"],
            "type": kind,
            "typeName": TYPE_NAMES.get(kind, kind),
            "typeLogoUrl": f"public/plugins/{kind}/img/{kind}_logo.svg",
            "access": item.get("access", "proxy"),
            "url": item.get("url", ""),
            "user": item.get("user", ""),
            "database": item.get("database", ""),
            "basicAuth": bool(item.get("basicAuth", False)),
            "isDefault": bool(item.get("isDefault", False)),
            "jsonData": item.get("jsonData") or {},
            "readOnly": not item.get("editable", False),
        })  # fmt: skip
        log("provisioning.datasources", "info", "inserting datasource from configuration", name=item["name"],
            uid=result[-1]["uid"])  # fmt: skip
    return result


def read_providers(directory):
    providers = []
    for path in yaml_files(f"{directory}/dashboards"):
        try:
            doc = interpolate(load_yaml(path)) or {}
        except Exception as exc:
            die(f"Dashboard provisioning error: Failed to read dashboards config: {path}: {exc}")
        if not isinstance(doc, dict):
            die(f"Dashboard provisioning error: {path}: not a mapping")
        for item in doc.get("providers") or []:
            options = (item or {}).get("options") or {}
            target = options.get("path") or options.get("folder")
            if not isinstance(target, str):
                die("Dashboard provisioning error: Failed to load dashboards. path param is not a string")
            providers.append({
                "name": item.get("name", ""),
                "orgId": item.get("orgId", 1),
                "folder": item.get("folder", "") or "",
                "folderUid": item.get("folderUid", "") or "",
                "type": item.get("type", "file"),
                "path": target,
                "fromFiles": bool(options.get("foldersFromFilesStructure", False)),
                "interval": max(int(item.get("updateIntervalSeconds", 10) or 10), 1),
            })  # fmt: skip
    return providers


def slugify(title):
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def datasource_refs(node):
    """Every datasource a dashboard's panels and targets name (dict {type, uid} or a string)."""
    found = []
    if isinstance(node, dict):
        if "datasource" in node:
            found.append(node["datasource"])
        for key, value in node.items():
            if key != "datasource":
                found += datasource_refs(value)
    elif isinstance(node, list):
        for value in node:
            found += datasource_refs(value)
    return found


class Store:
    """The provisioned dashboards and folders, rebuilt when a provider's files change."""

    def __init__(self, providers, datasources):
        self.providers = providers
        self.datasources = datasources
        self.lock = threading.Lock()
        self.seen = {}  # provider name -> {path: (mtime, size)}
        self.by_provider = {}
        self.dashboards = {}
        self.folders = {}

    def scan(self):
        for provider in self.providers:
            files = self._walk(provider["path"])
            state = {path: self._stat(path) for path in files}
            if self.seen.get(provider["name"]) == state:
                continue
            self.seen[provider["name"]] = state
            self.by_provider[provider["name"]] = [d for d in (self._load(provider, p) for p in files) if d]
        with self.lock:
            dashboards, folders = {}, {}
            for provider in self.providers:
                for dash in self.by_provider.get(provider["name"], []):
                    if dash["uid"] in dashboards:
                        log("provisioning.dashboard", "error", "the same UID is used more than once", uid=dash["uid"],
                            providers=provider["name"])  # fmt: skip
                        continue
                    if dash["folderTitle"]:
                        folders.setdefault(dash["folderUid"], dash["folderTitle"])
                    dashboards[dash["uid"]] = dash
            ids = {uid: number for number, uid in enumerate(sorted(folders), start=1)}
            self.folders = {uid: {"id": ids[uid], "uid": uid, "title": title} for uid, title in folders.items()}
            for number, uid in enumerate(sorted(dashboards), start=len(ids) + 1):
                dashboards[uid]["id"] = number
                dashboards[uid]["folderId"] = ids.get(dashboards[uid]["folderUid"], 0)
            self.dashboards = dashboards

    @staticmethod
    def _stat(path):
        info = os.stat(rooted(path))
        return (info.st_mtime_ns, info.st_size)

    @staticmethod
    def _walk(directory):
        found = []
        real_root = rooted(directory)
        if not os.path.isdir(real_root):
            log("provisioning.dashboard", "error", "Cannot read directory", error=f"stat {directory}: no such file or "
                "directory")  # fmt: skip
            return found
        for current, subdirs, names in os.walk(real_root):
            subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
            for name in sorted(names):
                if name.endswith(".json"):
                    relative = os.path.relpath(os.path.join(current, name), real_root)
                    found.append(f"{directory.rstrip('/')}/{relative}")
        return found

    def _load(self, provider, path):
        logger = "provisioning.dashboard"
        context = (("type", "file"), ("name", provider["name"]))
        try:
            with open(rooted(path), encoding="utf-8") as handle:
                data = json.load(handle)
            if not isinstance(data, dict):
                raise ValueError("the file does not hold a dashboard (a JSON object)")
        except (OSError, ValueError) as exc:
            log(logger, "error", "failed to load dashboard from ", context=context, file=path, error=str(exc))
            return None
        title = data.get("title")
        if not isinstance(title, str) or not title.strip():
            error = "Dashboard title cannot be empty"
            log(logger, "error", "failed to save dashboard", context=context, file=path, error=error)
            return None
        uid = data.get("uid") or short_uid("dashboard:" + path)
        folder = provider["folder"]
        folder_uid = provider["folderUid"]
        if provider["fromFiles"]:
            relative = os.path.dirname(path[len(provider["path"].rstrip("/")) + 1 :])
            if relative:
                folder, folder_uid = relative.split("/")[-1], ""
        if folder and not folder_uid:
            folder_uid = short_uid("folder:" + folder)
        names = {d["uid"] for d in self.datasources} | {d["name"] for d in self.datasources}
        for ref in datasource_refs(data):
            value = ref.get("uid") if isinstance(ref, dict) else ref
            if not isinstance(value, str) or not value or value.startswith("$") or value in BUILTIN_DATASOURCES:
                continue
            if value not in names:
                log(logger, "warn", "pdfleet sandbox stand-in: the dashboard names a data source that is not "
                    "provisioned (Grafana saves it; its panels fail when viewed)", context=context, file=path, uid=uid,
                    datasource=value)  # fmt: skip
        dashboard = dict(data, uid=uid, version=data.get("version") or 1)
        dashboard.pop("id", None)
        return {
            "uid": uid,
            "title": title,
            "tags": list(data.get("tags") or []),
            "slug": slugify(title),
            "folderTitle": folder,
            "folderUid": folder_uid if folder else "",
            "externalId": os.path.relpath(path, provider["path"]),
            "dashboard": dashboard,
            "provider": provider["name"],
        }

    def watch(self, stop):
        interval = min((p["interval"] for p in self.providers), default=10)
        while not stop.wait(interval):
            try:
                self.scan()
            except Exception as exc:  # keep serving; Grafana logs and retries
                log("provisioning.dashboard", "error", "failed to search for dashboards", error=str(exc))


# ------------------------------------------------------------------------------------------------ HTTP API


UNAUTHORIZED = {"extra": None, "message": "Unauthorized", "messageId": "auth.unauthorized", "statusCode": 401,
                "traceID": ""}  # fmt: skip


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Grafana"
    sys_version = ""

    def log_message(self, format, *args):
        return

    def _send(self, status, body=b"", content_type="application/json", headers=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status, data):
        self._send(status, json.dumps(data).encode())

    def _role(self):
        app = self.server.app
        header = self.headers.get("Authorization", "")
        if header.lower().startswith("basic ") and app.basic:
            try:
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return None
            if user == app.admin_user and password == app.admin_password:
                return "Admin"
            return None
        if app.anonymous:
            return app.anonymous_role
        return None

    def do_HEAD(self):
        self.do_GET()

    def do_POST(self):
        self._body()
        self._json(404 if self.path.startswith("/api/") else 405, {"message": "Not found"})

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self):
        app = self.server.app
        path, _, query = self.path.partition("?")
        params = {}
        for part in query.split("&") if query else []:
            key, _, value = part.partition("=")
            params.setdefault(key, []).append(re.sub(r"%([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)),
                                                     value.replace("+", " ")))  # fmt: skip
        if path == "/api/health":
            return self._json(200, {"commit": COMMIT, "database": "ok", "version": VERSION})
        if path == "/login":
            return self._send(200, b"<!doctype html><title>Grafana</title>", "text/html; charset=UTF-8")
        role = self._role()
        if path == "/":
            if role is None:
                return self._send(302, b"", "text/html; charset=utf-8", [("Location", "/login")])
            return self._send(200, b"<!doctype html><title>Grafana</title>", "text/html; charset=UTF-8")
        if not path.startswith("/api/"):
            return self._send(404, b"404 page not found\n", "text/plain; charset=utf-8")
        if role is None:
            return self._json(401, UNAUTHORIZED)
        store = app.store
        with store.lock:
            dashboards = dict(store.dashboards)
            folders = dict(store.folders)
        if path == "/api/search":
            return self._json(200, search(dashboards, folders, params))
        if path == "/api/folders":
            return self._json(200, [{"id": f["id"], "uid": f["uid"], "title": f["title"]}
                                    for f in sorted(folders.values(), key=lambda f: f["title"].lower())])  # fmt: skip
        if path.startswith("/api/dashboards/uid/"):
            dash = dashboards.get(path[len("/api/dashboards/uid/") :])
            if dash is None:
                return self._json(404, {"message": "Dashboard not found"})
            return self._json(200, dashboard_response(dash, role, folders))
        if path == "/api/datasources" or path.startswith(("/api/datasources/uid/", "/api/datasources/name/")):
            if role != "Admin":
                return self._json(403, {"accessErrorId": "ACE0000000000", "title": "Access denied",
                                        "message": "You'll need additional permissions to perform this action. "
                                                   "Permissions needed: datasources:read"})  # fmt: skip
            if path == "/api/datasources":
                return self._json(200, app.datasources)
            kind, _, key = path[len("/api/datasources/") :].partition("/")
            for source in app.datasources:
                if source[kind] == key:
                    return self._json(200, dict(source, withCredentials=False, secureJsonFields={}, version=1))
            return self._json(404, {"message": "Data source not found"})
        return self._json(404, {"message": "Not found"})


def search(dashboards, folders, params):
    query = (params.get("query") or [""])[0].lower()
    kinds = set(params.get("type") or [])
    tags = set(params.get("tag") or [])
    uids = set(params.get("dashboardUIDs") or []) | set(params.get("dashboardUID") or [])
    folder_uids = set(params.get("folderUIDs") or [])
    hits = []
    if (not kinds or "dash-folder" in kinds) and not tags and not uids and not folder_uids:
        for folder in folders.values():
            if query in folder["title"].lower():
                slug = slugify(folder["title"])
                hits.append({"id": folder["id"], "uid": folder["uid"], "orgId": 1, "title": folder["title"],
                             "uri": f"db/{slug}", "url": f"/dashboards/f/{folder['uid']}/{slug}", "slug": "",
                             "type": "dash-folder", "tags": [], "isStarred": False, "sortMeta": 0,
                             "isDeleted": False})  # fmt: skip
    if not kinds or "dash-db" in kinds:
        for dash in dashboards.values():
            if query not in dash["title"].lower() or not tags <= set(dash["tags"]):
                continue
            if (uids and dash["uid"] not in uids) or (folder_uids and (dash["folderUid"] or "general") not in
                                                      folder_uids):  # fmt: skip
                continue
            hit = {
                "id": dash["id"],
                "uid": dash["uid"],
                "orgId": 1,
                "title": dash["title"],
                "uri": f"db/{dash['slug']}",
                "url": f"/d/{dash['uid']}/{dash['slug']}",
                "slug": "",
                "type": "dash-db",
                "tags": dash["tags"],
                "isStarred": False,
                "sortMeta": 0,
                "isDeleted": False,
            }
            if dash["folderUid"]:
                folder = folders.get(dash["folderUid"], {})
                hit.update(
                    folderId=folder.get("id", 0),
                    folderUid=dash["folderUid"],
                    folderTitle=dash["folderTitle"],
                    folderUrl=f"/dashboards/f/{dash['folderUid']}/{slugify(dash['folderTitle'])}",
                )
            hits.append(hit)
    hits.sort(key=lambda h: (h["type"] != "dash-folder", h["title"].lower()))
    limit = int((params.get("limit") or ["1000"])[0] or 1000)
    return hits[:limit]


def dashboard_response(dash, role, folders):
    folder = folders.get(dash["folderUid"], {})
    slug = dash["slug"]
    return {
        "meta": {
            "type": "db", "canSave": role == "Admin", "canEdit": role == "Admin", "canAdmin": role == "Admin",
            "canStar": True, "canDelete": role == "Admin", "slug": slug, "url": f"/d/{dash['uid']}/{slug}",
            "expires": "0001-01-01T00:00:00Z", "created": "0001-01-01T00:00:00Z", "updated": "0001-01-01T00:00:00Z",
            "updatedBy": "Anonymous", "createdBy": "Anonymous", "version": dash["dashboard"]["version"],
            "hasAcl": False, "isFolder": False, "folderId": folder.get("id", 0), "folderUid": dash["folderUid"],
            "folderTitle": dash["folderTitle"] or "General",
            "folderUrl": f"/dashboards/f/{dash['folderUid']}/{slugify(dash['folderTitle'])}" if dash["folderUid"]
            else "", "provisioned": True, "provisionedExternalId": dash["externalId"],
        },
        "dashboard": dict(dash["dashboard"], id=dash["id"]),
    }  # fmt: skip


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class App:
    pass


def listen(host, port):
    families = [(socket.AF_INET6, "::"), (socket.AF_INET, "0.0.0.0")] if not host else [
        (socket.AF_INET6 if ":" in host else socket.AF_INET, host.strip("[]"))]  # fmt: skip
    error = None
    for family, bind in families:
        Server.address_family = family
        server = Server((bind, port), Handler, bind_and_activate=False)
        try:
            if family == socket.AF_INET6 and bind == "::":
                server.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            server.server_bind()
            server.server_activate()
            return server, (f"[{bind}]:{port}" if family == socket.AF_INET6 else f"{bind}:{port}")
        except OSError as exc:
            error = exc
            server.server_close()
    reason = "address already in use" if getattr(error, "errno", None) == 98 else str(error)
    log("server", "error", "Stopped background service", service="*api.HTTPServer", reason=reason)
    die(f"listen tcp {host}:{port}: bind: {reason}")


# ------------------------------------------------------------------------------------------------ commands


def server_command(argv):
    global LOG_FILE
    config = homepath = pidfile = None
    overrides = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("cfg:"):
            setting, _, value = arg[4:].partition("=")
            default = setting.startswith("default.")
            setting = setting[len("default.") :] if default else setting
            section, _, key = setting.rpartition(".")
            overrides.append((default, section, key, value))
            i += 1
            continue
        name, eq, inline = arg.lstrip("-").partition("=")
        if name in ("config", "homepath", "pidfile", "packaging"):
            if not eq:
                i += 1
                if i >= len(argv):
                    die(f"flag needs an argument: -{name}")
                inline = argv[i]
            if name == "config":
                config = inline
            elif name == "homepath":
                homepath = inline
            elif name == "pidfile":
                pidfile = inline
        elif name in ("v", "version"):
            print(f"Version {VERSION} (commit: {COMMIT}, branch: HEAD)")
            return 0
        else:
            die(f"flag provided but not defined: -{name}")
        i += 1
    homepath = (homepath or HOME).rstrip("/")
    settings = Settings(homepath, config, overrides)
    logs = settings.path("paths", "logs")
    data = settings.path("paths", "data")
    plugins = settings.path("paths", "plugins")
    provisioning = settings.path("paths", "provisioning")
    for directory in (logs, data, plugins):
        os.makedirs(rooted(directory), exist_ok=True)
    if "file" in settings.get("log", "mode", "console file").split():
        LOG_FILE = rooted(f"{logs}/grafana.log")
    log("settings", "info", "Starting Grafana", version=VERSION, commit=COMMIT, branch="HEAD",
        compiled="2025-01-01T00:00:00Z")  # fmt: skip
    for path in settings.files:
        log("settings", "info", "Config loaded from", file=path)
    for label, path in (("Home", homepath), ("Data", data), ("Logs", logs), ("Plugins", plugins),
                        ("Provisioning", provisioning)):  # fmt: skip
        log("settings", "info", f"Path {label}", path=path)
    log("settings", "info", f"App mode {settings.get('__root__', 'app_mode', 'production')}")
    if pidfile:
        write_text(pidfile, f"{os.getpid()}")
    app = App()
    app.datasources = provision_datasources(provisioning)
    app.store = Store(read_providers(provisioning), app.datasources)
    app.store.scan()
    app.admin_user = settings.get("security", "admin_user", "admin")
    app.admin_password = settings.get("security", "admin_password", "admin")
    app.basic = settings.boolean("auth.basic", "enabled", True)
    app.anonymous = settings.boolean("auth.anonymous", "enabled", False)
    app.anonymous_role = settings.get("auth.anonymous", "org_role", "Viewer") or "Viewer"
    host = settings.get("server", "http_addr", "")
    try:
        port = int(settings.get("server", "http_port", "3000"))
    except ValueError:
        die(f"invalid http_port {settings.get('server', 'http_port')!r}")
    server, shown = listen(host, port)
    server.app = app
    stop = threading.Event()
    threading.Thread(target=app.store.watch, args=(stop,), daemon=True).start()
    log("http.server", "info", "HTTP Server Listen", address=shown, protocol="http", subUrl="", socket="")
    sd_notify("READY=1")

    def shutdown(signum, _frame):
        name = {signal.SIGTERM: "terminated", signal.SIGINT: "interrupt"}.get(signum, str(signum))
        log("server", "info", "Shutdown started", reason=f"System signal: {name}")
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    if pidfile:
        with contextlib.suppress(OSError):
            os.unlink(rooted(pidfile))
    return 0


def main(argv):
    if not argv or argv[0] in ("-h", "--help", "help"):
        print("NAME:\n   grafana - Grafana server and command line interface\n\nUSAGE:\n   grafana [command]\n\n"
              "COMMANDS:\n   cli     run the grafana cli\n   server  run the grafana server\n"
              "\npdfleet sandbox stand-in: see /usr/share/doc/grafana/README.pdfleet-standin")  # fmt: skip
        return 0
    if argv[0] in ("-v", "--version"):
        print(f"grafana version {VERSION}")
        return 0
    if argv[0] == "server":
        return server_command(argv[1:])
    if argv[0] == "cli":
        print("grafana cli (pdfleet sandbox stand-in): not simulated (no plugins, users or admin commands)",
              file=sys.stderr)  # fmt: skip
        return 1
    print(f"No help topic for '{argv[0]}'", file=sys.stderr)
    return 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
