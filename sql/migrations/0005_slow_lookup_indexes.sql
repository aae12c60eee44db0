-- Indexes for the slow-lookups report (issue 16): it reads a handful of rows out of millions, so each of its
-- reads has an index holding just those rows. Partial, so they cost nothing on the spans that are not theirs.
--
--   spans_slow_operations  the operations the storage collector marked slow (sieve.db.slow), by time:
--                          monitoring.get_slow_lookup_groups' main read. A few percent of the storage spans.
--   spans_n_plus_one       spans the tail sampler's N+1 detector marked (sieve.db.n_plus_one), by time:
--                          monitoring.get_n_plus_one_groups reads them without scanning every statement span.
--
-- EXPLAIN spans (plans and their shape hashes) are found through spans_name_start (0003). Declared on the
-- partitioned parent, the indexes cascade to every partition, existing and future.

SET LOCAL ROLE sieve_owner;

CREATE INDEX spans_slow_operations ON monitoring.spans (start_ts)
    WHERE db_system IS NOT NULL AND attributes @> '{"sieve.db.slow": true}';

CREATE INDEX spans_n_plus_one ON monitoring.spans (start_ts)
    WHERE attributes ? 'sieve.db.n_plus_one';

RESET ROLE;
