data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

# Who runs terraform, as a principal a key policy can name (an assumed role's session becomes its role).
# Read only when it is needed: named key administrators of the module's own key (it may call iam:GetRole).
data "aws_iam_session_context" "caller" {
  count = local.create_key && length(var.key_administrators) > 0 ? 1 : 0
  arn   = data.aws_caller_identity.current.arn
}

locals {
  # The rules build.py applies too: which files of the source folder are packaged, and what a secret may be called.
  rules = jsondecode(file("${path.module}/build_rules.json"))

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

  # A boolean of its own, known at plan time even when kms_key_arn comes from a key made in the same
  # apply (and a form checkov evaluates, so it checks the key).
  create_key = var.create_kms_key
  key_arn    = local.create_key ? aws_kms_key.secrets[0].arn : var.kms_key_arn
  # KMS refuses a key policy that would not let its caller change it again, so named administrators
  # always include the caller: no lockout.
  key_administrators = (length(var.key_administrators) == 0 ? [local.account_root]
  : distinct(concat(var.key_administrators, [data.aws_iam_session_context.caller[0].issuer_arn])))

  # Names are not secret; only the values of var.secrets are.
  sealed_names    = toset(nonsensitive(keys(var.secrets)))
  preencrypted    = toset(keys(var.encrypted_secrets))
  name_collisions = setintersection(local.sealed_names, local.preencrypted)
  ciphertexts = merge(
    { for name, sealed in aws_kms_ciphertext.secret : name => sealed.ciphertext_blob },
    var.encrypted_secrets,
  )

  # The template's folder is the function's source. fileset() reads its path argument as a glob,
  # so the folder is escaped into the pattern and listed from "/": a folder named "src[1]" is read as named.
  template        = abspath(coalesce(var.handler_template, "${path.module}/lambda_src/handler.py.tmpl"))
  template_module = trimsuffix(basename(local.template), ".py.tmpl")
  source_dir      = dirname(local.template)
  source_root     = trimprefix(local.source_dir, "/")
  source_glob     = replace(local.source_root, "/([\\[\\]*?{}\\\\])/", "\\$1")
  source_files = sort([
    for path in fileset("/", "${local.source_glob}/**") : trimprefix(path, "${local.source_root}/")
    if !can(regex(local.rules.exclude, trimprefix(path, "${local.source_root}/")))
  ])
  package = abspath("${path.module}/dist/${var.function_name}.zip")

  # What the zip is made of. build.py is deterministic, so this names the package's bytes
  # before they exist, and drives rebuilds and code updates.
  package_inputs = {
    ciphertexts  = local.ciphertexts
    sources      = { for file in local.source_files : file => filesha256("${local.source_dir}/${file}") }
    template     = basename(local.template)
    runtime      = var.runtime
    architecture = var.architectures[0]
    build        = filesha256("${path.module}/build.py")
    rules        = filesha256("${path.module}/build_rules.json")
    helper       = filesha256("${path.module}/lambda_src/sealed_secrets.py")
  }
  package_fingerprint = base64sha256(jsonencode(local.package_inputs))

  # build.py's argv: one "--flag=value" item each, run without a shell, so no value is ever parsed
  # as shell syntax or as another option.
  build_command = concat(
    [var.python_executable, abspath("${path.module}/build.py")],
    ["--template=${local.template}", "--runtime=${var.runtime}", "--architecture=${var.architectures[0]}"],
    [for name in sort(keys(local.ciphertexts)) : "--ciphertext=${name}=${local.ciphertexts[name]}"],
  )

  # The key policy statement that lets this function's role, and nothing else, open its secrets:
  # Decrypt is delegated to IAM only for the role's principal ARN and only under the function's
  # context; the role's own policy then adds the lambda:SourceFunctionArn condition.
  decrypt_statement = {
    Sid       = "Decrypt for Lambda function ${var.function_name}"
    Effect    = "Allow"
    Principal = { AWS = local.account_root }
    Action    = "kms:Decrypt"
    Resource  = "*"
    Condition = {
      ArnEquals    = { "aws:PrincipalArn" = local.role_arn }
      StringEquals = { "kms:EncryptionContext:LambdaFunctionName" = var.function_name }
    }
  }
  key_policy_statements = [local.decrypt_statement]

  # Everything a key administrator needs to run and destroy the key and to seal secrets with it
  # (Encrypt, for the CLI flow), and nothing that opens a ciphertext: no Decrypt, no ReEncrypt*,
  # no CreateGrant.
  key_administration_actions = [
    "kms:CancelKeyDeletion", "kms:CreateAlias", "kms:DeleteAlias", "kms:DescribeKey", "kms:DisableKey",
    "kms:DisableKeyRotation", "kms:EnableKey", "kms:EnableKeyRotation", "kms:Encrypt", "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus", "kms:ListAliases", "kms:ListGrants", "kms:ListKeyPolicies", "kms:ListKeyRotations",
    "kms:ListResourceTags", "kms:PutKeyPolicy", "kms:RevokeGrant", "kms:RotateKeyOnDemand", "kms:ScheduleKeyDeletion",
    "kms:TagResource", "kms:UntagResource", "kms:UpdateAlias", "kms:UpdateKeyDescription",
  ]

  log_group_name = "/aws/lambda/${var.function_name}"
  in_vpc         = length(var.vpc_subnet_ids) > 0
  dead_letter_action = var.dead_letter_target_arn == null ? null : (
    startswith(split(":", var.dead_letter_target_arn)[2], "sqs") ? "sqs:SendMessage" : "sns:Publish"
  )
}

# --- KMS: the key that seals the secrets (unless a shared one is given) ----------------------

resource "aws_kms_key" "secrets" {
  count = local.create_key ? 1 : 0

  description             = "Seals the secrets baked into Lambda function ${var.function_name}"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_in_days
  tags                    = var.tags

  policy = jsonencode({
    Version = "2012-10-17"
    # A list literal, not concat(): checkov reads the statements of a list and of nothing else.
    Statement = [
      {
        Sid       = "KeyAdministration"
        Effect    = "Allow"
        Principal = { AWS = local.key_administrators }
        Action    = local.key_administration_actions
        Resource  = "*"
      },
      local.decrypt_statement,
    ]
  })
}

resource "aws_kms_alias" "secrets" {
  count = local.create_key ? 1 : 0

  name          = "alias/${var.function_name}-secrets"
  target_key_id = aws_kms_key.secrets[0].key_id
}

# A shared key must be one that can seal and open: enabled, symmetric, for encryption.
data "aws_kms_key" "shared" {
  count  = local.create_key ? 0 : 1
  key_id = var.kms_key_arn

  lifecycle {
    precondition {
      condition     = split(":", var.kms_key_arn)[3] == local.region
      error_message = "kms_key_arn is in region ${split(":", var.kms_key_arn)[3]}, the function in ${local.region}: Lambda opens its secrets with a key of its own region."
    }
    postcondition {
      condition     = self.enabled && self.key_usage == "ENCRYPT_DECRYPT" && self.customer_master_key_spec == "SYMMETRIC_DEFAULT"
      error_message = "kms_key_arn must name an enabled symmetric ENCRYPT_DECRYPT key; this one is ${self.key_state}, ${self.key_usage}, ${self.customer_master_key_spec}. Use another key, or set create_kms_key = true to let the module create one."
    }
  }
}

resource "aws_kms_ciphertext" "secret" {
  for_each = local.sealed_names

  key_id    = local.key_arn
  plaintext = var.secrets[each.key]
  context   = local.encryption_context

  depends_on = [data.aws_kms_key.shared]
}

# --- IAM: exactly what the function needs ------------------------------------------------------

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

resource "aws_cloudwatch_log_group" "function" {
  #checkov:skip=CKV_AWS_158:CloudWatch Logs encrypts every log group at rest. A customer managed key needs a key policy that lets the logs service use it, which only the key's owner can write: offered as input log_kms_key_arn. The function never logs a secret.
  name              = local.log_group_name
  retention_in_days = var.log_retention_in_days
  kms_key_id        = var.log_kms_key_arn
  tags              = var.tags
}

# --- The package and the function ---------------------------------------------------------------

resource "terraform_data" "package" {
  triggers_replace = local.package_fingerprint
  input            = local.package_fingerprint

  lifecycle {
    precondition {
      condition     = length(local.name_collisions) == 0
      error_message = "These names are in both secrets and encrypted_secrets: ${join(", ", sort(tolist(local.name_collisions)))}. Give each secret one source."
    }
    precondition {
      condition     = length(local.sealed_names) + length(local.preencrypted) > 0
      error_message = "Nothing to seal: set secrets (name => plaintext) or encrypted_secrets (name => base64 ciphertext)."
    }
    precondition {
      condition     = length(local.sealed_names) + length(local.preencrypted) <= 100
      error_message = "At most 100 secrets per function (secrets and encrypted_secrets together); split them across functions or keys."
    }
    precondition {
      condition     = fileexists(local.template)
      error_message = "handler_template: no file at that path; point it at your *.py.tmpl."
    }
  }

  provisioner "local-exec" {
    working_dir = path.module
    # interpreter + command are passed to the OS as an argument list: no shell ever parses them.
    interpreter = local.build_command
    command     = "--output=${local.package}"
  }
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
    aws_iam_role_policy.function, aws_iam_role_policy.vpc, aws_iam_role_policy.tracing, aws_iam_role_policy.dead_letter,
  ]
}

# Read back after every apply that touches the function: the resource's own code_sha256
# can lag one apply behind a code update (seen with provider 5.100), which would make the
# next plan report an output change.
data "aws_lambda_function" "deployed" {
  function_name = aws_lambda_function.this.function_name
  depends_on    = [aws_lambda_function.this]
}
