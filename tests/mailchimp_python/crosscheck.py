"""Drive the audex Mailchimp simulator with Mailchimp's official Python
client (mailchimp-marketing 3.0.80), as evidence that the simulator speaks
the Marketing API v3 protocol.

Usage: crosscheck.py BASE_URL   (e.g. http://127.0.0.1:8081)
Prints one line per check and a final "N passed, M failed"; exits non-zero
on any failure.
"""

import hashlib
import json
import os
import sys
import traceback
import urllib.request

import mailchimp_marketing as MailchimpMarketing
from mailchimp_marketing.api_client import ApiClientError

BASE = sys.argv[1].rstrip("/")
KEY = os.environ.get("SIM_MAILCHIMP_KEY", "0123456789abcdef0123456789abcdef-us6")
LIST = os.environ.get("SIM_MAILCHIMP_LIST", "a1b2c3d4e5")

passed = 0
failed = 0


def client(key=KEY):
    # The client builds https://{server}.api.mailchimp.com/3.0 from the key's
    # data center; every URL it makes is api_client.host + path, so pointing
    # host at the simulator after set_config is enough.
    c = MailchimpMarketing.Client()
    c.set_config({"api_key": key, "server": key.split("-")[-1]})
    c.api_client.host = BASE + "/3.0"
    return c


def side(path, body=None):
    req = urllib.request.Request(BASE + path, method="POST" if body is not None else "GET")
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, data=data) as r:
        return json.loads(r.read())


def md5(email):
    return hashlib.md5(email.lower().encode()).hexdigest()


def problem(err):
    """The problem document of an ApiClientError (the client keeps it as text,
    since application/problem+json is not application/json to it)."""
    text = err.text
    return json.loads(text) if isinstance(text, str) else text


def expect_error(status, fn):
    try:
        fn()
    except ApiClientError as e:
        assert e.status_code == status, (e.status_code, e.text)
        return problem(e)
    raise AssertionError(f"expected an ApiClientError with status {status}")


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


@check("ping: Everything's Chimpy!")
def _():
    assert mc.ping.get() == {"health_status": "Everything's Chimpy!"}


@check("root: account info")
def _():
    root = mc.root.get_root()
    assert root["account_name"] and root["account_id"], root


@check("lists.get_list: the audience with double_optin and stats")
def _():
    a = mc.lists.get_list(LIST)
    assert a["id"] == LIST, a
    assert a["double_optin"] is False
    assert "member_count" in a["stats"]


@check("lists.get_list_merge_fields: default fields with types")
def _():
    mf = mc.lists.get_list_merge_fields(LIST, count=1000)
    by_tag = {f["tag"]: f for f in mf["merge_fields"]}
    assert mf["total_items"] == 4, mf
    assert by_tag["FNAME"]["type"] == "text" and by_tag["ADDRESS"]["type"] == "address"
    assert by_tag["PHONE"]["required"] is False


@check("lists.set_list_member: create, then status_if_new leaves the status")
def _():
    e = "py.one@example.com"
    m = mc.lists.set_list_member(LIST, md5(e), {"email_address": e, "status_if_new": "pending",
                                                  "merge_fields": {"FNAME": "One"}})
    assert m["id"] == md5(e) and m["status"] == "pending", m
    m = mc.lists.set_list_member(LIST, md5(e), {"email_address": e, "status_if_new": "subscribed",
                                                  "merge_fields": {"LNAME": "Py"}})
    assert m["status"] == "pending", m
    assert m["merge_fields"]["FNAME"] == "One" and m["merge_fields"]["LNAME"] == "Py", m
    assert mc.lists.get_list_member(LIST, md5(e))["email_address"] == e


@check("lists.set_list_member: a hash that does not match the email is a 400")
def _():
    p = expect_error(400, lambda: mc.lists.set_list_member(
        LIST, md5("other@example.com"), {"email_address": "py.x@example.com", "status_if_new": "subscribed"}))
    assert p["title"] == "Invalid Resource", p


@check("lists.set_list_member: an unknown merge tag is a 400 with errors[]")
def _():
    e = "py.bad@example.com"
    p = expect_error(400, lambda: mc.lists.set_list_member(
        LIST, md5(e), {"email_address": e, "status_if_new": "subscribed", "merge_fields": {"NOPE": "x"}}))
    assert p["title"] == "Invalid Resource" and p["errors"][0]["field"] == "NOPE", p


@check("lists.batch_list_members: 200 with new, updated and per-member errors")
def _():
    side(f"/_sim/audiences/{LIST}/contacts", [
        {"email": "py.unsub@example.com", "status": "unsubscribed"},
        {"email": "py.clean@example.com", "status": "cleaned"},
    ])
    side(f"/_sim/audiences/{LIST}/forgotten", {"emails": ["py.gone@example.com"]})
    members = [{"email_address": f"py.batch{i}@example.com", "status_if_new": "subscribed"} for i in range(3)]
    members += [
        {"email_address": "py.one@example.com", "status_if_new": "subscribed"},
        {"email_address": "py.unsub@example.com", "status_if_new": "subscribed"},
        {"email_address": "py.clean@example.com", "status_if_new": "subscribed"},
        {"email_address": "py.gone@example.com", "status_if_new": "subscribed"},
        {"email_address": "not-an-email", "status_if_new": "subscribed"},
    ]
    r = mc.lists.batch_list_members(LIST, {"members": members, "update_existing": True})
    assert r["total_created"] == 3 and r["total_updated"] == 1, r
    assert r["error_count"] == 4, r
    errors = {x["email_address"]: x for x in r["errors"]}
    assert "compliance state" in errors["py.unsub@example.com"]["error"], errors
    assert "compliance state" in errors["py.clean@example.com"]["error"], errors
    assert "permanently deleted" in errors["py.gone@example.com"]["error"], errors
    assert errors["not-an-email"]["error"] == "Please provide a valid email address.", errors
    r = mc.lists.batch_list_members(LIST, {"members": members[:1]})
    assert r["errors"][0]["error_code"] == "ERROR_CONTACT_EXISTS", r


@check("lists.batch_list_members: more than 500 members is a 400")
def _():
    members = [{"email_address": f"py.many{i}@example.com", "status": "subscribed"} for i in range(501)]
    p = expect_error(400, lambda: mc.lists.batch_list_members(LIST, {"members": members}))
    assert p["title"] == "Invalid Resource", p


@check("lists.create_segment: a static segment; strangers ignored")
def _():
    s = mc.lists.create_segment(LIST, {"name": "audex:py", "static_segment": [
        "py.batch0@example.com", "py.batch1@example.com", "stranger@example.com"]})
    assert s["type"] == "static" and s["member_count"] == 2, s
    state["seg"] = s["id"]
    tags = mc.lists.list_segments(LIST, type="static", count=1000)
    assert any(x["id"] == s["id"] for x in tags["segments"]), tags


@check("lists.batch_segment_members: adds and removes, grouped errors")
def _():
    r = mc.lists.batch_segment_members(
        {"members_to_add": ["py.batch2@example.com", "py.unsub@example.com", "bad@"],
         "members_to_remove": ["py.batch0@example.com"]},
        LIST, state["seg"])
    added = sorted(m["email_address"] for m in r["members_added"])
    assert added == ["py.batch2@example.com", "py.unsub@example.com"], r
    assert r["total_removed"] == 1 and r["members_removed"][0]["email_address"] == "py.batch0@example.com", r
    assert r["error_count"] == 1 and r["errors"][0]["email_addresses"] == ["bad@"], r


@check("lists.get_segment_members_list: unsubscribed hidden unless asked")
def _():
    r = mc.lists.get_segment_members_list(LIST, state["seg"], count=1000)
    emails = sorted(m["email_address"] for m in r["members"])
    assert emails == ["py.batch1@example.com", "py.batch2@example.com"], r
    r = mc.lists.get_segment_members_list(LIST, state["seg"], count=1000, include_unsubscribed=True)
    assert r["total_items"] == 3, r
    r = mc.lists.get_segment_members_list(LIST, state["seg"], count=1, offset=1,
                                          fields=["members.email_address", "total_items"])
    assert list(r["members"][0].keys()) == ["email_address"], r


@check("lists.batch_segment_members: a saved segment is refused")
def _():
    seg = side(f"/_sim/audiences/{LIST}/segments", {"name": "py saved", "type": "saved"})["id"]
    p = expect_error(400, lambda: mc.lists.batch_segment_members(
        {"members_to_add": ["py.batch1@example.com"]}, LIST, seg))
    assert p["detail"] == f"A Static Segment with an id of {seg} does not exist", p


@check("lists.update_list_member_tags: 204, empty body, tag applied")
def _():
    e = "py.batch1@example.com"
    res = mc.lists.update_list_member_tags(LIST, md5(e), {"tags": [{"name": "py-tag", "status": "active"}]})
    assert res.status_code == 204 and res.text == "", res
    contact = side(f"/_sim/audiences/{LIST}/contacts?email={e}")
    assert "py-tag" in contact["tags"], contact


@check("lists.delete_list_member archives; delete_list_member_permanent forgets")
def _():
    e = "py.batch2@example.com"
    res = mc.lists.delete_list_member(LIST, md5(e))
    assert res.status_code == 204, res
    assert mc.lists.get_list_member(LIST, md5(e))["status"] == "archived"
    res = mc.lists.delete_list_member_permanent(LIST, md5(e))
    assert res.status_code == 204, res
    p = expect_error(400, lambda: mc.lists.set_list_member(
        LIST, md5(e), {"email_address": e, "status_if_new": "subscribed"}))
    assert p["title"] == "Forgotten Email Not Subscribed", p


@check("errors: a wrong key is 401 API Key Invalid, an unknown audience 404")
def _():
    p = expect_error(401, lambda: client("ffffffffffffffffffffffffffffffff-us6").ping.get())
    assert p["title"] == "API Key Invalid" and p["status"] == 401, p
    p = expect_error(404, lambda: mc.lists.get_list("nope000000"))
    assert p["title"] == "Resource Not Found" and p["instance"], p
    p = expect_error(404, lambda: mc.lists.get_list_member(LIST, md5("nobody@example.com")))
    assert p["status"] == 404, p


@check("counters: every call above reached the simulator, none throttled")
def _():
    c = side("/_sim/counters")
    for op in ("ping", "get_list", "get_merge_fields", "put_member", "batch_subscribe", "create_segment",
               "batch_segment", "get_segment_members", "member_tags"):
        assert c["by_op"].get(op, 0) >= 1, (op, c["by_op"])
    assert c["too_many_requests"] == 0, c


print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
