import { describe, expect, it } from 'vitest';
import { REFERENCE_RTO, RtoEstimator } from '../../src/channel/rto.ts';
import { vectors } from '../helpers/vectors.ts';

describe('RTO estimation (§8.3)', () => {
  it('reproduces the reference sequence in fixtures/frames.json', () => {
    const e = new RtoEstimator(REFERENCE_RTO);
    expect([e.rtt, e.rttVar, e.rto]).toEqual([vectors.rto.initial.rttMs, vectors.rto.initial.rttvMs, vectors.rto.initial.rtoMs]);
    for (const s of vectors.rto.steps) {
      e.sample(s.sampleMs);
      expect(e.rtt).toBeCloseTo(s.rttMs, 5);
      expect(e.rttVar).toBeCloseTo(s.rttvMs, 5);
      expect(e.rto).toBeCloseTo(s.rtoMs, 5);
    }
  });

  it('seeds from the first sample when asked, so a fast link gets a short timeout', () => {
    const e = new RtoEstimator({ ...REFERENCE_RTO, seedFromFirstSample: true });
    e.sample(2);
    expect(e.rtt).toBe(2);
    expect(e.rto).toBe(2 + 10);
  });
});
