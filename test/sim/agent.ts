// The simulated SSM agent for one session (PROTOCOL.md §6, §8, §9, §12): a ReliableChannel in the
// agent role, relaying the client's websocket (through the gateway) to a real local TCP port. It
// stays across client reconnects, paces target reads like the real agent and ends the session
// with channel_closed. Every client frame passes the ClientMonitor before the faults.
import { createServer as createTcpServer, connect as tcpConnect, type AddressInfo, type Socket } from 'node:net';
import { randomUUID } from 'node:crypto';
import { WebSocket } from 'ws';
import { corkUntilNextTick } from '../../src/transport/cork.ts';
import { directSocket, encodeBinaryMessages } from '../../src/transport/ws-frames.ts';
import { DeadlineTimer } from '../../src/transport/deadline-timer.ts';
import { ReliableChannel, type ChannelEvent } from '../../src/channel/channel.ts';
import { MessageType, PayloadFlag, PayloadType } from '../../src/protocol/constants.ts';
import { encodeFrame } from '../../src/protocol/frame.ts';
import { versionGreaterThan } from '../../src/protocol/version.ts';
import { encodeChannelClosed } from '../../src/protocol/payloads.ts';
import { FaultInjector, closeDue, peekHeader, type FaultCounts, type FaultDecision } from './faults.ts';
import type { SessionRecord } from './sessions.ts';
import { ClientMonitor, nonZero, type ViolationCounts } from './violations.ts';
import type { Gateway } from './gateway.ts';

export const CLOSE_POLICY = 1008;
/** Close code when a newer websocket for the same session replaces this one. */
export const CLOSE_REPLACED = 4000;
const WS_HIGH_WATER = 1024 * 1024;
const WS_LOW_WATER = 512 * 1024;
const SLOW_TARGET_TICK_MS = 10;

export interface SessionStats {
  sessionId: string;
  target: string;
  ordinal: number;
  state: 'handshaking' | 'open' | 'draining' | 'closed';
  attached: boolean;
  connects: number;
  framesFromClient: number;
  bytesFromClient: number;
  dataFramesFromClient: number;
  acksFromClient: number;
  framesToClient: number;
  bytesToClient: number;
  pausesSent: number;
  startsSent: number;
  /** Client frames whose seq the gateway had seen before (byte-identical). */
  retransmissionsSeen: number;
  /** Client frames the agent had already processed (it re-acked them). */
  duplicatesAtAgent: number;
  agentRetransmissions: number;
  agentFramesSent: number;
  droppedByPolicy: number;
  bytesToTarget: number;
  bytesFromTarget: number;
  /** Times the agent stopped taking client data because the target socket was full. */
  consumerStalls: number;
  anomalies: Record<string, number>;
  violations: Partial<ViolationCounts>;
  faults: FaultCounts;
  closedOutput?: string;
  endReason?: string;
}

export interface TimelineEntry {
  /** ms since the agent started. */
  t: number;
  event: string;
  detail?: string;
}

/** One client websocket. */
export class ClientConn {
  readonly id: number;
  readonly openedAt = performance.now();
  bytes = 0;
  inflightBytes = 0;
  session?: AgentSession;
  closed = false;
  closeTimer?: NodeJS.Timeout;
  /** Frames sent this tick, written together (see AgentSession.writeOut). */
  outQueue: Buffer[] = [];
  outScheduled = false;
  constructor(
    readonly ws: WebSocket,
    id: number,
  ) {
    this.id = id;
  }
  get open(): boolean {
    return !this.closed && this.ws.readyState === WebSocket.OPEN;
  }
}

const FIRST_AGENT_TAKING_TERMINATE_FLAG = '2.3.756.0';

function controlFrame(messageType: string, payload: Buffer = Buffer.alloc(0)): Buffer {
  return encodeFrame({ messageType, createdDate: Date.now(), sequenceNumber: 0, flags: 0, messageId: randomUUID(), payloadType: PayloadType.Unset, payload });
}

function dialError(err: NodeJS.ErrnoException, host: string, port: number): string {
  const why =
    err.code === 'ECONNREFUSED' ? 'connect: connection refused' : err.code === 'ETIMEDOUT' ? 'i/o timeout' : err.code === 'EHOSTUNREACH' ? 'connect: no route to host' : err.message;
  return `Unable to connect to specified port: dial tcp ${host}:${port}: ${why}`;
}

/** A port on 127.0.0.1 with no listener: bound once, then released. */
function unusedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createTcpServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** The simulated agent for one session, kept across client reconnects. */
export class AgentSession {
  readonly id: string;
  readonly record: SessionRecord;
  readonly ordinal: number;
  readonly channel: ReliableChannel;
  readonly monitor: ClientMonitor;
  readonly faults: FaultInjector;
  readonly timeline: TimelineEntry[] = [];
  readonly startedAt = performance.now();
  conn?: ClientConn;
  private connects = 0;
  private target?: Socket;
  private targetState: 'none' | 'dialing' | 'open' | 'closed' = 'none';
  private targetEof = false;
  private targetError?: string;
  private leftover: Buffer | null = null;
  private pumpScheduled = false;
  private channelBlocked = false;
  private targetWriteBlocked = false;
  private consumerReady = false;
  private slowQueue: Buffer[] = [];
  private slowQueued = 0;
  private slowTimer?: NodeJS.Timeout;
  private slowLast = 0;
  private draining = false;
  ended = false;
  closedOutput?: string;
  endReason?: string;
  private flushing = false;
  private readonly timer = new DeadlineTimer(() => {
    if (this.ended) return;
    this.channel.tick(performance.now());
    this.flush();
  });
  private readonly timers = new Set<NodeJS.Timeout>();
  private missingAckTimer?: NodeJS.Timeout;
  private missingAckAt = Infinity;
  private penaltyTimer?: NodeJS.Timeout;
  private readonly episodes: number[] = [];
  private pausesSent = 0;
  private startsSent = 0;
  private framesToClient = 0;
  private bytesToClient = 0;
  private bytesToTarget = 0;
  private bytesFromTarget = 0;
  private droppedByPolicy = 0;
  private readonly anomalies: Record<string, number> = {};
  private closedOnce = false;
  /** Times the agent stopped taking client data because the target could not keep up. */
  private consumerStalls = 0;

  constructor(
    private readonly gw: Gateway,
    record: SessionRecord,
    ordinal: number,
  ) {
    const o = gw.opts;
    this.id = record.sessionId;
    this.record = record;
    this.ordinal = ordinal;
    const now = performance.now();
    this.channel = new ReliableChannel({
      role: 'agent',
      now,
      agentVersion: o.agentVersion,
      properties: { portNumber: record.parameters.portNumber?.[0] ?? String(record.port) },
      retransmitPolicy: this.gw.opts.agentRetransmit, // 'oldest-only' is the real agent's (§8.5)
      window: 100_000,
      maxPayload: Math.max(1, o.agentChunk),
      connected: true,
      customerMessage: o.customerMessage ?? '',
    });
    // The agent leaves client data unacked until its dial to the target completes (Q32).
    this.channel.setConsumerReady(false, now);
    this.monitor = new ClientMonitor(
      { maxClientPayload: o.maxClientPayload, frameRate: o.frameRate, frameBurst: o.frameBurst, pauseGraceMs: o.pauseGraceMs, missingAckMs: o.missingAckMs },
      (kind, detail) => gw.recordViolation(kind, this.id, detail),
      now,
    );
    this.faults = new FaultInjector(o.faults, o.seed, ordinal, () => performance.now() - this.startedAt);
  }

  private log(line: string): void {
    this.gw.log(`[${this.id}] ${line}`);
  }

  private mark(event: string, detail?: string): void {
    this.timeline.push(detail === undefined ? { t: performance.now() - this.startedAt, event } : { t: performance.now() - this.startedAt, event, detail });
    this.gw.emit('change');
  }

  private setTimer(ms: number, fn: () => void): NodeJS.Timeout {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
    return t;
  }

  /**
   * The agent sends only while a client websocket is attached and the client is not paused:
   * pause_publication tells the client its peer is inactive (§12.1), so nothing may come from
   * that peer meanwhile (a correct client unpauses on any agent frame, §12.4).
   */
  private updateAgentConnected(): void {
    if (this.ended) return;
    this.channel.setConnected(!!this.conn && !this.monitor.paused, performance.now());
  }

  // ---- client attachment ----

  attach(conn: ClientConn): void {
    if (this.ended) {
      this.closeWs(conn, CLOSE_POLICY, 'session-terminated');
      return;
    }
    const old = this.conn;
    if (old) {
      this.detach(old, 'replaced');
      this.closeWs(old, CLOSE_REPLACED, 'replaced by a newer connection');
    }
    const now = performance.now();
    this.conn = conn;
    conn.session = this;
    if (this.readingPaused) conn.ws.pause();
    this.connects++;
    this.mark('attach', `connection ${conn.id}`);
    this.armCloseFaults(conn);
    if (this.connects === 1) {
      this.channel.startHandshake(now);
      this.mark('handshake-request');
      // The real agent starts the session, and this clock, when StartSession is called, and
      // the clock keeps running while the client is late to connect (§6.5).
      const late = Math.max(0, this.gw.opts.registry.now() - this.record.createdAt);
      this.setTimer(Math.max(0, this.gw.opts.handshakeTimeoutMs - late), () => {
        if (!this.channel.ready && !this.ended) {
          this.endSession('failed', 'Handshake timed out. Please ensure that you have the latest version of the session manager plugin.', 'handshake timeout');
        }
      });
      this.armPauseFault();
    } else {
      // A pause does not survive the websocket it was sent on (monitor.onDetach cleared it).
      if (this.penaltyTimer) {
        clearTimeout(this.penaltyTimer);
        this.penaltyTimer = undefined;
      }
      if (this.gw.opts.startPublicationOnReattach) {
        this.sendControl(conn, controlFrame(MessageType.StartPublication));
        this.startsSent++;
        this.monitor.onStartSent();
      }
      this.updateAgentConnected();
    }
    this.flush();
    this.kick();
  }

  detach(conn: ClientConn, why: string): void {
    if (this.conn !== conn) return;
    this.conn = undefined;
    conn.session = undefined;
    if (conn.closeTimer) clearTimeout(conn.closeTimer);
    this.mark('detach', why);
    if (this.ended) return;
    this.monitor.onDetach();
    this.updateAgentConnected();
    this.faults.reset();
    this.flush();
  }

  private armCloseFaults(conn: ClientConn): void {
    const o = this.gw.opts;
    const f = o.faults.closeClient;
    let ms = Infinity;
    let recycle = false;
    if (f?.afterMs !== undefined && (f.repeat || !this.closedOnce)) ms = f.afterMs;
    if (o.recycleMs > 0 && o.recycleMs < ms) {
      ms = o.recycleMs;
      recycle = true;
    }
    if (ms === Infinity) return;
    conn.closeTimer = setTimeout(() => {
      if (conn.closed || this.conn !== conn) return;
      if (recycle) {
        this.faults.counts.recycles++;
        this.mark('recycle');
        this.closeWs(conn, 1000, 'Bye');
      } else this.faultClose(conn);
    }, ms);
  }

  private faultClose(conn: ClientConn): void {
    const f = this.gw.opts.faults.closeClient ?? {};
    this.closedOnce = true;
    this.faults.counts.closes++;
    this.mark('fault-close', `after ${conn.bytes} bytes`);
    // Detach first so nothing else goes out on a connection that is being cut.
    this.detach(conn, 'fault close');
    if ((f.mode ?? 'terminate') === 'terminate') conn.ws.terminate();
    else this.closeWs(conn, f.code ?? 1001, f.reason ?? 'fault injection');
  }

  private countBytes(conn: ClientConn, n: number): void {
    conn.bytes += n;
    if (closeDue(this.gw.opts.faults.closeClient, conn.bytes, this.closedOnce) && this.conn === conn) {
      setImmediate(() => {
        if (this.conn === conn && !conn.closed) this.faultClose(conn);
      });
    }
  }

  // ---- client -> agent ----

  onClientMessage(conn: ClientConn, data: Buffer, isBinary: boolean): void {
    if (this.ended || this.conn !== conn) return;
    this.countBytes(conn, data.length);
    const now = performance.now();
    if (!isBinary) {
      this.monitor.inspectText(data.length);
      return;
    }
    const verdict = this.monitor.inspectBinary(data, now);
    if (!verdict.forward) {
      this.droppedByPolicy++;
      if (verdict.reason === 'budget' || verdict.reason === 'oversize') this.penalise(verdict.reason, now);
      return;
    }
    this.faults.apply('clientToAgent', data, (bytes) => this.toAgent(bytes));
  }

  private toAgent(bytes: Buffer): void {
    if (this.ended) return;
    // Faults that alter a frame make a copy, so the monitor's decoding of these very bytes still holds.
    const decoded = this.monitor.decodedFrame(bytes);
    if (decoded) this.channel.receiveFrame(decoded, performance.now());
    else this.channel.receive(bytes, performance.now());
    this.flush();
  }

  /** Service limits: pause the client, drop what it sends, let it go again after a penalty. */
  private penalise(reason: 'budget' | 'oversize', now: number): void {
    const conn = this.conn;
    if (!conn || this.ended || this.monitor.paused) return;
    const o = this.gw.opts;
    this.episodes.push(now);
    while (this.episodes.length > 0 && now - this.episodes[0] > o.sustain.windowMs) this.episodes.shift();
    if (this.episodes.length >= o.sustain.episodes) {
      this.endSession('failed', `rate exceeded: the client broke the service's limits ${this.episodes.length} times in ${o.sustain.windowMs / 1000} s (${reason})`, 'rate exceeded');
      return;
    }
    this.mark('pause', reason);
    this.sendControl(conn, controlFrame(MessageType.PausePublication));
    this.pausesSent++;
    this.monitor.onPauseSent(now);
    this.updateAgentConnected();
    this.penaltyTimer = this.setTimer(o.penaltyMs, () => {
      this.penaltyTimer = undefined;
      this.resumeClient();
    });
  }

  private resumeClient(): void {
    if (this.ended) return;
    const conn = this.conn;
    this.monitor.onStartSent();
    if (conn) {
      this.mark('start');
      this.sendControl(conn, controlFrame(MessageType.StartPublication));
      this.startsSent++;
    }
    this.updateAgentConnected();
    this.flush();
    this.kick();
  }

  /** Pause the client as MGS does while the agent's own websocket reconnects (§12.1). */
  pauseClient(forMs: number): void {
    const conn = this.conn;
    if (!conn || this.ended || this.monitor.paused) return;
    this.faults.counts.pausesInjected++;
    this.mark('pause', 'agent reconnecting');
    this.sendControl(conn, controlFrame(MessageType.PausePublication));
    this.pausesSent++;
    this.monitor.onPauseSent(performance.now());
    this.updateAgentConnected();
    this.penaltyTimer = this.setTimer(forMs, () => {
      this.penaltyTimer = undefined;
      this.resumeClient();
    });
  }

  private armPauseFault(): void {
    const p = this.gw.opts.faults.pauseClient;
    if (!p) return;
    let left = p.times ?? Infinity;
    const every = p.everyMs ?? 0;
    const fire = () => {
      if (this.ended || left <= 0) return;
      left--;
      this.pauseClient(p.forMs);
      if (every > 0 && left > 0) this.setTimer(every, fire);
    };
    this.setTimer(p.firstAtMs ?? every, fire);
  }

  // ---- agent -> client ----

  /** Hands every channel output to its destination; re-entrant calls fold into the running loop. */
  private flush(): void {
    if (this.flushing) return;
    this.flushing = true;
    try {
      for (let guard = 0; guard < 10_000; guard++) {
        const out = this.channel.drain();
        if (out.transmit.length === 0 && out.deliver.length === 0 && out.events.length === 0) break;
        for (const f of out.transmit) this.toClient(f);
        for (const d of out.deliver) this.toTarget(d);
        for (const e of out.events) this.onChannelEvent(e);
      }
    } finally {
      this.flushing = false;
    }
    if (this.gw.listenerCount('change') > 0) this.gw.emit('change');
    if (this.ended) return;
    this.armTimer();
    if (this.draining) this.maybeFinishDrain();
  }

  private toClient(frame: Buffer): void {
    const conn = this.conn;
    if (this.ended || !conn) return;
    this.faults.apply('agentToClient', frame, (bytes, corrupted) => this.sendData(conn, bytes, corrupted));
  }

  private sendData(conn: ClientConn, bytes: Buffer, corrupted: boolean): void {
    if (this.ended || this.conn !== conn || !conn.open) return;
    this.wsSend(conn, bytes);
    if (!corrupted) {
      const h = peekHeader(bytes);
      this.monitor.onAgentFrameSent(h.messageType, h.seq, h.payloadType, performance.now());
      if (h.messageType === MessageType.OutputStreamData && h.payloadType === PayloadType.HandshakeComplete) this.mark('handshake-complete-sent');
      this.armMissingAck();
    }
  }

  private sendControl(conn: ClientConn, frame: Buffer): void {
    if (!conn.open) return;
    this.wsSend(conn, frame);
  }

  private wsSend(conn: ClientConn, bytes: Buffer): void {
    this.framesToClient++;
    this.bytesToClient += bytes.length;
    conn.inflightBytes += bytes.length;
    conn.outQueue.push(bytes);
    if (!conn.outScheduled) {
      conn.outScheduled = true;
      process.nextTick(() => this.writeOut(conn));
    }
    this.countBytes(conn, bytes.length);
  }

  /**
   * Writes the frames queued this tick as one buffer of websocket frames, like the
   * client does (ws.send per frame cost the simulator two stream writes each). Called
   * before any close so that nothing queued is overtaken by the close frame.
   */
  private writeOut(conn: ClientConn): void {
    conn.outScheduled = false;
    const frames = conn.outQueue;
    if (frames.length === 0) return;
    conn.outQueue = [];
    let n = 0;
    for (const f of frames) n += f.length;
    const done = () => {
      conn.inflightBytes -= n;
      if (conn.inflightBytes < WS_LOW_WATER) this.kick();
    };
    const socket = directSocket(conn.ws);
    if (socket) {
      socket.write(encodeBinaryMessages(frames, false), done);
      return;
    }
    let left = frames.length;
    for (const f of frames) {
      conn.ws.send(f, { binary: true }, () => {
        if (--left === 0) done();
      });
    }
  }

  /** Closes a client websocket after what is queued for it. */
  private closeWs(conn: ClientConn, code: number, reason: string): void {
    this.writeOut(conn);
    conn.ws.close(code, reason);
  }

  private armMissingAck(): void {
    const at = this.monitor.checkMissingAcks(performance.now());
    if (at === Infinity || at >= this.missingAckAt) return;
    if (this.missingAckTimer) clearTimeout(this.missingAckTimer);
    this.missingAckAt = at;
    this.missingAckTimer = setTimeout(() => {
      this.missingAckTimer = undefined;
      this.missingAckAt = Infinity;
      if (!this.ended) this.armMissingAck();
    }, Math.max(1, Math.ceil(at - performance.now())));
  }

  /** One timer for the channel, re-armed after every input (no polling). */
  private armTimer(): void {
    if (this.ended) return;
    const now = performance.now();
    this.timer.arm(this.channel.nextDeadline(now), now);
  }

  private onChannelEvent(e: ChannelEvent): void {
    switch (e.type) {
      case 'handshake-response':
        this.mark('handshake-response', e.response.clientVersion);
        break;
      case 'ready':
        this.scheduleDial();
        break;
      case 'flag':
        if (e.flag === PayloadFlag.TerminateSession) {
          this.mark('flag', 'TerminateSession');
          // Agents before 2.3.756.0 ack the flag and ignore it (§9.5).
          if (versionGreaterThan(this.gw.opts.agentVersion, FIRST_AGENT_TAKING_TERMINATE_FLAG) || this.gw.opts.agentVersion === FIRST_AGENT_TAKING_TERMINATE_FLAG) this.endSession('success', '', 'TerminateSession flag');
        } else if (e.flag === PayloadFlag.DisconnectToPort) {
          // SSH (basic, no "type") sessions: the agent closes the target and its read loop fails (§9.5, Q29).
          this.mark('flag', 'DisconnectToPort');
          const where = this.target ? `${this.target.localAddress}:${this.target.localPort}->${this.record.host}:${this.record.port}` : `${this.record.host}:${this.record.port}`;
          this.endSession('failed', `Failed to read from target port: read tcp ${where}: use of closed network connection (the client sent DisconnectToPort)`, 'DisconnectToPort flag');
        } else this.mark('flag', String(e.flag));
        break;
      case 'fatal':
        this.endSession('failed', e.message, `agent ${e.kind} failure`);
        break;
      case 'drain':
        this.channelBlocked = false;
        this.kick();
        break;
      case 'anomaly':
        this.anomalies[e.kind] = (this.anomalies[e.kind] ?? 0) + 1;
        if (this.gw.opts.logger) this.log(`agent: ${e.kind}: ${e.detail}`);
        break;
      default:
        break;
    }
  }

  // ---- target ----

  private scheduleDial(): void {
    if (this.targetState !== 'none') return;
    this.targetState = 'dialing';
    const delay = this.gw.opts.faults.dialDelayMs ?? 0;
    if (delay > 0) this.setTimer(delay, () => void this.dial());
    else void this.dial();
  }

  private async dial(): Promise<void> {
    if (this.ended) return;
    const refuse = this.gw.opts.faults.refuseTargets;
    const refused = refuse === true || (Array.isArray(refuse) && refuse.includes(this.record.target));
    const host = this.record.host;
    let port = this.record.port;
    if (refused) {
      this.faults.counts.refusedDials++;
      port = await unusedPort();
      if (this.ended) return;
    }
    this.mark('dial-start', `${host}:${port}`);
    const sock = tcpConnect({ host, port });
    this.target = sock;
    sock.setNoDelay(true);
    sock.on('readable', () => this.kick());
    sock.on('end', () => {
      this.targetEof = true;
      this.kick();
    });
    sock.on('drain', () => {
      this.targetWriteBlocked = false;
      this.updateConsumerReady();
    });
    sock.on('error', (err: NodeJS.ErrnoException) => {
      if (this.targetState === 'dialing') {
        this.targetState = 'closed';
        this.mark('dial-failed', err.code);
        this.endSession('failed', dialError(err, host, port), 'dial failed');
        return;
      }
      if (!this.targetEof) this.targetError ??= `Failed to read from target port: ${err.message}`;
    });
    sock.on('close', () => {
      if (this.targetState === 'open') {
        this.targetState = 'closed';
        this.targetEof = true;
        this.kick();
      }
    });
    sock.once('connect', () => {
      if (this.ended) {
        sock.destroy();
        return;
      }
      this.targetState = 'open';
      this.mark('dial-ok', `${sock.localAddress}:${sock.localPort}`);
      this.updateConsumerReady();
      this.kick();
    });
  }

  /**
   * Until the dial completes the agent's port plugin is "not ready": client data is
   * left unacked (§9.3). A congested target is different: the real agent's write
   * blocks its message loop, which stops it reading the websocket, so the client
   * sees back-pressure, not loss. The simulator pauses the client websocket instead.
   */
  private updateConsumerReady(): void {
    this.updateBackpressure();
    const ready = this.targetState === 'open';
    if (ready === this.consumerReady || this.ended) return;
    this.consumerReady = ready;
    if (!ready) this.consumerStalls++;
    this.channel.setConsumerReady(ready, performance.now());
    this.flush();
  }

  private readingPaused = false;

  private updateBackpressure(): void {
    const congested = !this.ended && (this.targetWriteBlocked || this.slowBlocked);
    if (congested === this.readingPaused) return;
    this.readingPaused = congested;
    if (congested) {
      this.consumerStalls++;
      this.conn?.ws.pause();
    } else this.conn?.ws.resume();
  }

  private get slowBlocked(): boolean {
    const rate = this.gw.opts.faults.slowTargetBytesPerSec;
    return rate !== undefined && this.slowQueued > Math.max(16 * 1024, rate / 4);
  }

  private toTarget(data: Buffer): void {
    const sock = this.target;
    // After the target's EOF the agent is only draining; late client bytes have nowhere to go.
    if (this.ended || !sock || this.targetState !== 'open' || this.targetEof) return;
    this.bytesToTarget += data.length;
    const rate = this.gw.opts.faults.slowTargetBytesPerSec;
    if (rate !== undefined) {
      this.slowQueue.push(data);
      this.slowQueued += data.length;
      this.slowWrite();
      if (this.slowBlocked) this.updateConsumerReady();
      return;
    }
    corkUntilNextTick(sock);
    if (!sock.write(data)) {
      this.targetWriteBlocked = true;
      this.updateConsumerReady();
    }
  }

  /** The slow-target fault: a leaky bucket in front of the target socket. */
  private slowWrite(): void {
    if (this.slowTimer || this.ended) return;
    const rate = this.gw.opts.faults.slowTargetBytesPerSec ?? Infinity;
    const now = performance.now();
    if (this.slowLast === 0) this.slowLast = now - SLOW_TARGET_TICK_MS;
    let budget = Math.floor(((now - this.slowLast) * rate) / 1000);
    if (budget <= 0 && this.slowQueued > 0) {
      this.slowTimer = setTimeout(() => {
        this.slowTimer = undefined;
        this.slowWrite();
      }, SLOW_TARGET_TICK_MS);
      return;
    }
    this.slowLast = now;
    while (budget > 0 && this.slowQueue.length > 0 && this.target && this.targetState === 'open') {
      const head = this.slowQueue[0];
      const n = Math.min(budget, head.length);
      this.target.write(n === head.length ? head : head.subarray(0, n));
      if (n === head.length) this.slowQueue.shift();
      else this.slowQueue[0] = head.subarray(n);
      this.slowQueued -= n;
      budget -= n;
    }
    if (this.slowQueued > 0) {
      this.slowTimer = setTimeout(() => {
        this.slowTimer = undefined;
        this.slowWrite();
      }, SLOW_TARGET_TICK_MS);
    }
    this.updateConsumerReady();
  }

  private canRead(): boolean {
    const conn = this.conn;
    return (
      !this.ended &&
      !this.draining &&
      this.targetState !== 'none' &&
      this.targetState !== 'dialing' &&
      !!conn &&
      !this.monitor.paused &&
      conn.inflightBytes < WS_HIGH_WATER &&
      !this.channelBlocked
    );
  }

  /** Schedules the target reader. */
  private kick(): void {
    if (this.pumpScheduled || this.ended) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  private readChunk(): Buffer | null {
    const max = this.gw.opts.agentChunk;
    if (!this.leftover || this.leftover.length === 0) {
      const b = this.target && !this.target.destroyed ? (this.target.read() as Buffer | null) : null;
      if (!b) return null;
      this.leftover = b;
    }
    const l = this.leftover;
    if (l.length <= max) {
      this.leftover = null;
      return l;
    }
    this.leftover = l.subarray(max);
    return l.subarray(0, max);
  }

  /**
   * Reads the target like the real agent: one chunk of agentChunk bytes per message. The
   * service profile sleeps ~1 ms after each chunk, as the agent does (§9.2); the unlimited
   * profile reads as fast as the client's websocket drains.
   */
  private pump(): void {
    const paced = this.gw.opts.profile === 'service';
    for (let i = 0; i < (paced ? 1 : 256); i++) {
      if (!this.canRead()) return; // kicked again on attach, drain and websocket progress
      const chunk = this.readChunk();
      if (!chunk) {
        if (this.targetEof) this.onTargetEof();
        return; // 'readable' kicks again
      }
      this.bytesFromTarget += chunk.length;
      if (!this.channel.write(chunk, performance.now())) this.channelBlocked = true;
      this.flush();
    }
    if (this.pumpScheduled || this.ended) return;
    this.pumpScheduled = true;
    const next = () => {
      this.pumpScheduled = false;
      this.pump();
    };
    if (paced) setTimeout(next, 1);
    else setImmediate(next);
  }

  private onTargetEof(): void {
    if (this.draining || this.ended) return;
    this.draining = true;
    this.mark('target-eof', this.targetError);
    this.setTimer(this.gw.opts.drainMs, () => this.finishDrain());
    this.maybeFinishDrain();
  }

  private maybeFinishDrain(): void {
    if (this.channel.pendingBytes === 0 && this.channel.unacked === 0) this.finishDrain();
  }

  private finishDrain(): void {
    if (this.ended) return;
    if (this.targetError) this.endSession('failed', this.targetError, 'target read error');
    else this.endSession('success', '', 'target closed');
  }

  // ---- end ----

  /** Closes the target, tells the client with channel_closed (§5.3) and ends the registry session. */
  endSession(status: 'success' | 'failed', output: string, reason: string): void {
    if (this.ended) return;
    this.ended = true;
    this.closedOutput = output;
    this.endReason = reason;
    this.mark('channel-closed', `${status}: ${reason}`);
    this.log(`session ended (${status}, ${reason})${output ? `: ${output}` : ''}`);
    this.clearTimers();
    this.closeTarget();
    this.targetState = 'closed';
    const conn = this.conn;
    if (conn && conn.open) {
      const payload = encodeChannelClosed({
        messageId: randomUUID(),
        createdDate: String(Date.now()),
        destinationId: this.record.target,
        sessionId: this.id,
        messageType: MessageType.ChannelClosed,
        schemaVersion: 1,
        output,
      });
      this.sendControl(conn, controlFrame(MessageType.ChannelClosed, payload));
      this.closeWs(conn, 1000, 'channel closed');
    }
    this.gw.registry.terminate(this.id, status === 'success' ? reason : `failed: ${reason}`);
    this.gw.emit('session-ended', this.id);
  }

  /**
   * The real agent closes its connection to the port, and what it wrote before (every
   * byte it acked) still reaches the target, as close(2) does. Node would drop what is
   * still queued in the socket (and this simulator's slow-target queue) on destroy().
   */
  private closeTarget(): void {
    const target = this.target;
    if (!target || target.destroyed) return;
    for (const b of this.slowQueue) target.write(b);
    this.slowQueue = [];
    this.slowQueued = 0;
    target.end();
    const t = setTimeout(() => target.destroy(), 5000);
    t.unref();
    target.once('close', () => clearTimeout(t));
  }

  private clearTimers(): void {
    this.timer.clear();
    if (this.missingAckTimer) clearTimeout(this.missingAckTimer);
    if (this.slowTimer) clearTimeout(this.slowTimer);
    if (this.penaltyTimer) clearTimeout(this.penaltyTimer);
    if (this.conn?.closeTimer) clearTimeout(this.conn.closeTimer);
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.faults.dispose();
  }

  /** Simulator shutdown: no channel_closed, just stop. */
  dispose(): void {
    if (!this.ended) {
      this.ended = true;
      this.clearTimers();
      this.target?.destroy();
    }
  }

  get violations(): ViolationCounts {
    return this.monitor.counts;
  }

  get decisions(): FaultDecision[] {
    return this.faults.decisions;
  }

  stats(): SessionStats {
    const m = this.monitor.stats;
    const s: SessionStats = {
      sessionId: this.id,
      target: this.record.target,
      ordinal: this.ordinal,
      state: this.ended ? 'closed' : this.draining ? 'draining' : this.channel.ready ? 'open' : 'handshaking',
      attached: !!this.conn,
      connects: this.connects,
      framesFromClient: m.framesFromClient,
      bytesFromClient: m.bytesFromClient,
      dataFramesFromClient: m.dataFramesFromClient,
      acksFromClient: m.acksFromClient,
      framesToClient: this.framesToClient,
      bytesToClient: this.bytesToClient,
      pausesSent: this.pausesSent,
      startsSent: this.startsSent,
      retransmissionsSeen: m.retransmissionsSeen,
      duplicatesAtAgent: this.channel.stats.duplicates,
      agentRetransmissions: this.channel.senderStats.retransmissions,
      agentFramesSent: this.channel.senderStats.framesSent,
      droppedByPolicy: this.droppedByPolicy,
      bytesToTarget: this.bytesToTarget,
      bytesFromTarget: this.bytesFromTarget,
      consumerStalls: this.consumerStalls,
      anomalies: { ...this.anomalies },
      violations: nonZero(this.monitor.counts),
      faults: structuredClone(this.faults.counts),
    };
    if (this.closedOutput !== undefined) s.closedOutput = this.closedOutput;
    if (this.endReason !== undefined) s.endReason = this.endReason;
    return s;
  }
}
