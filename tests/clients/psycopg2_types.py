"""psycopg2 against mdbc: every supported type round-trips with the right Python type.

Usage: python3 psycopg2_types.py PORT  (exit status 0 on success)
"""
import datetime as dt
import decimal
import sys
import uuid

import psycopg2
import psycopg2.extras

port = int(sys.argv[1])
conn = psycopg2.connect(host="127.0.0.1", port=port, user="tester", dbname="mdbc")
psycopg2.extras.register_uuid()
cur = conn.cursor()
cur.execute(
    """create table py_types (
        id serial primary key, b boolean, i2 smallint, i4 integer, i8 bigint, f4 real,
        f8 double precision, n numeric(10,2), t text, v varchar(10), c char(3), by bytea,
        d date, tm time, ts timestamp, tz timestamptz, iv interval, u uuid, j json, jb jsonb)"""
)
values = dict(
    b=True,
    i2=-3,
    i4=123456,
    i8=2**40,
    f4=0.5,
    f8=3.25,
    n=decimal.Decimal("12.34"),
    t="héllo 'quoted'",
    v="short",
    c="ab",
    by=b"\x00\x01\xfe",
    d=dt.date(2023, 12, 31),
    tm=dt.time(23, 59, 58, 500000),
    ts=dt.datetime(2023, 12, 31, 23, 59, 58, 123456),
    tz=dt.datetime(2023, 12, 31, 22, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=-2))),
    iv=dt.timedelta(days=3, hours=4, minutes=5),
    u=uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
    j=psycopg2.extras.Json({"a": [1, 2]}),
    jb=psycopg2.extras.Json({"b": {"c": True}}),
)
cols = list(values)
cur.execute(
    "insert into py_types (%s) values (%s) returning id"
    % (", ".join(cols), ", ".join("%(" + c + ")s" for c in cols)),
    values,
)
(row_id,) = cur.fetchone()
assert row_id == 1, row_id
conn.commit()

cur.execute("select %s from py_types where id = %%s" % ", ".join(cols), (row_id,))
row = dict(zip(cols, cur.fetchone()))
expected = dict(values)
expected["c"] = "ab "  # char(3) pads
expected["by"] = values["by"]
expected["tz"] = values["tz"].astimezone(dt.timezone.utc)
expected["j"] = {"a": [1, 2]}
expected["jb"] = {"b": {"c": True}}
for k, v in expected.items():
    got = row[k]
    if isinstance(got, memoryview):
        got = got.tobytes()
    assert got == v, f"{k}: got {got!r} ({type(got).__name__}), want {v!r}"
    assert type(got) is type(v) or k in ("by",), f"{k}: type {type(got).__name__}"
assert row["tz"].utcoffset() == dt.timedelta(0)

# NULLs come back as None.
cur.execute("insert into py_types (b) values (null)")
cur.execute("select i4, t, d, n from py_types where id = 2")
assert cur.fetchone() == (None, None, None, None)

# Errors carry the SQLSTATE and the connection stays usable after ROLLBACK.
try:
    cur.execute("insert into py_types (i2) values (%s)", (70000,))
    raise SystemExit("expected out-of-range error")
except psycopg2.Error as e:
    assert e.pgcode == "22003", e.pgcode
conn.rollback()
try:
    cur.execute("select * from no_such_table")
except psycopg2.errors.UndefinedTable:
    pass
conn.rollback()
cur.execute("select count(*) from py_types")
assert cur.fetchone()[0] == 1  # the NULL row was rolled back with the failed transaction
print("psycopg2 ok")
