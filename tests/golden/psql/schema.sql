create table authors (id serial primary key, name text not null unique);
create table books (id bigserial primary key, author_id int not null references authors(id), title varchar(200) not null, price numeric(10,2), published date);
create index books_title on books (title);
create table audit_log (at timestamptz default now(), what text);
create table tags (book_id bigint references books(id) on delete cascade, tag varchar(30) not null, weight smallint default 1, primary key (book_id, tag));
create unique index tags_tag_weight on tags (tag, weight);
create view title_list as select b.title, a.name as author, b.price * 2 as double_price from books b join authors a on a.id = b.author_id;
create sequence invoice_numbers as integer start with 1000 increment by 10;
