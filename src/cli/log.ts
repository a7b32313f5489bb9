// Diagnostics for people. stdout is the SSH stream, so this module only ever
// writes to stderr or to a log file, and it scrubs tokens and secrets first.
import { closeSync, openSync, writeSync } from 'node:fs';
import { ExitCode, ProxyError } from './exit-codes.ts';

export type LogLevel = 'error' | 'notice' | 'warn' | 'info' | 'debug' | 'trace';

/** Verbosity (-v count) at which each level starts to show. */
const LEVEL_VERBOSITY: Record<LogLevel, number> = { error: 0, notice: 0, warn: 1, info: 1, debug: 2, trace: 3 };

/** A log file is for after-the-fact diagnosis, so it records at least debug. */
const LOG_FILE_MIN_VERBOSITY = LEVEL_VERBOSITY.debug;

/** Registered secrets shorter than this would shred ordinary words. */
const MIN_SECRET_LENGTH = 4;

const PREFIX = 'ssm-proxy: ';
const REDACTED = '<redacted>';

export interface Logger {
  error(msg: string): void;
  /** Not an error, but for the person at any verbosity: what the service asks us to show. */
  notice(msg: string): void;
  warn(msg: string): void;
  info(msg: string): void;
  debug(msg: string): void;
  trace(msg: string): void;
  /** True when a message at `level` goes anywhere; lets callers skip costly formatting. */
  isEnabled(level: LogLevel): boolean;
  /** Scrub this exact value from every later message (session tokens, keys). */
  addSecret(secret: string): void;
  /** Closes the log file, if any. Later errors still reach stderr. */
  close(): void;
}

export interface LoggerOptions {
  verbose: number;
  logFile?: string;
  stderr?: { write(chunk: string): unknown };
  /** Injected for tests. */
  now?: () => Date;
}

// JSON fields whose value is a credential; an unterminated value (a truncated
// log line) is scrubbed to the end of the text.
const SECRET_JSON_FIELD =
  /"(TokenValue|SecretAccessKey|SessionToken|secretAccessKey|sessionToken|AccessToken|accessToken|Token|token)"(\s*:\s*)"(?:[^"\\]|\\.)*(?:"|$)/g;
const SECRET_ASSIGNMENT =
  /\b(aws_secret_access_key|aws_session_token|aws_security_token|x-amz-security-token|x-amz-signature)(["']?\s*[=:]\s*["']?)[^\s"'&,;}]+/gi;

/**
 * Removes anything that looks like a token or secret key: the extra `secrets`
 * verbatim, credential-bearing JSON fields, and credential assignments
 * (`aws_secret_access_key = …`, `X-Amz-Security-Token=…`).
 */
export function redact(text: string, secrets: Iterable<string> = []): string {
  let out = text;
  for (const secret of secrets) {
    if (secret.length >= MIN_SECRET_LENGTH && out.includes(secret)) out = out.split(secret).join(REDACTED);
  }
  out = out.replace(SECRET_JSON_FIELD, (_m, key: string, sep: string) => `"${key}"${sep}"${REDACTED}"`);
  out = out.replace(SECRET_ASSIGNMENT, (_m, key: string, sep: string) => `${key}${sep}${REDACTED}`);
  return out;
}

/**
 * Folds text onto one line: line breaks become single spaces and other control
 * characters are dropped, so a service message cannot move the terminal cursor.
 */
export function oneLine(text: string): string {
  return text
    .replace(/\s*[\r\n]+\s*/g, ' ')
    .replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, '')
    .trim();
}

/** The stderr line for an error, for use before a logger exists (argv errors). */
export function formatErrorLine(message: string): string {
  return `${PREFIX}${oneLine(redact(message))}\n`;
}

const STDERR_TAG: Record<LogLevel, string> = { error: '', notice: '', warn: 'warning: ', info: '', debug: 'debug: ', trace: 'trace: ' };

/** Throws ProxyError(Usage) when the log file cannot be opened. */
export function createLogger(options: LoggerOptions): Logger {
  // Errors must show whatever verbosity arrives, so anything odd counts as 0.
  const verbose = Number.isFinite(options.verbose) ? Math.max(0, Math.floor(options.verbose)) : 0;
  const stderr = options.stderr ?? process.stderr;
  const now = options.now ?? (() => new Date());
  // Longest first, so a secret that contains another is removed whole.
  const secrets: string[] = [];

  let fd: number | undefined;
  if (options.logFile !== undefined) {
    // 0o600: the file may hold session ids and stream URLs of the user's sessions.
    try {
      fd = openSync(options.logFile, 'a', 0o600);
    } catch (err) {
      throw new ProxyError(
        ExitCode.Usage,
        `cannot open the log file ${options.logFile} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); check --log-file or SSM_PROXY_LOG_FILE`,
        'LogFile',
        { cause: err },
      );
    }
  }
  const fileVerbosity = Math.max(verbose, LOG_FILE_MIN_VERBOSITY);
  // With a log file, stderr stays quiet apart from errors: ssh shows stderr to the user.
  const stderrVerbosity = fd === undefined ? verbose : 0;

  const toFile = (level: LogLevel): boolean => fd !== undefined && LEVEL_VERBOSITY[level] <= fileVerbosity;
  const toStderr = (level: LogLevel): boolean => LEVEL_VERBOSITY[level] <= stderrVerbosity;

  function writeFileLine(line: string): void {
    if (fd === undefined) return;
    try {
      writeSync(fd, line);
    } catch (err) {
      // A full disk must not end the SSH session; say so once and stop logging to the file.
      const failedFd = fd;
      fd = undefined;
      try {
        closeSync(failedFd);
      } catch {
        // already unusable
      }
      stderr.write(formatErrorLine(`cannot write the log file ${options.logFile}: ${(err as Error).message}; file logging stopped`));
    }
  }

  function log(level: LogLevel, msg: string): void {
    const wantFile = toFile(level);
    const wantStderr = toStderr(level);
    if (!wantFile && !wantStderr) return;
    const text = oneLine(redact(msg, secrets));
    if (wantStderr) stderr.write(`${PREFIX}${STDERR_TAG[level]}${text}\n`);
    if (wantFile) writeFileLine(`${now().toISOString()} [${process.pid}] ${level.toUpperCase()} ${text}\n`);
  }

  return {
    error: (msg) => log('error', msg),
    notice: (msg) => log('notice', msg),
    warn: (msg) => log('warn', msg),
    info: (msg) => log('info', msg),
    debug: (msg) => log('debug', msg),
    trace: (msg) => log('trace', msg),
    isEnabled: (level) => toFile(level) || toStderr(level),
    addSecret(secret) {
      if (secret.length < MIN_SECRET_LENGTH || secrets.includes(secret)) return;
      secrets.push(secret);
      secrets.sort((a, b) => b.length - a.length);
    },
    close() {
      if (fd === undefined) return;
      const closing = fd;
      fd = undefined;
      try {
        closeSync(closing);
      } catch {
        // nothing useful to do at exit
      }
    },
  };
}

/** A logger that drops everything; the default where logging is optional. */
export const silentLogger: Logger = {
  error() {},
  notice() {},
  warn() {},
  info() {},
  debug() {},
  trace() {},
  isEnabled: () => false,
  addSecret() {},
  close() {},
};
