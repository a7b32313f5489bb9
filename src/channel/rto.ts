// Retransmission timeout estimation (PROTOCOL.md §8.3): Jacobson/Karels with the
// reference constants. All times in milliseconds.

export interface RtoConfig {
  initialRtt: number;
  initialRttVar: number;
  initialRto: number;
  alpha: number;
  beta: number;
  granularity: number;
  maxRto: number;
  /** Floor for the timeout. The reference has none beyond G. */
  minRto: number;
  /**
   * Seed the estimate from the first sample (RFC 6298: RTT = R, RTTVAR = R/2)
   * instead of blending it into the fixed 100 ms start. The reference does not;
   * on a fast link it keeps the first RTOs near 200 ms for no reason.
   */
  seedFromFirstSample: boolean;
}

export const REFERENCE_RTO: RtoConfig = {
  initialRtt: 100,
  initialRttVar: 0,
  initialRto: 200,
  alpha: 1 / 8,
  beta: 1 / 4,
  granularity: 10,
  maxRto: 1000,
  minRto: 0,
  seedFromFirstSample: false,
};

export class RtoEstimator {
  rtt: number;
  rttVar: number;
  rto: number;
  samples = 0;

  constructor(readonly config: RtoConfig = REFERENCE_RTO) {
    this.rtt = config.initialRtt;
    this.rttVar = config.initialRttVar;
    this.rto = config.initialRto;
  }

  sample(ms: number): void {
    const c = this.config;
    if (this.samples === 0 && c.seedFromFirstSample) {
      this.rtt = ms;
      this.rttVar = ms / 2;
    } else {
      // RTTVAR uses the RTT from before this update.
      this.rttVar = (1 - c.beta) * this.rttVar + c.beta * Math.abs(this.rtt - ms);
      this.rtt = (1 - c.alpha) * this.rtt + c.alpha * ms;
    }
    this.samples++;
    this.rto = Math.max(c.minRto, Math.min(this.rtt + Math.max(c.granularity, 4 * this.rttVar), c.maxRto));
  }

  /**
   * A retransmission timer fired: double the timeout until the next valid sample
   * (RFC 6298 5.5). Without this, Karn's rule starves the estimator of the long
   * samples it needs once most frames are being retransmitted.
   */
  backoff(): void {
    this.rto = Math.min(this.rto * 2, this.config.maxRto);
  }
}
