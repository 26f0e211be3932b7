/* tslint:disable */
/* eslint-disable */

/**
 * One direction's transport key, as JS sees it.
 */
export class TransportKey {
    free(): void;
    [Symbol.dispose](): void;
    /**
     * Make a key from its 32 bytes.
     */
    constructor(key: Uint8Array | number[]);
    /**
     * Open one message; errors when the tag does not verify.
     */
    open(counter: bigint, sealed: Uint8Array | number[]): Uint8Array;
    /**
     * Open `count` sealed messages of `stride` bytes each laid out back to back.
     * Returns how many authenticated; the rest are left as garbage.
     */
    open_batch(first_counter: bigint, buf: Uint8Array, stride: number, count: number): number;
    /**
     * Seal one message: returns ciphertext plus tag.
     */
    seal(counter: bigint, plaintext: Uint8Array | number[]): Uint8Array;
    /**
     * Seal `count` messages of `len` bytes laid out back to back in `buf`, each
     * followed by room for its tag (stride `len + 16`), with counters
     * `first_counter..`. One call crosses the JS/WASM boundary for the batch.
     */
    seal_batch(first_counter: bigint, buf: Uint8Array, len: number, count: number): void;
}

export type InitInput = RequestInfo | URL | Response | BufferSource | WebAssembly.Module;

export interface InitOutput {
    readonly memory: WebAssembly.Memory;
    readonly __wbg_transportkey_free: (a: number, b: number) => void;
    readonly transportkey_new: (a: number, b: number) => [number, number, number];
    readonly transportkey_open: (a: number, b: bigint, c: number, d: number) => [number, number, number, number];
    readonly transportkey_open_batch: (a: number, b: bigint, c: number, d: number, e: any, f: number, g: number) => [number, number, number];
    readonly transportkey_seal: (a: number, b: bigint, c: number, d: number) => [number, number];
    readonly transportkey_seal_batch: (a: number, b: bigint, c: number, d: number, e: any, f: number, g: number) => [number, number];
    readonly __wbindgen_externrefs: WebAssembly.Table;
    readonly __wbindgen_malloc: (a: number, b: number) => number;
    readonly __wbindgen_free: (a: number, b: number, c: number) => void;
    readonly __externref_table_dealloc: (a: number) => void;
    readonly __wbindgen_start: () => void;
}

export type SyncInitInput = BufferSource | WebAssembly.Module;

/**
 * Instantiates the given `module`, which can either be bytes or
 * a precompiled `WebAssembly.Module`.
 *
 * @param {{ module: SyncInitInput }} module - Passing `SyncInitInput` directly is deprecated.
 *
 * @returns {InitOutput}
 */
export function initSync(module: { module: SyncInitInput } | SyncInitInput): InitOutput;

/**
 * If `module_or_path` is {RequestInfo} or {URL}, makes a request and
 * for everything else, calls `WebAssembly.instantiate` directly.
 *
 * @param {{ module_or_path: InitInput | Promise<InitInput> }} module_or_path - Passing `InitInput` directly is deprecated.
 *
 * @returns {Promise<InitOutput>}
 */
export default function __wbg_init (module_or_path?: { module_or_path: InitInput | Promise<InitInput> } | InitInput | Promise<InitInput>): Promise<InitOutput>;
