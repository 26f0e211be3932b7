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
