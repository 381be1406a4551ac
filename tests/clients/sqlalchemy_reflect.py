"""SQLAlchemy 2 against mdbc: create_all, reflection of what Alembic autogenerate reads
(tables, columns with types and defaults, primary keys, foreign keys, indexes, unique
constraints), views (names, columns, a reflected view queried), ORM relationships, bulk
insert with RETURNING, drop_all.

Usage: python3 sqlalchemy_reflect.py PORT DRIVER   (DRIVER: psycopg2 or psycopg)
Exit status 0 on success; an assertion names what differed.
"""
import sys

import sqlalchemy as sa
from sqlalchemy import orm

port, driver = int(sys.argv[1]), sys.argv[2]
engine = sa.create_engine(f"postgresql+{driver}://tester@127.0.0.1:{port}/mdbc")

md = sa.MetaData()
sa.Table(
    "refl_author",
    md,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(80), nullable=False, unique=True),
    sa.Column("born", sa.Date),
    sa.Column("created", sa.DateTime(timezone=True), server_default=sa.func.now()),
)
sa.Table(
    "refl_book",
    md,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("author_id", sa.Integer, sa.ForeignKey("refl_author.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("price", sa.Numeric(10, 2)),
    sa.Column("in_print", sa.Boolean, server_default=sa.true()),
    sa.Index("refl_book_title", "title"),
    sa.UniqueConstraint("author_id", "title", name="refl_book_author_title"),
)
with engine.begin() as c:
    c.execute(sa.text("DROP VIEW IF EXISTS refl_titles"))
md.drop_all(engine)
md.create_all(engine)
with engine.begin() as c:
    c.execute(sa.text(
        "CREATE VIEW refl_titles AS SELECT b.title, a.name AS author, b.price * 2 AS doubled "
        "FROM refl_book b JOIN refl_author a ON a.id = b.author_id"))

insp = sa.inspect(engine)
tables = set(insp.get_table_names())
assert {"refl_author", "refl_book"} <= tables, tables
assert insp.has_table("refl_book") and not insp.has_table("refl_nope")

cols = {c["name"]: c for c in insp.get_columns("refl_book")}
assert list(cols) == ["id", "author_id", "title", "price", "in_print"], list(cols)
assert isinstance(cols["id"]["type"], sa.BigInteger), cols["id"]
assert isinstance(cols["author_id"]["type"], sa.Integer), cols["author_id"]
assert isinstance(cols["title"]["type"], sa.Text), cols["title"]
price = cols["price"]["type"]
assert isinstance(price, sa.Numeric) and (price.precision, price.scale) == (10, 2), price
assert isinstance(cols["in_print"]["type"], sa.Boolean), cols["in_print"]
assert cols["title"]["nullable"] is False and cols["price"]["nullable"] is True
assert cols["in_print"]["default"] == "true", cols["in_print"]
assert "nextval" in (cols["id"]["default"] or ""), cols["id"]
author_cols = {c["name"]: c for c in insp.get_columns("refl_author")}
name_type = author_cols["name"]["type"]
assert isinstance(name_type, sa.String) and name_type.length == 80, name_type
assert author_cols["created"]["default"] == "now()", author_cols["created"]
assert author_cols["created"]["type"].timezone is True

pk = insp.get_pk_constraint("refl_book")
assert pk["constrained_columns"] == ["id"] and pk["name"] == "refl_book_pkey", pk

fks = insp.get_foreign_keys("refl_book")
assert len(fks) == 1, fks
fk = fks[0]
assert fk["constrained_columns"] == ["author_id"], fk
assert fk["referred_table"] == "refl_author" and fk["referred_columns"] == ["id"], fk
assert fk["options"].get("ondelete") == "CASCADE", fk

indexes = {i["name"]: i for i in insp.get_indexes("refl_book")}
assert indexes["refl_book_title"]["column_names"] == ["title"], indexes
assert not indexes["refl_book_title"]["unique"], indexes

uniques = {u["name"]: u for u in insp.get_unique_constraints("refl_book")}
assert uniques["refl_book_author_title"]["column_names"] == ["author_id", "title"], uniques
author_uniques = insp.get_unique_constraints("refl_author")
assert [u["column_names"] for u in author_uniques] == [["name"]], author_uniques

# A reflected table works for queries.
book = sa.Table("refl_book", sa.MetaData(), autoload_with=engine)
assert [c.name for c in book.primary_key] == ["id"]


class Base(orm.DeclarativeBase):
    pass


class Author(Base):
    __tablename__ = "refl_author"
    id = sa.Column(sa.Integer, primary_key=True)
    name = sa.Column(sa.String(80), nullable=False)
    books = orm.relationship("Book", back_populates="author")


class Book(Base):
    __tablename__ = "refl_book"
    id = sa.Column(sa.BigInteger, primary_key=True)
    author_id = sa.Column(sa.Integer, sa.ForeignKey("refl_author.id"), nullable=False)
    title = sa.Column(sa.Text, nullable=False)
    author = orm.relationship("Author", back_populates="books")


with orm.Session(engine) as s:
    a = Author(name="Le Guin", books=[Book(title="The Dispossessed"), Book(title="Lathe")])
    s.add(a)
    # Bulk insert with RETURNING (SQLAlchemy's insertmanyvalues form).
    s.add_all([Author(name=f"author {i}") for i in range(5)])
    s.commit()
    got = s.scalars(sa.select(Author).where(Author.name == "Le Guin")).one()
    assert sorted(b.title for b in got.books) == ["Lathe", "The Dispossessed"]
    assert s.scalar(sa.select(sa.func.count()).select_from(Author)) == 6

# The view: listed apart from the tables, its columns typed, readable as a reflected Table.
insp = sa.inspect(engine)
assert insp.get_view_names() == ["refl_titles"], insp.get_view_names()
assert "refl_titles" not in insp.get_table_names()
vcols = {c["name"]: c["type"] for c in insp.get_columns("refl_titles")}
assert list(vcols) == ["title", "author", "doubled"], vcols
assert isinstance(vcols["author"], sa.String) and vcols["author"].length == 80, vcols
assert isinstance(vcols["doubled"], sa.Numeric), vcols
titles = sa.Table("refl_titles", sa.MetaData(), autoload_with=engine)
with engine.connect() as c:
    rows = c.execute(sa.select(titles.c.title, titles.c.author)
                     .where(titles.c.author == "Le Guin").order_by(titles.c.title)).all()
assert [tuple(r) for r in rows] == [("Lathe", "Le Guin"), ("The Dispossessed", "Le Guin")], rows
# A table a view reads is dropped only with the view (PostgreSQL's 2BP01 otherwise).
try:
    md.drop_all(engine)
    raise AssertionError("drop_all under a view succeeded")
except sa.exc.DBAPIError as e:
    code = getattr(e.orig, "pgcode", None) or getattr(e.orig, "sqlstate", None)
    assert code == "2BP01", e
with engine.begin() as c:
    c.execute(sa.text("DROP VIEW refl_titles"))
md.drop_all(engine)
assert not sa.inspect(engine).has_table("refl_book")
print("ok")
