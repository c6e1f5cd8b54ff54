variable "audience" {
  description = "The Google workload identity provider audience, //iam.googleapis.com/projects/<NUMBER>/locations/global/workloadIdentityPools/<POOL>/providers/<PROVIDER> (infra/gcp's provider_audience output). The broker requests JWTs for it, and the role may mint them for nothing else."
  type        = string

  validation {
    condition     = can(regex("^//iam\\.googleapis\\.com/projects/[0-9]{1,20}/locations/global/workloadIdentityPools/[a-z0-9-]{4,32}/providers/[a-z0-9-]{4,32}$", var.audience))
    error_message = "audience must be //iam.googleapis.com/projects/<NUMBER>/locations/global/workloadIdentityPools/<POOL>/providers/<PROVIDER>, with the project number (not its id); copy infra/gcp's provider_audience output."
  }
}

variable "role_name" {
  description = "Name (not ARN) of the IAM role the broker runs as: the Lambda function's execution role or the ECS task role. It gets one inline policy, the audience-pinned sts:GetWebIdentityToken statement."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9+=,.@_-]{1,64}$", var.role_name))
    error_message = "role_name must be a role's name, not its ARN (for arn:aws:iam::123456789012:role/my-role pass my-role)."
  }
}

variable "service_account" {
  description = "Service account the broker impersonates (BROKER_SERVICE_ACCOUNT); empty to act as the federated principal itself."
  type        = string
  default     = ""

  validation {
    condition     = var.service_account == "" || can(regex("^[a-z0-9][a-z0-9._-]{0,62}@[a-z0-9][a-z0-9.-]*\\.gserviceaccount\\.com$", var.service_account))
    error_message = "service_account must be an e-mail address ending in .gserviceaccount.com (infra/gcp's service_account_email output), or empty."
  }
}

variable "project_id" {
  description = "Google project id the metadata endpoint reports (BROKER_PROJECT_ID); empty to leave it unset."
  type        = string
  default     = ""
}

variable "scopes" {
  description = "Default OAuth scopes of the tokens served (BROKER_SCOPES); empty for the broker's default, cloud-platform."
  type        = list(string)
  default     = []
}

variable "log_level" {
  description = "The broker's log level (BROKER_LOG_LEVEL); empty for its default, info."
  type        = string
  default     = ""

  validation {
    condition     = contains(["", "fatal", "error", "warn", "info", "debug", "trace", "silent"], var.log_level)
    error_message = "log_level must be one of fatal, error, warn, info, debug, trace, silent (or empty)."
  }
}

variable "signing_algorithm" {
  description = "Algorithm AWS signs the JWT with (BROKER_AWS_SIGNING_ALGORITHM); the policy allows only this one."
  type        = string
  default     = "ES384"

  validation {
    condition     = contains(["ES384", "RS256"], var.signing_algorithm)
    error_message = "signing_algorithm must be ES384 or RS256."
  }
}

variable "token_duration_seconds" {
  description = "Lifetime of the AWS JWT the broker requests (BROKER_AWS_TOKEN_DURATION); the policy allows no longer."
  type        = number
  default     = 300

  validation {
    condition     = var.token_duration_seconds >= 60 && var.token_duration_seconds <= 3600 && floor(var.token_duration_seconds) == var.token_duration_seconds
    error_message = "token_duration_seconds must be a whole number from 60 to 3600."
  }
}

variable "token_tags" {
  description = "Tags the broker passes to GetWebIdentityToken (BROKER_TOKEN_TAGS), e.g. { service = \"orders\" }: the JWT's request_tags, which infra/gcp maps (attribute.service). The role is then allowed sts:TagGetWebIdentityToken with exactly these keys and values; empty = no tags and no tag permission."
  type        = map(string)
  default     = {}

  # STS's limits on Tags, as the broker checks them at start-up: at most 50, keys unique whatever
  # their case, keys 1..128 and values 0..256 letters, spaces, digits or _.:/+-@ (values also =).
  validation {
    condition     = length(var.token_tags) <= 50 && length(distinct([for key in keys(var.token_tags) : lower(key)])) == length(var.token_tags)
    error_message = "token_tags may hold at most 50 tags, with keys that differ in more than case."
  }
  validation {
    condition     = alltrue([for key, value in var.token_tags : can(regex("^[\\p{L}\\p{Z}\\p{N}_.:/+@-]{1,128}$", key)) && can(regex("^[\\p{L}\\p{Z}\\p{N}_.:/=+@-]{0,256}$", value)) && trimspace(key) == key && trimspace(value) == value])
    error_message = "Each of token_tags must have a key of 1 to 128 and a value of at most 256 letters, spaces, digits or _.:/+-@ (values also =), without spaces around them."
  }
}

variable "access_boundary" {
  description = "A Credential Access Boundary on every token that reaches Cloud Storage (BROKER_ACCESS_BOUNDARY): comma-separated rules BUCKET[/PREFIX]=ROLE, ROLE a roles/storage.* role without its prefix, at most 10, e.g. \"demo-bucket/in/=objectCreator\"; empty = no boundary. The broker checks the rules at start-up."
  type        = string
  default     = ""

  validation {
    condition     = var.access_boundary == "" || length(split(",", var.access_boundary)) <= 10
    error_message = "access_boundary holds at most 10 rules."
  }
  validation {
    condition     = var.access_boundary == "" || alltrue([for rule in split(",", var.access_boundary) : can(regex("^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9](/.*)?=[A-Za-z]+$", trimspace(rule)))])
    error_message = "Each rule of access_boundary is BUCKET[/PREFIX]=ROLE, e.g. demo-bucket/in/=objectCreator."
  }
}

variable "layers_directory" {
  description = "Folder with the four zips npm run build:layer writes (token-broker-{nodejs,standalone}-{x86_64,arm64}.zip); empty for dist/layers of this repository, or of the npm package when the module is used from node_modules/token-broker."
  type        = string
  default     = ""
}

variable "publish_layers" {
  description = "Publish the four layer versions; false where the broker runs as a container (ECS, Kubernetes): the module then grants the role its permission and outputs the environment, and needs no layer zips."
  type        = bool
  default     = true
}

variable "layer_name_prefix" {
  description = "Layer names are <prefix>-<flavour>-<architecture>."
  type        = string
  default     = "token-broker"
}

variable "policy_name" {
  description = "Name of the role's inline policy; give each use of the module on one role its own."
  type        = string
  default     = "token-broker-web-identity-token"
}
