#!/usr/bin/python3 -I
"""pdfleet sandbox stand-in for the NVIDIA Container Toolkit 1.18.0 binaries, one file installed under each name
(dispatch on the program name):

  nvidia-ctk (nvidia-container-toolkit-base)
      --version                                  as the real CLI prints it
      runtime configure --runtime=docker [--config=PATH] [--set-as-default] [--cdi.enabled] [--dry-run]
          [--nvidia-runtime-name=N] [--nvidia-runtime-path=P]
                                                 edits /etc/docker/daemon.json exactly as the real one does
                                                 (pkg/config/engine/docker: adds runtimes.N = {"args": [],
                                                 "path": P}, json.MarshalIndent with 4 spaces, sorted keys, no
                                                 trailing newline), logging like logrus; rerunning writes the same
                                                 bytes. containerd and crio are not simulated.
      cdi generate [--output=FILE] [--format=yaml|json]
                                                 a CDI spec for the 8 GPUs of the installed driver (devices by
                                                 index and UUID, and "all"); the library mounts are a short,
                                                 synthesised list
  nvidia-container-runtime, nvidia-cdi-hook (nvidia-container-toolkit-base),
  nvidia-container-runtime-hook (nvidia-container-toolkit)
      --version; otherwise they succeed without doing anything (the stand-in docker never runs OCI runtimes).
"""

import json
import os
import sys
import time
import xml.etree.ElementTree as ET

from standin_lib import NVIDIA_DATA, installed_driver_version, read_text, rooted

VERSION = "@@TOOLKIT_VERSION@@"
COMMIT = "f8daa5e26de9fd7eb79259040b6dd5a52060048c"  # the v1.18.0 tag of NVIDIA/nvidia-container-toolkit


def log(level, message):
    """logrus's text formatter, as nvidia-ctk logs (to stderr)."""
    if sys.stderr.isatty():
        print(f"{level.upper()[:4]}[0000] {message}", file=sys.stderr)
    else:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        print(f'time="{stamp}" level={level} msg={json.dumps(message)}', file=sys.stderr)


def go_json(value):
    """encoding/json.MarshalIndent(v, "", "    ") of a map: sorted keys, HTML characters escaped."""
    text = json.dumps(value, indent=4, sort_keys=True, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def parse_flags(args, flags, switches):
    """urfave/cli style: --name=value, --name value, -name value; returns (values, positional)."""
    values, positional = {}, []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("-") and arg != "-":
            name, eq, inline = arg.lstrip("-").partition("=")
            if name in switches:
                values[name] = inline.lower() != "false" if eq else True
            elif name in flags:
                if not eq:
                    i += 1
                    if i >= len(args):
                        raise SystemExit(fail(f"flag needs an argument: -{name}"))
                    inline = args[i]
                values[name] = inline
            else:
                raise SystemExit(fail(f"flag provided but not defined: -{name}"))
        else:
            positional.append(arg)
        i += 1
    return values, positional


def fail(message):
    log("error", message)
    return 1


def runtime_configure(args):
    values, _ = parse_flags(
        args,
        {"runtime", "config", "nvidia-runtime-name", "nvidia-runtime-path", "runtime-path", "drop-in-config",
         "config-mode", "config-source", "executable-path", "nvidia-runtime-hook-path", "oci-hook-path"},
        {"dry-run", "set-as-default", "nvidia-set-as-default", "cdi.enabled", "cdi.enable", "enable-cdi"},
    )  # fmt: skip
    runtime = values.get("runtime", "docker")
    if runtime not in ("docker", "containerd", "crio"):
        return fail(f"unrecognized runtime '{runtime}'")
    if runtime != "docker":
        log("error", f"pdfleet sandbox stand-in: only --runtime=docker is simulated, not {runtime}")
        return 1
    path = values.get("config", "/etc/docker/daemon.json")
    name = values.get("nvidia-runtime-name", "nvidia")
    executable = values.get("nvidia-runtime-path", values.get("runtime-path", "nvidia-container-runtime"))
    real = rooted(path)
    if os.path.isdir(real):
        return fail("unable to load config for runtime docker: config file is a directory")
    if os.path.exists(real):
        log("info", f"Loading config from {path}")
        try:
            with open(real, encoding="utf-8") as handle:
                config = json.load(handle)
        except ValueError as error:
            return fail(f"unable to load config for runtime docker: {error}")
    else:
        log("info", "Config file does not exist; using empty config")
        config = {}
    runtimes = config.get("runtimes") or {}
    runtimes[name] = {"args": [], "path": executable}
    config["runtimes"] = runtimes
    if values.get("set-as-default") or values.get("nvidia-set-as-default"):
        config["default-runtime"] = name
    if values.get("cdi.enabled") or values.get("cdi.enable") or values.get("enable-cdi"):
        features = config.get("features") or {}
        features["cdi"] = True
        config["features"] = features
    output = go_json(config)
    if values.get("dry-run"):
        sys.stdout.write(output + "\n")
        return 0
    os.makedirs(os.path.dirname(real), exist_ok=True)
    with open(real, "w", encoding="utf-8") as handle:
        handle.write(output)
    log("info", f"Wrote updated config to {path}")
    log("info", "It is recommended that docker daemon be restarted.")
    return 0


def yaml(value, indent=0):
    """The YAML of sigs.k8s.io/yaml for the plain maps, lists and strings of a CDI spec."""
    pad = " " * indent
    lines = []
    if isinstance(value, dict):
        for key in sorted(value):
            item = value[key]
            if isinstance(item, (dict, list)) and item:
                lines.append(f"{pad}{key}:")
                lines.extend(yaml(item, indent + (2 if isinstance(item, dict) else 0)))
            else:
                lines.append(f"{pad}{key}: {scalar(item)}")
    else:
        for item in value:
            if isinstance(item, dict):
                sub = yaml(item, indent + 2)
                lines.append(f"{pad}- {sub[0].lstrip()}")
                lines.extend(sub[1:])
            else:
                lines.append(f"{pad}- {scalar(item)}")
    return lines


def scalar(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return "{}" if isinstance(value, dict) else "[]"
    text = str(value)
    if text.isdigit() or text in ("true", "false", "null", "") or text[0] in "-:{}[]&*#?|>!%@`'\"":
        return json.dumps(text)
    return text


def cdi_spec(driver, gpus):
    lib = "/usr/lib/x86_64-linux-gnu"
    options = ["ro", "nosuid", "nodev", "rbind", "rprivate"]
    mounts = [
        {"hostPath": path, "containerPath": path, "options": options}
        for path in (
            f"{lib}/libcuda.so.{driver}",
            f"{lib}/libnvidia-ml.so.{driver}",
            f"{lib}/libnvidia-ptxjitcompiler.so.{driver}",
            f"{lib}/libnvidia-nvvm.so.{driver}",
            "/usr/bin/nvidia-smi",
            "/usr/bin/nvidia-persistenced",
            "/run/nvidia-persistenced/socket",
            f"/lib/firmware/nvidia/{driver}/gsp_ga10x.bin",
        )
    ]
    hook = "/usr/bin/nvidia-cdi-hook"
    hooks = [
        {"hookName": "createContainer", "path": hook,
         "args": ["nvidia-cdi-hook", "create-symlinks", "--link", f"libcuda.so.1::{lib}/libcuda.so"],
         "env": ["NVIDIA_CTK_DEBUG=false"]},
        {"hookName": "createContainer", "path": hook,
         "args": ["nvidia-cdi-hook", "update-ldcache", "--folder", lib],
         "env": ["NVIDIA_CTK_DEBUG=false"]},
    ]  # fmt: skip
    devices = []
    for minor, uuid in gpus:
        edits = {"deviceNodes": [{"path": f"/dev/nvidia{minor}"}]}
        devices.append({"name": str(minor), "containerEdits": edits})
        devices.append({"name": uuid, "containerEdits": edits})
    devices.append(
        {"name": "all", "containerEdits": {"deviceNodes": [{"path": f"/dev/nvidia{minor}"} for minor, _ in gpus]}}
    )
    control = ["/dev/nvidia-modeset", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidiactl"]
    return {
        "cdiVersion": "0.5.0",
        "kind": "nvidia.com/gpu",
        "devices": devices,
        "containerEdits": {
            "env": ["NVIDIA_VISIBLE_DEVICES=void"],
            "deviceNodes": [{"path": path} for path in control],
            "hooks": hooks,
            "mounts": mounts,
        },
    }


def cdi_generate(args):
    values, _ = parse_flags(
        args,
        {"output", "format", "mode", "discovery-mode", "dev-root", "device-name-strategy", "driver-root",
         "library-search-path", "nvidia-cdi-hook-path", "nvidia-ctk-path", "ldconfig-path", "vendor", "cdi-vendor",
         "class", "cdi-class", "config-search-path", "csv.file", "csv.ignore-pattern", "disable-hook",
         "enable-hook", "feature-flag"},
        set(),
    )  # fmt: skip
    driver = installed_driver_version()
    xml = read_text(f"{NVIDIA_DATA}/nvidia-smi-q.xml")
    if driver is None or xml is None:
        return fail(
            "failed to generate CDI spec: failed to create device CDI specs: failed to initialize NVML: "
            "ERROR_LIBRARY_NOT_FOUND"
        )
    root = ET.fromstring(xml.split("\n", 2)[2])
    gpus = [(int(g.findtext("minor_number")), g.findtext("uuid")) for g in root.findall("gpu")]
    log("info", 'Auto-detected mode as "nvml"')
    spec = cdi_spec(driver, gpus)
    output = values.get("output")
    fmt = values.get("format", "json" if output and output.endswith(".json") else "yaml")
    text = json.dumps(spec, indent=2) + "\n" if fmt == "json" else "---\n" + "\n".join(yaml(spec)) + "\n"
    log("info", "Generated CDI spec with version 0.5.0")
    if output:
        real = rooted(output)
        os.makedirs(os.path.dirname(real), exist_ok=True)
        with open(real, "w", encoding="utf-8") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)
    return 0


def nvidia_ctk(argv):
    args = [a for a in argv if a not in ("--debug", "-d", "--quiet")]
    if not args or args[0] in ("-h", "--help", "help"):
        print("NAME:\n   NVIDIA Container Toolkit CLI - Tools to configure the NVIDIA Container Toolkit\n")
        print("USAGE:\n   nvidia-ctk [global options] [command [command options]]\n")
        print(f"VERSION:\n   {VERSION}\ncommit: {COMMIT}")
        return 0
    if args[0] in ("-v", "--version"):
        print(f"NVIDIA Container Toolkit CLI version {VERSION}\ncommit: {COMMIT}")
        return 0
    if args[:2] == ["runtime", "configure"]:
        return runtime_configure(args[2:])
    if args[:2] == ["cdi", "generate"]:
        return cdi_generate(args[2:])
    if args[0] in ("hook", "runtime", "info", "cdi", "system", "config"):
        return fail(f"pdfleet sandbox stand-in: 'nvidia-ctk {' '.join(args[:2])}' is not simulated")
    return fail(f"No help topic for '{args[0]}'")


def main(argv):
    program = os.path.basename(sys.argv[0])
    if program == "nvidia-ctk":
        return nvidia_ctk(argv)
    if argv[:1] in (["--version"], ["-version"], ["-v"]):
        title = {
            "nvidia-container-runtime": "NVIDIA Container Runtime",
            "nvidia-container-runtime-hook": "NVIDIA Container Runtime Hook",
            "nvidia-cdi-hook": "NVIDIA CDI Hook",
        }.get(program, program)
        print(f"{title} version {VERSION}\ncommit: {COMMIT}")
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
