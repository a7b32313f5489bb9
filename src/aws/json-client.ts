// The SSM API (AWS JSON 1.1) called directly, for keys from the environment: the AWS SDK
// then never loads, and of a connection's start that saves the SDK's files, its
// middleware stack and its garbage (see README "Fast start"). It keeps to what the SDK
// does for these calls: SigV4, up to 3 attempts with jittered backoff for network
// errors, throttling and 5xx, Retry-After hints, the per-client retry quota and the
// clock-skew correction; error codes are read where the SDK reads them, and its errors
// have the SDK's shape (`name` = the AWS error code, `$metadata.httpStatusCode`), so
// errors.ts reads both alike.
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
  /** Another agent than the client's, for this call. */
  agent?: Agent;
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
  /** From Retry-After or X-Amz-Retry-After: when the service asks to be tried again (epoch ms). */
  $retryAfter?: number;
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
/** The SDK's retry quota per client: retries spend it, successes refill it. */
const RETRY_CAPACITY = 500;
const RETRY_COST = 14;
const THROTTLING_RETRY_COST = 5;
/** A retry hint from the service stretches the backoff by at most this much. */
const MAX_HINT_EXTRA_MS = 5_000;
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

/** An error code as the SDK cleans it: the first of a list, no `:` suffix, no `namespace#`. */
function sanitizeCode(raw: unknown): string | undefined {
  if (typeof raw !== 'string' && typeof raw !== 'number') return undefined;
  let code = String(raw).split(',')[0].split(':')[0];
  if (code.includes('#')) code = code.split('#')[1];
  return code || undefined;
}

/** The AWS error code of an error answer, looked for where the SDK looks (JSON 1.1): `__type`, `code` (any case), X-Amzn-ErrorType. */
function errorCode(header: string | undefined, body: Record<string, unknown> | undefined): string | undefined {
  if (body?.__type !== undefined) return sanitizeCode(body.__type);
  const codeKey = body && Object.keys(body).find((k) => k.toLowerCase() === 'code');
  if (codeKey !== undefined && body![codeKey] !== undefined) return sanitizeCode(body![codeKey]);
  return header !== undefined ? sanitizeCode(header) : undefined;
}

/** Retry-After (seconds or an HTTP date) or X-Amz-Retry-After (milliseconds), as epoch ms. */
function retryAfter(headers: IncomingMessage['headers'], now: number): number | undefined {
  const ms = headers['x-amz-retry-after'];
  if (typeof ms === 'string' && ms.trim() !== '' && Number.isFinite(Number(ms))) return now + Number(ms);
  const value = headers['retry-after'];
  if (typeof value !== 'string' || value.trim() === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(value.trim())) return now + Number(value) * 1000;
  const date = Date.parse(value);
  return Number.isFinite(date) ? date : undefined;
}

function parseJson(text: string): { ok: true; value: unknown } | { ok: false; why: string } {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (err) {
    return { ok: false, why: (err as Error).message };
  }
}

/** Whether another attempt may help, by the SDK's rules: throttling, transient errors, a corrected clock. */
function isRetryable(err: unknown, skewCorrected: boolean): boolean {
  const e = err as { name?: unknown; code?: unknown; message?: unknown; $metadata?: { httpStatusCode?: number } };
  if (e.name === 'AbortError') return false;
  const name = typeof e.name === 'string' ? e.name : '';
  const status = e.$metadata?.httpStatusCode;
  if (isThrottling(err)) return true;
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
  private retryCapacity = RETRY_CAPACITY;
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
    let lastRetryCost: number | undefined;
    for (let attempt = 1; ; attempt++) {
      const offsetBefore = this.clockOffsetMs;
      try {
        const answer = await this.attempt(operation, body, opts);
        this.retryCapacity = Math.min(RETRY_CAPACITY, this.retryCapacity + (lastRetryCost ?? 1));
        return answer;
      } catch (err) {
        if (opts.signal.aborted) throw abortError();
        const skewCorrected = this.clockOffsetMs !== offsetBefore;
        if (attempt >= attempts || !isRetryable(err, skewCorrected)) throw err;
        const throttled = isThrottling(err);
        const cost = throttled ? THROTTLING_RETRY_COST : RETRY_COST;
        // Out of quota (a long outage): the SDK stops retrying; the caller's own loop goes on.
        if (this.retryCapacity < cost) throw err;
        this.retryCapacity -= cost;
        lastRetryCost = cost;
        const base = throttled ? THROTTLING_DELAY_MS : BASE_DELAY_MS;
        let delay = Math.floor(Math.random() * Math.min(MAX_DELAY_MS, base * 2 ** (attempt - 1)));
        const hint = (err as Partial<AwsServiceError>).$retryAfter;
        if (hint !== undefined) delay = Math.max(delay, Math.min(hint - Date.now(), delay + MAX_HINT_EXTRA_MS));
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
          agent: opts.agent ?? this.o.agent,
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
      // JSON that is not an object (null, a list) reads as an answer without fields, as the SDK reads it.
      if (parsed.ok) return object ?? {};
      throw serviceError('DeserializationError', `${parsed.why} Deserialization error: the answer is not the SSM API's JSON`, status, requestId);
    }
    const header = res.headers['x-amzn-errortype'];
    const code = errorCode(typeof header === 'string' ? header : undefined, object);
    if (!object && !code) {
      const why = parsed.ok ? 'not a JSON object' : parsed.why;
      throw serviceError('DeserializationError', `${why} Deserialization error: the error answer is not the SSM API's JSON`, status, requestId);
    }
    const message = [object?.message, object?.Message].find((m): m is string => typeof m === 'string' && m !== '') ?? 'UnknownError';
    const error = serviceError(code ?? 'UnknownError', message, status, requestId);
    const hint = retryAfter(res.headers, Date.now());
    if (hint !== undefined) error.$retryAfter = hint;
    throw error;
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
