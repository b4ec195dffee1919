/**
 * A small Prometheus registry: counters, gauges and histograms with fixed label names, written in
 * the text exposition format (0.0.4). Hand-written rather than prom-client, which loads fs, path and
 * os at import time and so cannot run on Workers; this one runs on every host. Gauges that mirror
 * state elsewhere are filled by collectors just before each scrape.
 */

type Labels = readonly string[];

/**
 * A counter's or a histogram's series as plain data: what a reporter on Workers drains from its own
 * registry and sends to the metrics hub, and what the hub keeps as its totals and adds up.
 */
export type Series =
  | { name: string; labels: string[]; value: number }
  | { name: string; labels: string[]; counts: number[]; sum: number; count: number };

/** Label values as one map key: the values never hold NUL (tenants, types and routes are validated). */
const keyOf = (values: Labels) => values.join("\u0000");

const escapeValue = (v: string) => v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
const escapeHelp = (v: string) => v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");

function labelText(names: Labels, values: Labels, extra?: [string, string]): string {
  const pairs = names.map((n, i) => `${n}="${escapeValue(values[i]!)}"`);
  if (extra) pairs.push(`${extra[0]}="${extra[1]}"`);
  return pairs.length ? `{${pairs.join(",")}}` : "";
}

function formatNumber(n: number): string {
  if (Number.isNaN(n)) return "NaN";
  if (n === Infinity) return "+Inf";
  if (n === -Infinity) return "-Inf";
  return String(n);
}

abstract class Metric {
  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: Labels,
  ) {}

  abstract readonly type: "counter" | "gauge" | "histogram";
  abstract lines(): string[];

  protected check(values: Labels): void {
    if (values.length !== this.labelNames.length) throw new Error(`${this.name} takes labels ${this.labelNames.join(", ")}`);
  }
}

export class Counter extends Metric {
  readonly type = "counter";
  private readonly series = new Map<string, { values: Labels; value: number }>();

  inc(values: Labels = [], by = 1): void {
    const key = keyOf(values);
    const s = this.series.get(key);
    if (s) s.value += by;
    else {
      this.check(values);
      this.series.set(key, { values: [...values], value: by });
    }
  }

  /** Sets a counter kept elsewhere (a channel's own count), read at scrape time. */
  set(values: Labels, value: number): void {
    const s = this.series.get(keyOf(values));
    if (s) s.value = value;
    else {
      this.check(values);
      this.series.set(keyOf(values), { values: [...values], value });
    }
  }

  lines(): string[] {
    return [...this.series.values()].map((s) => `${this.name}${labelText(this.labelNames, s.values)} ${formatNumber(s.value)}`);
  }

  data(): Series[] {
    return [...this.series.values()].map((s) => ({ name: this.name, labels: [...s.values], value: s.value }));
  }

  total(values: Labels): Series | undefined {
    const s = this.series.get(keyOf(values));
    return s && { name: this.name, labels: [...s.values], value: s.value };
  }

  clear(): void {
    this.series.clear();
  }
}

export class Gauge extends Metric {
  readonly type = "gauge";
  private readonly series = new Map<string, { values: Labels; value: number }>();

  set(values: Labels, value: number): void {
    const key = keyOf(values);
    const s = this.series.get(key);
    if (s) s.value = value;
    else {
      this.check(values);
      this.series.set(key, { values: [...values], value });
    }
  }

  /** Forgets every series (a collector about to set the ones that exist now). */
  reset(): void {
    this.series.clear();
  }

  lines(): string[] {
    return [...this.series.values()].map((s) => `${this.name}${labelText(this.labelNames, s.values)} ${formatNumber(s.value)}`);
  }
}

/** Seconds: from 1 ms to 10 s, for request, commit and delivery durations. */
export const DURATION_BUCKETS_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export class Histogram extends Metric {
  readonly type = "histogram";
  private readonly series = new Map<string, { values: Labels; counts: number[]; sum: number; count: number }>();

  constructor(name: string, help: string, labelNames: Labels, readonly buckets: readonly number[] = DURATION_BUCKETS_S) {
    super(name, help, labelNames);
  }

  observe(values: Labels, value: number): void {
    const key = keyOf(values);
    let s = this.series.get(key);
    if (!s) {
      this.check(values);
      this.series.set(key, (s = { values: [...values], counts: new Array(this.buckets.length).fill(0), sum: 0, count: 0 }));
    }
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]!) s.counts[i]!++;
    s.sum += value;
    s.count++;
  }

  /** Adds another histogram's buckets (same bounds), sum and count to a series. */
  add(values: Labels, counts: readonly number[], sum: number, count: number): void {
    const key = keyOf(values);
    let s = this.series.get(key);
    if (!s) {
      this.check(values);
      this.series.set(key, (s = { values: [...values], counts: new Array(this.buckets.length).fill(0), sum: 0, count: 0 }));
    }
    counts.forEach((n, i) => (s.counts[i]! += n));
    s.sum += sum;
    s.count += count;
  }

  data(): Series[] {
    return [...this.series.values()].map((s) => ({ name: this.name, labels: [...s.values], counts: [...s.counts], sum: s.sum, count: s.count }));
  }

  total(values: Labels): Series | undefined {
    const s = this.series.get(keyOf(values));
    return s && { name: this.name, labels: [...s.values], counts: [...s.counts], sum: s.sum, count: s.count };
  }

  clear(): void {
    this.series.clear();
  }

  lines(): string[] {
    const out: string[] = [];
    for (const s of this.series.values()) {
      this.buckets.forEach((le, i) => out.push(`${this.name}_bucket${labelText(this.labelNames, s.values, ["le", formatNumber(le)])} ${s.counts[i]}`));
      out.push(`${this.name}_bucket${labelText(this.labelNames, s.values, ["le", "+Inf"])} ${s.count}`);
      out.push(`${this.name}_sum${labelText(this.labelNames, s.values)} ${formatNumber(s.sum)}`);
      out.push(`${this.name}_count${labelText(this.labelNames, s.values)} ${s.count}`);
    }
    return out;
  }
}

/**
 * Keeps a label's distinct values bounded: the first `max` values seen are themselves, any later one
 * is "_other". For client-chosen values such as event types (actor keys are never a label).
 */
export class BoundedValues {
  private readonly seen = new Set<string>();
  constructor(private readonly max: number) {}

  of(value: string): string {
    if (this.seen.has(value)) return value;
    if (this.seen.size >= this.max) return "_other";
    this.seen.add(value);
    return value;
  }
}

export class Registry {
  private readonly metrics: Metric[] = [];
  private readonly collectors: Array<() => void> = [];

  counter(name: string, help: string, labelNames: Labels = []): Counter {
    return this.add(new Counter(name, help, labelNames));
  }

  gauge(name: string, help: string, labelNames: Labels = []): Gauge {
    return this.add(new Gauge(name, help, labelNames));
  }

  histogram(name: string, help: string, labelNames: Labels = [], buckets?: readonly number[]): Histogram {
    return this.add(new Histogram(name, help, labelNames, buckets));
  }

  /** Runs before every scrape: sets gauges (and mirrored counters) from the state they describe. */
  onCollect(collect: () => void): void {
    this.collectors.push(collect);
  }

  /** The exposition text: HELP and TYPE for every metric, then its series. */
  text(): string {
    for (const collect of this.collectors) collect();
    const out: string[] = [];
    for (const m of this.metrics) {
      out.push(`# HELP ${m.name} ${escapeHelp(m.help)}`, `# TYPE ${m.name} ${m.type}`, ...m.lines());
    }
    return `${out.join("\n")}\n`;
  }

  /** The counters' and histograms' series as data; `drain` then starts them again from zero (a reporter's delta). */
  series(drain = false): Series[] {
    const out: Series[] = [];
    for (const m of this.metrics) {
      if (!(m instanceof Counter || m instanceof Histogram)) continue;
      out.push(...m.data());
      if (drain) m.clear();
    }
    return out;
  }

  /**
   * Adds series (other registries' deltas, or stored totals) to the counters and histograms of the
   * same names; a series of an unknown name or of the wrong shape is skipped. `relabel` may rewrite
   * label values (to bound them). Returns the series it changed, with their new totals.
   */
  absorb(series: Iterable<Series>, relabel?: (labelNames: Labels, labels: Labels) => Labels): Series[] {
    const touched = new Map<string, { metric: Counter | Histogram; labels: Labels }>();
    for (const s of series) {
      const metric = this.metrics.find((m) => m.name === s.name);
      if (!metric || !Array.isArray(s.labels) || s.labels.length !== metric.labelNames.length || !s.labels.every((l) => typeof l === "string")) continue;
      const labels = relabel ? relabel(metric.labelNames, s.labels) : s.labels;
      if (metric instanceof Counter && "value" in s && Number.isFinite(s.value)) metric.inc(labels, s.value);
      else if (metric instanceof Histogram && "counts" in s && validHistogram(s, metric.buckets.length)) metric.add(labels, s.counts, s.sum, s.count);
      else continue;
      touched.set(keyOf([s.name, ...labels]), { metric, labels });
    }
    return [...touched.values()].map(({ metric, labels }) => metric.total(labels)!);
  }

  private add<T extends Metric>(metric: T): T {
    if (this.metrics.some((m) => m.name === metric.name)) throw new Error(`metric ${metric.name} is registered twice`);
    this.metrics.push(metric);
    return metric;
  }
}

function validHistogram(s: { counts: unknown; sum: unknown; count: unknown }, buckets: number): s is { counts: number[]; sum: number; count: number } {
  return Array.isArray(s.counts) && s.counts.length === buckets && s.counts.every((n) => Number.isFinite(n)) && Number.isFinite(s.sum) && Number.isFinite(s.count);
}
