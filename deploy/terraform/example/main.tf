# An environment using the module. `terraform output -json > outputs.json`
# here, then `TF_ENV_DIR=deploy/terraform/example proflab export --ecs --latest cpu`
# finds the cluster and the service (docs/export.md).

terraform {
  required_version = ">= 1.3"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0"
    }
  }
}

provider "aws" {
  region = var.region
}

variable "region" {
  type    = string
  default = "eu-west-1"
}

variable "image" {
  description = "The proflab image in your registry."
  type        = string
}

variable "subnet_ids" {
  type = list(string)
}

variable "security_group_ids" {
  type = list(string)
}

# The token lives in Secrets Manager, created outside Terraform so it is not
# in the state:
#   aws secretsmanager create-secret --name proflab/lab-token \
#     --secret-string "$(openssl rand -hex 24)"
data "aws_secretsmanager_secret" "lab_token" {
  name = "proflab/lab-token"
}

module "proflab" {
  source = "../proflab-lab"

  name                 = "proflab"
  cluster_name         = "lab"
  image                = var.image
  desired_count        = 2
  subnet_ids           = var.subnet_ids
  security_group_ids   = var.security_group_ids
  lab_enable           = true
  lab_token_secret_arn = data.aws_secretsmanager_secret.lab_token.arn
  app_env              = "staging"
}

output "ecs_cluster_name" {
  value = module.proflab.ecs_cluster_name
}

output "ecs_service_name" {
  value = module.proflab.ecs_service_name
}

output "container_name" {
  value = module.proflab.container_name
}

output "operator_policy_arn" {
  value = module.proflab.operator_policy_arn
}
