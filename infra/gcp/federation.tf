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
  attribute_mapping = {
    "google.subject" = "assertion.sub"
  }
  # The issuer is per account, but pin the roles too: any principal of the account could mint a JWT.
  attribute_condition = "assertion.sub in ${jsonencode(var.aws_role_arns)}"
  oidc {
    issuer_uri = var.aws_issuer_url
  }
}

locals {
  # principal://iam.googleapis.com/projects/<NUMBER>/locations/global/workloadIdentityPools/<POOL>/subject/<ROLE ARN>
  principal_prefix     = "principal://iam.googleapis.com/${google_iam_workload_identity_pool.aws.name}/subject/"
  federated_principals = { for arn in var.aws_role_arns : arn => "${local.principal_prefix}${arn}" }
  # //iam.googleapis.com/projects/<NUMBER>/locations/global/workloadIdentityPools/<POOL>/providers/<PROVIDER>
  provider_audience = "//iam.googleapis.com/${google_iam_workload_identity_pool_provider.aws.name}"

  impersonate            = var.service_account_id != ""
  service_account_email  = "${var.service_account_id}@${var.project_id}.iam.gserviceaccount.com"
  broker_service_account = local.impersonate ? local.service_account_email : ""
  # Keys are known at plan time (for_each needs that); the principals are known only after apply.
  data_writers = local.impersonate ? tomap({ service_account = "serviceAccount:${local.service_account_email}" }) : tomap(local.federated_principals)
}

resource "google_service_account" "broker" {
  count        = local.impersonate ? 1 : 0
  account_id   = var.service_account_id
  display_name = "token-broker demo"
  description  = "Impersonated by the AWS roles through the token broker"
}

resource "google_service_account_iam_member" "federated_user" {
  for_each           = local.impersonate ? local.federated_principals : {}
  service_account_id = google_service_account.broker[0].name
  role               = "roles/iam.workloadIdentityUser"
  member             = each.value
}
