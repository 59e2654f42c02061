// client.mjs — the HTTP client side of tests/serve/serve.sh (node, no packages):
//   metrics URL            parse /metrics as Prometheus text (checking the format: TYPE lines,
//                          cumulative buckets, +Inf == _count) and print "series value" lines
//   batch URL MODEL N      N concurrent OIP v2 requests to the tiny audio model, each with its own
//                          input; checks each caller gets its own logits
//   flood URL PATH N BODY  N concurrent POSTs; prints "CODE count" lines and retry-after=yes|no
//   load URL PATH SECS C   C keep-alive clients for SECS seconds; prints requests=N errors=N
//   disconnect HOST PORT   clients that vanish mid-body and mid-inference
import http from "node:http";
import net from "node:net";

const [cmd, ...args] = process.argv.slice(2);
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

function request(url, { method = "GET", body, headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, agent, headers }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on("error", reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

function parsePrometheus(text) {
  const types = new Map(), samples = new Map();
  for (const line of text.split("\n")) {
    if (!line) continue;
    let m;
    if ((m = line.match(/^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/))) { types.set(m[1], m[2]); continue; }
    if (line.startsWith("# HELP ")) continue;
    if (line.startsWith("#")) throw new Error(`bad comment: ${line}`);
    m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? ([-+0-9.eE]+|NaN|\+Inf|-Inf)$/);
    if (!m) throw new Error(`bad sample line: ${line}`);
    const labels = {};
    if (m[3]) for (const l of m[3].split(/,(?=[a-zA-Z_])/)) {
      const lm = l.match(/^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"$/);
      if (!lm) throw new Error(`bad label in: ${line}`);
      labels[lm[1]] = lm[2];
    }
    const family = m[1].replace(/_(bucket|sum|count)$/, "");
    if (!types.has(m[1]) && !(types.get(family) === "histogram")) throw new Error(`no TYPE for ${m[1]}`);
    samples.set(`${m[1]}${m[2] || ""}`, { name: m[1], family, labels, value: Number(m[4]) });
  }
  // histograms: cumulative buckets ending in +Inf equal to _count
  for (const [fam, type] of types) {
    if (type !== "histogram") continue;
    const groups = new Map();
    for (const s of samples.values()) {
      if (s.name !== `${fam}_bucket`) continue;
      const { le, ...rest } = s.labels;
      const key = JSON.stringify(rest);
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push([le === "+Inf" ? Infinity : Number(le), s.value]);
    }
    for (const [key, buckets] of groups) {
      let prev = -1;
      for (const [, v] of buckets) { if (v < prev) throw new Error(`${fam}${key}: buckets not cumulative`); prev = v; }
      const inf = buckets.find(([le]) => le === Infinity);
      const labels = Object.entries(JSON.parse(key)).map(([k, v]) => `${k}="${v}"`).join(",");
      const count = samples.get(`${fam}_count{${labels}}`);
      if (!inf || !count || inf[1] !== count.value) throw new Error(`${fam}{${labels}}: +Inf bucket != _count`);
    }
  }
  return samples;
}

async function main() {
  if (cmd === "metrics") {
    const r = await request(`${args[0]}/metrics`);
    if (r.status !== 200 || !/^text\/plain; version=0\.0\.4/.test(r.headers["content-type"])) throw new Error(`status ${r.status} ${r.headers["content-type"]}`);
    for (const [k, s] of parsePrometheus(r.body)) console.log(`${k} ${s.value}`);
  } else if (cmd === "batch") {
    const [url, model, n] = [args[0], args[1], Number(args[2])];
    const jobs = [];
    for (let i = 0; i < n; i++) {
      const v = (i + 1) / 100;   // mean |x| = v -> logits [10v, -10v + 0.5, v + 0.2]
      const body = JSON.stringify({ id: `req-${i}`, inputs: [{ name: "audio", shape: [1, 4], datatype: "FP32", data: [v, -v, v, -v] }] });
      jobs.push(request(`${url}/v2/models/${model}/infer`, { method: "POST", body }).then((r) => {
        if (r.status !== 200) throw new Error(`request ${i}: ${r.status} ${r.body}`);
        const j = JSON.parse(r.body), d = j.outputs[0].data, want = [10 * v, -10 * v + 0.5, v + 0.2];
        if (j.id !== `req-${i}` || d.length !== 3 || d.some((x, k) => Math.abs(x - want[k]) > 1e-4))
          throw new Error(`request ${i} got ${r.body}, want ${want}`);
      }));
    }
    await Promise.all(jobs);
    console.log(`ok ${n}`);
  } else if (cmd === "flood") {
    const [url, path, n, body] = [args[0], args[1], Number(args[2]), args[3]];
    const rs = await Promise.all(Array.from({ length: n }, () => request(`${url}${path}`, { method: "POST", body })));
    const codes = {};
    for (const r of rs) codes[r.status] = (codes[r.status] || 0) + 1;
    for (const [c, k] of Object.entries(codes)) console.log(`${c} ${k}`);
    const r503 = rs.filter((r) => r.status === 503);
    console.log(`retry-after=${r503.length && r503.every((r) => r.headers["retry-after"]) ? "yes" : "no"}`);
    const bad = rs.find((r) => r.status !== 200 && !/^\{"error":"/.test(r.body));
    console.log(`error-bodies=${bad ? "bad: " + bad.body : "ok"}`);
  } else if (cmd === "load") {
    const [url, path, secs, conc, body] = [args[0], args[1], Number(args[2]), Number(args[3]), args[4]];
    const end = Date.now() + secs * 1000;
    let requests = 0, errors = 0;
    await Promise.all(Array.from({ length: conc }, async () => {
      while (Date.now() < end) {
        const r = await request(`${url}${path}`, { method: "POST", body });
        requests++;
        if (r.status < 200 || r.status > 299) errors++;
      }
    }));
    console.log(`requests=${requests} errors=${errors}`);
  } else if (cmd === "disconnect") {
    const [host, port] = [args[0], Number(args[1])];
    const vanish = (payload) => new Promise((resolve) => {
      const s = net.connect(port, host, () => { s.write(payload); setTimeout(() => { s.destroy(); resolve(); }, 30); });
      s.on("error", resolve);
    });
    const body = JSON.stringify({ inputs: [{ name: "audio", shape: [1, 4], datatype: "FP32", data: [1, 2, 3, 4] }] });
    const tasks = [];
    for (let i = 0; i < 10; i++) {
      // mid-body: promises 1000 bytes, sends 10
      tasks.push(vanish(`POST /v2/models/tiny/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"inputs":`));
      // mid-inference: the whole request, gone before the answer (the batch window holds it)
      tasks.push(vanish(`POST /v2/models/tiny/infer HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n${body}`));
      // mid-headers
      tasks.push(vanish(`GET /v2/health/ready HTTP/1.1\r\nHo`));
    }
    await Promise.all(tasks);
    console.log("ok");
  } else {
    throw new Error(`unknown command ${cmd}`);
  }
}

main().then(() => process.exit(0), (e) => { console.error(`client: ${e.message}`); process.exit(1); });
