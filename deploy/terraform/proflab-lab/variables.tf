variable "name" {
  description = "Name of the service, the task family, the container and the IAM roles' prefix."
  type        = string
  default     = "proflab"
}

variable "cluster_name" {
  description = "Name of the existing ECS cluster the service runs in."
  type        = string
}

variable "image" {
  description = "The proflab image (built from the repository's Dockerfile), e.g. an ECR URI with a tag."
  type        = string
}

variable "desired_count" {
  description = "Tasks of the service. With more than one, every lab answer names its task (x-lab-task) and `proflab export --ecs` asks for --task."
  type        = number
  default     = 2
}

variable "cpu" {
  description = "Task CPU units (Fargate)."
  type        = number
  default     = 512
}

variable "memory" {
  description = "Task memory in MiB (Fargate). Leave room for LAB_MAX_LEAK_MB."
  type        = number
  default     = 1024
}

variable "subnet_ids" {
  description = "Subnets of the service's tasks (awsvpc)."
  type        = list(string)
}

variable "security_group_ids" {
  description = "Security groups of the service's tasks."
  type        = list(string)
}

variable "assign_public_ip" {
  description = "Give the tasks a public IP (needed in public subnets without a NAT gateway to reach ECR, Secrets Manager and SSM)."
  type        = bool
  default     = false
}

variable "target_group_arn" {
  description = "Load balancer target group for port 8080, or null for none."
  type        = string
  default     = null
}

# --- the lab's variables (see the repository's DESIGN: configuration) ---

variable "lab_enable" {
  description = "LAB_ENABLE: true turns the lab's /api/lab/* endpoints on. Off by default."
  type        = bool
  default     = false
}

variable "lab_token_secret_arn" {
  description = "ARN of the Secrets Manager secret holding LAB_TOKEN (a plain string of at least 16 characters). Injected by ECS, never in the task definition."
  type        = string
}

variable "app_env" {
  description = "APP_ENV of the service. \"production\" keeps the lab off unless lab_allow_prod is true."
  type        = string
  default     = "staging"
}

variable "lab_allow_prod" {
  description = "LAB_ALLOW_PROD: let the lab run where app_env is production."
  type        = bool
  default     = false
}

variable "lab_max_leak_mb" {
  description = "LAB_MAX_LEAK_MB: the most the lab's memory-leak may hold."
  type        = number
  default     = 256
}

variable "lab_max_profile_seconds" {
  description = "LAB_MAX_PROFILE_SECONDS: the longest CPU profile."
  type        = number
  default     = 60
}

variable "lab_max_jam_ms" {
  description = "LAB_MAX_JAM_MS: the longest event-loop jam."
  type        = number
  default     = 30000
}

variable "extra_environment" {
  description = "More environment variables of the container, name => value."
  type        = map(string)
  default     = {}
}

# --- ECS Exec ---

variable "exec_kms_key_arn" {
  description = "KMS key of the cluster's ECS Exec configuration (executeCommandConfiguration.kmsKeyId), or null. When set, the task role and the operators may use it."
  type        = string
  default     = null
}

variable "log_retention_days" {
  description = "Retention of the service's CloudWatch log group."
  type        = number
  default     = 14
}

variable "tags" {
  description = "Tags for everything the module creates."
  type        = map(string)
  default     = {}
}
