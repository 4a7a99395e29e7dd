"""Test helper: sets up and reads the moto server the AWS output tests run against.

usage: aws_helper.py ENDPOINT setup BUCKET [STREAM]
       aws_helper.py ENDPOINT objects BUCKET      -> JSON lines {"key": ..., "body_b64": ...}
"""
import base64
import json
import sys

import boto3

endpoint, command, bucket = sys.argv[1], sys.argv[2], sys.argv[3]
session = boto3.session.Session(
    aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
)
s3 = session.client("s3", endpoint_url=endpoint)

if command == "setup":
    s3.create_bucket(Bucket=bucket)
    if len(sys.argv) > 4:
        firehose = session.client("firehose", endpoint_url=endpoint)
        firehose.create_delivery_stream(
            DeliveryStreamName=sys.argv[4],
            DeliveryStreamType="DirectPut",
            ExtendedS3DestinationConfiguration={
                "RoleARN": "arn:aws:iam::123456789012:role/firehose",
                "BucketARN": f"arn:aws:s3:::{bucket}",
            },
        )
elif command == "objects":
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            print(json.dumps({"key": obj["Key"], "body_b64": base64.b64encode(body).decode()}))
else:
    sys.exit(f"unknown command {command}")
