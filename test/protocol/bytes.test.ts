// The byte-by-byte big-endian helpers agree with node's Buffer methods on every edge value.
import { describe, expect, it } from 'vitest';
import { readI32, readU16, readU32, writeU16, writeU32 } from '../../src/protocol/bytes.ts';

const U32 = [0, 1, 0x7f, 0x80, 0xff, 0x100, 0x7fffffff, 0x80000000, 0x80000001, 0xfffffffe, 0xffffffff, 0x12345678, 116];
const U16 = [0, 1, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xfffe, 0xffff, 1144];

describe('big-endian bytes', () => {
  it('writes what writeUInt32BE writes and reads what readUInt32BE and readInt32BE read', () => {
    for (const v of U32) {
      for (const o of [0, 3]) {
        const ours = Buffer.alloc(8, 0xaa);
        const node = Buffer.alloc(8, 0xaa);
        writeU32(ours, v, o);
        node.writeUInt32BE(v, o);
        expect(ours.equals(node), `${v} at ${o}`).toBe(true);
        expect(readU32(node, o)).toBe(node.readUInt32BE(o));
        expect(readI32(node, o)).toBe(node.readInt32BE(o));
      }
    }
  });

  it('writes what writeUInt16BE writes and reads what readUInt16BE reads', () => {
    for (const v of U16) {
      const ours = Buffer.alloc(4, 0x55);
      const node = Buffer.alloc(4, 0x55);
      writeU16(ours, v, 1);
      node.writeUInt16BE(v, 1);
      expect(ours.equals(node), String(v)).toBe(true);
      expect(readU16(node, 1)).toBe(v);
    }
  });

  it('reads random bytes as node does', () => {
    const b = Buffer.alloc(4096);
    for (let i = 0; i < b.length; i++) b[i] = (i * 2654435761) >>> 24;
    for (let o = 0; o + 4 <= b.length; o += 7) {
      expect(readU32(b, o)).toBe(b.readUInt32BE(o));
      expect(readI32(b, o)).toBe(b.readInt32BE(o));
      expect(readU16(b, o)).toBe(b.readUInt16BE(o));
    }
  });
});
