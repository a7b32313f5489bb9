// SigV4 (AWS4-HMAC-SHA256) verification for the fake SSM API, written from the public
// signing specification. Also a small signer so tests can craft raw requests (old dates,
// wrong scopes) that the SDK would never send.
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

export const ALGORITHM = 'AWS4-HMAC-SHA256';
export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
export const MAX_SKEW_MS = 5 * 60_000;

export interface SimCredential {
  accessKeyId: string;
  secretAccessKey: string;
  /** When set, requests must carry exactly this X-Amz-Security-Token. */
  sessionToken?: string;
  /** Epoch ms after which the session token is reported as expired. */
  expiresAt?: number;
  /** IAM user name used in ARNs and as the SessionId prefix. Default 'sim-user'. */
  caller?: string;
}

export type HeaderBag = Record<string, string | string[] | undefined>;

export interface SigV4Request {
  method: string;
  /** Raw request target as received, path plus optional query, still percent-encoded. */
  url: string;
  headers: HeaderBag;
  body: Buffer;
}

export interface VerifyOptions {
  credentials: readonly SimCredential[];
  region: string;
  service: string;
  /** Server clock, epoch ms. */
  now: number;
  maxSkewMs?: number;
}

export interface AuthError {
  ok: false;
  status: number;
  code: string;
  message: string;
}

export type VerifyResult = { ok: true; credential: SimCredential; signedHeaders: string[] } | AuthError;

const fail = (code: string, message: string, status = 400): AuthError => ({ ok: false, status, code, message });

const MSG_BAD_TOKEN = 'The security token included in the request is invalid.';
const MSG_MISMATCH =
  'The request signature we calculated does not match the signature you provided. ' +
  'Check your AWS Secret Access Key and signing method. Consult the service documentation for details.';

// ---------------------------------------------------------------------------------------------
// Primitives

export function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function hmac(key: Buffer | string, data: string): Buffer {
  return createHmac('sha256', key).update(data, 'utf8').digest();
}

export function deriveSigningKey(secret: string, date: string, region: string, service: string): Buffer {
  const kDate = hmac(`AWS4${secret}`, date);
  const kRegion = hmac(kDate, region);
  const kService = hmac(kRegion, service);
  return hmac(kService, 'aws4_request');
}

/** RFC 3986 encoding: everything except unreserved characters. */
export function rfc3986(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/**
 * Canonical URI for non-S3 services: dot segments and empty segments removed, then each
 * segment of the on-the-wire (already encoded) path encoded once more.
 */
export function canonicalUri(rawPath: string): string {
  const segments: string[] = [];
  for (const seg of rawPath.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') segments.pop();
    else segments.push(seg);
  }
  if (segments.length === 0) return '/';
  const trailing = rawPath.endsWith('/') ? '/' : '';
  return '/' + segments.map(rfc3986).join('/') + trailing;
}

export function parseQuery(rawQuery: string): [string, string][] {
  if (!rawQuery) return [];
  return rawQuery
    .split('&')
    .filter((p) => p !== '')
    .map((p) => {
      const eq = p.indexOf('=');
      const k = eq < 0 ? p : p.slice(0, eq);
      const v = eq < 0 ? '' : p.slice(eq + 1);
      return [safeDecode(k), safeDecode(v)];
    });
}

export function canonicalQuery(pairs: [string, string][], omitSignature = false): string {
  return pairs
    .filter(([k]) => !(omitSignature && k === 'X-Amz-Signature'))
    .map(([k, v]) => [rfc3986(k), rfc3986(v)] as const)
    .sort(([ak, av], [bk, bv]) => (ak < bk ? -1 : ak > bk ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
}

function headerValue(headers: HeaderBag, name: string): string | undefined {
  // Node lowercases incoming names; accept mixed case from hand-built bags too.
  let v = headers[name];
  if (v === undefined) {
    const hit = Object.keys(headers).find((k) => k.toLowerCase() === name);
    if (hit !== undefined) v = headers[hit];
  }
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v.join(',') : v;
}

function canonicalHeaderValue(v: string): string {
  return v.replace(/[\r\n]/g, ' ').replace(/[ \t]+/g, ' ').trim();
}

export function canonicalRequest(
  method: string,
  url: string,
  headers: HeaderBag,
  signedHeaders: string[],
  payloadHash: string,
  omitQuerySignature = false,
): string {
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  const query = q < 0 ? '' : url.slice(q + 1);
  const lines = signedHeaders.map((h) => `${h}:${canonicalHeaderValue(headerValue(headers, h) ?? '')}\n`).join('');
  return [
    method.toUpperCase(),
    canonicalUri(path),
    canonicalQuery(parseQuery(query), omitQuerySignature),
    lines,
    signedHeaders.join(';'),
    payloadHash,
  ].join('\n');
}

export function stringToSign(amzDate: string, scope: string, canonical: string): string {
  return [ALGORITHM, amzDate, scope, sha256Hex(canonical)].join('\n');
}

/** 20240102T030405Z → epoch ms, or undefined when malformed. */
export function parseAmzDate(s: string): number | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s);
  if (!m) return undefined;
  const t = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]);
  return Number.isNaN(t) ? undefined : t;
}

export function formatAmzDate(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
}

// ---------------------------------------------------------------------------------------------
// Verification

interface AuthParts {
  credential: string;
  signedHeaders: string;
  signature: string;
  amzDate?: string;
  securityToken?: string;
  expiresSec?: number;
  presigned: boolean;
}

function parseAuthorizationHeader(value: string): AuthParts | AuthError {
  const sp = value.indexOf(' ');
  const algorithm = sp < 0 ? value : value.slice(0, sp);
  if (algorithm !== ALGORITHM) {
    return fail('IncompleteSignatureException', `Unsupported AWS 'algorithm': '${algorithm}'.`);
  }
  const fields = new Map<string, string>();
  for (const part of value.slice(sp + 1).split(',')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  const missing = ['Credential', 'SignedHeaders', 'Signature'].filter((k) => !fields.get(k));
  if (missing.length > 0) {
    // The real service echoes the whole header; we do not, to keep signatures out of logs.
    return fail(
      'IncompleteSignatureException',
      missing.map((k) => `Authorization header requires '${k}' parameter.`).join(' '),
    );
  }
  return {
    credential: fields.get('Credential')!,
    signedHeaders: fields.get('SignedHeaders')!,
    signature: fields.get('Signature')!,
    presigned: false,
  };
}

function parseQueryAuth(pairs: [string, string][]): AuthParts | AuthError {
  const get = (k: string) => pairs.find(([n]) => n === k)?.[1];
  const algorithm = get('X-Amz-Algorithm');
  if (algorithm !== ALGORITHM) {
    return fail('IncompleteSignatureException', `Unsupported AWS 'algorithm': '${algorithm ?? ''}'.`);
  }
  const missing = ['X-Amz-Credential', 'X-Amz-SignedHeaders', 'X-Amz-Signature', 'X-Amz-Date'].filter((k) => !get(k));
  if (missing.length > 0) {
    return fail(
      'IncompleteSignatureException',
      missing.map((k) => `AWS query-string parameters must include '${k}'.`).join(' '),
    );
  }
  const expires = get('X-Amz-Expires');
  let expiresSec: number | undefined;
  if (expires !== undefined) {
    if (!/^\d+$/.test(expires) || +expires > 604800) {
      return fail('IncompleteSignatureException', `X-Amz-Expires must be an integer number of seconds up to 604800.`);
    }
    expiresSec = +expires;
  }
  return {
    credential: get('X-Amz-Credential')!,
    signedHeaders: get('X-Amz-SignedHeaders')!,
    signature: get('X-Amz-Signature')!,
    amzDate: get('X-Amz-Date'),
    securityToken: get('X-Amz-Security-Token'),
    expiresSec,
    presigned: true,
  };
}

export function verifySigV4(req: SigV4Request, opts: VerifyOptions): VerifyResult {
  const q = req.url.indexOf('?');
  const queryPairs = parseQuery(q < 0 ? '' : req.url.slice(q + 1));
  const authHeader = headerValue(req.headers, 'authorization');
  const hasQueryAuth = queryPairs.some(([k]) => k === 'X-Amz-Algorithm');

  if (authHeader === undefined && !hasQueryAuth) {
    return fail('MissingAuthenticationTokenException', 'Missing Authentication Token');
  }
  if (authHeader !== undefined && hasQueryAuth) {
    return fail(
      'IncompleteSignatureException',
      "Found both 'X-Amz-Algorithm' as a query-string param and 'Authorization' as HTTP header.",
    );
  }
  const parsed = authHeader !== undefined ? parseAuthorizationHeader(authHeader) : parseQueryAuth(queryPairs);
  if ('ok' in parsed) return parsed;

  // Date: query value, else X-Amz-Date header, else the HTTP Date header (not used by the SDK).
  let amzDate = parsed.amzDate ?? headerValue(req.headers, 'x-amz-date');
  let requestTime: number | undefined;
  if (amzDate !== undefined) {
    requestTime = parseAmzDate(amzDate);
    if (requestTime === undefined) {
      return fail(
        'IncompleteSignatureException',
        `Date must be in ISO-8601 'basic format'. Got '${amzDate}'. See http://en.wikipedia.org/wiki/ISO_8601`,
      );
    }
  } else {
    const httpDate = headerValue(req.headers, 'date');
    const t = httpDate === undefined ? NaN : Date.parse(httpDate);
    if (Number.isNaN(t)) {
      return fail(
        'IncompleteSignatureException',
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
      );
    }
    requestTime = t;
    amzDate = formatAmzDate(t);
  }

  const scope = parsed.credential.split('/');
  if (scope.length !== 5) {
    return fail(
      'IncompleteSignatureException',
      'Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term.',
    );
  }
  const [accessKeyId, scopeDate, scopeRegion, scopeService, terminator] = scope;
  if (terminator !== 'aws4_request') {
    return fail(
      'InvalidSignatureException',
      `Credential should be scoped with a valid terminator: 'aws4_request', not '${terminator}'.`,
    );
  }

  const credential = opts.credentials.find((c) => c.accessKeyId === accessKeyId);
  if (!credential) return fail('UnrecognizedClientException', MSG_BAD_TOKEN);

  const presentedToken = parsed.securityToken ?? headerValue(req.headers, 'x-amz-security-token');
  if (credential.sessionToken !== presentedToken) {
    return fail('UnrecognizedClientException', MSG_BAD_TOKEN);
  }
  if (credential.expiresAt !== undefined && opts.now >= credential.expiresAt) {
    return fail('ExpiredTokenException', 'The security token included in the request is expired');
  }

  if (scopeDate !== amzDate.slice(0, 8)) {
    return fail(
      'InvalidSignatureException',
      `Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: ` +
        `'${scopeDate}' != '${amzDate.slice(0, 8)}', from '${amzDate}'.`,
    );
  }
  if (scopeRegion !== opts.region) {
    return fail('InvalidSignatureException', `Credential should be scoped to a valid region, not '${scopeRegion}'. `);
  }
  if (scopeService !== opts.service) {
    return fail('InvalidSignatureException', `Credential should be scoped to correct service: '${opts.service}'. `);
  }

  const skew = opts.maxSkewMs ?? MAX_SKEW_MS;
  const mins = Math.round(skew / 60_000);
  if (parsed.presigned && parsed.expiresSec !== undefined && opts.now > requestTime + parsed.expiresSec * 1000) {
    return fail(
      'InvalidSignatureException',
      `Signature expired: ${amzDate} is now earlier than ${formatAmzDate(opts.now - parsed.expiresSec * 1000)} ` +
        `(${formatAmzDate(opts.now)} - ${parsed.expiresSec} sec.)`,
    );
  }
  if (!(parsed.presigned && parsed.expiresSec !== undefined) && opts.now - requestTime > skew) {
    return fail(
      'InvalidSignatureException',
      `Signature expired: ${amzDate} is now earlier than ${formatAmzDate(opts.now - skew)} ` +
        `(${formatAmzDate(opts.now)} - ${mins} min.)`,
    );
  }
  if (requestTime - opts.now > skew) {
    return fail(
      'InvalidSignatureException',
      `Signature not yet current: ${amzDate} is still later than ${formatAmzDate(opts.now + skew)} ` +
        `(${formatAmzDate(opts.now)} + ${mins} min.)`,
    );
  }

  // The server recomputes the canonical form itself, so an unsorted or mixed-case list from the
  // client simply fails to match, as it would against the real service.
  const signedHeaders = [...new Set(parsed.signedHeaders.split(';').map((h) => h.trim().toLowerCase()))]
    .filter((h) => h !== '')
    .sort();
  if (!signedHeaders.includes('host') && !signedHeaders.includes(':authority')) {
    return fail(
      'InvalidSignatureException',
      "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
    );
  }

  const actualHash = sha256Hex(req.body);
  const declaredHash = headerValue(req.headers, 'x-amz-content-sha256');
  let payloadHash = actualHash;
  if (declaredHash !== undefined) {
    if (declaredHash !== 'UNSIGNED-PAYLOAD' && declaredHash !== actualHash) {
      return fail(
        'InvalidSignatureException',
        "The provided 'x-amz-content-sha256' header does not match what was computed.",
      );
    }
    payloadHash = declaredHash;
  }

  const canonical = canonicalRequest(req.method, req.url, req.headers, signedHeaders, payloadHash, parsed.presigned);
  const sts = stringToSign(amzDate, `${scopeDate}/${scopeRegion}/${scopeService}/aws4_request`, canonical);
  const key = deriveSigningKey(credential.secretAccessKey, scopeDate, scopeRegion, scopeService);
  const expected = createHmac('sha256', key).update(sts, 'utf8').digest();
  const given = /^[0-9a-f]{64}$/.test(parsed.signature) ? Buffer.from(parsed.signature, 'hex') : Buffer.alloc(0);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    return fail('InvalidSignatureException', MSG_MISMATCH);
  }
  return { ok: true, credential, signedHeaders };
}

// ---------------------------------------------------------------------------------------------
// Signing (for tests that need requests the SDK would not produce)

export interface SignOptions {
  region: string;
  service: string;
  /** Signing time, epoch ms. */
  date: number;
  /** Put the signature in the query string instead of an Authorization header. */
  presign?: { expiresSec: number };
}

/**
 * Signs `headers` (all of them, plus host which must be present) and returns the request's
 * new url and headers. Header names are lowercased.
 */
export function signRequest(
  req: { method: string; url: string; headers: Record<string, string>; body: Buffer | string },
  cred: { accessKeyId: string; secretAccessKey: string; sessionToken?: string },
  opts: SignOptions,
): { url: string; headers: Record<string, string> } {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) headers[k.toLowerCase()] = v;
  if (headers.host === undefined) throw new Error('signRequest: host header required');
  const amzDate = formatAmzDate(opts.date);
  const day = amzDate.slice(0, 8);
  const scope = `${day}/${opts.region}/${opts.service}/aws4_request`;
  const body = typeof req.body === 'string' ? Buffer.from(req.body) : req.body;
  const payloadHash = headers['x-amz-content-sha256'] ?? sha256Hex(body);
  let url = req.url;

  if (opts.presign) {
    const signed = Object.keys(headers).sort();
    const extra: [string, string][] = [
      ['X-Amz-Algorithm', ALGORITHM],
      ['X-Amz-Credential', `${cred.accessKeyId}/${scope}`],
      ['X-Amz-Date', amzDate],
      ['X-Amz-Expires', String(opts.presign.expiresSec)],
      ['X-Amz-SignedHeaders', signed.join(';')],
    ];
    if (cred.sessionToken !== undefined) extra.push(['X-Amz-Security-Token', cred.sessionToken]);
    url += (url.includes('?') ? '&' : '?') + extra.map(([k, v]) => `${rfc3986(k)}=${rfc3986(v)}`).join('&');
    const canonical = canonicalRequest(req.method, url, headers, signed, payloadHash);
    const sig = createHmac('sha256', deriveSigningKey(cred.secretAccessKey, day, opts.region, opts.service))
      .update(stringToSign(amzDate, scope, canonical))
      .digest('hex');
    return { url: `${url}&X-Amz-Signature=${sig}`, headers };
  }

  headers['x-amz-date'] = amzDate;
  if (cred.sessionToken !== undefined) headers['x-amz-security-token'] = cred.sessionToken;
  const signed = Object.keys(headers).sort();
  const canonical = canonicalRequest(req.method, url, headers, signed, payloadHash);
  const sig = createHmac('sha256', deriveSigningKey(cred.secretAccessKey, day, opts.region, opts.service))
    .update(stringToSign(amzDate, scope, canonical))
    .digest('hex');
  headers.authorization = `${ALGORITHM} Credential=${cred.accessKeyId}/${scope}, SignedHeaders=${signed.join(';')}, Signature=${sig}`;
  return { url, headers };
}
