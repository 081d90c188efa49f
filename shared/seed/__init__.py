"""`seed_data`: realistic customers and purchases, bulk-loaded with COPY (SPEC §6).

    seed_data --clientes 50 [--compras-por-cliente 10] [--seed N] [--reset]

How it stays fast enough for 1,000,000 customers and 10,000,000 purchases:
- Faker (about 100 µs a call) only fills small pools of names, phones and e-mail domains, once.
  Each row combines pool entries with a seeded `random.Random` and is formatted straight into
  COPY text: a few microseconds a row.
- Rows stream to PostgreSQL with COPY as they are made, through psycopg's queued writer: a
  thread sends each block while Python formats the next. Memory stays flat at any size.
- Into empty tables, a large load drops the secondary indexes and the unique and foreign-key
  constraints, rebuilds them afterwards from their definitions in shared.models, and uses
  COPY FREEZE (no later vacuum is needed for index-only scans).
Everything happens in one transaction: a run that fails leaves the database as it was.

Determinism: rows are drawn chunk by chunk from generators seeded with (--seed, first new id,
chunk), and dates count back from the start of today in TIMEZONE, so on an empty database the
same seed and size give the same rows all day. Document numbers derive from the customer id
(shared.documents.candidates), so re-runs never collide with rows seeded earlier; a number that
a customer entered by other means already holds is skipped for the id's next candidate.

Modules: vocabulary (the Faker pools and the calendar of COPY timestamps), generation (rows as
COPY text, from a Plan), loading (one run: plan, COPY, rebuild the indexes), cli (`seed_data`,
also `python -m shared.seed`).
"""
