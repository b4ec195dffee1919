// The API reference at /docs: Scalar (vendored as /assets/scalar.js) showing this server's /openapi.json.
// Nothing is loaded from or sent to anywhere else: Scalar's web fonts, telemetry, AI agent and
// developer toolbar are off, and the page's CSP (connect-src 'self') would refuse them anyway.
Scalar.createApiReference("#app", {
  url: "/openapi.json",
  withDefaultFonts: false,
  telemetry: false,
  agent: { disabled: true },
  showDeveloperTools: "never",
  persistAuth: false,
  authentication: { preferredSecurityScheme: "apiKey" },
  documentDownloadType: "json",
});
