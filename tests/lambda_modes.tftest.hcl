# How the function runs (issue 16): SnapStart, provisioned concurrency, the alias callers invoke,
# and the prefetch switch. Plan-time checks with a mocked AWS provider: no credentials, no network.
# The refusals are AWS's own: each refused combination has one run, and the nearest accepted one too.

mock_provider "aws" {
  override_during = plan

  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012", arn = "arn:aws:sts::123456789012:assumed-role/deployer/ci" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_data "aws_region" {
    defaults = { id = "eu-west-1", name = "eu-west-1" }
  }
  mock_data "aws_iam_session_context" {
    defaults = { issuer_arn = "arn:aws:iam::123456789012:role/deployer" }
  }
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
  mock_resource "aws_kms_key" {
    defaults = {
      arn    = "arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555"
      key_id = "11111111-2222-3333-4444-555555555555"
    }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/lambda/orders-api" }
  }
  mock_resource "aws_kms_ciphertext" {
    defaults = { ciphertext_blob = "AQICAHhzZWFsZWQ=" }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/orders-api-lambda" }
  }
  # The function as Lambda reports it after a version was published: the alias must not follow this
  # version when nothing is published now.
  mock_resource "aws_lambda_function" {
    defaults = {
      arn           = "arn:aws:lambda:eu-west-1:123456789012:function:orders-api"
      version       = "7"
      qualified_arn = "arn:aws:lambda:eu-west-1:123456789012:function:orders-api:7"
    }
  }
  mock_resource "aws_lambda_alias" {
    defaults = {
      arn        = "arn:aws:lambda:eu-west-1:123456789012:function:orders-api:live"
      invoke_arn = "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/arn:aws:lambda:eu-west-1:123456789012:function:orders-api:live/invocations"
    }
  }
}

variables {
  function_name     = "orders-api"
  encrypted_secrets = { api_token = "AQICAHhwcmVzZWFsZWQ=" }
}

# --- Defaults: nothing published, the alias runs $LATEST, the function as before ----------------

run "defaults_publish_nothing_and_the_alias_runs_latest" {
  command = plan

  assert {
    condition = (aws_lambda_function.this.publish == false && length(aws_lambda_function.this.snap_start) == 0
    && length(aws_lambda_function.this.environment) == 0)
    error_message = "At the defaults the function publishes nothing, has no SnapStart and no environment: its plan is as before issue 16."
  }

  assert {
    condition = (aws_lambda_alias.live.name == "live" && aws_lambda_alias.live.function_name == "orders-api"
    && aws_lambda_alias.live.function_version == "$LATEST")
    error_message = "The alias live always exists and, with nothing published, runs $LATEST (not the newest version ever published, ${aws_lambda_function.this.version})."
  }

  assert {
    condition     = length(aws_lambda_provisioned_concurrency_config.live) == 0
    error_message = "No provisioned concurrency at the defaults."
  }

  assert {
    condition = (output.function_version == "$LATEST"
      && output.function_qualified_arn == "arn:aws:lambda:eu-west-1:123456789012:function:orders-api:$LATEST"
      && output.alias_name == "live" && output.alias_arn == "arn:aws:lambda:eu-west-1:123456789012:function:orders-api:live"
    && output.provisioned_concurrent_executions == 0)
    error_message = "Outputs at the defaults: version $LATEST, its qualified ARN, the alias live, no provisioned concurrency."
  }
}

# --- SnapStart ---------------------------------------------------------------------------------

run "snap_start_publishes_and_the_alias_runs_the_published_version" {
  command = plan

  variables {
    snap_start = true
  }

  assert {
    condition     = aws_lambda_function.this.publish == true && aws_lambda_function.this.snap_start[0].apply_on == "PublishedVersions"
    error_message = "snap_start publishes versions and snapshots them (apply_on = PublishedVersions)."
  }

  assert {
    condition = (aws_lambda_alias.live.function_version == "7" && output.function_version == "7"
    && output.function_qualified_arn == "arn:aws:lambda:eu-west-1:123456789012:function:orders-api:7")
    error_message = "With SnapStart the alias runs the published version, and the outputs name it."
  }

  assert {
    condition     = length(aws_lambda_provisioned_concurrency_config.live) == 0 && output.provisioned_concurrent_executions == 0
    error_message = "SnapStart provisions nothing."
  }
}

run "snap_start_takes_python3_12_on_arm64_in_a_vpc_with_active_tracing" {
  command = plan

  # Not stricter than AWS: SnapStart for Python runs on both architectures, in a VPC, with X-Ray.
  variables {
    snap_start             = true
    runtime                = "python3.12"
    architectures          = ["arm64"]
    vpc_subnet_ids         = ["subnet-0123456789abcdef0"]
    vpc_security_group_ids = ["sg-0123456789abcdef0"]
    tracing_mode           = "Active"
    layers                 = ["arn:aws:lambda:eu-west-1:123456789012:layer:shared-libs:3"]
  }

  assert {
    condition     = aws_lambda_function.this.snap_start[0].apply_on == "PublishedVersions" && aws_lambda_function.this.runtime == "python3.12"
    error_message = "SnapStart is accepted with python3.12, arm64, a VPC, active tracing and layers."
  }
}

run "snap_start_on_python3_11_is_refused" {
  command = plan
  variables {
    snap_start = true
    runtime    = "python3.11"
  }
  expect_failures = [var.snap_start]
}

run "snap_start_on_python3_10_is_refused" {
  command = plan
  variables {
    snap_start = true
    runtime    = "python3.10"
  }
  expect_failures = [var.snap_start]
}

run "snap_start_with_more_than_512_mb_of_tmp_is_refused" {
  command = plan
  variables {
    snap_start             = true
    ephemeral_storage_size = 513
  }
  expect_failures = [var.snap_start]
}

run "snap_start_with_provisioned_concurrency_is_refused" {
  command = plan
  variables {
    snap_start                        = true
    provisioned_concurrent_executions = 1
  }
  expect_failures = [var.snap_start]
}

run "python3_11_with_more_tmp_is_fine_without_snap_start" {
  command = plan

  # The control for the refusals above: the same settings without SnapStart plan.
  variables {
    runtime                = "python3.11"
    ephemeral_storage_size = 10240
  }

  assert {
    condition     = aws_lambda_function.this.publish == false && aws_lambda_function.this.ephemeral_storage[0].size == 10240
    error_message = "Without SnapStart, python3.11 and a 10 GB /tmp are accepted."
  }
}

# --- Provisioned concurrency ---------------------------------------------------------------------

run "provisioned_concurrency_publishes_and_provisions_the_alias" {
  command = plan

  variables {
    provisioned_concurrent_executions = 5
  }

  assert {
    condition     = aws_lambda_function.this.publish == true && length(aws_lambda_function.this.snap_start) == 0
    error_message = "Provisioned concurrency needs a published version, and brings no SnapStart."
  }

  assert {
    condition = (length(aws_lambda_provisioned_concurrency_config.live) == 1
      && aws_lambda_provisioned_concurrency_config.live[0].function_name == "orders-api"
      && aws_lambda_provisioned_concurrency_config.live[0].qualifier == "live"
    && aws_lambda_provisioned_concurrency_config.live[0].provisioned_concurrent_executions == 5)
    error_message = "The environments are provisioned on the alias live (so a new version never replaces the configuration)."
  }

  assert {
    condition     = aws_lambda_alias.live.function_version == "7" && output.function_version == "7" && output.provisioned_concurrent_executions == 5
    error_message = "The provisioned alias runs the published version; the outputs say so."
  }
}

run "provisioned_concurrency_equal_to_the_reservation_is_accepted" {
  command = plan

  variables {
    reserved_concurrent_executions    = 10
    provisioned_concurrent_executions = 10
  }

  assert {
    condition     = aws_lambda_provisioned_concurrency_config.live[0].provisioned_concurrent_executions == 10 && aws_lambda_function.this.reserved_concurrent_executions == 10
    error_message = "Lambda accepts as many provisioned environments as the reservation."
  }
}

run "provisioned_concurrency_above_the_reservation_is_refused" {
  command = plan
  variables {
    reserved_concurrent_executions    = 10
    provisioned_concurrent_executions = 11
  }
  expect_failures = [var.provisioned_concurrent_executions]
}

run "provisioned_concurrency_on_a_stopped_function_is_refused" {
  command = plan
  variables {
    reserved_concurrent_executions    = 0
    provisioned_concurrent_executions = 1
  }
  expect_failures = [var.provisioned_concurrent_executions]
}

run "a_negative_provisioned_concurrency_is_refused" {
  command = plan
  variables {
    provisioned_concurrent_executions = -1
  }
  expect_failures = [var.provisioned_concurrent_executions]
}

run "a_fractional_provisioned_concurrency_is_refused" {
  command = plan
  variables {
    provisioned_concurrent_executions = 2.5
  }
  expect_failures = [var.provisioned_concurrent_executions]
}

# --- Prefetch --------------------------------------------------------------------------------------

run "prefetch_sets_the_helpers_switch_and_keeps_the_package" {
  command = plan

  variables {
    prefetch_secrets      = true
    environment_variables = { LOG_LEVEL = "INFO" }
  }

  assert {
    condition     = aws_lambda_function.this.environment[0].variables == tomap({ LOG_LEVEL = "INFO", SEALED_SECRETS_PREFETCH = "1" })
    error_message = "prefetch_secrets adds SEALED_SECRETS_PREFETCH=1 to the caller's environment variables."
  }

  assert {
    condition     = output.package_fingerprint == run.defaults_publish_nothing_and_the_alias_runs_latest.package_fingerprint
    error_message = "Turning prefetch on changes the function's configuration, not the package: same fingerprint, no rebuild."
  }

  assert {
    condition     = aws_lambda_function.this.publish == false
    error_message = "Prefetch alone publishes nothing."
  }
}

run "setting_the_prefetch_switch_by_hand_is_refused" {
  command = plan
  variables {
    environment_variables = { SEALED_SECRETS_PREFETCH = "1" }
  }
  expect_failures = [aws_lambda_function.this]
}

run "environment_variables_just_under_4_kb_pass_alone" {
  command = plan

  # {"BIG":"<4080 bytes>"} is 4,090 bytes of JSON: under Lambda's 4 KB.
  variables {
    environment_variables = { BIG = format("%04080d", 0) }
  }

  assert {
    condition     = length(aws_lambda_function.this.environment[0].variables["BIG"]) == 4080
    error_message = "4,090 bytes of environment are accepted."
  }
}

run "environment_variables_that_the_prefetch_switch_pushes_over_4_kb_are_refused" {
  command = plan
  variables {
    environment_variables = { BIG = format("%04080d", 0) }
    prefetch_secrets      = true
  }
  expect_failures = [aws_lambda_function.this]
}

# --- The role's condition covers the alias and every version ------------------------------------

run "the_role_lets_the_alias_and_every_version_decrypt_and_no_other_function" {
  command = plan

  variables {
    snap_start = true
  }

  # The condition as the role's document states it; its ArnLike patterns read as IAM reads them ("*"
  # matches any run of characters). The integration tier reads the rendered document back from IAM.
  assert {
    condition = contains(
      one([for c in data.aws_iam_policy_document.function.statement[0].condition : c.values if c.variable == "lambda:SourceFunctionArn" && c.test == "ArnLike"]),
      "arn:aws:lambda:eu-west-1:123456789012:function:orders-api:*"
    )
    error_message = "The Decrypt statement must allow the function's qualified ARNs (<function arn>:*). Got ${jsonencode(data.aws_iam_policy_document.function.statement[0].condition)}"
  }

  assert {
    condition = alltrue([
      for arn in ["${local.function_arn}:${aws_lambda_alias.live.name}", "${local.function_arn}:${aws_lambda_alias.live.function_version}", local.function_arn] :
      anytrue([
        for pattern in one([for c in data.aws_iam_policy_document.function.statement[0].condition : c.values if c.variable == "lambda:SourceFunctionArn"]) :
        can(regex("^${replace(pattern, "*", ".*")}$", arn))
      ])
    ])
    error_message = "The alias live, the published version it runs and the function itself must each match the role's lambda:SourceFunctionArn condition."
  }

  assert {
    condition = !anytrue([
      for pattern in one([for c in data.aws_iam_policy_document.function.statement[0].condition : c.values if c.variable == "lambda:SourceFunctionArn"]) :
      can(regex("^${replace(pattern, "*", ".*")}$", "arn:aws:lambda:eu-west-1:123456789012:function:orders-api-impostor:live"))
    ])
    error_message = "Another function's alias (orders-api-impostor:live) must not match the condition."
  }
}
