/**
 * Opens a rendered evaluate report in a real browser (Debian's Chromium,
 * headless, driven by puppeteer-core) and checks what a person would see: no
 * script errors, no network requests, charts and spectrograms that are not
 * blank, and audio players whose WAV data loads.
 *
 * Without Chromium the test is skipped, except under CI (env `CI` set), where
 * it fails: `.ci/run` installs Chromium. Set `REPORT_SCREENSHOT=/path.png` to
 * also save a full-page screenshot of the fixture page.
 *
 * puppeteer-core is imported without its type declarations: they reference
 * npm's `@types/node`, which replaces Deno's own Node types for the whole
 * type-check and breaks other files. `Puppeteer` below types the part this
 * test uses; the code that runs inside the page is JavaScript text.
 */
import { decode as decodePng } from "fast-png";
import { encodeWav } from "../lib/audio/wav.ts";
import {
  type EvaluateReportData,
  renderEvaluateReport,
  type ReportSound,
} from "../lib/report/mod.ts";
import { assert, assertAlmostEquals, assertEquals } from "./assert.ts";

const CHROMIUM = "/usr/bin/chromium";
/** A variable, not a literal, so the type-checker does not load puppeteer-core's types. */
const PUPPETEER_CORE: string = "puppeteer-core";
const SAMPLE_RATE = 16000;
const CLIP_SECONDS = 0.5;

function hasChromium(): boolean {
  try {
    return Deno.statSync(CHROMIUM).isFile;
  } catch {
    return false;
  }
}

const chromiumPresent = hasChromium();
const inCi = Deno.env.get("CI") !== undefined;
if (!chromiumPresent && !inCi) {
  console.warn(
    `report_browser_test: ${CHROMIUM} not found, skipping (apt-get install chromium to run it)`,
  );
}

/** Deterministic uniform [0, 1) numbers (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A sine sweep from `f0` to `f1` Hz as a 16-bit WAV, with a matching
 * log-magnitude spectrogram: `[frames, bins]` dB, a ridge at the sweep's
 * frequency over a noise floor.
 */
function sweepSound(label: string, f0: number, f1: number, seed: number): ReportSound {
  const n = Math.round(SAMPLE_RATE * CLIP_SECONDS);
  const samples = new Float32Array(n);
  let phase = 0;
  for (let i = 0; i < n; i++) {
    const f = f0 + ((f1 - f0) * i) / n;
    phase += (2 * Math.PI * f) / SAMPLE_RATE;
    const envelope = Math.min(1, i / 400, (n - i) / 400);
    samples[i] = 0.5 * envelope * Math.sin(phase);
  }
  const hop = 256, bins = 64, frames = Math.floor(n / hop);
  const random = rng(seed);
  const data: number[] = [];
  for (let t = 0; t < frames; t++) {
    const f = f0 + ((f1 - f0) * t) / frames;
    const ridge = (f / (SAMPLE_RATE / 2)) * bins;
    for (let b = 0; b < bins; b++) {
      data.push(-80 + 70 * Math.exp(-((b - ridge) ** 2) / 4) + 6 * random());
    }
  }
  return {
    label,
    wav: encodeWav([samples], SAMPLE_RATE, { bits: 16 }),
    spectrogram: { frames, bins, data, frame_seconds: hop / SAMPLE_RATE },
  };
}

function fixture(): EvaluateReportData {
  const random = rng(7);
  const steps = 600, warmup = 50, peak = 1e-3;
  const train = Array.from({ length: steps }, (_, step) => {
    const progress = step / steps;
    return {
      step,
      loss: 2.1 + 3.5 * Math.exp(-step / 90) + 0.15 * (random() - 0.5),
      token_accuracy: 0.45 - 0.4 * Math.exp(-step / 110) + 0.02 * (random() - 0.5),
      lr: step < warmup ? (peak * step) / warmup : peak * 0.5 * (1 + Math.cos(Math.PI * progress)),
      grad_norm: 0.6 + 2.5 * Math.exp(-step / 60) +
        (random() < 0.02 ? 3 * random() : 0.2 * random()),
    };
  });
  const evals = Array.from({ length: 12 }, (_, i) => {
    const step = (i + 1) * 50;
    return {
      step,
      val_loss: 2.3 + 3.3 * Math.exp(-step / 90) + 0.0004 * Math.max(0, step - 450),
      val_token_accuracy: 0.42 - 0.37 * Math.exp(-step / 110),
    };
  });
  const categories = ["coin", "explosion", "jump", "laser", "powerup", "hit", "ui click"];
  return {
    title: "SamOut evaluation — train.yaml",
    facts: [
      ["model", "SamOut, hidden 128, 8 heads, 2 layers (412,160 parameters)"],
      ["data", "7 categories × 40 clips; train 196 / validation 42 / test 42"],
      ["codebook", "256 entries, log-mel 64 bins, hop 256 at 16 kHz"],
      ["train artifact", "3f9c2a1b7d0e"],
    ],
    curves: { train, eval: evals, best_step: 450 },
    table: [
      {
        label: "test loss (nats/token)",
        name: "test.loss",
        model: 2.241,
        better: "lower",
        format: "nats",
        baselines: [
          { name: "uniform", value: Math.log(262) },
          { name: "unigram", value: 4.912 },
          { name: "bigram", value: 2.44 },
        ],
      },
      {
        label: "test token accuracy",
        name: "test.token_accuracy",
        model: 0.4312,
        better: "higher",
        format: "percent",
        baselines: [{ name: "unigram", value: 0.061 }, { name: "bigram", value: 0.452 }],
      },
      {
        label: "test category accuracy",
        name: "test.category_accuracy",
        model: 0.857,
        better: "higher",
        format: "percent",
        baselines: [{ name: "class prior", value: 1 / 7 }],
      },
      {
        label: "test perplexity",
        name: "test.perplexity",
        model: Math.exp(2.241),
        better: "lower",
        format: "number",
        baselines: [{ name: "uniform", value: 262 }, { name: "bigram", value: null }],
      },
    ],
    confusion: {
      categories,
      matrix: categories.map((_, i) =>
        categories.map((_, j) => (i === j ? 5 : (i + j) % 3 === 0 ? 1 : 0))
      ),
    },
    clips: [
      {
        category: "laser",
        path: "laser/zap_03.wav",
        sounds: [
          sweepSound("original", 3000, 400, 1),
          sweepSound("token reconstruction", 2900, 450, 2),
        ],
      },
      {
        category: "powerup",
        path: "powerup/rise_11.wav",
        sounds: [
          sweepSound("original", 300, 2500, 3),
          sweepSound("token reconstruction", 320, 2400, 4),
        ],
      },
    ],
    generated: [
      {
        category: "coin",
        path: "generated #1",
        sounds: [sweepSound("generated #1", 1200, 2200, 5)],
      },
    ],
  };
}

/** The part of puppeteer-core's API this test uses. */
interface Puppeteer {
  launch(options: {
    executablePath: string;
    headless: boolean;
    userDataDir: string;
    args: string[];
  }): Promise<Browser>;
}
interface Browser {
  newPage(): Promise<Page>;
  close(): Promise<void>;
}
interface Page {
  setViewport(viewport: { width: number; height: number }): Promise<void>;
  on(event: "console", listener: (message: { type(): string; text(): string }) => void): void;
  on(event: "pageerror", listener: (error: unknown) => void): void;
  on(event: "request" | "requestfailed", listener: (request: { url(): string }) => void): void;
  goto(url: string, options: { waitUntil: "load" }): Promise<unknown>;
  $$(selector: string): Promise<ElementHandle[]>;
  /** Evaluates JavaScript `expression` in the page; resolves to its (awaited) JSON value. */
  evaluate(expression: string): Promise<unknown>;
  screenshot(options: { path: string; fullPage: boolean }): Promise<unknown>;
}
interface ElementHandle {
  screenshot(options: { type: "png" }): Promise<Uint8Array>;
}

/** In the page: per spectrogram canvas, its pixel count, opaque pixels and distinct colours. */
const CANVAS_STATS_JS = `[...document.querySelectorAll("canvas[data-spectrogram]")].map((c) => {
  const pixels = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  const colours = new Set();
  let opaque = 0;
  for (let i = 0; i < pixels.length; i += 4) {
    colours.add((pixels[i] << 16) | (pixels[i + 1] << 8) | pixels[i + 2]);
    if (pixels[i + 3] === 255) opaque++;
  }
  return { id: c.dataset.spectrogram, colours: colours.size, opaque, pixels: c.width * c.height };
})`;

/** In the page: every audio element's duration once its metadata has loaded. */
const AUDIO_DURATIONS_JS = `Promise.all([...document.querySelectorAll("audio")].map((audio) =>
  new Promise((resolve, reject) => {
    if (audio.readyState >= 1) return resolve(audio.duration);
    const timer = setTimeout(() => reject(new Error("no loadedmetadata in 10 s")), 10000);
    audio.addEventListener("loadedmetadata", () => {
      clearTimeout(timer);
      resolve(audio.duration);
    });
    audio.addEventListener("error", () => {
      clearTimeout(timer);
      reject(new Error("audio error " + audio.error?.code + ": " + audio.error?.message));
    });
    audio.load();
  })
))`;

/** A PNG's distinct RGB colours. */
function distinctColours(png: Uint8Array): { width: number; height: number; colours: number } {
  const image = decodePng(png);
  const colours = new Set<number>();
  for (let i = 0; i < image.data.length; i += image.channels) {
    colours.add((image.data[i] << 16) | (image.data[i + 1] << 8) | image.data[i + 2]);
  }
  return { width: image.width, height: image.height, colours: colours.size };
}

Deno.test({
  name: "report opens in headless Chromium: no errors, charts and spectrograms drawn, audio loads",
  ignore: !chromiumPresent && !inCi,
  // puppeteer keeps a WebSocket and a child process whose teardown Deno's sanitizers count.
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    assert(
      chromiumPresent,
      `CI is set but ${CHROMIUM} is missing: .ci/run should install chromium`,
    );
    const puppeteer = (await import(PUPPETEER_CORE)) as Puppeteer;
    const dir = await Deno.makeTempDir({ prefix: "report_browser_" });
    let browser: Browser | undefined;
    try {
      const file = `${dir}/report.html`;
      await Deno.writeTextFile(file, renderEvaluateReport(fixture()));
      browser = await puppeteer.launch({
        executablePath: CHROMIUM,
        headless: true,
        userDataDir: `${dir}/profile`,
        args: ["--no-sandbox", "--disable-dev-shm-usage", "--mute-audio"],
      });
      const page = await browser.newPage();
      await page.setViewport({ width: 1280, height: 900 });
      const problems: string[] = [];
      page.on("console", (m) => {
        if (m.type() === "error") problems.push(`console error: ${m.text()}`);
      });
      page.on("pageerror", (e) => problems.push(`page error: ${String(e)}`));
      page.on("request", (r) => {
        if (!/^(file|data):/.test(r.url())) problems.push(`network request: ${r.url()}`);
      });
      page.on("requestfailed", (r) => problems.push(`request failed: ${r.url().slice(0, 80)}`));
      await page.goto(new URL(`file://${file}`).href, { waitUntil: "load" });

      // Charts: a screenshot of each SVG must hold more than one colour.
      const charts = await page.$$("svg[data-chart]");
      assertEquals(charts.length, 4, "expected four learning-curve charts");
      for (const [i, chart] of charts.entries()) {
        const shot = distinctColours(await chart.screenshot({ type: "png" }));
        assert(shot.width > 100 && shot.height > 50, `chart ${i} is ${shot.width}x${shot.height}`);
        assert(shot.colours > 1, `chart ${i} is blank (${shot.colours} colour)`);
      }

      // Spectrograms: each canvas's pixels, read back, hold more than one colour.
      const canvases = (await page.evaluate(CANVAS_STATS_JS)) as {
        id: string;
        colours: number;
        opaque: number;
        pixels: number;
      }[];
      assertEquals(canvases.length, 5, "expected one canvas per sound");
      for (const c of canvases) {
        assert(c.colours > 1, `spectrogram ${c.id} is blank (${c.colours} colour)`);
        assertEquals(c.opaque, c.pixels, `spectrogram ${c.id} is not fully drawn`);
      }

      // Audio: every player's WAV decodes far enough to know its duration.
      const durations = (await page.evaluate(AUDIO_DURATIONS_JS)) as number[];
      assertEquals(durations.length, 5, "expected one player per sound");
      for (const d of durations) assertAlmostEquals(d, CLIP_SECONDS, 0.01);

      const screenshotPath = Deno.env.get("REPORT_SCREENSHOT");
      if (screenshotPath) await page.screenshot({ path: screenshotPath, fullPage: true });

      assertEquals(problems, [], "the page reported problems");
    } finally {
      await browser?.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
