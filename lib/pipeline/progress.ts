/**
 * Progress output for running steps. On a terminal: one live line per running
 * step (name, bar, count/total, rate, ETA, status), redrawn in place. Elsewhere
 * (CI, pipes): plain lines at 0 %, at most every ~5 s, and at 100 %.
 *
 * @module
 */
import type { ProgressReporter } from "./job.ts";

/** Where human output goes. */
export interface Output {
  /** Writes text (with its own newlines) to the human channel (stderr). */
  err(text: string): void;
  /** Writes text to stdout. */
  out(text: string): void;
  /** True when `err` is an interactive terminal. */
  tty: boolean;
}

const enc = new TextEncoder();

function writeAll(w: { writeSync(p: Uint8Array): number }, text: string): void {
  let bytes = enc.encode(text);
  while (bytes.length) bytes = bytes.subarray(w.writeSync(bytes));
}

/** The process's stdout/stderr. */
export function consoleOutput(): Output {
  return {
    err: (t) => writeAll(Deno.stderr, t),
    out: (t) => writeAll(Deno.stdout, t),
    tty: Deno.stderr.isTerminal(),
  };
}

/**
 * Seconds as `3.2s` (under a minute, to a tenth), `3m05s` (under an hour, to
 * the second) or `1h02m` (to the minute). The value is rounded to the unit
 * shown before it is split, so 119.6 s is `2m00s`, never `1m60s`.
 */
export function formatDuration(s: number): string {
  if (!Number.isFinite(s)) return "?";
  const tenths = Math.round(s * 10);
  if (tenths < 600) return `${(tenths / 10).toFixed(1)}s`;
  const seconds = Math.round(s);
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m${pad2(seconds % 60)}s`;
  const minutes = Math.round(s / 60);
  return `${Math.floor(minutes / 60)}h${pad2(minutes % 60)}m`;
}

function pad2(n: number): string {
  return String(n).padStart(2, "0");
}

interface Bar {
  step: string;
  startedAt: number;
  total?: number;
  unit: string;
  label?: string;
  done: number;
  status?: string;
  /** When the current bar (start..finish) began, for rate and ETA. */
  barStart: number;
  lastPlain: number;
}

const PLAIN_INTERVAL_MS = 5000;
const TTY_INTERVAL_MS = 100;

/** Renders progress for all running steps onto one {@link Output}. */
export class ProgressRenderer {
  #out: Output;
  #bars = new Map<string, Bar>();
  #drawn = 0;
  #lastDraw = 0;
  #timer: ReturnType<typeof setInterval> | undefined;
  #now: () => number;

  /** @param now clock in ms (tests pass a fake one) */
  constructor(out: Output, now: () => number = () => performance.now()) {
    this.#out = out;
    this.#now = now;
  }

  /** Registers a running step and returns the reporter and logger handed to its job. */
  begin(step: string): { progress: ProgressReporter; log(message: string): void; end(): void } {
    const t = this.#now();
    const bar: Bar = { step, startedAt: t, unit: "", done: 0, barStart: t, lastPlain: 0 };
    this.#bars.set(step, bar);
    if (this.#out.tty) {
      this.#timer ??= setInterval(() => this.#draw(true), 250);
      this.#draw(true);
    }
    const progress: ProgressReporter = {
      start: (total, unit, label) => {
        Object.assign(bar, {
          total,
          unit,
          label,
          done: 0,
          status: undefined,
          barStart: this.#now(),
        });
        if (this.#out.tty) this.#draw(true);
        else this.#plain(bar, true);
      },
      update: (done, status) => {
        bar.done = done;
        if (status !== undefined) bar.status = status;
        if (this.#out.tty) this.#draw(false);
        else this.#plain(bar, false);
      },
      finish: (status) => {
        if (bar.total !== undefined) bar.done = bar.total;
        if (status !== undefined) bar.status = status;
        if (this.#out.tty) {
          this.line(`  ${step}: ${this.#text(bar, false)}`);
        } else this.#plain(bar, true);
        bar.total = undefined;
        bar.unit = "";
        bar.label = undefined;
      },
    };
    return {
      progress,
      log: (message) => this.line(`  ${step}: ${message}`),
      end: () => {
        this.#bars.delete(step);
        if (this.#out.tty) {
          this.#draw(true);
          if (this.#bars.size === 0 && this.#timer !== undefined) {
            clearInterval(this.#timer);
            this.#timer = undefined;
          }
        }
      },
    };
  }

  /** Prints a line above the live bars. */
  line(text: string): void {
    if (this.#out.tty && this.#drawn) {
      this.#out.err(`\x1b[${this.#drawn}A\r\x1b[J`);
      this.#drawn = 0;
    }
    this.#out.err(text.endsWith("\n") ? text : text + "\n");
    if (this.#out.tty) this.#draw(true);
  }

  /** Stops the redraw timer and clears the live lines. */
  close(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    if (this.#out.tty && this.#drawn) this.#out.err(`\x1b[${this.#drawn}A\r\x1b[J`);
    this.#drawn = 0;
  }

  #text(bar: Bar, withBar: boolean): string {
    const now = this.#now();
    if (bar.total === undefined) {
      return `running ${formatDuration((now - bar.startedAt) / 1000)}${
        bar.status ? `  ${bar.status}` : ""
      }`;
    }
    const total = Math.max(bar.total, 0);
    const frac = total > 0 ? Math.min(bar.done / total, 1) : 1;
    const secs = (now - bar.barStart) / 1000;
    const rate = secs > 0 ? bar.done / secs : 0;
    const eta = rate > 0 ? (total - bar.done) / rate : Infinity;
    const width = 24;
    const filled = Math.round(frac * width);
    const parts = [
      bar.label ?? "",
      withBar ? `[${"#".repeat(filled)}${".".repeat(width - filled)}]` : "",
      `${bar.done}/${total} ${bar.unit}`,
      `${(frac * 100).toFixed(0)}%`,
      rate > 0 ? `${rate >= 10 ? rate.toFixed(0) : rate.toFixed(2)} ${bar.unit}/s` : "",
      frac < 1 ? `ETA ${formatDuration(eta)}` : `in ${formatDuration(secs)}`,
      bar.status ?? "",
    ];
    return parts.filter(Boolean).join("  ");
  }

  #draw(force: boolean): void {
    const now = this.#now();
    if (!force && now - this.#lastDraw < TTY_INTERVAL_MS) return;
    this.#lastDraw = now;
    let cols = 120;
    try {
      cols = Deno.consoleSize().columns || 120;
    } catch { /* not a terminal after all */ }
    let s = this.#drawn ? `\x1b[${this.#drawn}A` : "";
    for (const bar of this.#bars.values()) {
      s += `\r\x1b[2K${`${bar.step}  ${this.#text(bar, true)}`.slice(0, cols - 1)}\n`;
    }
    s += "\x1b[J";
    this.#out.err(s);
    this.#drawn = this.#bars.size;
  }

  #plain(bar: Bar, force: boolean): void {
    const now = this.#now();
    if (!force && now - bar.lastPlain < PLAIN_INTERVAL_MS) return;
    bar.lastPlain = now;
    this.#out.err(`  ${bar.step}: ${this.#text(bar, false)}\n`);
  }
}
