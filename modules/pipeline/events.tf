# ---------------------------------------------------------------------------
# Tag created -> source capture build
# ---------------------------------------------------------------------------

resource "aws_cloudwatch_event_rule" "tag_created" {
  name          = "${local.name}-tag-created"
  description   = "Tags ${var.env}_* on ${var.repository_name} start the ${local.name} source capture"
  event_pattern = jsonencode(local.tag_event_pattern)

  tags = var.tags
}

resource "aws_cloudwatch_event_target" "tag_created" {
  rule     = aws_cloudwatch_event_rule.tag_created.name
  arn      = aws_codebuild_project.this["source"].arn
  role_arn = aws_iam_role.events.arn

  # The transformed input becomes the StartBuild request: build exactly the
  # tagged commit and tell the build which tag it is. Written as a literal
  # because jsonencode would escape the <placeholders>.
  input_transformer {
    input_paths = {
      tag    = "$.detail.referenceName"
      commit = "$.detail.commitId"
    }

    input_template = <<-EOT
      {
        "sourceVersion": <commit>,
        "environmentVariablesOverride": [
          {"name": "TFDEPLOY_TAG", "value": <tag>, "type": "PLAINTEXT"}
        ]
      }
    EOT
  }
}

# No rule on the source object: an S3 "Object Created" rule starts an execution
# that takes whatever version is current when its Source action runs, which
# may be another tag's bundle when several tags are pushed at once. tfdeploy
# publish starts each execution with its own object version instead.
