/**
 * Tables of the Postgres sink, and the changes that bring tables made by an older keyflow up to date.
 * `npm run migrate` applies both; every statement is idempotent, so it may run any number of times.
 */
export const POSTGRES_SCHEMA = `
-- One migration at a time (the statements below run as one transaction, which holds the lock).
SELECT pg_advisory_xact_lock(hashtext('keyflow.migrate'));

CREATE TABLE IF NOT EXISTS raw_events (
  actor_key   text        NOT NULL,
  event_id    text        NOT NULL,
  payload     jsonb       NOT NULL,
  received_at timestamptz NOT NULL,
  stored_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (actor_key, event_id)
);

CREATE TABLE IF NOT EXISTS processed_events (
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
  PRIMARY KEY (actor_key, event_id)
);
CREATE INDEX IF NOT EXISTS processed_events_actor_time ON processed_events (actor_key, event_time);

CREATE TABLE IF NOT EXISTS window_aggregates (
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
  PRIMARY KEY (actor_key, event_type, size, window_start)
);

CREATE TABLE IF NOT EXISTS failed_events (
  actor_key    text        NOT NULL,
  sink         text        NOT NULL,
  outbox_index bigint      NOT NULL,
  kind         text        NOT NULL,
  event_id     text,
  record       jsonb       NOT NULL,
  error        text        NOT NULL,
  failed_at    timestamptz NOT NULL,
  PRIMARY KEY (actor_key, sink, outbox_index)
);

-- Tables made before events were keyed per actor: processed_events had event_id alone as its
-- primary key, so the same event_id accepted on two keys was stored once (the second insert was
-- ignored as a conflict). Re-key such a table by (actor_key, event_id) in place; its rows stay.
DO $$
DECLARE
  pk   name;
  cols name[];
BEGIN
  SELECT c.conname, array_agg(a.attname ORDER BY k.i) INTO pk, cols
  FROM pg_constraint c
  CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, i)
  JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
  WHERE c.conrelid = 'processed_events'::regclass AND c.contype = 'p'
  GROUP BY c.conname;
  IF cols IS DISTINCT FROM ARRAY['actor_key', 'event_id']::name[] THEN
    IF pk IS NULL THEN
      ALTER TABLE processed_events ADD PRIMARY KEY (actor_key, event_id);
    ELSE
      EXECUTE format('ALTER TABLE processed_events DROP CONSTRAINT %I, ADD CONSTRAINT %I PRIMARY KEY (actor_key, event_id)', pk, pk);
    END IF;
  END IF;
END $$;
`;
