/** Tables of the Postgres sink; `npm run migrate` applies them (idempotent). */
export const POSTGRES_SCHEMA = `
CREATE TABLE IF NOT EXISTS raw_events (
  actor_key   text        NOT NULL,
  event_id    text        NOT NULL,
  payload     jsonb       NOT NULL,
  received_at timestamptz NOT NULL,
  stored_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (actor_key, event_id)
);

CREATE TABLE IF NOT EXISTS processed_events (
  event_id    text             PRIMARY KEY,
  actor_key   text             NOT NULL,
  event_type  text             NOT NULL,
  event_time  timestamptz      NOT NULL,
  value       double precision,
  properties  jsonb,
  received_at timestamptz      NOT NULL,
  late        boolean          NOT NULL,
  minute      timestamptz      NOT NULL,
  hour        timestamptz      NOT NULL,
  processed_at timestamptz     NOT NULL DEFAULT now()
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
`;
