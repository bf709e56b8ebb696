# Plan-time checks of the module with a mocked AWS provider: no credentials, no network.
# Run with `terraform test` (Terraform >= 1.11 for override_during).

mock_provider "aws" {
  override_during = plan

  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
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
}

variables {
  function_name     = "orders-api"
  secrets           = { db_password = "hunter2" }
  encrypted_secrets = { api_token = "AQICAHhwcmVzZWFsZWQ=" }
}

run "decrypt_policy_is_exactly_least_privilege" {
  command = plan

  assert {
    condition = jsondecode(aws_iam_role_policy.function.policy) == {
      Version = "2012-10-17"
      Statement = [
        {
          Sid       = "DecryptOwnSecrets"
          Effect    = "Allow"
          Action    = "kms:Decrypt"
          Resource  = "arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555"
          Condition = { StringEquals = { "kms:EncryptionContext:LambdaFunctionName" = "orders-api" } }
        },
        {
          Sid      = "WriteOwnLogs"
          Effect   = "Allow"
          Action   = ["logs:CreateLogStream", "logs:PutLogEvents"]
          Resource = "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/lambda/orders-api:*"
        },
      ]
    }
    error_message = "The role policy must allow kms:Decrypt on the one key under the function's context, and log writes to its own group, nothing else."
  }

  assert {
    condition     = jsondecode(aws_iam_role.function.assume_role_policy).Statement[0].Principal == { Service = "lambda.amazonaws.com" }
    error_message = "Only Lambda may assume the function's role."
  }
}

run "secrets_are_sealed_under_the_functions_context" {
  command = plan

  assert {
    condition     = aws_kms_ciphertext.secret["db_password"].context == tomap({ LambdaFunctionName = "orders-api" })
    error_message = "Each ciphertext must be bound to the encryption context naming the function."
  }

  assert {
    condition     = aws_kms_ciphertext.secret["db_password"].key_id == aws_kms_key.secrets.arn
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

run "key_is_rotated_with_an_explicit_policy_and_an_alias" {
  command = plan

  variables {
    kms_deletion_window_in_days = 7
  }

  assert {
    condition     = aws_kms_key.secrets.enable_key_rotation && aws_kms_key.secrets.deletion_window_in_days == 7
    error_message = "The key must rotate and use the configured deletion window."
  }

  assert {
    condition     = jsondecode(aws_kms_key.secrets.policy).Statement[0].Principal == { AWS = "arn:aws:iam::123456789012:root" }
    error_message = "The key policy must be explicit and name the account."
  }

  assert {
    condition     = aws_kms_alias.secrets.name == "alias/orders-api-secrets"
    error_message = "The alias is derived from the function name."
  }

  assert {
    condition     = aws_cloudwatch_log_group.function.name == "/aws/lambda/orders-api" && aws_cloudwatch_log_group.function.retention_in_days == 14
    error_message = "The function's log group has the configured retention."
  }
}

run "function_deploys_the_package_build_py_makes" {
  command = plan

  assert {
    condition     = aws_lambda_function.this.filename == "./dist/orders-api.zip" && aws_lambda_function.this.handler == "handler.handler"
    error_message = "The function runs handler.handler from the package build.py writes."
  }

  assert {
    condition     = aws_lambda_function.this.source_code_hash == terraform_data.package.input
    error_message = "A change to what the package is made of must rebuild it and update the function's code."
  }

  assert {
    condition     = aws_lambda_function.this.runtime == "python3.13"
    error_message = "The default runtime is python3.13."
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

run "malformed_ciphertext_is_rejected" {
  command = plan

  variables {
    encrypted_secrets = { api_token = "not base64!" }
  }

  expect_failures = [var.encrypted_secrets]
}

run "bad_secret_name_is_rejected" {
  command = plan

  variables {
    secrets = { "db-password" = "x" }
  }

  expect_failures = [var.secrets]
}

run "bad_function_name_is_rejected" {
  command = plan

  variables {
    function_name = "orders api"
  }

  expect_failures = [var.function_name]
}
