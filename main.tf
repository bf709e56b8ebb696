data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  encryption_context = { LambdaFunctionName = var.function_name }

  # Names are not secret; only the values of var.secrets are.
  sealed_names    = toset(nonsensitive(keys(var.secrets)))
  preencrypted    = toset(keys(var.encrypted_secrets))
  name_collisions = setintersection(local.sealed_names, local.preencrypted)

  ciphertexts = merge(
    { for name, sealed in aws_kms_ciphertext.secret : name => sealed.ciphertext_blob },
    var.encrypted_secrets,
  )

  template   = coalesce(var.handler_template, "${path.module}/lambda_src/handler.py.tmpl")
  source_dir = dirname(local.template)
  package    = "${path.module}/dist/${var.function_name}.zip"

  # What the zip is made of. build.py is deterministic, so this names the package's
  # bytes before they exist and drives rebuilds and code updates.
  package_inputs = {
    ciphertexts = local.ciphertexts
    template    = filesha256(local.template)
    build       = filesha256("${path.module}/build.py")
    helper      = filesha256("${path.module}/lambda_src/sealed_secrets.py")
    modules     = { for file in fileset(local.source_dir, "*.py") : file => filesha256("${local.source_dir}/${file}") }
  }
  package_fingerprint = base64sha256(jsonencode(local.package_inputs))

  log_group_name = "/aws/lambda/${var.function_name}"
  account_root   = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"
}

# --- KMS: the key that seals the secrets ------------------------------------------------

resource "aws_kms_key" "secrets" {
  description             = "Seals the secrets baked into Lambda function ${var.function_name}"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_in_days
  tags                    = var.tags

  # Explicit, not the implicit default: the account administers the key through IAM;
  # the function's role gets Decrypt through its own policy, context-bound.
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "AccountAdministersKeyThroughIAM"
      Effect    = "Allow"
      Principal = { AWS = local.account_root }
      Action    = "kms:*"
      Resource  = "*"
    }]
  })
}

resource "aws_kms_alias" "secrets" {
  name          = "alias/${var.function_name}-secrets"
  target_key_id = aws_kms_key.secrets.key_id
}

resource "aws_kms_ciphertext" "secret" {
  for_each = local.sealed_names

  key_id    = aws_kms_key.secrets.arn
  plaintext = var.secrets[each.key]
  context   = local.encryption_context
}

# --- IAM: exactly what the function needs --------------------------------------------------

resource "aws_iam_role" "function" {
  name = "${var.function_name}-lambda"
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

resource "aws_iam_role_policy" "function" {
  name = "open-sealed-secrets"
  role = aws_iam_role.function.id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "DecryptOwnSecrets"
        Effect   = "Allow"
        Action   = "kms:Decrypt"
        Resource = aws_kms_key.secrets.arn
        Condition = {
          StringEquals = { "kms:EncryptionContext:LambdaFunctionName" = var.function_name }
        }
      },
      {
        Sid      = "WriteOwnLogs"
        Effect   = "Allow"
        Action   = ["logs:CreateLogStream", "logs:PutLogEvents"]
        Resource = "${aws_cloudwatch_log_group.function.arn}:*"
      },
    ]
  })
}

resource "aws_cloudwatch_log_group" "function" {
  name              = local.log_group_name
  retention_in_days = var.log_retention_in_days
  tags              = var.tags
}

# --- The package and the function ---------------------------------------------------------

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
  }

  # Names match ^[A-Za-z][A-Za-z0-9_]*$ and blobs are base64: both are shell-safe.
  provisioner "local-exec" {
    working_dir = path.module
    command = join(" ", concat(
      [var.python_executable, "build.py", "--template", "'${abspath(local.template)}'", "--output", "'${abspath(local.package)}'"],
      [for name, blob in local.ciphertexts : "--ciphertext ${name}=${blob}"],
    ))
  }
}

resource "aws_lambda_function" "this" {
  function_name    = var.function_name
  role             = aws_iam_role.function.arn
  runtime          = var.runtime
  handler          = "${trimsuffix(basename(local.template), ".py.tmpl")}.handler"
  filename         = local.package
  source_code_hash = local.package_fingerprint
  memory_size      = var.memory_size
  timeout          = var.timeout
  tags             = var.tags

  # The package is built first; the log group exists first so its retention applies from the first line.
  depends_on = [terraform_data.package, aws_iam_role_policy.function, aws_cloudwatch_log_group.function]
}

# Read back after every apply that touches the function: the resource's own code_sha256
# can lag one apply behind a code update (seen with provider 5.100), which would make the
# next plan report an output change.
data "aws_lambda_function" "deployed" {
  function_name = aws_lambda_function.this.function_name
  depends_on    = [aws_lambda_function.this]
}
