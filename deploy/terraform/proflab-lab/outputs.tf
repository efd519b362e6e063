# ecs_cluster_name and ecs_service_name are the outputs `proflab export --ecs`
# reads with TF_ENV_DIR (docs/export.md, "Terraform").

output "ecs_cluster_name" {
  description = "The ECS cluster of the service."
  value       = var.cluster_name
}

output "ecs_service_name" {
  description = "The ECS service running proflabd."
  value       = aws_ecs_service.this.name
}

output "container_name" {
  description = "The container's name (CONTAINER_NAME for proflab export --ecs)."
  value       = var.name
}

output "task_definition_arn" {
  description = "The registered task definition revision."
  value       = aws_ecs_task_definition.this.arn
}

output "task_role_arn" {
  description = "The task role (ECS Exec's ssmmessages permissions)."
  value       = aws_iam_role.task.arn
}

output "operator_policy_arn" {
  description = "Attach to whoever runs proflab export --ecs (ecs:ExecuteCommand)."
  value       = aws_iam_policy.operator.arn
}
