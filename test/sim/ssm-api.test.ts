import { afterEach, describe, expect, it } from 'vitest';
import {
  ResumeSessionCommand,
  SSMClient,
  StartSessionCommand,
  TerminateSessionCommand,
  type SSMClientConfig,
} from '@aws-sdk/client-ssm';
import { SessionRegistry, type SessionRecord } from './sessions.ts';
import {
  canonicalRequest,
  deriveSigningKey,
  sha256Hex,
  signRequest,
  stringToSign,
  verifySigV4,
  type SimCredential,
} from './sigv4.ts';
import { FakeSsmApi, TEST_CREDENTIALS, type FakeSsmApiOptions } from './ssm-api.ts';
import { createHmac } from 'node:crypto';

const REGION = 'us-east-1';
const T = { timeout: 10_000 };
const streamUrl = (id: string) => `ws://127.0.0.1:7/v1/data-channel/${id}?role=publish_subscribe`;

// A clock that follows real time (the SDK signs with real time) but can be pushed forward.
function steppingClock() {
  let offset = 0;
  return { now: () => Date.now() + offset, advance: (ms: number) => void (offset += ms) };
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function setup(opts: Partial<FakeSsmApiOptions> = {}, client: Partial<SSMClientConfig> = {}) {
  const registry = opts.registry ?? new SessionRegistry();
  const api = new FakeSsmApi({ streamUrl, ...opts, registry });
  await api.listen();
  cleanups.push(() => api.close());
  const ssm = makeClient(api, client);
  return { api, registry, ssm };
}

function makeClient(api: FakeSsmApi, cfg: Partial<SSMClientConfig> = {}): SSMClient {
  const c = new SSMClient({
    endpoint: api.url,
    region: REGION,
    credentials: TEST_CREDENTIALS,
    maxAttempts: 1,
    requestHandler: { connectionTimeout: 2_000, requestTimeout: 5_000 },
    ...cfg,
  });
  cleanups.push(() => c.destroy());
  return c;
}

const start = (target = 'i-0123456789abcdef0', extra: Record<string, unknown> = {}) =>
  new StartSessionCommand({
    Target: target,
    DocumentName: 'AWS-StartSSHSession',
    Parameters: { portNumber: ['22'] },
    ...extra,
  });

/** A request signed by our own signer and sent with fetch: for things the SDK will not send. */
async function rawCall(
  api: FakeSsmApi,
  target: string,
  body: string,
  o: { date?: number; cred?: SimCredential; region?: string; sign?: boolean } = {},
) {
  const host = new URL(api.url).host;
  let headers: Record<string, string> = {
    host,
    'content-type': 'application/x-amz-json-1.1',
    'x-amz-target': target,
  };
  if (o.sign !== false) {
    headers = signRequest({ method: 'POST', url: '/', headers, body }, o.cred ?? TEST_CREDENTIALS, {
      region: o.region ?? REGION,
      service: 'ssm',
      date: o.date ?? Date.now(),
    }).headers;
  }
  const { host: _omit, ...sendHeaders } = headers; // fetch sets Host itself, to the same value
  const res = await fetch(api.url + '/', {
    method: 'POST',
    headers: sendHeaders,
    body,
    signal: AbortSignal.timeout(5_000),
  });
  return { status: res.status, headers: res.headers, json: (await res.json()) as Record<string, unknown> };
}

// -----------------------------------------------------------------------------------------------

describe('SessionRegistry', T, () => {
  it('creates caller-prefixed ids and long opaque tokens', () => {
    const reg = new SessionRegistry();
    const { record, token } = reg.create('i-1', 'AWS-StartSSHSession', { portNumber: ['22'] }, 22, '127.0.0.1');
    expect(record.sessionId).toMatch(/^sim-user-[0-9a-f]{17}$/);
    expect(token.length).toBeGreaterThanOrEqual(32);
    expect(record).toMatchObject({ target: 'i-1', port: 22, host: '127.0.0.1', state: 'started' });
    expect(reg.create('i-1', 'd', {}, 22, 'h', undefined, 'alice').record.sessionId).toMatch(/^alice-[0-9a-f]{17}$/);
    expect(reg.list()).toHaveLength(2);
    expect(reg.get(record.sessionId)).toBe(record);
  });

  it('tokens are single use and expire after the TTL from issue time', () => {
    let now = 1_000_000;
    const reg = new SessionRegistry({ now: () => now, tokenTtlMs: 5_000 });
    const { record, token } = reg.create('i-1', 'AWS-StartSSHSession', {}, 22, '127.0.0.1');
    expect(reg.consumeToken('nope', token)).toEqual({ ok: false, reason: 'unknown-session' });
    expect(reg.consumeToken(record.sessionId, 'x' + token)).toEqual({ ok: false, reason: 'bad-token' });
    const ok = reg.consumeToken(record.sessionId, token);
    expect(ok).toEqual({ ok: true, record });
    expect(record.state).toBe('connected');
    expect(reg.consumeToken(record.sessionId, token)).toEqual({ ok: false, reason: 'token-used' });

    const r = reg.resume(record.sessionId);
    if (!('token' in r)) throw new Error('resume failed');
    expect(r.token).not.toBe(token);
    now += 4_999;
    const r2 = reg.resume(record.sessionId) as { token: string };
    expect(reg.consumeToken(record.sessionId, r.token).ok).toBe(true);
    now += 1; // exactly TTL after r was issued; r2 is 1 ms old
    const r3 = reg.resume(record.sessionId) as { token: string };
    now += 5_000;
    expect(reg.consumeToken(record.sessionId, r3.token)).toEqual({ ok: false, reason: 'token-expired' });
    expect(reg.consumeToken(record.sessionId, r2.token)).toEqual({ ok: false, reason: 'token-expired' });
  });

  it('terminate is idempotent, emits once and kills tokens and resume', () => {
    let now = 0;
    const reg = new SessionRegistry({ now: () => now });
    const seen: SessionRecord[] = [];
    reg.on('terminated', (r) => seen.push(r));
    const { record, token } = reg.create('i-1', 'AWS-StartSSHSession', {}, 22, '127.0.0.1');
    now = 42;
    expect(reg.terminate(record.sessionId, 'idle')).toBe(true);
    expect(reg.terminate(record.sessionId)).toBe(false);
    expect(reg.terminate('unknown')).toBe(false);
    expect(seen).toEqual([record]);
    expect(record).toMatchObject({ state: 'terminated', terminatedAt: 42, terminateReason: 'idle' });
    expect(reg.consumeToken(record.sessionId, token)).toEqual({ ok: false, reason: 'session-terminated' });
    expect(reg.resume(record.sessionId)).toEqual({ error: 'DoesNotExistException' });
    expect(reg.resume('unknown')).toEqual({ error: 'DoesNotExistException' });
  });

  it('stays unique with a repeating random source', () => {
    let i = 0;
    const seq = [Buffer.alloc(16, 1), Buffer.alloc(16, 1), Buffer.alloc(16, 2)];
    const reg = new SessionRegistry({ random: () => seq[i++ % seq.length] });
    const a = reg.create('i-1', 'd', {}, 22, 'h');
    const b = reg.create('i-1', 'd', {}, 22, 'h');
    expect(a.record.sessionId).not.toBe(b.record.sessionId);
    const t1 = reg.resume(a.record.sessionId) as { token: string };
    const t2 = reg.resume(a.record.sessionId) as { token: string };
    expect(new Set([a.token, t1.token, t2.token]).size).toBe(3);
  });
});

// -----------------------------------------------------------------------------------------------

describe('SigV4 verifier', T, () => {
  const cred = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' };
  const baseOpts = { credentials: [cred], region: REGION, service: 'ssm' };
  const req = (date: number, body = '{}', extra: Record<string, string> = {}) => {
    const headers = { host: '127.0.0.1:1', 'content-type': 'application/x-amz-json-1.1', ...extra };
    const s = signRequest({ method: 'POST', url: '/', headers, body }, cred, { region: REGION, service: 'ssm', date });
    return { method: 'POST', url: s.url, headers: s.headers as Record<string, string>, body: Buffer.from(body) };
  };

  it('matches the worked example published with the SigV4 specification', () => {
    // IAM ListUsers example, 2015-08-30, from the public SigV4 documentation.
    const headers = {
      'content-type': 'application/x-www-form-urlencoded; charset=utf-8',
      host: 'iam.amazonaws.com',
      'x-amz-date': '20150830T123600Z',
    };
    const creq = canonicalRequest('GET', '/?Action=ListUsers&Version=2010-05-08', headers, ['content-type', 'host', 'x-amz-date'], sha256Hex(''));
    expect(sha256Hex(creq)).toBe('f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59');
    const key = deriveSigningKey(cred.secretAccessKey, '20150830', 'us-east-1', 'iam');
    expect(key.toString('hex')).toBe('c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9');
    const sig = createHmac('sha256', key)
      .update(stringToSign('20150830T123600Z', '20150830/us-east-1/iam/aws4_request', creq))
      .digest('hex');
    expect(sig).toBe('5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7');
  });

  it('accepts its own signatures and rejects tampering', () => {
    const now = Date.UTC(2024, 0, 2, 3, 4, 5);
    const r = req(now, '{"a":1}');
    expect(verifySigV4(r, { ...baseOpts, now })).toMatchObject({ ok: true });
    expect(verifySigV4({ ...r, body: Buffer.from('{"a":2}') }, { ...baseOpts, now })).toMatchObject({
      ok: false,
      code: 'InvalidSignatureException',
      message: expect.stringMatching(/^The request signature we calculated does not match/),
    });
    expect(verifySigV4({ ...r, headers: { ...r.headers, 'content-type': 'x' } }, { ...baseOpts, now })).toMatchObject({
      code: 'InvalidSignatureException',
    });
    const badHash = req(now, '{}', { 'x-amz-content-sha256': sha256Hex('other') });
    expect(verifySigV4(badHash, { ...baseOpts, now })).toMatchObject({ code: 'InvalidSignatureException' });
    const goodHash = req(now, '{}', { 'x-amz-content-sha256': sha256Hex('{}') });
    expect(verifySigV4(goodHash, { ...baseOpts, now })).toMatchObject({ ok: true });
  });

  it('checks the clock: 5 minutes either way', () => {
    const now = Date.UTC(2024, 0, 2, 3, 4, 5);
    expect(verifySigV4(req(now - 300_000), { ...baseOpts, now }).ok).toBe(true);
    expect(verifySigV4(req(now + 300_000), { ...baseOpts, now }).ok).toBe(true);
    expect(verifySigV4(req(now - 301_000), { ...baseOpts, now })).toMatchObject({
      code: 'InvalidSignatureException',
      message: 'Signature expired: 20240102T025904Z is now earlier than 20240102T025905Z (20240102T030405Z - 5 min.)',
    });
    expect(verifySigV4(req(now + 301_000), { ...baseOpts, now })).toMatchObject({
      code: 'InvalidSignatureException',
      message: 'Signature not yet current: 20240102T030906Z is still later than 20240102T030905Z (20240102T030405Z + 5 min.)',
    });
  });

  it('checks the credential scope', () => {
    const now = Date.now();
    const sign = (region: string, service: string) => {
      const s = signRequest(
        { method: 'POST', url: '/', headers: { host: 'h' }, body: '' },
        cred,
        { region, service, date: now },
      );
      return { method: 'POST', url: '/', headers: s.headers, body: Buffer.alloc(0) };
    };
    expect(verifySigV4(sign('eu-west-1', 'ssm'), { ...baseOpts, now })).toMatchObject({
      code: 'InvalidSignatureException',
      message: expect.stringContaining('Credential should be scoped to a valid region'),
    });
    expect(verifySigV4(sign(REGION, 'ec2'), { ...baseOpts, now })).toMatchObject({
      code: 'InvalidSignatureException',
      message: expect.stringContaining("scoped to correct service: 'ssm'"),
    });
    const r = sign(REGION, 'ssm');
    const noCred = { ...r, headers: { ...r.headers, authorization: 'AWS4-HMAC-SHA256 SignedHeaders=host, Signature=00' } };
    expect(verifySigV4(noCred, { ...baseOpts, now })).toMatchObject({ code: 'IncompleteSignatureException' });
  });

  it('handles session tokens and their expiry', () => {
    const now = Date.now();
    const temp = { ...cred, sessionToken: 'session-token-value' };
    const sign = (c: typeof cred & { sessionToken?: string }) => {
      const s = signRequest({ method: 'POST', url: '/', headers: { host: 'h' }, body: '' }, c, {
        region: REGION,
        service: 'ssm',
        date: now,
      });
      return { method: 'POST', url: '/', headers: s.headers, body: Buffer.alloc(0) };
    };
    const opts = { ...baseOpts, credentials: [temp], now };
    expect(verifySigV4(sign(temp), opts).ok).toBe(true);
    expect(verifySigV4(sign(cred), opts)).toMatchObject({ code: 'UnrecognizedClientException' });
    expect(verifySigV4(sign({ ...temp, sessionToken: 'other' }), opts)).toMatchObject({
      code: 'UnrecognizedClientException',
      message: 'The security token included in the request is invalid.',
    });
    const expired = { ...opts, credentials: [{ ...temp, expiresAt: now - 1 }] };
    expect(verifySigV4(sign(temp), expired)).toMatchObject({ code: 'ExpiredTokenException' });
  });

  it('supports query-string (presigned) authentication', () => {
    const now = Date.now();
    const s = signRequest({ method: 'POST', url: '/', headers: { host: 'h' }, body: '{}' }, cred, {
      region: REGION,
      service: 'ssm',
      date: now,
      presign: { expiresSec: 60 },
    });
    const r = { method: 'POST', url: s.url, headers: s.headers, body: Buffer.from('{}') };
    expect(verifySigV4(r, { ...baseOpts, now })).toMatchObject({ ok: true });
    expect(verifySigV4(r, { ...baseOpts, now: now + 61_000 })).toMatchObject({
      code: 'InvalidSignatureException',
      message: expect.stringContaining('Signature expired'),
    });
    const both = { ...r, headers: { ...r.headers, authorization: 'AWS4-HMAC-SHA256 x' } };
    expect(verifySigV4(both, { ...baseOpts, now })).toMatchObject({ code: 'IncompleteSignatureException' });
  });
});

// -----------------------------------------------------------------------------------------------

describe('FakeSsmApi with the real SDK', T, () => {
  it('listens on 127.0.0.1 and StartSession returns the three fields', async () => {
    const clock = steppingClock();
    const registry = new SessionRegistry({ now: clock.now, tokenTtlMs: 60_000 });
    const { api, ssm } = await setup({ registry, targets: { 'i-0123456789abcdef0': { port: 2222 } } });
    expect(api.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);

    const out = await ssm.send(start('i-0123456789abcdef0', { Reason: 'tests' }));
    expect(out.SessionId).toMatch(/^sim-user-[0-9a-f]{17}$/);
    expect(out.StreamUrl).toBe(streamUrl(out.SessionId!));
    expect(out.TokenValue!.length).toBeGreaterThanOrEqual(32);
    expect(registry.get(out.SessionId!)).toMatchObject({
      target: 'i-0123456789abcdef0',
      documentName: 'AWS-StartSSHSession',
      parameters: { portNumber: ['22'] },
      reason: 'tests',
      port: 2222,
      host: '127.0.0.1',
      state: 'started',
    });

    expect(registry.consumeToken(out.SessionId!, out.TokenValue!).ok).toBe(true);
    expect(registry.consumeToken(out.SessionId!, out.TokenValue!)).toEqual({ ok: false, reason: 'token-used' });

    // A second session's token left unused past the TTL.
    const out2 = await ssm.send(start('i-0123456789abcdef0'));
    clock.advance(60_000);
    expect(registry.consumeToken(out2.SessionId!, out2.TokenValue!)).toEqual({ ok: false, reason: 'token-expired' });

    expect(api.count('StartSession')).toBe(2);
    expect(api.calls[0]).toMatchObject({
      operation: 'StartSession',
      target: 'i-0123456789abcdef0',
      sessionId: out.SessionId,
      status: 200,
      accessKeyId: TEST_CREDENTIALS.accessKeyId,
      contentType: 'application/x-amz-json-1.1',
      signedHeaders: expect.arrayContaining(['content-type', 'host', 'x-amz-date', 'x-amz-target']),
      body: { Target: 'i-0123456789abcdef0', DocumentName: 'AWS-StartSSHSession', Parameters: { portNumber: ['22'] } },
      response: { SessionId: out.SessionId, TokenValue: '<redacted>', StreamUrl: out.StreamUrl },
    });
    const log = JSON.stringify(api.calls);
    expect(log).not.toContain(out.TokenValue);
    expect(log).not.toContain(out2.TokenValue);
    expect(log).not.toContain(TEST_CREDENTIALS.secretAccessKey);
  });

  it('uses portNumber on 127.0.0.1 when the target has no fixed port, and accepts any target without a list', async () => {
    const { registry, ssm } = await setup();
    const out = await ssm.send(start('i-anything', { Parameters: { portNumber: ['2022'] } }));
    expect(registry.get(out.SessionId!)).toMatchObject({ port: 2022, host: '127.0.0.1' });
  });

  it('wrong secret → InvalidSignatureException; unknown key → UnrecognizedClientException', async () => {
    const { api } = await setup();
    const wrongSecret = makeClient(api, { credentials: { ...TEST_CREDENTIALS, secretAccessKey: 'wrong' } });
    await expect(wrongSecret.send(start())).rejects.toMatchObject({
      name: 'InvalidSignatureException',
      message: expect.stringMatching(/^The request signature we calculated does not match/),
      $metadata: { httpStatusCode: 400 },
    });
    const unknownKey = makeClient(api, { credentials: { accessKeyId: 'AKIAUNKNOWN000000000', secretAccessKey: 's' } });
    await expect(unknownKey.send(start())).rejects.toMatchObject({
      name: 'UnrecognizedClientException',
      message: 'The security token included in the request is invalid.',
      $metadata: { httpStatusCode: 400 },
    });
    expect(api.calls.map((c) => [c.status, c.errorCode])).toEqual([
      [400, 'InvalidSignatureException'],
      [400, 'UnrecognizedClientException'],
    ]);
  });

  it('missing signature → MissingAuthenticationTokenException (HTTP 400)', async () => {
    const { api } = await setup();
    const res = await rawCall(api, 'AmazonSSM.StartSession', '{"Target":"i-1"}', { sign: false });
    expect(res.status).toBe(400);
    expect(res.headers.get('x-amzn-errortype')).toBe('MissingAuthenticationTokenException');
    expect(res.headers.get('x-amzn-requestid')).toMatch(/^[0-9a-f-]{36}$/);
    expect(res.json).toEqual({ __type: 'MissingAuthenticationTokenException', message: 'Missing Authentication Token' });
    expect(api.calls[0]).toMatchObject({ operation: 'StartSession', target: 'i-1', status: 400 });
  });

  it('an old X-Amz-Date → InvalidSignatureException "Signature expired"', async () => {
    const { api } = await setup();
    const skewed = makeClient(api, { systemClockOffset: -3_600_000 });
    await expect(skewed.send(start())).rejects.toMatchObject({
      name: 'InvalidSignatureException',
      message: expect.stringMatching(/^Signature expired: \d{8}T\d{6}Z is now earlier than \d{8}T\d{6}Z \(\d{8}T\d{6}Z - 5 min\.\)$/),
      $metadata: { httpStatusCode: 400 },
    });
    const raw = await rawCall(api, 'AmazonSSM.StartSession', '{"Target":"i-1"}', { date: Date.now() - 600_000 });
    expect(raw.status).toBe(400);
    expect(raw.json.__type).toBe('InvalidSignatureException');
    expect(String(raw.json.message)).toMatch(/^Signature expired/);
    expect(api.count('StartSession')).toBe(2);
  });

  it('wrong region in the scope → InvalidSignatureException', async () => {
    const { api } = await setup();
    const other = makeClient(api, { region: 'eu-west-1' });
    await expect(other.send(start())).rejects.toMatchObject({
      name: 'InvalidSignatureException',
      message: expect.stringContaining('Credential should be scoped to a valid region'),
    });
  });

  it('temporary credentials: token checked, expiry reported', async () => {
    const temp = { accessKeyId: 'ASIASIMULATOR0000002', secretAccessKey: 'temp-secret', sessionToken: 'temp-token' };
    const { api } = await setup({
      credentials: [temp, { accessKeyId: 'ASIASIMULATOR0000003', secretAccessKey: 'old', sessionToken: 'old-token', expiresAt: 0 }],
    });
    const good = makeClient(api, { credentials: temp });
    expect((await good.send(start())).SessionId).toBeTruthy();
    const badToken = makeClient(api, { credentials: { ...temp, sessionToken: 'nope' } });
    await expect(badToken.send(start())).rejects.toMatchObject({ name: 'UnrecognizedClientException' });
    const expired = makeClient(api, {
      credentials: { accessKeyId: 'ASIASIMULATOR0000003', secretAccessKey: 'old', sessionToken: 'old-token' },
    });
    await expect(expired.send(start())).rejects.toMatchObject({
      name: 'ExpiredTokenException',
      $metadata: { httpStatusCode: 400 },
    });
  });

  it('TargetNotConnected, InvalidDocument, AccessDeniedException', async () => {
    const { api, ssm } = await setup({
      targets: { 'i-0aaaaaaaaaaaaaaaa': {}, 'i-0deniedddddddddd': {} },
      denyTargets: ['i-0deniedddddddddd'],
    });
    await expect(ssm.send(start('i-0bbbbbbbbbbbbbbbb'))).rejects.toMatchObject({
      name: 'TargetNotConnected',
      message: 'i-0bbbbbbbbbbbbbbbb is not connected.',
      $metadata: { httpStatusCode: 400 },
    });
    await expect(ssm.send(start('i-0aaaaaaaaaaaaaaaa', { DocumentName: 'AWS-StartPortForwardingSession' }))).rejects.toMatchObject({
      name: 'InvalidDocument',
      message: 'Document with name AWS-StartPortForwardingSession does not exist.',
      $metadata: { httpStatusCode: 400 },
    });
    await expect(ssm.send(start('i-0deniedddddddddd'))).rejects.toMatchObject({
      name: 'AccessDeniedException',
      message: expect.stringContaining(
        'User: arn:aws:iam::123456789012:user/sim-user is not authorized to perform: ssm:StartSession on resource: ' +
          'arn:aws:ec2:us-east-1:123456789012:instance/i-0deniedddddddddd',
      ),
      $metadata: { httpStatusCode: 400 },
    });
    expect(api.calls.map((c) => c.errorCode)).toEqual(['TargetNotConnected', 'InvalidDocument', 'AccessDeniedException']);
    expect(api.registry.list()).toHaveLength(0);
  });

  it('request validation: Reason, portNumber, Parameters types, malformed JSON, unknown operation', async () => {
    const { api, ssm } = await setup();
    await expect(ssm.send(start('i-1', { Reason: '' }))).rejects.toMatchObject({
      name: 'ValidationException',
      message: expect.stringContaining("at 'reason'"),
      $metadata: { httpStatusCode: 400 },
    });
    await expect(ssm.send(start('i-1', { Parameters: { portNumber: ['ssh'] } }))).rejects.toMatchObject({
      name: 'InvalidParameters',
      $metadata: { httpStatusCode: 400 },
    });
    await expect(ssm.send(start('i-1', { Parameters: { portNumber: ['22'], host: ['x'] } }))).rejects.toMatchObject({
      name: 'InvalidParameters',
    });
    await expect(ssm.send(new StartSessionCommand({} as never))).rejects.toMatchObject({ name: 'ValidationException' });

    const notList = await rawCall(api, 'AmazonSSM.StartSession', '{"Target":"i-1","Parameters":{"portNumber":"22"}}');
    expect(notList).toMatchObject({ status: 400, json: { __type: 'SerializationException' } });
    const malformed = await rawCall(api, 'AmazonSSM.StartSession', '{"Target":');
    expect(malformed).toMatchObject({ status: 400, json: { __type: 'SerializationException' } });
    expect(api.calls.at(-1)!.body).toBe('{"Target":');
    const unknown = await rawCall(api, 'AmazonSSM.DescribeInstanceInformation', '{}');
    expect(unknown).toMatchObject({ status: 400, json: { __type: 'UnknownOperationException' } });
    expect(api.calls.at(-1)!.operation).toBe('AmazonSSM.DescribeInstanceInformation');
    expect(api.registry.list()).toHaveLength(0);
  });

  it('ThrottlingException for the first N matching calls, then success', async () => {
    const { api, ssm } = await setup({ throttle: { calls: 2, operations: ['StartSession'] } });
    // Non-matching operations pass untouched.
    expect(await ssm.send(new TerminateSessionCommand({ SessionId: 'sim-user-0' }))).toMatchObject({ SessionId: 'sim-user-0' });
    for (let i = 0; i < 2; i++) {
      await expect(ssm.send(start())).rejects.toMatchObject({
        name: 'ThrottlingException',
        message: 'Rate exceeded',
        $metadata: { httpStatusCode: 400 },
      });
    }
    expect((await ssm.send(start())).SessionId).toBeTruthy();
    expect(api.calls.map((c) => `${c.operation}:${c.status}`)).toEqual([
      'TerminateSession:200',
      'StartSession:400',
      'StartSession:400',
      'StartSession:200',
    ]);
  });

  it('ResumeSession gives a fresh token; after TerminateSession it fails with DoesNotExistException', async () => {
    const { api, registry, ssm } = await setup();
    const terminated: SessionRecord[] = [];
    registry.on('terminated', (r) => terminated.push(r));

    const s = await ssm.send(start());
    const id = s.SessionId!;
    expect(registry.consumeToken(id, s.TokenValue!).ok).toBe(true);
    const r = await ssm.send(new ResumeSessionCommand({ SessionId: id }));
    expect(r.SessionId).toBe(id);
    expect(r.StreamUrl).toBe(streamUrl(id));
    expect(r.TokenValue).not.toBe(s.TokenValue);
    expect(registry.consumeToken(id, r.TokenValue!).ok).toBe(true);
    expect(registry.consumeToken(id, r.TokenValue!)).toEqual({ ok: false, reason: 'token-used' });
    expect(api.calls.at(-1)!.response).toMatchObject({ TokenValue: '<redacted>' });

    expect(await ssm.send(new TerminateSessionCommand({ SessionId: id }))).toMatchObject({ SessionId: id });
    expect(await ssm.send(new TerminateSessionCommand({ SessionId: id }))).toMatchObject({ SessionId: id });
    expect(await ssm.send(new TerminateSessionCommand({ SessionId: 'sim-user-nosuch' }))).toMatchObject({
      SessionId: 'sim-user-nosuch',
    });
    expect(terminated).toHaveLength(1);
    expect(terminated[0]).toMatchObject({ sessionId: id, state: 'terminated', terminateReason: 'TerminateSession' });
    expect(api.count('TerminateSession')).toBe(3);
    expect(api.calls.filter((c) => c.operation === 'TerminateSession' && c.sessionId === id)).toHaveLength(2);

    await expect(ssm.send(new ResumeSessionCommand({ SessionId: id }))).rejects.toMatchObject({
      name: 'DoesNotExistException',
      $metadata: { httpStatusCode: 400 },
    });
    await expect(ssm.send(new ResumeSessionCommand({ SessionId: 'sim-user-nosuch' }))).rejects.toMatchObject({
      name: 'DoesNotExistException',
    });
    expect(api.count('ResumeSession')).toBe(3);
  });

  it('injected replies: a 500 then success, a resume without a token, namespaced error types', async () => {
    const { api, ssm } = await setup({ errorStyle: { namespaced: true, messageKey: 'Message' } });
    const s = await ssm.send(start());
    api.injectNext('ResumeSession', { error: 'InternalServerError', message: 'boom', status: 500 });
    api.injectNext('ResumeSession', { body: { SessionId: s.SessionId } });
    await expect(ssm.send(new ResumeSessionCommand({ SessionId: s.SessionId }))).rejects.toMatchObject({
      name: 'InternalServerError',
      $metadata: { httpStatusCode: 500 },
    });
    const noToken = await ssm.send(new ResumeSessionCommand({ SessionId: s.SessionId }));
    expect(noToken.TokenValue).toBeUndefined();
    expect((await ssm.send(new ResumeSessionCommand({ SessionId: s.SessionId }))).TokenValue).toBeTruthy();

    await expect(ssm.send(start('i-1', { DocumentName: 'Nope-Doc' }))).rejects.toMatchObject({ name: 'InvalidDocument' });
    const raw = await rawCall(api, 'AmazonSSM.ResumeSession', '{"SessionId":"x"}');
    expect(raw.json).toEqual({ __type: 'com.amazonaws.ssm#DoesNotExistException', Message: 'Session with id x does not exist.' });
  });

  it('close() ends promptly even with keep-alive connections open', async () => {
    const { api, ssm } = await setup();
    await ssm.send(start());
    const t0 = Date.now();
    await api.close();
    expect(Date.now() - t0).toBeLessThan(2_000);
    await expect(ssm.send(start())).rejects.toBeTruthy();
  });
});
