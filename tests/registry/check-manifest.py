#!/usr/bin/env python3
"""check-manifest.py MANIFEST.json REPO_URL — checks a pushed manifest against the OCI image-spec
v1.1 rules for an image manifest (the JSON schema's required fields, descriptor shapes, digest
grammar) plus what gpux promises (artifactType, config media type, layer titles), and that every
descriptor's blob is in the registry with the size it declares. Prints "valid" or the problems."""
import json, re, sys, urllib.request

man = json.load(open(sys.argv[1]))
repo = sys.argv[2]
problems = []
DIGEST = re.compile(r'^sha256:[a-f0-9]{64}$')
MEDIA = re.compile(r'^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$')

def descriptor(d, where):
    if not isinstance(d, dict):
        problems.append(f'{where}: not an object'); return
    for k in ('mediaType', 'digest', 'size'):
        if k not in d: problems.append(f'{where}: no {k}')
    if not MEDIA.match(str(d.get('mediaType', ''))): problems.append(f'{where}: bad mediaType')
    if not DIGEST.match(str(d.get('digest', ''))): problems.append(f'{where}: bad digest')
    if not isinstance(d.get('size'), int) or d['size'] < 0: problems.append(f'{where}: bad size')
    ann = d.get('annotations', {})
    if not isinstance(ann, dict) or not all(isinstance(v, str) for v in ann.values()):
        problems.append(f'{where}: annotations must map strings to strings')
    req = urllib.request.Request(f"{repo}/blobs/{d.get('digest')}", method='HEAD')
    try:
        with urllib.request.urlopen(req) as r:
            if int(r.headers['Content-Length']) != d.get('size'): problems.append(f'{where}: size differs from the blob')
    except Exception as e:
        problems.append(f'{where}: blob not in the registry ({e})')

if man.get('schemaVersion') != 2: problems.append('schemaVersion is not 2')
if man.get('mediaType') != 'application/vnd.oci.image.manifest.v1+json': problems.append('mediaType')
if man.get('artifactType') != 'application/vnd.gpux.image.v1+json': problems.append('artifactType')
if not MEDIA.match(man.get('artifactType', '')): problems.append('artifactType is not a media type')
descriptor(man.get('config'), 'config')
if man.get('config', {}).get('mediaType') != 'application/vnd.gpux.config.v1+json': problems.append('config mediaType')
layers = man.get('layers')
if not isinstance(layers, list) or not layers: problems.append('layers: missing or empty')
for i, l in enumerate(layers or []):
    descriptor(l, f'layers[{i}]')
    if not l.get('annotations', {}).get('org.opencontainers.image.title'): problems.append(f'layers[{i}]: no title')
if 'annotations' in man and not all(isinstance(v, str) for v in man['annotations'].values()): problems.append('annotations')
print('valid' if not problems else '\n'.join(problems))
