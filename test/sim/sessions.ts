// Session registry shared by the fake SSM API and the fake data-channel gateway.
// Pure state plus an injectable clock and randomness, so tests can drive time and ids.
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';

export interface TargetConfig {
  /** Where the simulated agent connects for this target. Default 127.0.0.1. */
  host?: string;
  /** Fixed port; when absent the session's portNumber parameter is used on `host`. */
  port?: number;
}

export type SessionState = 'started' | 'connected' | 'terminated';

export interface SessionRecord {
  sessionId: string;
  target: string;
  documentName: string;
  parameters: Record<string, string[]>;
  reason?: string;
  port: number;
  host: string;
  state: SessionState;
  createdAt: number;
  terminatedAt?: number;
  terminateReason?: string;
}

export type ConsumeFailure =
  | 'unknown-session'
  | 'bad-token'
  | 'token-used'
  | 'token-expired'
  | 'session-terminated';

export type ConsumeResult =
  | { ok: true; record: SessionRecord }
  | { ok: false; reason: ConsumeFailure };

export interface SessionRegistryOptions {
  now?: () => number;
  /** How long a token from create/resume may be presented. Default 60 s. */
  tokenTtlMs?: number;
  /** Source of randomness for ids and tokens; must return at least 9 bytes per call. */
  random?: () => Buffer;
}

/** Events: 'created' (record), 'resumed' (record), 'connected' (record), 'terminated' (record). */
export interface SessionRegistryEvents {
  created: [SessionRecord];
  resumed: [SessionRecord];
  connected: [SessionRecord];
  terminated: [SessionRecord];
}

interface TokenState {
  issuedAt: number;
  used: boolean;
}

export const DEFAULT_TOKEN_TTL_MS = 60_000;

export class SessionRegistry extends EventEmitter<SessionRegistryEvents> {
  readonly now: () => number;
  readonly tokenTtlMs: number;
  private readonly random: () => Buffer;
  private readonly sessions = new Map<string, SessionRecord>();
  // Several tokens may be live at once (start token plus resume tokens); each is single use.
  private readonly tokens = new Map<string, Map<string, TokenState>>();

  constructor(opts: SessionRegistryOptions = {}) {
    super();
    this.now = opts.now ?? Date.now;
    this.tokenTtlMs = opts.tokenTtlMs ?? DEFAULT_TOKEN_TTL_MS;
    this.random = opts.random ?? (() => randomBytes(32));
  }

  create(
    target: string,
    documentName: string,
    parameters: Record<string, string[]>,
    port: number,
    host: string,
    reason?: string,
    caller = 'sim-user',
  ): { record: SessionRecord; token: string } {
    let sessionId: string;
    // A deterministic test source could repeat itself; never hand out a duplicate id.
    for (let attempt = 0; ; attempt++) {
      sessionId = `${caller}-${this.hex(17)}`;
      if (!this.sessions.has(sessionId)) break;
      if (attempt > 100) throw new Error('SessionRegistry: random source keeps repeating session ids');
    }
    const record: SessionRecord = {
      sessionId,
      target,
      documentName,
      parameters: structuredClone(parameters),
      port,
      host,
      state: 'started',
      createdAt: this.now(),
    };
    if (reason !== undefined) record.reason = reason;
    this.sessions.set(sessionId, record);
    this.tokens.set(sessionId, new Map());
    const token = this.issueToken(sessionId);
    this.emit('created', record);
    return { record, token };
  }

  resume(sessionId: string): { token: string } | { error: 'DoesNotExistException' } {
    const record = this.sessions.get(sessionId);
    if (!record || record.state === 'terminated') return { error: 'DoesNotExistException' };
    const token = this.issueToken(sessionId);
    this.emit('resumed', record);
    return { token };
  }

  /** Returns true only for the call that actually ended the session; later calls are no-ops. */
  terminate(sessionId: string, reason = 'TerminateSession'): boolean {
    const record = this.sessions.get(sessionId);
    if (!record || record.state === 'terminated') return false;
    record.state = 'terminated';
    record.terminatedAt = this.now();
    record.terminateReason = reason;
    // Outstanding tokens die with the session.
    this.tokens.get(sessionId)?.clear();
    this.emit('terminated', record);
    return true;
  }

  consumeToken(sessionId: string, token: string): ConsumeResult {
    const record = this.sessions.get(sessionId);
    if (!record) return { ok: false, reason: 'unknown-session' };
    if (record.state === 'terminated') return { ok: false, reason: 'session-terminated' };
    const state = this.tokens.get(sessionId)?.get(token);
    if (!state) return { ok: false, reason: 'bad-token' };
    if (state.used) return { ok: false, reason: 'token-used' };
    if (this.now() >= state.issuedAt + this.tokenTtlMs) return { ok: false, reason: 'token-expired' };
    state.used = true;
    if (record.state === 'started') {
      record.state = 'connected';
      this.emit('connected', record);
    }
    return { ok: true, record };
  }

  get(sessionId: string): SessionRecord | undefined {
    return this.sessions.get(sessionId);
  }

  list(): SessionRecord[] {
    return [...this.sessions.values()];
  }

  private issueToken(sessionId: string): string {
    // Standard base64 on purpose: clients must carry '+', '/' and '=' through untouched.
    const parts: Buffer[] = [];
    let len = 0;
    while (len < 48) {
      const b = this.random();
      if (b.length === 0) throw new Error('SessionRegistry: random source returned no bytes');
      parts.push(b);
      len += b.length;
    }
    const tokens = this.tokens.get(sessionId)!;
    let token = Buffer.concat(parts).toString('base64');
    // Keep tokens unique per session even with a repeating test source.
    while (tokens.has(token)) token += this.random().toString('base64');
    tokens.set(token, { issuedAt: this.now(), used: false });
    return token;
  }

  private hex(chars: number): string {
    let out = '';
    while (out.length < chars) out += this.random().toString('hex');
    return out.slice(0, chars);
  }
}
