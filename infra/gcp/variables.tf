variable "project_id" {
  description = "Google Cloud project that holds the pool, the bucket and the dataset."
  type        = string
}

variable "location" {
  description = "Location of the bucket and the dataset (for example EU, US or europe-west1)."
  type        = string
  default     = "EU"
}

variable "aws_issuer_url" {
  description = "Issuer of the AWS account's JWTs: the IssuerUrl output of the TokenBrokerFederation stack (https://<id>.tokens.sts.global.api.aws)."
  type        = string

  validation {
    condition     = can(regex("^https://[A-Za-z0-9-]+\\.tokens\\.sts\\.global\\.api\\.aws$", var.aws_issuer_url))
    error_message = "aws_issuer_url must look like https://<id>.tokens.sts.global.api.aws; copy the IssuerUrl output of the TokenBrokerFederation stack."
  }
}

variable "aws_role_arns" {
  description = "ARNs of the AWS roles allowed to federate (the JWT's sub). The demo's are arn:aws:iam::<ACCOUNT>:role/token-broker-demo-lambda and arn:aws:iam::<ACCOUNT>:role/token-broker-demo-ecs-task."
  type        = list(string)

  validation {
    condition     = length(var.aws_role_arns) > 0 && alltrue([for arn in var.aws_role_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$", arn))])
    error_message = "aws_role_arns must list at least one role ARN, arn:aws:iam::<12-digit account>:role/<name>."
  }

  # google.subject is mapped from the JWT's sub, the role ARN (federation.tf), and Google STS
  # refuses a google.subject over 127 bytes at every exchange. The ARN is ASCII (the rule above),
  # so its length in characters is its length in bytes.
  validation {
    condition     = alltrue([for arn in var.aws_role_arns : length(arn) <= 127])
    error_message = "Each of aws_role_arns must be at most 127 bytes: it becomes google.subject, which Google limits to 127 bytes; use a shorter role name or path."
  }

  # The roles become the attribute condition (federation.tf), which Google limits to 4096 characters.
  validation {
    condition     = length("assertion.sub in ${jsonencode(var.aws_role_arns)}") <= 4096
    error_message = "aws_role_arns make an attribute condition over Google's 4096 characters; admit fewer roles per provider."
  }
}

variable "role_grant_arns" {
  description = "Which of aws_role_arns get the data grants (or may impersonate) for every workload they run; null = all. Leave a role out to grant its functions by name (lambda_function_names) or its tasks by service tag (service_names) instead."
  type        = list(string)
  default     = null
}

variable "lambda_function_names" {
  description = "Lambda functions granted the data access (or impersonation) one by one, as principalSet://…/attribute.lambda_function/NAME: another function sharing their role gets nothing from it."
  type        = list(string)
  default     = []

  # The name is what the mapping extracts from lambda_source_function_arn, so a name Lambda
  # refuses could never match. Lambda names are 1..64 of these characters.
  validation {
    condition     = alltrue([for name in var.lambda_function_names : can(regex("^[A-Za-z0-9_-]{1,64}$", name))])
    error_message = "Each of lambda_function_names must be a Lambda function name: 1 to 64 letters, digits, hyphens or underscores (the name, not the ARN)."
  }
}

variable "service_names" {
  description = "Values of the request tag `service` (the broker's BROKER_TOKEN_TAGS=service=NAME) granted the data access, as principalSet://…/attribute.service/NAME. A tag separates workloads only as far as their roles' policies pin its values (sts:TagGetWebIdentityToken with aws:RequestTag/service)."
  type        = list(string)
  default     = []

  # STS accepts a tag value of at most 256 letters, separators, digits and _.:/=+-@; an empty
  # value is the mapping's "no tag", which must not be granted.
  validation {
    condition     = alltrue([for name in var.service_names : can(regex("^[\\p{L}\\p{Z}\\p{N}_.:/=+@-]{1,256}$", name))])
    error_message = "Each of service_names must be a tag value STS accepts: 1 to 256 letters, spaces, digits or _.:/=+-@."
  }
}

variable "pool_id" {
  description = "Workload identity pool id (the CDK context workloadIdentityPoolId)."
  type        = string
  default     = "aws-pool"
}

variable "provider_id" {
  description = "Workload identity pool provider id (the CDK context workloadIdentityProviderId)."
  type        = string
  default     = "aws-provider"
}

variable "service_account_id" {
  description = "If set, a service account with this id is created, the AWS roles may impersonate it, and the data grants go to it; if empty, the federated principals get the grants directly."
  type        = string
  default     = ""
}

variable "bucket_name" {
  description = "Name of the bucket the demo writes its objects to (globally unique)."
  type        = string
}

variable "dataset_id" {
  description = "BigQuery dataset of the demo."
  type        = string
  default     = "demo_dataset"
}

variable "table_id" {
  description = "BigQuery table of the demo, schema (timestamp TIMESTAMP, message STRING)."
  type        = string
  default     = "events"
}
