# proflab on ECS (Fargate): the service with ECS Exec on, its task definition
# with the lab's variables (LAB_TOKEN from Secrets Manager), the task role's
# ECS Exec permissions, and a policy for the people who run
# `proflab export --ecs` (aws ecs execute-command).

data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

data "aws_ecs_cluster" "this" {
  cluster_name = var.cluster_name
}

locals {
  environment = merge(var.extra_environment, {
    PROFLAB_LISTEN          = "0.0.0.0:8080"
    LAB_ENABLE              = var.lab_enable ? "true" : "false"
    LAB_ARTIFACT_DIR        = "/var/lib/proflab"
    APP_ENV                 = var.app_env
    LAB_ALLOW_PROD          = var.lab_allow_prod ? "true" : "false"
    LAB_MAX_LEAK_MB         = tostring(var.lab_max_leak_mb)
    LAB_MAX_PROFILE_SECONDS = tostring(var.lab_max_profile_seconds)
    LAB_MAX_JAM_MS          = tostring(var.lab_max_jam_ms)
  })
  log_group = "/ecs/${var.name}"
}

resource "aws_cloudwatch_log_group" "this" {
  name              = local.log_group
  retention_in_days = var.log_retention_days
  tags              = var.tags
}

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

# The execution role: pulls the image, writes logs, reads the token secret.
resource "aws_iam_role" "execution" {
  name               = "${var.name}-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

data "aws_iam_policy_document" "read_token" {
  statement {
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [var.lab_token_secret_arn]
  }
}

resource "aws_iam_role_policy" "read_token" {
  name   = "${var.name}-read-lab-token"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.read_token.json
}

# The task role: what ECS Exec's SSM agent inside the task needs.
resource "aws_iam_role" "task" {
  name               = "${var.name}-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "ecs_exec_task" {
  statement {
    sid = "EcsExecChannels"
    actions = [
      "ssmmessages:CreateControlChannel",
      "ssmmessages:CreateDataChannel",
      "ssmmessages:OpenControlChannel",
      "ssmmessages:OpenDataChannel",
    ]
    resources = ["*"]
  }
  dynamic "statement" {
    for_each = var.exec_kms_key_arn == null ? [] : [var.exec_kms_key_arn]
    content {
      sid       = "EcsExecKms"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role_policy" "ecs_exec_task" {
  name   = "${var.name}-ecs-exec"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.ecs_exec_task.json
}

resource "aws_ecs_task_definition" "this" {
  family                   = var.name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = tostring(var.cpu)
  memory                   = tostring(var.memory)
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn
  container_definitions = templatefile("${path.module}/container-definitions.json.tftpl", {
    name                 = var.name
    image                = var.image
    environment          = [for k in sort(keys(local.environment)) : { name = k, value = local.environment[k] }]
    lab_token_secret_arn = var.lab_token_secret_arn
    log_group            = aws_cloudwatch_log_group.this.name
    region               = data.aws_region.current.name
  })
  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }
  tags = var.tags
}

resource "aws_ecs_service" "this" {
  name                              = var.name
  cluster                           = data.aws_ecs_cluster.this.arn
  task_definition                   = aws_ecs_task_definition.this.arn
  desired_count                     = var.desired_count
  launch_type                       = "FARGATE"
  enable_execute_command            = true
  health_check_grace_period_seconds = var.target_group_arn == null ? null : 30

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = var.security_group_ids
    assign_public_ip = var.assign_public_ip
  }

  dynamic "load_balancer" {
    for_each = var.target_group_arn == null ? [] : [var.target_group_arn]
    content {
      target_group_arn = load_balancer.value
      container_name   = var.name
      container_port   = 8080
    }
  }

  tags = var.tags
}

# For the people (or CI roles) who run `proflab export --ecs`: aws ecs
# execute-command (ecs:ExecuteCommand on the cluster and the service's tasks,
# ecs:DescribeTasks, which the AWS CLI calls to find the container), and
# ecs:ListTasks (export finds the service's task when --task is not given).
# Attach it to a user, group or role.
data "aws_iam_policy_document" "operator" {
  statement {
    sid     = "EcsExec"
    actions = ["ecs:ExecuteCommand", "ecs:DescribeTasks"]
    resources = [
      data.aws_ecs_cluster.this.arn,
      "arn:aws:ecs:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:task/${var.cluster_name}/*",
    ]
  }
  statement {
    sid       = "FindTasks"
    actions   = ["ecs:ListTasks"]
    resources = ["*"]
    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [data.aws_ecs_cluster.this.arn]
    }
  }
  dynamic "statement" {
    for_each = var.exec_kms_key_arn == null ? [] : [var.exec_kms_key_arn]
    content {
      sid       = "EcsExecKms"
      actions   = ["kms:GenerateDataKey"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_policy" "operator" {
  name        = "${var.name}-ecs-exec-operator"
  description = "Run aws ecs execute-command (proflab export --ecs) on the ${var.name} service's tasks."
  policy      = data.aws_iam_policy_document.operator.json
  tags        = var.tags
}
