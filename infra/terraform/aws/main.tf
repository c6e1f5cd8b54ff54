# The AWS side of token-broker, for Terraform users: what the CDK constructs TokenBrokerLayer and
# LambdaTokenBroker (or TokenBrokerSidecar) do, minus the function itself. Google's side is
# infra/gcp; its provider_audience output is this module's audience.

locals {
  # The repository root (or the npm package's folder), three levels up from infra/terraform/aws.
  layers_directory = var.layers_directory != "" ? var.layers_directory : "${path.module}/../../../dist/layers"

  # `nodejs` runs on the function's own Node (22 or later); `standalone` carries Node 24 and runs
  # beside any runtime, so it declares no runtime list (one would only exclude runtimes it runs on).
  nodejs_runtimes = ["nodejs22.x", "nodejs24.x"]
  flavours        = ["nodejs", "standalone"]
  architectures   = ["x86_64", "arm64"]
  layers = {
    for pair in setproduct(local.flavours, local.architectures) :
    "${pair[0]}-${pair[1]}" => { flavour = pair[0], architecture = pair[1] }
  }
}

resource "aws_lambda_layer_version" "broker" {
  for_each = { for key, layer in local.layers : key => layer if var.publish_layers }

  layer_name               = "${var.layer_name_prefix}-${each.key}"
  description              = "token-broker Lambda extension, ${each.value.flavour} flavour, ${each.value.architecture}"
  filename                 = "${local.layers_directory}/token-broker-${each.key}.zip"
  source_code_hash         = filebase64sha256("${local.layers_directory}/token-broker-${each.key}.zip")
  compatible_architectures = [each.value.architecture]
  compatible_runtimes      = each.value.flavour == "nodejs" ? local.nodejs_runtimes : null
  license_info             = "Apache-2.0"
  # Functions deployed elsewhere may still use an older version: keep it, as the CDK construct does.
  skip_destroy = true
}

# The one permission the broker needs, narrowed by every condition key AWS documents for the
# action. sts:IdentityTokenAudience is multivalued: ForAllValues requires every requested audience
# to be ours, and Null = false that one is named at all (ForAllValues alone passes an empty set).
# The broker sends the algorithm and the duration on every call, so the policy pins both.
# The action has no resource type, hence Resource "*".
data "aws_iam_policy_document" "web_identity_token" {
  statement {
    sid       = "MintJwtForGoogleWorkloadIdentityFederation"
    effect    = "Allow"
    actions   = ["sts:GetWebIdentityToken"]
    resources = ["*"]

    condition {
      test     = "ForAllValues:StringEquals"
      variable = "sts:IdentityTokenAudience"
      values   = [var.audience]
    }
    condition {
      test     = "Null"
      variable = "sts:IdentityTokenAudience"
      values   = ["false"]
    }
    condition {
      test     = "StringEquals"
      variable = "sts:SigningAlgorithm"
      values   = [var.signing_algorithm]
    }
    condition {
      test     = "NumericLessThanEquals"
      variable = "sts:DurationSeconds"
      values   = [var.token_duration_seconds]
    }
  }

  # Only with token_tags: the permission to send them, exactly these keys (aws:TagKeys, ForAllValues:
  # no other) and each key's one value (aws:RequestTag/KEY), as the CDK constructs grant it.
  dynamic "statement" {
    for_each = length(var.token_tags) > 0 ? [var.token_tags] : []
    content {
      sid       = "TagJwtForGoogleWorkloadIdentityFederation"
      effect    = "Allow"
      actions   = ["sts:TagGetWebIdentityToken"]
      resources = ["*"]

      condition {
        test     = "ForAllValues:StringEquals"
        variable = "aws:TagKeys"
        values   = keys(statement.value)
      }
      dynamic "condition" {
        for_each = statement.value
        content {
          test     = "StringEquals"
          variable = "aws:RequestTag/${condition.key}"
          values   = [condition.value]
        }
      }
    }
  }
}

resource "aws_iam_role_policy" "web_identity_token" {
  name   = var.policy_name
  role   = var.role_name
  policy = data.aws_iam_policy_document.web_identity_token.json
}

locals {
  # The broker's settings; the optional ones only when given, so the broker keeps its defaults.
  broker_settings = {
    BROKER_AUDIENCE              = var.audience
    BROKER_AWS_TOKEN_DURATION    = tostring(var.token_duration_seconds)
    BROKER_AWS_SIGNING_ALGORITHM = var.signing_algorithm
  }
  optional_settings = {
    BROKER_SERVICE_ACCOUNT = var.service_account
    BROKER_PROJECT_ID      = var.project_id
    BROKER_SCOPES          = join(",", var.scopes)
    BROKER_LOG_LEVEL       = var.log_level
    BROKER_TOKEN_TAGS      = join(",", [for key, value in var.token_tags : "${key}=${value}"])
    BROKER_ACCESS_BOUNDARY = var.access_boundary
  }
  broker_environment = merge(local.broker_settings, { for name, value in local.optional_settings : name => value if value != "" })
  # Where Google SDKs find the broker: Go, Python, Java and Node read GCE_METADATA_HOST (or _IP),
  # the gcloud CLI GCE_METADATA_ROOT.
  workload_environment = {
    GCE_METADATA_HOST = "127.0.0.1:8181"
    GCE_METADATA_IP   = "127.0.0.1:8181"
    GCE_METADATA_ROOT = "127.0.0.1:8181"
  }
}
