#!/usr/bin/env python3
"""forge-image.py — rewrites an image in a gpux store the way a malicious registry could serve
it: the config's "spec" is changed by a Python expression, then the config blob, the manifest
and the tag are rewritten with correct digests (so only gpux's own checks can refuse it).

    forge-image.py GPUX_HOME SRC_REF DST_REF 'EXPR'    # EXPR edits `spec` (a dict) in place
"""
import hashlib, json, os, sys

home, src, dst, expr = sys.argv[1:5]
def norm(r):
    return r if ':' in r.rsplit('/', 1)[-1] else r + ':latest'
def put(data):
    d = hashlib.sha256(data).hexdigest()
    with open(os.path.join(home, 'blobs', 'sha256', d), 'wb') as f:
        f.write(data)
    return 'sha256:' + d, len(data)
def blob(digest):
    with open(os.path.join(home, 'blobs', 'sha256', digest[7:]), 'rb') as f:
        return f.read()

index_path = os.path.join(home, 'index.json')
index = json.load(open(index_path))
entry = next(m for m in index['manifests']
             if m['annotations']['org.opencontainers.image.ref.name'] == norm(src))
manifest = json.loads(blob(entry['digest']))
config = json.loads(blob(manifest['config']['digest']))
spec = config['spec']
exec(expr, {'spec': spec})
manifest['config']['digest'], manifest['config']['size'] = put(json.dumps(config).encode())
digest, size = put(json.dumps(manifest).encode())
new = json.loads(json.dumps(entry))
new['digest'], new['size'] = digest, size
new['annotations']['org.opencontainers.image.ref.name'] = norm(dst)
index['manifests'] = [m for m in index['manifests']
                      if m['annotations']['org.opencontainers.image.ref.name'] != norm(dst)] + [new]
json.dump(index, open(index_path, 'w'))
