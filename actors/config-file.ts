import bundled from "keyflow-config";
import type { ConfigFileSource } from "../src/settings/analytics.ts";

/**
 * keyflow.config.json on Workers (docs/analytics-config.md): wrangler bundles the file that wrangler.toml's
 * [alias] "keyflow-config" names, as a JSON module. The default, ./actors/no-config-file.ts, is no file.
 */
export const CONFIG_FILE: ConfigFileSource = { bundled, name: 'keyflow-config (the file wrangler.toml [alias] "keyflow-config" bundles)' };
