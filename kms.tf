# The key that seals the secrets (unless a shared one is given), its policy statements and the ciphertexts.

# Who runs terraform, as a principal a key policy can name (an assumed role's session becomes its role).
# Read only when it is needed: named key administrators of the module's own key (it may call iam:GetRole).
data "aws_iam_session_context" "caller" {
  count = local.create_key && length(var.key_administrators) > 0 ? 1 : 0
  arn   = data.aws_caller_identity.current.arn
}

locals {
  # A boolean of its own, known at plan time even when kms_key_arn comes from a key made in the same
  # apply (and a form checkov evaluates, so it checks the key).
  create_key = var.create_kms_key
  key_arn    = local.create_key ? aws_kms_key.secrets[0].arn : var.kms_key_arn
  # KMS refuses a key policy that would not let its caller change it again, so named administrators
  # always include the caller: no lockout.
  # (Only with a key of the module's own: with a shared key key_administrators is validated, then ignored.)
  key_administrators = (length(data.aws_iam_session_context.caller) == 0 ? [local.account_root]
  : distinct(concat(var.key_administrators, [data.aws_iam_session_context.caller[0].issuer_arn])))

  # Names are not secret; only the values of var.secrets are.
  sealed_names    = toset(nonsensitive(keys(var.secrets)))
  preencrypted    = toset(keys(var.encrypted_secrets))
  name_collisions = setintersection(local.sealed_names, local.preencrypted)
  ciphertexts = merge(
    { for name, sealed in aws_kms_ciphertext.secret : name => sealed.ciphertext_blob },
    var.encrypted_secrets,
  )

  # The key policy statement that lets this function's role, and nothing else, open its secrets:
  # Decrypt is delegated to IAM only for the role (its ARN, and its unique ID, so that a role deleted
  # and recreated under the same name opens nothing) and only under the function's context; the role's
  # own policy then allows it only from the function, and denies it otherwise. The key depends on the
  # role here; the role depends on nothing of the key's, so there is no cycle.
  decrypt_statement = {
    Sid       = "Decrypt for Lambda function ${var.function_name}"
    Effect    = "Allow"
    Principal = { AWS = local.account_root }
    Action    = "kms:Decrypt"
    Resource  = "*"
    Condition = {
      ArnEquals    = { "aws:PrincipalArn" = local.role_arn }
      StringEquals = { "kms:EncryptionContext:LambdaFunctionName" = var.function_name }
      StringLike   = { "aws:userid" = "${aws_iam_role.function.unique_id}:*" }
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
}

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
    postcondition {
      condition     = !self.multi_region
      error_message = "kms_key_arn is a multi-Region key: each of its replicas carries a key policy of its own, which this module's key_policy_statements do not reach, so a replica's policy could open the secrets. Use a single-Region key, or set create_kms_key = true."
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

