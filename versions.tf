terraform {
  required_version = ">= 1.9" # validations that read the shared build rules

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.100, < 7.0"
    }
  }
}
