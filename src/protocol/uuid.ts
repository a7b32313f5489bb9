// MessageId is a UUID sent as two 8-byte halves, least significant half first (§4.3).

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(text: string): boolean {
  return UUID_RE.test(text);
}

/** Writes `uuid` at `offset` in wire order: canonical bytes 8..15, then 0..7. */
export function writeMessageId(buf: Buffer, offset: number, uuid: string): void {
  if (uuid.length !== 36 || !UUID_RE.test(uuid)) throw new RangeError(`not a UUID: ${uuid}`);
  const hex = uuid.slice(0, 8) + uuid.slice(9, 13) + uuid.slice(14, 18) + uuid.slice(19, 23) + uuid.slice(24);
  buf.write(hex.slice(16), offset, 8, 'hex');
  buf.write(hex.slice(0, 16), offset + 8, 8, 'hex');
}

const HEX = Buffer.from('0123456789abcdef', 'latin1');

function hexBytes(src: Uint8Array, from: number, count: number, out: Uint8Array, at: number): number {
  for (let i = 0; i < count; i++) {
    const b = src[from + i];
    out[at++] = HEX[b >> 4];
    out[at++] = HEX[b & 15];
  }
  return at;
}

/**
 * Writes the canonical lowercase text (36 ASCII bytes) of the wire-order MessageId at
 * `offset` of `buf` into `out` at `at`; returns the offset after it. Wire bytes 8..15
 * are the id's first half, 0..7 its second.
 */
export function writeMessageIdText(buf: Uint8Array, offset: number, out: Uint8Array, at: number): number {
  at = hexBytes(buf, offset + 8, 4, out, at);
  out[at++] = 0x2d;
  at = hexBytes(buf, offset + 12, 2, out, at);
  out[at++] = 0x2d;
  at = hexBytes(buf, offset + 14, 2, out, at);
  out[at++] = 0x2d;
  at = hexBytes(buf, offset, 2, out, at);
  out[at++] = 0x2d;
  return hexBytes(buf, offset + 2, 6, out, at);
}

/** Reads a wire-order MessageId at `offset` back into canonical lowercase text. */
export function readMessageId(buf: Buffer, offset: number): string {
  const text = Buffer.allocUnsafe(36);
  writeMessageIdText(buf, offset, text, 0);
  return text.toString('latin1');
}
