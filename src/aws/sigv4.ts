// AWS Signature Version 4 for the SSM API's JSON requests: a POST to the endpoint's root
// with a JSON body, signed with static keys. All the SSM calls need, and no more: no
// query string, no path, no presigning, no chunked payloads.
import { createHash, createHmac } from 'node:crypto';

export interface StaticCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface SigningRequest {
  /** The Host header as sent: the host name, with `:port` when the port is not the scheme's default. */
  host: string;
  /** Request headers besides those signPost adds, with lower-case names; all are signed. */
  headers: Readonly<Record<string, string>>;
  body: string;
  region: string;
  service: string;
  credentials: StaticCredentials;
  date: Date;
}

const ALGORITHM = 'AWS4-HMAC-SHA256';

function sha256Hex(data: string): string {
  return createHash('sha256').update(data, 'utf8').digest('hex');
}

function hmac(key: string | Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data, 'utf8').digest();
}

/**
 * `20261206T201530Z`: ISO 8601 basic format, seconds precision, UTC. From the UTC fields:
 * a process's first toISOString() costs ~1 ms (~5 ms with TZ set), on the way to StartSession.
 */
export function amzDate(date: Date): string {
  const two = (n: number) => (n < 10 ? `0${n}` : String(n));
  return `${date.getUTCFullYear()}${two(date.getUTCMonth() + 1)}${two(date.getUTCDate())}T${two(date.getUTCHours())}${two(date.getUTCMinutes())}${two(date.getUTCSeconds())}Z`;
}

/**
 * The request's headers with Host, X-Amz-Date, X-Amz-Content-Sha256, X-Amz-Security-Token
 * (when there is a session token) and Authorization added, names in lower case. As the
 * AWS SDK signs these requests: every header signed, the payload's hash sent too.
 */
export function signPost(req: SigningRequest): Record<string, string> {
  const stamp = amzDate(req.date);
  const day = stamp.slice(0, 8);
  const payloadHash = sha256Hex(req.body);
  const headers: Record<string, string> = { ...req.headers, host: req.host, 'x-amz-date': stamp, 'x-amz-content-sha256': payloadHash };
  if (req.credentials.sessionToken) headers['x-amz-security-token'] = req.credentials.sessionToken;
  const names = Object.keys(headers).sort();
  const canonicalHeaders = names.map((n) => `${n}:${headers[n].trim().replace(/\s+/g, ' ')}\n`).join('');
  const signedHeaders = names.join(';');
  const canonicalRequest = ['POST', '/', '', canonicalHeaders, signedHeaders, payloadHash].join('\n');
  const scope = `${day}/${req.region}/${req.service}/aws4_request`;
  const stringToSign = [ALGORITHM, stamp, scope, sha256Hex(canonicalRequest)].join('\n');
  const key = hmac(hmac(hmac(hmac(`AWS4${req.credentials.secretAccessKey}`, day), req.region), req.service), 'aws4_request');
  const signature = createHmac('sha256', key).update(stringToSign, 'utf8').digest('hex');
  headers.authorization = `${ALGORITHM} Credential=${req.credentials.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`;
  return headers;
}
