"""An identity provider's provisioning cycle against the directory
service's SCIM endpoint, for tests/tests/scim.rs: a real SCIM client
(scim2-client, which validates every answer against the schemas the
server publishes) for discovery, probes, creates, replaces, reads and
deletes, and the exact PATCH bodies Okta or Microsoft Entra ID send
(`dialect`). After each change the user's request at the gateway is
polled until the gateway enforces it; the time it took is reported.

argv[1]: a JSON object — scim (base URL), token, gateway (URL of a path
the new user may read once in the group), user_token (the user's bearer
token at the gateway), admin_token and directory (an owner's token and the
service's base URL, to grant the SCIM-made group a role), user, dialect
("okta" or "entra"), bound_ms. Prints one JSON object.
"""
import json
import sys
import time

import httpx2
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_models import SearchRequest

cfg = json.loads(sys.argv[1])
user_name, dialect, bound = cfg["user"], cfg["dialect"], cfg["bound_ms"] / 1000
auth = {"Authorization": "Bearer " + cfg["token"]}
http = httpx2.Client(base_url=cfg["scim"], headers=auth, timeout=10)
scim = SyncSCIMClient(http)
scim.discover()
User = scim.get_resource_model("User")
Group = scim.get_resource_model("Group")
report = {"steps": [], "enforced_ms": {}}


def step(name, detail=None):
    report["steps"].append({"step": name, "detail": detail})


def fail(message):
    report["error"] = message
    print(json.dumps(report))
    sys.exit(1)


def gateway_status():
    r = httpx2.get(cfg["gateway"], headers={"Authorization": "Bearer " + cfg["user_token"]}, timeout=10)
    reason = r.headers.get("x-portcullis-reason")
    return r.status_code, reason


def enforced(name, want_status, want_reason=None):
    start = time.monotonic()
    while True:
        status, reason = gateway_status()
        if status == want_status and (want_reason is None or reason == want_reason):
            report["enforced_ms"][name] = round((time.monotonic() - start) * 1000, 1)
            return
        if time.monotonic() - start > max(bound * 10, 10):
            fail(f"{name}: the gateway still answers {status} {reason}, not {want_status} {want_reason}")
        time.sleep(0.005)


def patch(path, operations):
    body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": operations}
    r = http.patch(path, json=body, headers={"Content-Type": "application/scim+json"})
    if r.status_code != 200:
        fail(f"PATCH {path}: {r.status_code} {r.text}")
    return r.json()


# The probe before a create (Okta: userName eq; Entra: the same, with
# different case).
probe_name = user_name if dialect == "okta" else user_name.upper()
found = scim.query(User, query_parameters=SearchRequest(filter=f'userName eq "{probe_name}"'))
if found.total_results != 0:
    fail(f"probe found {found.total_results}")
step("probe", found.total_results)
status, reason = gateway_status()
if status != 403:
    fail(f"before provisioning the gateway answered {status} {reason}")

user = scim.create(
    User.model_validate(
        {
            "userName": user_name,
            "externalId": "ext-" + dialect,
            "name": {"givenName": "Jo", "familyName": dialect.title()},
            "displayName": "Jo " + dialect.title(),
            "emails": [{"value": user_name, "type": "work"}],
            "active": True,
        }
    )
)
step("created", user.id)
found = scim.query(User, query_parameters=SearchRequest(filter=f'userName eq "{probe_name}"'))
if found.total_results != 1 or found.resources[0].id != user.id:
    fail(f"the probe after the create found {found.total_results}")
by_external = scim.query(User, query_parameters=SearchRequest(filter=f'externalId eq "ext-{dialect}"'))
if by_external.total_results != 1:
    fail("externalId probe")

group = scim.create(Group.model_validate({"displayName": f"Sales readers ({dialect})"}))
step("group created", group.id)
# An owner grants the SCIM-made group reader on env/prod (outside SCIM).
r = httpx2.post(
    cfg["directory"] + "/v1/directory/grants",
    headers={"Authorization": "Bearer " + cfg["admin_token"]},
    json={"grant": {"principal": f"group/{group.id}", "role": "reader", "on": "env/prod"}},
    timeout=10,
)
if r.status_code != 200:
    fail(f"grant: {r.status_code} {r.text}")

add = {"op": "add", "path": "members", "value": [{"value": user.id}]}
if dialect == "entra":
    add["op"] = "Add"
patch(f"/Groups/{group.id}", [add])
step("member added")
enforced("membership_added", 200)

# A profile update, as the client builds it (a PUT of the whole user).
user = scim.query(User, user.id)
user.display_name = "Jo " + dialect.title() + " (renamed)"
user = scim.replace(user)
if user.display_name != "Jo " + dialect.title() + " (renamed)":
    fail("replace did not take")
step("replaced", user.display_name)

# Deprovisioning as each IdP does it.
if dialect == "okta":
    patch(f"/Users/{user.id}", [{"op": "replace", "value": {"active": False}}])
else:
    patch(f"/Users/{user.id}", [{"op": "Replace", "path": "active", "value": "False"}])
enforced("deactivated", 403, "account_deactivated")
user = scim.query(User, user.id)
if user.active is not False:
    fail("a deactivated user reads active")
step("deactivated, still readable", user.active)

if dialect == "okta":
    patch(f"/Users/{user.id}", [{"op": "replace", "value": {"active": True}}])
else:
    patch(f"/Users/{user.id}", [{"op": "Replace", "path": "active", "value": "True"}])
enforced("reactivated", 200)

if dialect == "okta":
    patch(f"/Groups/{group.id}", [{"op": "remove", "path": f'members[value eq "{user.id}"]'}])
else:
    patch(f"/Groups/{group.id}", [{"op": "Remove", "path": "members", "value": [{"value": user.id}]}])
enforced("membership_removed", 403)
step("member removed")

scim.delete(User, user.id)
enforced("deleted", 403)
r = http.get(f"/Users/{user.id}")
if r.status_code != 404:
    fail(f"a deleted user answers {r.status_code}")
scim.delete(Group, group.id)
step("deleted")
print(json.dumps(report))
