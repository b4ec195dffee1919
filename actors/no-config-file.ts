/** The default of wrangler.toml's [alias] "keyflow-config": no keyflow.config.json (actors/config-file.ts). */
export default undefined;
