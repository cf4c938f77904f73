"""Prints template.yaml as SAM's own transform (aws-sam-translator) turns it into plain
CloudFormation: the roles SAM makes and the policies it adds for each event. Run by
test_template.py with the Python of `.venv-sam/`, where the SAM CLI and its translator
are (their pydantic pin differs from the test venv's).

    python sam_transform.py TEMPLATE
"""

import json
import os
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class NoManagedPolicyNames:
    """Every policy in the template is inline or an ARN: no name to look up in IAM."""

    def load(self):
        return {}


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        template = yaml_parse(f.read())
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = "s3://bucket/key"  # as `sam package` leaves it
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # the translator needs one
    json.dump(transform(template, {}, NoManagedPolicyNames()), sys.stdout)


if __name__ == "__main__":
    main()
