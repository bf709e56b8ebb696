data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

# The function and its log group. The key and the ciphertexts are in kms.tf, the role in iam.tf,
# the package in package.tf.

locals {
  partition    = data.aws_partition.current.partition
  account_id   = data.aws_caller_identity.current.account_id
  region       = data.aws_region.current.id # the region's name in provider 5.x and 6.x alike
  account_root = "arn:${local.partition}:iam::${local.account_id}:root"

  # Built from names, not read from resources: the role's policy names the function and the key
  # policy names the role, so reading their ARNs would make a dependency cycle.
  role_name    = "${var.function_name}-lambda"
  role_arn     = "arn:${local.partition}:iam::${local.account_id}:role/${local.role_name}"
  function_arn = "arn:${local.partition}:lambda:${local.region}:${local.account_id}:function:${var.function_name}"

  encryption_context = { LambdaFunctionName = var.function_name }

  log_group_name = "/aws/lambda/${var.function_name}"
  in_vpc         = length(var.vpc_subnet_ids) > 0
}

resource "aws_cloudwatch_log_group" "function" {
  #checkov:skip=CKV_AWS_158:CloudWatch Logs encrypts every log group at rest. A customer managed key needs a key policy that lets the logs service use it, which only the key's owner can write: offered as input log_kms_key_arn. The function never logs a secret.
  name              = local.log_group_name
  retention_in_days = var.log_retention_in_days
  kms_key_id        = var.log_kms_key_arn
  tags              = var.tags
}

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_115:Reserved concurrency is the caller's capacity decision (input reserved_concurrent_executions); reserving by default would take capacity from every other function in the account.
  #checkov:skip=CKV_AWS_116:A dead-letter target only applies to asynchronous invocations; it is offered as input dead_letter_target_arn.
  #checkov:skip=CKV_AWS_117:Not every function needs a VPC, and a VPC adds cold-start ENI cost; offered as inputs vpc_subnet_ids and vpc_security_group_ids.
  #checkov:skip=CKV_AWS_272:Code signing needs a signing profile the caller owns; offered as input code_signing_config_arn.
  #checkov:skip=CKV_AWS_173:Environment variables hold no secrets here (they are sealed into the package); Lambda encrypts them at rest with an AWS managed key.
  function_name                  = var.function_name
  role                           = aws_iam_role.function.arn
  runtime                        = var.runtime
  architectures                  = var.architectures
  handler                        = "${local.template_module}.handler"
  filename                       = local.package
  source_code_hash               = local.package_fingerprint
  memory_size                    = var.memory_size
  timeout                        = var.timeout
  layers                         = var.layers
  reserved_concurrent_executions = var.reserved_concurrent_executions
  code_signing_config_arn        = var.code_signing_config_arn
  tags                           = var.tags

  ephemeral_storage {
    size = var.ephemeral_storage_size
  }

  tracing_config {
    mode = var.tracing_mode
  }

  dynamic "environment" {
    for_each = length(var.environment_variables) > 0 ? [var.environment_variables] : []
    content {
      variables = environment.value
    }
  }

  dynamic "vpc_config" {
    for_each = local.in_vpc ? [1] : []
    content {
      subnet_ids         = var.vpc_subnet_ids
      security_group_ids = var.vpc_security_group_ids
    }
  }

  dynamic "dead_letter_config" {
    for_each = var.dead_letter_target_arn == null ? [] : [var.dead_letter_target_arn]
    content {
      target_arn = dead_letter_config.value
    }
  }

  lifecycle {
    # Checked here rather than in a variable's validation, so that each of the two is still checked on its own.
    precondition {
      condition     = (length(var.vpc_subnet_ids) == 0) == (length(var.vpc_security_group_ids) == 0)
      error_message = "vpc_subnet_ids and vpc_security_group_ids go together: set both to run in a VPC, or neither."
    }
    precondition {
      condition     = length(var.decrypt_vpc_endpoint_ids) == 0 || local.in_vpc
      error_message = "decrypt_vpc_endpoint_ids needs the function in a VPC (vpc_subnet_ids and vpc_security_group_ids) that reaches those KMS endpoints."
    }
  }

  # The package is built first; the log group exists first so its retention applies from the first line.
  depends_on = [
    terraform_data.package, aws_cloudwatch_log_group.function,
    aws_iam_role_policy.function, aws_iam_role_policy.decrypt_endpoints, aws_iam_role_policy.vpc, aws_iam_role_policy.tracing, aws_iam_role_policy.dead_letter,
  ]
}

# Read back after every apply that touches the function: the resource's own code_sha256
# can lag one apply behind a code update (seen with provider 5.100), which would make the
# next plan report an output change.
data "aws_lambda_function" "deployed" {
  function_name = aws_lambda_function.this.function_name
  depends_on    = [aws_lambda_function.this]
}
