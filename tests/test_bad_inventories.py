"""Bad input: a corpus of inventories a person could write by hand, each with one mistake, each refused by
`pdfleet check` before any host is contacted with exactly one line naming the file, line, place, field, what was
found and what was expected.

Every file of tests/fixtures/bad-inventories/ is inventories/prod.yaml with one small edit and two header lines:
`# bad inventory: <the mistake>` and `# expect: <the line pdfleet check prints>`, the file's path written as
{file}. A new case is a new file: write the edit, run `pdfleet check` on it, and record the line it should print.
"""

from __future__ import annotations

import difflib
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pdfleet.cluster import load_cluster
from pdfleet.errors import InventoryError
from pdfleet.inventory import pyinfra_groups

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests/fixtures/bad-inventories"
FILES = sorted(CORPUS.glob("*.yaml"))
PROD = (ROOT / "inventories/prod.yaml").read_text().splitlines()
HEADER = re.compile(r"^# bad inventory: \S.*\n# expect: (\{file\}:[0-9]+: .+)\n")
# A Python type where the inventory's words belong ("found NoneType", "expected int", "a dict"). "list" is a
# word of the inventory's language too ("a list of HCA names", "an empty list"); alone it is a type name.
PYTHON_TYPES = re.compile(
    r"\b(str|int|dict|NoneType|None|True|False|bool|float|tuple|bytes|OrderedDict|CommentedMap|CommentedSeq"
    r"|SourceMap|SourceList)\b|<class|(?<!empty )\blist\b(?! of)"
)
# What a pasted secret looks like; the corpus's secrets are made up, in the shapes people paste.
SECRET_TEXT = re.compile(r"hf_[A-Za-z0-9]{20,}|sk-[A-Za-z0-9_-]{16,}|\b[0-9a-f]{32,}\b")
# Problem lines as the CLI prints them: "  FILE:LINE: WHERE: field 'F': found ..., expected ..."
PROBLEM_LINE = re.compile(r"^  \S+?(:[0-9]+)?: .+: field '.+': found .+, expected .+$")


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


def expected_line(path: Path) -> str:
    match = HEADER.match(path.read_text())
    assert match, f"{path.name}: the first two lines must be '# bad inventory: ...' and '# expect: {{file}}:LINE: ...'"
    return match.group(1).replace("{file}", relative(path))


def body(path: Path) -> list[str]:
    """The inventory under the two header lines."""
    return path.read_text().splitlines()[2:]


def check(path: Path) -> subprocess.CompletedProcess:
    """`pdfleet check FILE` as a person runs it, with this checkout's code."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "pdfleet.cli", "check", relative(path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def checked() -> dict[str, subprocess.CompletedProcess]:
    """Every corpus file through the real CLI, several at a time."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(zip((f.name for f in FILES), pool.map(check, FILES), strict=True))


def test_the_corpus_is_large_and_varied():
    assert len(FILES) >= 50
    names = [f.name for f in FILES]
    assert all(re.match(r"^[0-9]{2}-[a-z0-9-]+\.yaml$", n) for n in names), names
    assert len({n[:2] for n in names}) == len(names), "each number once"
    # The kinds of mistake the corpus must hold, by name.
    for kind in ("key-typo", "duplicate", "port-collision", "address", "cidr", "yaml-", "secret-", "rank-", "role"):
        assert any(kind in n for n in names), kind


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_each_file_is_prod_with_one_small_edit(path):
    """One mistake: a single place where the file differs from inventories/prod.yaml, a few lines at most."""
    changes = [
        op for op in difflib.SequenceMatcher(None, PROD, body(path), autojunk=False).get_opcodes() if op[0] != "equal"
    ]
    assert len(changes) == 1, changes
    _, i1, i2, j1, j2 = changes[0]
    assert i2 - i1 <= 2 and j2 - j1 <= 3, changes


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_check_refuses_it_with_the_one_expected_line(path, checked):
    result = checked[path.name]
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        f"pdfleet: {relative(path)} is not a valid inventory; nothing was contacted:",
        f"  {expected_line(path)}",
    ]


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_loading_it_for_pyinfra_stops_before_any_host(path, capsys, monkeypatch):
    """The same single problem from load_cluster, and pyinfra's inventory exits 2 before it has a host to reach."""
    monkeypatch.chdir(ROOT)
    with pytest.raises(InventoryError) as caught:
        load_cluster(path, relative(path))
    assert [str(p) for p in caught.value.problems] == [expected_line(path)]
    with pytest.raises(SystemExit) as stopped:
        pyinfra_groups(relative(path))
    assert stopped.value.code == 2
    assert capsys.readouterr().err.splitlines()[1:] == [f"  {expected_line(path)}"]


def test_every_message_speaks_the_inventorys_language(checked):
    """No Python type names, every line names a line number, a place, a field, found and expected."""
    for name, result in checked.items():
        for line in result.stderr.splitlines()[1:]:
            assert PROBLEM_LINE.match(line), (name, line)
            assert re.match(r"^  \S+:[0-9]+: ", line), (name, "no line number", line)
            message = line.split(": ", 2)[2]
            assert not PYTHON_TYPES.search(message), (name, line)


def test_no_message_repeats_a_pasted_secret(checked):
    secret_files = [f for f in FILES if "secret-" in f.name]
    assert len(secret_files) >= 5
    for path in secret_files:
        pasted = [m.group(0) for line in body(path) if line not in PROD for m in SECRET_TEXT.finditer(line)]
        assert pasted, f"{path.name}: no secret-looking text in its edit"
        output = checked[path.name].stdout + checked[path.name].stderr
        assert "(not shown)" in output
        for secret in pasted:
            assert secret not in output and secret[:12] not in output, path.name
    for name, result in checked.items():
        assert not SECRET_TEXT.search(result.stdout + result.stderr), name


def test_the_message_checks_can_fail():
    """The checks above catch what they are for: a type name, a missing line number, a secret."""
    assert PYTHON_TYPES.search("found NoneType, expected a string")
    assert PYTHON_TYPES.search("found a list, expected a mapping")
    assert PYTHON_TYPES.search("expected int")
    assert not PYTHON_TYPES.search("found an empty list, expected a list of networks or a non-empty list of nodes")
    assert not PROBLEM_LINE.match("  bad.yaml: something went wrong")
    assert SECRET_TEXT.search("token: hf_QxT7rLmNp2VwZ9kB4sJd8YcF6gHa3UeR1oXi")


def test_prod_itself_passes():
    """The corpus's base is valid: each file's one problem is its edit."""
    assert load_cluster(ROOT / "inventories/prod.yaml").name == "prod"
