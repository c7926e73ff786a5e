# The broker's own role (IRSA) and one connect role per target. The broker assumes the
# connect role per caller (AssumeRole with the caller as SourceIdentity and a session
# policy narrowed to one DB user), so CloudTrail names the caller and a token can only
# ever connect as the DB user the grant allowed.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  account   = data.aws_caller_identity.current.account_id
  partition = data.aws_partition.current.partition
}

# --- The broker ---------------------------------------------------------------------

data "aws_iam_policy_document" "broker_trust" {
  statement {
    sid     = "IRSA"
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [var.oidc_provider_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "${var.oidc_provider_url}:sub"
      values   = ["system:serviceaccount:${var.namespace}:${var.service_account}"]
    }
    condition {
      test     = "StringEquals"
      variable = "${var.oidc_provider_url}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "broker" {
  name                 = var.name
  description          = "rds-token-broker: assumes the per-target connect roles"
  assume_role_policy   = data.aws_iam_policy_document.broker_trust.json
  max_session_duration = 3600
  tags                 = var.tags
}

data "aws_iam_policy_document" "broker" {
  statement {
    sid       = "AssumeConnectRoles"
    actions   = ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"]
    resources = [for r in aws_iam_role.connect : r.arn]
  }
}

resource "aws_iam_role_policy" "broker" {
  name   = "assume-connect-roles"
  role   = aws_iam_role.broker.id
  policy = data.aws_iam_policy_document.broker.json
}

# --- One connect role per target ------------------------------------------------------

data "aws_iam_policy_document" "connect_trust" {
  statement {
    sid     = "TheBrokerOnly"
    actions = ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"]
    principals {
      type        = "AWS"
      identifiers = [aws_iam_role.broker.arn]
    }
  }
}

resource "aws_iam_role" "connect" {
  for_each             = var.targets
  name                 = "${var.name}-connect-${each.key}"
  description          = "rds-db:connect to ${each.key}, assumed by rds-token-broker per caller"
  assume_role_policy   = data.aws_iam_policy_document.connect_trust.json
  max_session_duration = 3600
  tags                 = var.tags
}

data "aws_iam_policy_document" "connect" {
  for_each = var.targets
  statement {
    sid     = "ConnectAsTheTargetsDbUsers"
    actions = ["rds-db:connect"]
    resources = [
      for u in each.value.db_users :
      "arn:${local.partition}:rds-db:${each.value.region}:${local.account}:dbuser:${each.value.resource_id}/${u}"
    ]
  }
}

resource "aws_iam_role_policy" "connect" {
  for_each = var.targets
  name     = "rds-db-connect"
  role     = aws_iam_role.connect[each.key].id
  policy   = data.aws_iam_policy_document.connect[each.key].json
}
