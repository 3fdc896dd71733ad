"""The study's lmms-eval tasks held against the lmms-eval that serving/.venv installs (the
project's environment has no lmms-eval): each registry task is a task of that harness, and the
metric the registry scores it by is one the task reports, with judge_free's configs laid over."""

from __future__ import annotations

import json
import subprocess

from factories.vllm import SERVING_PYTHON
from quantfleet.api.contract import STUDY_TASKS
from quantfleet.api.enums import Harness

REPORT = """
import json
from lmms_eval import utils
from lmms_eval.tasks import TaskManager
from quantfleet.api.contract import STUDY_TASKS
from quantfleet.api.enums import Harness
from quantfleet_jobs.judge_free import OVERRIDES

index = TaskManager().task_index
found = {}
for spec in STUDY_TASKS.values():
    entry = index.get(spec.task)
    if spec.harness is Harness.LMMS_EVAL and entry:
        config = utils.load_yaml_config(entry["yaml_path"], mode="simple")
        config |= OVERRIDES.get(spec.task, {})
        metrics = [m["metric"] for m in config["metric_list"]]
        found[spec.task] = {"type": entry["type"], "metrics": metrics}
print(json.dumps(found))
"""


def test_every_lmms_eval_task_of_the_registry_is_in_the_installed_lmms_eval_with_its_metric() -> (
    None
):
    report = subprocess.run(
        [SERVING_PYTHON, "-c", REPORT], capture_output=True, text=True, check=True, timeout=300
    )
    found = json.loads(report.stdout.splitlines()[-1])

    lmms = {t: s for t, s in STUDY_TASKS.items() if s.harness is Harness.LMMS_EVAL}
    assert lmms, "the registry runs no task in lmms-eval"
    for task, spec in lmms.items():
        assert spec.task in found, task
        assert found[spec.task]["type"] == "task", task
        metric, task_filter = spec.metric.split(",")
        # lmms-eval's tasks here have no filters: a score is reported as "<metric>,none".
        assert (metric, task_filter) in {(m, "none") for m in found[spec.task]["metrics"]}, task
