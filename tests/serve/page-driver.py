#!/usr/bin/env python3
"""page-driver.py — drives gpux serve's page (GET /) in headless Chromium through chromedriver's
WebDriver protocol (plain HTTP, no client library): waits for the model's form, picks FILE in its
file input, presses Run and waits for the answer. Prints the answer's text; exits 1 on a timeout.
    page-driver.py CHROMEDRIVER URL MODEL FILE"""
import json
import socket
import subprocess
import sys
import time
import urllib.request

driver, url, model, path = sys.argv[1:5]
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
proc = subprocess.Popen([driver, "--port=%d" % port], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
base = "http://127.0.0.1:%d" % port


def call(method, path_, body=None):
    req = urllib.request.Request(base + path_, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.load(r)["value"]


def find(sid, css, timeout=20):
    end = time.time() + timeout
    while True:
        try:
            return call("POST", "/session/%s/element" % sid, {"using": "css selector", "value": css})[ELEMENT]
        except Exception:
            if time.time() > end:
                raise SystemExit("page-driver: no element %s" % css)
            time.sleep(0.2)


try:
    for _ in range(100):
        try:
            call("GET", "/status")
            break
        except Exception:
            time.sleep(0.1)
    caps = {"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
        "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]}}}}
    sid = call("POST", "/session", caps)["sessionId"]
    try:
        call("POST", "/session/%s/url" % sid, {"url": url})
        sec = "#model-" + model
        file_input = find(sid, sec + " input[type=file]")
        call("POST", "/session/%s/element/%s/value" % (sid, file_input), {"text": path})
        call("POST", "/session/%s/element/%s/click" % (sid, find(sid, sec + " button")), {})
        answer = find(sid, "#answer-" + model)
        end = time.time() + 60
        text = ""
        while time.time() < end:
            text = call("GET", "/session/%s/element/%s/text" % (sid, answer))
            if text and text != "running...":
                break
            time.sleep(0.2)
        print(text)
        sys.exit(0 if text and text != "running..." else 1)
    finally:
        call("DELETE", "/session/%s" % sid)
finally:
    proc.terminate()
    proc.wait()
