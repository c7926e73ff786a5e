output "broker_role_arn" {
  description = "For the service account's eks.amazonaws.com/role-arn annotation."
  value       = aws_iam_role.broker.arn
}

output "connect_role_arns" {
  description = "Per target: its role_arn in the broker's configuration."
  value       = { for k, r in aws_iam_role.connect : k => r.arn }
}
