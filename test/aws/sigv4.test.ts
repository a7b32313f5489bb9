// The signer of the SSM calls made without the AWS SDK, checked against the SDK's own
// signer (@smithy/signature-v4, which the SDK signs these calls with) and against the
// simulator's verifier (written separately from the public specification).
import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';
import { describe, expect, it } from 'vitest';
import { amzDate, signPost, type StaticCredentials } from '../../src/aws/sigv4.ts';
import { verifySigV4 } from '../sim/sigv4.ts';

function bytes(data: string | ArrayBuffer | ArrayBufferView): string | Buffer {
  if (typeof data === 'string') return data;
  return ArrayBuffer.isView(data) ? Buffer.from(data.buffer, data.byteOffset, data.byteLength) : Buffer.from(data);
}

/** The hash the SDK's signer is given: SHA-256, or HMAC-SHA256 with a key. */
class Sha256 {
  private readonly h: Hash | Hmac;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.h = secret === undefined ? createHash('sha256') : createHmac('sha256', bytes(secret));
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.h.update(bytes(data));
  }
  async digest(): Promise<Uint8Array> {
    return this.h.digest();
  }
}

const CASES: { name: string; host: string; region: string; credentials: StaticCredentials; body: string; date: string }[] = [
  {
    name: 'keys alone, regional endpoint',
    host: 'ssm.eu-west-1.amazonaws.com',
    region: 'eu-west-1',
    credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' },
    body: '{"Target":"i-0123456789abcdef0","DocumentName":"AWS-StartSSHSession","Parameters":{"portNumber":["22"]}}',
    date: '2026-12-06T20:15:30.123Z',
  },
  {
    name: 'session token, a port in the Host, non-ASCII in the body',
    host: '127.0.0.1:40123',
    region: 'cn-north-1',
    credentials: { accessKeyId: 'ASIAEXAMPLE', secretAccessKey: 'secret', sessionToken: 'IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJH+token==' },
    body: '{"Target":"i-1","Reason":"tïcket 42 ✓"}',
    date: '2027-01-01T00:00:00.000Z',
  },
  {
    name: 'empty body (a bodyless call)',
    host: 'ssm.us-gov-west-1.amazonaws.com',
    region: 'us-gov-west-1',
    credentials: { accessKeyId: 'AKID', secretAccessKey: 'k' },
    body: '',
    date: '2026-02-28T23:59:59.999Z',
  },
];

function ourHeaders(c: (typeof CASES)[number]): Record<string, string> {
  return signPost({
    host: c.host,
    headers: { 'content-type': 'application/x-amz-json-1.1', 'content-length': String(Buffer.byteLength(c.body)), 'x-amz-target': 'AmazonSSM.StartSession' },
    body: c.body,
    region: c.region,
    service: 'ssm',
    credentials: c.credentials,
    date: new Date(c.date),
  });
}

describe('signPost', () => {
  it('formats X-Amz-Date as ISO 8601 basic, whole seconds, UTC', () => {
    expect(amzDate(new Date('2026-12-06T20:15:30.987Z'))).toBe('20261206T201530Z');
    expect(amzDate(new Date('2027-01-02T03:04:05.000Z'))).toBe('20270102T030405Z');
    expect(amzDate(new Date('2026-12-31T23:59:59.999Z'))).toBe('20261231T235959Z');
  });

  it.each(CASES)('signs as the AWS SDK does: $name', async (c) => {
    const ours = ourHeaders(c);
    const [hostname, port] = c.host.split(':');
    const signer = new SignatureV4({ credentials: c.credentials, region: c.region, service: 'ssm', sha256: Sha256 });
    const { authorization: _drop, 'x-amz-date': _date, 'x-amz-security-token': _token, 'x-amz-content-sha256': _hash, host: _host, ...given } = ours;
    const sdk = await signer.sign(
      { method: 'POST', protocol: 'https:', hostname, ...(port ? { port: Number(port) } : {}), path: '/', query: {}, headers: { ...given, host: c.host }, body: c.body },
      { signingDate: new Date(c.date) },
    );
    expect(ours.authorization).toBe(sdk.headers.authorization);
    expect(ours['x-amz-date']).toBe(sdk.headers['x-amz-date']);
    expect(ours['x-amz-content-sha256']).toBe(sdk.headers['x-amz-content-sha256']);
    expect(ours['x-amz-security-token']).toBe(sdk.headers['x-amz-security-token']);
  });

  it.each(CASES)("passes the simulator's verifier, and a changed byte does not: $name", (c) => {
    const headers = ourHeaders(c);
    const verify = (body: string, h: Record<string, string>) =>
      verifySigV4(
        { method: 'POST', url: '/', headers: h, body: Buffer.from(body) },
        { credentials: [{ ...c.credentials }], region: c.region, service: 'ssm', now: Date.parse(c.date) },
      );
    expect(verify(c.body, headers)).toMatchObject({ ok: true });
    expect(verify(`${c.body} `, headers)).toMatchObject({ ok: false });
    expect(verify(c.body, { ...headers, 'x-amz-target': 'AmazonSSM.TerminateSession' })).toMatchObject({ ok: false });
  });
});
