// Helpers for the simulator's tests: SSM calls through the real SDK, a ReliableChannel client
// driven over a websocket, a hand-built raw-frame client, and small TCP targets.
// Waiting is event driven: every helper emits 'change' and waitFor() re-checks on it.
import { EventEmitter } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { randomUUID } from 'node:crypto';
import { WebSocket, type RawData } from 'ws';
import { ResumeSessionCommand, SSMClient, StartSessionCommand, TerminateSessionCommand } from '@aws-sdk/client-ssm';
import { DeadlineTimer } from '../../src/transport/deadline-timer.ts';
import { ReliableChannel, type ChannelConfig, type ChannelEvent } from '../../src/channel/channel.ts';
import { HeaderFlags, MessageType, PayloadType } from '../../src/protocol/constants.ts';
import { decodeFrame, encodeFrame, type Frame, type FrameFields } from '../../src/protocol/frame.ts';
import { encodeAck, encodeHandshakeResponse, parseChannelClosed, type ChannelClosed } from '../../src/protocol/payloads.ts';
import type { Simulator } from './index.ts';

export const CLIENT_VERSION = '1.2.694.0';

/** Resolves when `check()` is truthy; re-checked on every 'change' of the given emitters. Bounded. */
export function waitFor<T>(emitters: EventEmitter[], check: () => T | undefined | false | null, timeoutMs: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const first = check();
    if (first) return resolve(first);
    const onChange = () => {
      let v: T | undefined | false | null;
      try {
        v = check();
      } catch (e) {
        done();
        reject(e);
        return;
      }
      if (v) {
        done();
        resolve(v);
      }
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
    }, timeoutMs);
    const done = () => {
      clearTimeout(timer);
      for (const e of emitters) e.off('change', onChange);
    };
    for (const e of emitters) e.on('change', onChange);
  });
}

/** A plain timed pause, for building a timing scenario (never for waiting on a condition). */
export const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---- SSM API via the real SDK ----

export interface StreamTicket {
  sessionId: string;
  token: string;
  streamUrl: string;
}

const clients = new WeakMap<Simulator, SSMClient>();

export function ssmClient(sim: Simulator): SSMClient {
  let c = clients.get(sim);
  if (!c) {
    c = new SSMClient({ endpoint: sim.apiUrl, region: sim.region, credentials: sim.credentials, maxAttempts: 1 });
    clients.set(sim, c);
  }
  return c;
}

export function destroyClient(sim: Simulator): void {
  clients.get(sim)?.destroy();
  clients.delete(sim);
}

export async function startSession(sim: Simulator, target = 'i-0123456789abcdef0', port = 22): Promise<StreamTicket> {
  const r = await ssmClient(sim).send(new StartSessionCommand({ Target: target, DocumentName: 'AWS-StartSSHSession', Parameters: { portNumber: [String(port)] } }));
  return { sessionId: r.SessionId!, token: r.TokenValue!, streamUrl: r.StreamUrl! };
}

export async function resumeSession(sim: Simulator, sessionId: string): Promise<StreamTicket> {
  const r = await ssmClient(sim).send(new ResumeSessionCommand({ SessionId: sessionId }));
  return { sessionId: r.SessionId!, token: r.TokenValue!, streamUrl: r.StreamUrl! };
}

export async function terminateSession(sim: Simulator, sessionId: string): Promise<void> {
  await ssmClient(sim).send(new TerminateSessionCommand({ SessionId: sessionId }));
}

// ---- websocket basics ----

export function openDataChannelText(token: string, extra: { clientId?: string | null; clientVersion?: string | null } = {}): string {
  const o: Record<string, string> = { MessageSchemaVersion: '1.0', RequestId: randomUUID(), TokenValue: token };
  if (extra.clientId !== null) o.ClientId = extra.clientId ?? randomUUID();
  if (extra.clientVersion !== null) o.ClientVersion = extra.clientVersion ?? CLIENT_VERSION;
  return JSON.stringify(o);
}

function toBuffer(d: RawData): Buffer {
  return Array.isArray(d) ? Buffer.concat(d) : Buffer.isBuffer(d) ? d : Buffer.from(d);
}

export function openWs(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode} on upgrade`)));
  });
}

// ---- ReliableChannel client over a websocket ----

export interface ChannelClientOptions extends Partial<Omit<ChannelConfig, 'role' | 'now'>> {
  /** Get a fresh ticket after an unexpected websocket close (ResumeSession). Off when absent. */
  resume?: () => Promise<StreamTicket>;
  maxResumes?: number;
  /** Keep delivered bytes in `received` (default true); 'data' events are emitted either way. */
  keep?: boolean;
}

/** The client core (ReliableChannel, client role) with a minimal websocket driver. */
export class ChannelClient extends EventEmitter {
  readonly channel: ReliableChannel;
  ws?: WebSocket;
  readonly received: Buffer[] = [];
  receivedBytes = 0;
  readonly events: ChannelEvent[] = [];
  closed?: ChannelClosed;
  readonly wsCloses: { code: number; reason: string }[] = [];
  connects = 0;
  resumes = 0;
  resumeError?: Error;
  private readonly timer = new DeadlineTimer(() => {
    this.channel.tick(performance.now());
    this.flush();
  });
  private blocked = false;
  private readonly opts: ChannelClientOptions;
  private ending = false;

  constructor(opts: ChannelClientOptions = {}) {
    super();
    this.setMaxListeners(0);
    this.opts = opts;
    const { resume: _r, maxResumes: _m, keep: _k, ...cfg } = opts;
    this.channel = new ReliableChannel({ role: 'client', now: performance.now(), clientVersion: CLIENT_VERSION, connected: false, ...cfg });
  }

  get ready(): boolean {
    return this.channel.ready;
  }
  get writable(): boolean {
    return !this.blocked;
  }

  async connect(t: StreamTicket): Promise<void> {
    const ws = await openWs(t.streamUrl);
    this.ws = ws;
    this.connects++;
    ws.on('message', (d: RawData) => {
      if (this.ws !== ws) return;
      this.channel.receive(toBuffer(d), performance.now());
      this.flush();
    });
    ws.on('close', (code: number, reason: Buffer) => {
      this.wsCloses.push({ code, reason: reason.toString() });
      if (this.ws === ws) {
        this.ws = undefined;
        this.channel.setConnected(false, performance.now());
        this.flush();
        if (!this.closed && !this.ending && this.opts.resume) void this.reconnect();
      }
      this.emit('change');
    });
    ws.on('error', () => {
      /* a close follows */
    });
    ws.send(openDataChannelText(t.token));
    this.channel.setConnected(true, performance.now());
    this.flush();
  }

  private async reconnect(): Promise<void> {
    if ((this.opts.maxResumes ?? 50) <= this.resumes) {
      this.resumeError = new Error('too many resumes');
      this.emit('change');
      return;
    }
    this.resumes++;
    try {
      const t = await this.opts.resume!();
      if (this.closed || this.ending) return;
      await this.connect(t);
    } catch (e) {
      this.resumeError = e as Error;
    }
    this.emit('change');
  }

  /** Queues bytes; false means wait for writable (a 'change' follows the drain). */
  write(data: Buffer): boolean {
    const ok = this.channel.write(data, performance.now());
    if (!ok) this.blocked = true;
    this.flush();
    return ok;
  }

  /** Stdout-like back-pressure: while false, agent data is left unacked. */
  setConsumerReady(ready: boolean): void {
    this.channel.setConsumerReady(ready, performance.now());
    this.flush();
  }

  sendTerminateFlag(): number {
    const seq = this.channel.sendFlag(2, performance.now());
    this.flush();
    return seq;
  }

  flush(): void {
    const out = this.channel.drain();
    const ws = this.ws;
    for (const f of out.transmit) if (ws && ws.readyState === WebSocket.OPEN) ws.send(f);
    for (const d of out.deliver) {
      const b = Buffer.from(d);
      if (this.opts.keep !== false) this.received.push(b);
      this.receivedBytes += d.length;
      this.emit('data', b);
    }
    for (const e of out.events) {
      this.events.push(e);
      if (e.type === 'drain') this.blocked = false;
      if (e.type === 'channel-closed') this.closed = e.closed;
    }
    this.arm();
    this.emit('change');
  }

  private arm(): void {
    if (this.ending) return;
    const now = performance.now();
    this.timer.arm(this.channel.nextDeadline(now), now);
  }


  data(): Buffer {
    return Buffer.concat(this.received);
  }

  anomalies(kind?: string): number {
    return this.events.filter((e) => e.type === 'anomaly' && (kind === undefined || e.kind === kind)).length;
  }

  /** Writes all of `data` honouring back-pressure. */
  async writeAll(data: Buffer, chunk = 16 * 1024, timeoutMs = 60_000): Promise<void> {
    for (let off = 0; off < data.length; off += chunk) {
      if (!this.writable) await waitFor([this], () => this.writable || this.closed, timeoutMs, 'client write drain');
      if (this.closed) throw new Error(`session closed: ${this.closed.output}`);
      this.write(data.subarray(off, Math.min(off + chunk, data.length)));
    }
  }

  close(): void {
    this.ending = true;
    this.timer.clear();
    this.ws?.terminate();
    this.ws = undefined;
  }
}

/** StartSession, connect and wait for HandshakeComplete. */
export async function connectClient(sim: Simulator, port: number, opts: ChannelClientOptions & { target?: string; resumable?: boolean } = {}): Promise<{ client: ChannelClient; ticket: StreamTicket }> {
  const ticket = await startSession(sim, opts.target ?? 'i-0123456789abcdef0', port);
  const { target: _t, resumable, ...rest } = opts;
  const client = new ChannelClient({ ...(resumable ? { resume: () => resumeSession(sim, ticket.sessionId) } : {}), ...rest });
  await client.connect(ticket);
  await waitFor([client], () => client.ready || client.closed, 10_000, 'HandshakeComplete');
  return { client, ticket };
}

// ---- raw frames, hand built ----

let rawCounter = 0;

export function clientFrame(f: Partial<FrameFields> & { sequenceNumber: number }): Buffer {
  return encodeFrame({
    messageType: MessageType.InputStreamData,
    createdDate: Date.now(),
    flags: HeaderFlags.Data,
    messageId: randomUUID(),
    payloadType: PayloadType.Output,
    payload: Buffer.alloc(0),
    ...f,
  });
}

export function ackFrame(of: { messageType: string; messageId: string; sequenceNumber: number }): Buffer {
  return encodeFrame({
    messageType: MessageType.Acknowledge,
    createdDate: Date.now(),
    sequenceNumber: 0,
    flags: HeaderFlags.Ack,
    messageId: randomUUID(),
    payloadType: PayloadType.Unset,
    payload: encodeAck({ acknowledgedMessageType: of.messageType, acknowledgedMessageId: of.messageId, acknowledgedSequenceNumber: of.sequenceNumber, isSequentialMessage: true }),
  });
}

export function handshakeResponseFrame(seq = 0): Buffer {
  return clientFrame({
    sequenceNumber: seq,
    payloadType: PayloadType.HandshakeResponse,
    payload: encodeHandshakeResponse({ clientVersion: CLIENT_VERSION, processedClientActions: [{ actionType: 'SessionType', actionStatus: 1, actionResult: null, error: '' }], errors: null }),
  });
}

/** A websocket client that sends exactly the bytes a test builds, and records everything it gets. */
export class RawClient extends EventEmitter {
  readonly frames: Frame[] = [];
  readonly texts: string[] = [];
  close?: { code: number; reason: string };
  /** Ack every output_stream_data on arrival (a well-behaved receiver), unless the seq is in noAck. */
  autoAck = true;
  readonly noAck = new Set<number>();
  readonly id = ++rawCounter;

  private constructor(readonly ws: WebSocket) {
    super();
    this.setMaxListeners(0);
    ws.on('message', (d: RawData, isBinary: boolean) => {
      const b = toBuffer(d);
      if (!isBinary) this.texts.push(b.toString());
      const r = decodeFrame(b);
      if (r.ok) {
        this.frames.push(r.value);
        const f = r.value;
        if (this.autoAck && f.messageType === MessageType.OutputStreamData && !this.noAck.has(f.sequenceNumber)) this.send(ackFrame(f));
      }
      this.emit('change');
    });
    ws.on('close', (code: number, reason: Buffer) => {
      this.close = { code, reason: reason.toString() };
      this.emit('change');
    });
    ws.on('error', () => {
      /* close follows */
    });
  }

  static async open(url: string, openText?: string): Promise<RawClient> {
    const ws = await openWs(url);
    const c = new RawClient(ws);
    if (openText !== undefined) ws.send(openText);
    return c;
  }

  static async connect(t: StreamTicket, extra: Parameters<typeof openDataChannelText>[1] = {}): Promise<RawClient> {
    return RawClient.open(t.streamUrl, openDataChannelText(t.token, extra));
  }

  send(b: Buffer): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(b, { binary: true });
  }

  sendText(s: string): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(s);
  }

  find(pred: (f: Frame) => boolean): Frame | undefined {
    return this.frames.find(pred);
  }

  waitFrame(pred: (f: Frame) => boolean, timeoutMs = 5000, what = 'a frame'): Promise<Frame> {
    return waitFor([this], () => this.frames.find(pred), timeoutMs, what);
  }

  waitClose(timeoutMs = 5000): Promise<{ code: number; reason: string }> {
    return waitFor([this], () => this.close, timeoutMs, 'websocket close');
  }

  channelClosed(): ChannelClosed | undefined {
    const f = this.frames.find((x) => x.messageType === MessageType.ChannelClosed);
    if (!f) return undefined;
    const c = parseChannelClosed(f.payload);
    return c.ok ? c.value : undefined;
  }

  waitChannelClosed(timeoutMs = 5000): Promise<ChannelClosed> {
    return waitFor([this], () => this.channelClosed(), timeoutMs, 'channel_closed');
  }

  acksFor(seq: number): Frame[] {
    return this.frames.filter((f) => f.messageType === MessageType.Acknowledge && JSON.parse(f.payload.toString()).AcknowledgedMessageSequenceNumber === seq);
  }

  waitAck(seq: number, timeoutMs = 5000): Promise<Frame> {
    return waitFor([this], () => this.acksFor(seq)[0], timeoutMs, `ack for client seq ${seq}`);
  }

  output(): Buffer {
    const bySeq = new Map<number, Buffer>();
    for (const f of this.frames) if (f.messageType === MessageType.OutputStreamData && f.payloadType === PayloadType.Output) bySeq.set(f.sequenceNumber, f.payload);
    return Buffer.concat([...bySeq.entries()].sort((a, b) => a[0] - b[0]).map((e) => e[1]));
  }

  /** A correct handshake (§6.1): ack the request, answer it as seq 0, wait for HandshakeComplete. Returns the next client seq. */
  async handshake(timeoutMs = 5000): Promise<number> {
    const req = await this.waitFrame((f) => f.payloadType === PayloadType.HandshakeRequest, timeoutMs, 'HandshakeRequest');
    if (!this.autoAck) this.send(ackFrame(req));
    this.send(handshakeResponseFrame(0));
    await this.waitFrame((f) => f.payloadType === PayloadType.HandshakeComplete, timeoutMs, 'HandshakeComplete');
    return 1;
  }

  terminate(): void {
    this.ws.terminate();
  }
}

// ---- TCP targets ----

export interface TcpTarget {
  port: number;
  server: Server;
  sockets: Set<Socket>;
  accepted: number;
  /** Every byte received, per connection. */
  received: Buffer[][];
  events: EventEmitter;
  close(): Promise<void>;
}

/**
 * A TCP server on 127.0.0.1. mode 'echo' writes back what it reads (with back-pressure);
 * 'sink' only records; onConnect can send a banner or close.
 */
export function tcpTarget(mode: 'echo' | 'sink', onConnect?: (s: Socket) => void): Promise<TcpTarget> {
  const events = new EventEmitter();
  events.setMaxListeners(0);
  const sockets = new Set<Socket>();
  const t: TcpTarget = {
    port: 0,
    server: undefined as unknown as Server,
    sockets,
    accepted: 0,
    received: [],
    events,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        t.server.close(() => resolve());
      }),
  };
  t.server = createServer((s) => {
    sockets.add(s);
    t.accepted++;
    const mine: Buffer[] = [];
    t.received.push(mine);
    s.on('data', (d) => {
      mine.push(d);
      if (mode === 'echo' && !s.write(d)) {
        s.pause();
        s.once('drain', () => s.resume());
      }
      events.emit('change');
    });
    s.on('error', () => {});
    s.on('close', () => {
      sockets.delete(s);
      events.emit('change');
    });
    onConnect?.(s);
    events.emit('change');
  });
  return new Promise((resolve) => {
    t.server.listen(0, '127.0.0.1', () => {
      t.port = (t.server.address() as AddressInfo).port;
      resolve(t);
    });
  });
}

export function receivedBytes(t: TcpTarget, conn = 0): Buffer {
  return Buffer.concat(t.received[conn] ?? []);
}

/**
 * A local TCP listener in front of a ChannelClient, as the proxy's stdin/stdout would be:
 * bytes from the accepted socket go to the client core, delivered bytes go back to the socket,
 * with back-pressure both ways. Socket EOF sends the TerminateSession flag.
 */
export function tcpBridge(client: ChannelClient): Promise<{ port: number; close(): Promise<void> }> {
  const server = createServer((sock) => {
    sock.setNoDelay(true);
    sock.on('data', (d: Buffer) => {
      if (!client.write(d)) sock.pause();
    });
    const onChange = () => {
      if (client.writable && sock.isPaused()) sock.resume();
    };
    client.on('change', onChange);
    client.on('data', (b: Buffer) => {
      if (!sock.write(b)) {
        client.setConsumerReady(false);
        sock.once('drain', () => client.setConsumerReady(true));
      }
    });
    sock.on('end', () => client.sendTerminateFlag());
    sock.on('error', () => {});
    sock.on('close', () => client.off('change', onChange));
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      resolve({
        port: (server.address() as AddressInfo).port,
        close: () => new Promise<void>((r) => server.close(() => r())),
      });
    });
  });
}
