// Fake SSM control plane (AWS JSON 1.1 over HTTP on 127.0.0.1): StartSession, ResumeSession and
// TerminateSession with real SigV4 checking, AWS-shaped errors, fault injection and a call log.
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { simHttpServer } from './http-server.ts';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import type { SessionRegistry, TargetConfig } from './sessions.ts';
import { verifySigV4, type SimCredential } from './sigv4.ts';

export type { TargetConfig } from './sessions.ts';
export type { SimCredential } from './sigv4.ts';

/**
 * The default credential; fake values, only meaningful to this simulator. Not frozen: the SDK
 * tags credential objects it is given.
 */
export const TEST_CREDENTIALS: { readonly accessKeyId: string; readonly secretAccessKey: string } = {
  accessKeyId: 'AKIASIMULATOR0000001',
  secretAccessKey: 'simulator/secret/key/not+a+real+aws+key',
};

export const DEFAULT_ACCOUNT_ID = '123456789012';
export const DEFAULT_CALLER = 'sim-user';
const TARGET_PREFIX = 'AmazonSSM.';
const OPERATIONS = new Set(['StartSession', 'ResumeSession', 'TerminateSession']);
const MAX_BODY = 1 << 20;
const REDACTED = '<redacted>';

export interface FakeSsmApiOptions {
  registry: SessionRegistry;
  /** Accepted credentials. Default: [TEST_CREDENTIALS]. */
  credentials?: SimCredential[];
  /** Region the credential scope must name. Default 'us-east-1'. */
  region?: string;
  /** Known (connected) targets. When omitted every target is accepted, on 127.0.0.1. */
  targets?: Record<string, TargetConfig>;
  /** Documents StartSession accepts. Default ['AWS-StartSSHSession']. */
  allowedDocuments?: string[];
  /** Targets the caller is not authorised for: StartSession gets AccessDeniedException. */
  denyTargets?: string[];
  /** The first `calls` matching, correctly signed calls get ThrottlingException. */
  throttle?: { calls: number; operations?: string[] };
  /** The gateway's URL for a session. */
  streamUrl: (sessionId: string) => string;
  /** Server clock for signature checks and the Date header. Default: the registry's clock. */
  now?: () => number;
  accountId?: string;
  /** Error body shape, to exercise clients that parse errors themselves. */
  errorStyle?: { namespaced?: boolean; messageKey?: 'message' | 'Message' };
  /** Each answer leaves this long after its request arrived: a distant region's round trips. Default 0. */
  answerDelayMs?: number;
  /**
   * Requests on a connection are taken no sooner than this long after it was accepted:
   * the TCP and TLS handshakes of a distant endpoint. Default 0.
   */
  connectDelayMs?: number;
  /** Serve https:// with this key and certificate instead of http://. */
  tls?: { key: string; cert: string };
}

export interface RecordedCall {
  /** 'StartSession' etc.; the raw X-Amz-Target (or '') when it names no known operation. */
  operation: string;
  /** StartSession's Target. */
  target?: string;
  /** The request's SessionId, or the new one for a successful StartSession. */
  sessionId?: string;
  status: number;
  errorCode?: string;
  errorMessage?: string;
  at: number;
  accessKeyId?: string;
  /** Header names the caller signed (after a successful signature check). */
  signedHeaders?: string[];
  contentType?: string;
  userAgent?: string;
  /** Parsed request JSON, or the raw text when it did not parse. */
  body: unknown;
  /** Response JSON with TokenValue replaced by '<redacted>'. */
  response?: unknown;
}

export type InjectedReply =
  | { error: string; message?: string; status?: number }
  | { body: Record<string, unknown> };

interface Reply {
  status: number;
  body: Record<string, unknown>;
  errorCode?: string;
  errorMessage?: string;
}

class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function headerString(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(',') : v;
}

export class FakeSsmApi {
  readonly calls: RecordedCall[] = [];
  readonly registry: SessionRegistry;
  readonly region: string;
  readonly accountId: string;
  private readonly opts: FakeSsmApiOptions;
  private readonly credentials: SimCredential[];
  private readonly allowedDocuments: Set<string>;
  private readonly denyTargets: Set<string>;
  private readonly now: () => number;
  private throttleLeft: number;
  private readonly injected = new Map<string, InjectedReply[]>();
  private connectionAge: (socket: object) => number = () => Infinity;
  private server?: Server;
  private baseUrl?: string;

  constructor(opts: FakeSsmApiOptions) {
    this.opts = opts;
    this.registry = opts.registry;
    this.region = opts.region ?? 'us-east-1';
    this.accountId = opts.accountId ?? DEFAULT_ACCOUNT_ID;
    this.credentials = opts.credentials ?? [{ accessKeyId: TEST_CREDENTIALS.accessKeyId, secretAccessKey: TEST_CREDENTIALS.secretAccessKey }];
    this.allowedDocuments = new Set(opts.allowedDocuments ?? ['AWS-StartSSHSession']);
    this.denyTargets = new Set(opts.denyTargets ?? []);
    this.now = opts.now ?? opts.registry.now;
    this.throttleLeft = opts.throttle?.calls ?? 0;
  }

  get url(): string {
    if (!this.baseUrl) throw new Error('FakeSsmApi: not listening');
    return this.baseUrl;
  }

  listen(port = 0): Promise<string> {
    if (this.server) return Promise.reject(new Error('FakeSsmApi: already listening'));
    const tls = this.opts.tls;
    const { server, ageOf } = simHttpServer((req, res) => this.handle(req, res), tls);
    this.connectionAge = ageOf;
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        const addr = server.address() as AddressInfo;
        this.baseUrl = `${tls ? 'https' : 'http'}://127.0.0.1:${addr.port}`;
        resolve(this.baseUrl);
      });
    });
  }

  close(): Promise<void> {
    const server = this.server;
    if (!server) return Promise.resolve();
    this.server = undefined;
    return new Promise((resolve) => {
      server.close(() => resolve());
      // SDK clients keep connections alive; do not wait for them to idle out.
      server.closeAllConnections();
    });
  }

  count(operation: string): number {
    return this.calls.filter((c) => c.operation === operation).length;
  }

  /** Queue replies for the next correctly signed calls of `operation`, ahead of normal handling. */
  injectNext(operation: string, reply: InjectedReply, times = 1): void {
    const q = this.injected.get(operation) ?? [];
    for (let i = 0; i < times; i++) q.push(reply);
    this.injected.set(operation, q);
  }

  // -------------------------------------------------------------------------------------------

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooBig = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) tooBig = true;
      else chunks.push(c);
    });
    req.on('error', () => res.destroy());
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const rawTarget = headerString(req, 'x-amz-target') ?? '';
      const operation =
        rawTarget.startsWith(TARGET_PREFIX) && OPERATIONS.has(rawTarget.slice(TARGET_PREFIX.length))
          ? rawTarget.slice(TARGET_PREFIX.length)
          : rawTarget;
      const text = body.toString('utf8');
      let parsed: unknown = text;
      let parseOk = false;
      try {
        parsed = text === '' ? {} : JSON.parse(text);
        parseOk = true;
      } catch {
        // Reported as SerializationException below, once the caller is authenticated.
      }
      const call: RecordedCall = {
        operation,
        status: 0,
        at: this.now(),
        contentType: headerString(req, 'content-type'),
        userAgent: headerString(req, 'x-amz-user-agent') ?? headerString(req, 'user-agent'),
        body: parsed,
      };
      if (isPlainObject(parsed)) {
        if (typeof parsed.Target === 'string') call.target = parsed.Target;
        if (typeof parsed.SessionId === 'string') call.sessionId = parsed.SessionId;
      }
      let reply: Reply;
      try {
        reply = this.dispatch(req, body, operation, parsed, parseOk, tooBig, call);
      } catch (e) {
        const err = e instanceof ApiError ? e : new ApiError('InternalServerError', 'Internal error', 500);
        reply = this.errorReply(err.code, err.message, err.status);
      }
      call.status = reply.status;
      if (reply.errorCode !== undefined) {
        call.errorCode = reply.errorCode;
        call.errorMessage = reply.errorMessage;
      } else {
        call.response = 'TokenValue' in reply.body ? { ...reply.body, TokenValue: REDACTED } : reply.body;
        if (operation === 'StartSession' && typeof reply.body.SessionId === 'string') {
          call.sessionId = reply.body.SessionId;
        }
      }
      this.calls.push(call);
      const delay = Math.max(0, (this.opts.connectDelayMs ?? 0) - this.connectionAge(req.socket)) + (this.opts.answerDelayMs ?? 0);
      if (delay > 0) setTimeout(() => this.send(res, reply), delay);
      else this.send(res, reply);
    });
  }

  private dispatch(
    req: IncomingMessage,
    body: Buffer,
    operation: string,
    parsed: unknown,
    parseOk: boolean,
    tooBig: boolean,
    call: RecordedCall,
  ): Reply {
    if (tooBig) throw new ApiError('SerializationException', 'Request body too large');

    const auth = verifySigV4(
      { method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers, body },
      { credentials: this.credentials, region: this.region, service: 'ssm', now: this.now() },
    );
    if (!auth.ok) throw new ApiError(auth.code, auth.message, auth.status);
    call.accessKeyId = auth.credential.accessKeyId;
    call.signedHeaders = auth.signedHeaders;
    const caller = auth.credential.caller ?? DEFAULT_CALLER;

    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'POST' || path !== '/' || !OPERATIONS.has(operation)) {
      throw new ApiError('UnknownOperationException', operation ? `Unknown operation ${operation}` : 'Missing X-Amz-Target');
    }
    if (!parseOk || !isPlainObject(parsed)) {
      throw new ApiError('SerializationException', 'Request body is not a JSON object');
    }

    if (this.throttleLeft > 0 && (!this.opts.throttle?.operations || this.opts.throttle.operations.includes(operation))) {
      this.throttleLeft--;
      throw new ApiError('ThrottlingException', 'Rate exceeded');
    }

    const queued = this.injected.get(operation);
    const injected = queued?.shift();
    if (injected) {
      if ('error' in injected) {
        throw new ApiError(injected.error, injected.message ?? injected.error, injected.status ?? 400);
      }
      return { status: 200, body: injected.body };
    }

    switch (operation) {
      case 'StartSession':
        return { status: 200, body: this.startSession(parsed, caller) };
      case 'ResumeSession':
        return { status: 200, body: this.resumeSession(parsed) };
      default:
        return { status: 200, body: this.terminateSession(parsed) };
    }
  }

  private startSession(b: Record<string, unknown>, caller: string): Record<string, unknown> {
    // Wrong JSON types fail deserialisation before any constraint is looked at.
    for (const k of ['Target', 'DocumentName', 'Reason'] as const) {
      if (b[k] !== undefined && b[k] !== null && typeof b[k] !== 'string') {
        throw new ApiError('SerializationException', `${k}: expected a string`);
      }
    }
    let parameters: Record<string, string[]> = {};
    if (b.Parameters !== undefined && b.Parameters !== null) {
      if (!isPlainObject(b.Parameters)) throw new ApiError('SerializationException', 'Parameters: expected a map');
      for (const [k, v] of Object.entries(b.Parameters)) {
        if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) {
          throw new ApiError('SerializationException', `Parameters.${k}: expected a list of strings`);
        }
      }
      parameters = b.Parameters as Record<string, string[]>;
    }
    const target = b.Target as string | undefined | null;
    const documentName = (b.DocumentName as string | undefined | null) ?? 'SSM-SessionManagerRunShell';
    const reason = b.Reason as string | undefined | null;

    const problems: string[] = [];
    if (target === undefined || target === null) {
      problems.push("Value null at 'target' failed to satisfy constraint: Member must not be null");
    } else if (target.length < 1 || target.length > 400) {
      problems.push(
        `Value '${target}' at 'target' failed to satisfy constraint: Member must have length ` +
          (target.length < 1 ? 'greater than or equal to 1' : 'less than or equal to 400'),
      );
    }
    if (!/^[a-zA-Z0-9_\-.:/]{3,128}$/.test(documentName)) {
      problems.push(
        `Value '${documentName}' at 'documentName' failed to satisfy constraint: ` +
          'Member must satisfy regular expression pattern: ^[a-zA-Z0-9_\\-.:/]{3,128}$',
      );
    }
    if (typeof reason === 'string' && (reason.length < 1 || reason.length > 256)) {
      problems.push(
        `Value '${reason}' at 'reason' failed to satisfy constraint: Member must have length ` +
          (reason.length < 1 ? 'greater than or equal to 1' : 'less than or equal to 256'),
      );
    }
    if (problems.length > 0) {
      const n = problems.length;
      throw new ApiError('ValidationException', `${n} validation error${n > 1 ? 's' : ''} detected: ${problems.join('; ')}`);
    }
    const t = target as string;

    if (this.denyTargets.has(t)) {
      const resource = t.startsWith('mi-')
        ? `arn:aws:ssm:${this.region}:${this.accountId}:managed-instance/${t}`
        : `arn:aws:ec2:${this.region}:${this.accountId}:instance/${t}`;
      throw new ApiError(
        'AccessDeniedException',
        `User: arn:aws:iam::${this.accountId}:user/${caller} is not authorized to perform: ssm:StartSession ` +
          `on resource: ${resource} because no identity-based policy allows the ssm:StartSession action`,
      );
    }
    if (!this.allowedDocuments.has(documentName)) {
      throw new ApiError('InvalidDocument', `Document with name ${documentName} does not exist.`);
    }
    let targetConfig: TargetConfig = {};
    if (this.opts.targets) {
      if (!Object.hasOwn(this.opts.targets, t)) throw new ApiError('TargetNotConnected', `${t} is not connected.`);
      targetConfig = this.opts.targets[t];
    }

    if (documentName === 'AWS-StartSSHSession') {
      for (const k of Object.keys(parameters)) {
        if (k !== 'portNumber') {
          throw new ApiError('InvalidParameters', `Parameter "${k}" is not defined in document ${documentName}.`);
        }
      }
    }
    const portParam = parameters.portNumber;
    if (portParam !== undefined && (portParam.length !== 1 || !/^\d{1,5}$/.test(portParam[0]))) {
      throw new ApiError(
        'InvalidParameters',
        `Parameter "portNumber" "${portParam.join(',')}" failed to match the allowed pattern ^\\d{1,5}$.`,
      );
    }
    const port = targetConfig.port ?? Number(portParam?.[0] ?? '22');
    const host = targetConfig.host ?? '127.0.0.1';

    const { record, token } = this.registry.create(
      t,
      documentName,
      parameters,
      port,
      host,
      typeof reason === 'string' ? reason : undefined,
      caller,
    );
    return { SessionId: record.sessionId, TokenValue: token, StreamUrl: this.opts.streamUrl(record.sessionId) };
  }

  private sessionIdOf(b: Record<string, unknown>): string {
    const id = b.SessionId;
    if (id !== undefined && id !== null && typeof id !== 'string') {
      throw new ApiError('SerializationException', 'SessionId: expected a string');
    }
    if (id === undefined || id === null) {
      throw new ApiError(
        'ValidationException',
        "1 validation error detected: Value null at 'sessionId' failed to satisfy constraint: Member must not be null",
      );
    }
    if (id.length < 1 || id.length > 96) {
      throw new ApiError(
        'ValidationException',
        `1 validation error detected: Value '${id}' at 'sessionId' failed to satisfy constraint: Member must have length ` +
          (id.length < 1 ? 'greater than or equal to 1' : 'less than or equal to 96'),
      );
    }
    return id;
  }

  private resumeSession(b: Record<string, unknown>): Record<string, unknown> {
    const id = this.sessionIdOf(b);
    const r = this.registry.resume(id);
    if ('error' in r) throw new ApiError('DoesNotExistException', `Session with id ${id} does not exist.`);
    return { SessionId: id, TokenValue: r.token, StreamUrl: this.opts.streamUrl(id) };
  }

  private terminateSession(b: Record<string, unknown>): Record<string, unknown> {
    const id = this.sessionIdOf(b);
    // Idempotent like the real service: unknown or finished sessions still answer 200.
    this.registry.terminate(id, 'TerminateSession');
    return { SessionId: id };
  }

  private errorReply(code: string, message: string, status: number): Reply {
    const style = this.opts.errorStyle ?? {};
    const type = style.namespaced ? `com.amazonaws.ssm#${code}` : code;
    return {
      status,
      body: { __type: type, [style.messageKey ?? 'message']: message },
      errorCode: code,
      errorMessage: message,
    };
  }

  private send(res: ServerResponse, reply: Reply): void {
    const payload = Buffer.from(JSON.stringify(reply.body));
    const headers: Record<string, string | number> = {
      'content-type': 'application/x-amz-json-1.1',
      'content-length': payload.length,
      'x-amzn-requestid': randomUUID(),
      // The SDK reads Date to correct clock skew, so it must follow the simulated clock.
      date: new Date(this.now()).toUTCString(),
    };
    if (reply.errorCode !== undefined) headers['x-amzn-errortype'] = reply.errorCode;
    res.writeHead(reply.status, headers);
    res.end(payload);
  }
}
