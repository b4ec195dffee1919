// The baseline server of `bun run bench`: Bun.serve that parses the same JSON and answers 202, nothing else.
const server = Bun.serve({
  hostname: "127.0.0.1",
  port: Number(process.env.PORT ?? 0),
  async fetch(req) {
    const event = (await req.json()) as { event_id?: string };
    return Response.json({ status: "accepted", event_id: event.event_id }, { status: 202 });
  },
});
console.log(`bare baseline listening on http://127.0.0.1:${server.port}`);
