import { describe, expect, it } from 'vitest';
import { HeapGuard } from '../../src/session/heap-guard.ts';

describe('HeapGuard', () => {
  it('collects only once the heap has grown the slack past the last collection', () => {
    let used = 10_000;
    let collected = 0;
    const guard = new HeapGuard({ slackBytes: 3_000, usedBytes: () => used, collect: () => {
      collected++;
      used = 10_500; // what survives the collection
    } });
    for (const u of [10_000, 12_000, 13_000]) {
      used = u;
      guard.check();
    }
    expect(collected).toBe(0);
    used = 13_001;
    guard.check();
    expect(collected).toBe(1);
    expect(guard.collections).toBe(1);
    // The new limit is what the collection left plus the slack.
    used = 13_500;
    guard.check();
    expect(collected).toBe(1);
    used = 13_501;
    guard.check();
    expect(collected).toBe(2);
  });

  it('frees real garbage with V8 gc() when nothing is injected', () => {
    const guard = new HeapGuard({ slackBytes: 1024 * 1024 });
    let junk: object[] | null = [];
    for (let i = 0; i < 300_000; i++) junk.push({ i, s: `x${i}` });
    const keep = junk.length;
    junk = null;
    guard.check();
    expect(keep).toBe(300_000);
    expect(guard.collections).toBe(1);
  });
});
