// The facts of the running Node process (prodguard.wasm performs no I/O:
// the host gathers them), as the Rust runtime gathers them.

import { closeSync, openSync, readSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';

/** Where the built-in default policy looks for the marker file. */
export const DEFAULT_MARKER_FILE = '/etc/prodguard/environment';

/** The marker file is a name, not a document: at most this much of it is read. */
const MARKER_MAX_BYTES = 4096;

/**
 * The `facts` of an evaluate request for this process, as the Rust runtime
 * gathers them: every environment variable, the marker file's content (when
 * it exists), and the host's name. Each part can be overridden.
 */
export function nodeFacts({
  env = process.env,
  hostname = osHostname(),
  markerFile = DEFAULT_MARKER_FILE,
  explicit = null,
} = {}) {
  const vars = {};
  for (const [name, value] of Object.entries(env)) {
    if (typeof value === 'string') vars[name] = value;
  }
  const files = {};
  if (markerFile !== null) {
    const content = readMarker(markerFile);
    if (content !== null) files[markerFile] = content;
  }
  return { env: vars, files, hostname: hostname || null, explicit };
}

/**
 * The marker file's first 4 KiB, decoded leniently; null when it does not
 * exist. A marker that exists but cannot be read is not the same as no
 * marker: it becomes a value that maps to no tier, so detection fails closed.
 */
export function readMarker(path) {
  let fd;
  try {
    fd = openSync(path, 'r');
  } catch (error) {
    if (error.code === 'ENOENT') return null;
    return `<unreadable: ${error.message}>`;
  }
  try {
    const buffer = new Uint8Array(MARKER_MAX_BYTES);
    let length = 0;
    while (length < buffer.length) {
      const n = readSync(fd, buffer, length, buffer.length - length, null);
      if (n === 0) break;
      length += n;
    }
    return new TextDecoder().decode(buffer.subarray(0, length));
  } catch (error) {
    return `<unreadable: ${error.message}>`;
  } finally {
    closeSync(fd);
  }
}
