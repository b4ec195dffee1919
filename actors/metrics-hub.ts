import { DurableObject } from "cloudflare:workers";
import { MetricsHub as Hub, type MetricsReport } from "../src/hosts/durable/metrics-hub.ts";
import { DurableObjectKvStore } from "../src/hosts/durable/do-store.ts";
import { stringVars, type WorkerEnv } from "../src/hosts/durable/env.ts";
import type { ChannelStatus } from "../src/delivery/channel.ts";
import { readSettings } from "../src/settings/env.ts";
import { UsageMeter } from "../src/hosts/durable/usage.ts";

/**
 * The metrics of every isolate and key on Workers, summed (binding METRICS, one object): RPC glue
 * over src/hosts/durable/metrics-hub.ts. Isolates and key objects report to it; GET /metrics and
 * /ready read it.
 */
export class MetricsHub extends DurableObject<WorkerEnv> {
  private readonly hub: Hub;
  /** The hub's own billed requests and rows, shown as object="metrics" (in memory only). */
  private readonly usage = new UsageMeter();

  constructor(ctx: DurableObjectState, env: WorkerEnv) {
    super(ctx, env);
    this.hub = new Hub(new DurableObjectKvStore(ctx.storage, this.usage), { sinks: readSettings(stringVars(env)).config.sinks });
  }

  async report(report: MetricsReport): Promise<{ applied: boolean }> {
    this.usage.call();
    return this.hub.report(report, Date.now());
  }

  async text(): Promise<string> {
    this.usage.call();
    this.hub.countOwn(this.usage.drain());
    return this.hub.text(Date.now());
  }

  async sinkStatus(): Promise<ChannelStatus[]> {
    this.usage.call();
    return this.hub.sinkStatus(Date.now());
  }
}
