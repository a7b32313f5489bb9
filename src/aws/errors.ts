// Turns SDK, credential-chain and socket errors into one actionable line with
// a documented exit code (PROTOCOL.md §2.5).
import { ExitCode, ProxyError } from '../cli/exit-codes.ts';
import { oneLine, redact } from '../cli/log.ts';
import { CA_BUNDLE_ADVICE, UNTRUSTED_CERTIFICATE } from '../transport/tls-context.ts';

export interface AwsErrorContext {
  /** API operation (StartSession, ResumeSession, TerminateSession) or `credentials`. */
  operation: string;
  target?: string;
  region?: string;
  /** The SSM endpoint URL, for network messages. */
  endpoint?: string;
  documentName?: string;
  sessionId?: string;
  /** AWS profile in use, for credential messages. */
  profile?: string;
}

const CREDENTIAL_CODES = new Set([
  'UnrecognizedClientException',
  'InvalidSignatureException',
  'ExpiredTokenException',
  'ExpiredToken',
  'IncompleteSignature',
  'IncompleteSignatureException',
  'MissingAuthenticationTokenException',
  'MissingAuthenticationToken',
  'InvalidClientTokenId',
  'SignatureDoesNotMatch',
  'RequestExpired',
  'CredentialsProviderError',
  'TokenProviderError',
  'InvalidIdentityToken',
]);

const TARGET_CODES = new Set(['InvalidDocument', 'ValidationException', 'InvalidParameters', 'InvalidTarget', 'InvalidInstanceId']);

const NETWORK_CODES = new Set([
  'EPROXYTUNNEL', // our HTTPS_PROXY agent: the proxy refused or could not be reached
  'ECONNREFUSED',
  'ENOTFOUND',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EHOSTDOWN',
  'EPIPE',
  'ECONNABORTED',
  'EPROTO',
  'ERR_SOCKET_CONNECTION_TIMEOUT',
]);

const TLS_CODE = new RegExp(`${UNTRUSTED_CERTIFICATE.source}|ERR_TLS`);

/** Service-side faults and rate limits: worth another try in a reconnect loop. */
const TRANSIENT_CODES = new Set([
  'ThrottlingException',
  'Throttling',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'InternalServerError',
  'InternalFailure',
  'ServiceUnavailable',
  'ServiceUnavailableException',
]);

const MAX_DETAIL_LENGTH = 300;

interface ErrorFacts {
  /** AWS error code, Node error code, or error name. */
  code: string;
  /** Node's `err.code`, when the error came from a socket or DNS. */
  systemCode?: string;
  message: string;
  httpStatus?: number;
  hostname?: string;
}

function facts(err: unknown): ErrorFacts {
  if (err === null || typeof err !== 'object') return { code: 'Error', message: String(err) };
  const e = err as Record<string, unknown>;
  const cause = (e.cause !== null && typeof e.cause === 'object' ? e.cause : {}) as Record<string, unknown>;
  const systemCode = typeof e.code === 'string' ? e.code : typeof cause.code === 'string' ? cause.code : undefined;
  const metadata = (e.$metadata ?? {}) as { httpStatusCode?: unknown };
  const httpStatus = typeof metadata.httpStatusCode === 'number' ? metadata.httpStatusCode : undefined;
  // SDK service exceptions carry the AWS code as `name`; namespaced codes keep the part after '#'.
  let code = typeof e.name === 'string' && e.name !== '' ? e.name : 'Error';
  if (typeof e.__type === 'string') code = e.__type;
  code = code.slice(code.lastIndexOf('#') + 1);
  if ((code === 'Error' || code === 'SystemError') && systemCode) code = systemCode;
  const rawMessage =
    typeof e.message === 'string' && e.message !== '' ? e.message : typeof e.Message === 'string' ? e.Message : '';
  const hostname = typeof e.hostname === 'string' ? e.hostname : typeof cause.hostname === 'string' ? cause.hostname : undefined;
  return { code, systemCode, message: detail(rawMessage), httpStatus, hostname };
}

function detail(text: string): string {
  const clean = oneLine(redact(text));
  return clean.length > MAX_DETAIL_LENGTH ? `${clean.slice(0, MAX_DETAIL_LENGTH)}…` : clean;
}

function withDetail(code: string, message: string): string {
  return message && message !== code ? `${code}: ${message}` : code;
}

function isNetworkError(f: ErrorFacts): boolean {
  if (f.httpStatus !== undefined) return false;
  if (f.systemCode && (NETWORK_CODES.has(f.systemCode) || TLS_CODE.test(f.systemCode))) return true;
  if (NETWORK_CODES.has(f.code)) return true;
  if (f.code === 'TimeoutError' || f.code === 'AbortError' || f.code === 'RequestTimeout') return true;
  return /socket hang up|ECONNRESET|network socket disconnected/i.test(f.message);
}

/** `ssm.<region>.amazonaws.com` missing from DNS almost always means a mistyped region. */
function looksLikeUnknownRegion(f: ErrorFacts, ctx: AwsErrorContext): string | undefined {
  if ((f.systemCode ?? f.code) !== 'ENOTFOUND') return undefined;
  const host = f.hostname ?? hostOf(ctx.endpoint);
  const match = host ? /^ssm(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$/.exec(host) : null;
  return match ? match[1] : undefined;
}

function hostOf(url: string | undefined): string | undefined {
  if (!url) return undefined;
  try {
    return new URL(url).hostname;
  } catch {
    return undefined;
  }
}

/** Only for messages: the SDK resolves the real endpoint (FIPS, dual-stack, config files). */
function defaultEndpoint(region: string): string {
  return `https://ssm.${region}.amazonaws.com${region.startsWith('cn-') ? '.cn' : ''}`;
}

function networkError(f: ErrorFacts, ctx: AwsErrorContext): ProxyError {
  const endpoint = ctx.endpoint ?? (ctx.region ? defaultEndpoint(ctx.region) : 'the SSM endpoint');
  const code = f.systemCode ?? f.code;
  const unknownRegion = looksLikeUnknownRegion(f, ctx);
  if (unknownRegion !== undefined) {
    return new ProxyError(
      ExitCode.Network,
      `cannot reach the SSM endpoint ${endpoint}: its host name does not resolve (ENOTFOUND), so "${unknownRegion}" is probably not an AWS region; check --region, AWS_REGION and your profile's region, or your DNS`,
      code,
    );
  }
  if (TLS_CODE.test(code)) {
    return new ProxyError(
      ExitCode.Network,
      `cannot reach the SSM endpoint ${endpoint}: its TLS certificate is not trusted (${code}); ${CA_BUNDLE_ADVICE}`,
      code,
    );
  }
  const reason = code === 'TimeoutError' || code === 'AbortError' ? `no answer in time (${f.message || code})` : withDetail(code, f.message);
  return new ProxyError(
    ExitCode.Network,
    `cannot reach the SSM endpoint ${endpoint}: ${reason}; check the region, your network and proxy settings`,
    code,
  );
}

/**
 * Something answered that is not the SSM API: not HTTP at all (node's parser codes,
 * HPE_*), or HTTP whose body the SDK could not read as the API's JSON (an HTML page from a
 * load balancer, a captive portal, the wrong --endpoint-url).
 */
function notTheSsmApi(f: ErrorFacts, ctx: AwsErrorContext): ProxyError | undefined {
  const endpoint = ctx.endpoint ?? (ctx.region ? defaultEndpoint(ctx.region) : 'the SSM endpoint');
  const check = 'check --endpoint-url and AWS_ENDPOINT_URL_SSM, and any proxy or firewall in the way';
  const parserCode = [f.systemCode, f.code].find((c) => c !== undefined && c.startsWith('HPE_'));
  if (parserCode) return new ProxyError(ExitCode.Network, `cannot use the SSM endpoint ${endpoint}: it does not answer in HTTP (${parserCode}); ${check}`, parserCode);
  if (f.httpStatus === undefined || !/Deserialization error/i.test(f.message)) return undefined;
  const what = f.message.replace(/\s*Deserialization error:.*$/i, '');
  return new ProxyError(ExitCode.Network, `cannot use the SSM endpoint ${endpoint}: it answered HTTP ${f.httpStatus} with something other than the SSM API's reply (${what}); ${check}`, f.code, {
    serviceFault: f.httpStatus >= 500,
  });
}

function iamAction(operation: string): string {
  return /^(StartSession|ResumeSession|TerminateSession)$/.test(operation) ? `ssm:${operation}` : operation;
}

/** Maps any error from an SSM call or the credential chain to a ProxyError for a person. */
export function classifyAwsError(err: unknown, ctx: AwsErrorContext): ProxyError {
  if (err instanceof ProxyError) return err;
  const f = facts(err);
  const target = ctx.target ?? 'the target';
  const region = ctx.region ? ` in ${ctx.region}` : '';
  const make = (exitCode: number, message: string) => new ProxyError(exitCode, oneLine(redact(message)), f.code, { cause: err });

  if (isNetworkError(f)) return networkError(f, ctx);
  const notSsm = notTheSsmApi(f, ctx);
  if (notSsm) return notSsm;

  switch (f.code) {
    case 'TargetNotConnected':
      return make(
        ExitCode.TargetUnavailable,
        `${target} is not connected to Session Manager${region}; check that the instance is running, its SSM agent is online and its role allows Session Manager, and that it is in this region and account`,
      );
    case 'DoesNotExistException':
      return make(
        ExitCode.ConnectionLost,
        `${ctx.sessionId ? `session ${ctx.sessionId}` : 'the session'} no longer exists (${withDetail(f.code, f.message)}); it was terminated or timed out, so connect again`,
      );
    case 'AccessDeniedException':
    case 'AccessDenied': {
      const action = iamAction(ctx.operation);
      const on = ctx.operation === 'StartSession' ? ` on ${target} and the document ${ctx.documentName ?? 'AWS-StartSSHSession'}` : '';
      return make(
        ExitCode.AccessDenied,
        `access denied for ${action}${on} (${withDetail(f.code, f.message)}); ask your administrator to allow ${action}, or use another profile`,
      );
    }
  }

  if (f.code === 'InvalidDocument') {
    return make(
      ExitCode.TargetUnavailable,
      `${ctx.documentName ? `the document ${ctx.documentName}` : 'the session document'} is not available${region} (${withDetail(f.code, f.message)}); check --document-name and the region`,
    );
  }
  if (TARGET_CODES.has(f.code)) {
    return make(
      ExitCode.TargetUnavailable,
      `${ctx.operation} rejected the request for ${target} (${withDetail(f.code, f.message)}); check the target ID, the port and the document`,
    );
  }

  if (/Region not accepted/i.test(f.message)) {
    return make(ExitCode.Usage, `the AWS region configured is not a valid region name (${f.message}); check --region, AWS_REGION and your profile's region`);
  }
  if ((f.systemCode ?? f.code) === 'ERR_INVALID_CHAR' && /x-amz-security-token|authorization/i.test(f.message)) {
    // Node refuses to send a header with a line break: a pasted token or key that carries one.
    return make(
      ExitCode.Credentials,
      `an AWS credential contains a character that cannot be sent in a request, such as a line break (${f.message}); set AWS_SESSION_TOKEN, AWS_ACCESS_KEY_ID or the profile's keys again without it`,
    );
  }
  if (/scoped to (a valid|the correct|correct) region/i.test(f.message)) {
    // Not the key or the clock: the region the request was signed for is not the endpoint's.
    return make(
      ExitCode.Usage,
      `AWS rejected the request's region${ctx.region ? ` ${ctx.region}` : ''} (${withDetail(f.code, f.message)}); check --region, AWS_REGION and your profile's region against the endpoint`,
    );
  }
  if (CREDENTIAL_CODES.has(f.code) || ctx.operation === 'credentials') {
    return make(ExitCode.Credentials, credentialMessage(f, ctx.profile));
  }

  if (f.code === 'ThrottlingException' || f.code === 'Throttling' || f.code === 'TooManyRequestsException') {
    return make(ExitCode.Network, `the SSM API is throttling requests (${f.code}) even after retries; wait a little and try again`);
  }

  const status = f.httpStatus !== undefined ? `HTTP ${f.httpStatus} ` : '';
  const serviceFault = f.httpStatus !== undefined && f.httpStatus >= 500;
  const advice = serviceFault ? 'the service had a problem; try again shortly' : 'run with -vv for details';
  return new ProxyError(ExitCode.Failure, oneLine(redact(`${ctx.operation} failed: ${status}${withDetail(f.code, f.message)}; ${advice}`)), f.code, { cause: err, serviceFault });
}

function credentialMessage(f: ErrorFacts, profile: string | undefined): string {
  const login =
    profile === undefined
      ? 'run `aws configure` or `aws sso login`, or set AWS_PROFILE'
      : `check that profile ${profile} exists in ~/.aws/config or ~/.aws/credentials, or run \`aws sso login --profile ${profile}\``;
  const forProfile = profile === undefined ? '' : ` for profile ${profile}`;
  switch (f.code) {
    case 'ExpiredTokenException':
    case 'ExpiredToken':
      return `your AWS credentials have expired (${f.code}); refresh them (for example \`aws sso login\`) and try again`;
    case 'InvalidSignatureException':
    case 'SignatureDoesNotMatch':
    case 'RequestExpired':
      return `AWS rejected the request signature (${withDetail(f.code, f.message)}); check the secret access key and that the system clock is correct`;
    case 'CredentialsProviderError':
    case 'TokenProviderError':
      if (/could not load credentials from any providers/i.test(f.message)) {
        return `no AWS credentials found${forProfile} (${f.message}); ${login}`;
      }
      return `could not load AWS credentials${forProfile} (${f.message}); ${login}`;
    default:
      return `AWS rejected the credentials (${withDetail(f.code, f.message)}); check the access key and profile, or ${login}`;
  }
}

/**
 * Whether a failed call is worth repeating later (throttling, service faults,
 * network trouble). Credential, permission and not-found errors are not.
 */
export function isTransientAwsError(err: ProxyError): boolean {
  if (err.exitCode === ExitCode.Network || err.serviceFault) return true;
  return err.code !== undefined && TRANSIENT_CODES.has(err.code);
}
