"""roles.prefetch's batch: a real shell runs it, and each command's answer comes back as it would alone."""

from __future__ import annotations

import subprocess

from roles.prefetch import batch_script, parse_batch

COMMANDS = [
    "echo one; echo two",
    "echo oops >&2; exit 3",
    "printf 'no newline'",
    "true",
    "cat /nonexistent/file",
]


def run_alone(command: str) -> tuple[bool, list[str], list[str]]:
    done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=False)
    return done.returncode == 0, done.stdout.splitlines(), done.stderr.splitlines()


def test_each_answer_equals_the_command_run_alone():
    done = subprocess.run(["sh", "-c", batch_script(COMMANDS)], capture_output=True, text=True, check=True)
    answers = parse_batch(COMMANDS, done.stdout.splitlines())
    assert set(answers) == set(COMMANDS)
    for command in COMMANDS:
        ok, output = answers[command]
        assert (ok, output.stdout_lines, output.stderr_lines) == run_alone(command), command


def test_a_cut_off_batch_answers_only_what_finished():
    done = subprocess.run(["sh", "-c", batch_script(COMMANDS)], capture_output=True, text=True, check=True)
    lines = done.stdout.splitlines()
    cut = lines[: lines.index("@@pdfleet-prefetch 2")]  # the third command never ran
    assert set(parse_batch(COMMANDS, cut)) == {COMMANDS[0], COMMANDS[1]}


def test_file_reads_run_as_one_sha1sum_and_one_stat_and_answer_as_each_alone(tmp_path):
    from pyinfra.facts.files import File, Sha1File

    (tmp_path / "a.conf").write_text("alpha\n")
    (tmp_path / "b dir").mkdir()
    (tmp_path / "b dir" / "c.conf").write_text("gamma\n")
    (tmp_path / "link").symlink_to(tmp_path / "a.conf")
    (tmp_path / "dangling").symlink_to(tmp_path / "missing")
    paths = [str(tmp_path / name) for name in ("a.conf", "b dir/c.conf", "link", "dangling", "missing", "b dir")]
    commands = [str(Sha1File().command(path=p).get_raw_value()) for p in paths]
    commands += [str(File().command(path=p).get_raw_value()) for p in paths]
    commands.append("echo plain")
    script = batch_script(commands)
    # One program per group; the two paths pyinfra had to quote (a space) run alone, as before.
    assert script.count("sha1sum") == 1 + 2 and script.count("stat -c") == 1 + 2
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    answers = parse_batch(commands, done.stdout.splitlines())
    assert set(answers) == set(commands)
    for command in commands:
        ok, output = answers[command]
        assert (ok, output.stdout_lines, output.stderr_lines) == run_alone(command), command
    assert answers[commands[0]][1].stdout_lines[0].startswith("d046cd9b7ffb")  # sha1 of "alpha\n"


def test_venv_packages_read_by_the_shell_match_what_the_venvs_python_reports():
    import json
    import sys
    from pathlib import Path

    from pdfleet.runtimeplan import normalize
    from roles.runtime import VenvPackages

    venv = str(Path(sys.executable).parent.parent)  # the venv running these tests
    command = VenvPackages().command(venv=venv).get_raw_value()
    ok, lines, _ = run_alone(command)
    assert ok
    listing = (
        "import importlib.metadata as m, json; "
        "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"
    )
    reported = json.loads(subprocess.run([sys.executable, "-c", listing], capture_output=True, text=True).stdout)
    assert VenvPackages().process(lines) == {normalize(name): version for name, version in reported.items()}
    assert VenvPackages().process(run_alone(VenvPackages().command(venv="/nonexistent").get_raw_value())[1]) is None


def test_a_fact_the_batch_lacks_is_read_alone_and_only_a_change_makes_every_read_live(tmp_path, monkeypatch):
    # The real install() on a real pyinfra host (@local): what runs on the host is counted, what facts say is read
    # back. After a converge the next no-op reads facts the converge did not (the sha1 of files it had uploaded):
    # each such read is one command, and the batch's other answers stay in use until something changes.
    import json
    from pathlib import Path

    from pyinfra.api import Config, FactBase, Inventory, State
    from pyinfra.context import ctx_host, ctx_state

    from roles import prefetch

    class Lines(FactBase):
        def command(self, path):
            return f"cat {path}"

        def process(self, output):
            return list(output)

    prod = Path(__file__).resolve().parent.parent / "inventories" / "prod.yaml"
    inventory = Inventory((["@local"], {"pdfleet_inventory": str(prod), "pdfleet_node": "prefill-0"}))
    state = State(inventory, Config())
    local = inventory.get_host("@local")
    local.connect()
    ran: list[str] = []
    real_run = local.run_shell_command

    def counted(command, *args, **kwargs):
        ran.append(prefetch._text(command))
        return real_run(command, *args, **kwargs)

    local.run_shell_command = counted
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    a, b, new = (tmp_path / name for name in ("a", "b", "new"))
    for path in (a, b, new):
        path.write_text(f"{path.name} before\n")
    cache = prefetch.cache_file("prod", "prefill-0", "test")
    cache.parent.mkdir(parents=True)
    cache.write_text(json.dumps([f"cat {a}", f"cat {b}"]))  # what the previous run read

    with ctx_state.use(state), ctx_host.use(local):
        prefetch.install("test")
        assert len(ran) == 1  # the batch
        for path in (a, b, new):
            path.write_text(f"{path.name} after\n")  # changed behind the batch's back: tells answer from read
        assert local.get_fact(Lines, path=str(a)) == ["a before"]  # from the batch
        assert local.get_fact(Lines, path=str(new)) == ["new after"]  # not in the batch: read alone
        assert local.get_fact(Lines, path=str(b)) == ["b before"]  # the batch still answers after that read
        assert ran[1:] == [f"cat {new}"]
        local.run_shell_command(f"touch {tmp_path / 'change'}")  # an operation's change
        assert local.get_fact(Lines, path=str(a)) == ["a after"]  # read live from now on
        assert ran[-1] == f"cat {a}"
        memo = prefetch._memos[local]
        prefetch._memos.clear()  # nothing for the exit hook to save
    local.disconnect()
    assert memo.asked == [f"cat {a}", f"cat {new}", f"cat {b}"]  # the next run's batch: every fact this one read
