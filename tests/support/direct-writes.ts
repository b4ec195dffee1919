/**
 * The baseline of the sinks benchmarks: the same client writing the same rows as a sink, with the
 * simplest code and none of keyflow around it. Postgres: one statement inserting raw_events and
 * processed_events from jsonb_to_recordset (no ON CONFLICT); Redis: one pipeline of XADD with the
 * same fields and ids (no trim, no TTL); Kafka: one REST v2 binary produce with the same key, value
 * and headers. Used by scripts/bench-sinks.ts (bun run bench) and tests/support/sink-throughput.ts.
 */
import type { Pool } from "@neondatabase/serverless";
import type { Redis } from "@upstash/redis";
import type { EventRecord } from "../../src/actor/outbox.ts";
import { eventRecordView, iso } from "../../src/delivery/records.ts";
import { splitActorName } from "../../src/actor/tenant.ts";
import { base64 } from "../../src/sinks/http.ts";
import { RedisSink } from "../../src/sinks/redis/sink.ts";
import { BRIDGE_URL } from "./kafka.ts";

export type DirectWrite = (records: EventRecord[]) => Promise<void>;

const floorIso = (ms: number, size: number) => iso(Math.floor(ms / size) * size);

export function directPostgres(pool: Pool): DirectWrite {
  return async (records) => {
    const rows = records.map((e) => ({
      ...splitActorName(e.key), event_id: e.id, payload: eventRecordView(e), event_type: e.type, event_time: iso(e.ts),
      value: e.value ?? null, properties: e.properties ?? null, received_at: iso(e.receivedAt), late: e.late,
      minute: floorIso(e.ts, 60_000), hour: floorIso(e.ts, 3_600_000),
    }));
    await pool.query(
      `WITH r AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS r(tenant text, key text, event_id text, payload jsonb, event_type text,
         event_time timestamptz, value double precision, properties jsonb, received_at timestamptz, late boolean, minute timestamptz, hour timestamptz)),
       raw AS (INSERT INTO raw_events (tenant, actor_key, event_id, payload, received_at) SELECT tenant, key, event_id, payload, received_at FROM r)
       INSERT INTO processed_events (tenant, actor_key, event_id, event_type, event_time, value, properties, received_at, late, minute, hour)
       SELECT tenant, key, event_id, event_type, event_time, value, properties, received_at, late, minute, hour FROM r`,
      [JSON.stringify(rows)],
    );
  };
}

/** Streams named as the sink names them (RedisSink.streamKey: `prefix` + "events:" + key for the default tenant). */
export function directRedis(redis: Redis, prefix: string): DirectWrite {
  return async (records) => {
    const pipeline = redis.pipeline();
    for (const r of records) {
      const { tenant, key } = splitActorName(r.key);
      const fields: Record<string, string> = {
        tenant, event_id: r.id, event_type: r.type, timestamp: String(r.ts), late: r.late ? "1" : "0",
        data: JSON.stringify({ value: r.value ?? null, properties: r.properties ?? null, received_at: r.receivedAt }),
      };
      if (r.value !== undefined) fields.value = String(r.value);
      pipeline.xadd(RedisSink.streamKey(prefix, tenant, key), `${r.n + 1}-0`, fields);
    }
    const results = (await pipeline.exec({ keepErrors: true })) as Array<{ error?: string }>;
    const failed = results.find((r) => r?.error);
    if (failed) throw new Error(`direct redis: ${failed.error}`);
  };
}

export function directKafka(topic: string): DirectWrite {
  return async (records) => {
    const body = JSON.stringify({
      records: records.map((r) => {
        const { tenant, key } = splitActorName(r.key);
        return {
          key: base64(key),
          value: base64(JSON.stringify(eventRecordView(r))),
          headers: [{ key: "event_id", value: base64(r.id) }, { key: "event_type", value: base64(r.type) }, { key: "tenant", value: base64(tenant) }],
        };
      }),
    });
    const res = await fetch(`${BRIDGE_URL}/topics/${encodeURIComponent(topic)}`, {
      method: "POST",
      headers: { "content-type": "application/vnd.kafka.binary.v2+json", accept: "application/vnd.kafka.v2+json" },
      body,
    });
    if (!res.ok) throw new Error(`direct kafka: HTTP ${res.status} ${(await res.text()).slice(0, 300)}`);
    const { offsets } = (await res.json()) as { offsets: Array<{ error_code?: number; message?: string }> };
    const failed = offsets.find((o) => o.error_code);
    if (failed) throw new Error(`direct kafka: ${failed.error_code} ${failed.message ?? ""}`);
  };
}
