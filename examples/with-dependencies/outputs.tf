output "function_name" {
  description = "Name of the deployed function, for aws lambda invoke."
  value       = module.function.function_name
}

output "function_arn" {
  description = "ARN of the deployed function."
  value       = module.function.function_arn
}

output "architecture" {
  description = "Instruction set the function and its dependencies were built for."
  value       = var.architecture
}

output "package_path" {
  description = "The zip build.py wrote: the rendered handler, greeter/, markupsafe/ and sealed_secrets/."
  value       = module.function.package_path
}

output "package_sha256" {
  description = "Base64 SHA-256 of the deployed package, as Lambda reports it (CodeSha256)."
  value       = module.function.package_sha256
}

output "package_fingerprint" {
  description = "Digest of what the package is made of; it changes with any source file, the requirements, the runtime or the architecture."
  value       = module.function.package_fingerprint
}
