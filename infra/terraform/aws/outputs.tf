output "layer_arns" {
  description = "Layer version ARNs by <flavour>-<architecture>: nodejs-x86_64, nodejs-arm64, standalone-x86_64, standalone-arm64."
  value       = { for key, layer in aws_lambda_layer_version.broker : key => layer.arn }
}

output "nodejs_runtimes" {
  description = "Runtimes that take the nodejs flavour; every other runtime takes standalone."
  value       = local.nodejs_runtimes
}

output "environment" {
  description = "The variables to set on a function (or container) of any language: the broker's settings and where its Google SDKs find it."
  value       = merge(local.broker_environment, local.workload_environment)
}

output "node_environment" {
  description = "environment plus METADATA_SERVER_DETECTION, which spares Node's gcp-metadata its probe for a metadata server; for Node functions."
  value       = merge(local.broker_environment, local.workload_environment, { METADATA_SERVER_DETECTION = "assume-present" })
}

output "service_names" {
  description = "The value of the `service` tag of token_tags, as a list for infra/gcp's service_names (its principalSet://…/attribute.service/NAME grant); empty without one."
  value       = [for key, value in var.token_tags : value if key == "service"]
}

output "policy_json" {
  description = "The sts:GetWebIdentityToken policy attached to the role (with token_tags, the sts:TagGetWebIdentityToken statement too), for review."
  value       = data.aws_iam_policy_document.web_identity_token.json
}
