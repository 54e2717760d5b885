"""Seed 003's examples, run with Feldera's own Python client against a siphon server.

Usage: python seed003.py BASE_URL [API_KEY]

Every step checks what the client returned, not only that it did not raise. It prints
`ok: <step>` per step and exits non-zero on the first failure.
"""

import json
import sys
import threading
import time
import urllib.request
import urllib.error

import pandas as pd
from feldera import FelderaClient, PipelineBuilder, Pipeline
from feldera.enums import PipelineStatus

BASE = sys.argv[1]
KEY = sys.argv[2] if len(sys.argv) > 2 else None

SQL = """
CREATE TABLE users (id INT, name VARCHAR, age INT);
CREATE TABLE events (user_id INT, action VARCHAR);
CREATE MATERIALIZED VIEW user_stats AS
  SELECT COUNT(*) AS users, MAX(age) AS oldest, SUM(age) AS total_age FROM users;
CREATE MATERIALIZED VIEW event_summary AS
  SELECT action, COUNT(*) AS count FROM events GROUP BY action;
CREATE VIEW adults AS SELECT id, name FROM users WHERE age >= 30;
CREATE TABLE logins (id BIGINT, at TIMESTAMP, amount DECIMAL(10,2), ok BOOLEAN, day DATE);
"""


def ok(step):
    print(f"ok: {step}", flush=True)


def wait_until(what, predicate, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def http(method, path, body=None, timeout=10):
    request = urllib.request.Request(BASE + path, data=body, method=method)
    if KEY:
        request.add_header("Authorization", f"Bearer {KEY}")
    return urllib.request.urlopen(request, timeout=timeout)


client = FelderaClient(BASE, api_key=KEY)
ok("client connects (GET /v0/config)")

# A program that does not compile: refused with its line and column, nothing created.
try:
    PipelineBuilder(
        client, name="broken", sql="CREATE TABLE t (id INT);\nCREATE VIEW v AS SELECT nope FROM t;"
    ).create_or_replace()
    raise AssertionError("a broken program was accepted")
except Exception as e:  # the client raises its API error
    text = str(e)
    assert "line 2" in text or "2:" in text, text
    assert "nope" in text, text
try:
    Pipeline.get("broken", client)
    raise AssertionError("the broken pipeline exists")
except Exception as e:
    assert "not found" in str(e) or "Unknown" in str(e), str(e)
ok("a program that does not compile is refused with line and column")

pipeline = PipelineBuilder(client, name="seed003", sql=SQL).create_or_replace()
assert [t.name for t in pipeline.tables()] == ["events", "logins", "users"], pipeline.tables()
assert sorted(v.name for v in pipeline.views()) == ["adults", "event_summary", "user_stats"]
ok("create_or_replace compiles the program")

# "To receive changes from the beginning, start the pipeline in paused mode, attach
# listeners, then resume."
pipeline.start_paused()
assert pipeline.status() == PipelineStatus.PAUSED, pipeline.status()
handler = pipeline.listen(view_name="user_stats")
adults = pipeline.listen(view_name="adults")
pipeline.resume()
assert pipeline.status() == PipelineStatus.RUNNING, pipeline.status()
ok("start_paused, listen, resume")

# Pushing data: a dict, a list, insert_delete.
pipeline.input_json(table_name="users", data={"id": 1, "name": "Alice", "age": 30}, update_format="raw")
pipeline.input_json(
    table_name="users",
    data=[{"id": 2, "name": "Bob", "age": 25}, {"id": 3, "name": "Charlie", "age": 35}],
    update_format="raw",
)
pipeline.input_json("users", {"insert": {"id": 9, "name": "Zed", "age": 99}}, update_format="insert_delete")
pipeline.input_json("users", {"delete": {"id": 9, "name": "Zed", "age": 99}}, update_format="insert_delete")
rows = list(pipeline.query("SELECT id, name, age FROM users ORDER BY id"))
assert [(r["id"], r["name"], r["age"]) for r in rows] == [
    (1, "Alice", 30),
    (2, "Bob", 25),
    (3, "Charlie", 35),
], rows
ok("input_json: dict, list, raw and insert_delete")

# Pandas.
df = pd.DataFrame({"id": [4, 5, 6], "name": ["Dana", "Eve", "Finn"], "age": [41, 22, 33]})
pipeline.input_pandas(table_name="users", df=df)
count = list(pipeline.query("SELECT COUNT(*) AS c FROM users"))[0]["c"]
assert count == 6, count
ok("input_pandas")

# The listener got every change of user_stats since it attached.
stats = list(pipeline.query("SELECT * FROM user_stats"))
assert len(stats) == 1 and stats[0]["users"] == 6 and stats[0]["oldest"] == 41, stats


def listened_final():
    frame = handler.to_pandas(clear_buffer=False)
    if frame.empty:
        return None
    weights = {}
    for record in frame.to_dict(orient="records"):
        oldest = record["oldest"]
        key = (int(record["users"]), None if oldest is None or oldest != oldest else int(oldest))
        weights[key] = weights.get(key, 0) + int(record["insert_delete"])
    live = [k for k, w in weights.items() if w > 0]
    return live if live == [(6, 41)] else None


wait_until("the user_stats listener to see the last state", listened_final)
ok("listen: the view's changes, delete and insert per change")

# A completion token: the listener has every change of it once wait_for_token returns.
token = pipeline.input_json("users", {"id": 11, "name": "Kim", "age": 45})
assert isinstance(token, str) and token, token
adults.wait_for_token(token, timeout_s=20)
names = {r["name"]: int(r["insert_delete"]) for r in adults.to_dict()}
assert names.get("Kim") == 1 and names.get("Alice") == 1 and "Bob" not in names, names
pipeline.input_json("users", {"delete": {"id": 11, "name": "Kim", "age": 45}}, update_format="insert_delete")
ok("completion tokens and wait_for_token on a listener")

# Typed columns reach the DataFrame: TIMESTAMP, DECIMAL, BOOLEAN, DATE, NULL.
logins = pipeline.listen(view_name="logins")
token = pipeline.input_json(
    "logins",
    [
        {"id": 1, "at": "2024-01-12 10:30:00", "amount": "12.50", "ok": True, "day": "2024-01-12"},
        {"id": 2, "at": None, "amount": None, "ok": None, "day": None},
    ],
)
logins.wait_for_token(token, timeout_s=20)
frame = logins.to_pandas()
assert len(frame) == 2, frame
first = frame[frame["id"] == 1].iloc[0]
assert str(first["at"]).startswith("2024-01-12 10:30:00"), first
assert str(first["amount"]) in ("12.50", "12.5"), first
assert bool(first["ok"]) is True, first
second = frame[frame["id"] == 2].iloc[0]
assert pd.isna(second["at"]) and pd.isna(second["amount"]), second
ok("TIMESTAMP, DECIMAL, BOOLEAN, DATE and NULL in listener DataFrames")

# foreach_chunk on a GROUP BY view.
received = []
lock = threading.Lock()


def process_chunk(df, seq_no):
    with lock:
        received.append((seq_no, df))


pipeline.foreach_chunk(view_name="event_summary", callback=process_chunk)
pipeline.input_json("events", {"user_id": 1, "action": "login"})
pipeline.input_json("events", [{"user_id": 2, "action": "login"}, {"user_id": 1, "action": "logout"}])


def chunks_seen():
    with lock:
        frames = [df for _, df in received]
        seqs = [s for s, _ in received]
    if not frames:
        return None
    frame = pd.concat(frames)
    net = {}
    for record in frame.to_dict(orient="records"):
        net[(record["action"], int(record["count"]))] = net.get((record["action"], int(record["count"])), 0) + int(
            record["insert_delete"]
        )
    live = sorted(k for k, w in net.items() if w > 0)
    return (seqs, live) if live == [("login", 2), ("logout", 1)] else None


seqs, _ = wait_until("foreach_chunk to see event_summary", chunks_seen)
assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seqs
for row in pipeline.query("SELECT * FROM event_summary"):
    assert row["action"] in ("login", "logout"), row
ok("foreach_chunk with monotonically increasing seq_no")

# Forcing input on a paused pipeline: applied while paused.
pipeline.pause()
assert pipeline.status() == PipelineStatus.PAUSED
pipeline.input_json(table_name="users", data={"id": 7, "name": "Gus", "age": 50}, force=True)
assert list(pipeline.query("SELECT name FROM users WHERE id = 7"))[0]["name"] == "Gus"
ok("input_json(force=True) while paused is applied")

# The seed's paused push without force: this client raises before sending (FELDERA_API.md
# §6); over raw HTTP the push waits until resume, as the seed says.
try:
    pipeline.input_json("users", {"id": 8, "name": "Hal", "age": 60})
    raise AssertionError("the client pushed to a paused pipeline")
except RuntimeError:
    pass
answered = {}


def raw_push():
    response = http(
        "POST",
        "/v0/pipelines/seed003/ingress/users?format=json&update_format=raw",
        json.dumps({"id": 8, "name": "Hal", "age": 60}).encode(),
        timeout=30,
    )
    answered["body"] = json.loads(response.read())
    answered["at"] = time.monotonic()


pusher = threading.Thread(target=raw_push)
pusher.start()
time.sleep(1.0)
assert "body" not in answered, "a paused push without force returned before resume"
resumed_at = time.monotonic()
pipeline.resume()
pusher.join(timeout=20)
assert answered.get("at", 0) >= resumed_at and "token" in answered["body"], answered
assert list(pipeline.query("SELECT name FROM users WHERE id = 8"))[0]["name"] == "Hal"
ok("a raw-HTTP push to a paused pipeline waits for resume")

# Interactive exploration: query and query_tabular.
table = "\n".join(pipeline.query_tabular("SELECT id, name FROM users WHERE id <= 2 ORDER BY id"))
assert "Alice" in table and "Bob" in table and "+" in table, table
ok("query_tabular")

# The browser example: a plain GET of the egress, read line by line.
response = http("GET", "/v0/pipelines/seed003/egress/adults?format=json", timeout=30)
first = json.loads(response.readline())
assert first == {} or "processed_steps" in first, first
pipeline.input_json("users", {"id": 10, "name": "Ivy", "age": 31})
line = b""
while True:
    line = response.readline()
    data = json.loads(line)
    if "json_data" in data:
        break
assert data["json_data"] == [{"insert": {"id": 10, "name": "Ivy"}}], data
assert isinstance(data["sequence_number"], int)
ok("GET egress (browser): one JSON object per line")

# A stop ends open streams; create_or_replace over a running pipeline stops and clears it.
pipeline.stop(force=True)
assert pipeline.status() == PipelineStatus.STOPPED
rest = response.read()
response.close()
ok("stop ends the egress stream")

pipeline.start()
assert list(pipeline.query("SELECT COUNT(*) AS c FROM users"))[0]["c"] == 9
ok("a stopped pipeline keeps its tables")

pipeline = PipelineBuilder(client, name="seed003", sql=SQL).create_or_replace()
assert pipeline.status() == PipelineStatus.STOPPED
pipeline.start()
assert list(pipeline.query("SELECT COUNT(*) AS c FROM users"))[0]["c"] == 0
ok("create_or_replace over a running pipeline: stopped, cleared, replaced")

pipeline.stop(force=True)
pipeline.clear_storage()
pipeline.delete()
try:
    Pipeline.get("seed003", client)
    raise AssertionError("deleted pipeline still there")
except Exception as e:
    assert "not found" in str(e) or "Unknown" in str(e), str(e)
ok("stop, clear_storage, delete")
print("all seed 003 examples passed")
