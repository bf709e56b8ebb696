# Two functions on one KMS key that this configuration owns (as a platform team would).
# Each function's module output key_policy_statements is what lets that function, and only
# from inside it, open its own secrets; the key's owner adds them to the key policy.
# One apply makes the key and both functions: create_kms_key = false tells each module, at plan time,
# that it makes no key of its own, though the shared key's ARN is not known until apply.

data "aws_caller_identity" "current" {}

# The caller as a principal a key policy can name: an assumed role's session ARN becomes the role's ARN.
data "aws_iam_session_context" "current" {
  arn = data.aws_caller_identity.current.arn
}

locals {
  # KMS refuses a key policy that would lock out its caller, so the caller always administers the key.
  key_administrators = distinct(concat(var.key_administrators, [data.aws_iam_session_context.current.issuer_arn]))
}

resource "aws_kms_key" "shared" {
  description             = "Seals the secrets of the Lambda functions ${var.name_prefix}-orders and ${var.name_prefix}-billing"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_in_days

  # The functions' statements name their roles through an aws:PrincipalArn condition, not as
  # principals, so this policy is valid before the roles exist: no dependency cycle.
  policy = jsonencode({
    Version = "2012-10-17"
    # A list literal, which checkov reads (it reads no concat()). one() fails the plan, rather than
    # drop a grant, if a module ever returns more than one statement.
    Statement = [
      {
        Sid       = "KeyAdministration"
        Effect    = "Allow"
        Principal = { AWS = local.key_administrators }
        # The module's own list: running, sealing with (Encrypt) and destroying the key, nothing that opens
        # a ciphertext (no Decrypt, ReEncrypt* or CreateGrant, no kms:*).
        Action   = module.orders.key_administration_actions
        Resource = "*"
      },
      one(module.orders.key_policy_statements),
      one(module.billing.key_policy_statements),
    ]
  })
}

resource "aws_kms_alias" "shared" {
  name          = "alias/${var.name_prefix}-shared-secrets"
  target_key_id = aws_kms_key.shared.key_id
}

module "orders" {
  source = "../.."

  function_name     = "${var.name_prefix}-orders"
  secrets           = var.orders_secrets
  create_kms_key    = false
  kms_key_arn       = aws_kms_key.shared.arn
  python_executable = var.python_executable
  # The module checks these ARNs (no wildcards), and ignores them with a shared key: this configuration's
  # own key policy above uses them. No copy of the module's checks here: inputs pass through.
  key_administrators = var.key_administrators
}

module "billing" {
  source = "../.."

  function_name     = "${var.name_prefix}-billing"
  secrets           = var.billing_secrets
  create_kms_key    = false
  kms_key_arn       = aws_kms_key.shared.arn
  python_executable = var.python_executable
}
