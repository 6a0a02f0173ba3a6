"""What evaluating root guard rails alone (engine/rootchecks.py) adds to a cell's plan.

A cell's plan runs `-target`; when its root has variable validations the target does not use or
`check` blocks, tfdeploy plans a configuration of them alone (no backend, state or provider).
Side by side, median wall times over N interleaved runs of the embedded Terraform:

- `terraform version`: the embedded Terraform's start-up alone;
- `plan: guards alone`: what tfdeploy adds (the example root's variables, a validation and a
  check: tests/safety/test_root_checks.py's guards);
- `plan -target: example cell`: the example repo's regional plan (local state, builtin provider
  only: the cheapest real plan there is; with the AWS provider a plan takes seconds, so the
  ratio is smaller still).

    python benchmarks/rootchecks.py [--runs 9]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from sidebyside import measure, report

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "toolkit"), str(Path(__file__).resolve().parents[1])]
from tfdeploy.adopt.example import write_example_repo  # noqa: E402
from tfdeploy.engine.rootchecks import alone_config, find_root_guards  # noqa: E402

from tests.safety.test_root_checks import GUARDS  # noqa: E402  (the guards the safety test proves)

VARS = {"env": "dev", "region": "us-east-1", "team": "research", "account": "111111111111",
        "release_version": "1.0"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    terraform = str(Path(sys.executable).parent / "tfdeploy-terraform")
    with tempfile.TemporaryDirectory() as tmp:
        root, alone = Path(tmp) / "cell", Path(tmp) / "alone"
        write_example_repo(root)
        main_tf = root / "main.tf"
        main_tf.write_text(re.sub(r'\s*backend "s3" \{\}', "", main_tf.read_text()))  # local state
        (root / "guards.tf").write_text(GUARDS)
        varfile = Path(tmp) / "vars.json"
        varfile.write_text(json.dumps(VARS))
        alone.mkdir()
        (alone / "rootchecks.tf").write_text(alone_config(find_root_guards(root, "module.regional"))[0])
        rc = Path(tmp) / "empty.tfrc"
        rc.write_text("")
        os.environ["TF_CLI_CONFIG_FILE"] = str(rc)
        subprocess.run([terraform, f"-chdir={root}", "init", "-input=false"], check=True, stdout=subprocess.DEVNULL)
        plan = ["plan", "-input=false", "-lock=false", f"-var-file={varfile}"]
        commands = {
            "terraform version": [terraform, "version"],
            "plan: guards alone": [terraform, f"-chdir={alone}", *plan, "-refresh=false"],
            "plan -target: example cell": [terraform, f"-chdir={root}", *plan, "-target=module.regional"],
        }
        samples = measure(commands, args.runs, Path(tmp))
    print(report(samples, "plan -target: example cell", "x plan"))


if __name__ == "__main__":
    main()
