/* tslint:disable */
/* eslint-disable */
export const memory: WebAssembly.Memory;
export const __wbg_transportkey_free: (a: number, b: number) => void;
export const transportkey_new: (a: number, b: number) => [number, number, number];
export const transportkey_open: (a: number, b: bigint, c: number, d: number) => [number, number, number, number];
export const transportkey_open_batch: (a: number, b: bigint, c: number, d: number, e: any, f: number, g: number) => [number, number, number];
export const transportkey_seal: (a: number, b: bigint, c: number, d: number) => [number, number];
export const transportkey_seal_batch: (a: number, b: bigint, c: number, d: number, e: any, f: number, g: number) => [number, number];
export const __wbindgen_externrefs: WebAssembly.Table;
export const __wbindgen_malloc: (a: number, b: number) => number;
export const __wbindgen_free: (a: number, b: number, c: number) => void;
export const __externref_table_dealloc: (a: number) => void;
export const __wbindgen_start: () => void;
