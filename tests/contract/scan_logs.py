"""The logs of a whole test run hold no secret, and hold the signals they should.

Reads every server log of the run (LOG_DIR: the local servers, cargo lambda watch and the
functions it ran, the test servers) and fails on:
* an access key of any server of the run (their ready files in RUN_DIR name them),
  outside the local server's start-up banner, which prints it on purpose;
* anything shaped like a JWT (a token), an HMAC `Signature=`, a stored private key;
and requires audit lines from the local server and EMF metric documents from the Lambda
functions, so that the scan cannot pass on empty logs.

Usage: scan_logs.py LOG_DIR RUN_DIR
"""

import json
import pathlib
import re
import sys

JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")
PATTERNS = {
    "a JWT": JWT,
    "an HMAC signature": re.compile(r"Signature=[A-Za-z0-9+/]{8,}"),
    "a stored private key": re.compile(r"privateKey|PRIVATE KEY"),
}


# The local server prints its access key once, on purpose, for the developer to copy:
# that banner (stdout) is not a log line.
BANNER = re.compile(r"^callsign local server$.*?^Ctrl-C stops the server\.$", re.M | re.S)


def main(log_dir, run_dir):
    logs = {
        p: BANNER.sub("", p.read_text(errors="replace"))
        for p in sorted(pathlib.Path(log_dir).rglob("*.log"))
    }
    keys = set()
    for ready in pathlib.Path(run_dir).glob("*.ready.json"):
        key = json.loads(ready.read_text()).get("accessKey")
        if key:
            keys.add(key)
    problems = []
    for path, text in logs.items():
        for key in keys:
            if key in text:
                problems.append(f"{path}: an access key")
        for what, pattern in PATTERNS.items():
            match = pattern.search(text)
            if match:
                problems.append(f"{path}: {what} ({match.group(0)[:12]}…)")
    everything = "\n".join(logs.values())
    if "callsign::audit" not in everything:
        problems.append("no audit line in any log: is the audit log wired?")
    if '"CloudWatchMetrics"' not in everything or '"TokensIssued"' not in everything:
        problems.append("no EMF metric document from the Lambda functions")
    for problem in problems:
        print(problem)
    print(f"log scan: {len(logs)} logs, {len(keys)} access keys looked for, {len(problems)} problem(s)")
    return 1 if problems or not keys else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
