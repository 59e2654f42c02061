"""image_store.py — what the test scripts that rewrite images in a gpux store share
(forge-image.py, edit-tuning.py): reading and writing blobs by digest and finding a tag's entry
in the store's index.json."""
import hashlib, json, os

REF_NAME = 'org.opencontainers.image.ref.name'

def norm(r):
    """The reference with its tag (":latest" when it has none)."""
    return r if ':' in r.rsplit('/', 1)[-1] else r + ':latest'

class Store:
    def __init__(self, home):
        self.home = home
        self.index_path = os.path.join(home, 'index.json')
        self.index = json.load(open(self.index_path))

    def put(self, data):
        """Writes a blob; its digest and size."""
        d = hashlib.sha256(data).hexdigest()
        with open(os.path.join(self.home, 'blobs', 'sha256', d), 'wb') as f:
            f.write(data)
        return 'sha256:' + d, len(data)

    def blob(self, digest):
        with open(os.path.join(self.home, 'blobs', 'sha256', digest[7:]), 'rb') as f:
            return f.read()

    def entry(self, ref):
        """The index entry of tag ref."""
        return next(m for m in self.index['manifests'] if m['annotations'][REF_NAME] == norm(ref))

    def save_index(self):
        json.dump(self.index, open(self.index_path, 'w'))
