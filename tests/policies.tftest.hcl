# The policies the module attaches, as AWS receives them: the role's inline policies and the key policy,
# rendered by the real aws_iam_policy_document data source of the real AWS provider, offline.
#
# Every run applies (a data source that refers to a resource being created renders only at apply), and
# every resource and data source that would call AWS is overridden, so the provider is never asked
# anything over the network: its endpoints point at a dead loopback port to make sure. Only
# aws_iam_policy_document, aws_partition and aws_region run for real, and they compute locally.
# tests/test_terraform.py reads each run's state (terraform test -json -verbose) and evaluates these
# documents with tests/iam_eval.py. Lists are compared in the order the data source renders them (its set
# order, fixed for given values).

provider "aws" {
  region                      = "eu-west-1"
  access_key                  = "offline"
  secret_key                  = "offline"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
  max_retries                 = 1

  endpoints {
    ec2    = "http://127.0.0.1:9"
    iam    = "http://127.0.0.1:9"
    kms    = "http://127.0.0.1:9"
    lambda = "http://127.0.0.1:9"
    logs   = "http://127.0.0.1:9"
    sts    = "http://127.0.0.1:9"
  }
}

override_data {
  target = data.aws_caller_identity.current
  values = { account_id = "123456789012", arn = "arn:aws:sts::123456789012:assumed-role/deployer/ci" }
}
override_data {
  target = data.aws_iam_session_context.caller
  values = { issuer_arn = "arn:aws:iam::123456789012:role/deployer" }
}
override_data {
  target = data.aws_kms_key.shared
  values = {
    enabled                  = true
    key_state                = "Enabled"
    key_usage                = "ENCRYPT_DECRYPT"
    customer_master_key_spec = "SYMMETRIC_DEFAULT"
    multi_region             = false
  }
}
override_data {
  target = data.aws_lambda_function.deployed
}
override_resource {
  target = aws_kms_key.secrets
  values = {
    arn    = "arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555"
    key_id = "11111111-2222-3333-4444-555555555555"
  }
}
override_resource {
  target = aws_kms_alias.secrets
}
override_resource {
  target = aws_kms_ciphertext.secret
  values = { ciphertext_blob = "AQICAHhzZWFsZWQ=" }
}
override_resource {
  target = aws_cloudwatch_log_group.function
  values = { arn = "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/lambda/orders-api" }
}
override_resource {
  target = aws_iam_role.function
  values = { arn = "arn:aws:iam::123456789012:role/orders-api-lambda", unique_id = "AROAORDERSAPILAMBDA01" }
}
override_resource {
  target = aws_iam_role_policy.function
}
override_resource {
  target = aws_iam_role_policy.decrypt_endpoints
}
override_resource {
  target = aws_iam_role_policy.vpc
}
override_resource {
  target = aws_iam_role_policy.tracing
}
override_resource {
  target = aws_iam_role_policy.dead_letter
}
override_resource {
  target = aws_lambda_function.this
}
override_resource {
  target = terraform_data.package
}
override_resource {
  target = aws_lambda_alias.live
}
override_resource {
  target = aws_lambda_provisioned_concurrency_config.live
}

variables {
  function_name = "orders-api"
  secrets       = { db_password = "hunter2" }
  # The package build (local-exec) is not under test here, and tests/unit covers it: `true` stands in for
  # Python, so these runs stay offline and quick.
  python_executable = "true"
}

run "the_role_gets_exactly_this_policy_at_the_defaults" {
  assert {
    condition = jsondecode(aws_iam_role_policy.function.policy) == {
      Version = "2012-10-17"
      Statement = [
        {
          Sid      = "DecryptOwnSecrets"
          Effect   = "Allow"
          Action   = "kms:Decrypt"
          Resource = "arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555"
          Condition = {
            ArnLike = {
              "lambda:SourceFunctionArn" = [
                "arn:aws:lambda:eu-west-1:123456789012:function:orders-api",
                "arn:aws:lambda:eu-west-1:123456789012:function:orders-api:*",
              ]
            }
            StringEquals = { "kms:EncryptionContext:LambdaFunctionName" = "orders-api" }
          }
        },
        {
          Sid      = "DenyOpeningOutsideTheFunction"
          Effect   = "Deny"
          Action   = ["kms:ReEncrypt*", "kms:Decrypt"]
          Resource = "arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555"
          Condition = {
            ArnNotLike = {
              "lambda:SourceFunctionArn" = [
                "arn:aws:lambda:eu-west-1:123456789012:function:orders-api",
                "arn:aws:lambda:eu-west-1:123456789012:function:orders-api:*",
              ]
            }
          }
        },
        {
          Sid      = "WriteOwnLogs"
          Effect   = "Allow"
          Action   = ["logs:PutLogEvents", "logs:CreateLogStream"]
          Resource = "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/lambda/orders-api:*"
        },
      ]
    }
    error_message = "The role's attached policy, as rendered: ${aws_iam_role_policy.function.policy}"
  }

  assert {
    condition     = aws_iam_role_policy.function.role == aws_iam_role.function.id && length(aws_iam_role_policy.decrypt_endpoints) + length(aws_iam_role_policy.vpc) + length(aws_iam_role_policy.tracing) + length(aws_iam_role_policy.dead_letter) == 0
    error_message = "With the defaults the role holds exactly one inline policy."
  }

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
    error_message = "The key policy, as rendered: ${aws_kms_key.secrets[0].policy}"
  }

  assert {
    condition     = output.key_policy_statements == [jsondecode(aws_kms_key.secrets[0].policy).Statement[1]]
    error_message = "key_policy_statements must be the statement the module's own key carries."
  }
}

run "every_optional_setting_attaches_exactly_its_own_policy" {
  variables {
    vpc_subnet_ids           = ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]
    vpc_security_group_ids   = ["sg-0123456789abcdef0"]
    decrypt_vpc_endpoint_ids = ["vpce-0123456789abcdef0"]
    tracing_mode             = "Active"
    dead_letter_target_arn   = "arn:aws:sqs:eu-west-1:123456789012:orders-dlq"
  }

  assert {
    condition = jsondecode(aws_iam_role_policy.function.policy).Statement[0] == {
      Sid      = "DecryptOwnSecrets"
      Effect   = "Allow"
      Action   = "kms:Decrypt"
      Resource = "arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555"
      Condition = {
        ArnLike = {
          "lambda:SourceFunctionArn" = [
            "arn:aws:lambda:eu-west-1:123456789012:function:orders-api",
            "arn:aws:lambda:eu-west-1:123456789012:function:orders-api:*",
          ]
        }
        StringEquals = {
          "aws:SourceVpce"                           = "vpce-0123456789abcdef0"
          "kms:EncryptionContext:LambdaFunctionName" = "orders-api"
        }
      }
    }
    error_message = "With decrypt_vpc_endpoint_ids the role may Decrypt only through them: ${aws_iam_role_policy.function.policy}"
  }

  assert {
    condition = jsondecode(aws_iam_role_policy.decrypt_endpoints[0].policy) == {
      Version = "2012-10-17"
      Statement = [{
        Sid       = "DenyOpeningOutsideTheEndpoints"
        Effect    = "Deny"
        Action    = ["kms:ReEncrypt*", "kms:Decrypt"]
        Resource  = "arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555"
        Condition = { StringNotEquals = { "aws:SourceVpce" = "vpce-0123456789abcdef0" } }
      }]
    }
    error_message = "With decrypt_vpc_endpoint_ids the role is denied opening anywhere else: ${aws_iam_role_policy.decrypt_endpoints[0].policy}"
  }

  assert {
    condition = jsondecode(aws_iam_role_policy.vpc[0].policy) == {
      Version = "2012-10-17"
      Statement = [
        {
          Sid      = "DescribeNetworkInterfaces"
          Effect   = "Allow"
          Action   = ["ec2:DescribeSubnets", "ec2:DescribeNetworkInterfaces"]
          Resource = "*"
        },
        {
          Sid    = "ManageOwnNetworkInterfaces"
          Effect = "Allow"
          Action = ["ec2:UnassignPrivateIpAddresses", "ec2:DeleteNetworkInterface", "ec2:CreateNetworkInterface", "ec2:AssignPrivateIpAddresses"]
          Resource = [
            "arn:aws:ec2:eu-west-1:123456789012:network-interface/*",
            "arn:aws:ec2:eu-west-1:*:subnet/subnet-0fedcba9876543210",
            "arn:aws:ec2:eu-west-1:*:subnet/subnet-0123456789abcdef0",
            "arn:aws:ec2:eu-west-1:*:security-group/sg-0123456789abcdef0",
          ]
        },
      ]
    }
    error_message = "The VPC policy, as rendered: ${aws_iam_role_policy.vpc[0].policy}"
  }

  assert {
    condition = jsondecode(aws_iam_role_policy.tracing[0].policy) == {
      Version   = "2012-10-17"
      Statement = [{ Sid = "WriteTraces", Effect = "Allow", Action = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"], Resource = "*" }]
    }
    error_message = "The tracing policy, as rendered: ${aws_iam_role_policy.tracing[0].policy}"
  }

  assert {
    condition = jsondecode(aws_iam_role_policy.dead_letter[0].policy) == {
      Version   = "2012-10-17"
      Statement = [{ Sid = "SendToDeadLetterTarget", Effect = "Allow", Action = "sqs:SendMessage", Resource = "arn:aws:sqs:eu-west-1:123456789012:orders-dlq" }]
    }
    error_message = "The dead-letter policy, as rendered: ${aws_iam_role_policy.dead_letter[0].policy}"
  }
}

run "a_shared_key_gets_the_statement_the_module_outputs" {
  variables {
    create_kms_key = false
    kms_key_arn    = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-44cd-86ef-1234567890ab"
  }

  assert {
    condition     = jsondecode(aws_iam_role_policy.function.policy).Statement[0].Resource == "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-44cd-86ef-1234567890ab"
    error_message = "The role's policy names the shared key: ${aws_iam_role_policy.function.policy}"
  }

  assert {
    condition = jsonencode(output.key_policy_statements) == jsonencode([{
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
    }])
    error_message = "key_policy_statements is what the shared key's owner adds: ${jsonencode(output.key_policy_statements)}"
  }
}
