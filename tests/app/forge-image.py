#!/usr/bin/env python3
"""forge-image.py — rewrites an image in a gpux store the way a malicious registry could serve
it: the config's "spec" is changed by a Python expression, then the config blob, the manifest
and the tag are rewritten with correct digests (so only gpux's own checks can refuse it).

    forge-image.py GPUX_HOME SRC_REF DST_REF 'EXPR'    # EXPR edits `spec` (a dict) in place
"""
import json, sys
from image_store import REF_NAME, Store, norm

home, src, dst, expr = sys.argv[1:5]
store = Store(home)
entry = store.entry(src)
manifest = json.loads(store.blob(entry['digest']))
config = json.loads(store.blob(manifest['config']['digest']))
spec = config['spec']
exec(expr, {'spec': spec})
manifest['config']['digest'], manifest['config']['size'] = store.put(json.dumps(config).encode())
digest, size = store.put(json.dumps(manifest).encode())
new = json.loads(json.dumps(entry))
new['digest'], new['size'] = digest, size
new['annotations'][REF_NAME] = norm(dst)
store.index['manifests'] = [m for m in store.index['manifests'] if m['annotations'][REF_NAME] != norm(dst)] + [new]
store.save_index()
