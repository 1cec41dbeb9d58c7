"""Python wheels for the sandbox's local package index: the stand-in `sglang` and the real router (`smg`).

* `build_standin_sglang_wheel(out_dir, version=...)` builds `sglang-<version>-py3-none-any.whl` (0.5.23, or
  0.5.6.post2 with that version's option table and bootstrap protocol) from pdfleet/sandbox/standins/sglang
  with the standard library only (no setuptools, no network): PEP 427 layout, METADATA / WHEEL / RECORD (sha256
  of every file), fixed timestamps and permissions, sorted entries: the same source gives the same bytes, so an
  image cache keyed on the wheel's hash stays valid.
* `download_wheels(requirements, out_dir)` runs `pip download --only-binary=:all:` for the real packages (smg and
  its dependencies) for the hosts' Python: this one needs the package index (PyPI), once, when the image is built.
* `write_simple_index(wheel_dir, index_dir)` makes index_dir a PEP 503 static "simple" index over a directory of
  wheels, so the hosts install offline with `pip install --index-url file://<index_dir> smg==1.13.0 sglang==0.5.23`
  (the sandbox image: wheels in /srv/pdfleet-pypi/wheels, index_dir /srv/pdfleet-pypi/simple).
"""

from __future__ import annotations

import base64
import hashlib
import html
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from pdfleet.runtimeplan import normalize  # PEP 503, as the runtime compares installed wheels

STANDIN_SGLANG_SOURCE = Path(__file__).resolve().parent / "standins" / "sglang"
STANDIN_SGLANG_VERSION = "0.5.23"
# Every version the sandbox's index offers (a cutover, a rollback, a mixed pair that must fail); each wheel holds
# that version's option table and behaviour (sglang/_server.py: LEGACY).
STANDIN_SGLANG_VERSIONS = ("0.5.23", "0.5.6.post2")
# Real SGLang 0.5.23 requires Python >= 3.11 (its wheel is cp311); the hosts run Debian bookworm's python3 (3.11).
STANDIN_REQUIRES_PYTHON = ">=3.11"
# A fixed time for every archive entry: 1980-01-01, the earliest a zip file can record.
_EPOCH = (1980, 1, 1, 0, 0, 0)


def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _package_files(source: Path) -> list[tuple[str, bytes]]:
    package = source / "sglang"
    files = []
    for path in sorted(package.rglob("*")):
        rel = path.relative_to(source)
        if path.is_dir() or "__pycache__" in rel.parts or path.suffix in (".pyc", ".pyo"):
            continue
        files.append((rel.as_posix(), path.read_bytes()))
    if not any(name == "sglang/__init__.py" for name, _ in files):
        raise FileNotFoundError(f"{package}/__init__.py: not a package source")
    return files


def _metadata(version: str, readme: str) -> bytes:
    lines = [
        "Metadata-Version: 2.1",
        "Name: sglang",
        f"Version: {version}",
        "Summary: STAND-IN for SGLang in pdfleet's sandbox (not the real engine; no GPU, no model)",
        "License: Apache-2.0",
        f"Requires-Python: {STANDIN_REQUIRES_PYTHON}",
        "Description-Content-Type: text/markdown",
        "",
        readme,
    ]
    return ("\n".join(lines).rstrip("\n") + "\n").encode("utf-8")


def _wheel_file() -> bytes:
    return b"Wheel-Version: 1.0\nGenerator: pdfleet.sandbox.wheels\nRoot-Is-Purelib: true\nTag: py3-none-any\n"


def _zipinfo(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_EPOCH)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = (0o100644 & 0xFFFF) << 16  # regular file, rw-r--r--
    info.create_system = 3  # Unix, so the mode above is honoured wherever the wheel is built
    return info


def build_standin_sglang_wheel(
    out_dir: Path,
    source: Path = STANDIN_SGLANG_SOURCE,
    version: str = STANDIN_SGLANG_VERSION,
    extra: dict[str, bytes] | None = None,
) -> Path:
    """Build sglang-<version>-py3-none-any.whl into out_dir and return its path (deterministic bytes). The source
    says 0.5.23; another version of STANDIN_SGLANG_VERSIONS gets its version lines rewritten. `extra`: more files of
    the package, {path in the wheel: bytes} (the real `sglang/bench_serving.py`, so that `pdfleet bench` finds the
    real client under the name the index gives the stand-in)."""
    if version not in STANDIN_SGLANG_VERSIONS:
        raise ValueError(f"stand-in sglang {version}: expected one of {', '.join(STANDIN_SGLANG_VERSIONS)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = _package_files(source)
    init = dict(files)["sglang/__init__.py"].decode()
    version_line = next((line for line in init.splitlines() if line.startswith("__version__")), "")
    if f'"{STANDIN_SGLANG_VERSION}"' not in version_line:
        raise ValueError(f"sglang/__init__.py says {version_line!r}, expected {STANDIN_SGLANG_VERSION}")
    if f"_flags_{version.replace('.', '_')}.json" not in {name.rsplit("/", 1)[1] for name, _ in files}:
        raise FileNotFoundError(f"{source}/sglang: no option table for {version}")
    if version != STANDIN_SGLANG_VERSION:
        parts = tuple(int(p) if p.isdigit() else p for p in version.split("."))
        lines = [
            f'__version__ = "{version}"' if line.startswith("__version__")
            else f"__version_tuple__ = {parts!r}" if line.startswith("__version_tuple__")
            else line
            for line in init.splitlines()
        ]  # fmt: skip
        files = [(n, ("\n".join(lines) + "\n").encode() if n == "sglang/__init__.py" else d) for n, d in files]
    files += sorted((extra or {}).items())
    dist_info = f"sglang-{version}.dist-info"
    readme = (source / "README.md").read_text(encoding="utf-8")
    files += [
        (f"{dist_info}/METADATA", _metadata(version, readme)),
        (f"{dist_info}/WHEEL", _wheel_file()),
        (f"{dist_info}/top_level.txt", b"sglang\n"),
    ]
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in files)
    record += f"{dist_info}/RECORD,,\n"
    files.append((f"{dist_info}/RECORD", record.encode()))

    target = out_dir / f"sglang-{version}-py3-none-any.whl"
    partial = target.with_name(target.name + ".partial")
    with zipfile.ZipFile(partial, "w") as archive:
        for name, data in files:
            archive.writestr(_zipinfo(name), data, compresslevel=9)
    os.replace(partial, target)
    return target


def download_wheels(
    requirements: list[str],
    out_dir: Path,
    python_version: str = "3.11",
    platform: str | None = None,
    pip: list[str] | None = None,
    no_deps: bool = False,
) -> list[Path]:
    """`pip download --only-binary=:all:` requirements (and their dependencies) for the hosts' Python.

    Needs the package index (the only network use here). `platform` (e.g. "manylinux2014_x86_64") defaults to this
    machine's tags, right when the sandbox hosts run on this machine. Returns the wheels pip saved or found already
    downloaded, sorted by name.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    before = {p.name for p in out_dir.glob("*.whl")}
    command = [*(pip or [sys.executable, "-m", "pip"]), "download", "--only-binary=:all:", "--dest", str(out_dir)]
    command += ["--python-version", python_version, "--disable-pip-version-check", "--no-input", "--progress-bar=off"]
    if platform:
        command += ["--platform", platform]
    if no_deps:  # an exact set, each pinned (the bench client's): nothing resolved
        command.append("--no-deps")
    command += list(requirements)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"pip download failed (exit {result.returncode}): {' '.join(command)}\n{result.stdout}\n{result.stderr}"
        )
    names = set()
    for line in result.stdout.splitlines():
        line = line.strip()
        for prefix in ("Saved ", "File was already downloaded "):
            if line.startswith(prefix) and line.endswith(".whl"):
                names.add(Path(line[len(prefix) :]).name)
    names |= {p.name for p in out_dir.glob("*.whl")} - before
    return sorted(out_dir / name for name in names)


def _requires_python(wheel: Path) -> str | None:
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if name.count("/") == 1 and name.endswith(".dist-info/METADATA"):
                for line in archive.read(name).decode("utf-8", "replace").splitlines():
                    if not line.strip():
                        break
                    if line.lower().startswith("requires-python:"):
                        return line.split(":", 1)[1].strip() or None
    return None


def real_module(requirement: str, member: str, cache: Path) -> bytes:
    """One file of a real wheel from PyPI (`pip download --no-deps` into cache, then read from the archive)."""
    wheels = download_wheels([requirement], cache, no_deps=True)
    name = requirement.split("==")[0].replace("-", "_").lower()
    wheel = next(w for w in wheels if w.name.lower().startswith(name + "-"))
    with zipfile.ZipFile(wheel) as archive:
        return archive.read(member)


def write_simple_index(wheel_dir: Path, index_dir: Path) -> Path:
    """Make index_dir a PEP 503 "simple" index over the wheels in wheel_dir; returns index_dir.

    index_dir is the directory `--index-url` names (conventionally called simple/): `index_dir/index.html` lists
    the projects, `index_dir/<normalized-name>/index.html` links each wheel with a relative href (so the tree moves
    as one piece, e.g. wheels/ next to simple/), its `#sha256=` and `data-requires-python`. Project pages of an
    earlier run that no longer have wheels are removed; nothing else in index_dir is touched. Use it with
    `pip install --index-url file://<abs index_dir> ...`.
    """
    wheel_dir = Path(wheel_dir).resolve()
    simple = Path(index_dir).resolve()
    projects: dict[str, list[Path]] = {}
    for wheel in sorted(wheel_dir.glob("*.whl")):
        projects.setdefault(normalize(wheel.name.split("-", 1)[0]), []).append(wheel)
    if not projects:
        raise FileNotFoundError(f"no wheels in {wheel_dir}")
    simple.mkdir(parents=True, exist_ok=True)
    for stale in simple.iterdir():
        if stale.is_dir() and stale.name not in projects and [p.name for p in stale.iterdir()] == ["index.html"]:
            shutil.rmtree(stale)

    def page(title: str, links: list[str]) -> str:
        body = "\n".join(f"    {link}<br/>" for link in links)
        return (
            f'<!DOCTYPE html>\n<html>\n  <head>\n    <meta name="pypi:repository-version" content="1.0">\n'
            f"    <title>{html.escape(title)}</title>\n  </head>\n  <body>\n    <h1>{html.escape(title)}</h1>\n"
            f"{body}\n  </body>\n</html>\n"
        )

    for project, project_wheels in sorted(projects.items()):
        folder = simple / project
        folder.mkdir(exist_ok=True)
        links = []
        for wheel in project_wheels:
            href = Path(os.path.relpath(wheel, folder)).as_posix()
            digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
            requires = _requires_python(wheel)
            attr = f' data-requires-python="{html.escape(requires)}"' if requires else ""
            links.append(f'<a href="{html.escape(href)}#sha256={digest}"{attr}>{html.escape(wheel.name)}</a>')
        (folder / "index.html").write_text(page(f"Links for {project}", links), encoding="utf-8")
    root_links = [f'<a href="{project}/">{project}</a>' for project in sorted(projects)]
    (simple / "index.html").write_text(page("Simple index", root_links), encoding="utf-8")
    return simple
