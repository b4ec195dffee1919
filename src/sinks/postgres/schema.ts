/**
 * Tables of the Postgres sink, and the changes that bring tables made by an older keyflow up to date.
 * `npm run migrate` applies both; every statement is idempotent, so it may run any number of times.
 *
 * Every table carries the record's tenant (src/actor/tenant.ts) in `tenant`, first in its primary
 * key, and the client's key (never the actor name) in `actor_key`: the same key and event id in two
 * tenants are two rows.
 */
export const POSTGRES_SCHEMA = `
-- One migration at a time (the statements below run as one transaction, which holds the lock).
SELECT pg_advisory_xact_lock(hashtext('keyflow.migrate'));

CREATE TABLE IF NOT EXISTS raw_events (
  tenant      text        NOT NULL,
  actor_key   text        NOT NULL,
  event_id    text        NOT NULL,
  payload     jsonb       NOT NULL,
  received_at timestamptz NOT NULL,
  stored_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant, actor_key, event_id)
);

CREATE TABLE IF NOT EXISTS processed_events (
  tenant      text             NOT NULL,
  event_id    text             NOT NULL,
  actor_key   text             NOT NULL,
  event_type  text             NOT NULL,
  event_time  timestamptz      NOT NULL,
  value       double precision,
  properties  jsonb,
  received_at timestamptz      NOT NULL,
  late        boolean          NOT NULL,
  minute      timestamptz      NOT NULL,
  hour        timestamptz      NOT NULL,
  processed_at timestamptz     NOT NULL DEFAULT now(),
  request_id  text, -- the correlation ID of the request that brought the event (x-request-id)
  enriched    jsonb, -- fields enrichment rules added (keyflow.config.json)
  PRIMARY KEY (tenant, actor_key, event_id)
);

CREATE TABLE IF NOT EXISTS window_aggregates (
  tenant       text             NOT NULL,
  actor_key    text             NOT NULL,
  event_type   text             NOT NULL, -- '*' for all types together
  size         text             NOT NULL,
  window_start timestamptz      NOT NULL,
  window_end   timestamptz      NOT NULL,
  count        bigint           NOT NULL,
  sum          double precision NOT NULL,
  min          double precision,
  max          double precision,
  avg          double precision,
  revision     integer          NOT NULL,
  final        boolean          NOT NULL,
  updated_at   timestamptz      NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant, actor_key, event_type, size, window_start)
);

CREATE TABLE IF NOT EXISTS failed_events (
  tenant       text        NOT NULL,
  actor_key    text        NOT NULL,
  sink         text        NOT NULL,
  outbox_index bigint      NOT NULL,
  kind         text        NOT NULL,
  event_id     text,
  record       jsonb       NOT NULL,
  error        text        NOT NULL,
  failed_at    timestamptz NOT NULL,
  PRIMARY KEY (tenant, actor_key, sink, outbox_index)
);

-- Detection rules that fired (keyflow.config.json), one row per rule, key and window (issue 12);
-- a database from before alerts gets the table here too.
CREATE TABLE IF NOT EXISTS alerts (
  tenant       text             NOT NULL,
  actor_key    text             NOT NULL,
  rule         text             NOT NULL,
  shape        text             NOT NULL, -- the window's shape, as KEYFLOW_WINDOWS names it ('1m', …)
  window_start timestamptz      NOT NULL,
  window_end   timestamptz      NOT NULL,
  aggregate    text             NOT NULL,
  value        double precision NOT NULL,
  baseline     jsonb, -- zscore rules: {mean, stddev, windows}; change rules: {previous}
  event_id     text, -- the event that made the rule fire; null when the wall clock closed the window
  fired_at     timestamptz      NOT NULL,
  stored_at    timestamptz      NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant, actor_key, rule, shape, window_start)
);

-- Tables made by an older keyflow, brought to the shape above in place (their rows stay):
--  * before tenants, no table had a tenant column: it is added, and every row there is the default
--    tenant's ('default' is the column's default only while it is added: metadata only, no rewrite);
--  * each table's primary key, and the processed_events_actor_time index, are re-keyed to the
--    columns above when they differ (before tenants: the same without tenant; before events were
--    keyed per actor, processed_events had event_id alone). A new key only adds columns to the
--    old one, so the rows that were unique stay unique.
DO $$
DECLARE
  want  record;
  found name;
  cols  name[];
  pk    text;
BEGIN
  FOR want IN
    SELECT * FROM (VALUES
      ('raw_events',        ARRAY['tenant', 'actor_key', 'event_id']),
      ('processed_events',  ARRAY['tenant', 'actor_key', 'event_id']),
      ('window_aggregates', ARRAY['tenant', 'actor_key', 'event_type', 'size', 'window_start']),
      ('failed_events',     ARRAY['tenant', 'actor_key', 'sink', 'outbox_index'])
    ) AS t(tbl, pk)
  LOOP
    IF NOT EXISTS (
      SELECT 1 FROM pg_attribute
      WHERE attrelid = want.tbl::regclass AND attname = 'tenant' AND attnum > 0 AND NOT attisdropped
    ) THEN
      EXECUTE format('ALTER TABLE %I ADD COLUMN tenant text NOT NULL DEFAULT %L', want.tbl, 'default');
      EXECUTE format('ALTER TABLE %I ALTER COLUMN tenant DROP DEFAULT', want.tbl);
    END IF;

    found := NULL;
    cols := NULL;
    SELECT c.conname, array_agg(a.attname ORDER BY k.i) INTO found, cols
    FROM pg_constraint c
    CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, i)
    JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
    WHERE c.conrelid = want.tbl::regclass AND c.contype = 'p'
    GROUP BY c.conname;
    IF cols IS DISTINCT FROM want.pk::name[] THEN
      pk := array_to_string(want.pk, ', '); -- the plain column names listed above
      IF found IS NULL THEN
        EXECUTE format('ALTER TABLE %I ADD PRIMARY KEY (%s)', want.tbl, pk);
      ELSE
        EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I, ADD CONSTRAINT %I PRIMARY KEY (%s)', want.tbl, found, found, pk);
      END IF;
    END IF;
  END LOOP;

  -- The index by actor and time: dropped when it has other columns, and made again below.
  SELECT array_agg(a.attname ORDER BY k.i) INTO cols
  FROM pg_index x
  CROSS JOIN LATERAL unnest(x.indkey::smallint[]) WITH ORDINALITY AS k(attnum, i)
  JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
  WHERE x.indexrelid = to_regclass('processed_events_actor_time');
  IF cols IS DISTINCT FROM ARRAY['tenant', 'actor_key', 'event_time']::name[] THEN
    DROP INDEX IF EXISTS processed_events_actor_time;
  END IF;
END $$;

CREATE INDEX IF NOT EXISTS processed_events_actor_time ON processed_events (tenant, actor_key, event_time);

-- Before correlation IDs were carried to the sinks (nullable, no default: metadata only, no rewrite).
ALTER TABLE processed_events ADD COLUMN IF NOT EXISTS request_id text;
-- Before enrichment rules (issue 12).
ALTER TABLE processed_events ADD COLUMN IF NOT EXISTS enriched jsonb;
-- Issue 12: the window's shape (tumbling, hopping, sliding, session; null in rows from before), and
-- the distinct count and percentiles of a type's row where keyflow.config.json configures them.
ALTER TABLE window_aggregates ADD COLUMN IF NOT EXISTS shape text;
ALTER TABLE window_aggregates ADD COLUMN IF NOT EXISTS distinct_count bigint;
ALTER TABLE window_aggregates ADD COLUMN IF NOT EXISTS percentiles jsonb;
`;
