"""scim2-tester (the python-scim project's SCIM conformance checker) against
a SCIM endpoint, for tests/tests/scim.rs.

argv: the SCIM base URL, the bearer token. Prints each check with its
status; exits 1 when any is an ERROR or CRITICAL (a MUST of RFC 7643/7644
broken), 0 otherwise.
"""
import sys

import httpx2
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

base, token = sys.argv[1:3]
client = SyncSCIMClient(httpx2.Client(base_url=base, headers={"Authorization": "Bearer " + token}, timeout=10))
results = check_server(client)
bad = [r for r in results if r.status in (Status.ERROR, Status.CRITICAL)]
for r in results:
    where = f"[{r.resource_type}] " if r.resource_type else ""
    print(f"{r.status.name:10} {where}{r.title}: {r.reason or ''}")
print(f"{len(results)} checks, {len(bad)} failed")
sys.exit(1 if bad or not results else 0)
