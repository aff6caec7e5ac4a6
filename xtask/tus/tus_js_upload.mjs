// Uploads one file with tus-js-client (the pinned tus client from npm) under Node, for ferry's
// end-to-end tests and the tus bench row.
//
// Usage: node tus_js_upload.mjs OPTIONS_JSON, where the JSON object has
//   endpoint      the tus creation URL (…/v1/tus/)
//   file          the file to upload (read by path, so a retry can re-read any offset)
//   headers       headers sent with every request (the guest session, say)
//   metadata      Upload-Metadata pairs (filename, filetype, caption)
//   chunkSize     bytes per PATCH
//   retryDelays   milliseconds before each retry (longer than ferry's lease expiry)
//   withUpload    creation-with-upload: the first chunk goes with the POST
// Prints one JSON line: {"url", "offset", "errors": [messages of the failures retried]}.

import { createReadStream, statSync } from "node:fs";
import * as tusModule from "tus-js-client";

const tus = tusModule.Upload ? tusModule : tusModule.default;
const options = JSON.parse(process.argv[2]);
const size = statSync(options.file).size;
const errors = [];
let offset = 0;

const upload = new tus.Upload(createReadStream(options.file), {
  endpoint: options.endpoint,
  headers: options.headers || {},
  metadata: options.metadata || {},
  chunkSize: options.chunkSize,
  uploadSize: size,
  retryDelays: options.retryDelays || [],
  uploadDataDuringCreation: Boolean(options.withUpload),
  storeFingerprintForResuming: false,
  onShouldRetry(error, attempt, opts) {
    errors.push(String(error && error.message ? error.message : error).split("\n")[0]);
    const status = error.originalResponse ? error.originalResponse.getStatus() : 0;
    const retry = status === 0 || status >= 500 || status === 409 || status === 423;
    process.stderr.write(`tus-js-client: attempt ${attempt} failed (${status}); retry: ${retry}\n`);
    return retry;
  },
  onProgress(sent) {
    offset = sent;
  },
  onSuccess() {
    process.stdout.write(`${JSON.stringify({ url: upload.url, offset: size, errors })}\n`);
  },
  onError(error) {
    process.stderr.write(`tus-js-client failed at ${offset} of ${size}: ${error}\n`);
    process.exitCode = 1;
  },
});
upload.start();
