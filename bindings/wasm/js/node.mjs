// @prodguard/wasm/node: everything from prodguard.mjs, plus the facts of the
// running Node process (prodguard.wasm performs no I/O: the host gathers them)
// and `createGuard`, the host that runs operations under the guard.

export * from './prodguard.mjs';
export { DEFAULT_MARKER_FILE, nodeFacts } from './facts.mjs';
export { GuardRefusal, createGuard, nodeActor } from './guard.mjs';
