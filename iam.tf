# The function's role: exactly what the function needs.

locals {
  dead_letter_action = var.dead_letter_target_arn == null ? null : (
    startswith(split(":", var.dead_letter_target_arn)[2], "sqs") ? "sqs:SendMessage" : "sns:Publish"
  )
}

resource "aws_iam_role" "function" {
  name = local.role_name
  tags = var.tags

  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "lambda.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}

# Policy documents, not jsonencode(): checkov 3.3.30 reads a document's statement blocks on every run,
# while it renders the jsonencode() form of this policy only under some hash seeds. Each optional
# setting brings its own document and policy: checkov reads neither a statement filtered into one
# list nor a dynamic statement block, and the role still holds only what the settings use.
data "aws_iam_policy_document" "function" {
  statement {
    sid       = "DecryptOwnSecrets"
    actions   = ["kms:Decrypt"]
    resources = [local.key_arn]
    condition {
      test     = "StringEquals"
      variable = "kms:EncryptionContext:LambdaFunctionName"
      values   = [var.function_name]
    }
    # Only this function's credentials (any version or alias): not another function's, nor the
    # role used by anything else, Lambda's own calls with it included.
    condition {
      test     = "ArnLike"
      variable = "lambda:SourceFunctionArn"
      values   = [local.function_arn, "${local.function_arn}:*"]
    }
    # With decrypt_vpc_endpoint_ids, only through those KMS endpoints: credentials copied out of
    # the function still carry its SourceFunctionArn, so only a network condition stops them.
    dynamic "condition" {
      for_each = length(var.decrypt_vpc_endpoint_ids) > 0 ? [var.decrypt_vpc_endpoint_ids] : []
      content {
        test     = "StringEquals"
        variable = "aws:SourceVpce"
        values   = condition.value
      }
    }
  }
  # An explicit Deny, so that no other policy attached to this role (an allow of kms:Decrypt on "*", say)
  # lets anything but this function open the secrets: another function given this role, or the role's
  # credentials outside Lambda (the key is then absent, and a negated operator holds).
  statement {
    sid       = "DenyOpeningOutsideTheFunction"
    effect    = "Deny"
    actions   = ["kms:Decrypt", "kms:ReEncrypt*"]
    resources = [local.key_arn]
    condition {
      test     = "ArnNotLike"
      variable = "lambda:SourceFunctionArn"
      values   = [local.function_arn, "${local.function_arn}:*"]
    }
  }
  statement {
    sid       = "WriteOwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function.arn}:*"]
  }
}

resource "aws_iam_role_policy" "function" {
  name   = "open-sealed-secrets"
  role   = aws_iam_role.function.id
  policy = data.aws_iam_policy_document.function.json
}

# With decrypt_vpc_endpoint_ids, a Deny of its own (a second condition in the Deny above would narrow it
# to requests outside both the function and the endpoints): nothing opens the secrets elsewhere, whatever
# else the role is given. A policy of its own, as checkov reads no dynamic statement block.
data "aws_iam_policy_document" "decrypt_endpoints" {
  count = length(var.decrypt_vpc_endpoint_ids) > 0 ? 1 : 0

  statement {
    sid       = "DenyOpeningOutsideTheEndpoints"
    effect    = "Deny"
    actions   = ["kms:Decrypt", "kms:ReEncrypt*"]
    resources = [local.key_arn]
    condition {
      test     = "StringNotEquals"
      variable = "aws:SourceVpce"
      values   = var.decrypt_vpc_endpoint_ids
    }
  }
}

resource "aws_iam_role_policy" "decrypt_endpoints" {
  count  = length(var.decrypt_vpc_endpoint_ids) > 0 ? 1 : 0
  name   = "open-only-through-endpoints"
  role   = aws_iam_role.function.id
  policy = data.aws_iam_policy_document.decrypt_endpoints[0].json
}

data "aws_iam_policy_document" "vpc" {
  count = local.in_vpc ? 1 : 0

  statement {
    sid       = "DescribeNetworkInterfaces"
    actions   = ["ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"]
    resources = ["*"] # these actions take no resource-level permissions
  }
  statement {
    sid     = "ManageOwnNetworkInterfaces"
    actions = ["ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"]
    resources = concat(
      ["arn:${local.partition}:ec2:${local.region}:${local.account_id}:network-interface/*"],
      # Any owner account: a shared VPC's subnets and groups belong to the VPC owner; their IDs are unique.
      [for id in var.vpc_subnet_ids : "arn:${local.partition}:ec2:${local.region}:*:subnet/${id}"],
      [for id in var.vpc_security_group_ids : "arn:${local.partition}:ec2:${local.region}:*:security-group/${id}"],
    )
  }
}

resource "aws_iam_role_policy" "vpc" {
  count  = local.in_vpc ? 1 : 0
  name   = "vpc-network-interfaces"
  role   = aws_iam_role.function.id
  policy = data.aws_iam_policy_document.vpc[0].json
}

data "aws_iam_policy_document" "tracing" {
  count = var.tracing_mode == "Active" ? 1 : 0

  statement {
    sid       = "WriteTraces"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"] # X-Ray takes no resource-level permissions for these
  }
}

resource "aws_iam_role_policy" "tracing" {
  count  = var.tracing_mode == "Active" ? 1 : 0
  name   = "xray-traces"
  role   = aws_iam_role.function.id
  policy = data.aws_iam_policy_document.tracing[0].json
}

data "aws_iam_policy_document" "dead_letter" {
  count = local.dead_letter_action == null ? 0 : 1

  statement {
    sid       = "SendToDeadLetterTarget"
    actions   = [local.dead_letter_action]
    resources = [var.dead_letter_target_arn]
  }
}

resource "aws_iam_role_policy" "dead_letter" {
  count  = local.dead_letter_action == null ? 0 : 1
  name   = "dead-letter-target"
  role   = aws_iam_role.function.id
  policy = data.aws_iam_policy_document.dead_letter[0].json
}

