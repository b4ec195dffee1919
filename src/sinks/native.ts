// The sinks with native clients, for the self-hosted server only (src/runtimes/self-hosted.ts,
// scripts/migrate.ts): never imported by anything the Workers bundle holds (see NativeSinks).
import type { NativeSinks } from "./index.ts";
import { NativeKafkaSink } from "./kafka/native-sink.ts";
import { NativePostgresSink } from "./postgres/native.ts";
import { NativeRedisSink } from "./redis/native.ts";

export const nativeSinks: NativeSinks = {
  redis: (opts) => new NativeRedisSink(opts),
  postgres: (opts) => new NativePostgresSink(opts),
  kafka: (opts) => new NativeKafkaSink(opts),
};
