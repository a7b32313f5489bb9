// The receiving half of a websocket client (RFC 6455 §5): frames from the server,
// parsed straight off socket reads. ws's own receiver made three buffer views and a
// stream write per message, about a third of everything the data path allocated at
// one ~1 KiB message per frame; this one makes one view per message that arrives
// whole in a read, and copies only messages split across reads.
import { isUtf8 } from 'node:buffer';
import { readU16, readU32 } from '../protocol/bytes.ts';

export interface WsReceiverEvents {
  /** A whole data message; `binary` is false for text (already checked to be UTF-8). */
  message(data: Buffer, binary: boolean): void;
  ping(data: Buffer): void;
  pong(data: Buffer): void;
  /** A close frame: its status code (1005 when it carried none) and reason. */
  close(code: number, reason: string): void;
  /** The server broke the protocol; `closeCode` is the status to close with (§7.4.1). Nothing follows. */
  error(message: string, closeCode: number): void;
}

const OP_CONTINUATION = 0x0;
const OP_TEXT = 0x1;
const OP_BINARY = 0x2;
const OP_CLOSE = 0x8;
const OP_PING = 0x9;
const OP_PONG = 0xa;

const CLOSE_PROTOCOL_ERROR = 1002;
const CLOSE_INVALID_DATA = 1007;
const CLOSE_TOO_BIG = 1009;
const NO_STATUS = 1005;

/** Status codes a close frame may carry (§7.4; 1004-1006 and 1015 never go on the wire). */
export function isValidCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999);
}

const EMPTY = Buffer.alloc(0);

export class WsReceiver {
  /** Header bytes of a frame whose header was split across reads. */
  private readonly head = Buffer.alloc(14);
  private headLen = 0;
  /** The payload of the current frame while it arrives over several reads. */
  private body: Buffer | undefined;
  private bodyFilled = 0;
  /** The current frame's FIN bit and opcode (valid while `body` is set). */
  private fin = false;
  private opcode = 0;
  /** A fragmented message in progress (§5.4). */
  private fragments: Buffer[] = [];
  private fragmentsLength = 0;
  private fragmentOpcode = -1;
  private dead = false;

  constructor(
    private readonly on: WsReceiverEvents,
    /** Largest message accepted, all its fragments together. */
    private readonly maxPayload: number,
  ) {}

  /** Parses the bytes of one socket read; complete messages are reported before it returns. */
  push(chunk: Buffer): void {
    const n = chunk.length;
    let o = 0;
    while (o < n && !this.dead) {
      const body = this.body;
      if (body !== undefined) {
        const take = Math.min(body.length - this.bodyFilled, n - o);
        chunk.copy(body, this.bodyFilled, o, o + take);
        this.bodyFilled += take;
        o += take;
        if (this.bodyFilled === body.length) {
          this.body = undefined;
          this.frame(this.fin, this.opcode, body);
        }
        continue;
      }
      if (this.headLen === 0 && n - o >= 2) {
        // The usual case: the whole header is in this read.
        const size = headerSize(chunk[o + 1]);
        if (n - o >= size) {
          const b0 = chunk[o];
          const len = this.header(chunk, o);
          if (len < 0) return;
          o += size;
          if (n - o >= len) {
            const payload = chunk.subarray(o, o + len);
            o += len;
            this.frame((b0 & 0x80) !== 0, b0 & 0x0f, payload);
          } else this.startBody(b0, len);
          continue;
        }
      }
      this.head[this.headLen++] = chunk[o++];
      if (this.headLen >= 2 && this.headLen === headerSize(this.head[1])) {
        this.headLen = 0;
        const len = this.header(this.head, 0);
        if (len < 0) return;
        if (len === 0) this.frame((this.head[0] & 0x80) !== 0, this.head[0] & 0x0f, EMPTY);
        else this.startBody(this.head[0], len);
      }
    }
  }

  private startBody(b0: number, len: number): void {
    this.fin = (b0 & 0x80) !== 0;
    this.opcode = b0 & 0x0f;
    this.body = Buffer.allocUnsafe(len);
    this.bodyFilled = 0;
  }

  /** Checks a complete frame header at `o`; returns the payload length, or -1 after reporting an error. */
  private header(buf: Buffer, o: number): number {
    const b0 = buf[o];
    const b1 = buf[o + 1];
    if ((b0 & 0x70) !== 0) return this.fail('a frame has RSV bits set but no extension was negotiated', CLOSE_PROTOCOL_ERROR);
    const opcode = b0 & 0x0f;
    const fin = (b0 & 0x80) !== 0;
    let len = b1 & 0x7f;
    if (opcode >= OP_CLOSE) {
      if (opcode > OP_PONG) return this.fail(`reserved opcode 0x${opcode.toString(16)}`, CLOSE_PROTOCOL_ERROR);
      if (!fin) return this.fail('a fragmented control frame', CLOSE_PROTOCOL_ERROR);
      if (len > 125) return this.fail('a control frame longer than 125 bytes', CLOSE_PROTOCOL_ERROR);
    } else if (opcode > OP_BINARY) return this.fail(`reserved opcode 0x${opcode.toString(16)}`, CLOSE_PROTOCOL_ERROR);
    else if (opcode === OP_CONTINUATION) {
      if (this.fragmentOpcode < 0) return this.fail('a continuation frame with no message to continue', CLOSE_PROTOCOL_ERROR);
    } else if (this.fragmentOpcode >= 0) return this.fail('a new message started before the fragmented one ended', CLOSE_PROTOCOL_ERROR);
    if ((b1 & 0x80) !== 0) return this.fail('the server sent a masked frame', CLOSE_PROTOCOL_ERROR);
    if (len === 126) len = readU16(buf, o + 2);
    else if (len === 127) {
      const high = readU32(buf, o + 2);
      // Above 2^53 - 1, or with the top bit set (§5.2): nothing we would accept anyway.
      if (high > 0x1fffff) return this.fail('a frame length is out of range', CLOSE_TOO_BIG);
      len = high * 0x100000000 + readU32(buf, o + 6);
    }
    if (opcode === OP_CLOSE && len === 1) return this.fail('a close frame with a 1-byte payload', CLOSE_PROTOCOL_ERROR);
    if (opcode < OP_CLOSE && len > this.maxPayload - this.fragmentsLength) return this.fail(`a message larger than ${this.maxPayload} bytes`, CLOSE_TOO_BIG);
    return len;
  }

  private frame(fin: boolean, opcode: number, payload: Buffer): void {
    switch (opcode) {
      case OP_BINARY:
      case OP_TEXT:
        if (fin) this.message(payload, opcode);
        else {
          this.fragmentOpcode = opcode;
          this.fragments.push(payload);
          this.fragmentsLength = payload.length;
        }
        return;
      case OP_CONTINUATION: {
        this.fragments.push(payload);
        this.fragmentsLength += payload.length;
        if (!fin) return;
        const whole = Buffer.concat(this.fragments, this.fragmentsLength);
        const op = this.fragmentOpcode;
        this.fragments = [];
        this.fragmentsLength = 0;
        this.fragmentOpcode = -1;
        this.message(whole, op);
        return;
      }
      case OP_PING:
        this.on.ping(payload);
        return;
      case OP_PONG:
        this.on.pong(payload);
        return;
      case OP_CLOSE: {
        if (payload.length === 0) {
          this.dead = true;
          this.on.close(NO_STATUS, '');
          return;
        }
        const code = payload.readUInt16BE(0);
        if (!isValidCloseCode(code)) {
          this.fail(`a close frame with the invalid status code ${code}`, CLOSE_PROTOCOL_ERROR);
          return;
        }
        const reason = payload.subarray(2);
        if (!isUtf8(reason)) {
          this.fail('a close reason that is not UTF-8', CLOSE_INVALID_DATA);
          return;
        }
        this.dead = true;
        this.on.close(code, reason.toString('utf8'));
        return;
      }
    }
  }

  private message(data: Buffer, opcode: number): void {
    if (opcode === OP_TEXT && !isUtf8(data)) {
      this.fail('a text message that is not UTF-8', CLOSE_INVALID_DATA);
      return;
    }
    this.on.message(data, opcode === OP_BINARY);
  }

  private fail(message: string, closeCode: number): -1 {
    this.dead = true;
    this.body = undefined;
    this.fragments = [];
    this.on.error(message, closeCode);
    return -1;
  }
}

/** Header bytes implied by the second header byte: 2, plus the extended length. */
function headerSize(b1: number): number {
  const len = b1 & 0x7f;
  return len === 126 ? 4 : len === 127 ? 10 : 2;
}
