// ClientMessage framing (PROTOCOL.md §4): a 120-byte big-endian header and a payload.
import * as nodeCrypto from 'node:crypto';
import { createHash, randomFillSync } from 'node:crypto';
import {
  HEADER_LENGTH,
  MESSAGE_TYPE_LENGTH,
  MessageType,
  PAYLOAD_OFFSET,
  SCHEMA_VERSION,
} from './constants.ts';
import { fail, ok, type Result } from './result.ts';
import { ACK_TEXT, canonicalAckSequence } from './payloads.ts';
import { readMessageId, writeMessageId, writeMessageIdText } from './uuid.ts';
import { readI32, readU32, writeU32 } from './bytes.ts';

export interface FrameFields {
  messageType: string;
  schemaVersion?: number;
  /** Milliseconds since the Unix epoch. */
  createdDate: number;
  sequenceNumber: number;
  flags: bigint | number;
  /** Canonical UUID text, written with its halves swapped; a random v4 id when omitted. */
  messageId?: string;
  payloadType: number;
  payload: Uint8Array;
}

/**
 * Things a lenient peer accepts but a strict one would not send.
 * The decoder reports them instead of failing (§4.5: accept, log).
 */
export type FrameWarning =
  | 'headerLength' // HL is not 116 but still in bounds
  | 'messageTypePadding' // padded with something other than trailing spaces
  | 'schemaVersion' // not 1
  | 'payloadLength'; // PayloadLength differs from the bytes that follow the header

export interface Frame {
  headerLength: number;
  messageType: string;
  schemaVersion: number;
  createdDate: number;
  sequenceNumber: number;
  flags: bigint;
  readonly messageId: string;
  readonly payloadDigest: Buffer;
  payloadType: number;
  payloadLength: number;
  /** A view into the decoded buffer, not a copy. */
  payload: Buffer;
  warnings: readonly FrameWarning[];
}

const NO_WARNINGS: readonly FrameWarning[] = Object.freeze([]);

/** Fixed shape; the MessageId text and the digest view only on demand: acks never need them. */
class DecodedFrame implements Frame {
  private idText: string | undefined;
  constructor(
    /** The whole message: the MessageId and digest are read from it when asked for. */
    readonly raw: Buffer,
    public headerLength: number,
    public messageType: string,
    public schemaVersion: number,
    public createdDate: number,
    public sequenceNumber: number,
    public flags: bigint,
    public payloadType: number,
    public payloadLength: number,
    public payload: Buffer,
    public warnings: readonly FrameWarning[],
  ) {}

  get messageId(): string {
    return (this.idText ??= readMessageId(this.raw, 64));
  }

  get payloadDigest(): Buffer {
    return this.raw.subarray(80, 112);
  }
}

// The first 40 header bytes (HeaderLength, padded MessageType, SchemaVersion 1) of
// the message types that make up nearly all traffic: copied, not written field by field.
const COMMON_TYPES = [MessageType.InputStreamData, MessageType.OutputStreamData, MessageType.Acknowledge].map((type) => {
  const prefix = Buffer.alloc(40, 0x20);
  prefix.writeUInt32BE(HEADER_LENGTH, 0);
  prefix.write(type, 4, 'latin1');
  prefix.writeUInt32BE(SCHEMA_VERSION, 36);
  return { type, prefix };
});

function commonPrefix(type: string): Buffer | undefined {
  for (const c of COMMON_TYPES) if (c.type === type) return c.prefix;
  return undefined;
}

/** Whether bytes 4..35 of `buf` are the padded MessageType field of `prefix` (a JS loop beats a native compare call here). */
function typeFieldIs(buf: Buffer, prefix: Buffer): boolean {
  for (let i = 4; i < 36; i++) if (buf[i] !== prefix[i]) return false;
  return true;
}

/**
 * The MessageType of a frame header (at least 36 bytes) when its field is exactly one
 * of the common types, space-padded; undefined otherwise.
 */
export function commonMessageType(buf: Buffer): string | undefined {
  for (const c of COMMON_TYPES) if (typeFieldIs(buf, c.prefix)) return c.type;
  return undefined;
}

// SHA-256 of a payload as a latin1 ('binary') string, one char per byte. One-shot hashing
// (Node >= 20.12) with string output costs about half of a Buffer result or a Hash
// object: making a Buffer from native code is the expensive part, not the hash.
const oneShot = (nodeCrypto as { hash?: (alg: string, data: Uint8Array, enc: 'binary') => string }).hash;

const sha256Latin1: (data: Uint8Array) => string = oneShot
  ? (data) => oneShot('sha256', data, 'binary')
  : (data) => createHash('sha256').update(data).digest('binary');

/** Whether the PayloadDigest field (bytes 80..111) holds `digest`, one latin1 char per byte. */
function digestFieldIs(buf: Buffer, digest: string): boolean {
  for (let i = 0; i < 32; i++) if (buf[80 + i] !== digest.charCodeAt(i)) return false;
  return true;
}

/** Writes `digest` (one latin1 char per byte) into the PayloadDigest field; a loop costs less than a native write call. */
function writeDigestField(buf: Buffer, digest: string): void {
  for (let i = 0; i < 32; i++) buf[80 + i] = digest.charCodeAt(i);
}

// Random MessageIds for frames we send: 16 bytes from a pool, with the v4 bits set.
// The text form is never needed for our own frames.
const idPool = Buffer.allocUnsafe(16 * 256);
let idOffset = idPool.length;

function writeRandomMessageId(buf: Buffer, offset: number): void {
  if (idOffset >= idPool.length) {
    randomFillSync(idPool);
    idOffset = 0;
  }
  for (let i = 0; i < 16; i++) buf[offset + i] = idPool[idOffset + i];
  idOffset += 16;
  // Wire order: canonical bytes 8..15 come first (variant in byte 8), then 0..7 (version in byte 6).
  buf[offset] = (buf[offset] & 0x3f) | 0x80;
  buf[offset + 14] = (buf[offset + 14] & 0x0f) | 0x40;
}

/** `value`: a whole number in 0..2^53-1. */
function writeUint64(buf: Buffer, value: number, offset: number): void {
  writeU32(buf, Math.floor(value / 0x100000000) >>> 0, offset);
  writeU32(buf, value >>> 0, offset + 4);
}

function readUint64(buf: Buffer, offset: number): number {
  return readU32(buf, offset) * 0x100000000 + readU32(buf, offset + 4);
}

const SMALL_FLAGS = [0n, 1n, 2n, 3n];

/**
 * Serialises a frame exactly as §4.4 describes. With `into` (at least as long as the
 * frame), the frame is written at its start and that view returned: no allocation.
 */
export function encodeFrame(f: FrameFields, into?: Buffer): Buffer {
  const n = f.payload.length;
  const size = PAYLOAD_OFFSET + n;
  const buf = into === undefined || into.length < size ? Buffer.allocUnsafe(size) : into.length === size ? into : into.subarray(0, size);
  const prefix = f.schemaVersion === undefined || f.schemaVersion === SCHEMA_VERSION ? commonPrefix(f.messageType) : undefined;
  if (prefix) buf.set(prefix, 0);
  else {
    buf.writeUInt32BE(HEADER_LENGTH, 0);
    buf.fill(0x20, 4, 4 + MESSAGE_TYPE_LENGTH);
    if (f.messageType.length > MESSAGE_TYPE_LENGTH) throw new RangeError(`message type longer than 32 bytes: ${f.messageType}`);
    buf.write(f.messageType, 4, 'latin1');
    buf.writeUInt32BE(f.schemaVersion ?? SCHEMA_VERSION, 36);
  }
  const created = Math.trunc(f.createdDate);
  if (created >= 0 && created <= Number.MAX_SAFE_INTEGER) writeUint64(buf, created, 40);
  else buf.writeBigUInt64BE(BigInt(created), 40);
  const seq = f.sequenceNumber;
  if (seq >= 0 && seq <= Number.MAX_SAFE_INTEGER) writeUint64(buf, seq, 48);
  else buf.writeBigInt64BE(BigInt(seq), 48);
  if (typeof f.flags === 'number' && f.flags >= 0 && f.flags <= Number.MAX_SAFE_INTEGER) writeUint64(buf, f.flags, 56);
  else buf.writeBigUInt64BE(BigInt(f.flags), 56);
  if (f.messageId === undefined) writeRandomMessageId(buf, 64);
  else writeMessageId(buf, 64, f.messageId);
  writeDigestField(buf, sha256Latin1(f.payload));
  const payloadType = f.payloadType;
  if (payloadType >>> 0 === payloadType) writeU32(buf, payloadType, 112);
  else buf.writeUInt32BE(payloadType, 112); // throws the usual RangeError
  writeU32(buf, n, 116);
  buf.set(f.payload, PAYLOAD_OFFSET);
  return buf;
}

function isLenientType(t: string): boolean {
  return t === MessageType.StartPublication || t === MessageType.PausePublication;
}

/** Reads the MessageType field: NULs, then whitespace, trimmed at both ends (§4.2). */
function readMessageType(buf: Buffer): Result<{ type: string; cleanPadding: boolean }> {
  let start = 4;
  let end = 4 + MESSAGE_TYPE_LENGTH;
  while (start < end && buf[start] === 0) start++;
  while (end > start && buf[end - 1] === 0) end--;
  while (start < end && isSpace(buf[start])) start++;
  while (end > start && isSpace(buf[end - 1])) end--;
  for (let i = start; i < end; i++) {
    const c = buf[i];
    if (c < 0x21 || c > 0x7e) return fail('messageType', `byte 0x${c.toString(16).padStart(2, '0')} at offset ${i} is not printable ASCII`);
  }
  let cleanPadding = start === 4;
  for (let i = end; cleanPadding && i < 4 + MESSAGE_TYPE_LENGTH; i++) if (buf[i] !== 0x20) cleanPadding = false;
  return ok({ type: buf.toString('latin1', start, end), cleanPadding });
}

function isSpace(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}

/**
 * Parses and validates one websocket message (§4.5). Never throws and never reads
 * past the buffer; every failure names the field.
 */
export function decodeFrame(buf: Buffer): Result<Frame> {
  if (buf.length < PAYLOAD_OFFSET) {
    return fail('frame', `${buf.length} bytes is shorter than the ${PAYLOAD_OFFSET}-byte header`);
  }
  let messageType = commonMessageType(buf);
  let warnings: FrameWarning[] | undefined;
  if (messageType === undefined) {
    const mt = readMessageType(buf);
    if (!mt.ok) return mt;
    messageType = mt.value.type;
    if (!mt.value.cleanPadding) (warnings ??= []).push('messageTypePadding');
  }

  const headerLength = readU32(buf, 0);
  const lenient = isLenientType(messageType);
  const inBounds = headerLength >= HEADER_LENGTH && headerLength + 4 <= buf.length;
  if (!lenient) {
    if (headerLength < HEADER_LENGTH) return fail('headerLength', `${headerLength} is less than ${HEADER_LENGTH}`);
    if (!inBounds) return fail('headerLength', `${headerLength} points past the end of a ${buf.length}-byte frame`);
    if (messageType === '') return fail('messageType', 'is empty');
  }
  if (headerLength !== HEADER_LENGTH) (warnings ??= []).push('headerLength');

  const schemaVersion = readU32(buf, 36);
  if (schemaVersion !== SCHEMA_VERSION) (warnings ??= []).push('schemaVersion');
  // Plain numbers: CreatedDate and sequence numbers fit easily in 2^53.
  const createdDate = readUint64(buf, 40);
  const seqHigh = readI32(buf, 48);
  const seq = seqHigh * 0x100000000 + readU32(buf, 52);
  const seqOk = seqHigh >= 0 && seq <= Number.MAX_SAFE_INTEGER;
  if (!lenient) {
    if (createdDate === 0) return fail('createdDate', 'is zero');
    // channel_closed is handled whatever its sequence number, which the service sets (§5.3, §16).
    if (messageType !== MessageType.ChannelClosed) {
      if (seqHigh < 0) return fail('sequenceNumber', `${buf.readBigInt64BE(48)} is negative`);
      if (!seqOk) return fail('sequenceNumber', `${buf.readBigInt64BE(48)} is out of range`);
    }
  }
  const payload = inBounds ? buf.subarray(headerLength + 4) : buf.subarray(buf.length);
  const payloadLength = readU32(buf, 116);
  if (payloadLength !== payload.length) (warnings ??= []).push('payloadLength');
  const flagsHigh = readU32(buf, 56);
  const flagsLow = readU32(buf, 60);
  // As the reference client: the digest is checked when PayloadLength is not 0 (§4.5).
  // A frame that says 0 but carries bytes has a 'payloadLength' warning.
  if (!lenient && payloadLength !== 0) {
    if (!digestFieldIs(buf, sha256Latin1(payload))) return fail('payloadDigest', 'does not match the SHA-256 of the payload');
  }
  return ok(
    new DecodedFrame(
      buf,
      headerLength,
      messageType,
      schemaVersion,
      createdDate,
      // start/pause_publication headers are not validated (§5.4); keep a usable number.
      seqOk ? seq : 0,
      flagsHigh === 0 && flagsLow < 4 ? SMALL_FLAGS[flagsLow] : buf.readBigUInt64BE(56),
      readU32(buf, 112),
      payloadLength,
      payload,
      warnings ?? NO_WARNINGS,
    ),
  );
}

/**
 * The acknowledged sequence number when `buf` is an ack frame that decodeFrame would
 * accept without a warning and whose payload is in the canonical form; -1 otherwise
 * (then decodeFrame and the full parsers decide). One ack arrives per data frame
 * sent, so this reads it without building a Frame.
 */
export function ackSequenceOf(buf: Buffer): number {
  if (buf.length <= PAYLOAD_OFFSET || readU32(buf, 0) !== HEADER_LENGTH || !typeFieldIs(buf, ACK_PREFIX) || readU32(buf, 36) !== SCHEMA_VERSION) return -1;
  if (readU32(buf, 40) === 0 && readU32(buf, 44) === 0) return -1; // CreatedDate 0: decodeFrame's error
  if (readU32(buf, 48) > 0x1fffff) return -1; // its own sequence number, negative or past 2^53
  if (readU32(buf, 116) !== buf.length - PAYLOAD_OFFSET) return -1;
  const seq = canonicalAckSequence(buf, PAYLOAD_OFFSET, buf.length);
  if (seq < 0 || !digestFieldIs(buf, sha256Latin1(buf.subarray(PAYLOAD_OFFSET)))) return -1;
  return seq;
}

// ---- acknowledge frames, written byte by byte ----

const ACK_PREFIX = commonPrefix(MessageType.Acknowledge)!;
// The payload's opening up to the MessageId, for each stream type an ack can be for.
const ACK_OPENINGS = new Map<string, Buffer>([MessageType.InputStreamData, MessageType.OutputStreamData].map((t) => [t, Buffer.from(ACK_TEXT.beforeType + t + ACK_TEXT.beforeId, 'latin1')]));
const ACK_BEFORE_SEQUENCE = Buffer.from(ACK_TEXT.beforeSequence, 'latin1');
const ACK_TAIL = Buffer.from(`${ACK_TEXT.beforeSequential}true}`, 'latin1');
const ACK_ID_AND_TAIL = 36 + ACK_BEFORE_SEQUENCE.length + ACK_TAIL.length;

function decimalDigits(n: number): number {
  let d = 1;
  while (n >= 10) {
    n = Math.floor(n / 10);
    d++;
  }
  return d;
}

/**
 * The acknowledge frame (§4.6) for a stream frame we decoded: the same bytes as
 * encodeFrame() of encodeAck({type, id, seq, isSequentialMessage: true}) with flags 3,
 * without building the JSON text or the MessageId string on the way. `storage`, when
 * given, supplies the frame's exact number of bytes (or undefined to allocate).
 */
export function encodeAckFrame(acked: Frame, createdDate: number, storage?: (bytes: number) => Buffer | undefined): Buffer | undefined {
  const opening = ACK_OPENINGS.get(acked.messageType);
  if (!(acked instanceof DecodedFrame) || opening === undefined) return undefined;
  const seq = acked.sequenceNumber;
  const digits = decimalDigits(seq);
  const n = opening.length + ACK_ID_AND_TAIL + digits;
  const buf = storage?.(PAYLOAD_OFFSET + n) ?? Buffer.allocUnsafe(PAYLOAD_OFFSET + n);
  buf.set(ACK_PREFIX, 0);
  writeUint64(buf, Math.trunc(createdDate), 40);
  writeUint64(buf, 0, 48);
  writeUint64(buf, 3, 56); // flags as both reference implementations send on acks (§4.7)
  writeRandomMessageId(buf, 64);
  writeU32(buf, 0, 112);
  writeU32(buf, n, 116);
  let o = PAYLOAD_OFFSET;
  buf.set(opening, o);
  o += opening.length;
  o = writeMessageIdText(acked.raw, 64, buf, o);
  buf.set(ACK_BEFORE_SEQUENCE, o);
  o += ACK_BEFORE_SEQUENCE.length;
  let v = seq;
  for (let i = digits - 1; i >= 0; i--) {
    buf[o + i] = 0x30 + (v % 10);
    v = Math.floor(v / 10);
  }
  o += digits;
  buf.set(ACK_TAIL, o);
  writeDigestField(buf, sha256Latin1(buf.subarray(PAYLOAD_OFFSET)));
  return buf;
}
