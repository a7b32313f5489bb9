// Big-endian integers read and written byte by byte, for the per-frame paths. Node's
// Buffer methods check every argument, and each of them is one more function for V8 to
// optimize in every short-lived process; these do neither. Callers check the bounds
// (an index past the end reads undefined and writes nothing) and the value ranges.

export function readU32(b: Uint8Array, o: number): number {
  return b[o] * 0x1000000 + ((b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]);
}

export function readI32(b: Uint8Array, o: number): number {
  return (b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3];
}

export function readU16(b: Uint8Array, o: number): number {
  return (b[o] << 8) | b[o + 1];
}

/** `v` must be a whole number in 0..2^32-1. */
export function writeU32(b: Uint8Array, v: number, o: number): void {
  b[o] = v >>> 24;
  b[o + 1] = v >>> 16;
  b[o + 2] = v >>> 8;
  b[o + 3] = v;
}

/** `v` must be a whole number in 0..65535. */
export function writeU16(b: Uint8Array, v: number, o: number): void {
  b[o] = v >>> 8;
  b[o + 1] = v;
}
