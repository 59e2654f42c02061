#!/usr/bin/env bash
# gpux serve's page at GET /: served from the binary with no external assets; its script run in
# node against the live server with a stand-in DOM (page-node.mjs); then, in headless
# Chromium (Debian's chromium and chromium-driver, which .ci/run installs), a PNG picked in the
# text-direction model's form and Run show the label and score that gpux run prints. When
# chromium cannot start on this machine the browser part is skipped with a line saying why.
#   tests/serve/page.sh GPUX
source "$(dirname "$0")/../app/lib.sh" "$1"
need curl python3 node
"$gpux" build -q --allow-outside "$root/examples/text-direction" >/dev/null || { echo "FAIL: build text-direction"; exit 1; }
"$gpux" serve text-direction --port 0 >"$tmp/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 300); do grep -q 'ready' "$tmp/serve.log" && break; sleep 0.1; done
url=$(grep -o 'http://[0-9.]*:[0-9]*' "$tmp/serve.log" | head -1)
expect page-html 0 '^text/html; charset=utf-8 200$' -- curl -s -o "$tmp/page.html" -w '%{content_type} %{http_code}' "$url/"
expect page-form 0 'input", \{type: "file"' -- cat "$tmp/page.html"
expect page-no-external-assets 0 '^none$' -- bash -c "grep -Eio '(src|href)=\"?(https?:)?//' '$tmp/page.html' || echo none"
expect page-post-only-get 0 '^405$' -- curl -s -o /dev/null -w '%{http_code}' -X POST "$url/"
want=$("$gpux" run text-direction --input "$root/examples/line.png" | head -1 | cut -d' ' -f1)
# the page's script against the live server in node, with a stand-in DOM (runs everywhere)
expect page-script-in-node 0 "^$want 0\\.9" -- node "$root/tests/serve/page-node.mjs" "$url" text-direction "$root/examples/line.png"

chromium=$(command -v chromium chromium-browser 2>/dev/null | head -1)
driver=$(command -v chromedriver 2>/dev/null | head -1)
if [ -z "$chromium" ] || [ -z "$driver" ]; then
  echo "SKIP page-in-chromium: chromium or chromedriver is not installed (Debian: chromium chromium-driver; .ci/run installs them)"
elif ! timeout 60 "$chromium" --headless=new --no-sandbox --disable-gpu --dump-dom about:blank >/dev/null 2>"$tmp/chromium.err"; then
  echo "SKIP page-in-chromium: chromium cannot start here: $(head -c 300 "$tmp/chromium.err")"
else
  expect page-in-chromium 0 "^$want 0\\.9" -- timeout 120 python3 "$root/tests/serve/page-driver.py" "$driver" "$url/" text-direction "$root/examples/line.png"
fi
finish
