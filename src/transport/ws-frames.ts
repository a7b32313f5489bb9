// Many websocket binary messages encoded into one buffer (RFC 6455 §5.2), for one
// socket write. ws's own send() costs two stream writes, a header buffer and a
// masked copy per message; at ~1 KiB per message that was the largest cost after
// hashing. The bytes on the wire are the same as ws would send.
import { randomFillSync } from 'node:crypto';
import { createRequire } from 'node:module';
import { writeU16, writeU32 } from '../protocol/bytes.ts';

type MaskFn = (source: Buffer, mask: Buffer, output: Buffer, offset: number, length: number) => void;

function maskInJs(source: Buffer, mask: Buffer, output: Buffer, offset: number, length: number): void {
  for (let i = 0; i < length; i++) output[offset + i] = source[i] ^ mask[i & 3];
}

// bufferutil, ws's optional native helper, masks bulk data several times faster than
// JavaScript, but loading it (its locator, a directory listing, the addon) took ~5 ms on
// the way to a session's first byte. It is loaded once a session has masked this much:
// a bulk transfer, not the few KiB of an SSH handshake or a short command. (The build
// keeps it from ws, whose own frames are a close and a few pings.)
const NATIVE_MASK_AFTER_BYTES = 256 * 1024;
let nativeMask: MaskFn | undefined | null = null; // null: not looked for yet
let maskedBytes = 0;

function loadNativeMask(): MaskFn | undefined {
  if (process.env.WS_NO_BUFFER_UTIL) return undefined;
  try {
    const mod = createRequire(import.meta.url)('bufferutil') as { mask?: MaskFn };
    return typeof mod.mask === 'function' ? mod.mask : undefined;
  } catch {
    return undefined;
  }
}

function applyMask(source: Buffer, mask: Buffer, output: Buffer, offset: number, length: number): void {
  if (nativeMask === null && (maskedBytes += length) >= NATIVE_MASK_AFTER_BYTES) nativeMask = loadNativeMask();
  if (nativeMask && length >= 48) nativeMask(source, mask, output, offset, length);
  else maskInJs(source, mask, output, offset, length);
}

// Masking keys come from the CSPRNG, as RFC 6455 §5.3 requires, drawn from a pool.
const KEYS_PER_FILL = 2048;
const keyPool = Buffer.allocUnsafe(4 * KEYS_PER_FILL);
let keyOffset = keyPool.length;

// One key at a time is copied here for the mask call: a view per frame was a measurable
// share of the data path's garbage.
const maskKey = Buffer.alloc(4);

function nextMaskKey(): Buffer {
  if (keyOffset >= keyPool.length) {
    randomFillSync(keyPool);
    keyOffset = 0;
  }
  maskKey[0] = keyPool[keyOffset];
  maskKey[1] = keyPool[keyOffset + 1];
  maskKey[2] = keyPool[keyOffset + 2];
  maskKey[3] = keyPool[keyOffset + 3];
  keyOffset += 4;
  return maskKey;
}

function headerLength(n: number, masked: boolean): number {
  return (n < 126 ? 2 : n < 65536 ? 4 : 10) + (masked ? 4 : 0);
}

/**
 * Encodes each payload as one final binary websocket frame, masked when `masked`
 * (a client must mask, a server must not), all in one buffer.
 */
export function encodeBinaryMessages(payloads: readonly Buffer[], masked: boolean): Buffer {
  const out = Buffer.allocUnsafe(encodedLength(payloads, masked));
  encodeInto(payloads, masked, out);
  return out;
}

function encodedLength(payloads: readonly Buffer[], masked: boolean): number {
  let total = 0;
  for (const p of payloads) total += headerLength(p.length, masked) + p.length;
  return total;
}

function encodeInto(payloads: readonly Buffer[], masked: boolean, out: Buffer): void {
  let o = 0;
  for (const p of payloads) {
    const n = p.length;
    out[o] = 0x82; // FIN, opcode 2 (binary)
    const maskBit = masked ? 0x80 : 0;
    if (n < 126) {
      out[o + 1] = maskBit | n;
      o += 2;
    } else if (n < 65536) {
      out[o + 1] = maskBit | 126;
      writeU16(out, n, o + 2);
      o += 4;
    } else {
      out[o + 1] = maskBit | 127;
      writeU32(out, Math.floor(n / 0x100000000), o + 2);
      writeU32(out, n >>> 0, o + 6);
      o += 10;
    }
    if (masked) {
      const key = nextMaskKey();
      out[o] = key[0];
      out[o + 1] = key[1];
      out[o + 2] = key[2];
      out[o + 3] = key[3];
      o += 4;
      applyMask(p, key, out, o, n);
    } else {
      p.copy(out, o);
    }
    o += n;
  }
}

interface Arena {
  buf: Buffer;
  used: number;
  /** Writes handed to the socket from this arena and not yet completed. */
  pending: number;
}

const ARENA_BYTES = 256 * 1024;
const MAX_ARENAS = 8;

/**
 * Output buffers for batches of websocket frames (or of stdout's chunks), carved from a few reused arenas.
 * A fresh buffer per tick left megabytes of dead ArrayBuffers between scavenges (the
 * peak RSS target is tight); an arena is reused once every write from it has completed.
 */
export class BatchArenas {
  private readonly arenas: Arena[] = [];
  private current: Arena | undefined;

  /** The encoded batch and the release to call when the socket has written it. */
  encode(payloads: readonly Buffer[], masked: boolean): { bytes: Buffer; done: () => void } {
    const out = this.reserve(encodedLength(payloads, masked));
    encodeInto(payloads, masked, out.bytes);
    return out;
  }

  /** The buffers one after another in one buffer, and the release to call once it is written. */
  gather(parts: readonly Buffer[]): { bytes: Buffer; done: () => void } {
    let total = 0;
    for (const p of parts) total += p.length;
    const out = this.reserve(total);
    let o = 0;
    for (const p of parts) {
      out.bytes.set(p, o);
      o += p.length;
    }
    return out;
  }

  private reserve(total: number): { bytes: Buffer; done: () => void } {
    const arena = this.arenaFor(total);
    if (!arena) return { bytes: Buffer.allocUnsafe(total), done: noop };
    const bytes = arena.buf.subarray(arena.used, arena.used + total);
    arena.used += total;
    arena.pending++;
    return {
      bytes,
      done: () => {
        arena.pending--;
      },
    };
  }

  private arenaFor(n: number): Arena | undefined {
    if (n > ARENA_BYTES / 2) return undefined;
    const cur = this.current;
    if (cur && cur.used + n <= ARENA_BYTES) return cur;
    let next = this.arenas.find((a) => a.pending === 0 && a !== cur);
    if (!next && cur && cur.pending === 0) next = cur;
    if (!next) {
      if (this.arenas.length >= MAX_ARENAS) return undefined;
      next = { buf: Buffer.allocUnsafe(ARENA_BYTES), used: 0, pending: 0 };
      this.arenas.push(next);
    }
    next.used = 0;
    this.current = next;
    return next;
  }
}

function noop(): void {}

/** The parts of a net.Socket that frame batches are written through. */
export interface FrameSocket {
  writable: boolean;
  write(data: Buffer, cb: (err?: Error | null) => void): boolean;
  cork(): void;
  uncork(): void;
}

/** ws's socket, sender and receiver, which ws does not expose. */
interface WsInternals {
  readyState: number;
  _socket?: FrameSocket;
  _sender?: { _state?: number; _queue?: unknown[] };
  _receiver?: { write?: unknown; _writableState?: unknown };
}

const WS_OPEN = 1;

/** The socket under a ws WebSocket (cork it even when it is not writable directly). */
export function wsSocket(ws: object): FrameSocket | undefined {
  return (ws as WsInternals)._socket;
}

/**
 * The socket under a ws WebSocket when frames written there directly keep their order
 * with ws's own writes: the websocket is open and ws's sender holds nothing back (it
 * queues only while it compresses or reads a Blob, neither of which happens here).
 * Undefined otherwise, and then the caller uses ws.send.
 */
export function directSocket(ws: object): FrameSocket | undefined {
  const w = ws as WsInternals;
  const socket = w._socket;
  const sender = w._sender;
  if (w.readyState !== WS_OPEN || !socket?.writable || sender?._state !== 0 || sender._queue?.length !== 0) return undefined;
  return socket;
}

/**
 * Routes every byte ws would parse (socket reads, the bytes that came with the HTTP
 * upgrade, what is left in the socket when it closes) to `push` instead: ws hands its
 * receiver each of them through `_receiver.write()`. ws's receiver then sees nothing, so
 * messages, pings, pongs and close frames are the caller's to handle. Call it from the
 * 'open' event, before any frame is read. False, and nothing changed, if ws's
 * internals are not as expected; ws's events then work as usual.
 */
export function interceptReceiver(ws: object, push: (chunk: Buffer) => void): boolean {
  const r = (ws as WsInternals)._receiver;
  if ((ws as WsInternals).readyState !== WS_OPEN || !r || typeof r.write !== 'function' || typeof r._writableState !== 'object') return false;
  r.write = (chunk: Buffer): boolean => {
    push(chunk);
    return true;
  };
  return true;
}
