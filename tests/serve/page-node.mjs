// page-node.mjs — runs the script of gpux serve's page (GET /) in node against the live server,
// with a small stand-in for the DOM (elements, forms, a file input, submit events), where no
// browser is installed: the page must list MODEL, and a FILE picked in its form and Run must
// show an answer. Prints the answer's text.
//   node page-node.mjs URL MODEL FILE [TYPE]
import { readFileSync } from "node:fs";
import vm from "node:vm";

const [url, model, file, type = "image/png"] = process.argv.slice(2);
const html = await (await fetch(url + "/")).text();
const script = html.match(/<script>([\s\S]*?)<\/script>/)[1];

const byId = {};
class Element {
  constructor(tag) { this.tagName = tag.toUpperCase(); this.children = []; this.attrs = {}; this.listeners = {}; this.textContent = ""; this.value = ""; this.files = []; }
  setAttribute(k, v) { this.attrs[k] = v; if (k === "id") byId[v] = this; if (k === "class") this.className = v; }
  appendChild(c) { this.children.push(c); return c; }
  addEventListener(ev, fn) { this.listeners[ev] = fn; }
  querySelector(sel) { // "input[type=file]", "textarea", "button"
    const want = sel.match(/^(\w+)(?:\[type=(\w+)\])?$/);
    const walk = (e) => {
      for (const c of e.children) {
        if (c.tagName === want[1].toUpperCase() && (!want[2] || c.attrs.type === want[2])) return c;
        const f = walk(c);
        if (f) return f;
      }
      return null;
    };
    return walk(this);
  }
}
const document = {
  createElement: (t) => new Element(t),
  getElementById: (id) => byId[id] || (byId[id] = new Element("div")),
};
const base = url.replace(/\/$/, "");
const ctx = { document, fetch: (p, o) => fetch(base + p, o), JSON, console, encodeURIComponent, String, Array, Promise };
vm.createContext(ctx);
vm.runInContext(script, ctx);

const until = async (cond, ms = 30000) => {
  const end = Date.now() + ms;
  while (!cond()) { if (Date.now() > end) throw new Error("timeout"); await new Promise((r) => setTimeout(r, 50)); }
};
await until(() => byId["model-" + model]);
const form = byId["model-" + model].children.find((c) => c.tagName === "FORM");
form.querySelector("input[type=file]").files = [new Blob([readFileSync(file)], { type })];
form.listeners.submit({ preventDefault() {} });
const answer = byId["answer-" + model];
await until(() => answer.textContent && answer.textContent !== "running...");
console.log(answer.textContent);
process.exit(answer.className.includes("error") ? 1 : 0);
