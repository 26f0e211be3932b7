/* @ts-self-types="./trellis_wasm.d.ts" */

/**
 * One direction's transport key, as JS sees it.
 */
class TransportKey {
    __destroy_into_raw() {
        const ptr = this.__wbg_ptr;
        this.__wbg_ptr = 0;
        TransportKeyFinalization.unregister(this);
        return ptr;
    }
    free() {
        const ptr = this.__destroy_into_raw();
        wasm.__wbg_transportkey_free(ptr, 0);
    }
    /**
     * Make a key from its 32 bytes.
     * @param {Uint8Array | number[]} key
     */
    constructor(key) {
        const ptr0 = passArray8ToWasm0(key, wasm.__wbindgen_malloc);
        const len0 = WASM_VECTOR_LEN;
        const ret = wasm.transportkey_new(ptr0, len0);
        if (ret[2]) {
            throw takeFromExternrefTable0(ret[1]);
        }
        this.__wbg_ptr = ret[0];
        TransportKeyFinalization.register(this, this.__wbg_ptr, this);
        return this;
    }
    /**
     * Open one message; errors when the tag does not verify.
     * @param {bigint} counter
     * @param {Uint8Array | number[]} sealed
     * @returns {Uint8Array}
     */
    open(counter, sealed) {
        const val2 = BigInt.asIntN(64, counter);
        const ptr0 = passArray8ToWasm0(sealed, wasm.__wbindgen_malloc);
        const len0 = WASM_VECTOR_LEN;
        const ret = wasm.transportkey_open(this.__wbg_ptr, val2, ptr0, len0);
        if (ret[3]) {
            throw takeFromExternrefTable0(ret[2]);
        }
        var v3 = getArrayU8FromWasm0(ret[0], ret[1]).slice();
        wasm.__wbindgen_free(ret[0], ret[1] * 1, 1);
        return v3;
    }
    /**
     * Open `count` sealed messages of `stride` bytes each laid out back to back.
     * Returns how many authenticated; the rest are left as garbage.
     * @param {bigint} first_counter
     * @param {Uint8Array} buf
     * @param {number} stride
     * @param {number} count
     * @returns {number}
     */
    open_batch(first_counter, buf, stride, count) {
        const val2 = BigInt.asIntN(64, first_counter);
        const val3 = +stride;
        const val4 = +count;
        var ptr0 = passArray8ToWasm0(buf, wasm.__wbindgen_malloc);
        var len0 = WASM_VECTOR_LEN;
        const ret = wasm.transportkey_open_batch(this.__wbg_ptr, val2, ptr0, len0, buf, val3, val4);
        if (ret[2]) {
            throw takeFromExternrefTable0(ret[1]);
        }
        return ret[0] >>> 0;
    }
    /**
     * Seal one message: returns ciphertext plus tag.
     * @param {bigint} counter
     * @param {Uint8Array | number[]} plaintext
     * @returns {Uint8Array}
     */
    seal(counter, plaintext) {
        const val2 = BigInt.asIntN(64, counter);
        const ptr0 = passArray8ToWasm0(plaintext, wasm.__wbindgen_malloc);
        const len0 = WASM_VECTOR_LEN;
        const ret = wasm.transportkey_seal(this.__wbg_ptr, val2, ptr0, len0);
        var v3 = getArrayU8FromWasm0(ret[0], ret[1]).slice();
        wasm.__wbindgen_free(ret[0], ret[1] * 1, 1);
        return v3;
    }
    /**
     * Seal `count` messages of `len` bytes laid out back to back in `buf`, each
     * followed by room for its tag (stride `len + 16`), with counters
     * `first_counter..`. One call crosses the JS/WASM boundary for the batch.
     * @param {bigint} first_counter
     * @param {Uint8Array} buf
     * @param {number} len
     * @param {number} count
     */
    seal_batch(first_counter, buf, len, count) {
        const val2 = BigInt.asIntN(64, first_counter);
        const val3 = +len;
        const val4 = +count;
        var ptr0 = passArray8ToWasm0(buf, wasm.__wbindgen_malloc);
        var len0 = WASM_VECTOR_LEN;
        const ret = wasm.transportkey_seal_batch(this.__wbg_ptr, val2, ptr0, len0, buf, val3, val4);
        if (ret[1]) {
            throw takeFromExternrefTable0(ret[0]);
        }
    }
    /**
     * Whether this build encrypts with the SIMD128 ChaCha20.
     * @returns {boolean}
     */
    static simd() {
        const ret = wasm.transportkey_simd();
        return ret !== 0;
    }
}
if (Symbol.dispose) TransportKey.prototype[Symbol.dispose] = TransportKey.prototype.free;
exports.TransportKey = TransportKey;

/**
 * A WireGuard device for JS hosts.
 */
class WgDevice {
    __destroy_into_raw() {
        const ptr = this.__wbg_ptr;
        this.__wbg_ptr = 0;
        WgDeviceFinalization.unregister(this);
        return ptr;
    }
    free() {
        const ptr = this.__destroy_into_raw();
        wasm.__wbg_wgdevice_free(ptr, 0);
    }
    /**
     * Name of a drop reason code (the device's or the engine's).
     * @param {number} code
     * @returns {string}
     */
    static drop_reason_name(code) {
        let deferred1_0;
        let deferred1_1;
        try {
            const ret = wasm.wgdevice_drop_reason_name(code);
            deferred1_0 = ret[0];
            deferred1_1 = ret[1];
            return getStringFromWasm0(ret[0], ret[1]);
        } finally {
            wasm.__wbindgen_free(deferred1_0, deferred1_1, 1);
        }
    }
    /**
     * A device with a static private key and 32 bytes of seed from the host's CSPRNG.
     * @param {Uint8Array | number[]} private_key
     * @param {Uint8Array | number[]} seed
     */
    constructor(private_key, seed) {
        let ptr0, len0, ptr1, len1;
        try {
            ptr0 = passArray8ToWasm0(private_key, wasm.__wbindgen_malloc);
            len0 = WASM_VECTOR_LEN;
            ptr1 = passArray8ToWasm0(seed, wasm.__wbindgen_malloc);
            len1 = WASM_VECTOR_LEN;
        } catch (e) {
            if (ptr1) { wasm.__wbindgen_free(ptr1, len1 * 1, 1); }
            if (ptr0) { wasm.__wbindgen_free(ptr0, len0 * 1, 1); }
            throw e;
        }
        const ret = wasm.wgdevice_new(ptr0, len0, ptr1, len1);
        if (ret[2]) {
            throw takeFromExternrefTable0(ret[1]);
        }
        this.__wbg_ptr = ret[0];
        WgDeviceFinalization.register(this, this.__wbg_ptr, this);
        return this;
    }
    /**
     * Our static public key.
     * @returns {Uint8Array}
     */
    public_key() {
        const ret = wasm.wgdevice_public_key(this.__wbg_ptr);
        var v1 = getArrayU8FromWasm0(ret[0], ret[1]).slice();
        wasm.__wbindgen_free(ret[0], ret[1] * 1, 1);
        return v1;
    }
    /**
     * Process one datagram from an endpoint.
     * @param {Uint8Array | number[]} datagram
     * @param {number} endpoint
     * @param {number} now
     * @returns {Uint8Array}
     */
    receive(datagram, endpoint, now) {
        const val2 = +endpoint;
        const val3 = +now;
        const ptr0 = passArray8ToWasm0(datagram, wasm.__wbindgen_malloc);
        const len0 = WASM_VECTOR_LEN;
        const ret = wasm.wgdevice_receive(this.__wbg_ptr, ptr0, len0, val2, val3);
        var v4 = getArrayU8FromWasm0(ret[0], ret[1]).slice();
        wasm.__wbindgen_free(ret[0], ret[1] * 1, 1);
        return v4;
    }
    /**
     * Process many datagrams laid out back to back, each from `endpoints[i]`.
     * @param {Uint8Array | number[]} datagrams
     * @param {Uint32Array | number[]} lens
     * @param {Uint32Array | number[]} endpoints
     * @param {number} now
     * @returns {Uint8Array}
     */
    receive_batch(datagrams, lens, endpoints, now) {
        const val4 = +now;
        let ptr0, len0, ptr1, len1, ptr2, len2;
        try {
            ptr0 = passArray8ToWasm0(datagrams, wasm.__wbindgen_malloc);
            len0 = WASM_VECTOR_LEN;
            ptr1 = passArray32ToWasm0(lens, wasm.__wbindgen_malloc);
            len1 = WASM_VECTOR_LEN;
            ptr2 = passArray32ToWasm0(endpoints, wasm.__wbindgen_malloc);
            len2 = WASM_VECTOR_LEN;
        } catch (e) {
            if (ptr2) { wasm.__wbindgen_free(ptr2, len2 * 4, 4); }
            if (ptr1) { wasm.__wbindgen_free(ptr1, len1 * 4, 4); }
            if (ptr0) { wasm.__wbindgen_free(ptr0, len0 * 1, 1); }
            throw e;
        }
        const ret = wasm.wgdevice_receive_batch(this.__wbg_ptr, ptr0, len0, ptr1, len1, ptr2, len2, val4);
        if (ret[3]) {
            throw takeFromExternrefTable0(ret[2]);
        }
        var v5 = getArrayU8FromWasm0(ret[0], ret[1]).slice();
        wasm.__wbindgen_free(ret[0], ret[1] * 1, 1);
        return v5;
    }
    /**
     * Remove a peer; false if unknown.
     * @param {Uint8Array | number[]} public_key
     * @returns {boolean}
     */
    remove_peer(public_key) {
        const ptr0 = passArray8ToWasm0(public_key, wasm.__wbindgen_malloc);
        const len0 = WASM_VECTOR_LEN;
        const ret = wasm.wgdevice_remove_peer(this.__wbg_ptr, ptr0, len0);
        if (ret[2]) {
            throw takeFromExternrefTable0(ret[1]);
        }
        return ret[0] !== 0;
    }
    /**
     * Encrypt one IP packet.
     * @param {Uint8Array | number[]} packet
     * @param {number} now
     * @returns {Uint8Array}
     */
    send(packet, now) {
        const val2 = +now;
        const ptr0 = passArray8ToWasm0(packet, wasm.__wbindgen_malloc);
        const len0 = WASM_VECTOR_LEN;
        const ret = wasm.wgdevice_send(this.__wbg_ptr, ptr0, len0, val2);
        var v3 = getArrayU8FromWasm0(ret[0], ret[1]).slice();
        wasm.__wbindgen_free(ret[0], ret[1] * 1, 1);
        return v3;
    }
    /**
     * Encrypt many IP packets laid out back to back (`lens` gives each length).
     * @param {Uint8Array | number[]} packets
     * @param {Uint32Array | number[]} lens
     * @param {number} now
     * @returns {Uint8Array}
     */
    send_batch(packets, lens, now) {
        const val3 = +now;
        let ptr0, len0, ptr1, len1;
        try {
            ptr0 = passArray8ToWasm0(packets, wasm.__wbindgen_malloc);
            len0 = WASM_VECTOR_LEN;
            ptr1 = passArray32ToWasm0(lens, wasm.__wbindgen_malloc);
            len1 = WASM_VECTOR_LEN;
        } catch (e) {
            if (ptr1) { wasm.__wbindgen_free(ptr1, len1 * 4, 4); }
            if (ptr0) { wasm.__wbindgen_free(ptr0, len0 * 1, 1); }
            throw e;
        }
        const ret = wasm.wgdevice_send_batch(this.__wbg_ptr, ptr0, len0, ptr1, len1, val3);
        if (ret[3]) {
            throw takeFromExternrefTable0(ret[2]);
        }
        var v4 = getArrayU8FromWasm0(ret[0], ret[1]).slice();
        wasm.__wbindgen_free(ret[0], ret[1] * 1, 1);
        return v4;
    }
    /**
     * Point a peer at an endpoint handle.
     * @param {Uint8Array | number[]} public_key
     * @param {number} endpoint
     * @returns {boolean}
     */
    set_endpoint(public_key, endpoint) {
        const val2 = +endpoint;
        const ptr0 = passArray8ToWasm0(public_key, wasm.__wbindgen_malloc);
        const len0 = WASM_VECTOR_LEN;
        const ret = wasm.wgdevice_set_endpoint(this.__wbg_ptr, ptr0, len0, val2);
        if (ret[2]) {
            throw takeFromExternrefTable0(ret[1]);
        }
        return ret[0] !== 0;
    }
    /**
     * Answer every handshake with a cookie reply unless it carries a valid mac2.
     * @param {boolean} on
     */
    set_under_load(on) {
        wasm.wgdevice_set_under_load(this.__wbg_ptr, on);
    }
    /**
     * Drop counters and per-peer state as JSON.
     * @returns {string}
     */
    stats_json() {
        let deferred1_0;
        let deferred1_1;
        try {
            const ret = wasm.wgdevice_stats_json(this.__wbg_ptr);
            deferred1_0 = ret[0];
            deferred1_1 = ret[1];
            return getStringFromWasm0(ret[0], ret[1]);
        } finally {
            wasm.__wbindgen_free(deferred1_0, deferred1_1, 1);
        }
    }
    /**
     * Fire due timers.
     * @param {number} now
     * @returns {Uint8Array}
     */
    tick(now) {
        const ret = wasm.wgdevice_tick(this.__wbg_ptr, now);
        var v1 = getArrayU8FromWasm0(ret[0], ret[1]).slice();
        wasm.__wbindgen_free(ret[0], ret[1] * 1, 1);
        return v1;
    }
    /**
     * Add or update a peer. `psk` empty for none; `allowed_ips` comma-separated
     * CIDRs; `endpoint` negative for none. Returns the peer id.
     * @param {Uint8Array | number[]} public_key
     * @param {Uint8Array | number[]} psk
     * @param {string} allowed_ips
     * @param {number} endpoint
     * @param {number} persistent_keepalive
     * @returns {number}
     */
    upsert_peer(public_key, psk, allowed_ips, endpoint, persistent_keepalive) {
        const val4 = +endpoint;
        const val5 = +persistent_keepalive;
        let ptr0, len0, ptr1, len1, ptr2, len2;
        try {
            ptr0 = passArray8ToWasm0(public_key, wasm.__wbindgen_malloc);
            len0 = WASM_VECTOR_LEN;
            ptr1 = passArray8ToWasm0(psk, wasm.__wbindgen_malloc);
            len1 = WASM_VECTOR_LEN;
            ptr2 = passStringToWasm0(allowed_ips, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
            len2 = WASM_VECTOR_LEN;
        } catch (e) {
            if (ptr2) { wasm.__wbindgen_free(ptr2, len2 * 1, 1); }
            if (ptr1) { wasm.__wbindgen_free(ptr1, len1 * 1, 1); }
            if (ptr0) { wasm.__wbindgen_free(ptr0, len0 * 1, 1); }
            throw e;
        }
        const ret = wasm.wgdevice_upsert_peer(this.__wbg_ptr, ptr0, len0, ptr1, len1, ptr2, len2, val4, val5);
        if (ret[2]) {
            throw takeFromExternrefTable0(ret[1]);
        }
        return ret[0] >>> 0;
    }
}
if (Symbol.dispose) WgDevice.prototype[Symbol.dispose] = WgDevice.prototype.free;
exports.WgDevice = WgDevice;

/**
 * The node engine for JS hosts (see `engine`): WireGuard, the packet filter,
 * and (for browsers and unprivileged gateways) the userspace TCP/IP stack.
 */
class WgEngine {
    __destroy_into_raw() {
        const ptr = this.__wbg_ptr;
        this.__wbg_ptr = 0;
        WgEngineFinalization.unregister(this);
        return ptr;
    }
    free() {
        const ptr = this.__destroy_into_raw();
        wasm.__wbg_wgengine_free(ptr, 0);
    }
    /**
     * `stack`: deliver admitted packets to the userspace stack (false: to the host).
     * @param {Uint8Array | number[]} private_key
     * @param {Uint8Array | number[]} seed
     * @param {boolean} stack
     * @param {number} now
     */
    constructor(private_key, seed, stack, now) {
        const val3 = +stack;
        const val4 = +now;
        let ptr0, len0, ptr1, len1;
        try {
            ptr0 = passArray8ToWasm0(private_key, wasm.__wbindgen_malloc);
            len0 = WASM_VECTOR_LEN;
            ptr1 = passArray8ToWasm0(seed, wasm.__wbindgen_malloc);
            len1 = WASM_VECTOR_LEN;
        } catch (e) {
            if (ptr1) { wasm.__wbindgen_free(ptr1, len1 * 1, 1); }
            if (ptr0) { wasm.__wbindgen_free(ptr0, len0 * 1, 1); }
            throw e;
        }
        const ret = wasm.wgengine_new(ptr0, len0, ptr1, len1, val3, val4);
        if (ret[2]) {
            throw takeFromExternrefTable0(ret[1]);
        }
        this.__wbg_ptr = ret[0];
        WgEngineFinalization.register(this, this.__wbg_ptr, this);
        return this;
    }
    /**
     * When to poll next, in the host's milliseconds.
     * @param {number} now
     * @returns {number}
     */
    next_poll(now) {
        const ret = wasm.wgengine_next_poll(this.__wbg_ptr, now);
        return ret;
    }
    /**
     * Send an ICMP echo request; returns the identifier replies carry.
     * @param {Uint8Array | number[]} addr
     * @param {number} seq
     * @param {Uint8Array | number[]} payload
     * @returns {number}
     */
    ping(addr, seq, payload) {
        const val3 = +seq;
        let ptr0, len0, ptr1, len1;
        try {
            ptr0 = passArray8ToWasm0(addr, wasm.__wbindgen_malloc);
            len0 = WASM_VECTOR_LEN;
            ptr1 = passArray8ToWasm0(payload, wasm.__wbindgen_malloc);
            len1 = WASM_VECTOR_LEN;
        } catch (e) {
            if (ptr1) { wasm.__wbindgen_free(ptr1, len1 * 1, 1); }
            if (ptr0) { wasm.__wbindgen_free(ptr0, len0 * 1, 1); }
            throw e;
        }
        const ret = wasm.wgengine_ping(this.__wbg_ptr, ptr0, len0, val3, ptr1, len1);
        if (ret[2]) {
            throw takeFromExternrefTable0(ret[1]);
        }
        return ret[0];
    }
    /**
     * A target answered a FORWARD_PING record: the echo reply from `from`
     * (the route address) to the client `to`. Poll after.
     * @param {Uint8Array | number[]} from
     * @param {Uint8Array | number[]} to
     * @param {number} ident
     * @param {number} seq
     * @param {Uint8Array | number[]} data
     */
    ping_forward_reply(from, to, ident, seq, data) {
        const val4 = +ident;
        const val5 = +seq;
        let ptr0, len0, ptr1, len1, ptr2, len2;
        try {
            ptr0 = passArray8ToWasm0(from, wasm.__wbindgen_malloc);
            len0 = WASM_VECTOR_LEN;
            ptr1 = passArray8ToWasm0(to, wasm.__wbindgen_malloc);
            len1 = WASM_VECTOR_LEN;
            ptr2 = passArray8ToWasm0(data, wasm.__wbindgen_malloc);
            len2 = WASM_VECTOR_LEN;
        } catch (e) {
            if (ptr2) { wasm.__wbindgen_free(ptr2, len2 * 1, 1); }
            if (ptr1) { wasm.__wbindgen_free(ptr1, len1 * 1, 1); }
            if (ptr0) { wasm.__wbindgen_free(ptr0, len0 * 1, 1); }
            throw e;
        }
        const ret = wasm.wgengine_ping_forward_reply(this.__wbg_ptr, ptr0, len0, ptr1, len1, val4, val5, ptr2, len2);
        if (ret[1]) {
            throw takeFromExternrefTable0(ret[0]);
        }
    }
    /**
     * Timers, and whatever sockets have to send.
     * @param {number} now
     * @returns {Uint8Array}
     */
    poll(now) {
        const ret = wasm.wgengine_poll(this.__wbg_ptr, now);
        var v1 = getArrayU8FromWasm0(ret[0], ret[1]).slice();
        wasm.__wbindgen_free(ret[0], ret[1] * 1, 1);
        return v1;
    }
    /**
     * Our static public key.
     * @returns {Uint8Array}
     */
    public_key() {
        const ret = wasm.wgengine_public_key(this.__wbg_ptr);
        var v1 = getArrayU8FromWasm0(ret[0], ret[1]).slice();
        wasm.__wbindgen_free(ret[0], ret[1] * 1, 1);
        return v1;
    }
    /**
     * Datagrams from paths, back to back, each from `endpoints[i]`.
     * @param {Uint8Array | number[]} datagrams
     * @param {Uint32Array | number[]} lens
     * @param {Uint32Array | number[]} endpoints
     * @param {number} now
     * @returns {Uint8Array}
     */
    receive_batch(datagrams, lens, endpoints, now) {
        const val4 = +now;
        let ptr0, len0, ptr1, len1, ptr2, len2;
        try {
            ptr0 = passArray8ToWasm0(datagrams, wasm.__wbindgen_malloc);
            len0 = WASM_VECTOR_LEN;
            ptr1 = passArray32ToWasm0(lens, wasm.__wbindgen_malloc);
            len1 = WASM_VECTOR_LEN;
            ptr2 = passArray32ToWasm0(endpoints, wasm.__wbindgen_malloc);
            len2 = WASM_VECTOR_LEN;
        } catch (e) {
            if (ptr2) { wasm.__wbindgen_free(ptr2, len2 * 4, 4); }
            if (ptr1) { wasm.__wbindgen_free(ptr1, len1 * 4, 4); }
            if (ptr0) { wasm.__wbindgen_free(ptr0, len0 * 1, 1); }
            throw e;
        }
        const ret = wasm.wgengine_receive_batch(this.__wbg_ptr, ptr0, len0, ptr1, len1, ptr2, len2, val4);
        if (ret[3]) {
            throw takeFromExternrefTable0(ret[2]);
        }
        var v5 = getArrayU8FromWasm0(ret[0], ret[1]).slice();
        wasm.__wbindgen_free(ret[0], ret[1] * 1, 1);
        return v5;
    }
    /**
     * Remove a peer; false if unknown.
     * @param {Uint8Array | number[]} public_key
     * @returns {boolean}
     */
    remove_peer(public_key) {
        const ptr0 = passArray8ToWasm0(public_key, wasm.__wbindgen_malloc);
        const len0 = WASM_VECTOR_LEN;
        const ret = wasm.wgengine_remove_peer(this.__wbg_ptr, ptr0, len0);
        if (ret[2]) {
            throw takeFromExternrefTable0(ret[1]);
        }
        return ret[0] !== 0;
    }
    /**
     * IP packets from the host (TUN), back to back, to encrypt for peers.
     * @param {Uint8Array | number[]} packets
     * @param {Uint32Array | number[]} lens
     * @param {number} now
     * @returns {Uint8Array}
     */
    send_batch(packets, lens, now) {
        const val3 = +now;
        let ptr0, len0, ptr1, len1;
        try {
            ptr0 = passArray8ToWasm0(packets, wasm.__wbindgen_malloc);
            len0 = WASM_VECTOR_LEN;
            ptr1 = passArray32ToWasm0(lens, wasm.__wbindgen_malloc);
            len1 = WASM_VECTOR_LEN;
        } catch (e) {
            if (ptr1) { wasm.__wbindgen_free(ptr1, len1 * 4, 4); }
            if (ptr0) { wasm.__wbindgen_free(ptr0, len0 * 1, 1); }
            throw e;
        }
        const ret = wasm.wgengine_send_batch(this.__wbg_ptr, ptr0, len0, ptr1, len1, val3);
        if (ret[3]) {
            throw takeFromExternrefTable0(ret[2]);
        }
        var v4 = getArrayU8FromWasm0(ret[0], ret[1]).slice();
        wasm.__wbindgen_free(ret[0], ret[1] * 1, 1);
        return v4;
    }
    /**
     * This node's addresses, comma-separated (`100.64.0.5,fd7a:115c:a1e0::5`).
     * @param {string} addrs
     */
    set_addresses(addrs) {
        const ptr0 = passStringToWasm0(addrs, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
        const len0 = WASM_VECTOR_LEN;
        const ret = wasm.wgengine_set_addresses(this.__wbg_ptr, ptr0, len0);
        if (ret[1]) {
            throw takeFromExternrefTable0(ret[0]);
        }
    }
    /**
     * Replace the packet filter: a JSON array of `FilterRule`s.
     * @param {string} json
     */
    set_filter(json) {
        const ptr0 = passStringToWasm0(json, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
        const len0 = WASM_VECTOR_LEN;
        const ret = wasm.wgengine_set_filter(this.__wbg_ptr, ptr0, len0);
        if (ret[1]) {
            throw takeFromExternrefTable0(ret[0]);
        }
    }
    /**
     * Subnet routes served through the userspace stack, comma-separated
     * CIDR prefixes (empty: none). Flows to them arrive as KIND_FORWARD records.
     * @param {string} prefixes
     */
    set_routes(prefixes) {
        const ptr0 = passStringToWasm0(prefixes, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
        const len0 = WASM_VECTOR_LEN;
        const ret = wasm.wgengine_set_routes(this.__wbg_ptr, ptr0, len0);
        if (ret[1]) {
            throw takeFromExternrefTable0(ret[0]);
        }
    }
    /**
     * Drop counters (device and engine), per-peer state, flows tracked and sockets open, as JSON.
     * @returns {string}
     */
    stats_json() {
        let deferred1_0;
        let deferred1_1;
        try {
            const ret = wasm.wgengine_stats_json(this.__wbg_ptr);
            deferred1_0 = ret[0];
            deferred1_1 = ret[1];
            return getStringFromWasm0(ret[0], ret[1]);
        } finally {
            wasm.__wbindgen_free(deferred1_0, deferred1_1, 1);
        }
    }
    /**
     * Reset a connection and release its handle.
     * @param {number} handle
     */
    tcp_abort(handle) {
        const ret = wasm.wgengine_tcp_abort(this.__wbg_ptr, handle);
        if (ret[1]) {
            throw takeFromExternrefTable0(ret[0]);
        }
    }
    /**
     * Finish sending on a connection (or stop a listener).
     * @param {number} handle
     */
    tcp_close(handle) {
        const ret = wasm.wgengine_tcp_close(this.__wbg_ptr, handle);
        if (ret[1]) {
            throw takeFromExternrefTable0(ret[0]);
        }
    }
    /**
     * Open a TCP connection; returns its handle.
     * @param {Uint8Array | number[]} addr
     * @param {number} port
     * @returns {number}
     */
    tcp_connect(addr, port) {
        const val2 = +port;
        const ptr0 = passArray8ToWasm0(addr, wasm.__wbindgen_malloc);
        const len0 = WASM_VECTOR_LEN;
        const ret = wasm.wgengine_tcp_connect(this.__wbg_ptr, ptr0, len0, val2);
        if (ret[2]) {
            throw takeFromExternrefTable0(ret[1]);
        }
        return ret[0] >>> 0;
    }
    /**
     * The host's answer to a FORWARD_TCP record: `ok` when it reached the
     * target. Returns the connection's handle (it reports like one from
     * `tcp_connect`), or 0 when refused (the client got a reset). Poll after.
     * @param {number} id
     * @param {boolean} ok
     * @param {number} now
     * @returns {number}
     */
    tcp_dial_result(id, ok, now) {
        const ret = wasm.wgengine_tcp_dial_result(this.__wbg_ptr, id, ok, now);
        if (ret[2]) {
            throw takeFromExternrefTable0(ret[1]);
        }
        return ret[0] >>> 0;
    }
    /**
     * Listen on a TCP port of this node's addresses; returns the listener's handle.
     * @param {number} port
     * @returns {number}
     */
    tcp_listen(port) {
        const ret = wasm.wgengine_tcp_listen(this.__wbg_ptr, port);
        if (ret[2]) {
            throw takeFromExternrefTable0(ret[1]);
        }
        return ret[0] >>> 0;
    }
    /**
     * Stop or resume reading a connection (back-pressure).
     * @param {number} handle
     * @param {boolean} paused
     */
    tcp_pause(handle, paused) {
        const ret = wasm.wgengine_tcp_pause(this.__wbg_ptr, handle, paused);
        if (ret[1]) {
            throw takeFromExternrefTable0(ret[0]);
        }
    }
    /**
     * Queue bytes on a connection; returns how many fit.
     * @param {number} handle
     * @param {Uint8Array | number[]} data
     * @returns {number}
     */
    tcp_send(handle, data) {
        const val2 = +handle;
        const ptr0 = passArray8ToWasm0(data, wasm.__wbindgen_malloc);
        const len0 = WASM_VECTOR_LEN;
        const ret = wasm.wgengine_tcp_send(this.__wbg_ptr, val2, ptr0, len0);
        if (ret[2]) {
            throw takeFromExternrefTable0(ret[1]);
        }
        return ret[0] >>> 0;
    }
    /**
     * Bind a UDP socket (0: an ephemeral port).
     * @param {number} port
     * @returns {number}
     */
    udp_bind(port) {
        const ret = wasm.wgengine_udp_bind(this.__wbg_ptr, port);
        if (ret[2]) {
            throw takeFromExternrefTable0(ret[1]);
        }
        return ret[0] >>> 0;
    }
    /**
     * Close a UDP socket.
     * @param {number} handle
     */
    udp_close(handle) {
        const ret = wasm.wgengine_udp_close(this.__wbg_ptr, handle);
        if (ret[1]) {
            throw takeFromExternrefTable0(ret[0]);
        }
    }
    /**
     * A target's answer to a FORWARD_UDP record, from `from:from_port` (the
     * route address) to the client `to:to_port`. Poll after.
     * @param {Uint8Array | number[]} from
     * @param {number} from_port
     * @param {Uint8Array | number[]} to
     * @param {number} to_port
     * @param {Uint8Array | number[]} data
     */
    udp_forward_reply(from, from_port, to, to_port, data) {
        const val4 = +from_port;
        const val5 = +to_port;
        let ptr0, len0, ptr1, len1, ptr2, len2;
        try {
            ptr0 = passArray8ToWasm0(from, wasm.__wbindgen_malloc);
            len0 = WASM_VECTOR_LEN;
            ptr1 = passArray8ToWasm0(to, wasm.__wbindgen_malloc);
            len1 = WASM_VECTOR_LEN;
            ptr2 = passArray8ToWasm0(data, wasm.__wbindgen_malloc);
            len2 = WASM_VECTOR_LEN;
        } catch (e) {
            if (ptr2) { wasm.__wbindgen_free(ptr2, len2 * 1, 1); }
            if (ptr1) { wasm.__wbindgen_free(ptr1, len1 * 1, 1); }
            if (ptr0) { wasm.__wbindgen_free(ptr0, len0 * 1, 1); }
            throw e;
        }
        const ret = wasm.wgengine_udp_forward_reply(this.__wbg_ptr, ptr0, len0, val4, ptr1, len1, val5, ptr2, len2);
        if (ret[1]) {
            throw takeFromExternrefTable0(ret[0]);
        }
    }
    /**
     * Send a UDP datagram from a bound socket.
     * @param {number} handle
     * @param {Uint8Array | number[]} addr
     * @param {number} port
     * @param {Uint8Array | number[]} data
     */
    udp_send(handle, addr, port, data) {
        const val3 = +handle;
        const val4 = +port;
        let ptr0, len0, ptr1, len1;
        try {
            ptr0 = passArray8ToWasm0(addr, wasm.__wbindgen_malloc);
            len0 = WASM_VECTOR_LEN;
            ptr1 = passArray8ToWasm0(data, wasm.__wbindgen_malloc);
            len1 = WASM_VECTOR_LEN;
        } catch (e) {
            if (ptr1) { wasm.__wbindgen_free(ptr1, len1 * 1, 1); }
            if (ptr0) { wasm.__wbindgen_free(ptr0, len0 * 1, 1); }
            throw e;
        }
        const ret = wasm.wgengine_udp_send(this.__wbg_ptr, val3, ptr0, len0, val4, ptr1, len1);
        if (ret[1]) {
            throw takeFromExternrefTable0(ret[0]);
        }
    }
    /**
     * Add or update a peer (as `WgDevice.upsert_peer`). Returns its id.
     * @param {Uint8Array | number[]} public_key
     * @param {Uint8Array | number[]} psk
     * @param {string} allowed_ips
     * @param {number} endpoint
     * @param {number} persistent_keepalive
     * @returns {number}
     */
    upsert_peer(public_key, psk, allowed_ips, endpoint, persistent_keepalive) {
        const val4 = +endpoint;
        const val5 = +persistent_keepalive;
        let ptr0, len0, ptr1, len1, ptr2, len2;
        try {
            ptr0 = passArray8ToWasm0(public_key, wasm.__wbindgen_malloc);
            len0 = WASM_VECTOR_LEN;
            ptr1 = passArray8ToWasm0(psk, wasm.__wbindgen_malloc);
            len1 = WASM_VECTOR_LEN;
            ptr2 = passStringToWasm0(allowed_ips, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
            len2 = WASM_VECTOR_LEN;
        } catch (e) {
            if (ptr2) { wasm.__wbindgen_free(ptr2, len2 * 1, 1); }
            if (ptr1) { wasm.__wbindgen_free(ptr1, len1 * 1, 1); }
            if (ptr0) { wasm.__wbindgen_free(ptr0, len0 * 1, 1); }
            throw e;
        }
        const ret = wasm.wgengine_upsert_peer(this.__wbg_ptr, ptr0, len0, ptr1, len1, ptr2, len2, val4, val5);
        if (ret[2]) {
            throw takeFromExternrefTable0(ret[1]);
        }
        return ret[0] >>> 0;
    }
}
if (Symbol.dispose) WgEngine.prototype[Symbol.dispose] = WgEngine.prototype.free;
exports.WgEngine = WgEngine;
function __wbg_get_imports() {
    const import0 = {
        __proto__: null,
        __wbg_Error_208446807d0d1e30: function(arg0, arg1) {
            const ret = Error(getStringFromWasm0(arg0, arg1));
            return ret;
        },
        __wbg___wbindgen_copy_to_typed_array_680b191e71920dc1: function(arg0, arg1, arg2) {
            new Uint8Array(arg2.buffer, arg2.byteOffset, arg2.byteLength).set(getArrayU8FromWasm0(arg0, arg1));
        },
        __wbg___wbindgen_throw_4c88d8bf264fd984: function(arg0, arg1) {
            throw new Error(getStringFromWasm0(arg0, arg1));
        },
        __wbindgen_init_externref_table: function() {
            const table = wasm.__wbindgen_externrefs;
            table.set(0, undefined);
            table.set(1024, undefined);
            table.set(1025, null);
            table.set(1026, true);
            table.set(1027, false);
        },
    };
    return {
        __proto__: null,
        "./trellis_wasm_bg.js": import0,
    };
}

const TransportKeyFinalization = (typeof FinalizationRegistry === 'undefined')
    ? { register: () => {}, unregister: () => {} }
    : new FinalizationRegistry(ptr => wasm.__wbg_transportkey_free(ptr, 1));
const WgDeviceFinalization = (typeof FinalizationRegistry === 'undefined')
    ? { register: () => {}, unregister: () => {} }
    : new FinalizationRegistry(ptr => wasm.__wbg_wgdevice_free(ptr, 1));
const WgEngineFinalization = (typeof FinalizationRegistry === 'undefined')
    ? { register: () => {}, unregister: () => {} }
    : new FinalizationRegistry(ptr => wasm.__wbg_wgengine_free(ptr, 1));

function getArrayU8FromWasm0(ptr, len) {
    ptr = ptr >>> 0;
    return getUint8ArrayMemory0().subarray(ptr / 1, ptr / 1 + len);
}

function getStringFromWasm0(ptr, len) {
    ptr = ptr >>> 0;
    return decodeText(getUint8ArrayMemory0().subarray(ptr, ptr + len));
}

let cachedUint32ArrayMemory0 = null;
function getUint32ArrayMemory0() {
    if (cachedUint32ArrayMemory0 === null || cachedUint32ArrayMemory0.byteLength === 0) {
        cachedUint32ArrayMemory0 = new Uint32Array(wasm.memory.buffer);
    }
    return cachedUint32ArrayMemory0;
}

let cachedUint8ArrayMemory0 = null;
function getUint8ArrayMemory0() {
    if (cachedUint8ArrayMemory0 === null || cachedUint8ArrayMemory0.byteLength === 0) {
        cachedUint8ArrayMemory0 = new Uint8Array(wasm.memory.buffer);
    }
    return cachedUint8ArrayMemory0;
}

function passArray32ToWasm0(arg, malloc) {
    const ptr = malloc(arg.length * 4, 4) >>> 0;
    getUint32ArrayMemory0().set(arg, ptr / 4);
    WASM_VECTOR_LEN = arg.length;
    return ptr;
}

function passArray8ToWasm0(arg, malloc) {
    const ptr = malloc(arg.length * 1, 1) >>> 0;
    getUint8ArrayMemory0().set(arg, ptr / 1);
    WASM_VECTOR_LEN = arg.length;
    return ptr;
}

function passStringToWasm0(arg, malloc, realloc) {
    if (realloc === undefined) {
        const buf = cachedTextEncoder.encode(arg);
        const ptr = malloc(buf.length, 1) >>> 0;
        getUint8ArrayMemory0().subarray(ptr, ptr + buf.length).set(buf);
        WASM_VECTOR_LEN = buf.length;
        return ptr;
    }

    let len = arg.length;
    let ptr = malloc(len, 1) >>> 0;

    const mem = getUint8ArrayMemory0();

    let offset = 0;

    for (; offset < len; offset++) {
        const code = arg.charCodeAt(offset);
        if (code > 0x7F) break;
        mem[ptr + offset] = code;
    }
    if (offset !== len) {
        if (offset !== 0) {
            arg = arg.slice(offset);
        }
        ptr = realloc(ptr, len, len = offset + arg.length * 3, 1) >>> 0;
        const view = getUint8ArrayMemory0().subarray(ptr + offset, ptr + len);
        const ret = cachedTextEncoder.encodeInto(arg, view);

        offset += ret.written;
        ptr = realloc(ptr, len, offset, 1) >>> 0;
    }

    WASM_VECTOR_LEN = offset;
    return ptr;
}

function takeFromExternrefTable0(idx) {
    const value = wasm.__wbindgen_externrefs.get(idx);
    wasm.__externref_table_dealloc(idx);
    return value;
}

let cachedTextDecoder = new TextDecoder('utf-8', { ignoreBOM: true });
cachedTextDecoder.decode();
function decodeText(bytes) {
    return cachedTextDecoder.decode(bytes);
}

const cachedTextEncoder = new TextEncoder();

if (!('encodeInto' in cachedTextEncoder)) {
    cachedTextEncoder.encodeInto = function (arg, view) {
        const buf = cachedTextEncoder.encode(arg);
        view.set(buf);
        return {
            read: arg.length,
            written: buf.length
        };
    };
}

let WASM_VECTOR_LEN = 0;

const wasmPath = `${__dirname}/trellis_wasm_bg.wasm`;
const wasmBytes = require('fs').readFileSync(wasmPath);
const wasmModule = new WebAssembly.Module(wasmBytes);
let wasmInstance = new WebAssembly.Instance(wasmModule, __wbg_get_imports());
let wasm = wasmInstance.exports;
wasm.__wbindgen_start();
