// The SSM API (AWS JSON 1.1) called directly, for keys from the environment: the AWS SDK
// then never loads, and of a connection's start that saves the SDK's files, its
// middleware stack and its garbage (see README "Fast start"). It keeps to what the SDK
// does for these calls: SigV4, up to 3 attempts with jittered backoff for network
// errors, throttling and 5xx, and the clock-skew correction; its errors have the SDK's
// shape (`name` = the AWS error code, `$metadata.httpStatusCode`), so errors.ts reads
// both alike.
import { request as httpRequest, type Agent, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';
import { signPost, type StaticCredentials } from './sigv4.ts';

export interface JsonClientOptions {
  /** The endpoint's origin: http(s)://host[:port]. */
  endpoint: URL;
  region: string;
  credentials: StaticCredentials;
  agent: Agent;
  userAgent: string;
  /** Attempts per call, as AWS_MAX_ATTEMPTS (default 3). */
  maxAttempts: number;
  trace?: (line: string) => void;
}

export interface CallOptions {
  signal: AbortSignal;
  /** TCP connect, per attempt. */
  connectMs: number;
  /** The socket idle this long in an attempt ends it. */
  requestMs: number;
  /** Overrides the client's attempts. */
  maxAttempts?: number;
}

/** An AWS error as the SDK throws it: `name` the error code. */
export interface AwsServiceError extends Error {
  $fault: 'client' | 'server';
  $metadata: { httpStatusCode: number; requestId?: string };
}

const CLOCK_SKEW_CODES = new Set(['AccessDeniedException', 'AuthFailure', 'InvalidSignatureException', 'RequestExpired', 'RequestInTheFuture', 'RequestTimeTooSkewed', 'SignatureDoesNotMatch']);
const THROTTLING_CODES = new Set([
  'BandwidthLimitExceeded',
  'EC2ThrottledException',
  'LimitExceededException',
  'PriorRequestNotComplete',
  'ProvisionedThroughputExceededException',
  'RequestLimitExceeded',
  'RequestThrottled',
  'RequestThrottledException',
  'SlowDown',
  'ThrottledException',
  'Throttling',
  'ThrottlingException',
  'TooManyRequestsException',
  'TransactionInProgressException',
]);
const TRANSIENT_NAMES = new Set(['TimeoutError', 'RequestTimeout', 'RequestTimeoutException']);
const TRANSIENT_STATUS = new Set([500, 502, 503, 504]);
const TRANSIENT_SYSTEM_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);
/** A clock this far off the server's is corrected (and the call that showed it retried). */
const SKEW_THRESHOLD_MS = 300_000;
const BASE_DELAY_MS = 50;
const THROTTLING_DELAY_MS = 1_000;
const MAX_DELAY_MS = 20_000;
/** An answer larger than this is not the SSM API's. */
const MAX_BODY_BYTES = 1024 * 1024;

function timeoutError(message: string): Error {
  return Object.assign(new Error(message), { name: 'TimeoutError' });
}

function abortError(): Error {
  return Object.assign(new Error('Request aborted'), { name: 'AbortError' });
}

function serviceError(code: string, message: string, status: number, requestId: string | undefined): AwsServiceError {
  return Object.assign(new Error(message), {
    name: code,
    $fault: status >= 500 ? ('server' as const) : ('client' as const),
    $metadata: { httpStatusCode: status, ...(requestId ? { requestId } : {}) },
  });
}

/** The AWS error code of an error answer: X-Amzn-ErrorType, else the body's __type or code; namespace and suffix cut. */
function errorCode(header: string | undefined, body: Record<string, unknown> | undefined): string | undefined {
  const raw = header ?? (typeof body?.__type === 'string' ? body.__type : typeof body?.code === 'string' ? body.code : typeof body?.Code === 'string' ? body.Code : undefined);
  if (!raw) return undefined;
  const name = raw.split(':')[0];
  return name.slice(name.lastIndexOf('#') + 1) || undefined;
}

function parseJson(text: string): { ok: true; value: unknown } | { ok: false; why: string } {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (err) {
    return { ok: false, why: (err as Error).message };
  }
}

/** Node's http client, an error code and whether trying again may help: the SDK's rules. */
function isRetryable(err: unknown, skewCorrected: boolean): boolean {
  const e = err as { name?: unknown; code?: unknown; message?: unknown; $metadata?: { httpStatusCode?: number } };
  if (e.name === 'AbortError') return false;
  const name = typeof e.name === 'string' ? e.name : '';
  const status = e.$metadata?.httpStatusCode;
  if (status === 429 || THROTTLING_CODES.has(name)) return true;
  if (CLOCK_SKEW_CODES.has(name) && skewCorrected) return true;
  if (name === 'InvalidSignatureException' && typeof e.message === 'string' && e.message.includes('Signature expired')) return true;
  if (TRANSIENT_NAMES.has(name) || (status !== undefined && TRANSIENT_STATUS.has(status))) return true;
  return typeof e.code === 'string' && TRANSIENT_SYSTEM_CODES.has(e.code);
}

function isThrottling(err: unknown): boolean {
  const e = err as { name?: unknown; $metadata?: { httpStatusCode?: number } };
  return e.$metadata?.httpStatusCode === 429 || (typeof e.name === 'string' && THROTTLING_CODES.has(e.name));
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(abortError());
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortError());
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

export class SsmJsonClient {
  /** Server clock minus ours, learnt from the Date of answers when ours is off by minutes. */
  private clockOffsetMs = 0;
  private readonly secure: boolean;
  private readonly host: string;

  constructor(private readonly o: JsonClientOptions) {
    this.secure = o.endpoint.protocol === 'https:';
    // URL.host leaves out the scheme's default port, as a Host header does.
    this.host = o.endpoint.host;
  }

  /** `AmazonSSM.<operation>` with `input`; its answer's JSON object. Rejects with the last attempt's error. */
  async call(operation: string, input: Record<string, unknown>, opts: CallOptions): Promise<Record<string, unknown>> {
    const body = JSON.stringify(input);
    const attempts = Math.max(1, opts.maxAttempts ?? this.o.maxAttempts);
    for (let attempt = 1; ; attempt++) {
      const offsetBefore = this.clockOffsetMs;
      try {
        return await this.attempt(operation, body, opts);
      } catch (err) {
        if (opts.signal.aborted) throw abortError();
        const skewCorrected = this.clockOffsetMs !== offsetBefore;
        if (attempt >= attempts || !isRetryable(err, skewCorrected)) throw err;
        const base = isThrottling(err) ? THROTTLING_DELAY_MS : BASE_DELAY_MS;
        const delay = Math.floor(Math.random() * Math.min(MAX_DELAY_MS, base * 2 ** (attempt - 1)));
        const e = err as { name?: string; code?: string };
        this.o.trace?.(`${operation} attempt ${attempt} failed (${e.code ?? e.name}); trying again in ${delay} ms`);
        await sleep(delay, opts.signal);
      }
    }
  }

  private attempt(operation: string, body: string, opts: CallOptions): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      if (opts.signal.aborted) return reject(abortError());
      const headers = signPost({
        host: this.host,
        headers: { 'content-type': 'application/x-amz-json-1.1', 'content-length': String(Buffer.byteLength(body)), 'x-amz-target': `AmazonSSM.${operation}` },
        body,
        region: this.o.region,
        service: 'ssm',
        credentials: this.o.credentials,
        date: new Date(Date.now() + this.clockOffsetMs),
      });
      let connectTimer: NodeJS.Timeout | undefined;
      let settled = false;
      const finish = (err: Error | undefined, value?: Record<string, unknown>) => {
        if (settled) return;
        settled = true;
        clearTimeout(connectTimer);
        opts.signal.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve(value!);
      };
      const onAbort = () => {
        req.destroy();
        finish(abortError());
      };
      const send = this.secure ? httpsRequest : httpRequest;
      // Node throws here for a header it cannot send (a key or token with a line break).
      let req: ReturnType<typeof httpRequest>;
      try {
        req = send({
          protocol: this.o.endpoint.protocol,
          hostname: this.o.endpoint.hostname.replace(/^\[(.*)\]$/, '$1'),
          port: this.o.endpoint.port || (this.secure ? 443 : 80),
          method: 'POST',
          path: '/',
          agent: this.o.agent,
          headers: { ...headers, 'user-agent': this.o.userAgent },
        });
      } catch (err) {
        return finish(err as Error);
      }
      opts.signal.addEventListener('abort', onAbort, { once: true });
      req.on('socket', (socket: Socket) => {
        if (!socket.connecting) return;
        connectTimer = setTimeout(() => {
          req.destroy();
          finish(timeoutError(`Socket timed out without establishing a connection within ${opts.connectMs} ms`));
        }, opts.connectMs);
        // A TLS socket made over a TCP connection still under way may say 'secureConnect' only.
        const connected = () => clearTimeout(connectTimer);
        socket.once('connect', connected);
        socket.once('secureConnect', connected);
      });
      req.setTimeout(opts.requestMs, () => {
        req.destroy();
        finish(timeoutError(`Connection timed out after ${opts.requestMs} ms`));
      });
      req.on('error', (err) => finish(err));
      req.on('response', (res: IncomingMessage) => {
        clearTimeout(connectTimer);
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_BODY_BYTES) {
            req.destroy();
            finish(serviceError('DeserializationError', `an answer larger than ${MAX_BODY_BYTES} bytes Deserialization error: not the SSM API`, res.statusCode ?? 0, undefined));
            return;
          }
          chunks.push(chunk);
        });
        res.on('error', (err) => finish(err));
        res.on('end', () => {
          this.learnClock(res.headers.date);
          try {
            finish(undefined, this.answer(res, Buffer.concat(chunks).toString('utf8')));
          } catch (err) {
            finish(err as Error);
          }
        });
      });
      req.end(body);
    });
  }

  /** The answer's JSON object, or throws the error it carries. */
  private answer(res: IncomingMessage, text: string): Record<string, unknown> {
    const status = res.statusCode ?? 0;
    const requestId = [res.headers['x-amzn-requestid'], res.headers['x-amz-request-id']].find((v): v is string => typeof v === 'string');
    const parsed = text.trim() === '' ? ({ ok: true, value: {} } as const) : parseJson(text);
    const object = parsed.ok && parsed.value !== null && typeof parsed.value === 'object' && !Array.isArray(parsed.value) ? (parsed.value as Record<string, unknown>) : undefined;
    if (status >= 200 && status < 300) {
      if (object) return object;
      const why = parsed.ok ? 'not a JSON object' : parsed.why;
      throw serviceError('DeserializationError', `${why} Deserialization error: the answer is not the SSM API's JSON`, status, requestId);
    }
    const header = res.headers['x-amzn-errortype'];
    const code = errorCode(typeof header === 'string' ? header : undefined, object);
    if (!object && !code) {
      const why = parsed.ok ? 'not a JSON object' : parsed.why;
      throw serviceError('DeserializationError', `${why} Deserialization error: the error answer is not the SSM API's JSON`, status, requestId);
    }
    const message = [object?.message, object?.Message, object?.errorMessage].find((m): m is string => typeof m === 'string') ?? '';
    throw serviceError(code ?? `UnknownError`, message || (code ?? `HTTP ${status}`), status, requestId);
  }

  /**
   * The SDK's clock-skew correction: when the answer's Date is 5 minutes or more from our
   * clock (with the offset already learnt), sign with the server's time from now on.
   */
  private learnClock(dateHeader: string | undefined): void {
    if (!dateHeader) return;
    const server = Date.parse(dateHeader);
    if (!Number.isFinite(server)) return;
    const now = Date.now();
    if (Math.abs(now + this.clockOffsetMs - server) < SKEW_THRESHOLD_MS) return;
    this.clockOffsetMs = server - now;
    this.o.trace?.(`the SSM endpoint's clock is ${Math.round(this.clockOffsetMs / 1000)} s from ours; signing with its time`);
  }
}
