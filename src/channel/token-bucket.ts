// Paces sequenced frames to the service's frame budget without sleeping:
// the channel asks for a token and, when none is left, reports when one will be.

export class TokenBucket {
  private tokens: number;
  private last: number;

  /** rate: tokens per second (0 = unlimited); burst: bucket size. */
  constructor(
    readonly rate: number,
    readonly burst: number,
    now: number,
  ) {
    this.tokens = burst;
    this.last = now;
  }

  get unlimited(): boolean {
    return this.rate <= 0;
  }

  private refill(now: number): void {
    if (now > this.last) {
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.rate) / 1000);
      this.last = now;
    }
  }

  tryTake(now: number): boolean {
    if (this.unlimited) return true;
    this.refill(now);
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    return false;
  }

  /** Time at which `n` tokens (default 1, at most the burst) will be available (now if they are). */
  readyAt(now: number, n = 1): number {
    if (this.unlimited) return now;
    this.refill(now);
    const need = Math.min(n, this.burst);
    if (this.tokens >= need) return now;
    return now + Math.ceil(((need - this.tokens) * 1000) / this.rate);
  }
}
