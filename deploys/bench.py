"""Run a `pdfleet bench` plan on the router's node: the client installed (roles/bench.py), then each scenario
against the router's local URL, its output streaming back. `pdfleet bench` writes the plan and runs this:

    pyinfra inventories/prod.py deploys/bench.py --limit ROUTER_NODE --data pdfleet_bench_plan=OUT/plan.json

Host data: pdfleet_bench_plan (the plan file, pdfleet.benchplan.BenchPlan as JSON; each scenario's record, output
and exit status land in OUT/raw/ beside it), pdfleet_bench_upload (optional: a local ShareGPT file copied to the
plan's dataset path first). Before anything is installed or run, the router must answer /readiness and the
tokenizer (model.path) and the dataset, when a scenario reads it, must be on the node; otherwise the run stops
there, naming what is missing.
"""

from pathlib import Path

from pyinfra import host
from pyinfra.api import DeployError
from pyinfra.operations import files

from pdfleet.benchplan import BenchPlan
from roles import common
from roles.bench import BenchInputs, bench_client, inputs_problem, scenario_run

serving = common.serving_plan()
if serving.router.host == common.node_name():
    plan_file = host.data.get("pdfleet_bench_plan")
    if not plan_file:
        raise DeployError("pdfleet_bench_plan: not given; `pdfleet bench INVENTORY` writes the plan and runs this")
    text = Path(plan_file).read_text()
    plan = BenchPlan.from_json(text)
    upload = host.data.get("pdfleet_bench_upload")
    needed = [f"{plan.tokenizer}/tokenizer.json", f"{plan.tokenizer}/tokenizer_config.json"]
    if plan.dataset_path and not upload:
        needed.append(plan.dataset_path)
    if plan.key_file:
        needed.append(plan.key_file)  # the router's API key, written by deploys/pd.py's router role
    found = host.get_fact(BenchInputs, url=plan.router_url, paths=tuple(needed))
    problem = inputs_problem(plan, found)
    if problem:
        raise DeployError(problem)
    bench_client()
    if upload and plan.dataset_path:
        files.put(name=f"ShareGPT dataset at {plan.dataset_path}", src=upload, dest=plan.dataset_path,
                  mode="0644", create_remote_dir=True)  # fmt: skip
    out_dir = str(Path(plan_file).resolve().parent)
    for index, run in host.loop(enumerate(plan.runs)):
        scenario_run(name=f"bench {run.name} ({index + 1}/{len(plan.runs)})", plan_json=text, index=index,
                     out_dir=out_dir)  # fmt: skip
