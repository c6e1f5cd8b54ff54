data "google_project" "this" {
  project_id = var.project_id
}

resource "google_iam_workload_identity_pool" "aws" {
  workload_identity_pool_id = var.pool_id
  display_name              = "AWS workloads"
  description               = "AWS roles that reach Google through the token broker"
  depends_on                = [google_project_service.enabled]
}

# Trusts the JWTs AWS STS signs for this account (GetWebIdentityToken). The audience is not set:
# Google then accepts exactly this provider's own name, which is what the broker requests.
resource "google_iam_workload_identity_pool_provider" "aws" {
  workload_identity_pool_id          = google_iam_workload_identity_pool.aws.workload_identity_pool_id
  workload_identity_pool_provider_id = var.provider_id
  display_name                       = "AWS outbound federation"
  # google.subject is the role ARN; attribute.lambda_function the calling function's name and
  # attribute.service the `service` request tag, '' without that claim (word for word as the local
  # cloud's provider). With the variables' checks they stay far inside Google's 8 KB in all.
  attribute_mapping = {
    "google.subject"            = "assertion.sub"
    "attribute.lambda_function" = "has(assertion['https://sts.amazonaws.com/'].lambda_source_function_arn) ? assertion['https://sts.amazonaws.com/'].lambda_source_function_arn.extract(':function:{name}') : ''"
    "attribute.service"         = "has(assertion['https://sts.amazonaws.com/'].request_tags) && has(assertion['https://sts.amazonaws.com/'].request_tags.service) ? assertion['https://sts.amazonaws.com/'].request_tags.service : ''"
  }
  # The issuer is per account, but pin the roles too: any principal of the account could mint a JWT.
  attribute_condition = "assertion.sub in ${jsonencode(var.aws_role_arns)}"
  oidc {
    issuer_uri = var.aws_issuer_url
  }

  lifecycle {
    precondition {
      condition     = alltrue([for arn in local.role_grant_arns : contains(var.aws_role_arns, arn)])
      error_message = "role_grant_arns may only name roles of aws_role_arns (the roles the provider admits)."
    }
  }
}

locals {
  # principal://iam.googleapis.com/projects/<NUMBER>/locations/global/workloadIdentityPools/<POOL>/subject/<ROLE ARN>
  principal_prefix     = "principal://iam.googleapis.com/${google_iam_workload_identity_pool.aws.name}/subject/"
  federated_principals = { for arn in var.aws_role_arns : arn => "${local.principal_prefix}${arn}" }
  # //iam.googleapis.com/projects/<NUMBER>/locations/global/workloadIdentityPools/<POOL>/providers/<PROVIDER>
  provider_audience = "//iam.googleapis.com/${google_iam_workload_identity_pool_provider.aws.name}"

  # principalSet://iam.googleapis.com/projects/<NUMBER>/locations/global/workloadIdentityPools/<POOL>
  pool_principal_set = "principalSet://iam.googleapis.com/${google_iam_workload_identity_pool.aws.name}"
  role_grant_arns    = var.role_grant_arns == null ? var.aws_role_arns : var.role_grant_arns
  # Who gets the data grants (with impersonation: may impersonate): roles, functions, services.
  # Keys are known at plan time (for_each needs that); the principals only after apply.
  granted_principals = merge(
    { for arn in local.role_grant_arns : arn => "${local.principal_prefix}${arn}" },
    { for name in var.lambda_function_names : "function:${name}" => "${local.pool_principal_set}/attribute.lambda_function/${name}" },
    { for name in var.service_names : "service:${name}" => "${local.pool_principal_set}/attribute.service/${name}" },
  )

  impersonate            = var.service_account_id != ""
  service_account_email  = "${var.service_account_id}@${var.project_id}.iam.gserviceaccount.com"
  broker_service_account = local.impersonate ? local.service_account_email : ""
  data_writers           = local.impersonate ? tomap({ service_account = "serviceAccount:${local.service_account_email}" }) : local.granted_principals
}

resource "google_service_account" "broker" {
  count        = local.impersonate ? 1 : 0
  account_id   = var.service_account_id
  display_name = "token-broker demo"
  description  = "Impersonated by the AWS roles through the token broker"
}

resource "google_service_account_iam_member" "federated_user" {
  for_each           = local.impersonate ? local.granted_principals : {}
  service_account_id = google_service_account.broker[0].name
  role               = "roles/iam.workloadIdentityUser"
  member             = each.value
}
