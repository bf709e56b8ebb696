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

# How the function runs (issue 16). SnapStart restores only published versions, and provisioned
# concurrency needs one; each publishes a version exactly when the code or configuration changes
# (source_code_hash is the package fingerprint), so a second plan stays empty.
locals {
  publish    = var.snap_start || var.provisioned_concurrent_executions > 0
  alias_name = "live"
  # The runtime helper's switch. An environment variable, not a build argument: turning it on or off
  # changes the function's configuration, not the package or its fingerprint.
  prefetch_environment = var.prefetch_secrets ? { SEALED_SECRETS_PREFETCH = "1" } : {}
  function_environment = merge(var.environment_variables, local.prefetch_environment)
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
  publish                        = local.publish
  tags                           = var.tags

  dynamic "snap_start" {
    for_each = var.snap_start ? [1] : []
    content {
      apply_on = "PublishedVersions"
    }
  }

  ephemeral_storage {
    size = var.ephemeral_storage_size
  }

  tracing_config {
    mode = var.tracing_mode
  }

  dynamic "environment" {
    for_each = length(local.function_environment) > 0 ? [local.function_environment] : []
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
    precondition {
      condition     = !contains(keys(var.environment_variables), "SEALED_SECRETS_PREFETCH")
      error_message = "environment_variables may not set SEALED_SECRETS_PREFETCH: set the input prefetch_secrets = true instead."
    }
    precondition {
      # Lambda measures the variables as one JSON document, the prefetch switch included.
      condition     = length(base64encode(jsonencode(local.function_environment))) / 4 * 3 - length(regexall("=", base64encode(jsonencode(local.function_environment)))) <= 4096
      error_message = "environment_variables plus SEALED_SECRETS_PREFETCH (set by prefetch_secrets) exceed Lambda's 4 KB: shorten environment_variables."
    }
  }

  # The package is built first; the log group exists first so its retention applies from the first line.
  depends_on = [
    terraform_data.package, aws_cloudwatch_log_group.function,
    aws_iam_role_policy.function, aws_iam_role_policy.decrypt_endpoints, aws_iam_role_policy.vpc, aws_iam_role_policy.tracing, aws_iam_role_policy.dead_letter,
  ]
}

# The alias callers invoke. It always exists, so that callers (triggers, permissions, API
# integrations) wire to it once: turning on SnapStart or provisioned concurrency later moves only the
# alias. Without publishing it runs $LATEST, which is said explicitly: the function's own version
# attribute would name the newest published version if one was ever published.
resource "aws_lambda_alias" "live" {
  name             = local.alias_name
  description      = "What callers invoke: the newest published version with snap_start or provisioned concurrency, else $LATEST."
  function_name    = aws_lambda_function.this.function_name
  function_version = local.publish ? aws_lambda_function.this.version : "$LATEST"
}

# On the alias, not on a version: a new version moves the alias and Lambda moves the provisioned
# environments with it, so this configuration is never replaced by a code change.
resource "aws_lambda_provisioned_concurrency_config" "live" {
  count                             = var.provisioned_concurrent_executions > 0 ? 1 : 0
  function_name                     = aws_lambda_alias.live.function_name
  qualifier                         = aws_lambda_alias.live.name
  provisioned_concurrent_executions = var.provisioned_concurrent_executions
}

# Read back after every apply that touches the function: the resource's own code_sha256
# can lag one apply behind a code update (seen with provider 5.100), which would make the
# next plan report an output change.
data "aws_lambda_function" "deployed" {
  function_name = aws_lambda_function.this.function_name
  depends_on    = [aws_lambda_function.this]
}
