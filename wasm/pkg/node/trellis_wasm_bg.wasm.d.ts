/* tslint:disable */
/* eslint-disable */
export const memory: WebAssembly.Memory;
export const __wbg_transportkey_free: (a: number, b: number) => void;
export const __wbg_wgdevice_free: (a: number, b: number) => void;
export const transportkey_new: (a: number, b: number) => [number, number, number];
export const transportkey_open: (a: number, b: bigint, c: number, d: number) => [number, number, number, number];
export const transportkey_open_batch: (a: number, b: bigint, c: number, d: number, e: any, f: number, g: number) => [number, number, number];
export const transportkey_seal: (a: number, b: bigint, c: number, d: number) => [number, number];
export const transportkey_seal_batch: (a: number, b: bigint, c: number, d: number, e: any, f: number, g: number) => [number, number];
export const wgdevice_drop_reason_name: (a: number) => [number, number];
export const wgdevice_new: (a: number, b: number, c: number, d: number) => [number, number, number];
export const wgdevice_public_key: (a: number) => [number, number];
export const wgdevice_receive: (a: number, b: number, c: number, d: number, e: number) => [number, number];
export const wgdevice_receive_batch: (a: number, b: number, c: number, d: number, e: number, f: number, g: number, h: number) => [number, number, number, number];
export const wgdevice_remove_peer: (a: number, b: number, c: number) => [number, number, number];
export const wgdevice_send: (a: number, b: number, c: number, d: number) => [number, number];
export const wgdevice_send_batch: (a: number, b: number, c: number, d: number, e: number, f: number) => [number, number, number, number];
export const wgdevice_set_endpoint: (a: number, b: number, c: number, d: number) => [number, number, number];
export const wgdevice_set_under_load: (a: number, b: number) => void;
export const wgdevice_stats_json: (a: number) => [number, number];
export const wgdevice_tick: (a: number, b: number) => [number, number];
export const wgdevice_upsert_peer: (a: number, b: number, c: number, d: number, e: number, f: number, g: number, h: number, i: number) => [number, number, number];
export const __wbindgen_externrefs: WebAssembly.Table;
export const __wbindgen_malloc: (a: number, b: number) => number;
export const __wbindgen_free: (a: number, b: number, c: number) => void;
export const __externref_table_dealloc: (a: number) => void;
export const __wbindgen_realloc: (a: number, b: number, c: number, d: number) => number;
export const __wbindgen_start: () => void;
