// The one timer a channel driver needs: fire at the channel's next deadline.
// Re-armed after every input; no polling loop.

export class DeadlineTimer {
  private timer: NodeJS.Timeout | undefined;
  private at = Infinity;

  constructor(private readonly onFire: () => void) {}

  /** Fires at `deadline` (same clock as `now`); a later deadline than the armed one is left to the armed timer. */
  arm(deadline: number, now: number): void {
    if (deadline === Infinity) return;
    if (this.timer && this.at <= deadline) return;
    if (this.timer) clearTimeout(this.timer);
    this.at = deadline;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.at = Infinity;
      this.onFire();
    }, Math.max(0, Math.ceil(deadline - now)));
  }

  clear(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.at = Infinity;
  }
}
