"""Drive the audex Marketo simulator with marketorestpython, Marketo's most
used Python client, as evidence that the simulator speaks Marketo's protocol.

Usage: crosscheck.py BASE_URL   (e.g. http://127.0.0.1:8080)
Prints one line per check and a final "N passed, M failed"; exits non-zero
on any failure.
"""

import json
import os
import sys
import tempfile
import time
import traceback
import urllib.request

from marketorestpython.client import MarketoClient

BASE = sys.argv[1].rstrip("/")
CLIENT_ID = os.environ.get("SIM_CLIENT_ID", "sim-client-id")
CLIENT_SECRET = os.environ.get("SIM_CLIENT_SECRET", "sim-client-secret")
LIST_ID = 1001

passed = 0
failed = 0


def client(secret=CLIENT_SECRET):
    # The client builds https://{munchkin}.mktorest.com; every URL it makes is
    # self.host + path, so pointing host at the simulator is enough.
    mc = MarketoClient("000-SIM-000", CLIENT_ID, secret, max_retry_time=5)
    mc.host = BASE
    return mc


def side(path, body=None):
    req = urllib.request.Request(BASE + path, method="POST" if body is not None else "GET")
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, data=data) as r:
        return json.loads(r.read())


def check(name):
    def wrap(fn):
        global passed, failed
        try:
            fn()
            passed += 1
            print(f"ok      {name}")
        except Exception:  # noqa: BLE001 - report every failure and go on
            failed += 1
            print(f"FAILED  {name}")
            traceback.print_exc()
        return fn
    return wrap


mc = client()
state = {}


@check("auth: token issued, reused with falling expires_in")
def _():
    mc.authenticate()
    assert mc.token and mc.token.endswith(":int"), mc.token
    assert mc.token_type == "bearer"
    first = mc.token
    mc.valid_until = None  # force a second Identity call
    mc.authenticate()
    assert mc.token == first, "same token until expiry"
    assert 0 < mc.expires_in <= 3600


@check("auth: wrong secret rejected with an OAuth error")
def _():
    try:
        client("wrong-secret").authenticate()
    except Exception as e:  # the client raises with error_description
        assert "Bad client credentials" in str(e), e
        return
    raise AssertionError("authenticate() accepted a wrong secret")


@check("describe: standard fields with REST names")
def _():
    fields = mc.execute(method="describe")
    names = {f["rest"]["name"] for f in fields if "rest" in f}
    for n in ["email", "firstName", "lastName", "city", "state", "country", "postalCode", "company"]:
        assert n in names, n
    email = next(f for f in fields if f["rest"]["name"] == "email")
    assert email["dataType"] == "email"
    d2 = mc.execute(method="describe2")
    assert d2[0]["name"] == "API Lead"


@check("upsert: create, then update by email case-insensitively")
def _():
    leads = [
        {"email": "py.one@example.com", "firstName": "One"},
        {"email": "py.two@example.com", "firstName": "Two"},
        {"email": "bad-email", "firstName": "Bad"},
    ]
    res = mc.execute(method="create_update_leads", leads=leads, action="createOrUpdate", lookupField="email")
    assert [r["status"] for r in res] == ["created", "created", "skipped"], res
    assert res[2]["reasons"][0]["code"] == "1003"
    state["ids"] = [res[0]["id"], res[1]["id"]]
    res = mc.execute(method="create_update_leads", leads=[{"email": "PY.ONE@example.com", "lastName": "Uno"}])
    assert res == [{"id": state["ids"][0], "status": "updated"}], res


@check("get leads by filter (POST with _method=GET)")
def _():
    res = mc.execute(method="get_multiple_leads_by_filter_type", filterType="email",
                     filterValues=["py.one@example.com", "py.two@example.com"], fields=["email", "lastName"])
    by_id = {r["id"]: r for r in res}
    assert set(by_id) == set(state["ids"]), res
    assert by_id[state["ids"][0]]["lastName"] == "Uno"


@check("lists: static list by id (asset) and all lists")
def _():
    res = mc.execute(method="get_list_by_id", id=LIST_ID)
    assert res[0]["id"] == LIST_ID and res[0]["name"] == "Quickstart", res
    lists = mc.execute(method="get_multiple_lists")
    assert LIST_ID in [l["id"] for l in lists] and 2001 not in [l["id"] for l in lists]


@check("list add (JSON body), re-add is 'added', unknown lead skipped 1004")
def _():
    res = mc.execute(method="add_leads_to_list", listId=LIST_ID, id=state["ids"])
    assert [r["status"] for r in res] == ["added", "added"], res
    res = mc.execute(method="add_leads_to_list", listId=LIST_ID, id=[state["ids"][0], 99999999])
    assert res[0]["status"] == "added"
    assert res[1]["status"] == "skipped" and res[1]["reasons"][0]["code"] == "1004", res


@check("list members paged (POST /rest/v1/list/{id}/leads.json?_method=GET)")
def _():
    res = mc.execute(method="get_multiple_leads_by_list_id", listId=LIST_ID, fields=["email"], batchSize=1)
    assert sorted(r["id"] for r in res) == sorted(state["ids"]), res
    res = mc.execute(method="member_of_list", listId=LIST_ID, id=state["ids"])
    assert [r["status"] for r in res] == ["memberof", "memberof"], res


@check("list remove (DELETE with JSON body), non-member skipped 1015")
def _():
    res = mc.execute(method="remove_leads_from_list", listId=LIST_ID, id=[state["ids"][1]])
    assert res == [{"id": state["ids"][1], "status": "removed"}], res
    res = mc.execute(method="remove_leads_from_list", listId=LIST_ID, id=[state["ids"][1]])
    assert res[0]["status"] == "skipped" and res[0]["reasons"][0]["code"] == "1015", res
    members = side(f"/_sim/lists/{LIST_ID}/members")
    assert members["members"] == [state["ids"][0]], members


@check("membership on a smart list is refused (1013)")
def _():
    try:
        mc.execute(method="add_leads_to_list", listId=2001, id=state["ids"])
    except Exception as e:
        assert "1013" in str(e), e
        return
    raise AssertionError("smart list accepted")


@check("asset static list: create (form-encoded folder JSON) and by name")
def _():
    res = mc.execute(method="create_list", name="py crosscheck", folderId=12, folderType="Folder")
    assert res[0]["name"] == "py crosscheck" and res[0]["createdAt"].endswith("Z+0000"), res
    state["new_list"] = res[0]["id"]
    got = mc.execute(method="get_list_by_name", name="py crosscheck")
    assert got[0]["id"] == state["new_list"], got


@check("bulk import: create (multipart), status to Complete, failures file")
def _():
    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
        f.write("email,firstName\npy.bulk1@example.com,B1\nnot-an-email,B2\npy.bulk3@example.com,B3\n")
        path = f.name
    res = mc.execute(method="import_lead", format="csv", file=path, listId=state["new_list"])
    assert res[0]["status"] == "Queued", res
    batch = res[0]["batchId"]
    assert res[0]["importId"] == str(batch)
    deadline = time.time() + 30
    while True:
        st = mc.execute(method="get_import_lead_status", id=batch)[0]
        if st["status"] in ("Complete", "Failed") or time.time() > deadline:
            break
        time.sleep(0.05)
    assert st["status"] == "Complete", st
    assert st["numOfLeadsProcessed"] == 2 and st["numOfRowsFailed"] == 1, st
    failures = mc.execute(method="get_import_failure_file", id=batch)
    lines = failures.strip().splitlines()
    assert lines[0] == "email,firstName,Import Failure Reason", lines
    assert lines[1].startswith("not-an-email,B2,"), lines
    warnings = mc.execute(method="get_import_warning_file", id=batch)
    assert warnings.strip() == "email,firstName,Import Warning Reason", warnings
    members = side(f"/_sim/lists/{state['new_list']}/members")
    assert members["count"] == 2, members


@check("counters: every call above reached the simulator, no limit errors")
def _():
    c = side("/_sim/counters")
    assert c["by_op"].get("sync_leads", 0) >= 2, c["by_op"]
    assert c["by_op"].get("bulk_import", 0) == 1, c["by_op"]
    for code in ("606", "615", "607"):
        assert code not in c["codes"], c["codes"]


print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
