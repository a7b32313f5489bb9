// Version gates compare dotted numeric versions component by component (§9.8).

/**
 * True when `a` is strictly greater than `b`. Like the reference client, a
 * difference in component count or a non-numeric component makes the gate false.
 */
export function versionGreaterThan(a: string, b: string): boolean {
  const pa = a.split('.');
  const pb = b.split('.');
  if (pa.length !== pb.length) return false;
  for (let i = 0; i < pa.length; i++) {
    if (!/^\d+$/.test(pa[i]) || !/^\d+$/.test(pb[i])) return false;
    const x = Number(pa[i]);
    const y = Number(pb[i]);
    if (x !== y) return x > y;
  }
  return false;
}
