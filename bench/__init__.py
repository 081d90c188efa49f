"""`make bench`: the real processes under load, each figure beside a baseline of the same run.

    python -m bench --size small|large [--duration 20]      (what `make bench SIZE=…` runs)
                    [--only buscar,lote,exports,loyalty,every-customer,paced,soak,seed]
                    [--soak-seconds 180] [--paced-seconds 300]

1. Dataset: database `clientes_bench_<size>`, created and migrated if missing, seeded with the
   real `seed_data` CLI only when its marker (customers, purchases per customer, seed) differs
   from the last build (dataset.py); a re-run starts in seconds.
2. Processes: every command of the Procfile with production settings, the API at
   WEB_CONCURRENCY=2, a Redis database of its own (/9, flushed), loopback only (services.py).
3. Figures and their baselines, measured in this run on this data (runner.py):
   `buscar` under wrk vs the HTTP ceiling (constant_app.py) and vs pgbench running the API's own
   lookup SQL (pgbench.py); `buscar/lote`; export jobs (jobs.py); the loyalty report vs psql
   COPY of the worker's own query (copy_baseline.py); reports of every customer vs the bare csv
   and XlsxWriter writers, and the seed time vs Faker one row at a time (writers.py); `buscar`
   open loop at half the saturation rate with exports meanwhile, in 30 s slices (paced.py,
   paced_client.py); the soak: lookups and export jobs at a steady rate for minutes, in 10 s
   slices (soak.py); beside each slice of those two, the machine and the stores (probe.py).
4. Results: bench/results/latest-<size>.md (figure | measured | baseline | ratio | target) and
   latest-<size>.json; process and load-generator logs under var/bench/logs/. A run of some
   groups only (--only) writes under var/bench/results/ instead, like the `tiny` size.

The machine is shared, so absolute figures drift with its load (printed in the results); the
ratios to same-run baselines are what compare across runs. Environment: BENCH_ADMIN_DATABASE_URL
(default postgresql://postgres@127.0.0.1:5432/postgres) and BENCH_REDIS_URL
(default redis://127.0.0.1:6379/9). Not part of `make test`.
"""
