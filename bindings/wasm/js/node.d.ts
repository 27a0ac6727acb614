// Types of @prodguard/wasm/node (node.mjs): everything from prodguard.d.ts,
// plus the facts of the running Node process.

import type { Facts } from './prodguard.js';

export * from './prodguard.js';

/** Where the built-in default policy looks for the marker file. */
export declare const DEFAULT_MARKER_FILE: '/etc/prodguard/environment';

export interface NodeFactsOptions {
  /** Default: `process.env`. Entries that are not strings are left out. */
  env?: Record<string, string | undefined>;
  /** Default: `os.hostname()`; '' or null: none. */
  hostname?: string | null;
  /** The marker file to read (first 4 KiB); default DEFAULT_MARKER_FILE; null: none. */
  markerFile?: string | null;
  /** An environment the program names itself. */
  explicit?: string | null;
}

/** The `facts` of an evaluate request for this process, as the Rust runtime gathers them. */
export declare function nodeFacts(options?: NodeFactsOptions): Required<Facts>;
