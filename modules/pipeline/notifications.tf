# ---------------------------------------------------------------------------
# Failed executions -> the user's SNS topic (optional)
# ---------------------------------------------------------------------------

locals {
  # Only executions of this pipeline that ended FAILED: not SUCCEEDED, STOPPED
  # or SUPERSEDED, and not another env's pipeline (the name is matched whole).
  failed_execution_pattern = {
    source      = ["aws.codepipeline"]
    detail-type = ["CodePipeline Pipeline Execution State Change"]
    detail = {
      pipeline = [local.name]
      state    = ["FAILED"]
    }
  }
}

resource "aws_cloudwatch_event_rule" "execution_failed" {
  count = var.notification_topic_arn == null ? 0 : 1

  name          = "${local.name}-execution-failed"
  description   = "Failed executions of ${local.name} are sent to the notification topic"
  event_pattern = jsonencode(local.failed_execution_pattern)

  tags = var.tags
}

# No role_arn: EventBridge publishes to SNS under the topic's own policy, which
# the topic's owner grants (see README: Notifications).
resource "aws_cloudwatch_event_target" "execution_failed" {
  count = var.notification_topic_arn == null ? 0 : 1

  rule = aws_cloudwatch_event_rule.execution_failed[0].name
  arn  = var.notification_topic_arn
}
