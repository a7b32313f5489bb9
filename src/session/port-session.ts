// An SSH port session (PROTOCOL.md §9, §10, §11): stdin and stdout wired to the
// reliable channel with back-pressure both ways, the terminate procedure, and
// reconnect via ResumeSession. All protocol decisions stay in ReliableChannel.
import { randomUUID } from 'node:crypto';
import type { Writable } from 'node:stream';
import { ReliableChannel, type ChannelEvent } from '../channel/channel.ts';
import { PayloadFlag, TERMINATE_FLAG_MIN_AGENT_EXCLUSIVE } from '../protocol/constants.ts';
import { versionGreaterThan } from '../protocol/version.ts';
import { ExitCode, ProxyError, SIGNAL_EXIT_BASE, SIGNAL_NUMBERS } from '../cli/exit-codes.ts';
import { isTransientAwsError } from '../aws/errors.ts';
import type { Logger } from '../cli/log.ts';
import { DeadlineTimer } from '../transport/deadline-timer.ts';
import { WebSocketLink } from '../transport/websocket-link.ts';
import { BatchArenas } from '../transport/ws-frames.ts';
import type { ByteSource } from '../transport/stdin.ts';
import { dataChannelPreconnection, type Preconnection } from '../transport/preconnect.ts';
import { HeapGuard } from './heap-guard.ts';
import { monotonicMs } from '../transport/clock.ts';

export interface ResumeApi {
  resumeSession(sessionId: string): Promise<{ streamUrl: string; tokenValue: string } | 'timed-out'>;
  terminateSession(sessionId: string, timeoutMs?: number): Promise<void>;
}

export interface PortSessionOptions {
  sessionId: string;
  streamUrl: string;
  tokenValue: string;
  targetPort: number;
  api: ResumeApi;
  /** Its 'data' chunks may be reused once the listener returns (see ByteSource). */
  stdin: ByteSource;
  stdout: Writable;
  logger: Logger;
  clientVersion: string;
  allowInsecure: boolean;
  /** PEM CAs to trust for the data channel, as read for the SSM API. */
  ca?: string;
  /** A connection opened ahead of time for the first websocket (taken or closed by it). */
  preconnection?: Preconnection;
  frameRate: number;
  maxPayload: number;
  window?: number;
  giveUpMs?: number;
  handshakeTimeoutMs?: number;
  reconnectBudgetMs?: number;
  /** Wait for outstanding data to be acked at stdin EOF (§10.2: 5 s) or on a signal (1 s). */
  drainTimeoutMs?: number;
  signalDrainTimeoutMs?: number;
  flagAckTimeoutMs?: number;
  /** After the agent acked our TerminateSession flag: how long to wait for the service's channel_closed. */
  closeAfterFlagTimeoutMs?: number;
  terminateApiTimeoutMs?: number;
  pingIntervalMs?: number;
  deadAfterMs?: number;
}

export interface SessionStats {
  connectMs: number;
  bytesIn: number;
  bytesOut: number;
  /** Full collections the heap guard asked V8 for. */
  heapCollections: number;
  reconnects: number;
  retransmissions: number;
}

interface Outcome {
  code: number;
  message?: string;
}

const HEAP_CHECK_EVERY = 1024 * 1024;
/**
 * A data channel that fails before the handshake is retried (ResumeSession, new websocket)
 * for this long after the session started, at most: the agent gives the client 15 s from
 * the session's start to answer its HandshakeRequest (PROTOCOL.md §6.5), so a channel
 * opened later would only meet a failed session.
 */
const SETUP_RETRY_MS = 15_000;
/**
 * A new websocket counts as a recovery (fresh backoff and budget) only once it has stayed
 * up this long: one the service closes as soon as it opens would otherwise be retried at
 * once, forever, as fast as ResumeSession answers.
 */
const STABLE_LINK_MS = 10_000;

/** Whether a failed ResumeSession or websocket open may succeed if tried again. */
function worthRetrying(err: unknown): boolean {
  if (!(err instanceof ProxyError)) return true;
  // A certificate nobody vouches for will not be trusted a second later.
  return err.code !== 'WebSocketTlsUntrusted' && isTransientAwsError(err);
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
/**
 * Output waiting for ssh beyond which the websocket is no longer read. Pausing at
 * stdout's own 16 KiB mark stopped and restarted the socket on almost every batch
 * of frames while ssh was keeping up.
 */
const STDOUT_PAUSE_BYTES = 256 * 1024;

export class PortSession {
  private readonly channel: ReliableChannel;
  private readonly link: WebSocketLink;
  private readonly log: Logger;
  private readonly timer = new DeadlineTimer(() => {
    this.channel.tick(this.now());
    this.flush();
  });
  private handshakeTimer: NodeJS.Timeout | null = null;
  private stdinStarted = false;
  private stdinEnded = false;
  private stdoutBlocked = false;
  private readonly stdoutArenas = new BatchArenas();
  private terminating = false;
  private finished = false;
  private reconnecting = false;
  /** The deadline and backoff that losses share until a websocket proves stable (see reconnect). */
  private retry: { deadline: number; delay: number; setup: boolean } | undefined;
  private stableTimer: NodeJS.Timeout | undefined;
  private signalsReceived = 0;
  private sawHandshake = false;
  private readonly started = monotonicMs();
  private resolveRun!: (o: Outcome) => void;
  private waiters: (() => void)[] = [];
  readonly stats: SessionStats = { connectMs: 0, bytesIn: 0, bytesOut: 0, reconnects: 0, retransmissions: 0, heapCollections: 0 };
  private readonly heapGuard = new HeapGuard();
  /** Bytes moved (both ways) when the heap guard last looked. */
  private heapCheckedAt = 0;

  constructor(private readonly o: PortSessionOptions) {
    this.log = o.logger;
    this.channel = new ReliableChannel({
      role: 'client',
      now: this.now(),
      clientVersion: o.clientVersion,
      frameRate: o.frameRate,
      maxPayload: o.maxPayload,
      window: o.window,
      giveUpMs: o.giveUpMs,
      connected: false,
      // flush() hands every drain()'s frames to the link, which copies them at once.
      reuseFrameBuffers: true,
    });
    this.link = new WebSocketLink({
      clientId: randomUUID(),
      clientVersion: o.clientVersion,
      allowInsecure: o.allowInsecure,
      logger: o.logger,
      pingIntervalMs: o.pingIntervalMs,
      deadAfterMs: o.deadAfterMs,
      ca: o.ca,
    });
  }

  private now(): number {
    return monotonicMs();
  }

  /** Runs the session to its end and returns the exit code (and a message for a person, if any). */
  async run(): Promise<Outcome> {
    const done = new Promise<Outcome>((resolve) => (this.resolveRun = resolve));
    this.link.on('message', (buf) => {
      this.channel.receive(buf, this.link.receivedAt);
      this.scheduleFlush();
    });
    this.link.on('down', (why) => void this.onDown(why));
    this.o.stdout.on('drain', () => {
      if (!this.stdoutBlocked) return;
      this.stdoutBlocked = false;
      this.link.resumeReading();
      this.channel.setReadingHeld(false, this.now());
    });
    this.o.stdout.on('error', (err: NodeJS.ErrnoException) => {
      this.log.debug(`stdout: ${err.code ?? err.message}`);
      void this.terminate({ code: ExitCode.Ok }, 'ssh closed the connection (stdout)');
    });
    try {
      await this.link.connect(this.o.streamUrl, this.o.tokenValue, this.o.preconnection);
    } catch (err) {
      // Connection loss like any other (PROTOCOL.md §11.6), within the handshake's time.
      if (worthRetrying(err)) void this.reconnect(messageOf(err), err);
      else this.abandon(err instanceof ProxyError ? { code: err.exitCode, message: err.message } : { code: ExitCode.Network, message: messageOf(err) });
      return done;
    }
    this.linkUp();
    return done;
  }

  /** A websocket is open (the first, or one after a reconnect): frames may flow. */
  private linkUp(): void {
    this.channel.setConnected(true, this.now());
    if (this.retry) {
      clearTimeout(this.stableTimer);
      this.stableTimer = setTimeout(() => {
        if (!this.retry?.setup) this.retry = undefined;
      }, STABLE_LINK_MS);
      this.stableTimer.unref();
    }
    this.flush();
    if (this.handshakeTimer || this.channel.ready || this.finished) return;
    this.handshakeTimer = setTimeout(() => {
      if (!this.channel.ready) {
        void this.terminate({ code: ExitCode.Protocol, message: `no handshake from the SSM agent within ${Math.round(this.handshakeTimeoutMs / 1000)} s; check that the agent on the target is running and up to date` }, 'handshake timeout');
      }
    }, this.handshakeTimeoutMs);
  }

  /**
   * Ends a session the service still holds open: the TerminateSession API (best effort,
   * bounded) so that it does not linger until the idle timeout, then the outcome.
   */
  private abandon(outcome: Outcome): void {
    // A terminate procedure under way makes the API call itself once this ends its waits.
    if (this.terminating) this.finish(outcome);
    else void this.terminate(outcome, 'giving up', false, false);
  }

  private get handshakeTimeoutMs(): number {
    return this.o.handshakeTimeoutMs ?? 30_000;
  }

  /** Starts the terminate procedure on a signal (SIGHUP from ssh, SIGTERM, SIGINT). */
  signal(name: string): void {
    const n = SIGNAL_NUMBERS[name] ?? 15;
    this.signalsReceived++;
    if (this.terminating) {
      // ssh closes our stdin and sends SIGHUP right after: that first signal lets the
      // (bounded) cleanup run on. A second one means stop now.
      if (this.signalsReceived >= 2) this.finish({ code: SIGNAL_EXIT_BASE + n });
      return;
    }
    void this.terminate({ code: SIGNAL_EXIT_BASE + n }, name, true);
  }

  // ---- the pump: after every input, send, deliver, react, re-arm ----

  private flushScheduled = false;

  /**
   * ws parses every message of one socket read in a row; one flush after all of
   * them (acks, deliveries, timer) costs far less than one per message.
   */
  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    process.nextTick(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    const out = this.channel.drain();
    if (out.transmit.length > 0) this.link.sendFrames(out.transmit);
    const deliver = out.deliver;
    for (const b of deliver) this.stats.bytesIn += b.length;
    if (!this.finished && deliver.length === 1) this.o.stdout.write(deliver[0]);
    else if (!this.finished && deliver.length > 1) {
      // One write for the payloads of every frame parsed from one socket read: a stream
      // write per ~1 KiB payload cost more than copying them together.
      const batch = this.stdoutArenas.gather(deliver);
      this.o.stdout.write(batch.bytes, batch.done);
    }
    if (!this.stdoutBlocked && !this.finished && this.o.stdout.writableLength > STDOUT_PAUSE_BYTES) {
      // ssh is not keeping up: stop reading the websocket until stdout drains.
      this.stdoutBlocked = true;
      this.link.pauseReading();
      this.channel.setReadingHeld(true, this.now());
    }
    for (const e of out.events) this.onEvent(e);
    const moved = this.stats.bytesIn + this.stats.bytesOut;
    if (moved - this.heapCheckedAt >= HEAP_CHECK_EVERY) {
      this.heapCheckedAt = moved;
      this.heapGuard.check();
      this.stats.heapCollections = this.heapGuard.collections;
    }
    this.rearm();
    if (this.waiters.length > 0) {
      const w = this.waiters;
      this.waiters = [];
      for (const f of w) f();
    }
  }

  private rearm(): void {
    if (this.finished) return;
    const now = this.now();
    this.timer.arm(this.channel.nextDeadline(now), now);
  }

  private onEvent(e: ChannelEvent): void {
    switch (e.type) {
      case 'handshake-request':
        this.sawHandshake = true;
        this.log.debug(`handshake: agent version ${e.request.agentVersion}`);
        break;
      case 'ready':
        if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
        this.stats.connectMs = this.now() - this.started;
        this.log.debug(`session ready after ${this.stats.connectMs.toFixed(0)} ms`);
        // Shown to the user (§6.4), on stderr: the reference printed it into the SSH stream.
        if (e.customerMessage) this.log.notice(`message from the SSM agent: ${e.customerMessage}`);
        this.startStdin();
        break;
      case 'channel-closed':
        this.onChannelClosed(e.closed.output, e.stranded);
        break;
      case 'fatal':
        void this.terminate({ code: ExitCode.Protocol, message: e.kind === 'handshake' ? `the session handshake failed: ${e.message}` : `protocol error from the service: ${e.message}; retry, and report it if it persists` }, 'protocol error', false, false);
        break;
      case 'give-up':
        void this.terminate({ code: ExitCode.ConnectionLost, message: `the SSM agent has not acknowledged data for ${Math.round(e.unackedMs / 1000)} s; giving up on the session` }, 'give-up', false, false);
        break;
      case 'flag':
        if (e.flag === PayloadFlag.ConnectToPortError) {
          void this.terminate({ code: ExitCode.PortRefused, message: `the SSM agent could not connect to port ${this.o.targetPort} on the target; check that sshd is listening there` }, 'ConnectToPortError');
        }
        break;
      case 'drain':
        if (this.stdinStarted && !this.stdinEnded && !this.terminating) this.o.stdin.resume();
        break;
      case 'paused':
      case 'resumed':
        this.log.debug(`service ${e.type} publication`);
        break;
      case 'anomaly':
        this.log.debug(`ignored from the service: ${e.kind}: ${e.detail}`);
        break;
      case 'handshake-response':
        break;
    }
  }

  private startStdin(): void {
    if (this.stdinStarted || this.terminating) return;
    this.stdinStarted = true;
    const stdin = this.o.stdin;
    stdin.on('data', (chunk: Buffer) => {
      this.stats.bytesOut += chunk.length;
      if (!this.channel.write(chunk, this.now())) stdin.pause();
      this.flush();
    });
    stdin.on('end', () => {
      this.stdinEnded = true;
      void this.terminate({ code: ExitCode.Ok }, 'stdin closed');
    });
    stdin.on('error', (err) => {
      this.log.debug(`stdin: ${err.message}`);
      this.stdinEnded = true;
      void this.terminate({ code: ExitCode.Ok }, 'stdin error');
    });
    stdin.resume();
  }

  private onChannelClosed(output: string, stranded: number): void {
    if (this.terminating) {
      // Our own terminate procedure (usually its TerminateSession flag) ended the
      // session: it finishes with its own outcome; the waits below it just end early.
      this.log.debug(`the service closed the session during termination${output ? `: ${output}` : ''}`);
      return;
    }
    if (output === '' && stranded > 0) {
      // The agent ended without resending frames lost on the way (it waits ~2 s after the
      // target closes): output after the gap can never be written in order.
      this.finish({ code: ExitCode.ConnectionLost, message: `the service closed the session while output from the target was still missing (${stranded} bytes received after a gap could not be delivered); the end of the output is lost` });
      return;
    }
    if (output === '') {
      this.log.debug('the service closed the session');
      this.finish({ code: ExitCode.Ok });
      return;
    }
    if (/unable to connect|connection refused|connect: /i.test(output)) {
      this.finish({ code: ExitCode.PortRefused, message: `the SSM agent could not connect to port ${this.o.targetPort} on the target (${output}); check that sshd is listening on that port` });
      return;
    }
    this.finish({ code: ExitCode.Failure, message: `the session was closed by the service: ${output}` });
  }

  // ---- termination (§10.2) ----

  /**
   * Resolves when `cond` holds, or early when the session is over either way; false after
   * `timeoutMs`. With `remaining`, the time counts from the last time it went down: a wait
   * for the agent to take our data ends when that stalls, not while it is being taken.
   */
  private waitFor(cond: () => boolean, timeoutMs: number, remaining?: () => number): Promise<boolean> {
    const over = () => this.finished || this.channel.closed;
    return new Promise((resolve) => {
      if (cond() || over()) return resolve(cond());
      let done = false;
      let last = remaining?.() ?? 0;
      let deadline = this.now() + timeoutMs;
      const end = (value: boolean) => {
        done = true;
        clearTimeout(timer);
        resolve(value);
      };
      const expire = () => {
        const left = deadline - this.now();
        if (left > 0) timer = setTimeout(expire, left);
        else end(false);
      };
      let timer = setTimeout(expire, timeoutMs);
      const check = () => {
        if (done) return;
        if (cond() || over()) return end(cond());
        const r = remaining?.();
        if (r !== undefined && r < last) {
          last = r;
          deadline = this.now() + timeoutMs;
        }
        this.waiters.push(check);
      };
      this.waiters.push(check);
    });
  }

  /** Bytes from stdin the agent has not acknowledged: in unacked data frames (at most) and not yet framed. */
  private undeliveredBytes(): number {
    return this.channel.unackedData * this.o.maxPayload + this.channel.pendingBytes;
  }

  /** `graceful` false: the peer cannot take our data or our flag; only the API call is left. */
  private async terminate(outcome: Outcome, why: string, bySignal = false, graceful = true): Promise<void> {
    if (this.terminating || this.finished) return;
    this.terminating = true;
    this.log.debug(`terminating: ${why}`);
    this.o.stdin.pause();
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    const live = () => this.link.isOpen && !this.finished && !this.channel.closed;
    // §10.2 waits up to 5 s (1 s on a signal) for the agent to take what stdin gave us;
    // here that is 5 s without progress, so a slow target still gets all of it.
    const drainMs = bySignal ? (this.o.signalDrainTimeoutMs ?? 1_000) : (this.o.drainTimeoutMs ?? 5_000);
    if (graceful && this.channel.ready && !this.link.isOpen && !this.channel.closed) {
      // What stdin gave us waits in the channel: give the reconnect under way (or about to
      // start: the socket can be closed a turn before the link reports it) the drain's time.
      if (!(await this.waitFor(() => this.link.isOpen, drainMs))) this.log.debug('terminating while the data channel is still down');
    }
    if (graceful && this.channel.ready && live()) {
      const drained = await this.waitFor(() => this.channel.unacked === 0 && this.channel.pendingBytes === 0, drainMs, bySignal ? undefined : () => this.undeliveredBytes());
      if (!drained) this.log.debug('terminating with data still unacknowledged');
      if (live() && versionGreaterThan(this.channel.agentVersion, TERMINATE_FLAG_MIN_AGENT_EXCLUSIVE)) {
        this.channel.sendFlag(PayloadFlag.TerminateSession, this.now());
        this.flush();
        const acked = await this.waitFor(() => this.channel.unacked === 0, this.o.flagAckTimeoutMs ?? 2_000);
        // An agent that takes the flag ends the session, and the service then closes the
        // channel (§9.5): that comes about one round trip after the ack.
        if (acked && live()) await this.waitFor(() => this.channel.closed, this.o.closeAfterFlagTimeoutMs ?? 1_000);
      }
    }
    // Once the service has closed the channel the session is over (§5.3, §10.2 step 6): the
    // API call would only spend a rate-limited request. It is made when the flag could not
    // be sent, was not taken (agents too old for it) or was lost.
    let abandoned = 0;
    if (this.channel.closed) this.log.debug('session already closed by the service; no TerminateSession call');
    else {
      // The API ends the session whatever is still on its way to the agent. (An agent that
      // took our flag took everything before it, in order; a service that closed the
      // channel first did so because the target closed its side.)
      abandoned = graceful && this.channel.ready ? this.undeliveredBytes() : 0;
      await this.o.api.terminateSession(this.o.sessionId, this.o.terminateApiTimeoutMs ?? 3_000);
    }
    // An end that would report success must not hide data the target never got.
    if (outcome.code === ExitCode.Ok && abandoned > 0) {
      outcome = { code: ExitCode.ConnectionLost, message: `the session ended before the SSM agent acknowledged the last data from stdin (up to ${abandoned} bytes); the target may not have received all of it` };
    }
    this.finish(outcome);
  }

  private finish(outcome: Outcome): void {
    if (this.finished) return;
    this.finished = true;
    this.timer.clear();
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    clearTimeout(this.stableTimer);
    this.stats.retransmissions = this.channel.senderStats.retransmissions;
    this.o.stdin.pause();
    this.o.stdin.removeAllListeners('data');
    for (const w of this.waiters.splice(0)) w();
    void this.link.close().then(() => this.resolveRun(outcome));
  }

  // ---- reconnect (§11.6) ----

  /**
   * A connection to where the websocket was, opened while ResumeSession is answered (the
   * StreamUrl rarely moves); none where a proxy applies or the URL would be refused.
   */
  private openAhead(streamUrl: string): Preconnection | undefined {
    try {
      return dataChannelPreconnection(streamUrl, this.o.allowInsecure, this.o.ca);
    } catch {
      return undefined; // only a head start
    }
  }

  private async onDown(why: string): Promise<void> {
    if (this.finished || this.reconnecting) return;
    clearTimeout(this.stableTimer);
    this.channel.setConnected(false, this.now());
    this.log.debug(`data channel lost: ${why}`);
    if (this.channel.closed) return;
    await this.reconnect(why);
  }

  /**
   * ResumeSession and a new websocket, with backoff, until one works or the budget is
   * spent (§11.6). Losses share one budget and one backoff until a websocket has stayed up
   * STABLE_LINK_MS. Before the handshake no websocket counts as recovered, and the budget
   * ends SETUP_RETRY_MS after the start. `openError` is the first websocket's failure to
   * open, if that is what brought us here.
   */
  private async reconnect(why: string, openError?: unknown): Promise<void> {
    if (this.finished || this.reconnecting) return;
    const setup = !this.sawHandshake;
    const budget = this.o.reconnectBudgetMs ?? 300_000;
    if (this.retry && this.retry.setup && !setup) this.retry = undefined; // the handshake came since
    const retry = (this.retry ??= { deadline: setup ? Math.min(this.now() + budget, this.started + SETUP_RETRY_MS) : this.now() + budget, delay: 0, setup });
    const gaveUp = (last: string): Outcome => {
      if (openError instanceof ProxyError) return { code: openError.exitCode, message: openError.message };
      if (setup) return { code: ExitCode.Network, message: `the Session Manager data channel closed during setup (${last}); retry, and check network access to ssmmessages` };
      return { code: ExitCode.ConnectionLost, message: `lost the connection to Session Manager and could not resume within ${Math.round(budget / 1000)} s (${last}); check your network` };
    };
    this.reconnecting = true;
    let url = this.o.streamUrl;
    let lastError = why;
    try {
      for (let attempt = 1; !this.finished; attempt++) {
        // The first attempt goes at once, unless a websocket that did not last has just failed again.
        if (this.now() + retry.delay >= retry.deadline) break;
        if (retry.delay > 0) {
          await new Promise((r) => setTimeout(r, retry.delay * (0.8 + Math.random() * 0.4)));
          if (this.finished) return;
        }
        retry.delay = retry.delay === 0 ? 500 : Math.min(retry.delay * 2, 10_000);
        const pre = this.openAhead(url);
        try {
          const r = await this.o.api.resumeSession(this.o.sessionId);
          if (r === 'timed-out') {
            this.finish({ code: ExitCode.ConnectionLost, message: 'the session timed out while reconnecting; start a new connection' });
            return;
          }
          if (this.finished) return;
          if (r.streamUrl) url = r.streamUrl;
          // Only a connection that got through its TCP handshake: one still trying may be
          // waiting out a SYN retransmission from the outage, while a fresh one goes now.
          if (pre && !pre.established) this.log.trace(`data channel: not using the connection opened ahead (${pre.failure ?? 'still connecting'})`);
          await this.link.connect(url, r.tokenValue, pre?.established ? pre : undefined);
          // A new websocket starts reading; keep honouring a congested stdout.
          if (this.stdoutBlocked) this.link.pauseReading();
          this.stats.reconnects++;
          this.log.debug(`data channel resumed after ${attempt} attempt(s)`);
          this.linkUp();
          return;
        } catch (err) {
          if (err instanceof ProxyError && err.exitCode === ExitCode.ConnectionLost) {
            // The session no longer exists: nothing is left to terminate.
            this.finish({ code: ExitCode.ConnectionLost, message: `cannot resume the session: ${err.message}` });
            return;
          }
          if (!worthRetrying(err)) {
            this.abandon({ code: err instanceof ProxyError ? err.exitCode : ExitCode.Failure, message: `cannot resume the session: ${messageOf(err)}` });
            return;
          }
          lastError = messageOf(err);
          this.log.debug(`resume attempt ${attempt} failed: ${lastError}`);
        } finally {
          pre?.discard(); // a no-op once the websocket took it
        }
      }
      if (!this.finished) this.abandon(gaveUp(lastError));
    } finally {
      this.reconnecting = false;
    }
  }
}
