import { describe, expect, test } from "bun:test";
import { BoundedValues, Registry } from "../../src/metrics/registry.ts";
import { KeyflowMetrics } from "../../src/metrics/keyflow.ts";
import { routeOf } from "../../src/http/app.ts";

describe("Prometheus registry", () => {
  test("counters, gauges and histograms in the text format, label values escaped", () => {
    const r = new Registry();
    const c = r.counter("x_total", "Things.\nCounted.", ["tenant"]);
    c.inc(["a"]);
    c.inc(["a"], 2);
    c.inc(['q"\\\n']);
    r.gauge("g", "A gauge.").set([], 1.5);
    const h = r.histogram("d_seconds", "Durations.", [], [0.1, 1]);
    h.observe([], 0.05);
    h.observe([], 0.5);
    h.observe([], 5);
    expect(r.text()).toBe(
      [
        "# HELP x_total Things.\\nCounted.",
        "# TYPE x_total counter",
        'x_total{tenant="a"} 3',
        'x_total{tenant="q\\"\\\\\\n"} 1',
        "# HELP g A gauge.",
        "# TYPE g gauge",
        "g 1.5",
        "# HELP d_seconds Durations.",
        "# TYPE d_seconds histogram",
        'd_seconds_bucket{le="0.1"} 1',
        'd_seconds_bucket{le="1"} 2',
        'd_seconds_bucket{le="+Inf"} 3',
        "d_seconds_sum 5.55",
        "d_seconds_count 3",
        "",
      ].join("\n"),
    );
    expect(() => r.counter("x_total", "again")).toThrow("registered twice");
    expect(() => c.inc(["a", "b"])).toThrow("takes labels tenant");
  });

  test("a client-chosen label keeps at most its bound of values; the rest are _other", () => {
    const b = new BoundedValues(2);
    expect(["a", "b", "c", "a", "d"].map((v) => b.of(v))).toEqual(["a", "b", "_other", "a", "_other"]);
    const m = new KeyflowMetrics();
    for (let i = 0; i < 500; i++) m.event("t", `type${i}`, "accepted");
    const series = m.text().split("\n").filter((l) => l.startsWith("keyflow_events_total{"));
    expect(series.length).toBe(201);
    expect(series).toContain('keyflow_events_total{tenant="t",type="_other",outcome="accepted"} 300');
  });

  test("routes are labelled by pattern, never by the key in them", () => {
    expect(routeOf("http://h:1/v1/events")).toBe("/v1/events");
    expect(routeOf("http://h/v1/actors/alice?x=1")).toBe("/v1/actors/:key");
    expect(routeOf("http://h/v1/actors/a%2Fb/dlq/replay?ids=1")).toBe("/v1/actors/:key/dlq/replay");
    expect(routeOf("http://h/v1/actors/bob/windows")).toBe("/v1/actors/:key/windows");
    for (const url of ["http://h/v1/actors/", "http://h/v1/actors//late", "http://h/v1/actors/x/secret", "http://h/wp-admin", "http://h"]) {
      expect(routeOf(url), url).toBe("unmatched");
    }
  });
});
