"""Uploads one file with tuspy (the pinned tus client from PyPI), for ferry's end-to-end tests.

Usage: python tuspy_upload.py OPTIONS_JSON, where the JSON object has
  endpoint     the tus creation URL (…/v1/tus/)
  file         the file to upload
  headers      headers sent with every request (the guest session, say)
  metadata     Upload-Metadata pairs (filename, filetype, caption)
  chunk_size   bytes per PATCH
  retries      how often a failed request is retried
  retry_delay  seconds between retries (longer than ferry's lease expiry)
  storage      optional file where tuspy remembers the upload URL (resume across runs)
  checksum     whether every PATCH carries Upload-Checksum (sha1)
Prints one JSON line: {"url": the upload URL, "offset": the final offset, "retried": bool}.
"""

import json
import sys

from tusclient import client
from tusclient.storage import filestorage


def main() -> int:
    options = json.loads(sys.argv[1])
    tus = client.TusClient(options["endpoint"], headers=options.get("headers", {}))
    storage = options.get("storage")
    uploader = tus.uploader(
        file_path=options["file"],
        chunk_size=int(options["chunk_size"]),
        metadata=options.get("metadata", {}),
        retries=int(options.get("retries", 0)),
        retry_delay=float(options.get("retry_delay", 1)),
        store_url=storage is not None,
        url_storage=filestorage.FileStorage(storage) if storage else None,
        upload_checksum=bool(options.get("checksum", False)),
    )
    retried = False
    # tuspy resets its retry count per chunk; note whether any chunk needed one.
    original = uploader._retry_or_cry

    def noting(error):
        nonlocal retried
        retried = True
        print(f"tuspy: retrying after {error!r}", file=sys.stderr)
        return original(error)

    uploader._retry_or_cry = noting
    uploader.upload()
    print(json.dumps({"url": uploader.url, "offset": uploader.offset, "retried": retried}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
