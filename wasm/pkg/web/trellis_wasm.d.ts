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
    /**
     * Whether this build encrypts with the SIMD128 ChaCha20.
     */
    static simd(): boolean;
}

/**
 * A WireGuard device for JS hosts.
 */
export class WgDevice {
    free(): void;
    [Symbol.dispose](): void;
    /**
     * Name of a drop reason code (the device's or the engine's).
     */
    static drop_reason_name(code: number): string;
    /**
     * A device with a static private key and 32 bytes of seed from the host's CSPRNG.
     */
    constructor(private_key: Uint8Array | number[], seed: Uint8Array | number[]);
    /**
     * Our static public key.
     */
    public_key(): Uint8Array;
    /**
     * Process one datagram from an endpoint.
     */
    receive(datagram: Uint8Array | number[], endpoint: number, now: number): Uint8Array;
    /**
     * Process many datagrams laid out back to back, each from `endpoints[i]`.
     */
    receive_batch(datagrams: Uint8Array | number[], lens: Uint32Array | number[], endpoints: Uint32Array | number[], now: number): Uint8Array;
    /**
     * Remove a peer; false if unknown.
     */
    remove_peer(public_key: Uint8Array | number[]): boolean;
    /**
     * Encrypt one IP packet.
     */
    send(packet: Uint8Array | number[], now: number): Uint8Array;
    /**
     * Encrypt many IP packets laid out back to back (`lens` gives each length).
     */
    send_batch(packets: Uint8Array | number[], lens: Uint32Array | number[], now: number): Uint8Array;
    /**
     * Point a peer at an endpoint handle.
     */
    set_endpoint(public_key: Uint8Array | number[], endpoint: number): boolean;
    /**
     * Answer every handshake with a cookie reply unless it carries a valid mac2.
     */
    set_under_load(on: boolean): void;
    /**
     * Drop counters and per-peer state as JSON.
     */
    stats_json(): string;
    /**
     * Fire due timers.
     */
    tick(now: number): Uint8Array;
    /**
     * Add or update a peer. `psk` empty for none; `allowed_ips` comma-separated
     * CIDRs; `endpoint` negative for none. Returns the peer id.
     */
    upsert_peer(public_key: Uint8Array | number[], psk: Uint8Array | number[], allowed_ips: string, endpoint: number, persistent_keepalive: number): number;
}

/**
 * The node engine for JS hosts (see `engine`): WireGuard, the packet filter,
 * and (for browsers and unprivileged gateways) the userspace TCP/IP stack.
 */
export class WgEngine {
    free(): void;
    [Symbol.dispose](): void;
    /**
     * `stack`: deliver admitted packets to the userspace stack (false: to the host).
     */
    constructor(private_key: Uint8Array | number[], seed: Uint8Array | number[], stack: boolean, now: number);
    /**
     * When to poll next, in the host's milliseconds.
     */
    next_poll(now: number): number;
    /**
     * Send an ICMP echo request; returns the identifier replies carry.
     */
    ping(addr: Uint8Array | number[], seq: number, payload: Uint8Array | number[]): number;
    /**
     * A target answered a FORWARD_PING record: the echo reply from `from`
     * (the route address) to the client `to`. Poll after.
     */
    ping_forward_reply(from: Uint8Array | number[], to: Uint8Array | number[], ident: number, seq: number, data: Uint8Array | number[]): void;
    /**
     * Timers, and whatever sockets have to send.
     */
    poll(now: number): Uint8Array;
    /**
     * Our static public key.
     */
    public_key(): Uint8Array;
    /**
     * Datagrams from paths, back to back, each from `endpoints[i]`.
     */
    receive_batch(datagrams: Uint8Array | number[], lens: Uint32Array | number[], endpoints: Uint32Array | number[], now: number): Uint8Array;
    /**
     * Remove a peer; false if unknown.
     */
    remove_peer(public_key: Uint8Array | number[]): boolean;
    /**
     * IP packets from the host (TUN), back to back, to encrypt for peers.
     */
    send_batch(packets: Uint8Array | number[], lens: Uint32Array | number[], now: number): Uint8Array;
    /**
     * This node's addresses, comma-separated (`100.64.0.5,fd7a:115c:a1e0::5`).
     */
    set_addresses(addrs: string): void;
    /**
     * Replace the packet filter: a JSON array of `FilterRule`s.
     */
    set_filter(json: string): void;
    /**
     * Subnet routes served through the userspace stack, comma-separated
     * CIDR prefixes (empty: none). Flows to them arrive as KIND_FORWARD records.
     */
    set_routes(prefixes: string): void;
    /**
     * Drop counters (device and engine), per-peer state, flows tracked and sockets open, as JSON.
     */
    stats_json(): string;
    /**
     * Reset a connection and release its handle.
     */
    tcp_abort(handle: number): void;
    /**
     * Finish sending on a connection (or stop a listener).
     */
    tcp_close(handle: number): void;
    /**
     * Open a TCP connection; returns its handle.
     */
    tcp_connect(addr: Uint8Array | number[], port: number): number;
    /**
     * The host's answer to a FORWARD_TCP record: `ok` when it reached the
     * target. Returns the connection's handle (it reports like one from
     * `tcp_connect`), or 0 when refused (the client got a reset). Poll after.
     */
    tcp_dial_result(id: number, ok: boolean, now: number): number;
    /**
     * Listen on a TCP port of this node's addresses; returns the listener's handle.
     */
    tcp_listen(port: number): number;
    /**
     * Stop or resume reading a connection (back-pressure).
     */
    tcp_pause(handle: number, paused: boolean): void;
    /**
     * Queue bytes on a connection; returns how many fit.
     */
    tcp_send(handle: number, data: Uint8Array | number[]): number;
    /**
     * Bind a UDP socket (0: an ephemeral port).
     */
    udp_bind(port: number): number;
    /**
     * Close a UDP socket.
     */
    udp_close(handle: number): void;
    /**
     * A target's answer to a FORWARD_UDP record, from `from:from_port` (the
     * route address) to the client `to:to_port`. Poll after.
     */
    udp_forward_reply(from: Uint8Array | number[], from_port: number, to: Uint8Array | number[], to_port: number, data: Uint8Array | number[]): void;
    /**
     * Send a UDP datagram from a bound socket.
     */
    udp_send(handle: number, addr: Uint8Array | number[], port: number, data: Uint8Array | number[]): void;
    /**
     * Add or update a peer (as `WgDevice.upsert_peer`). Returns its id.
     */
    upsert_peer(public_key: Uint8Array | number[], psk: Uint8Array | number[], allowed_ips: string, endpoint: number, persistent_keepalive: number): number;
}

export type InitInput = RequestInfo | URL | Response | BufferSource | WebAssembly.Module;

export interface InitOutput {
    readonly memory: WebAssembly.Memory;
    readonly __wbg_transportkey_free: (a: number, b: number) => void;
    readonly __wbg_wgdevice_free: (a: number, b: number) => void;
    readonly __wbg_wgengine_free: (a: number, b: number) => void;
    readonly transportkey_new: (a: number, b: number) => [number, number, number];
    readonly transportkey_open: (a: number, b: bigint, c: number, d: number) => [number, number, number, number];
    readonly transportkey_open_batch: (a: number, b: bigint, c: number, d: number, e: any, f: number, g: number) => [number, number, number];
    readonly transportkey_seal: (a: number, b: bigint, c: number, d: number) => [number, number];
    readonly transportkey_seal_batch: (a: number, b: bigint, c: number, d: number, e: any, f: number, g: number) => [number, number];
    readonly transportkey_simd: () => number;
    readonly wgdevice_drop_reason_name: (a: number) => [number, number];
    readonly wgdevice_new: (a: number, b: number, c: number, d: number) => [number, number, number];
    readonly wgdevice_public_key: (a: number) => [number, number];
    readonly wgdevice_receive: (a: number, b: number, c: number, d: number, e: number) => [number, number];
    readonly wgdevice_receive_batch: (a: number, b: number, c: number, d: number, e: number, f: number, g: number, h: number) => [number, number, number, number];
    readonly wgdevice_remove_peer: (a: number, b: number, c: number) => [number, number, number];
    readonly wgdevice_send: (a: number, b: number, c: number, d: number) => [number, number];
    readonly wgdevice_send_batch: (a: number, b: number, c: number, d: number, e: number, f: number) => [number, number, number, number];
    readonly wgdevice_set_endpoint: (a: number, b: number, c: number, d: number) => [number, number, number];
    readonly wgdevice_set_under_load: (a: number, b: number) => void;
    readonly wgdevice_stats_json: (a: number) => [number, number];
    readonly wgdevice_tick: (a: number, b: number) => [number, number];
    readonly wgdevice_upsert_peer: (a: number, b: number, c: number, d: number, e: number, f: number, g: number, h: number, i: number) => [number, number, number];
    readonly wgengine_new: (a: number, b: number, c: number, d: number, e: number, f: number) => [number, number, number];
    readonly wgengine_next_poll: (a: number, b: number) => number;
    readonly wgengine_ping: (a: number, b: number, c: number, d: number, e: number, f: number) => [number, number, number];
    readonly wgengine_ping_forward_reply: (a: number, b: number, c: number, d: number, e: number, f: number, g: number, h: number, i: number) => [number, number];
    readonly wgengine_poll: (a: number, b: number) => [number, number];
    readonly wgengine_public_key: (a: number) => [number, number];
    readonly wgengine_receive_batch: (a: number, b: number, c: number, d: number, e: number, f: number, g: number, h: number) => [number, number, number, number];
    readonly wgengine_remove_peer: (a: number, b: number, c: number) => [number, number, number];
    readonly wgengine_send_batch: (a: number, b: number, c: number, d: number, e: number, f: number) => [number, number, number, number];
    readonly wgengine_set_addresses: (a: number, b: number, c: number) => [number, number];
    readonly wgengine_set_filter: (a: number, b: number, c: number) => [number, number];
    readonly wgengine_set_routes: (a: number, b: number, c: number) => [number, number];
    readonly wgengine_stats_json: (a: number) => [number, number];
    readonly wgengine_tcp_abort: (a: number, b: number) => [number, number];
    readonly wgengine_tcp_close: (a: number, b: number) => [number, number];
    readonly wgengine_tcp_connect: (a: number, b: number, c: number, d: number) => [number, number, number];
    readonly wgengine_tcp_dial_result: (a: number, b: number, c: number, d: number) => [number, number, number];
    readonly wgengine_tcp_listen: (a: number, b: number) => [number, number, number];
    readonly wgengine_tcp_pause: (a: number, b: number, c: number) => [number, number];
    readonly wgengine_tcp_send: (a: number, b: number, c: number, d: number) => [number, number, number];
    readonly wgengine_udp_bind: (a: number, b: number) => [number, number, number];
    readonly wgengine_udp_close: (a: number, b: number) => [number, number];
    readonly wgengine_udp_forward_reply: (a: number, b: number, c: number, d: number, e: number, f: number, g: number, h: number, i: number) => [number, number];
    readonly wgengine_udp_send: (a: number, b: number, c: number, d: number, e: number, f: number, g: number) => [number, number];
    readonly wgengine_upsert_peer: (a: number, b: number, c: number, d: number, e: number, f: number, g: number, h: number, i: number) => [number, number, number];
    readonly __wbindgen_externrefs: WebAssembly.Table;
    readonly __wbindgen_malloc: (a: number, b: number) => number;
    readonly __wbindgen_free: (a: number, b: number, c: number) => void;
    readonly __externref_table_dealloc: (a: number) => void;
    readonly __wbindgen_realloc: (a: number, b: number, c: number, d: number) => number;
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
