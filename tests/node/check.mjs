// The official openai Node.js SDK against a running gateway: chat and streaming, and the Responses API
// (create, and the stream helper whose accumulator checks the event order).
// Usage: node check.mjs <base_url> <api_key> <model>; prints one JSON line of results.
import OpenAI from "openai";

const [baseURL, apiKey, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });

const completion = await client.chat.completions.create({
  model,
  messages: [{ role: "user", content: "hello from node" }],
});

let streamed = "";
let finish = null;
let usage = null;
const stream = await client.chat.completions.create({
  model,
  messages: [{ role: "user", content: "stream from node" }],
  stream: true,
  stream_options: { include_usage: true },
});
for await (const chunk of stream) {
  if (chunk.usage) usage = chunk.usage;
  for (const choice of chunk.choices) {
    streamed += choice.delta?.content ?? "";
    if (choice.finish_reason) finish = choice.finish_reason;
  }
}

const response = await client.responses.create({ model, input: "respond from node" });
const responseStream = client.responses.stream({ model, input: "respond in a stream" });
let responseDeltas = "";
for await (const event of responseStream) {
  if (event.type === "response.output_text.delta") responseDeltas += event.delta;
}
const final = await responseStream.finalResponse();

console.log(JSON.stringify({
  chat: completion.choices[0].message.content, streamed, finish, usage,
  response: response.output_text, responseUsage: response.usage,
  responseStreamed: responseDeltas, responseFinal: final.output_text, responseStatus: final.status,
}));
