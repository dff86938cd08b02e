"""Reads files of a dataset through a node's HTTP gateway the way training pipelines do:
Python `requests` (whole file, a range, HEAD, a folder listing) and fsspec's HTTP filesystem
(size, ranged reads through its file object, cat of a range, ls). Compares every byte with the
local copy. Exits non-zero, naming the check, on the first difference.

    check.py BASE_URL LOCAL_ROOT FILE_PATH FOLDER_PATH
BASE_URL is http://host:port/api/v1/datasets/<id>/files; FILE_PATH a file and FOLDER_PATH a
folder of the dataset; LOCAL_ROOT the folder holding the same files.
"""

import json
import os
import sys

import fsspec
import requests

base, root, path, folder = sys.argv[1:5]
url = f"{base}/{path}"
with open(os.path.join(root, path), "rb") as f:
    want = f.read()


def check(ok, what):
    if not ok:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


r = requests.get(url, timeout=60)
check(r.status_code == 200 and r.content == want, "requests: whole file")
check(r.headers.get("Accept-Ranges") == "bytes", "requests: Accept-Ranges")
etag = r.headers.get("ETag")
check(etag is not None and etag.startswith('"0x'), "requests: ETag")

r = requests.get(url, headers={"Range": "bytes=70000-170000"}, timeout=60)
check(r.status_code == 206 and r.content == want[70000:170001], "requests: a range")
check(
    r.headers.get("Content-Range") == f"bytes 70000-170000/{len(want)}",
    "requests: Content-Range",
)

r = requests.head(url, timeout=60)
check(
    r.status_code == 200 and int(r.headers["Content-Length"]) == len(want),
    "requests: HEAD gives the size",
)

r = requests.get(url, headers={"If-None-Match": etag}, timeout=60)
check(r.status_code == 304, "requests: If-None-Match")

r = requests.get(url, headers={"Range": f"bytes={len(want)}-"}, timeout=60)
check(r.status_code == 416, "requests: a range past the end is 416")

r = requests.get(f"{base}/{folder}", timeout=60)
listing = r.json()
check(
    r.status_code == 200 and any(e["path"] == path for e in listing["entries"]),
    "requests: a folder lists its entries as JSON",
)

fs = fsspec.filesystem("http")
check(fs.size(url) == len(want), "fsspec: size")
with fs.open(url, "rb", block_size=1 << 16) as f:
    f.seek(100_000)
    got = f.read(300_000)
check(got == want[100_000:400_000], "fsspec: seek and read through the file object")
check(fs.cat_file(url, start=5, end=65_541) == want[5:65_541], "fsspec: cat_file of a range")
# fsspec reads a listing's links from HTML: ask for it.
html = fsspec.filesystem("http", headers={"Accept": "text/html"})
names = [e.rstrip("/") for e in html.ls(f"{base}/{folder}", detail=False)]
check(url in names, f"fsspec: ls of a folder ({names})")
print(json.dumps({"checked": url, "bytes": len(want)}))
