# A Lambda function that reaches Google Cloud with no keys: the function, its execution role, and
# the token-broker module, which adds the layer, the environment and the role's one permission.
# The function's code is function/handler.py, zipped by Terraform itself (archive_file).
#
#   npm run build:layer     # once, at the repository root: the layer zips the module publishes
#   terraform init
#   terraform apply \
#     -var audience="$(terraform -chdir=../../../../gcp output -raw provider_audience)" \
#     -var bucket="$(echo var.bucket_name | terraform -chdir=../../../../gcp console | tr -d '"')"
#
# Its role ARN (output function_role_arn) must be one of infra/gcp's aws_role_arns, whose
# principals may write that bucket.

terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0, < 7.0"
    }
    archive = {
      source  = "hashicorp/archive"
      version = ">= 2.4"
    }
  }
}

variable "audience" {
  description = "infra/gcp's provider_audience output."
  type        = string
}

variable "bucket" {
  description = "The Google Cloud Storage bucket the function writes to (infra/gcp's bucket_name variable)."
  type        = string
}

locals {
  runtime      = "python3.13"
  architecture = "arm64"
  # The nodejs flavour for Node 22+ runtimes, the standalone one (with its own Node) for the rest.
  flavour = contains(module.token_broker.nodejs_runtimes, local.runtime) ? "nodejs" : "standalone"
}

# The deployment package, rebuilt whenever function/ changes.
data "archive_file" "function" {
  type        = "zip"
  source_dir  = "${path.module}/function"
  output_path = "${path.module}/function.zip"
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
  # This repository's module, from a clone. Outside it, point at a copy of infra/terraform/aws:
  # "./node_modules/token-broker/infra/terraform/aws" when the npm package is installed, or
  # "git::<repository URL>//infra/terraform/aws?ref=<tag>" from the Git repository.
  source    = "../.."
  audience  = var.audience
  role_name = aws_iam_role.function.name
}

resource "aws_lambda_function" "example" {
  function_name    = "token-broker-example"
  role             = aws_iam_role.function.arn
  filename         = data.archive_file.function.output_path
  source_code_hash = data.archive_file.function.output_base64sha256
  handler          = "handler.handler"
  runtime          = local.runtime
  architectures    = [local.architecture]
  # The broker's first token takes a JWT and an exchange; the default 3 s leave little room.
  timeout     = 30
  memory_size = 256
  layers      = [module.token_broker.layer_arns["${local.flavour}-${local.architecture}"]]

  environment {
    variables = merge(module.token_broker.environment, { GOOGLE_BUCKET = var.bucket })
  }

  # The first invocation must not race the permission.
  depends_on = [module.token_broker, aws_iam_role_policy_attachment.logs]
}

output "function_role_arn" {
  description = "Add this ARN to infra/gcp's aws_role_arns."
  value       = aws_iam_role.function.arn
}

output "lambda_function_names" {
  description = "For infra/gcp's lambda_function_names: grants this function alone (principalSet://…/attribute.lambda_function/NAME), not every workload of its role."
  value       = [aws_lambda_function.example.function_name]
}
