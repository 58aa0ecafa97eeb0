"""Turns on IAM authentication in a running moto S3 server (scripts/s3_server.py), for the
tests of wrong credentials.

Creates two IAM users while moto still accepts any request: `writer`, allowed every S3
action, and `nobody`, allowed nothing; then makes moto check every later request's
signature and permissions (its `/moto-api/reset-auth`). Prints their keys as one JSON
line: {"writer": {"key": …, "secret": …}, "nobody": {…}}. Run with the Python of
target/s3-venv: python s3_iam.py ENDPOINT
"""

import json
import sys
import urllib.request

import boto3

ALLOW_S3 = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
    }
)


def user(iam, name: str, policy: str | None) -> dict:
    iam.create_user(UserName=name)
    if policy is not None:
        iam.put_user_policy(UserName=name, PolicyName="s3", PolicyDocument=policy)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"key": key["AccessKeyId"], "secret": key["SecretAccessKey"]}


def main() -> None:
    endpoint = sys.argv[1]
    iam = boto3.client(
        "iam",
        endpoint_url=endpoint,
        aws_access_key_id="setup",
        aws_secret_access_key="setup",
        region_name="us-east-1",
    )
    users = {"writer": user(iam, "writer", ALLOW_S3), "nobody": user(iam, "nobody", None)}
    request = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth",
        data=b"0",
        method="POST",
        headers={"Content-Type": "text/plain"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()
    print(json.dumps(users), flush=True)


if __name__ == "__main__":
    main()
