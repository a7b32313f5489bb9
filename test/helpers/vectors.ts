import { readFileSync } from 'node:fs';

export interface VectorFrame {
  name: string;
  fields: { createdDate: number; messageId: string; payloadText?: string; payloadHex: string; sequenceNumber: number };
  hex: string;
}

const data = JSON.parse(readFileSync(new URL('../../fixtures/frames.json', import.meta.url), 'utf8'));

export const vectors = data as { binaryFrames: VectorFrame[]; rto: { initial: { rttMs: number; rttvMs: number; rtoMs: number }; steps: { sampleMs: number; rttMs: number; rttvMs: number; rtoMs: number }[] } };

export function frame(name: string): VectorFrame {
  const v = vectors.binaryFrames.find((f) => f.name === name);
  if (!v) throw new Error(`no vector ${name}`);
  return v;
}

export function bytes(name: string): Buffer {
  return Buffer.from(frame(name).hex, 'hex');
}

/** A source that hands out the given values in order, then fails loudly. */
export function sequence<T>(values: T[]): () => T {
  let i = 0;
  return () => {
    if (i >= values.length) throw new Error('sequence exhausted');
    return values[i++];
  };
}
