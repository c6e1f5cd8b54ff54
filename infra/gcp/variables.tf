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
