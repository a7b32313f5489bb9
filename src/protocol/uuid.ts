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

/** Reads a wire-order MessageId at `offset` back into canonical lowercase text. */
export function readMessageId(buf: Buffer, offset: number): string {
  const lsb = buf.toString('hex', offset, offset + 8);
  const msb = buf.toString('hex', offset + 8, offset + 16);
  const h = msb + lsb;
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
