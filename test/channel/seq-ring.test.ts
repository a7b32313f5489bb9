import { describe, expect, it } from 'vitest';
import { SeqRing } from '../../src/channel/seq-ring.ts';
import { Rng } from '../helpers/rng.ts';

function contents(r: SeqRing<string>): string[] {
  const out: string[] = [];
  for (let s = r.lowest; s < r.limit; s++) {
    const v = r.at(s);
    if (v !== undefined) out.push(v);
  }
  return out;
}

describe('SeqRing', () => {
  it('behaves as an insertion-ordered Map under random adds and deletes, growing as the span needs (50 seeds)', () => {
    for (let seed = 1; seed <= 50; seed++) {
      const rng = new Rng(seed);
      const ring = new SeqRing<string>(4);
      const ref = new Map<number, string>();
      let next = rng.chance(0.3) ? 2 ** 32 - 50 : rng.int(1000); // across 2^32 too
      for (let op = 0; op < 3000; op++) {
        if (ref.size === 0 || rng.chance(0.55)) {
          // Sometimes a jump: the ring restarts wherever the numbers are when it is empty.
          if (ref.size === 0 && rng.chance(0.2)) next += rng.int(100);
          ring.add(next, `v${next}`);
          ref.set(next, `v${next}`);
          next++;
        } else {
          // Mostly the oldest few (acks in order), sometimes anything, sometimes a number not held.
          const keys = [...ref.keys()];
          const seq = rng.chance(0.1) ? next + rng.int(5) - 2 : keys[rng.chance(0.7) ? rng.int(Math.min(3, keys.length)) : rng.int(keys.length)];
          expect(ring.delete(seq)).toBe(ref.delete(seq));
        }
        expect(ring.size).toBe(ref.size);
        expect(ring.first()).toBe(ref.values().next().value);
        const probe = next - 1 - rng.int(10);
        expect(ring.get(probe)).toBe(ref.get(probe));
        if (op % 50 === 0) expect(contents(ring)).toEqual([...ref.values()]);
      }
      expect(contents(ring)).toEqual([...ref.values()]);
    }
  });

  it('refuses a number that does not follow the last one while entries are held', () => {
    const ring = new SeqRing<string>();
    ring.add(5, 'a');
    expect(() => ring.add(7, 'b')).toThrow(RangeError);
    ring.delete(5);
    ring.add(7, 'b');
    expect(ring.first()).toBe('b');
  });
});
