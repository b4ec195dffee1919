/** keyflow.config.json as wrangler bundles it: the module wrangler.toml's [alias] "keyflow-config" names (actors/config-file.ts). */
declare module "keyflow-config" {
  const file: unknown;
  export default file;
}
