# A Lambda function that reaches Google Cloud with no keys: the function, its execution role, and
# the token-broker module, which adds the layer, the environment and the role's one permission.
#
#   terraform init && terraform apply -var audience=$(terraform -chdir=../../../../gcp output -raw provider_audience)
#
# The function's code needs no credentials code: any Google SDK finds the broker through the
# GCE_METADATA_* variables. Its role ARN must be one of infra/gcp's aws_role_arns.

terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0, < 7.0"
    }
  }
}

variable "audience" {
  description = "infra/gcp's provider_audience output."
  type        = string
}

variable "function_zip" {
  description = "The function's deployment package."
  type        = string
  default     = "function.zip"
}

variable "bucket" {
  description = "The Google Cloud Storage bucket the function writes to (infra/gcp's bucket_name)."
  type        = string
}

locals {
  runtime      = "python3.13"
  architecture = "arm64"
  # The nodejs flavour for Node 22+ runtimes, the standalone one (with its own Node) for the rest.
  flavour = contains(module.token_broker.nodejs_runtimes, local.runtime) ? "nodejs" : "standalone"
}

data "aws_iam_policy_document" "lambda_assume_role" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "function" {
  name               = "token-broker-example"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume_role.json
}

resource "aws_iam_role_policy_attachment" "logs" {
  role       = aws_iam_role.function.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
}

module "token_broker" {
  source    = "../.."
  audience  = var.audience
  role_name = aws_iam_role.function.name
}

resource "aws_lambda_function" "example" {
  function_name    = "token-broker-example"
  role             = aws_iam_role.function.arn
  filename         = var.function_zip
  source_code_hash = filebase64sha256(var.function_zip)
  handler          = "handler.handler"
  runtime          = local.runtime
  architectures    = [local.architecture]
  # The broker's first token takes a JWT and an exchange; the default 3 s leave little room.
  timeout     = 30
  memory_size = 256
  layers      = [module.token_broker.layer_arns["${local.flavour}-${local.architecture}"]]

  environment {
    variables = merge(module.token_broker.environment, { BUCKET = var.bucket })
  }

  # The first invocation must not race the permission.
  depends_on = [module.token_broker, aws_iam_role_policy_attachment.logs]
}

output "function_role_arn" {
  description = "Add this ARN to infra/gcp's aws_role_arns."
  value       = aws_iam_role.function.arn
}
