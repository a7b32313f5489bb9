// One TLS context per CA bundle: made once, shared by every connection that trusts it.
import { describe, expect, it } from 'vitest';
import { trustOptions } from '../../src/transport/tls-context.ts';
import { makeLoopbackCertificate } from '../helpers/tls.ts';

describe('trustOptions', () => {
  it("is node's defaults without a bundle", () => {
    expect(trustOptions(undefined)).toEqual({});
  });

  it('makes the context for a bundle once, and one per bundle', () => {
    const a = makeLoopbackCertificate().cert;
    const b = makeLoopbackCertificate().cert;
    const first = trustOptions(a);
    expect(first.ca).toBe(a);
    expect(first.secureContext).toBeDefined();
    expect(trustOptions(a).secureContext).toBe(first.secureContext);
    expect(trustOptions(b).secureContext).not.toBe(first.secureContext);
  });
});
