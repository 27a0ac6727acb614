// @prodguard/wasm: loads prodguard.wasm (ABI 2.x, see ../ABI.md) in Node and
// browsers, and calls it with JSON. No dependencies, no Node built-ins at the
// top level: the file is browser-safe.

/** The ABI major this loader speaks. */
export const ABI_MAJOR = 2;

/** The status codes of ABI.md ("Status codes"). */
export const Status = Object.freeze({
  OK: 0,
  INVALID_ARGUMENT: 2,
  OUT_OF_MEMORY: 4,
  NOT_CONFIRMED: 121,
  INVALID_REQUEST: 125,
});

/** The exports of ABI 2.0 and their kinds. */
export const EXPORTS = Object.freeze({
  memory: 'memory',
  prodguard_abi_version: 'function',
  prodguard_alloc: 'function',
  prodguard_dealloc: 'function',
  prodguard_evaluate: 'function',
  prodguard_audit_record: 'function',
  prodguard_verify_approval: 'function',
});

/** The exports that take a JSON request (the names `callJson` accepts). */
export const CALLS = Object.freeze([
  'prodguard_evaluate',
  'prodguard_audit_record',
  'prodguard_verify_approval',
]);

/** A non-zero status from prodguard.wasm: `code` is the status, `message` says what to do. */
export class ProdguardError extends Error {
  constructor(code, message, options) {
    super(message, options);
    this.name = 'ProdguardError';
    this.code = code;
  }
}

/**
 * Where the package keeps its module: `prodguard.wasm` next to this file
 * (read from disk in Node, fetched in browsers; bundlers that understand
 * `new URL(…, import.meta.url)` copy it along).
 */
export function defaultWasmUrl() {
  return new URL('./prodguard.wasm', import.meta.url);
}

/**
 * Loads prodguard.wasm from bytes, a compiled `WebAssembly.Module`, a
 * `Response` (or a promise of one), or a path / URL (a file in Node,
 * fetched in browsers), and checks that it speaks ABI 2.x. Without a
 * source, the `prodguard.wasm` shipped next to this file.
 */
export async function load(source) {
  const module = source === undefined ? await compileDefault() : await compile(await source);
  const extra = checkModule(module);
  const instance = await WebAssembly.instantiate(module, {});
  const version = instance.exports.prodguard_abi_version() >>> 0;
  const abiVersion = Object.freeze({ major: version >>> 16, minor: version & 0xffff });
  const { major, minor } = abiVersion;
  if (major !== ABI_MAJOR) {
    throw new Error(
      `prodguard.wasm speaks ABI ${major}.${minor}, and this loader speaks ABI ${ABI_MAJOR}.x: ` +
        'use a prodguard.wasm and an @prodguard/wasm of the same major version',
    );
  }
  // ABI 2.0 exports exactly the documented set; a later minor may add exports.
  if (minor === 0 && extra.length > 0) {
    throw new Error(`prodguard.wasm says ABI ${major}.0 but also exports ${extra.join(', ')}, which ABI ${major}.0 does not have`);
  }
  return new Prodguard(instance.exports, abiVersion);
}

/** The module next to the loader, with an error that says what to do when it is not there. */
async function compileDefault() {
  const url = defaultWasmUrl();
  try {
    return await compile(url);
  } catch (cause) {
    if (cause?.code !== 'ENOENT' && !/HTTP 404/.test(cause?.message ?? '')) throw cause;
    throw new Error(
      `prodguard.wasm is not next to the loader (${url.href}): the @prodguard/wasm package ships it there; ` +
        'in a checkout, build it with scripts/build-wasm and pass its path to load()',
      { cause },
    );
  }
}

async function compile(source) {
  if (source instanceof WebAssembly.Module) return source;
  if (source instanceof ArrayBuffer || ArrayBuffer.isView(source)) return WebAssembly.compile(source);
  if (typeof Response !== 'undefined' && source instanceof Response) return compileResponse(source);
  if (typeof source === 'string' || source instanceof URL) return compile(await fetchSource(source));
  throw new TypeError(
    'load(source): source must be bytes, a WebAssembly.Module, a Response, or a path or URL',
  );
}

async function compileResponse(response) {
  if (!response.ok) {
    throw new Error(`cannot load prodguard.wasm from ${response.url || 'the response'}: HTTP ${response.status}`);
  }
  // Streaming compilation needs the application/wasm type; other servers
  // still work, through the bytes.
  const type = response.headers.get('content-type') ?? '';
  if (typeof WebAssembly.compileStreaming === 'function' && type.split(';')[0].trim() === 'application/wasm') {
    return WebAssembly.compileStreaming(response);
  }
  return WebAssembly.compile(await response.arrayBuffer());
}

/** A file's bytes in Node (a path or a file: URL); a fetch anywhere else. */
async function fetchSource(source) {
  const url = source instanceof URL ? source : /^[a-z][a-z0-9+.-]+:\/\//i.test(source) ? new URL(source) : null;
  const inNode = typeof process !== 'undefined' && process.versions?.node !== undefined;
  if (inNode && (url === null || url.protocol === 'file:')) {
    const { readFile } = await import(/* webpackIgnore: true */ /* @vite-ignore */ 'node:fs/promises');
    return readFile(url ?? source);
  }
  return fetch(source);
}

function checkModule(module) {
  const imports = WebAssembly.Module.imports(module);
  if (imports.length > 0) {
    const names = imports.map((i) => `${i.module}.${i.name}`).join(', ');
    throw new Error(`this is not a prodguard.wasm for ABI ${ABI_MAJOR}.x: it imports ${names}, and ABI ${ABI_MAJOR} imports nothing`);
  }
  const kinds = new Map(WebAssembly.Module.exports(module).map((e) => [e.name, e.kind]));
  for (const [name, kind] of Object.entries(EXPORTS)) {
    if (kinds.get(name) !== kind) {
      throw new Error(`this is not a prodguard.wasm for ABI ${ABI_MAJOR}.x: the ${kind} export ${name} is missing`);
    }
  }
  return [...kinds.keys()].filter((name) => !Object.hasOwn(EXPORTS, name));
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** One instance of prodguard.wasm (made by `load`). Calls are synchronous, so they run one at a time. */
class Prodguard {
  #exports;
  #abiVersion;
  #trap = null;

  constructor(exports, abiVersion) {
    this.#exports = exports;
    this.#abiVersion = abiVersion;
  }

  /** The module's ABI version, `{major, minor}`. */
  get abiVersion() {
    return this.#abiVersion;
  }

  /** The raw exports, for hosts that manage memory themselves. */
  get exports() {
    return this.#exports;
  }

  /** The module's linear memory. */
  get memory() {
    return this.#exports.memory;
  }

  /** Detection, decision and (with `evidence`) the guard session's verdict. */
  evaluate(request) {
    return this.#typed('prodguard_evaluate', request);
  }

  /** An audit event and the chain's previous hash → the exact record line to append. */
  auditRecord(request) {
    return this.#typed('prodguard_audit_record', request);
  }

  /** An approval token's claims; throws a ProdguardError with code 121 when it does not approve. */
  verifyApproval(request) {
    return this.#typed('prodguard_verify_approval', request);
  }

  #typed(name, request) {
    const text = typeof request === 'string' ? request : JSON.stringify(request);
    if (typeof text !== 'string') {
      throw new TypeError(`${name}: the request must be an object or its JSON text`);
    }
    const { status, text: answer } = this.callJson(name, text);
    if (status === Status.OUT_OF_MEMORY && answer === '') {
      throw new ProdguardError(status, 'prodguard.wasm could not allocate its answer');
    }
    let body;
    try {
      body = JSON.parse(answer);
    } catch (cause) {
      throw new Error(`prodguard.wasm answered status ${status} with text that is not JSON (please report this): ${answer.slice(0, 200)}`, { cause });
    }
    if (status === Status.OK) return body.ok;
    throw new ProdguardError(status, body?.error?.message ?? answer);
  }

  /**
   * Calls `name` (one of CALLS) with a request (JSON text, or its UTF-8
   * bytes as given) and answers the status and the answer's text ('' when
   * the module wrote none). Follows ABI.md's memory rules: everything
   * allocated is freed, whatever happens.
   */
  callJson(name, request) {
    if (!CALLS.includes(name)) {
      throw new TypeError(`callJson: ${String(name)} is not one of ${CALLS.join(', ')}`);
    }
    if (this.#trap !== null) {
      throw new Error('this prodguard instance trapped earlier and must be discarded; load a new one', { cause: this.#trap });
    }
    const bytes = typeof request === 'string' ? encoder.encode(request) : request;
    if (!(bytes instanceof Uint8Array)) {
      throw new TypeError('callJson: the request must be a string or a Uint8Array');
    }
    const x = this.#exports;
    let req = 0;
    let out = 0;
    let answer = 0;
    let answerLen = 0;
    try {
      // alloc(0) answers 0, and an empty request needs no block.
      if (bytes.length > 0) {
        req = x.prodguard_alloc(bytes.length) >>> 0;
        if (req === 0) throw new ProdguardError(Status.OUT_OF_MEMORY, `prodguard.wasm could not allocate ${bytes.length} bytes for the request`);
      }
      out = x.prodguard_alloc(8) >>> 0;
      if (out === 0) throw new ProdguardError(Status.OUT_OF_MEMORY, 'prodguard.wasm could not allocate 8 bytes for the answer pointer');
      // Allocating may grow the memory: take a fresh view for every access.
      new Uint8Array(x.memory.buffer, req, bytes.length).set(bytes);
      const status = x[name](req, bytes.length, out) >>> 0;
      const buffer = x.memory.buffer;
      const view = new DataView(buffer);
      answer = view.getUint32(out, true);
      answerLen = view.getUint32(out + 4, true);
      if (answer + answerLen > buffer.byteLength) {
        throw new Error(`prodguard.wasm wrote an answer outside its memory (${answer}+${answerLen}); please report this`);
      }
      const text = answerLen === 0 ? '' : decoder.decode(new Uint8Array(buffer, answer, answerLen));
      return { status, text };
    } catch (error) {
      if (error instanceof WebAssembly.RuntimeError) this.#trap = error;
      throw error;
    } finally {
      // A trapped instance is in an unknown state: touch it no more.
      if (this.#trap === null) {
        if (answerLen > 0) x.prodguard_dealloc(answer, answerLen);
        if (req !== 0) x.prodguard_dealloc(req, bytes.length);
        if (out !== 0) x.prodguard_dealloc(out, 8);
      }
    }
  }
}
