// Exit codes are part of the user interface: scripts wrapping ssh can tell
// "fix your credentials" from "the instance is down" without parsing text.

export const ExitCode = {
  Ok: 0,
  Failure: 1,
  Usage: 2,
  Credentials: 3,
  AccessDenied: 4,
  TargetUnavailable: 5,
  Network: 6,
  PortRefused: 7,
  Protocol: 8,
  ConnectionLost: 9,
} as const;

export type ExitCodeName = keyof typeof ExitCode;
export type ExitCodeValue = (typeof ExitCode)[ExitCodeName];

/** Signals add this base, as shells do (130 = SIGINT, 143 = SIGTERM). */
export const SIGNAL_EXIT_BASE = 128;

/** The signals that end a session (ssh sends SIGHUP to its ProxyCommand), by number. */
export const SIGNAL_NUMBERS: Readonly<Record<string, number>> = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 };

export interface ExitCodeDoc {
  code: number;
  name: string;
  meaning: string;
  /** How to print the code when it is a family rather than one number. */
  label?: string;
}

/** Single source for --help and the README table. */
export const EXIT_CODE_DOCS: ExitCodeDoc[] = [
  { code: ExitCode.Ok, name: 'Ok', meaning: 'normal end: ssh closed the session, or the service closed it without an error' },
  {
    code: ExitCode.Failure,
    name: 'Failure',
    meaning: 'the session ended with an error reported by the service, or an unexpected failure',
  },
  { code: ExitCode.Usage, name: 'Usage', meaning: 'usage error: bad option, argument or environment variable; no AWS region configured' },
  { code: ExitCode.Credentials, name: 'Credentials', meaning: 'AWS credentials missing, invalid or expired' },
  { code: ExitCode.AccessDenied, name: 'AccessDenied', meaning: 'IAM denied the request (for example ssm:StartSession)' },
  {
    code: ExitCode.TargetUnavailable,
    name: 'TargetUnavailable',
    meaning: 'target or document not available: not connected to Session Manager, unknown target, invalid document or parameters',
  },
  {
    code: ExitCode.Network,
    name: 'Network',
    meaning:
      'network: SSM endpoint unreachable, unknown region or bad endpoint, websocket refused or closed during setup, throttled after retries',
  },
  { code: ExitCode.PortRefused, name: 'PortRefused', meaning: 'the agent could not connect to the port on the target' },
  { code: ExitCode.Protocol, name: 'Protocol', meaning: 'protocol violation by the peer, or handshake failure' },
  {
    code: ExitCode.ConnectionLost,
    name: 'ConnectionLost',
    meaning: 'connection lost and the session could not be resumed, or data could not be delivered in time',
  },
  {
    code: SIGNAL_EXIT_BASE,
    name: 'Signal',
    label: '128+N',
    meaning: 'terminated by signal N after cleanup (130 = SIGINT, 143 = SIGTERM, 129 = SIGHUP)',
  },
];

/**
 * An error meant for a person: `message` is one line saying what happened and
 * what to do, without the `ssm-proxy: ` prefix (the logger adds it).
 */
export class ProxyError extends Error {
  readonly exitCode: number;
  /** AWS error code or internal code, for logs and for callers that branch on it. */
  readonly code?: string;
  /** A fault on the service's side (HTTP 5xx) that may pass: worth another try in a retry loop. */
  readonly serviceFault: boolean;

  constructor(exitCode: number, message: string, code?: string, options?: { cause?: unknown; serviceFault?: boolean }) {
    super(message, options);
    this.name = 'ProxyError';
    this.exitCode = exitCode;
    this.code = code;
    this.serviceFault = options?.serviceFault ?? false;
  }
}

export function isProxyError(err: unknown): err is ProxyError {
  return err instanceof ProxyError;
}
