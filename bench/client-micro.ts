// The client's own protocol cost per direction, timed around the client's calls only
// (the agent end runs untimed), best of several rounds in one process: steadier than
// whole-process CPU on a shared machine. For comparing changes to the data path.
import { ReliableChannel } from '../src/channel/channel.ts';
import { encodeBinaryMessages } from '../src/transport/ws-frames.ts';

const MiB = 1024 * 1024;
const total = Number(process.argv[2] ?? 32) * MiB;
const rounds = Number(process.argv[3] ?? 5);

function round(dir: 'up' | 'down'): number {
  const client = new ReliableChannel({ role: 'client', now: 0 });
  const agent = new ReliableChannel({ role: 'agent', now: 0 });
  agent.startHandshake(0);
  let now = 0;
  for (let i = 0; i < 4; i++) {
    for (const f of agent.drain().transmit) client.receive(f, now);
    for (const f of client.drain().transmit) agent.receive(f, now);
  }
  const chunk = Buffer.alloc(64 * 1024, 1);
  let timed = 0n;
  let moved = 0;
  let sent = 0;
  const from = dir === 'up' ? client : agent;
  const to = dir === 'up' ? agent : client;
  for (let steps = 0; moved < total; steps++) {
    if (steps > 10_000_000) throw new Error('no progress');
    now += 0.01;
    let t = process.hrtime.bigint();
    while (sent < total && from.write(chunk, now)) sent += chunk.length;
    const o = from.drain();
    if (dir === 'up') encodeBinaryMessages(o.transmit, true);
    timed += dir === 'up' ? process.hrtime.bigint() - t : 0n;
    t = process.hrtime.bigint();
    for (const f of o.transmit) to.receive(f, now);
    const back = to.drain();
    for (const d of back.deliver) moved += d.length;
    if (dir === 'down') encodeBinaryMessages(back.transmit, true);
    timed += dir === 'down' ? process.hrtime.bigint() - t : 0n;
    t = process.hrtime.bigint();
    for (const f of back.transmit) from.receive(f, now);
    timed += dir === 'up' ? process.hrtime.bigint() - t : 0n;
    from.tick(now);
  }
  return Number(timed) / 1e9;
}

for (const dir of ['up', 'down'] as const) {
  const times: number[] = [];
  for (let r = 0; r < rounds; r++) times.push(round(dir));
  const best = Math.min(...times);
  console.log(`client ${dir}: best ${((best * 100 * MiB) / total).toFixed(3)} s per 100 MiB (rounds: ${times.map((t) => ((t * 100 * MiB) / total).toFixed(3)).join(' ')})`);
}
