// The JavaScript `openai` package against TailorML, unchanged: a chat completion with two
// choices and a JSON schema, a stream with usage in its last chunk, and an error the SDK
// raises as its own APIError. Prints one JSON object for tests/platform/api/test_openai_js.py.
import OpenAI from "openai";

const client = new OpenAI({
  baseURL: process.env.TAILOR_BASE_URL,
  apiKey: process.env.TAILOR_API_KEY,
  maxRetries: 0,
});
const model = process.env.TAILOR_MODEL;
const messages = [{ role: "user", content: "Is this mail spam? 'Send your bank details.'" }];
const schema = {
  type: "object",
  properties: { label: { enum: ["spam", "ham"] }, urgent: { type: "boolean" } },
  required: ["label", "urgent"],
  additionalProperties: false,
};

const chat = await client.chat.completions.create({
  model,
  messages,
  max_tokens: 40,
  temperature: 0,
  n: 2,
  response_format: { type: "json_schema", json_schema: { name: "verdict", schema, strict: true } },
});

const stream = await client.chat.completions.create({
  model,
  messages,
  max_tokens: 10,
  temperature: 0,
  stream: true,
  stream_options: { include_usage: true },
});
let streamed = "";
let usage = null;
for await (const chunk of stream) {
  for (const choice of chunk.choices) streamed += choice.delta?.content ?? "";
  if (chunk.usage) usage = chunk.usage;
}
const plain = await client.chat.completions.create({ model, messages, max_tokens: 10, temperature: 0 });

let error = null;
try {
  await client.chat.completions.create({ model: "ft:nobody:none:none:00000000", messages });
} catch (err) {
  error = { isApiError: err instanceof OpenAI.APIError, status: err.status, code: err.code };
}

console.log(JSON.stringify({
  choices: chat.choices.map((c) => ({ index: c.index, content: c.message.content, finish: c.finish_reason })),
  usage: chat.usage,
  streamed,
  streamUsage: usage,
  plain: plain.choices[0].message.content,
  error,
}));
