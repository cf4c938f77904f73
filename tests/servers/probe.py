"""Small probes scripts/test uses on the servers it starts (standard library only).

    probe.py dynamodb URL          one ListTables request; exit 0 if DynamoDB answers
    probe.py secretsmanager URL    one ListSecrets request; exit 0 if Secrets Manager answers
    probe.py ready-file FILE       print "endpoint accessKey resourceId" from callsign-local's
                                   ready file; exit 1 while it is missing or incomplete

The AWS requests carry dummy credentials: DynamoDB Local and moto read the access key id
and region from the Authorization header but do not check the signature.
"""

import json
import sys
import urllib.request

DUMMY_AUTH = (
    "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/{service}/aws4_request, "
    "SignedHeaders=host, Signature=x"
)


def aws_json(url, service, target, content_type):
    request = urllib.request.Request(
        url,
        data=b"{}",
        method="POST",
        headers={
            "Content-Type": content_type,
            "X-Amz-Target": target,
            "Authorization": DUMMY_AUTH.format(service=service),
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read() or b"{}")


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    kind, arg = argv[1], argv[2]
    if kind == "dynamodb":
        status, body = aws_json(
            arg, "dynamodb", "DynamoDB_20120810.ListTables", "application/x-amz-json-1.0"
        )
        return 0 if status == 200 and "TableNames" in body else 1
    if kind == "secretsmanager":
        status, body = aws_json(
            arg, "secretsmanager", "secretsmanager.ListSecrets", "application/x-amz-json-1.1"
        )
        return 0 if status == 200 and "SecretList" in body else 1
    if kind == "ready-file":
        try:
            with open(arg, encoding="utf-8") as f:
                ready = json.load(f)
            fields = [ready["endpoint"], ready["accessKey"], ready["resourceId"]]
        except (OSError, ValueError, KeyError, TypeError):
            return 1
        if not all(isinstance(v, str) and v and " " not in v for v in fields):
            return 1
        print(*fields)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
