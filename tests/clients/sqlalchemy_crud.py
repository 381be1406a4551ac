"""SQLAlchemy 2 Core and ORM basic CRUD against mdbc.

Usage: python3 sqlalchemy_crud.py PORT

Tables are created with checkfirst=False and hstore detection is off: both make SQLAlchemy
read pg_catalog, which arrives with the catalog issue (issue 6).
"""
import datetime as dt
import decimal
import sys

from sqlalchemy import (Boolean, Column, DateTime, ForeignKey, Integer, MetaData, Numeric,
                        String, Table, create_engine, func, insert, select, update, delete)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

port = int(sys.argv[1])
engine = create_engine(
    f"postgresql+psycopg2://tester@127.0.0.1:{port}/mdbc", use_native_hstore=False
)

# Core
md = MetaData()
notes = Table(
    "notes",
    md,
    Column("id", Integer, primary_key=True),
    Column("body", String(50), nullable=False),
    Column("done", Boolean, default=False),
    Column("price", Numeric(8, 2)),
    Column("created", DateTime(timezone=True), server_default=func.now()),
)
md.create_all(engine, checkfirst=False)
with engine.begin() as c:
    c.execute(insert(notes), [{"body": f"n{i}", "price": decimal.Decimal(i) / 4} for i in range(10)])
    assert c.execute(select(func.count()).select_from(notes)).scalar_one() == 10
    c.execute(update(notes).where(notes.c.id <= 3).values(done=True))
    c.execute(delete(notes).where(notes.c.id == 10))
with engine.connect() as c:
    rows = c.execute(select(notes).where(notes.c.done.is_(True)).order_by(notes.c.id)).all()
    assert [r.body for r in rows] == ["n0", "n1", "n2"], rows
    assert rows[1].price == decimal.Decimal("0.25"), rows[1].price
    assert isinstance(rows[0].created, dt.datetime) and rows[0].created.tzinfo is not None
    assert c.execute(select(func.count()).select_from(notes)).scalar_one() == 9


# ORM with a relationship
class Base(DeclarativeBase):
    pass


class Author(Base):
    __tablename__ = "authors"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40))
    books: Mapped[list["Book"]] = relationship(back_populates="author")


class Book(Base):
    __tablename__ = "books"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(80))
    author_id: Mapped[int] = mapped_column(ForeignKey("authors.id"))
    author: Mapped[Author] = relationship(back_populates="books")


Base.metadata.create_all(engine, checkfirst=False)
with Session(engine) as s:
    a = Author(name="Le Guin", books=[Book(title="The Dispossessed"), Book(title="Lathe")])
    s.add(a)
    s.commit()
    aid = a.id
with Session(engine) as s:
    a = s.get(Author, aid)
    assert sorted(b.title for b in a.books) == ["Lathe", "The Dispossessed"]
    a.books[0].title = a.books[0].title.upper()
    s.delete([b for b in a.books if b.title == "Lathe"][0])
    s.commit()
with Session(engine) as s:
    titles = s.scalars(select(Book.title).order_by(Book.title)).all()
    assert titles == ["THE DISPOSSESSED"] or titles == ["The Dispossessed"], titles
    assert s.scalar(select(func.count(Book.id))) == 1
print("sqlalchemy ok")
