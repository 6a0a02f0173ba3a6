"""modules/pipeline: stage order, the tag trigger, and what the builds may do.

The EventBridge pattern and the build environment are evaluated by the real Terraform (console,
no provider needed) from the module's own source text, then compared with what the issue and
tfdeploy expect.
"""

from __future__ import annotations

import json
import re

import pytest
from infra_support import MODULES, attribute_source, console_eval, load_dir, unwrap

PIPELINE = MODULES / "pipeline"
EXPECTED_STAGES = ["Source", "Lint", "SecurityScan", "Plan", "Apply"]


def expected_pattern(env: str) -> dict:
    # Verbatim from the issue, with <env> filled in.
    text = ('{"source":["aws.codecommit"],"detail-type":["CodeCommit Repository State Change"],'
            '"detail":{"event":["referenceCreated"],"referenceType":["tag"],'
            '"referenceName":[{"prefix":"<env>_"}]}}')
    return json.loads(text.replace("<env>", env))


def matches(pattern: dict, tag: str) -> bool:
    """EventBridge semantics for the referenceName part: any listed value or prefix matches."""
    return any(tag.startswith(rule["prefix"]) if isinstance(rule, dict) else tag == rule
               for rule in pattern["detail"]["referenceName"])


@pytest.fixture(scope="module")
def pipeline():
    return load_dir(PIPELINE)


@pytest.fixture(scope="module")
def codepipeline(pipeline):
    return pipeline.typed("resource")[("aws_codepipeline", "this")]


def actions(stage: dict) -> list[dict]:
    """Static and dynamic actions of a stage, sorted by run_order."""
    found = list(stage.get("action", []))
    for dyn in stage.get("dynamic", []):
        for content in dyn["action"]["content"]:
            found.append({**content, "_for_each": dyn["action"]["for_each"]})
    return sorted(found, key=lambda a: a.get("run_order", 1))


# --- stages -----------------------------------------------------------------------------------


def test_stages_run_in_the_reference_order(codepipeline):
    assert [s["name"] for s in codepipeline["stage"]] == EXPECTED_STAGES


def test_pipeline_is_v2_queued_with_a_kms_encrypted_artifact_store(codepipeline):
    assert codepipeline["pipeline_type"] == "V2"
    assert codepipeline["execution_mode"] == "QUEUED"
    (store,) = codepipeline["artifact_store"]
    assert store["encryption_key"][0]["type"] == "KMS"


def test_source_stage_watches_the_versioned_source_object(pipeline, codepipeline):
    (action,) = actions(codepipeline["stage"][0])
    assert (action["category"], action["provider"]) == ("Source", "S3")
    config = action["configuration"]
    assert unwrap(config["S3ObjectKey"]) == "local.source_object_key"
    assert config["PollForSourceChanges"] == "false"
    assert unwrap(pipeline.locals()["source_object_key"]) == (
        'coalesce(var.source_object_key, "source/${var.env}/source.zip")'
    )
    # No S3 event starts an execution (it would take whatever version is current): publish
    # starts each one with its own object version.
    source_bucket = pipeline.named("module")["source_bucket"]
    assert not source_bucket.get("eventbridge_notifications", False)


def test_each_build_stage_runs_its_own_project_and_buildspec(pipeline, codepipeline):
    projects = pipeline.locals()["build_projects"]
    assert set(projects) == {"source", "tflint", "checkov", "plan", "apply"}
    # The buildspec is inline, from var.buildspecs: versioned with the pipeline, not the tag.
    project = pipeline.typed("resource")[("aws_codebuild_project", "this")]
    assert unwrap(project["source"][0]["buildspec"]) == "var.buildspecs[each.key]"
    stage_project = {}
    for stage in codepipeline["stage"][1:]:
        for action in actions(stage):
            if action["provider"] == "CodeBuild":
                name = re.search(r'aws_codebuild_project\.this\["(\w+)"\]', action["configuration"]["ProjectName"])
                stage_project[stage["name"]] = stage_project.get(stage["name"], []) + [name.group(1)]
    assert stage_project == {"Lint": ["tflint"], "SecurityScan": ["checkov"], "Plan": ["plan"], "Apply": ["apply"]}


def test_checkov_is_followed_by_an_approval_showing_its_counts(codepipeline):
    scan, approval = actions(codepipeline["stage"][2])
    assert scan["name"] == "checkov" and scan["run_order"] == 1
    assert approval["category"] == "Approval" and approval["run_order"] == 2
    for count in ("CHECKOV_PASSED", "CHECKOV_FAILED", "CHECKOV_SKIPPED"):
        assert f"#{{{scan['namespace']}.{count}}}" in approval["configuration"], count


def test_apply_waits_for_approval_in_staging_and_prod(pipeline, codepipeline):
    plan_stage, apply_stage = codepipeline["stage"][3], codepipeline["stage"][4]
    (plan,) = actions(plan_stage)
    approval, apply = actions(apply_stage)
    assert approval["category"] == "Approval" and approval["run_order"] < apply["run_order"]
    assert unwrap(approval["_for_each"]) == "local.require_apply_approval ? [1] : []"
    assert unwrap(pipeline.locals()["require_apply_approval"]) == (
        'coalesce(var.require_apply_approval, contains(["staging", "prod"], var.env))'
    )
    # apply uses the saved plan: the plan action's output is the apply action's second input
    assert apply["input_artifacts"] == ["source_output", *plan["output_artifacts"]]
    assert apply["configuration"]["PrimarySource"] == "source_output"


def test_pipeline_variables_reach_every_build_action(pipeline, codepipeline, terraform_bin, tmp_path):
    assert {v["name"] for v in codepipeline["variable"]} == {"TF_BACKEND_CONFIG_PREFIX", "ENV", "TFDEPLOY_TAG"}
    (tag_var,) = [v for v in codepipeline["variable"] if v["name"] == "TFDEPLOY_TAG"]
    assert "default_value" not in tag_var  # an execution without its tag must not guess one
    used = {}
    for stage in codepipeline["stage"][1:]:
        for action in actions(stage):
            if action["provider"] == "CodeBuild":
                used[action["name"]] = unwrap(action["configuration"]["EnvironmentVariables"])
    # The plan and apply stage builds start a release's batch: they also need the execution and
    # the bundle's object version (delivery/release_stage.py).
    assert used == {"tflint": "local.build_environment", "checkov": "local.build_environment",
                    "terraform-plan": "local.batch_stage_environment",
                    "terraform-apply": "local.batch_stage_environment"}
    sources = [attribute_source(PIPELINE / "codepipeline.tf", n) for n in ("build_environment", "batch_stage_environment")]
    common = [
        {"name": "TF_BACKEND_CONFIG_PREFIX", "value": "#{variables.TF_BACKEND_CONFIG_PREFIX}", "type": "PLAINTEXT"},
        {"name": "ENV", "value": "#{variables.ENV}", "type": "PLAINTEXT"},
        {"name": "TFDEPLOY_EXPECTED_TAG", "value": "#{variables.TFDEPLOY_TAG}", "type": "PLAINTEXT"},
    ]
    assert json.loads(console_eval(terraform_bin, tmp_path, sources, "local.build_environment")) == common
    from tfdeploy.delivery.release_stage import EXECUTION_VAR, SOURCE_VERSION_VAR

    assert json.loads(console_eval(terraform_bin, tmp_path, sources, "local.batch_stage_environment")) == common + [
        {"name": EXECUTION_VAR, "value": "#{codepipeline.PipelineExecutionId}", "type": "PLAINTEXT"},
        {"name": SOURCE_VERSION_VAR, "value": "#{SourceVariables.VersionId}", "type": "PLAINTEXT"},
    ]
    assert actions(codepipeline["stage"][0])[0]["namespace"] == "SourceVariables"


def test_stage_names_match_the_toolkit(codepipeline):
    from tfdeploy.delivery import buildspec  # the project's own module: a failed import fails
    plan_stage = codepipeline["stage"][3]
    assert actions(plan_stage)[0]["output_artifacts"] == [buildspec.PLAN_ARTIFACT]
    approval = actions(codepipeline["stage"][2])[1]
    for name in buildspec.STAGE_EXPORTS["checkov"]:
        assert name in approval["configuration"]
    # The release's approval shows its plan matrix in one line and links its HTML plan report:
    # variables the plan stage exports.
    assert actions(plan_stage)[0]["namespace"] == "Plan"
    [review] = [line for line in (PIPELINE / "codepipeline.tf").read_text().splitlines()
                if line.strip().startswith('CustomData = "Apply to')]
    for name in ("PLAN_SUMMARY", "PLAN_REPORT"):
        assert f"#{{Plan.{name}}}" in review
        assert name in buildspec.STAGE_EXPORTS["plan"]


# --- trigger ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def patterns(terraform_bin, tmp_path_factory):
    source = attribute_source(PIPELINE / "main.tf", "tag_event_pattern")
    return {env: console_eval(terraform_bin, tmp_path_factory.mktemp(f"pattern-{env}"), [source],
                              "local.tag_event_pattern", {"env": env})
            for env in ("dev", "qa", "staging", "prod")}


def test_rule_uses_the_jsonencoded_tag_pattern(pipeline):
    rule = pipeline.typed("resource")[("aws_cloudwatch_event_rule", "tag_created")]
    assert unwrap(rule["event_pattern"]) == "jsonencode(local.tag_event_pattern)"


@pytest.mark.parametrize("env", ["dev", "qa", "staging", "prod"])
def test_tag_pattern_is_exactly_the_reference_pattern(patterns, env):
    assert patterns[env] == expected_pattern(env)


@pytest.mark.parametrize("env", ["dev", "qa", "staging", "prod"])
def test_tag_pattern_matches_the_env_prefix_only(patterns, env):
    pattern = patterns[env]
    for tag in (f"{env}_us-east-1/research/1.0", f"{env}_global/risk/2.1", f"{env}_ap-southeast-1/risk/1.0"):
        assert matches(pattern, tag), tag
    others = [e for e in ("dev", "qa", "staging", "prod") if e != env]
    for tag in [f"{o}_us-east-1/research/1.0" for o in others] + [
        f"{env}-x_us-east-1/research/1.0", f"{env}x_global/risk/1.0", f"{env}/us-east-1/research/1.0",
        f"x{env}_us-east-1/research/1.0", f"{env.upper()}_us-east-1/research/1.0",
    ]:
        assert not matches(pattern, tag), tag


def test_tag_pattern_equals_what_tfdeploy_prints(patterns):
    from tfdeploy.delivery import events  # the project's own module: a failed import fails
    for env, pattern in patterns.items():
        assert pattern == events.event_pattern(env)


def test_tag_event_starts_the_source_build_with_the_tag(pipeline, terraform_bin, tmp_path):
    target = pipeline.typed("resource")[("aws_cloudwatch_event_target", "tag_created")]
    assert unwrap(target["arn"]) == 'aws_codebuild_project.this["source"].arn'
    (transformer,) = target["input_transformer"]
    assert transformer["input_paths"]["tag"] == "$.detail.referenceName"
    assert transformer["input_paths"]["commit"] == "$.detail.commitId"
    # The heredoc as Terraform renders it, i.e. the template EventBridge receives.
    source = attribute_source(PIPELINE / "events.tf", "input_template")
    template = console_eval(terraform_bin, tmp_path, [source], "local.input_template")
    # EventBridge substitutes each <placeholder> with the JSON value of its path.
    start_build = json.loads(re.sub(r"<(\w+)>", lambda m: json.dumps(f"value-of-{m.group(1)}"), template))
    assert start_build["sourceVersion"] == "value-of-commit"
    assert start_build["environmentVariablesOverride"] == [
        {"name": "TFDEPLOY_TAG", "value": "value-of-tag", "type": "PLAINTEXT"}
    ]
    from tfdeploy.delivery import ci  # the project's own module: a failed import fails
    assert ci.TAG_VAR == "TFDEPLOY_TAG"


def test_only_publish_starts_the_pipeline(pipeline):
    """No EventBridge rule or target starts the pipeline; the source build's role may start it."""
    resources = pipeline.typed("resource")
    targets = [body for (rtype, _), body in resources.items() if rtype == "aws_cloudwatch_event_target"]
    # The failed-execution target only tells the (optional) notification topic.
    assert [unwrap(t["arn"]) for t in targets] == ['aws_codebuild_project.this["source"].arn',
                                                   "var.notification_topic_arn"]
    events_policy = pipeline.typed("data")[("aws_iam_policy_document", "events")]
    assert [a for s in _statements(events_policy) for a in s["actions"]] == ["codebuild:StartBuild"]
    source_policy = pipeline.typed("data")[("aws_iam_policy_document", "build_source")]
    (start,) = [s for s in _statements(source_policy) if "codepipeline:StartPipelineExecution" in s["actions"]]
    assert start["actions"] == ["codepipeline:StartPipelineExecution"]
    assert start["resources"] == ["${local.pipeline_arn}"]
    assert pipeline.locals()["build_projects"]["source"]["env"]["TFDEPLOY_PIPELINE_NAME_PREFIX"] == "${var.name_prefix}"


def test_buildspecs_variable_requires_all_five_stages(pipeline):
    variable = pipeline.named("variable")["buildspecs"]
    assert unwrap(variable["type"]) == "map(string)"
    conditions = " ".join(unwrap(v["condition"]) for v in variable["validation"])
    for stage in ("source", "tflint", "checkov", "plan", "apply"):
        assert f'"{stage}"' in conditions


def test_source_location_matches_the_publisher(pipeline):
    local = pipeline.locals()
    assert local["source_bucket_name"] == "${var.tf_backend_config_prefix}-source-${var.env}"
    from tfdeploy.delivery import publish  # the project's own module: a failed import fails
    assert publish.source_key("dev") == "source/dev/source.zip"


# --- permissions ------------------------------------------------------------------------------


def _statements(policy: dict) -> list[dict]:
    found = list(policy.get("statement", []))
    for dyn in policy.get("dynamic", []):
        found += dyn["statement"]["content"]
    return found


def test_only_the_deploy_role_may_assume_roles_and_only_infra_build_roles(pipeline):
    data = pipeline.typed("data")
    sts = {}
    for (rtype, name), body in data.items():
        if rtype != "aws_iam_policy_document" or name == "trust":
            continue
        for statement in _statements(body):
            acts = statement.get("actions", [])
            assert not any(a == "*" or a.endswith(":*") for a in acts), f"{name}: wildcard action {acts}"
            if any(a.startswith("sts:") for a in acts):
                sts[name] = statement
    assert set(sts) == {"build_deploy"}, f"sts:* granted by {sorted(sts)}"
    statement = sts["build_deploy"]
    assert statement["actions"] == ["sts:AssumeRole"]
    assert unwrap(statement["resources"]) == "local.target_role_arns"
    assert unwrap(pipeline.locals()["target_role_arns"]) == (
        '[for a in var.target_account_ids : "arn:${local.partition}:iam::${a}:role/${var.target_role_name}"]'
    )
    target_role = pipeline.named("variable")["target_role_name"]
    assert target_role["default"] == "InfraBuildRole"


def test_service_roles_are_protected_against_confused_deputies(pipeline):
    trust = pipeline.typed("data")[("aws_iam_policy_document", "trust")]
    (statement,) = trust["statement"]
    (condition,) = statement["condition"]
    assert condition["variable"] == "aws:SourceAccount"
    assert set(pipeline.locals()["service_principals"].values()) == {
        "codepipeline.amazonaws.com", "codebuild.amazonaws.com", "events.amazonaws.com"}


def test_builds_are_encrypted_logged_and_unprivileged(pipeline):
    project = pipeline.typed("resource")[("aws_codebuild_project", "this")]
    assert unwrap(project["encryption_key"]) == "module.pipeline_key.arn"
    assert project["environment"][0]["privileged_mode"] is False
    assert project["logs_config"][0]["cloudwatch_logs"][0]["status"] == "ENABLED"
    assert "vpc_config" in {d_key for dyn in project.get("dynamic", []) for d_key in dyn}
    # The key lives in the shared logs-kms-key module.
    assert pipeline.named("module")["pipeline_key"]["source"] == "../logs-kms-key"
    key = load_dir(MODULES / "logs-kms-key").typed("resource")[("aws_kms_key", "this")]
    assert key["enable_key_rotation"] is True


# --- failed executions -> SNS (issue 12, item 10) ----------------------------------------------


def _failed_pattern(terraform_bin, work, env: str = "dev", name_prefix: str = "tfdeploy") -> dict:
    sources = [attribute_source(PIPELINE / "main.tf", "name"),
               attribute_source(PIPELINE / "notifications.tf", "failed_execution_pattern")]
    return console_eval(terraform_bin, work, sources, "local.failed_execution_pattern",
                        {"env": env, "name_prefix": name_prefix})


def test_failed_executions_go_to_the_notification_topic_only_when_set(pipeline, terraform_bin, tmp_path):
    resources = pipeline.typed("resource")
    rule = resources[("aws_cloudwatch_event_rule", "execution_failed")]
    target = resources[("aws_cloudwatch_event_target", "execution_failed")]
    for block in (rule, target):
        assert unwrap(block["count"]) == "var.notification_topic_arn == null ? 0 : 1"
    assert unwrap(rule["event_pattern"]) == "jsonencode(local.failed_execution_pattern)"
    assert unwrap(target["rule"]) == "aws_cloudwatch_event_rule.execution_failed[0].name"
    assert unwrap(target["arn"]) == "var.notification_topic_arn"
    assert "role_arn" not in target  # SNS targets are allowed by the topic's own policy
    variable = pipeline.named("variable")["notification_topic_arn"]
    assert variable["default"] is None and unwrap(variable["type"]) == "string"
    assert "sns" in unwrap(variable["validation"][0]["condition"])
    assert _failed_pattern(terraform_bin, tmp_path) == {
        "source": ["aws.codepipeline"],
        "detail-type": ["CodePipeline Pipeline Execution State Change"],
        "detail": {"pipeline": ["tfdeploy-dev"], "state": ["FAILED"]},
    }
    assert "notification_topic_arn" in (PIPELINE / "README.md").read_text(encoding="utf-8")


def test_eventbridge_delivers_only_this_pipelines_failed_executions(aws_sandbox, terraform_bin, tmp_path):
    """The module's pattern on moto's EventBridge, an SQS queue standing in for the SNS topic."""
    import time

    import boto3

    pattern = _failed_pattern(terraform_bin, tmp_path, env="prod", name_prefix="acme")
    events = boto3.client("events", region_name="us-east-1")
    sqs = boto3.client("sqs", region_name="us-east-1")
    queue = sqs.create_queue(QueueName="pipeline-failures")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="acme-prod-execution-failed", EventPattern=json.dumps(pattern))
    events.put_targets(Rule="acme-prod-execution-failed", Targets=[{"Id": "topic", "Arn": arn}])

    def execution(pipeline: str, state: str, execution_id: str) -> dict:
        return {"Source": "aws.codepipeline", "DetailType": "CodePipeline Pipeline Execution State Change",
                "Resources": [f"arn:aws:codepipeline:us-east-1:123456789012:{pipeline}"],
                "Detail": json.dumps({"pipeline": pipeline, "execution-id": execution_id, "state": state,
                                      "version": 3.0})}

    sent = [execution("acme-prod", "FAILED", "e-1"),      # delivered
            execution("acme-prod", "SUCCEEDED", "e-2"),
            execution("acme-prod", "STARTED", "e-3"),
            execution("acme-prod", "STOPPED", "e-4"),
            execution("acme-dev", "FAILED", "e-5"),       # another env's pipeline
            execution("acme-prod-x", "FAILED", "e-6")]    # a name that merely starts the same
    for entry in sent:
        assert events.put_events(Entries=[entry])["FailedEntryCount"] == 0
    received: list[dict] = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        received += [json.loads(m["Body"]) for m in messages]
        if not messages and received:
            break
    assert [(b["detail"]["pipeline"], b["detail"]["execution-id"]) for b in received] == [("acme-prod", "e-1")]


def test_only_the_deploy_role_reads_the_previous_envs_ledger_and_only_its_records(pipeline):
    """The promotion check reads env N-1's ledger: the deploy build may list and get
    `_tfdeploy-ledger/*` of that env's state bucket (never its state), and only when the module is
    told which env comes before (`promotion_source_env`, null for the first env)."""
    from tfdeploy.fleet.ledger import LEDGER_PREFIX

    data = pipeline.typed("data")
    granted = {}
    for (rtype, name), body in data.items():
        if rtype != "aws_iam_policy_document":
            continue
        for dyn in body.get("dynamic", []):
            if unwrap(dyn["statement"]["for_each"]).startswith("var.promotion_source_env"):
                granted.setdefault(name, []).append(dyn["statement"])
    assert set(granted) == {"build_deploy"}
    for statement in granted["build_deploy"]:
        assert unwrap(statement["for_each"]) == "var.promotion_source_env == null ? [] : [var.promotion_source_env]"
    by_sid = {unwrap(s["content"][0]["sid"]): s["content"][0] for s in granted["build_deploy"]}
    assert set(by_sid) == {"ListPreviousEnvLedger", "ReadPreviousEnvLedger"}
    listing, reading = by_sid["ListPreviousEnvLedger"], by_sid["ReadPreviousEnvLedger"]
    assert listing["actions"] == ["s3:ListBucket"] and reading["actions"] == ["s3:GetObject"]
    assert listing["condition"][0]["values"] == [f"{LEDGER_PREFIX}*"]
    assert unwrap(listing["condition"][0]["variable"]) == "s3:prefix"
    assert unwrap(reading["resources"][0]).endswith(f"-${{statement.value}}/{LEDGER_PREFIX}*")
    variable = pipeline.named("variable")["promotion_source_env"]
    assert variable["default"] is None and unwrap(variable["type"]) == "string"
    assert "promotion_source_env" in (PIPELINE / "README.md").read_text(encoding="utf-8")
