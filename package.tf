# The package: the source folder's file listing, the fingerprint that names the zip, and the build step.

locals {
  # The rules build.py applies too: which files of the source folder are packaged, and what a secret may be called.
  rules = jsondecode(file("${path.module}/build_rules.json"))

  # The template's folder is the function's source. fileset() reads its path argument as a glob,
  # so the folder is escaped into the pattern and listed from "/": a folder named "src[1]" is read as named.
  template        = abspath(coalesce(var.handler_template, "${path.module}/lambda_src/handler.py.tmpl"))
  template_module = trimsuffix(basename(local.template), ".py.tmpl")
  source_dir      = dirname(local.template)
  source_root     = trimprefix(local.source_dir, "/")
  source_glob     = replace(local.source_root, "/([\\[\\]*?{}\\\\])/", "\\$1")
  listed_files    = [for path in fileset("/", "${local.source_glob}/**") : trimprefix(path, "${local.source_root}/")]
  source_files    = sort([for path in local.listed_files : path if !can(regex(local.rules.exclude, path))])
  # Terraform's state, variable files, saved plans and .terraform/ (the rule lives in build_rules.json):
  # the folder is packaged whole, so these are refused whether or not the exclude rule leaves them out.
  terraform_files = sort([for path in local.listed_files : path if can(regex(local.rules.terraform_files, path))])
  package         = abspath("${path.module}/dist/${var.function_name}.zip")

  # What the zip is made of. build.py is deterministic, so this names the package's bytes
  # before they exist, and drives rebuilds and code updates.
  package_inputs = {
    ciphertexts  = local.ciphertexts
    key_arn      = local.key_arn
    sources      = { for file in local.source_files : file => filesha256("${local.source_dir}/${file}") }
    template     = basename(local.template)
    runtime      = var.runtime
    architecture = var.architectures[0]
    build        = filesha256("${path.module}/build.py")
    rules        = filesha256("${path.module}/build_rules.json")
    helper = {
      for file in fileset("${path.module}/lambda_src/sealed_secrets", "**") :
      file => filesha256("${path.module}/lambda_src/sealed_secrets/${file}") if !can(regex(local.rules.exclude, file))
    }
    # its committed bytecode for this runtime (scripts/compile-helper), shipped in sealed_secrets/__pycache__/
    helper_bytecode = {
      for file in fileset("${path.module}/helper_bytecode/${var.runtime}", "*.pyc") :
      file => filesha256("${path.module}/helper_bytecode/${var.runtime}/${file}")
    }
  }
  package_fingerprint = base64sha256(jsonencode(local.package_inputs))

  # build.py's argv: one "--flag=value" item each, run without a shell, so no value is ever parsed
  # as shell syntax or as another option.
  build_command = concat(
    [var.python_executable, abspath("${path.module}/build.py")],
    ["--template=${local.template}", "--runtime=${var.runtime}", "--architecture=${var.architectures[0]}"],
    ["--key-arn=${local.key_arn}"],
    [for name in sort(keys(local.ciphertexts)) : "--ciphertext=${name}=${local.ciphertexts[name]}"],
  )
}

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
    precondition {
      condition     = !fileexists(local.template) || can(file(local.template))
      error_message = "handler_template is not UTF-8 text; save it as UTF-8."
    }
    precondition {
      condition     = !can(file(local.template)) || length(regexall("__SEALED_CIPHERTEXTS__", try(file(local.template), ""))) == 1
      error_message = "handler_template must contain __SEALED_CIPHERTEXTS__ exactly once (found ${length(regexall("__SEALED_CIPHERTEXTS__", try(file(local.template), "")))}): build.py puts the ciphertexts there."
    }
    precondition {
      condition     = length(local.terraform_files) == 0
      error_message = "handler_template's folder holds Terraform's working files (${join(", ", slice(local.terraform_files, 0, min(3, length(local.terraform_files))))}): the source folder is packaged whole, so state, variable values or saved plans, plaintexts included, would go into the package; keep the template's folder apart from the Terraform configuration."
    }
  }

  provisioner "local-exec" {
    working_dir = path.module
    # interpreter + command are passed to the OS as an argument list: no shell ever parses them.
    interpreter = local.build_command
    command     = "--output=${local.package}"
  }
}

