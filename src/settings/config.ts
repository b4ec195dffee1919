import { DEFAULT_ACTOR_CONFIG, type ActorConfig } from "../actor/config.ts";
import { DEFAULT_DELIVERY_POLICY, type DeliveryPolicy } from "../delivery/policy.ts";

/** Everything the KEYFLOW_* variables set for actors, their hosts and the HTTP layer. */
export interface Config extends ActorConfig {
  maxBatchEvents: number;
  maxBodyBytes: number;
  maxActorsInMemory: number;
  /**
   * Self-hosted: how long an actor's changes may live only in the commit journal before they are
   * checkpointed into its own rows. Longer means fewer writes under load and a longer replay on restart.
   */
  checkpointIntervalMs: number;
  /**
   * How long an idle sink lingers before sending a batch that is not full, so that a burst goes out
   * together. A busy sink sends the next batch as soon as the last one lands.
   */
  sinkMaxDelayMs: number;
  delivery: DeliveryPolicy;
}

export const DEFAULT_CONFIG: Config = {
  ...DEFAULT_ACTOR_CONFIG,
  maxBatchEvents: 10_000,
  maxBodyBytes: 5 * 1024 * 1024,
  maxActorsInMemory: 10_000,
  checkpointIntervalMs: 1_000,
  sinkMaxDelayMs: 5,
  delivery: DEFAULT_DELIVERY_POLICY,
};

/** A bad setting; `problems` names each variable and what is wrong with it. */
export class ConfigError extends Error {
  override name = "ConfigError";
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join("\n  ")}`);
  }
}
