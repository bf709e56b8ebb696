# Plan-time checks of the module with a mocked AWS provider: no credentials, no network.
# Run with `terraform test` (Terraform >= 1.11 for override_during). Every statement of every
# policy is checked exactly, so a change to what anyone may do fails here first.

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
  # A mocked policy document renders no JSON: the runs read its statements, and the role's policies
  # need a valid document. The rendered JSON is read back from IAM by the integration tier.
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
  mock_data "aws_kms_key" {
    defaults = {
      enabled                  = true
      key_state                = "Enabled"
      key_usage                = "ENCRYPT_DECRYPT"
      customer_master_key_spec = "SYMMETRIC_DEFAULT"
      multi_region             = false
    }
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
    defaults = { arn = "arn:aws:iam::123456789012:role/orders-api-lambda", unique_id = "AROAORDERSAPILAMBDA01" }
  }
}

variables {
  function_name     = "orders-api"
  secrets           = { db_password = "hunter2" }
  encrypted_secrets = { api_token = "AQICAHhwcmVzZWFsZWQ=" }
}

# --- Only the function opens its secrets -------------------------------------------------------

run "role_policy_is_exactly_least_privilege" {
  command = plan

  assert {
    condition = jsonencode([for statement in data.aws_iam_policy_document.function.statement : {
      sid        = statement.sid
      actions    = sort(statement.actions)
      resources  = sort(statement.resources)
      conditions = { for c in coalesce(statement.condition, []) : "${c.test} ${c.variable}" => c.values }
      }]) == jsonencode([
      {
        sid       = "DecryptOwnSecrets"
        actions   = ["kms:Decrypt"]
        resources = ["arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555"]
        conditions = {
          "StringEquals kms:EncryptionContext:LambdaFunctionName" = ["orders-api"]
          "ArnLike lambda:SourceFunctionArn" = [
            "arn:aws:lambda:eu-west-1:123456789012:function:orders-api",
            "arn:aws:lambda:eu-west-1:123456789012:function:orders-api:*",
          ]
        }
      },
      {
        sid       = "DenyOpeningOutsideTheFunction"
        actions   = ["kms:Decrypt", "kms:ReEncrypt*"]
        resources = ["arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555"]
        conditions = {
          "ArnNotLike lambda:SourceFunctionArn" = [
            "arn:aws:lambda:eu-west-1:123456789012:function:orders-api",
            "arn:aws:lambda:eu-west-1:123456789012:function:orders-api:*",
          ]
        }
      },
      {
        sid        = "WriteOwnLogs"
        actions    = ["logs:CreateLogStream", "logs:PutLogEvents"]
        resources  = ["arn:aws:logs:eu-west-1:123456789012:log-group:/aws/lambda/orders-api:*"]
        conditions = {}
      },
    ])
    error_message = "The role may Decrypt only on its key, under its function's context, with its function's credentials (any version or alias), and write its own logs: nothing else. Got ${jsonencode(data.aws_iam_policy_document.function.statement)}"
  }

  assert {
    condition     = length(aws_iam_role_policy.decrypt_endpoints) + length(aws_iam_role_policy.vpc) + length(aws_iam_role_policy.tracing) + length(aws_iam_role_policy.dead_letter) == 0
    error_message = "With the defaults the role has exactly one policy."
  }

  assert {
    condition = jsondecode(aws_iam_role.function.assume_role_policy) == {
      Version   = "2012-10-17"
      Statement = [{ Effect = "Allow", Principal = { Service = "lambda.amazonaws.com" }, Action = "sts:AssumeRole" }]
    }
    error_message = "Only Lambda may assume the function's role."
  }
}

run "key_policy_grants_no_blanket_access_and_delegates_decrypt_only_for_the_role" {
  command = plan

  assert {
    condition = jsondecode(aws_kms_key.secrets[0].policy) == {
      Version = "2012-10-17"
      Statement = [
        {
          Sid       = "KeyAdministration"
          Effect    = "Allow"
          Principal = { AWS = ["arn:aws:iam::123456789012:root"] }
          Action = [
            "kms:CancelKeyDeletion", "kms:CreateAlias", "kms:DeleteAlias", "kms:DescribeKey", "kms:DisableKey",
            "kms:DisableKeyRotation", "kms:EnableKey", "kms:EnableKeyRotation", "kms:Encrypt", "kms:GetKeyPolicy",
            "kms:GetKeyRotationStatus", "kms:ListAliases", "kms:ListGrants", "kms:ListKeyPolicies", "kms:ListKeyRotations",
            "kms:ListResourceTags", "kms:PutKeyPolicy", "kms:RevokeGrant", "kms:RotateKeyOnDemand", "kms:ScheduleKeyDeletion",
            "kms:TagResource", "kms:UntagResource", "kms:UpdateAlias", "kms:UpdateKeyDescription",
          ]
          Resource = "*"
        },
        {
          Sid       = "Decrypt for Lambda function orders-api"
          Effect    = "Allow"
          Principal = { AWS = "arn:aws:iam::123456789012:root" }
          Action    = "kms:Decrypt"
          Resource  = "*"
          Condition = {
            ArnEquals    = { "aws:PrincipalArn" = "arn:aws:iam::123456789012:role/orders-api-lambda" }
            StringEquals = { "kms:EncryptionContext:LambdaFunctionName" = "orders-api" }
            StringLike   = { "aws:userid" = "AROAORDERSAPILAMBDA01:*" }
          }
        },
      ]
    }
    error_message = "The key policy must be exactly: administration (with Encrypt, never Decrypt/ReEncrypt/CreateGrant) for key_administrators, and Decrypt delegated to IAM only for the function's role under its context."
  }

  assert {
    condition = alltrue(flatten([
      for statement in jsondecode(aws_kms_key.secrets[0].policy).Statement : [
        for action in flatten([statement.Action]) :
        !contains(["kms:*", "*", "kms:ReEncryptFrom", "kms:ReEncrypt*", "kms:CreateGrant"], action) && (action != "kms:Decrypt" || try(statement.Condition["ArnEquals"]["aws:PrincipalArn"], "") == "arn:aws:iam::123456789012:role/orders-api-lambda")
      ]
    ]))
    error_message = "No statement may grant kms:*, ReEncrypt or CreateGrant, and Decrypt only for the function's role."
  }

  assert {
    condition     = output.key_policy_statements == [jsondecode(aws_kms_key.secrets[0].policy).Statement[1]]
    error_message = "key_policy_statements must be the statement the module's own key carries."
  }
}

run "key_administrators_replace_the_account_root" {
  command = plan

  variables {
    key_administrators = ["arn:aws:iam::123456789012:role/platform-admin"]
  }

  assert {
    condition     = jsondecode(aws_kms_key.secrets[0].policy).Statement[0].Principal == { AWS = ["arn:aws:iam::123456789012:role/platform-admin", "arn:aws:iam::123456789012:role/deployer"] }
    error_message = "key_administrators name who administers the key, and the caller of apply stays one (no lockout)."
  }
}

run "secrets_are_sealed_under_the_functions_context" {
  command = plan

  assert {
    condition     = aws_kms_ciphertext.secret["db_password"].context == tomap({ LambdaFunctionName = "orders-api" })
    error_message = "Each ciphertext must be bound to the encryption context naming the function."
  }

  assert {
    condition     = aws_kms_ciphertext.secret["db_password"].key_id == aws_kms_key.secrets[0].arn
    error_message = "Secrets must be sealed with the module's own key."
  }

  assert {
    condition     = output.ciphertexts == { db_password = "AQICAHhzZWFsZWQ=", api_token = "AQICAHhwcmVzZWFsZWQ=" }
    error_message = "ciphertexts must merge the sealed and the pre-encrypted secrets."
  }

  assert {
    condition     = output.encryption_context == { LambdaFunctionName = "orders-api" }
    error_message = "The encryption context output must name the function."
  }
}

run "key_is_rotated_and_aliased_and_logs_are_kept_a_year" {
  command = plan

  variables {
    kms_deletion_window_in_days = 7
  }

  assert {
    condition     = aws_kms_key.secrets[0].enable_key_rotation && aws_kms_key.secrets[0].deletion_window_in_days == 7
    error_message = "The key must rotate and use the configured deletion window."
  }

  assert {
    condition     = aws_kms_alias.secrets[0].name == "alias/orders-api-secrets" && output.kms_alias_name == "alias/orders-api-secrets"
    error_message = "The alias is derived from the function name."
  }

  assert {
    condition     = aws_cloudwatch_log_group.function.name == "/aws/lambda/orders-api" && aws_cloudwatch_log_group.function.retention_in_days == 365 && aws_cloudwatch_log_group.function.kms_key_id == null
    error_message = "The function's log group keeps a year of logs by default."
  }
}

# --- The build step runs without a shell --------------------------------------------------------

run "build_runs_as_an_argument_list_with_one_item_per_option" {
  command = plan

  variables {
    python_executable = "/opt/my python/bin/python3"
  }

  assert {
    condition = local.build_command == [
      "/opt/my python/bin/python3", abspath("./build.py"),
      "--template=${abspath("./lambda_src/handler.py.tmpl")}", "--runtime=python3.13", "--architecture=x86_64",
      "--key-arn=arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555",
      "--ciphertext=api_token=AQICAHhwcmVzZWFsZWQ=", "--ciphertext=db_password=AQICAHhzZWFsZWQ=",
    ]
    error_message = "build.py gets an argv list, each option one --flag=value item, python_executable taken literally."
  }
}

run "function_deploys_the_package_build_py_makes" {
  command = plan

  assert {
    condition     = aws_lambda_function.this.filename == abspath("./dist/orders-api.zip") && aws_lambda_function.this.handler == "handler.handler"
    error_message = "The function runs handler.handler from the package build.py writes."
  }

  assert {
    condition     = aws_lambda_function.this.source_code_hash == terraform_data.package.input
    error_message = "A change to what the package is made of must rebuild it and update the function's code."
  }

  assert {
    condition     = local.source_files == tolist(concat(["handler.py.tmpl"], [for file in sort(keys(local.package_inputs.helper)) : "sealed_secrets/${file}"]))
    error_message = "The default source folder holds the default template and the helper package."
  }

  assert {
    condition     = length(setsubtract(["__init__.py", "budget.py", "cache.py", "errors.py", "transport.py", "credentials.py", "boto.py"], keys(local.package_inputs.helper))) == 0
    error_message = "The fingerprint covers every file of the helper package, so a change to any of them rebuilds the zip."
  }

  assert {
    condition = (aws_lambda_function.this.runtime == "python3.13" && aws_lambda_function.this.architectures == tolist(["x86_64"])
      && aws_lambda_function.this.ephemeral_storage[0].size == 512 && aws_lambda_function.this.tracing_config[0].mode == "PassThrough"
      && aws_lambda_function.this.reserved_concurrent_executions == -1 && length(aws_lambda_function.this.layers) == 0
      && length(aws_lambda_function.this.environment) == 0 && length(aws_lambda_function.this.vpc_config) == 0
    && length(aws_lambda_function.this.dead_letter_config) == 0 && aws_lambda_function.this.code_signing_config_arn == null)
    error_message = "Defaults: python3.13 on x86_64, 512 MB /tmp, PassThrough tracing, no reservation, layers, environment, VPC, DLQ or code signing."
  }
}

run "a_changed_secret_changes_the_package" {
  command = plan

  variables {
    encrypted_secrets = { api_token = "AQICAHhvdGhlcg==" }
  }

  assert {
    condition     = output.package_fingerprint != run.function_deploys_the_package_build_py_makes.package_fingerprint
    error_message = "Re-sealing a secret must give a new package fingerprint."
  }
}

run "another_architecture_changes_the_package" {
  command = plan

  variables {
    architectures = ["arm64"]
  }

  assert {
    condition     = output.package_fingerprint != run.function_deploys_the_package_build_py_makes.package_fingerprint && aws_lambda_function.this.architectures == tolist(["arm64"])
    error_message = "Dependencies are built per architecture, so another architecture is another package."
  }

  assert {
    condition     = contains(local.build_command, "--architecture=arm64")
    error_message = "build.py builds for the function's architecture."
  }
}

run "the_package_carries_the_key_it_is_sealed_under" {
  command = plan

  variables {
    create_kms_key = false
    kms_key_arn    = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-44cd-86ef-1234567890ab"
  }

  assert {
    condition     = contains(local.build_command, "--key-arn=arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-44cd-86ef-1234567890ab")
    error_message = "build.py renders the key's ARN (never the alias's) into the package, so every Decrypt names it."
  }

  assert {
    condition     = local.package_inputs.key_arn == "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-44cd-86ef-1234567890ab"
    error_message = "The package fingerprint covers the key's ARN: another key is another package."
  }
}

# --- The settings teams need, each with only the permissions it needs ---------------------------

run "settings_reach_the_function_and_grant_only_what_they_need" {
  command = plan

  variables {
    runtime                        = "python3.12"
    memory_size                    = 1024
    timeout                        = 30
    ephemeral_storage_size         = 2048
    environment_variables          = { LOG_LEVEL = "INFO", DB_HOST = "db.internal" }
    vpc_subnet_ids                 = ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]
    vpc_security_group_ids         = ["sg-0123456789abcdef0"]
    layers                         = ["arn:aws:lambda:eu-west-1:123456789012:layer:shared-libs:3"]
    reserved_concurrent_executions = 25
    tracing_mode                   = "Active"
    dead_letter_target_arn         = "arn:aws:sqs:eu-west-1:123456789012:orders-dlq"
    code_signing_config_arn        = "arn:aws:lambda:eu-west-1:123456789012:code-signing-config:csc-0123456789abcdef0"
    log_kms_key_arn                = "arn:aws:kms:eu-west-1:123456789012:key/99999999-2222-4333-8444-555555555555"
    log_retention_in_days          = 731
    tags                           = { team = "orders", "cost-center" = "42" }
  }

  assert {
    condition = (aws_lambda_function.this.runtime == "python3.12" && aws_lambda_function.this.memory_size == 1024 && aws_lambda_function.this.timeout == 30
      && aws_lambda_function.this.ephemeral_storage[0].size == 2048
      && aws_lambda_function.this.environment[0].variables == tomap({ LOG_LEVEL = "INFO", DB_HOST = "db.internal" })
      && aws_lambda_function.this.vpc_config[0].subnet_ids == toset(["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"])
      && aws_lambda_function.this.vpc_config[0].security_group_ids == toset(["sg-0123456789abcdef0"])
      && aws_lambda_function.this.layers == tolist(["arn:aws:lambda:eu-west-1:123456789012:layer:shared-libs:3"])
      && aws_lambda_function.this.reserved_concurrent_executions == 25 && aws_lambda_function.this.tracing_config[0].mode == "Active"
      && aws_lambda_function.this.dead_letter_config[0].target_arn == "arn:aws:sqs:eu-west-1:123456789012:orders-dlq"
      && aws_lambda_function.this.code_signing_config_arn == "arn:aws:lambda:eu-west-1:123456789012:code-signing-config:csc-0123456789abcdef0"
    && aws_lambda_function.this.tags == tomap({ team = "orders", "cost-center" = "42" }))
    error_message = "Every setting must reach the function."
  }

  assert {
    condition = (aws_cloudwatch_log_group.function.kms_key_id == "arn:aws:kms:eu-west-1:123456789012:key/99999999-2222-4333-8444-555555555555"
    && aws_cloudwatch_log_group.function.retention_in_days == 731)
    error_message = "The log group takes its KMS key and retention."
  }

  assert {
    condition = jsonencode([for document in [data.aws_iam_policy_document.vpc[0], data.aws_iam_policy_document.tracing[0], data.aws_iam_policy_document.dead_letter[0]] : [
      for statement in document.statement : { sid = statement.sid, actions = sort(statement.actions), resources = sort(statement.resources) }
      ]]) == jsonencode([
      [
        { sid = "DescribeNetworkInterfaces", actions = ["ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"], resources = ["*"] },
        {
          sid     = "ManageOwnNetworkInterfaces"
          actions = ["ec2:AssignPrivateIpAddresses", "ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface", "ec2:UnassignPrivateIpAddresses"]
          resources = [
            "arn:aws:ec2:eu-west-1:*:security-group/sg-0123456789abcdef0",
            "arn:aws:ec2:eu-west-1:*:subnet/subnet-0123456789abcdef0",
            "arn:aws:ec2:eu-west-1:*:subnet/subnet-0fedcba9876543210",
            "arn:aws:ec2:eu-west-1:123456789012:network-interface/*",
          ]
        },
      ],
      [{ sid = "WriteTraces", actions = ["xray:PutTelemetryRecords", "xray:PutTraceSegments"], resources = ["*"] }],
      [{ sid = "SendToDeadLetterTarget", actions = ["sqs:SendMessage"], resources = ["arn:aws:sqs:eu-west-1:123456789012:orders-dlq"] }],
    ])
    error_message = "VPC adds the network-interface actions scoped to its subnets and groups, Active tracing the X-Ray writes, a DLQ its one send action: nothing more."
  }

  assert {
    condition = (length(aws_iam_role_policy.vpc) == 1 && length(aws_iam_role_policy.tracing) == 1 && length(aws_iam_role_policy.dead_letter) == 1
    && length(data.aws_iam_policy_document.function.statement) == 3)
    error_message = "Each setting brings its own policy; the secrets policy is unchanged."
  }
}

run "an_sns_dead_letter_target_gets_publish" {
  command = plan

  variables {
    dead_letter_target_arn = "arn:aws:sns:eu-west-1:123456789012:orders-failures"
  }

  assert {
    condition     = data.aws_iam_policy_document.dead_letter[0].statement[0].actions == toset(["sns:Publish"])
    error_message = "An SNS dead-letter target needs sns:Publish, not sqs:SendMessage."
  }
}

# --- A shared key -------------------------------------------------------------------------------

run "a_shared_key_creates_no_key_and_still_binds_each_secret_to_its_function" {
  command = plan

  variables {
    create_kms_key = false
    kms_key_arn    = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-44cd-86ef-1234567890ab"
  }

  assert {
    condition     = length(aws_kms_key.secrets) == 0 && length(aws_kms_alias.secrets) == 0 && output.kms_alias_name == null
    error_message = "With kms_key_arn the module creates no key and no alias."
  }

  assert {
    condition = (aws_kms_ciphertext.secret["db_password"].key_id == "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-44cd-86ef-1234567890ab"
      && aws_kms_ciphertext.secret["db_password"].context == tomap({ LambdaFunctionName = "orders-api" })
    && data.aws_iam_policy_document.function.statement[0].resources == toset(["arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-44cd-86ef-1234567890ab"]))
    error_message = "Secrets are sealed with the shared key under the function's own context, and the role may Decrypt only that key."
  }

  assert {
    condition = output.key_policy_statements == [{
      Sid       = "Decrypt for Lambda function orders-api"
      Effect    = "Allow"
      Principal = { AWS = "arn:aws:iam::123456789012:root" }
      Action    = "kms:Decrypt"
      Resource  = "*"
      Condition = {
        ArnEquals    = { "aws:PrincipalArn" = "arn:aws:iam::123456789012:role/orders-api-lambda" }
        StringEquals = { "kms:EncryptionContext:LambdaFunctionName" = "orders-api" }
        StringLike   = { "aws:userid" = "AROAORDERSAPILAMBDA01:*" }
      }
    }]
    error_message = "key_policy_statements is what the shared key's owner adds for this function."
  }
}

run "a_disabled_shared_key_is_a_clear_error" {
  command = plan

  variables {
    create_kms_key = false
    kms_key_arn    = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-44cd-86ef-1234567890ab"
  }

  override_data {
    target = data.aws_kms_key.shared[0]
    values = { enabled = false, key_state = "Disabled", key_usage = "ENCRYPT_DECRYPT", customer_master_key_spec = "SYMMETRIC_DEFAULT" }
  }

  expect_failures = [data.aws_kms_key.shared[0]]
}

run "a_multi_region_shared_key_is_a_clear_error" {
  command = plan

  variables {
    create_kms_key = false
    kms_key_arn    = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-44cd-86ef-1234567890ab"
  }

  override_data {
    target = data.aws_kms_key.shared[0]
    values = { enabled = true, key_state = "Enabled", key_usage = "ENCRYPT_DECRYPT", customer_master_key_spec = "SYMMETRIC_DEFAULT", multi_region = true }
  }

  expect_failures = [data.aws_kms_key.shared[0]]
}

# AWS's own documented example key ARN (not a version-4 UUID): accepted by every check of the value, so only
# the region precondition (eu-west-1 here) refuses it.
run "aws_documented_example_key_arn_is_accepted" {
  command = plan
  variables {
    create_kms_key  = false
    kms_key_arn     = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    log_kms_key_arn = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
  }
  expect_failures = [data.aws_kms_key.shared[0]]
}

run "a_multi_region_log_key_is_accepted" {
  command = plan
  variables {
    log_kms_key_arn = "arn:aws:kms:eu-west-1:123456789012:key/mrk-1234abcd12ab34cd56ef1234567890ab"
  }
  assert {
    condition     = aws_cloudwatch_log_group.function.kms_key_id == "arn:aws:kms:eu-west-1:123456789012:key/mrk-1234abcd12ab34cd56ef1234567890ab"
    error_message = "A multi-Region key may encrypt the logs: only the key that seals the secrets must be single-Region."
  }
}

run "a_multi_region_key_id_is_refused_as_a_shared_key_at_plan" {
  command = plan
  variables {
    create_kms_key = false
    kms_key_arn    = "arn:aws:kms:eu-west-1:123456789012:key/mrk-1234abcd12ab34cd56ef1234567890ab"
  }
  expect_failures = [var.kms_key_arn]
}

run "an_asymmetric_shared_key_is_a_clear_error" {
  command = plan

  variables {
    create_kms_key = false
    kms_key_arn    = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-44cd-86ef-1234567890ab"
  }

  override_data {
    target = data.aws_kms_key.shared[0]
    values = { enabled = true, key_state = "Enabled", key_usage = "SIGN_VERIFY", customer_master_key_spec = "RSA_2048" }
  }

  expect_failures = [data.aws_kms_key.shared[0]]
}

# --- Bad input is rejected at plan time, with a message -----------------------------------------

run "a_name_in_both_maps_is_rejected" {
  command = plan
  variables {
    encrypted_secrets = { db_password = "AQICAHhwcmVzZWFsZWQ=" }
  }
  expect_failures = [terraform_data.package]
}

run "nothing_to_seal_is_rejected" {
  command = plan
  variables {
    secrets           = {}
    encrypted_secrets = {}
  }
  expect_failures = [terraform_data.package]
}

run "more_than_100_secrets_are_rejected" {
  command = plan
  variables {
    secrets           = {}
    encrypted_secrets = { for i in range(101) : "s${i}" => "AQICAHhwcmVzZWFsZWQ=" }
  }
  expect_failures = [terraform_data.package]
}

run "a_plaintext_over_4096_bytes_is_rejected_even_under_4096_characters" {
  command = plan
  variables {
    secrets = { db_password = join("", [for i in range(683) : "ééé"]) } # 2049 characters, 4098 bytes
  }
  expect_failures = [var.secrets]
}

run "a_plaintext_of_exactly_4096_bytes_is_accepted" {
  command = plan
  variables {
    secrets = { db_password = join("", concat([for i in range(1023) : "éé"], ["é", "ab"])) } # 2049 characters, 4096 bytes
  }
}

run "a_ciphertext_over_6144_bytes_is_rejected" {
  command = plan
  variables {
    encrypted_secrets = { api_token = join("", [for i in range(683) : "AAAAAAAAAAAA"]) } # 6147 bytes
  }
  expect_failures = [var.encrypted_secrets]
}

run "malformed_ciphertext_is_rejected" {
  command = plan
  variables {
    encrypted_secrets = { api_token = "not base64!" }
  }
  expect_failures = [var.encrypted_secrets]
}

run "a_shell_payload_as_a_ciphertext_is_rejected" {
  command = plan
  variables {
    encrypted_secrets = { api_token = "AAAA$(touch /tmp/pwned)" }
  }
  expect_failures = [var.encrypted_secrets]
}

run "bad_secret_name_is_rejected" {
  command = plan
  variables {
    secrets = { "db-password;id" = "x" }
  }
  expect_failures = [var.secrets]
}

run "bad_function_name_is_rejected" {
  command = plan
  variables {
    function_name = "orders api$(id)"
  }
  expect_failures = [var.function_name]
}

run "a_python_executable_starting_with_a_dash_is_rejected" {
  command = plan
  variables {
    python_executable = "-c"
  }
  expect_failures = [var.python_executable]
}

run "a_python_executable_with_a_newline_is_rejected" {
  command = plan
  variables {
    python_executable = "python3\ntouch /tmp/pwned"
  }
  expect_failures = [var.python_executable]
}

run "a_template_whose_module_lambda_cannot_import_is_rejected" {
  command = plan
  variables {
    handler_template = "src/a.b.py.tmpl"
  }
  expect_failures = [var.handler_template]
}

run "a_template_that_would_shadow_the_helper_is_rejected" {
  command = plan
  variables {
    handler_template = "src/sealed_secrets.py.tmpl"
  }
  expect_failures = [var.handler_template]
}

run "a_missing_template_is_rejected" {
  command = plan
  variables {
    handler_template = "no/such/handler.py.tmpl"
  }
  expect_failures = [terraform_data.package]
}

run "reserved_environment_variable_names_are_rejected" {
  command = plan
  variables {
    environment_variables = { AWS_LAMBDA_FUNCTION_NAME = "impostor", AWS_REGION = "us-east-1" }
  }
  expect_failures = [var.environment_variables]
}

run "environment_variables_over_4_kb_are_rejected" {
  command = plan
  variables {
    environment_variables = { BIG = join("", [for i in range(820) : "xxxxx"]) }
  }
  expect_failures = [var.environment_variables]
}

run "a_subnet_without_a_security_group_is_rejected" {
  command = plan
  variables {
    vpc_subnet_ids = ["subnet-0123456789abcdef0"]
  }
  expect_failures = [aws_lambda_function.this]
}

run "two_architectures_are_rejected" {
  command = plan
  variables {
    architectures = ["x86_64", "arm64"]
  }
  expect_failures = [var.architectures]
}

run "a_tag_iam_would_refuse_is_rejected" {
  command = plan
  variables {
    tags = { "team" = "orders; $(id)" }
  }
  expect_failures = [var.tags]
}

run "an_aws_prefixed_tag_key_is_rejected" {
  command = plan
  variables {
    tags = { "aws:owner" = "orders" }
  }
  expect_failures = [var.tags]
}

run "a_layer_that_is_not_an_arn_is_rejected" {
  command = plan
  variables {
    layers = ["shared-libs"]
  }
  expect_failures = [var.layers]
}

run "an_alias_as_a_shared_key_is_rejected" {
  command = plan
  variables {
    kms_key_arn = "alias/platform-secrets"
  }
  expect_failures = [var.kms_key_arn]
}

run "a_negative_reservation_other_than_minus_one_is_rejected" {
  command = plan
  variables {
    reserved_concurrent_executions = -2
  }
  expect_failures = [var.reserved_concurrent_executions]
}

run "decrypt_vpc_endpoints_tie_decryption_to_the_network" {
  command = plan

  variables {
    vpc_subnet_ids           = ["subnet-0123456789abcdef0"]
    vpc_security_group_ids   = ["sg-0123456789abcdef0"]
    decrypt_vpc_endpoint_ids = ["vpce-0123456789abcdef0"]
  }

  assert {
    condition = jsonencode({ for c in data.aws_iam_policy_document.function.statement[0].condition : "${c.test} ${c.variable}" => c.values }) == jsonencode({
      "StringEquals kms:EncryptionContext:LambdaFunctionName" = ["orders-api"]
      "StringEquals aws:SourceVpce"                           = ["vpce-0123456789abcdef0"]
      "ArnLike lambda:SourceFunctionArn" = [
        "arn:aws:lambda:eu-west-1:123456789012:function:orders-api",
        "arn:aws:lambda:eu-west-1:123456789012:function:orders-api:*",
      ]
    })
    error_message = "With decrypt_vpc_endpoint_ids the role may Decrypt only through those endpoints."
  }

  assert {
    condition = jsonencode([for statement in data.aws_iam_policy_document.decrypt_endpoints[0].statement : {
      effect     = statement.effect
      actions    = sort(statement.actions)
      resources  = sort(statement.resources)
      conditions = { for c in statement.condition : "${c.test} ${c.variable}" => c.values }
      }]) == jsonencode([{
      effect     = "Deny"
      actions    = ["kms:Decrypt", "kms:ReEncrypt*"]
      resources  = ["arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555"]
      conditions = { "StringNotEquals aws:SourceVpce" = ["vpce-0123456789abcdef0"] }
    }]) && length(aws_iam_role_policy.decrypt_endpoints) == 1
    error_message = "With decrypt_vpc_endpoint_ids the role is denied opening its secrets through anything else."
  }
}

run "decrypt_vpc_endpoints_without_a_vpc_are_rejected" {
  command = plan
  variables {
    decrypt_vpc_endpoint_ids = ["vpce-0123456789abcdef0"]
  }
  expect_failures = [aws_lambda_function.this]
}

run "a_shared_key_in_another_region_is_rejected" {
  command = plan
  variables {
    create_kms_key = false
    kms_key_arn    = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-44cd-86ef-1234567890ab"
  }
  expect_failures = [data.aws_kms_key.shared[0]]
}

run "tag_keys_differing_only_in_case_are_rejected" {
  command = plan
  variables {
    tags = { Team = "orders", team = "billing" }
  }
  expect_failures = [var.tags]
}

run "environment_variables_that_redirect_kms_are_rejected" {
  command = plan
  variables {
    environment_variables = { AWS_ENDPOINT_URL_KMS = "https://attacker.example" }
  }
  expect_failures = [var.environment_variables]
}

run "environment_variables_that_change_the_trusted_certificates_are_rejected" {
  command = plan
  variables {
    environment_variables = { SSL_CERT_FILE = "/opt/attacker-ca.pem" }
  }
  expect_failures = [var.environment_variables]
}

run "environment_variables_measured_as_json_over_4_kb_are_rejected" {
  command = plan
  variables {
    # 250 variables of 8 + 3 bytes: 2,750 bytes of names and values, 4,999 bytes as Lambda's JSON.
    environment_variables = { for i in range(250) : format("VAR_%04d", i) => "abc" }
  }
  expect_failures = [var.environment_variables]
}

run "a_wildcard_key_administrator_is_rejected" {
  command = plan
  variables {
    key_administrators = ["arn:aws:iam::123456789012:role/*"]
  }
  expect_failures = [var.key_administrators]
}

run "a_shared_key_arn_without_create_kms_key_false_is_rejected" {
  command = plan
  variables {
    kms_key_arn = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-44cd-86ef-1234567890ab"
  }
  expect_failures = [var.kms_key_arn]
}

run "create_kms_key_false_without_a_key_is_rejected" {
  command = plan
  variables {
    create_kms_key = false
  }
  expect_failures = [var.kms_key_arn]
}
