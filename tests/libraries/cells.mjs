// The client-library matrix's column for the official openai Node.js SDK (tests/node, pinned): the cells of
// cells.py (a tool call, a tool round trip, a streamed answer, structured output, JSON mode), per provider.
// Usage: node cells.mjs <spec.json> <out.json>, the key in XROUTER_MATRIX_KEY. The spec (written by
// test_matrix.py) holds the base URL, the providers' models, the prompts and the nested model's JSON schema
// (pydantic's, $defs and $ref included); the test validates what comes back against the pydantic model.
// A socket guard refuses and records every connection and name lookup that is not loopback.
import dns from "node:dns";
import fs from "node:fs";
import { createRequire } from "node:module";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";

const violations = [];

class NonLoopbackConnection extends Error {}

function isLoopback(host) {
  if (host === undefined || host === null || host === "localhost") return true;  // net's default host is localhost
  const bare = String(host).replace(/^\[|\]$/g, "").split("%")[0];
  if (net.isIPv4(bare)) return bare.startsWith("127.");
  if (net.isIPv6(bare)) return bare === "::1" || bare.toLowerCase().startsWith("::ffff:127.");
  return false;
}

function refuse(what) {
  violations.push(what);
  throw new NonLoopbackConnection(`socket guard: a non-loopback connection was attempted: ${what}`);
}

const realConnect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function connect(...args) {
  const first = Array.isArray(args[0]) ? args[0][0] : args[0];
  if (first && typeof first === "object") {
    if (!first.path && !isLoopback(first.host)) refuse(`connect ${first.host}:${first.port}`);
  } else if (typeof first === "number" || /^\d+$/.test(String(first))) {
    if (typeof args[1] === "string" && !isLoopback(args[1])) refuse(`connect ${args[1]}:${first}`);
  }
  return realConnect.apply(this, args);
};
for (const name of ["lookup", "resolve", "resolve4", "resolve6"]) {
  const real = dns[name];
  dns[name] = function guarded(host, ...rest) {
    if (!isLoopback(host)) refuse(`${name} ${host}`);
    return real.call(this, host, ...rest);
  };
}

function probeGuard() {
  const refused = [];
  const before = violations.length;
  for (const attempt of [() => net.connect({ host: "192.0.2.1", port: 443 }), () => dns.lookup("api.openai.com", () => {})]) {
    try {
      const socket = attempt();
      if (socket?.destroy) socket.destroy();
      refused.push(false);
    } catch (error) {
      refused.push(error instanceof NonLoopbackConnection);
    }
  }
  violations.splice(before);
  return { refused };
}

const [specPath, outPath] = process.argv.slice(2);
const spec = JSON.parse(fs.readFileSync(specPath, "utf8"));
const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "..", "node", "package.json"));  // the SDK lives in tests/node
const { default: OpenAI } = await import(require.resolve("openai"));
const client = new OpenAI({ baseURL: spec.base_url, apiKey: process.env.XROUTER_MATRIX_KEY, maxRetries: 0, timeout: 30000 });

const weatherTool = { type: "function", function: { name: "get_weather", description: "The weather in a city",
  parameters: spec.weather_parameters } };
const ask = (content) => [{ role: "user", content }];

const cells = {
  async tool_call(model) {
    const first = await client.chat.completions.create({ model, messages: ask(spec.question), tools: [weatherTool] });
    const call = first.choices[0].message.tool_calls[0];
    return { name: call.function.name, arguments: JSON.parse(call.function.arguments) };
  },
  async tool_round_trip(model) {
    const messages = ask(spec.question);
    const first = await client.chat.completions.create({ model, messages, tools: [weatherTool] });
    const message = first.choices[0].message;
    messages.push(message, { role: "tool", tool_call_id: message.tool_calls[0].id, content: spec.tool_output });
    const second = await client.chat.completions.create({ model, messages, tools: [weatherTool] });
    return { answer: second.choices[0].message.content };
  },
  async stream(model) {
    const deltas = [];
    const stream = await client.chat.completions.create({ model, messages: ask(spec.long_prompt), stream: true });
    for await (const chunk of stream) {
      const content = chunk.choices[0]?.delta?.content;
      if (content) deltas.push(content);
    }
    return { deltas };
  },
  async structured(model) {
    const completion = await client.chat.completions.create({ model, messages: ask(spec.describe),
      response_format: { type: "json_schema", json_schema: { name: "Person", schema: spec.person_schema } } });
    return { type: "Person", value: JSON.parse(completion.choices[0].message.content) };
  },
  async json_mode(model) {
    const completion = await client.chat.completions.create({ model, messages: ask(spec.json_prompt),
      response_format: { type: "json_object" } });
    return { type: "Answer", value: JSON.parse(completion.choices[0].message.content) };
  },
};

const guard = probeGuard();
const results = {};
for (const [provider, model] of Object.entries(spec.providers)) {
  for (const [cell, run] of Object.entries(cells)) {
    try {
      results[`openai-node/${provider}/${cell}`] = { ok: await run(model) };
    } catch (error) {
      results[`openai-node/${provider}/${cell}`] = { error: {
        type: error?.constructor?.name ?? "Error", status: typeof error?.status === "number" ? error.status : null,
        body: error?.error ? { error: error.error } : null, traceback: String(error?.stack ?? error).slice(0, 6000) } };
    }
  }
}
fs.writeFileSync(outPath, JSON.stringify({ guard, results, violations }));
