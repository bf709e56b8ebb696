output "function_name" {
  description = "Name of the Lambda function."
  value       = aws_lambda_function.this.function_name
}

output "function_arn" {
  description = "ARN of the Lambda function."
  value       = aws_lambda_function.this.arn
}

output "role_arn" {
  description = "ARN of the function's IAM role."
  value       = aws_iam_role.function.arn
}

output "role_name" {
  description = "Name of the function's IAM role (<function_name>-lambda), to attach the policies your code needs."
  value       = aws_iam_role.function.name
}

output "log_group_name" {
  description = "CloudWatch log group of the function."
  value       = aws_cloudwatch_log_group.function.name
}

output "kms_key_arn" {
  description = "ARN of the KMS key that seals the secrets: the module's own, or kms_key_arn."
  value       = local.key_arn
}

output "kms_alias_name" {
  description = "Alias of the module's own KMS key, to find it in the console; null with a shared key. Seal with kms_key_arn: a package opens only ciphertexts of that key."
  value       = local.create_key ? aws_kms_alias.secrets[0].name : null
}

output "encryption_context" {
  description = "Encryption context every ciphertext is bound to."
  value       = local.encryption_context
}

output "key_policy_statements" {
  description = "Key policy statements that let this function's role, and only from this function, open its secrets: what the owner of a shared key (kms_key_arn) adds to that key's policy. The module's own key already has them."
  value       = local.key_policy_statements
}

output "key_administration_actions" {
  description = "The KMS actions the module gives key administrators: running, sealing with (Encrypt) and destroying a key, and nothing that opens a ciphertext (no Decrypt, ReEncrypt* or CreateGrant). For the administration statement of a shared key's policy."
  value       = local.key_administration_actions
}

output "ciphertexts" {
  description = "Sealed secrets, name => base64 CiphertextBlob, as baked into the package. Safe to show: only KMS, under the function's context, opens them."
  value       = local.ciphertexts
}

output "package_path" {
  description = "Path of the zip build.py wrote."
  value       = local.package
}

output "package_sha256" {
  description = "Base64 SHA-256 of the deployed package (Lambda's CodeSha256); build.py prints the same for the same inputs."
  value       = data.aws_lambda_function.deployed.code_sha256
}

output "package_fingerprint" {
  description = "Digest of what the package is made of (ciphertexts, source files, runtime, architecture, build.py, the helper); the function's source_code_hash. It changes exactly when the package must be rebuilt."
  value       = local.package_fingerprint
}

output "function_version" {
  description = "The version the alias live runs: the newest published version with snap_start or provisioned_concurrent_executions, else $LATEST."
  value       = aws_lambda_alias.live.function_version
}

output "function_qualified_arn" {
  description = "ARN of that version (<function_arn>:<function_version>)."
  value       = "${aws_lambda_function.this.arn}:${aws_lambda_alias.live.function_version}"
}

output "alias_name" {
  description = "Name of the alias callers invoke (live)."
  value       = aws_lambda_alias.live.name
}

output "alias_arn" {
  description = "ARN of the alias live: what callers, triggers and permissions should name, so that SnapStart and provisioned concurrency apply to their invocations."
  value       = aws_lambda_alias.live.arn
}

output "alias_invoke_arn" {
  description = "ARN for API Gateway to invoke the alias live (its integration URI)."
  value       = aws_lambda_alias.live.invoke_arn
}

output "provisioned_concurrent_executions" {
  description = "Environments Lambda keeps initialised for the alias live; 0 without provisioned concurrency."
  value       = try(aws_lambda_provisioned_concurrency_config.live[0].provisioned_concurrent_executions, 0)
}
