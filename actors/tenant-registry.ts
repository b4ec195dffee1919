import { DurableObject } from "cloudflare:workers";
import { TenantRegistry as Registry, type Admission, type TenantLimits } from "../src/hosts/durable/tenant-registry.ts";
import { DurableObjectKvStore } from "../src/hosts/durable/do-store.ts";
import type { WorkerEnv } from "../src/hosts/durable/env.ts";

/** One tenant's registry of keys and stored bytes (quotas on Workers): RPC glue over src/hosts/durable/tenant-registry.ts. */
export class TenantRegistry extends DurableObject<WorkerEnv> {
  private readonly registry: Registry;

  constructor(ctx: DurableObjectState, env: WorkerEnv) {
    super(ctx, env);
    this.registry = new Registry(new DurableObjectKvStore(ctx.storage));
  }

  async admit(name: string, limits: TenantLimits): Promise<Admission> {
    return this.registry.admit(name, limits);
  }

  async report(name: string, bytes: number, limits: TenantLimits): Promise<Admission> {
    return this.registry.report(name, bytes, limits);
  }
}
