"""Authenticate to rds-token-broker with this process's AWS identity (Lambda, ECS, EC2):
no IdP and no secret sent, only a signed sts:GetCallerIdentity request that the broker
forwards to STS. SERVER_ID is the broker's aws.iam_server_id."""

import base64
import json

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

GET_CALLER_IDENTITY = "Action=GetCallerIdentity&Version=2011-06-15"


def aws_iam_authorization(server_id, sts_url="https://sts.amazonaws.com/", region="us-east-1"):
    """The value of the Authorization header for one request to the broker."""
    credentials = botocore.session.get_session().get_credentials().get_frozen_credentials()
    request = AWSRequest(
        method="POST",
        url=sts_url,
        data=GET_CALLER_IDENTITY,
        headers={
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            "X-RDS-Token-Broker-Server-ID": server_id,  # binds the signature to this broker
        },
    )
    SigV4Auth(credentials, "sts", region).add_auth(request)
    signed = {
        "method": "POST",
        "url": sts_url,
        "headers": dict(request.headers.items()),
        "body": GET_CALLER_IDENTITY,
    }
    return "AWS-IAM " + base64.b64encode(json.dumps(signed).encode()).decode()
