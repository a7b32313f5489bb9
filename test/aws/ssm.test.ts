import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createSsmApi, isLoopbackUrl, type SsmConfig } from '../../src/aws/ssm.ts';
import { ExitCode, ProxyError } from '../../src/cli/exit-codes.ts';
import { createLogger } from '../../src/cli/log.ts';
import { startConnectProxy, type ConnectProxy } from '../helpers/connect-proxy.ts';

const ACCESS_KEY = 'AKIDEXAMPLE0123456789';
const SECRET_KEY = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
const TOKEN = 'AAEAAExampleTokenValue0123456789abcdef==';
const REPO = fileURLToPath(new URL('../..', import.meta.url));

type Reply = { status: number; body: unknown; contentType?: string; headers?: Record<string, string> } | 'hang' | 'reset';

interface RecordedRequest {
  operation: string;
  body: Record<string, unknown>;
  headers: IncomingHttpHeaders;
  /** The number (1-based) of the TCP connection it came on. */
  connection: number;
  /** performance.now() when it had arrived. */
  at: number;
}

/** A stand-in for the SSM JSON 1.1 API on 127.0.0.1. */
class FakeSsm {
  readonly requests: RecordedRequest[] = [];
  reply: (operation: string, body: Record<string, unknown>, count: number, connectionReused: boolean) => Reply = () => ok();
  private server: Server;
  url = '';
  /** TCP connections accepted. */
  connections = 0;

  constructor() {
    const numbers = new WeakMap<object, number>();
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        // SSM speaks JSON 1.1; STS (role assumption) speaks the query protocol.
        const isQuery = String(req.headers['content-type']).startsWith('application/x-www-form-urlencoded');
        const body = (isQuery ? Object.fromEntries(new URLSearchParams(raw)) : JSON.parse(raw || '{}')) as Record<string, unknown>;
        const operation = isQuery ? `sts:${String(body.Action)}` : String(req.headers['x-amz-target'] ?? '').replace(/^AmazonSSM\./, '');
        const connection = numbers.get(req.socket) ?? 0;
        const connectionReused = this.requests.some((r) => r.connection === connection);
        this.requests.push({ operation, body, headers: req.headers, connection, at: performance.now() });
        const count = this.requests.filter((r) => r.operation === operation).length;
        const reply = this.reply(operation, body, count, connectionReused);
        if (reply === 'hang') return;
        if (reply === 'reset') return void req.socket.resetAndDestroy();
        res.writeHead(reply.status, { 'content-type': reply.contentType ?? 'application/x-amz-json-1.1', ...reply.headers });
        res.end(typeof reply.body === 'string' ? reply.body : JSON.stringify(reply.body));
      });
    });
    this.server.on('connection', (socket) => numbers.set(socket, ++this.connections));
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  count(operation: string): number {
    return this.requests.filter((r) => r.operation === operation).length;
  }
}

function ok(body: Record<string, unknown> = {}): Reply {
  return {
    status: 200,
    body: {
      SessionId: 'alice-0a1b2c3d4e5f67890',
      StreamUrl: 'wss://ssmmessages.eu-west-1.amazonaws.com/v1/data-channel/alice-0a1b2c3d4e5f67890?role=publish_subscribe',
      TokenValue: TOKEN,
      ...body,
    },
  };
}

/** STS's answer to AssumeRole: the role's temporary credentials. */
function assumeRoleReply(): Reply {
  return {
    status: 200,
    contentType: 'text/xml',
    body:
      '<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult><Credentials>' +
      '<AccessKeyId>ASIAROLEKEY0000</AccessKeyId><SecretAccessKey>role-secret</SecretAccessKey>' +
      '<SessionToken>role-session-token</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration></Credentials>' +
      '<AssumedRoleUser><AssumedRoleId>AROA0:x</AssumedRoleId><Arn>arn:aws:sts::111122223333:assumed-role/admin/x</Arn>' +
      '</AssumedRoleUser></AssumeRoleResult></AssumeRoleResponse>',
  };
}

function awsError(code: string, message: string, status = 400): Exclude<Reply, string> {
  return { status, body: { __type: code, message } };
}

/** A TCP server that accepts and never answers: a stuck endpoint or IMDS behind a firewall. */
async function startSilentServer(): Promise<{ url: string; close: () => Promise<void> }> {
  const sockets = new Set<import('node:net').Socket>();
  const server: TcpServer = createTcpServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function closedPortUrl(): Promise<string> {
  const server = createTcpServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

async function rejection(promise: Promise<unknown>): Promise<ProxyError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(ProxyError);
    return err as ProxyError;
  }
  throw new Error('expected a rejection');
}

const savedEnv = { ...process.env };
let home: string;
let fake: FakeSsm;

/** An environment with nothing AWS in it: no variables, empty config files, no IMDS. */
beforeEach(async () => {
  for (const key of Object.keys(process.env)) if (key.startsWith('AWS_') || /^(https?|no)_proxy$/i.test(key)) delete process.env[key];
  home = mkdtempSync(join(tmpdir(), 'ssm-proxy-home-'));
  process.env.HOME = home;
  process.env.AWS_CONFIG_FILE = join(home, 'config');
  process.env.AWS_SHARED_CREDENTIALS_FILE = join(home, 'credentials');
  process.env.AWS_EC2_METADATA_DISABLED = 'true';
  fake = new FakeSsm();
  await fake.start();
});

afterEach(async () => {
  await fake.stop();
  for (const key of Object.keys(process.env)) if (!(key in savedEnv)) delete process.env[key];
  Object.assign(process.env, savedEnv);
  rmSync(home, { recursive: true, force: true });
});

function useStaticCredentials(): void {
  process.env.AWS_ACCESS_KEY_ID = ACCESS_KEY;
  process.env.AWS_SECRET_ACCESS_KEY = SECRET_KEY;
}

/** SSM_PROXY_USE_SDK, for the tests run on both routes. */
let useSdk = false;

function config(extra: Partial<SsmConfig> = {}): SsmConfig {
  return { region: 'eu-west-1', endpointUrl: fake.url, ...(useSdk ? { useSdk } : {}), ...extra };
}

/** Profile `admin` assumes a role through STS at `stsUrl` (the fake answers it too), in eu-north-1. */
function roleProfile(stsUrl: string): void {
  writeFileSync(
    join(home, 'config'),
    '[profile base]\nregion = eu-north-1\n[profile admin]\nrole_arn = arn:aws:iam::111122223333:role/admin\nsource_profile = base\nregion = eu-north-1\n',
  );
  writeFileSync(join(home, 'credentials'), `[base]\naws_access_key_id = ${ACCESS_KEY}\naws_secret_access_key = ${SECRET_KEY}\n`);
  process.env.AWS_ENDPOINT_URL_STS = stsUrl;
  fake.reply = (operation) => (operation === 'sts:AssumeRole' ? assumeRoleReply() : ok());
}

const request = { target: 'i-0123456789abcdef0', documentName: 'AWS-StartSSHSession', port: 22 };

describe('createSsmApi', () => {
  it('reports the region and whether the endpoint is loopback', async () => {
    const api = await createSsmApi(config());
    expect(api.region).toBe('eu-west-1');
    expect(api.endpointIsLoopback).toBe(true);
  });

  it("takes the region from the profile's config section", async () => {
    writeFileSync(join(home, 'config'), '[profile dev]\nregion = ap-south-1\n');
    writeFileSync(join(home, 'credentials'), `[dev]\naws_access_key_id = ${ACCESS_KEY}\naws_secret_access_key = ${SECRET_KEY}\n`);
    const api = await createSsmApi({ profile: 'dev', endpointUrl: fake.url });
    expect(api.region).toBe('ap-south-1');
    await api.startSession(request);
    expect(String(fake.requests[0].headers.authorization)).toContain(`Credential=${ACCESS_KEY}/`);
    expect(String(fake.requests[0].headers.authorization)).toContain('/ap-south-1/ssm/aws4_request');
  });

  it('AWS_PROFILE with keys in the environment: the keys are used, as the AWS CLI does; --profile sets them aside', async () => {
    writeFileSync(join(home, 'config'), '[profile dev]\nregion = ap-south-1\n');
    writeFileSync(join(home, 'credentials'), '[dev]\naws_access_key_id = AKIDPROFILEKEY000000\naws_secret_access_key = profile-secret\n');
    useStaticCredentials();
    const fromEnv = await createSsmApi({ profile: 'dev', profileFromEnv: true, endpointUrl: fake.url });
    expect(fromEnv.region).toBe('ap-south-1'); // the profile still gives the region
    await fromEnv.startSession(request);
    expect(String(fake.requests[0].headers.authorization)).toContain(`Credential=${ACCESS_KEY}/`);
    const explicit = await createSsmApi({ profile: 'dev', endpointUrl: fake.url });
    await explicit.startSession(request).catch(() => {}); // the fake refuses the profile's unknown key
    expect(String(fake.requests[1].headers.authorization)).toContain('Credential=AKIDPROFILEKEY000000/');
  });

  it("assumes the profile's role through STS in the profile's region", async () => {
    roleProfile(fake.url);
    const api = await createSsmApi({ profile: 'admin', endpointUrl: fake.url });
    expect(api.region).toBe('eu-north-1');
    await api.startSession(request);
    expect(fake.requests.map((r) => r.operation)).toEqual(['sts:AssumeRole', 'StartSession']);
    expect(fake.requests[0].body.RoleArn).toBe('arn:aws:iam::111122223333:role/admin');
    expect(String(fake.requests[0].headers.authorization)).toContain(`Credential=${ACCESS_KEY}/`);
    expect(String(fake.requests[0].headers.authorization)).toContain('/eu-north-1/sts/aws4_request');
    expect(String(fake.requests[1].headers.authorization)).toContain('Credential=ASIAROLEKEY0000/');
    expect(fake.requests[1].headers['x-amz-security-token']).toBe('role-session-token');
  });

  it('fails with a usage error when no region is configured anywhere', async () => {
    const err = await rejection(createSsmApi({ endpointUrl: fake.url }));
    expect(err.exitCode).toBe(ExitCode.Usage);
    expect(err.message).toBe('no AWS region configured; pass --region, set AWS_REGION, or set region in your AWS config profile');
  });

  it('names the profile when its region is missing', async () => {
    const err = await rejection(createSsmApi({ profile: 'nope', endpointUrl: fake.url }));
    expect(err.exitCode).toBe(ExitCode.Usage);
    expect(err.message).toContain('(profile nope)');
  });

  it('fails with a usage error when the CA bundle cannot be read', async () => {
    const err = await rejection(createSsmApi(config({ caBundle: join(home, 'missing.pem') })));
    expect(err.exitCode).toBe(ExitCode.Usage);
    expect(err.message).toContain('ENOENT');
  });

  it('fails with a usage error when the CA bundle holds no certificate', async () => {
    for (const content of ['', 'not a certificate\n', '-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n']) {
      writeFileSync(join(home, 'bundle.pem'), content);
      const err = await rejection(createSsmApi(config({ caBundle: join(home, 'bundle.pem') })));
      expect(err.exitCode).toBe(ExitCode.Usage);
      expect(err.message).toBe(`the CA bundle ${join(home, 'bundle.pem')} holds no PEM certificate (-----BEGIN CERTIFICATE-----); check --ca-bundle or AWS_CA_BUNDLE`);
    }
  });
});

describe('behind HTTP_PROXY, each host routed as NO_PROXY says', () => {
  let proxy: ConnectProxy;
  beforeAll(async () => {
    proxy = await startConnectProxy();
  });
  afterAll(() => proxy?.close());

  it('sends STS through the proxy while NO_PROXY takes the SSM endpoint direct', async () => {
    const port = new URL(fake.url).port;
    roleProfile(`http://localhost:${port}`);
    process.env.HTTP_PROXY = proxy.url;
    process.env.NO_PROXY = '127.0.0.1';
    proxy.tunnels.length = 0;
    const api = await createSsmApi({ profile: 'admin', endpointUrl: fake.url });
    await api.startSession(request);
    expect(fake.requests.map((r) => r.operation)).toEqual(['sts:AssumeRole', 'StartSession']);
    expect(proxy.tunnels).toEqual([`localhost:${port}`]);
  });

  it('sends the SSM API through the proxy while NO_PROXY takes STS direct', async () => {
    const port = new URL(fake.url).port;
    roleProfile(fake.url);
    process.env.HTTP_PROXY = proxy.url;
    process.env.NO_PROXY = '127.0.0.1';
    proxy.tunnels.length = 0;
    const api = await createSsmApi({ profile: 'admin', endpointUrl: `http://localhost:${port}` });
    await api.startSession(request);
    expect(fake.requests.map((r) => r.operation)).toEqual(['sts:AssumeRole', 'StartSession']);
    expect(proxy.tunnels).toEqual([`localhost:${port}`]);
  });

  it('rejects a malformed proxy setting at start, even where NO_PROXY would bypass it', async () => {
    process.env.HTTP_PROXY = 'socks5://127.0.0.1:1080';
    process.env.NO_PROXY = '*';
    const err = await rejection(createSsmApi(config()));
    expect(err.exitCode).toBe(ExitCode.Usage);
    expect(err.message).toContain('only http:// proxies are supported');
  });
});

// The same calls and the same outcomes on both routes: signed here with the environment's
// keys, and through the AWS SDK (SSM_PROXY_USE_SDK=1, and every other credential source).
describe.each([
  ['signed by ssm-proxy', false],
  ['through the AWS SDK', true],
] as const)('%s', (_route, viaSdk) => {
  beforeEach(() => {
    useSdk = viaSdk;
  });
  afterEach(() => {
    useSdk = false;
  });

  describe('startSession', () => {
    beforeEach(useStaticCredentials);

    it('sends the documented request and returns the session', async () => {
      const api = await createSsmApi(config());
      const start = await api.startSession({ ...request, port: 2222 });
      expect(start).toEqual({
        sessionId: 'alice-0a1b2c3d4e5f67890',
        streamUrl: 'wss://ssmmessages.eu-west-1.amazonaws.com/v1/data-channel/alice-0a1b2c3d4e5f67890?role=publish_subscribe',
        tokenValue: TOKEN,
      });
      expect(fake.requests).toHaveLength(1);
      const [sent] = fake.requests;
      expect(sent.operation).toBe('StartSession');
      expect(sent.body).toEqual({
        Target: 'i-0123456789abcdef0',
        DocumentName: 'AWS-StartSSHSession',
        Parameters: { portNumber: ['2222'] },
      });
      expect(sent.headers['content-type']).toBe('application/x-amz-json-1.1');
      expect(sent.headers['x-amz-target']).toBe('AmazonSSM.StartSession');
      expect(String(sent.headers.authorization)).toMatch(
        new RegExp(`^AWS4-HMAC-SHA256 Credential=${ACCESS_KEY}/\\d{8}/eu-west-1/ssm/aws4_request`),
      );
    });

    it('tells onSent once, when the request has been written and before the answer is read', async () => {
      const events: string[] = [];
      fake.reply = (operation) => {
        events.push(`fake answers ${operation}`);
        return ok();
      };
      const api = await createSsmApi(config());
      const start = await api.startSession({ ...request, onSent: () => events.push('sent') });
      events.push('resolved');
      expect(start.sessionId).toBe('alice-0a1b2c3d4e5f67890');
      expect(events).toEqual(['sent', 'fake answers StartSession', 'resolved']);
    });

    it('sends StartSession over the connection it opened before loading the SDK (if it loads it)', async () => {
      const stderr = { text: '', write(s: string) { this.text += s; return true; } };
      const logger = createLogger({ verbose: 3, stderr });
      const api = await createSsmApi(config({ logger }));
      await api.startSession(request);
      logger.close();
      expect(fake.connections).toBe(1);
      expect(fake.requests.map((r) => [r.operation, r.connection])).toEqual([['StartSession', 1]]);
      const opened = stderr.text.indexOf(`opening a connection to ${fake.url} for the SSM API`);
      expect(opened).toBeGreaterThanOrEqual(0);
      if (viaSdk) expect(opened).toBeLessThan(stderr.text.indexOf('AWS SDK loaded in'));
      else expect(stderr.text).not.toContain('AWS SDK loaded');
      expect(stderr.text).toContain('SSM API: using the connection opened ahead');
    });

    it('opens no connection ahead when the API goes through HTTP_PROXY', async () => {
      process.env.HTTP_PROXY = await closedPortUrl();
      const api = await createSsmApi(config());
      await rejection(api.startSession(request));
      expect(fake.connections).toBe(0);
    });

    it('does not call onSent when the request never leaves', async () => {
      let sent = 0;
      const api = await createSsmApi(config({ endpointUrl: await closedPortUrl() }));
      const err = await rejection(api.startSession({ ...request, onSent: () => sent++ }));
      expect(err.exitCode).toBe(ExitCode.Network);
      expect(sent).toBe(0);
    });

    it('sends a reason when there is one', async () => {
      const api = await createSsmApi(config());
      await api.startSession({ ...request, reason: 'ticket 42' });
      await api.startSession({ ...request, reason: '' });
      expect(fake.requests[0].body.Reason).toBe('ticket 42');
      expect(fake.requests[1].body).not.toHaveProperty('Reason');
    });

    it.each(['SessionId', 'StreamUrl', 'TokenValue'])('fails with exit 8 when %s is missing', async (field) => {
      fake.reply = () => ok({ [field]: undefined });
      const api = await createSsmApi(config());
      const err = await rejection(api.startSession(request));
      expect(err.exitCode).toBe(ExitCode.Protocol);
      expect(err.message).toContain(field);
    });

    it('maps TargetNotConnected to exit 5 without retrying', async () => {
      fake.reply = () => awsError('TargetNotConnected', 'i-0123456789abcdef0 is not connected.');
      const api = await createSsmApi(config());
      const err = await rejection(api.startSession(request));
      expect(err.exitCode).toBe(ExitCode.TargetUnavailable);
      expect(err.message).toContain('i-0123456789abcdef0 is not connected to Session Manager in eu-west-1');
      expect(fake.count('StartSession')).toBe(1);
    });

    it('maps a namespaced InvalidDocument to exit 5', async () => {
      fake.reply = () => awsError('com.amazonaws.ssm#InvalidDocument', 'Document Nope does not exist');
      const api = await createSsmApi(config());
      const err = await rejection(api.startSession({ ...request, documentName: 'Nope' }));
      expect(err.exitCode).toBe(ExitCode.TargetUnavailable);
      expect(err.message).toContain('the document Nope is not available in eu-west-1');
    });

    it('maps AccessDeniedException to exit 4', async () => {
      fake.reply = () => awsError('AccessDeniedException', 'User: arn:aws:iam::111122223333:user/bob is not authorized to perform: ssm:StartSession');
      const api = await createSsmApi(config());
      const err = await rejection(api.startSession(request));
      expect(err.exitCode).toBe(ExitCode.AccessDenied);
      expect(err.message).toContain('ssm:StartSession');
    });

    it('maps a rejected key to exit 3', async () => {
      fake.reply = () => awsError('UnrecognizedClientException', 'The security token included in the request is invalid.');
      const api = await createSsmApi(config());
      expect((await rejection(api.startSession(request))).exitCode).toBe(ExitCode.Credentials);
    });

    it('retries server faults (3 attempts in all)', async () => {
      fake.reply = (_op, _body, count) => (count < 3 ? awsError('InternalServerError', 'try later', 500) : ok());
      const api = await createSsmApi(config());
      await expect(api.startSession(request)).resolves.toMatchObject({ tokenValue: TOKEN });
      expect(fake.count('StartSession')).toBe(3);
    });

    it('gives up on throttling after 3 attempts with exit 6', async () => {
      fake.reply = () => awsError('ThrottlingException', 'Rate exceeded');
      const api = await createSsmApi(config());
      const err = await rejection(api.startSession(request));
      expect(err.exitCode).toBe(ExitCode.Network);
      expect(fake.count('StartSession')).toBe(3);
    });

    it('signs with the server\'s time, and tries again, when the clock is minutes off (the SDK\'s skew correction)', async () => {
      const serverClock = Date.now() + 60 * 60_000;
      fake.reply = (_op, _body, count) =>
        count === 1
          ? { status: 400, body: { __type: 'InvalidSignatureException', message: 'Signature expired: 20261206T200000Z is now earlier than 20261206T205500Z' }, headers: { date: new Date(serverClock).toUTCString() } }
          : ok();
      const api = await createSsmApi(config());
      await expect(api.startSession(request)).resolves.toMatchObject({ tokenValue: TOKEN });
      expect(fake.count('StartSession')).toBe(2);
      const [first, second] = fake.requests.map((r) => Date.parse(String(r.headers['x-amz-date']).replace(/^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/, '$1-$2-$3T$4:$5:$6Z')));
      expect(Math.abs(first - Date.now())).toBeLessThan(60_000);
      expect(Math.abs(second - serverClock)).toBeLessThan(60_000);
    });

    it('reads the error code from X-Amzn-ErrorType, as the service may send it', async () => {
      fake.reply = () => ({ status: 400, body: { message: 'i-0123456789abcdef0 is not connected.' }, headers: { 'x-amzn-errortype': 'TargetNotConnected:http://internal.amazon.com/coral/com.amazonaws.ssm/' } });
      const api = await createSsmApi(config());
      const err = await rejection(api.startSession(request));
      expect(err.exitCode).toBe(ExitCode.TargetUnavailable);
      expect(fake.count('StartSession')).toBe(1);
    });

    it.each([
      [200, 'a page in place of the answer'],
      [502, 'a load balancer\'s error page'],
    ])('says an endpoint that answers HTTP %i with HTML is not the SSM API (%s): exit 6', async (status) => {
      fake.reply = () => ({ status, contentType: 'text/html', body: '<html><body>Bad Gateway</body></html>' });
      const api = await createSsmApi(config());
      const err = await rejection(api.startSession(request));
      expect(err.exitCode).toBe(ExitCode.Network);
      expect(err.message).toContain(`it answered HTTP ${status} with something other than the SSM API's reply`);
      expect(err.serviceFault).toBe(status >= 500);
    });

    it('names the AWS_SDK_UA_APP_ID application in the User-Agent, as the SDK does', async () => {
      process.env.AWS_SDK_UA_APP_ID = 'billing-42';
      const api = await createSsmApi(config());
      await api.startSession(request);
      expect(String(fake.requests[0].headers['user-agent'])).toMatch(/(^| )app\/billing-42( |$)/);
    });

    it('waits as long as X-Amz-Retry-After asks before trying again', async () => {
      fake.reply = (_op, _body, count) => (count === 1 ? { ...awsError('ServiceUnavailableException', 'busy', 503), headers: { 'x-amz-retry-after': '700' } } : ok());
      const api = await createSsmApi(config());
      await expect(api.startSession(request)).resolves.toMatchObject({ tokenValue: TOKEN });
      expect(fake.count('StartSession')).toBe(2);
      expect(fake.requests[1].at - fake.requests[0].at).toBeGreaterThan(600);
    });

    it("takes the error code from the body's __type before X-Amzn-ErrorType, as the SDK does for JSON 1.1", async () => {
      fake.reply = () => ({ ...awsError('TargetNotConnected', 'i-0123456789abcdef0 is not connected.'), headers: { 'x-amzn-errortype': 'ThrottlingException' } });
      const api = await createSsmApi(config());
      const err = await rejection(api.startSession(request));
      expect(err.exitCode).toBe(ExitCode.TargetUnavailable);
      expect(fake.count('StartSession')).toBe(1);
    });

    it('reads an answer of JSON null as one without the session: exit 8', async () => {
      fake.reply = () => ({ status: 200, body: 'null' });
      const api = await createSsmApi(config());
      const err = await rejection(api.startSession(request));
      expect(err.exitCode).toBe(ExitCode.Protocol);
      expect(err.message).toContain('StartSession answered without SessionId, StreamUrl, TokenValue');
    });

    it('maps a refused connection to exit 6 naming the endpoint', async () => {
      const url = await closedPortUrl();
      const api = await createSsmApi(config({ endpointUrl: url }));
      const err = await rejection(api.startSession(request));
      expect(err.exitCode).toBe(ExitCode.Network);
      expect(err.message).toContain(`cannot reach the SSM endpoint ${url}`);
      expect(err.message).toContain('ECONNREFUSED');
    });

    it('does not hang on an endpoint that never answers', async () => {
      const silent = await startSilentServer();
      try {
        const api = await createSsmApi(config({ endpointUrl: silent.url, timeouts: { connectMs: 300, requestMs: 300, callMs: 1000 } }));
        const started = performance.now();
        const err = await rejection(api.startSession(request));
        expect(err.exitCode).toBe(ExitCode.Network);
        expect(performance.now() - started).toBeLessThan(2000);
      } finally {
        await silent.close();
      }
    });

    it('never logs the token or the secret key, even at -vvv with a log file', async () => {
      const stderr = { text: '', write(s: string) { this.text += s; return true; } };
      const logFile = join(home, 'proxy.log');
      const logger = createLogger({ verbose: 3, logFile, stderr });
      const api = await createSsmApi(config({ logger }));
      const start = await api.startSession(request);
      logger.debug(`debugging: ${JSON.stringify(start)}`);
      await api.resumeSession(start.sessionId);
      await api.terminateSession(start.sessionId);
      logger.error(`OpenDataChannel {"TokenValue":"${TOKEN}"}`);
      logger.close();
      const everything = stderr.text + readFileSync(logFile, 'utf8');
      expect(everything).toContain('StartSession i-0123456789abcdef0');
      expect(everything).not.toContain(TOKEN);
      expect(everything).not.toContain(SECRET_KEY);
    });
  });

  describe('resumeSession', () => {
    beforeEach(useStaticCredentials);

    it('returns a fresh token and stream URL', async () => {
      fake.reply = (op) => (op === 'ResumeSession' ? ok({ TokenValue: 'fresh-token-0001', StreamUrl: 'wss://new.example/x' }) : ok());
      const api = await createSsmApi(config());
      const resumed = await api.resumeSession('alice-0a1b2c3d4e5f67890');
      expect(resumed).toEqual({ sessionId: 'alice-0a1b2c3d4e5f67890', streamUrl: 'wss://new.example/x', tokenValue: 'fresh-token-0001' });
      expect(fake.requests[0].body).toEqual({ SessionId: 'alice-0a1b2c3d4e5f67890' });
      expect(fake.requests[0].headers['x-amz-target']).toBe('AmazonSSM.ResumeSession');
    });

    it('falls back to the stream URL from StartSession when none is returned', async () => {
      fake.reply = (op) => (op === 'ResumeSession' ? ok({ StreamUrl: undefined, TokenValue: 'fresh-token-0002' }) : ok());
      const api = await createSsmApi(config());
      const start = await api.startSession(request);
      const resumed = await api.resumeSession(start.sessionId);
      expect(resumed).toEqual({ sessionId: start.sessionId, streamUrl: start.streamUrl, tokenValue: 'fresh-token-0002' });
    });

    it("returns '' as the stream URL for a session it did not start", async () => {
      fake.reply = () => ok({ StreamUrl: undefined });
      const api = await createSsmApi(config());
      expect(await api.resumeSession('other-session')).toMatchObject({ streamUrl: '' });
    });

    it("returns 'timed-out' when the service sends no token", async () => {
      fake.reply = () => ok({ TokenValue: undefined, StreamUrl: undefined });
      const api = await createSsmApi(config());
      expect(await api.resumeSession('alice-0a1b2c3d4e5f67890')).toBe('timed-out');
    });

    it('maps DoesNotExistException to exit 9', async () => {
      fake.reply = () => awsError('DoesNotExistException', 'Session alice-0a1b2c3d4e5f67890 does not exist');
      const api = await createSsmApi(config());
      const err = await rejection(api.resumeSession('alice-0a1b2c3d4e5f67890'));
      expect(err.exitCode).toBe(ExitCode.ConnectionLost);
      expect(err.code).toBe('DoesNotExistException');
      expect(err.message).toContain('session alice-0a1b2c3d4e5f67890 no longer exists');
    });

    it("stops retrying within a call once the client's retry quota is spent, as the SDK (30 failing calls: 65 requests)", async () => {
      fake.reply = () => awsError('InternalServerError', 'down', 500);
      const api = await createSsmApi(config());
      for (let i = 0; i < 30; i++) expect((await rejection(api.resumeSession('s-1'))).serviceFault).toBe(true);
      // 500 tokens, 14 per retry: 35 retries, then one attempt per call.
      expect(fake.count('ResumeSession')).toBe(30 + 35);
    });

    it('reloads credentials once after an expired-token error', async () => {
      fake.reply = (_op, _body, count) => (count === 1 ? awsError('ExpiredTokenException', 'The security token included in the request is expired') : ok());
      const api = await createSsmApi(config());
      await expect(api.resumeSession('s-1')).resolves.toMatchObject({ tokenValue: TOKEN });
      expect(fake.count('ResumeSession')).toBe(2);
    });

    it('gives up with exit 3 when the reloaded credentials fail too', async () => {
      fake.reply = () => awsError('ExpiredTokenException', 'expired');
      const api = await createSsmApi(config());
      expect((await rejection(api.resumeSession('s-1'))).exitCode).toBe(ExitCode.Credentials);
      expect(fake.count('ResumeSession')).toBe(2);
    });
  });

  describe('terminateSession', () => {
    beforeEach(useStaticCredentials);

    it('sends TerminateSession', async () => {
      fake.reply = () => ({ status: 200, body: { SessionId: 's-1' } });
      const api = await createSsmApi(config());
      await api.terminateSession('s-1');
      expect(fake.requests).toHaveLength(1);
      expect(fake.requests[0].headers['x-amz-target']).toBe('AmazonSSM.TerminateSession');
      expect(fake.requests[0].body).toEqual({ SessionId: 's-1' });
    });

    it.each([
      ['AccessDeniedException', 400],
      ['DoesNotExistException', 400],
      ['InternalServerError', 500],
    ])('swallows %s, logs it at debug, and does not retry', async (code, status) => {
      fake.reply = () => awsError(code, 'nope', status);
      const lines: string[] = [];
      const logger = createLogger({ verbose: 2, stderr: { write: (s: string) => lines.push(s) } });
      const api = await createSsmApi(config({ logger }));
      await expect(api.terminateSession('s-1')).resolves.toBeUndefined();
      expect(fake.count('TerminateSession')).toBe(1);
      expect(lines.some((l) => l.startsWith('ssm-proxy: debug: TerminateSession s-1 ignored') && l.includes(code))).toBe(true);
    });

    it('sends TerminateSession on a connection of its own: a kept-alive one gone stale does not lose it', async () => {
      // A connection that served a request before is reset when used again (a NAT that forgot it).
      fake.reply = (_op, _body, _count, reused) => (reused ? 'reset' : ok());
      const api = await createSsmApi(config());
      const start = await api.startSession(request);
      await api.terminateSession(start.sessionId);
      expect(fake.count('TerminateSession')).toBe(1);
      expect(fake.requests.at(-1)?.connection).not.toBe(fake.requests[0].connection);
    });

    it('returns within its timeout when the endpoint does not answer', async () => {
      fake.reply = () => 'hang';
      const api = await createSsmApi(config());
      const started = performance.now();
      await expect(api.terminateSession('s-1', 300)).resolves.toBeUndefined();
      expect(performance.now() - started).toBeLessThan(1500);
    });

    it('never throws, even without credentials', async () => {
      delete process.env.AWS_ACCESS_KEY_ID;
      delete process.env.AWS_SECRET_ACCESS_KEY;
      const api = await createSsmApi(config());
      await expect(api.terminateSession('s-1', 500)).resolves.toBeUndefined();
    });
  });
});

describe('no credentials anywhere', () => {
  it('fails with exit 3 quickly and sends nothing', async () => {
    const api = await createSsmApi(config());
    const started = performance.now();
    const err = await rejection(api.startSession(request));
    const elapsed = performance.now() - started;
    expect(err.exitCode).toBe(ExitCode.Credentials);
    expect(err.message).toMatch(/^no AWS credentials found \(.*\); run `aws configure` or `aws sso login`, or set AWS_PROFILE$/);
    expect(elapsed).toBeLessThan(1000);
    expect(fake.requests).toHaveLength(0);
  });

  it("a profile whose credentials fail says why, not just that no provider had any", async () => {
    writeFileSync(
      join(home, 'config'),
      '[profile broken]\ncredential_process = sh -c "echo secret-ish-output >&2; exit 3"\n[profile orphan]\nrole_arn = arn:aws:iam::111122223333:role/x\nsource_profile = missing\n',
    );
    const broken = await rejection((await createSsmApi(config({ profile: 'broken' }))).startSession(request));
    expect(broken.exitCode).toBe(ExitCode.Credentials);
    expect(broken.message).toMatch(/^could not load AWS credentials for profile broken \(its credential_process failed; run that command yourself to see why\); /);
    // Neither the command line nor its output: either may carry secrets.
    expect(broken.message).not.toMatch(/secret-ish-output|echo/);
    const orphan = await rejection((await createSsmApi(config({ profile: 'orphan' }))).startSession(request));
    expect(orphan.exitCode).toBe(ExitCode.Credentials);
    expect(orphan.message).toMatch(/^could not load AWS credentials for profile orphan \(Could not resolve credentials using profile: \[missing\]/);
    expect(fake.requests).toHaveLength(0);
  });

  it('gives up on a credential lookup that does not finish (a hung credential_process): exit 3', async () => {
    writeFileSync(join(home, 'config'), '[profile stuck]\ncredential_process = sleep 4\n');
    const api = await createSsmApi(config({ profile: 'stuck', timeouts: { credentialsMs: 1000 } }));
    const started = performance.now();
    const err = await rejection(api.startSession(request));
    expect(performance.now() - started).toBeLessThan(2900);
    expect(err.exitCode).toBe(ExitCode.Credentials);
    expect(err.message).toBe('no AWS credentials within 1 s for profile stuck: the lookup did not finish (a credential_process or sign-in that hangs?); check where the profile gets its credentials');
    expect(fake.requests).toHaveLength(0);
  });

  it('stays within ~2 s when instance metadata does not answer (SDK default timeout)', async () => {
    const imds = await startSilentServer();
    try {
      delete process.env.AWS_EC2_METADATA_DISABLED;
      process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = imds.url;
      const api = await createSsmApi(config());
      const started = performance.now();
      const err = await rejection(api.startSession(request));
      const elapsed = performance.now() - started;
      expect(err.exitCode).toBe(ExitCode.Credentials);
      // Token request (1 s) then the IMDSv1 fallback (1 s).
      expect(elapsed).toBeLessThan(3000);
    } finally {
      await imds.close();
    }
  });

  it('honours AWS_METADATA_SERVICE_TIMEOUT as the AWS CLI does', async () => {
    const imds = await startSilentServer();
    try {
      delete process.env.AWS_EC2_METADATA_DISABLED;
      process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = imds.url;
      process.env.AWS_METADATA_SERVICE_TIMEOUT = '0.2';
      const api = await createSsmApi(config());
      const started = performance.now();
      expect((await rejection(api.startSession(request))).exitCode).toBe(ExitCode.Credentials);
      expect(performance.now() - started).toBeLessThan(1000);
    } finally {
      await imds.close();
    }
  });
});

describe('isLoopbackUrl', () => {
  it.each([
    ['http://127.0.0.1:8080', true],
    ['http://localhost', true],
    ['http://LOCALHOST:1', true],
    ['http://[::1]:9000', true],
    ['https://ssm.eu-west-1.amazonaws.com', false],
    ['http://127.0.0.1.example.com', false],
    ['http://10.0.0.1', false],
    [undefined, false],
    ['not a url', false],
  ])('%s -> %s', (url, expected) => {
    expect(isLoopbackUrl(url)).toBe(expected);
  });
});

describe('start-up cost', () => {
  it('loads the AWS SDK only when createSsmApi runs, and hides its Node version warning', () => {
    const script = `
      import { createRequire } from 'node:module';
      const require = createRequire(import.meta.url);
      const sdkModules = () => Object.keys(require.cache).filter((k) => k.includes('@aws-sdk')).length;
      await import(${JSON.stringify(join(REPO, 'src/cli/args.ts'))});
      await import(${JSON.stringify(join(REPO, 'src/cli/log.ts'))});
      const { createSsmApi } = await import(${JSON.stringify(join(REPO, 'src/aws/ssm.ts'))});
      const before = sdkModules();
      await createSsmApi({ region: 'eu-west-1', endpointUrl: 'http://127.0.0.1:9' });
      process.stderr.write('modules ' + before + ' ' + sdkModules() + '\\n');
    `;
    const result = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: REPO,
      encoding: 'utf8',
      timeout: 30_000,
      env: { PATH: process.env.PATH, HOME: home, AWS_EC2_METADATA_DISABLED: 'true' },
    });
    expect(result.status).toBe(0);
    const match = /modules (\d+) (\d+)/.exec(result.stderr);
    expect(match).not.toBeNull();
    expect(Number(match![1])).toBe(0);
    expect(Number(match![2])).toBeGreaterThan(0);
    expect(result.stderr).not.toContain('NodeVersionSupportWarning');
    expect(result.stdout).toBe('');
  });
});
