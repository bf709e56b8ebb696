output "function_name" {
  description = "Name of the deployed function, for aws lambda invoke."
  value       = module.sealed_function.function_name
}

output "function_arn" {
  description = "ARN of the deployed function."
  value       = module.sealed_function.function_arn
}

output "kms_key_arn" {
  description = "ARN of the function's own KMS key (the module creates it, with rotation on)."
  value       = module.sealed_function.kms_key_arn
}

output "kms_alias_name" {
  description = "Alias of the function's own KMS key; seal more secrets with kms_key_arn (aws kms encrypt --key-id), never the alias."
  value       = module.sealed_function.kms_alias_name
}

output "encryption_context" {
  description = "Encryption context every ciphertext of this function is bound to."
  value       = module.sealed_function.encryption_context
}

output "ciphertexts" {
  description = "The sealed secrets, name => base64 CiphertextBlob, as baked into the package. Safe to show."
  value       = module.sealed_function.ciphertexts
}

output "package_sha256" {
  description = "Base64 SHA-256 of the deployed package, as Lambda reports it (CodeSha256)."
  value       = module.sealed_function.package_sha256
}
