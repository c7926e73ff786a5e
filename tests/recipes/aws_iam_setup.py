"""Creates, in a moto server that verifies signatures after its first 4 actions, an IAM
user allowed to assume a role, then assumes it twice (two session names); prints the
credentials as JSON."""

import json
import sys

import boto3

url = sys.argv[1]
kw = dict(endpoint_url=url, region_name="us-east-1",
          aws_access_key_id="AKIAIOSFODNN7EXAMPLE", aws_secret_access_key="setup")
iam = boto3.client("iam", **kw)
iam.create_user(UserName="alice")  # 1
key = iam.create_access_key(UserName="alice")["AccessKey"]  # 2
iam.put_user_policy(  # 3
    UserName="alice",
    PolicyName="assume",
    PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]}),
)
iam.create_role(  # 4
    RoleName="orders-lambda",
    AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:user/alice"},
         "Action": "sts:AssumeRole"}]}),
)
sts = boto3.client("sts", endpoint_url=url, region_name="us-east-1",
                   aws_access_key_id=key["AccessKeyId"],
                   aws_secret_access_key=key["SecretAccessKey"])
role = sts.assume_role(RoleArn="arn:aws:iam::123456789012:role/orders-lambda",
                       RoleSessionName="checkout-fn")["Credentials"]
# The same role under another session name, as a caller rotating names would.
rotated = sts.assume_role(RoleArn="arn:aws:iam::123456789012:role/orders-lambda",
                          RoleSessionName="rotated-4711")["Credentials"]
print(json.dumps({
    "user": {"AWS_ACCESS_KEY_ID": key["AccessKeyId"],
             "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]},
    "role": {"AWS_ACCESS_KEY_ID": role["AccessKeyId"],
             "AWS_SECRET_ACCESS_KEY": role["SecretAccessKey"],
             "AWS_SESSION_TOKEN": role["SessionToken"]},
    "role_rotated": {"AWS_ACCESS_KEY_ID": rotated["AccessKeyId"],
                     "AWS_SECRET_ACCESS_KEY": rotated["SecretAccessKey"],
                     "AWS_SESSION_TOKEN": rotated["SessionToken"]},
}))
