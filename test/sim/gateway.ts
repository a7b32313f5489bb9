// Fake Session Manager gateway (MGS): the data-channel websocket server (PROTOCOL.md §3, §13),
// token checks, GET /stats, and one simulated agent (agent.ts) per session, kept across client
// reconnects. Client frames are counted by the ClientMonitor (violations.ts) before the seeded
// faults (faults.ts) touch them.
import { EventEmitter } from 'node:events';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { simHttpServer } from './http-server.ts';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket, type RawData } from 'ws';
import { parseOpenDataChannel } from '../../src/protocol/payloads.ts';
import { AgentSession, CLOSE_POLICY, ClientConn, type SessionStats } from './agent.ts';
import type { FaultConfig } from './faults.ts';
import type { SessionRecord, SessionRegistry } from './sessions.ts';
import { ViolationLog, type ViolationCounts, type ViolationKind, type ViolationRecord } from './violations.ts';

export { AgentSession, CLOSE_POLICY, CLOSE_REPLACED, type SessionStats, type TimelineEntry } from './agent.ts';

export type Profile = 'service' | 'unlimited';

export interface GatewayOptions {
  registry: SessionRegistry;
  profile: Profile;
  agentVersion: string;
  seed: number;
  faults: FaultConfig;
  /** Client frame budget; 0 = none. */
  frameRate: number;
  frameBurst: number;
  /** Infinity = no limit. */
  maxClientPayload: number;
  agentChunk: number;
  agentRetransmit: 'oldest-only' | 'per-frame';
  missingAckMs: number;
  pauseGraceMs: number;
  /** Close every client websocket this long after it opened, code 1000 "Bye"; 0 = never. */
  recycleMs: number;
  /** How long a client stays paused after a budget or size violation. */
  penaltyMs: number;
  /** This many pause episodes within windowMs end the session ("rate exceeded"). */
  sustain: { episodes: number; windowMs: number };
  /** The agent fails the session when no HandshakeResponse arrives in time (§6.5). */
  handshakeTimeoutMs: number;
  /** CustomerMessage of the agent's HandshakeComplete. */
  customerMessage?: string;
  /** After target EOF the agent waits this long for its frames to be acked (§9.6). */
  drainMs: number;
  /** Send start_publication to a client that reattaches (§16: unknown whether MGS does). */
  startPublicationOnReattach: boolean;
  /**
   * A websocket upgrade is answered no sooner than this long after its TCP connection
   * was accepted: the TCP and TLS handshakes over a long path. Default 0.
   */
  connectDelayMs?: number;
  /** Serve wss:// (and https:// for /stats) with this key and certificate instead of ws://. */
  tls?: { key: string; cert: string };
  logger?: (line: string) => void;
}


const OPEN_TIMEOUT_MS = 10_000;
const MAX_RECORDED_UPGRADES = 10_000;

export interface GatewayEvents {
  change: [];
  violation: [ViolationRecord];
  'session-started': [string];
  'session-ended': [string];
  refused: [{ sessionId: string; reason: string }];
}

/** Websocket server for /v1/data-channel/<SessionId>, plus GET /stats, on 127.0.0.1. */
export class Gateway extends EventEmitter<GatewayEvents> {
  readonly registry: SessionRegistry;
  readonly violations: ViolationLog;
  readonly sessions = new Map<string, AgentSession>();
  /** For each websocket upgrade request, how long (ms) after its TCP connection was accepted it came. */
  readonly upgradeAges: number[] = [];
  /** Upgrades answered 503 by the refuseUpgrades fault so far. */
  upgradesRefused = 0;
  private server?: Server;
  private readonly wss: WebSocketServer;
  private readonly conns = new Set<ClientConn>();
  private connIds = 0;
  private ordinal = 0;
  private port = 0;
  private readonly onTerminated = (r: SessionRecord) => this.sessions.get(r.sessionId)?.endSession('success', '', r.terminateReason ?? 'terminated');

  constructor(readonly opts: GatewayOptions) {
    super();
    this.setMaxListeners(0);
    this.registry = opts.registry;
    this.violations = new ViolationLog((r) => {
      this.emit('violation', r);
      this.emit('change');
    });
    this.wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 4 * 1024 * 1024 });
    this.registry.on('terminated', this.onTerminated);
  }

  log(line: string): void {
    this.opts.logger?.(line);
  }

  recordViolation(kind: ViolationKind, sessionId: string, detail: string): void {
    this.log(`[${sessionId}] violation ${kind}: ${detail}`);
    this.violations.add(kind, sessionId, detail);
  }

  get url(): string {
    return `${this.opts.tls ? 'wss' : 'ws'}://127.0.0.1:${this.port}`;
  }
  get statsUrl(): string {
    return `${this.opts.tls ? 'https' : 'http'}://127.0.0.1:${this.port}/stats`;
  }

  streamUrl(sessionId: string): string {
    return `${this.url}/v1/data-channel/${encodeURIComponent(sessionId)}?role=publish_subscribe`;
  }

  listen(port = 0): Promise<string> {
    const { server, ageOf } = simHttpServer((req, res) => this.onHttp(req, res), this.opts.tls);
    const delay = this.opts.connectDelayMs ?? 0;
    server.on('upgrade', (req, socket, head) => {
      const age = ageOf(socket);
      if (this.upgradeAges.length < MAX_RECORDED_UPGRADES) this.upgradeAges.push(age);
      if (age >= delay) return this.onUpgrade(req, socket, head);
      setTimeout(() => {
        if (!socket.destroyed) this.onUpgrade(req, socket, head);
      }, delay - age);
    });
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        this.port = (server.address() as AddressInfo).port;
        resolve(this.url);
      });
    });
  }

  session(sessionId: string): AgentSession | undefined {
    return this.sessions.get(sessionId);
  }

  stats(): { violations: ViolationCounts; totalViolations: number; recentViolations: ViolationRecord[]; sessions: SessionStats[] } {
    return {
      violations: { ...this.violations.counts },
      totalViolations: this.violations.total(),
      recentViolations: this.violations.recent.slice(-50),
      sessions: [...this.sessions.values()].map((s) => s.stats()),
    };
  }

  private onHttp(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/stats') {
      const body = Buffer.from(JSON.stringify(this.stats()));
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
      res.end(body);
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found\n');
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const u = new URL(req.url ?? '/', 'http://127.0.0.1');
    const m = /^\/v1\/data-channel\/([^/]+)$/.exec(u.pathname);
    const reject = (status: string) => {
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    };
    if (this.upgradesRefused < (this.opts.faults.refuseUpgrades ?? 0)) {
      this.upgradesRefused++;
      return reject('503 Service Unavailable');
    }
    if (!m) return reject('404 Not Found');
    if (u.searchParams.get('role') !== 'publish_subscribe') return reject('400 Bad Request');
    let sessionId: string;
    try {
      sessionId = decodeURIComponent(m[1]);
    } catch {
      return reject('400 Bad Request');
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.onConnection(ws, sessionId));
  }

  private onConnection(ws: WebSocket, sessionId: string): void {
    const conn = new ClientConn(ws, ++this.connIds);
    this.conns.add(conn);
    let authed = false;
    let refused = false;
    const openTimer = setTimeout(() => {
      if (!authed) ws.close(CLOSE_POLICY, 'no OpenDataChannel');
    }, OPEN_TIMEOUT_MS);
    const refuse = (reason: string) => {
      refused = true;
      this.log(`[${sessionId}] refused websocket: ${reason}`);
      this.emit('refused', { sessionId, reason });
      ws.close(CLOSE_POLICY, reason);
    };
    ws.on('message', (data: RawData, isBinary: boolean) => {
      const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
      if (authed) {
        conn.session?.onClientMessage(conn, buf, isBinary);
        return;
      }
      if (conn.closed || refused) return;
      // The first message must be the OpenDataChannel text frame (§3.2).
      if (isBinary) return refuse('expected an OpenDataChannel text frame');
      const odc = parseOpenDataChannel(buf.toString('utf8'));
      if (!odc.ok) return refuse(`malformed OpenDataChannel: ${odc.error.field} ${odc.error.reason}`);
      const r = this.registry.consumeToken(sessionId, odc.value.tokenValue);
      if (!r.ok) return refuse(r.reason);
      authed = true;
      clearTimeout(openTimer);
      let s = this.sessions.get(sessionId);
      if (!s) {
        s = new AgentSession(this, r.record, this.ordinal++);
        this.sessions.set(sessionId, s);
        this.emit('session-started', sessionId);
      }
      this.log(`[${sessionId}] websocket ${conn.id} attached (client ${odc.value.clientVersion || 'without ClientVersion'})`);
      s.attach(conn);
    });
    ws.on('close', () => {
      conn.closed = true;
      clearTimeout(openTimer);
      this.conns.delete(conn);
      conn.session?.detach(conn, 'websocket closed');
      this.emit('change');
    });
    ws.on('error', (err) => this.log(`[${sessionId}] websocket ${conn.id} error: ${err.message}`));
  }

  async close(): Promise<void> {
    this.registry.off('terminated', this.onTerminated);
    for (const s of this.sessions.values()) s.dispose();
    for (const c of this.conns) c.ws.terminate();
    this.conns.clear();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    const server = this.server;
    this.server = undefined;
    if (server) {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    }
  }
}

