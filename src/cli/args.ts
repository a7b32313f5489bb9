// argv and environment -> ProxyOptions. Pure: no I/O, so usage errors never
// load the AWS SDK and every rule is a unit test.
import { parseArgs as parseNodeArgs } from 'node:util';
import { EXIT_CODE_DOCS } from './exit-codes.ts';
import { SWITCH_OFF, SWITCH_ON } from './switch.ts';

export const VERSION = '0.1.0';
/** Reported to the agent (PROTOCOL.md §3.2): 4 components, ≥ 1.2.339.0 selects its current code paths. */
export const CLIENT_VERSION = '1.2.694.0';

export const DEFAULT_PORT = 22;
export const DEFAULT_DOCUMENT_NAME = 'AWS-StartSSHSession';
/**
 * The service takes about 1000 frames/s from a client (PROTOCOL.md is silent; the
 * figure comes from reverse engineering). Pacing at exactly that rate lets its
 * budget run down on any jitter; 97 % keeps it topped up.
 */
export const DEFAULT_FRAME_RATE = 970;
export const DEFAULT_MAX_PAYLOAD = 1024;
export const MAX_PAYLOAD_LIMIT = 65536;
const MAX_FRAME_RATE = 1_000_000;
/** StartSession limits (API model): Target ≤ 400 characters, Reason 1–256 characters on one line. */
const MAX_TARGET_LENGTH = 400;
const MAX_REASON_LENGTH = 256;

export interface ProxyOptions {
  target: string;
  port: number;
  region?: string;
  profile?: string;
  /** The profile came from AWS_PROFILE / AWS_DEFAULT_PROFILE, not --profile. */
  profileFromEnv?: boolean;
  documentName: string;
  reason?: string;
  /** SSM API endpoint; validated as an http(s) URL. */
  endpointUrl?: string;
  verbose: number;
  logFile?: string;
  /** Max stream frames per second we send; 0 = unlimited. */
  frameRate: number;
  /** Bytes of stream data per frame. */
  maxPayload: number;
  /** PEM file of trusted CAs for AWS HTTPS connections (TLS-intercepting proxies). */
  caBundle?: string;
  /** No HandshakeComplete this long after the data channel opened: give up (§6.5). */
  handshakeTimeoutSeconds: number;
  /** Oldest data unacknowledged this long while connected: give up (§8.7 step 6). */
  giveUpSeconds: number;
  /** Keep trying to resume a dropped data channel this long (§11.6). */
  reconnectSeconds: number;
  /** Make every API call through the AWS SDK, even with keys in the environment (SSM_PROXY_USE_SDK). */
  useSdk?: boolean;
}

export type ParsedArgs =
  | { kind: 'help' }
  | { kind: 'version' }
  | { kind: 'run'; options: ProxyOptions }
  | { kind: 'error'; message: string };

const USAGE_LINE = 'ssm-proxy [options] <target> [port]';

const OPTION_SPEC = {
  region: { type: 'string' },
  profile: { type: 'string' },
  'document-name': { type: 'string' },
  reason: { type: 'string' },
  'endpoint-url': { type: 'string' },
  'ca-bundle': { type: 'string' },
  verbose: { type: 'boolean', short: 'v', multiple: true },
  'log-file': { type: 'string' },
  'frame-rate': { type: 'string' },
  'max-payload': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'V' },
} as const;

/** Thrown inside this module only; parseArgs turns it into `{ kind: 'error' }`. */
class UsageError extends Error {}

function usageError(what: string): { kind: 'error'; message: string } {
  // No `ssm-proxy: ` prefix: whoever prints it adds that (see formatErrorLine in log.ts).
  return { kind: 'error', message: `${what}; usage: ${USAGE_LINE} (see --help)` };
}

/** Quotes user input in messages, keeping control characters out of the terminal. */
function quote(value: string): string {
  return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
}

/** Empty environment variables count as unset, as in the AWS CLI. */
function envValue(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const value = env[name];
  return value === undefined || value === '' ? undefined : value;
}

function firstEnv(env: NodeJS.ProcessEnv, names: string[]): { name: string; value: string } | undefined {
  for (const name of names) {
    const value = envValue(env, name);
    if (value !== undefined) return { name, value };
  }
  return undefined;
}

function parseWholeNumber(text: string, source: string, min: number, max: number): number {
  if (!/^\d{1,10}$/.test(text)) throw new UsageError(`${source} must be a whole number from ${min} to ${max}, got ${quote(text)}`);
  const value = Number(text);
  if (value < min || value > max) throw new UsageError(`${source} must be from ${min} to ${max}, got ${text}`);
  return value;
}

function checkTarget(target: string): string {
  if (target === '') throw new UsageError('<target> is empty');
  if (/[\s\u0000-\u001f\u007f]/.test(target)) throw new UsageError(`<target> ${quote(target)} contains whitespace or control characters`);
  if (target.length > MAX_TARGET_LENGTH) throw new UsageError(`<target> is longer than ${MAX_TARGET_LENGTH} characters`);
  return target;
}

function checkRegion(region: string, source: string): string {
  // Every AWS region name is lower-case letters, digits and hyphens; anything else
  // would only surface later as a confusing DNS or endpoint-rule error.
  if (!/^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$/.test(region)) {
    throw new UsageError(`${source} ${quote(region)} is not a valid AWS region name (for example eu-west-1)`);
  }
  return region;
}

function checkEndpointUrl(url: string, source: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(`${source} ${quote(url)} is not a URL (expected https://host[:port])`);
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
    throw new UsageError(`${source} ${quote(url)} must be an http:// or https:// URL`);
  }
  if (parsed.username || parsed.password) {
    // Never echoed: it would put the password in ssh's output and in logs.
    throw new UsageError(`${source} must not contain a user name or password (${parsed.protocol}//<credentials>@${parsed.host}); the SSM API is authorised by your AWS credentials`);
  }
  return url;
}

function checkNoWhitespace(value: string, source: string): string {
  if (value === '') throw new UsageError(`${source} is empty`);
  if (/[\s\u0000-\u001f\u007f]/.test(value)) throw new UsageError(`${source} ${quote(value)} contains whitespace or control characters`);
  return value;
}

/** Turns node:util's parse errors into our one-line wording. */
function describeParseError(err: unknown): string {
  const { code, message } = err as { code?: string; message?: string };
  const text = message ?? String(err);
  const named = /Option '([^']+)'/.exec(text)?.[1]?.replace(/ <value>$/, '');
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    const option = /option '([^']+)'/i.exec(text)?.[1] ?? 'option';
    return `unknown option ${option}`;
  }
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    if (/does not take an argument/.test(text)) return `option ${named ?? ''} does not take a value`;
    // `--frame-rate -1`: node reads -1 as an option; the value is judged once given with '='.
    if (/ambiguous/.test(text)) return `option ${named ?? ''} needs a value; one that starts with '-' is given as ${named ?? '--option'}=VALUE`;
    return `option ${named ?? ''} needs a value`;
  }
  return oneLineText(text);
}

function oneLineText(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, ' ').trim();
}

/** Whether -h/-V appear before `--`, so `--help` still works next to a bad option. */
function hasFlag(argv: string[], flags: string[]): boolean {
  for (const arg of argv) {
    if (arg === '--') return false;
    if (flags.includes(arg)) return true;
  }
  return false;
}

function parseWithSpec(argv: string[]) {
  return parseNodeArgs({ args: argv, options: OPTION_SPEC, strict: true, allowPositionals: true });
}

type ParsedValues = ReturnType<typeof parseWithSpec>['values'];

export function parseArgs(argv: string[], env: NodeJS.ProcessEnv): ParsedArgs {
  let parsed: ReturnType<typeof parseWithSpec>;
  try {
    parsed = parseWithSpec(argv);
  } catch (err) {
    if (hasFlag(argv, ['-h', '--help'])) return { kind: 'help' };
    if (hasFlag(argv, ['-V', '--version'])) return { kind: 'version' };
    return usageError(describeParseError(err));
  }
  if (parsed.values.help) return { kind: 'help' };
  if (parsed.values.version) return { kind: 'version' };

  try {
    return { kind: 'run', options: buildOptions(parsed.values, parsed.positionals, env) };
  } catch (err) {
    if (err instanceof UsageError) return usageError(err.message);
    throw err;
  }
}

function buildOptions(
  values: ParsedValues,
  positionals: string[],
  env: NodeJS.ProcessEnv,
): ProxyOptions {
  if (positionals.length === 0) throw new UsageError('missing <target>');
  if (positionals.length > 2) throw new UsageError(`unexpected argument ${quote(positionals[2])}`);
  const target = checkTarget(positionals[0]);
  const port = positionals.length === 2 ? parseWholeNumber(positionals[1], '[port]', 1, 65535) : DEFAULT_PORT;

  let region: string | undefined;
  if (values.region !== undefined) region = checkRegion(values.region, '--region');
  else {
    const fromEnv = firstEnv(env, ['AWS_REGION', 'AWS_DEFAULT_REGION']);
    if (fromEnv) region = checkRegion(fromEnv.value, fromEnv.name);
  }

  let profile: string | undefined;
  let profileFromEnv = false;
  if (values.profile !== undefined) profile = checkNoWhitespace(values.profile, '--profile');
  else {
    profile = firstEnv(env, ['AWS_PROFILE', 'AWS_DEFAULT_PROFILE'])?.value;
    profileFromEnv = profile !== undefined;
  }

  const documentName =
    values['document-name'] !== undefined ? checkNoWhitespace(values['document-name'], '--document-name') : DEFAULT_DOCUMENT_NAME;

  let reason: string | undefined;
  if (values.reason !== undefined && values.reason !== '') {
    if (values.reason.length > MAX_REASON_LENGTH) throw new UsageError(`--reason is longer than ${MAX_REASON_LENGTH} characters`);
    if (/[\r\n]/.test(values.reason)) throw new UsageError('--reason must be a single line');
    reason = values.reason;
  }

  let endpointUrl: string | undefined;
  if (values['endpoint-url'] !== undefined) endpointUrl = checkEndpointUrl(values['endpoint-url'], '--endpoint-url');
  else if (!/^true$/i.test(env.AWS_IGNORE_CONFIGURED_ENDPOINT_URLS ?? '')) {
    const fromEnv = firstEnv(env, ['AWS_ENDPOINT_URL_SSM', 'AWS_ENDPOINT_URL']);
    if (fromEnv) endpointUrl = checkEndpointUrl(fromEnv.value, fromEnv.name);
  }

  let verbose = 0;
  if (values.verbose !== undefined) verbose = values.verbose.length;
  else {
    const fromEnv = envValue(env, 'SSM_PROXY_VERBOSE');
    if (fromEnv !== undefined) verbose = parseWholeNumber(fromEnv, 'SSM_PROXY_VERBOSE', 0, 9);
  }

  let logFile: string | undefined;
  if (values['log-file'] !== undefined) {
    if (values['log-file'] === '') throw new UsageError('--log-file is empty');
    logFile = values['log-file'];
  } else logFile = envValue(env, 'SSM_PROXY_LOG_FILE');

  const frameRate = numberOption(values['frame-rate'], '--frame-rate', env, 'SSM_PROXY_FRAME_RATE', 0, MAX_FRAME_RATE, DEFAULT_FRAME_RATE);
  const maxPayload = numberOption(
    values['max-payload'],
    '--max-payload',
    env,
    'SSM_PROXY_MAX_PAYLOAD',
    1,
    MAX_PAYLOAD_LIMIT,
    DEFAULT_MAX_PAYLOAD,
  );

  let caBundle: string | undefined;
  if (values['ca-bundle'] !== undefined) {
    if (values['ca-bundle'] === '') throw new UsageError('--ca-bundle is empty');
    caBundle = values['ca-bundle'];
  } else caBundle = envValue(env, 'AWS_CA_BUNDLE');

  // Timing knobs for unusual networks (and for tests), environment only.
  const handshakeTimeoutSeconds = numberOption(undefined, 'SSM_PROXY_HANDSHAKE_TIMEOUT', env, 'SSM_PROXY_HANDSHAKE_TIMEOUT', 1, 3600, 30);
  const giveUpSeconds = numberOption(undefined, 'SSM_PROXY_GIVE_UP_AFTER', env, 'SSM_PROXY_GIVE_UP_AFTER', 1, 86400, 300);
  const reconnectSeconds = numberOption(undefined, 'SSM_PROXY_RECONNECT_FOR', env, 'SSM_PROXY_RECONNECT_FOR', 1, 86400, 300);

  const useSdk = switchOption(env, 'SSM_PROXY_USE_SDK');

  const options: ProxyOptions = { target, port, documentName, verbose, frameRate, maxPayload, handshakeTimeoutSeconds, giveUpSeconds, reconnectSeconds };
  // Absent rather than undefined keys, so callers can spread options without clobbering defaults.
  if (region !== undefined) options.region = region;
  if (profile !== undefined) options.profile = profile;
  if (profileFromEnv) options.profileFromEnv = true;
  if (reason !== undefined) options.reason = reason;
  if (endpointUrl !== undefined) options.endpointUrl = endpointUrl;
  if (logFile !== undefined) options.logFile = logFile;
  if (caBundle !== undefined) options.caBundle = caBundle;
  if (useSdk) options.useSdk = true;
  return options;
}

/** An on/off setting in the environment: 1, true, yes, on or 0, false, no, off (unset: off). */
function switchOption(env: NodeJS.ProcessEnv, name: string): boolean {
  const value = envValue(env, name);
  if (value === undefined || SWITCH_OFF.test(value)) return false;
  if (SWITCH_ON.test(value)) return true;
  throw new UsageError(`${name}=${quote(value)} is neither on (1, true, yes, on) nor off (0, false, no, off)`);
}

function numberOption(
  cliValue: string | undefined,
  cliName: string,
  env: NodeJS.ProcessEnv,
  envName: string,
  min: number,
  max: number,
  fallback: number,
): number {
  if (cliValue !== undefined) return parseWholeNumber(cliValue, cliName, min, max);
  const fromEnv = envValue(env, envName);
  return fromEnv !== undefined ? parseWholeNumber(fromEnv, envName, min, max) : fallback;
}

const HELP_WIDTH = 100;

/** Greedy word wrap; continuation lines are indented by `indent` spaces. */
function wrap(first: string, text: string, indent: number): string[] {
  const lines: string[] = [];
  let line = first;
  for (const word of text.split(' ')) {
    const candidate = line.length > indent && !line.endsWith(' ') ? `${line} ${word}` : `${line}${word}`;
    if (candidate.length > HELP_WIDTH && line.trim() !== '') {
      lines.push(line);
      line = `${' '.repeat(indent)}${word}`;
    } else line = candidate;
  }
  lines.push(line);
  return lines;
}

export function usageText(): string {
  const codeWidth = Math.max(...EXIT_CODE_DOCS.map((d) => (d.label ?? String(d.code)).length));
  const exitLines = EXIT_CODE_DOCS.flatMap((d) =>
    wrap(`  ${(d.label ?? String(d.code)).padEnd(codeWidth)}  `, d.meaning, codeWidth + 4),
  );
  return [
    `ssm-proxy ${VERSION}: OpenSSH ProxyCommand for AWS Systems Manager Session Manager`,
    '',
    `Usage: ${USAGE_LINE}`,
    '',
    '  <target>   managed node ID: i-… (EC2), mi-… (hybrid), or another Session Manager',
    '             target such as ecs:<cluster>_<task-id>_<container-runtime-id>',
    `  [port]     port on the target (default ${DEFAULT_PORT})`,
    '',
    'Options:',
    '  --region REGION        AWS region of the target',
    '  --profile NAME         AWS config/credentials profile',
    `  --document-name NAME   session document (default ${DEFAULT_DOCUMENT_NAME})`,
    `  --reason TEXT          reason recorded with the session (up to ${MAX_REASON_LENGTH} characters)`,
    '  --endpoint-url URL     SSM API endpoint (default: the regional endpoint)',
    '  --ca-bundle PATH       PEM file of CA certificates to trust for AWS HTTPS connections',
    '  -v, --verbose          diagnostics on stderr; repeat for more (-v info, -vv debug, -vvv trace)',
    '  --log-file PATH        append diagnostics to PATH (at least debug level); stderr then',
    '                         shows errors only',
    `  --frame-rate N         at most N data frames sent per second (default ${DEFAULT_FRAME_RATE}; 0 = unlimited)`,
    `  --max-payload BYTES    data bytes per frame, 1..${MAX_PAYLOAD_LIMIT} (default ${DEFAULT_MAX_PAYLOAD})`,
    '  -h, --help             show this help',
    '  -V, --version          show the version',
    '',
    'Environment (command-line options win):',
    '  AWS_PROFILE, then AWS_DEFAULT_PROFILE          profile',
    "  AWS_REGION, then AWS_DEFAULT_REGION            region (else the profile's region setting)",
    '  AWS_ENDPOINT_URL_SSM, then AWS_ENDPOINT_URL    SSM API endpoint',
    '  AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true       ignore configured endpoint URLs',
    '  AWS_CA_BUNDLE                                  CA bundle, as --ca-bundle',
    '  HTTPS_PROXY, HTTP_PROXY, NO_PROXY              http:// proxy for AWS calls and the data channel',
    '  AWS_EC2_METADATA_DISABLED=true                 skip the EC2 instance metadata credential lookup',
    '  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, and ~/.aws/config and',
    '  ~/.aws/credentials (SSO, role assumption, credential_process) as in the AWS CLI',
    '  SSM_PROXY_FRAME_RATE, SSM_PROXY_MAX_PAYLOAD, SSM_PROXY_LOG_FILE, SSM_PROXY_VERBOSE (a number)',
    '  SSM_PROXY_HANDSHAKE_TIMEOUT  seconds to wait for the agent\'s handshake (default 30)',
    '  SSM_PROXY_GIVE_UP_AFTER      seconds data may stay unacknowledged before giving up (default 300)',
    '  SSM_PROXY_RECONNECT_FOR      seconds to keep resuming a dropped data channel (default 300)',
    '  SSM_PROXY_USE_SDK=1          API calls through the AWS SDK even with keys in the environment',
    '',
    'Exit codes:',
    ...exitLines,
    '',
    'ssh configuration (~/.ssh/config):',
    '  Host i-* mi-*',
    '      ProxyCommand ssm-proxy %h %p',
    '',
  ].join('\n');
}
