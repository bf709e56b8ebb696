output "kms_key_arn" {
  description = "ARN of the shared key; both modules were given it as kms_key_arn."
  value       = aws_kms_key.shared.arn
}

output "kms_alias_name" {
  description = "Alias of the shared key; seal more secrets with kms_key_arn (and the function's encryption context), never the alias."
  value       = aws_kms_alias.shared.name
}

output "key_policy" {
  description = "The shared key's policy: key administration for key_administrators, and Decrypt for each function's role under its own encryption context."
  value       = aws_kms_key.shared.policy
}

output "functions" {
  description = "Per function: its name, ARN, encryption context and sealed ciphertexts (safe to show)."
  value = {
    for key, function in { orders = module.orders, billing = module.billing } :
    key => {
      function_name      = function.function_name
      function_arn       = function.function_arn
      encryption_context = function.encryption_context
      ciphertexts        = function.ciphertexts
    }
  }
}
