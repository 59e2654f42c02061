// openai-client.mjs — OpenAI's own npm client (the `openai` package, unchanged) against
// `gpux serve`: lists the models, asks for a completion and a chat completion, and streams one,
// timing when each piece arrives. Prints one JSON line for tests/serve/generate.sh to check.
//   node openai-client.mjs BASE_URL MODEL
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const nodeModules = process.env.GPUX_NODE_MODULES || path.join(here, '../../deps/npm/node_modules');
const OpenAI = createRequire(path.join(nodeModules, 'noop.js'))('openai').default;

const [base, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'not-needed', maxRetries: 0 });
const models = (await client.models.list()).data.map((m) => m.id);
const completion = await client.completions.create({ model, prompt: 'Hello', max_tokens: 8, repetition_penalty: 100 });
const chat = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4 });
const t0 = performance.now();
const times = [];
let streamed = '', finish = null;
const stream = await client.chat.completions.create({
  model, messages: [{ role: 'user', content: 'Tell me a story' }], max_tokens: 24, stream: true, repetition_penalty: 100,
});
for await (const chunk of stream) {
  const c = chunk.choices[0];
  if (c.delta?.content) { streamed += c.delta.content; times.push(performance.now() - t0); }
  if (c.finish_reason) finish = c.finish_reason;
}
console.log(JSON.stringify({
  models, completion: completion.choices[0].text, completion_finish: completion.choices[0].finish_reason,
  usage: completion.usage, chat: chat.choices[0].message, streamed, finish, pieces: times.length,
  first_ms: times[0], last_ms: times[times.length - 1],
}));
