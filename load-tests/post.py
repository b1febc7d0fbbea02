#!/usr/bin/env python3
"""Posts request bodies from a corpus file (one JSON body per line, from gen.py) one after the
other over one keep-alive connection, for the unmeasured parts of compare.sh: the warm-up of
scenario 4 and the fill of the RSS measurement. Standard library only.

Every @@N@@ in a body becomes TOKEN.<request number>, so a file of 40 templates can post any
number of distinct alerts. Fails (exit 1) on the first answer that is not 2xx.

Usage: post.py URL FILE [REQUESTS] [TOKEN]
  REQUESTS  how many requests to send, cycling through the file (default: one per line)
Prints: posted requests=<n> items=<alerts or events> seconds=<s>
"""

import http.client
import json
import sys
import time
import urllib.parse

PLACEHOLDER = "@@N@@"


def main():
    url, path = sys.argv[1], sys.argv[2]
    bodies = [line.rstrip("\n") for line in open(path) if line.strip()]
    count = int(sys.argv[3]) if len(sys.argv) > 3 else len(bodies)
    token = sys.argv[4] if len(sys.argv) > 4 else "post"
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    target = u.path + ("?" + u.query if u.query else "")
    headers = {"Content-Type": "application/json"}
    items = 0
    start = time.monotonic()
    for n in range(count):
        body = bodies[n % len(bodies)]
        if PLACEHOLDER in body:
            body = body.replace(PLACEHOLDER, "%s.%d" % (token, n))
        conn.request("POST", target, body=body.encode(), headers=headers)
        resp = conn.getresponse()
        answer = resp.read()
        if resp.status // 100 != 2:
            sys.exit("post.py: request %d to %s answered %d: %s" % (n, url, resp.status, answer[:300]))
        parsed = json.loads(body)
        items += len(parsed) if isinstance(parsed, list) else len(parsed.get("alerts", [parsed]))
    conn.close()
    print("posted requests=%d items=%d seconds=%.2f" % (count, items, time.monotonic() - start))


if __name__ == "__main__":
    main()
