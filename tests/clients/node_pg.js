// node-postgres against mdbc: parameters (unnamed Parse without types, Describe portal),
// named prepared statements, transactions and errors.
// Usage: node node_pg.js PORT
const { Client } = require('pg');
const assert = require('assert');

(async () => {
  const client = new Client({ host: '127.0.0.1', port: Number(process.argv[2]), user: 'tester', database: 'mdbc' });
  await client.connect();
  await client.query('create table js (id int primary key, name text, score numeric(6,2), at timestamptz, ok boolean)');
  for (let i = 1; i <= 5; i++) {
    await client.query('insert into js values ($1, $2, $3, $4, $5)', [i, `n${i}`, i * 1.5, new Date(Date.UTC(2024, 0, i)), i % 2 === 0]);
  }
  const r = await client.query('select id, name, score, at, ok from js where id >= $1 order by id', [4]);
  assert.deepStrictEqual(r.rows.map((x) => x.id), [4, 5]);
  assert.strictEqual(r.rows[0].name, 'n4');
  assert.strictEqual(r.rows[0].score, '6.00');
  assert.strictEqual(r.rows[0].ok, true);
  assert.ok(r.rows[0].at instanceof Date);
  assert.strictEqual(r.rows[0].at.toISOString(), '2024-01-04T00:00:00.000Z');
  assert.strictEqual(r.fields[0].dataTypeID, 23);

  const named = { name: 'by-id', text: 'select name from js where id = $1', values: [2] };
  assert.strictEqual((await client.query(named)).rows[0].name, 'n2');
  named.values = [3];
  assert.strictEqual((await client.query(named)).rows[0].name, 'n3');

  await client.query('begin');
  await client.query('update js set name = $1 where id = $2', ['changed', 1]);
  await client.query('rollback');
  assert.strictEqual((await client.query('select name from js where id = 1')).rows[0].name, 'n1');

  await assert.rejects(client.query('insert into js values ($1, $2)', [1, 'dup']), (e) => e.code === '23505');
  await assert.rejects(client.query('select * from nope where x = $1', [1]), (e) => e.code === '42P01');
  const c = await client.query('select count(*)::int as n from js');
  assert.strictEqual(c.rows[0].n, 5);
  await client.end();
  console.log('node-postgres ok');
})().catch((e) => { console.error(e); process.exit(1); });
