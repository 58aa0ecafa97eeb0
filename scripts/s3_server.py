"""An S3 server on loopback for featurecraft's tests: moto's, from PyPI.

Starts moto's S3 server on 127.0.0.1 at a free port, creates the buckets named on the
command line, prints the endpoint URL on one line, and serves until its standard input
closes (the test that started it ended, however it ended). Run through scripts/s3-server,
which installs moto into a virtual environment of its own.
"""

import sys

from moto.server import ThreadedMotoServer
import boto3


def main() -> None:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="featurecraft",
        aws_secret_access_key="featurecraft",
        region_name="us-east-1",
    )
    for bucket in sys.argv[1:]:
        client.create_bucket(Bucket=bucket)
    print(endpoint, flush=True)
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    main()
