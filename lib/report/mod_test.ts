import { assert, assertEquals, assertMatch, assertStringIncludes } from "../../tests/assert.ts";
import { encodeWav } from "../audio/wav.ts";
import { formatTick, niceTicks } from "./chart.ts";
import { jsonForScript } from "./html.ts";
import {
  compareToBaselines,
  type EvaluateReportData,
  formatMetric,
  type MetricRow,
  renderEvaluateReport,
  type ReportSound,
} from "./mod.ts";

const EVIL = `</script><script>alert("pwned")</script><!-- & 'x'`;

function tone(frames: number): Uint8Array {
  const samples = new Float32Array(frames);
  for (let i = 0; i < frames; i++) samples[i] = 0.5 * Math.sin((2 * Math.PI * 440 * i) / 8000);
  return encodeWav([samples], 8000, { bits: 16 });
}

function sound(label: string, wav = tone(800)): ReportSound {
  const frames = 6, bins = 4;
  const data = Array.from({ length: frames * bins }, (_, i) => -40 + i * 1.23456);
  return { label, wav, spectrogram: { frames, bins, data, frame_seconds: 0.016 } };
}

function reportData(): EvaluateReportData {
  return {
    title: "SamOut evaluation — train.yaml",
    facts: [["model", "hidden 128, 2 layers"], ["test clips", "42"]],
    curves: {
      train: Array.from({ length: 30 }, (_, i) => ({
        step: i * 10,
        loss: 5 - i * 0.1,
        token_accuracy: 0.1 + i * 0.01,
        lr: 1e-3,
        grad_norm: 2 - i * 0.03,
      })),
      eval: [0, 100, 200, 290].map((step, i) => ({
        step,
        val_loss: 5 - i * 0.5,
        val_token_accuracy: 0.1 + i * 0.05,
      })),
      best_step: 200,
    },
    table: [{
      label: "test loss (nats/token)",
      name: "test.loss",
      model: 2.2,
      better: "lower",
      format: "nats",
      baselines: [{ name: "unigram", value: 3.1 }, { name: "bigram", value: 2.44 }],
    }],
    confusion: { categories: ["laser", "coin"], matrix: [[8, 2], [1, 9]] },
    clips: [{
      category: "laser",
      path: "laser/a.wav",
      sounds: [sound("original"), sound("token reconstruction")],
    }],
    generated: [{ category: "coin", path: "generated #1", sounds: [sound("generated #1")] }],
  };
}

Deno.test("report escapes a malicious category name everywhere it appears", () => {
  const data = reportData();
  data.title = EVIL;
  data.facts.push([EVIL, EVIL]);
  data.clips[0].category = EVIL;
  data.clips[0].path = `${EVIL}/a.wav`;
  data.clips[0].sounds[0].label = EVIL;
  data.table[0].baselines.push({ name: EVIL, value: 1 });
  data.confusion!.categories[0] = EVIL;
  const html = renderEvaluateReport(data);
  assert(!html.includes("<script>alert"), "an injected <script> element survived");
  assert(!html.includes("<!-- &"), "an injected comment opener survived");
  assertStringIncludes(html, "&lt;/script&gt;&lt;script&gt;alert(&quot;pwned&quot;)");
  // Exactly the report's own two script elements, and the JSON one holds no `</`.
  assertEquals(html.match(/<script/g)?.length, 2);
  const json = html.match(/<script type="application\/json"[^>]*>([\s\S]*?)<\/script>/)![1];
  assert(!json.includes("</") && !json.includes("<!--"), "raw </ or <!-- inside script JSON");
});

Deno.test("jsonForScript leaves no </, <!-- or line separators and parses back", () => {
  const value = { a: "</script><!--x-->", b: "line\u2028para\u2029end", c: [1, -0.5, null] };
  const text = jsonForScript(value);
  for (const bad of ["</", "<!--", "\u2028", "\u2029", "<", ">"]) {
    assert(!text.includes(bad), `found ${JSON.stringify(bad)} in ${text}`);
  }
  assertEquals(JSON.parse(text), value);
});

Deno.test("report is deterministic: equal data renders to identical bytes", () => {
  assertEquals(renderEvaluateReport(reportData()), renderEvaluateReport(reportData()));
});

Deno.test("report hides the confusion, clip and generated sections when they are empty", () => {
  const full = renderEvaluateReport(reportData());
  for (const id of ["curves", "metrics", "confusion", "clips", "generated"]) {
    assertStringIncludes(full, `<section id="${id}">`);
  }
  const data = reportData();
  data.confusion = null;
  data.generated = [];
  const partial = renderEvaluateReport(data);
  assertStringIncludes(partial, `<section id="clips">`);
  assert(!partial.includes(`id="generated"`), "empty generated section shown");
  assert(!partial.includes(`id="confusion"`), "null confusion shown");
  assert(!partial.includes("Generated samples"), "generated heading shown");
  data.clips = [];
  const bare = renderEvaluateReport(data);
  assert(!bare.includes(`id="clips"`), "empty clips section shown");
  assert(!bare.includes("<audio") && !bare.includes("<canvas"), "players or canvases left");
  assert(!bare.includes('href="#clips"'), "nav links to a hidden section");
});

Deno.test("each audio data: URL decodes back to the exact WAV bytes", () => {
  const data = reportData();
  const wavs = [tone(800), tone(801), tone(3)];
  data.clips[0].sounds = [sound("a", wavs[0]), sound("b", wavs[1])];
  data.generated[0].sounds = [sound("c", wavs[2])];
  const html = renderEvaluateReport(data);
  const urls = [...html.matchAll(/<audio [^>]*src="data:audio\/wav;base64,([^"]*)"/g)];
  assertEquals(urls.length, 3);
  urls.forEach((m, i) => {
    const bytes = Uint8Array.from(atob(m[1]), (c) => c.charCodeAt(0));
    assertEquals(bytes, wavs[i], `sound ${i} changed on the way into the page`);
  });
});

Deno.test("every learning-curve chart marks the best step", () => {
  const html = renderEvaluateReport(reportData());
  for (const id of ["loss", "accuracy", "lr", "grad_norm"]) {
    const svg = html.match(new RegExp(`<svg [^>]*data-chart="${id}"[\\s\\S]*?</svg>`));
    assert(svg, `chart ${id} missing`);
    assertStringIncludes(svg[0], `data-best-step="200"`);
    assertStringIncludes(svg[0], "best step 200");
  }
});

Deno.test("charts with no points say 'no data' instead of failing", () => {
  const data = reportData();
  data.curves = { train: [], eval: [], best_step: 0 };
  const html = renderEvaluateReport(data);
  assertEquals(html.match(/>no data</g)?.length, 4);
  assertEquals(html.match(/data-chart="/g)?.length, 4);
});

Deno.test("spectrogram JSON holds the data rounded to 0.1, non-finite as null", () => {
  const data = reportData();
  data.generated = [];
  data.clips[0].sounds = [sound("a")];
  data.clips[0].sounds[0].spectrogram.data[0] = -Infinity;
  data.clips[0].sounds[0].spectrogram.data[1] = -0.04;
  const html = renderEvaluateReport(data);
  const json = html.match(/<script type="application\/json"[^>]*>([\s\S]*?)<\/script>/)![1];
  const [parsed] = JSON.parse(json);
  assertEquals(parsed.frames, 6);
  assertEquals(parsed.bins, 4);
  assertEquals(parsed.data[0], null);
  assertEquals(Object.is(parsed.data[1], 0), true);
  assertEquals(parsed.data[2], -37.5); // -40 + 2 * 1.23456 = -37.53
  assertMatch(html, /<canvas data-spectrogram="0" width="6" height="4"/);
});

Deno.test("metrics table: baseline columns in first-appearance order, verdict respects direction", () => {
  const row = (over: Partial<MetricRow>): MetricRow => ({
    label: "x",
    name: "x",
    model: 0.5,
    better: "higher",
    format: "percent",
    baselines: [],
    ...over,
  });
  assertEquals(compareToBaselines(row({ baselines: [{ name: "a", value: 0.4 }] })), "better");
  assertEquals(
    compareToBaselines(row({ better: "lower", baselines: [{ name: "a", value: 0.4 }] })),
    "worse",
  );
  assertEquals(
    compareToBaselines(row({ baselines: [{ name: "a", value: 0.5 }, { name: "b", value: 0.1 }] })),
    "tie",
  );
  assertEquals(
    compareToBaselines(row({ model: null, baselines: [{ name: "a", value: 1 }] })),
    "n/a",
  );
  assertEquals(compareToBaselines(row({ baselines: [{ name: "a", value: null }] })), "n/a");

  const data = reportData();
  data.table = [
    row({
      label: "r1",
      baselines: [{ name: "unigram", value: 0.2 }, { name: "bigram", value: 0.6 }],
    }),
    row({
      label: "r2",
      baselines: [{ name: "class prior", value: 0.3 }, { name: "unigram", value: 0.1 }],
    }),
  ];
  const html = renderEvaluateReport(data);
  const head = html.match(/<table class="metrics">\s*<thead>(.*?)<\/thead>/)![1];
  assertEquals(
    [...head.matchAll(/<th>(.*?)<\/th>/g)].map((m) => m[1]),
    ["metric", "model", "unigram", "bigram", "class prior", "vs best baseline"],
  );
  assertMatch(html, /data-verdict="worse"[^<]*✗/);
  assertMatch(html, /data-verdict="better"[^<]*✓/);
});

Deno.test("metric and tick formats", () => {
  assertEquals(formatMetric(2.24567, "nats"), "2.246");
  assertEquals(formatMetric(0.41234, "percent"), "41.2%");
  assertEquals(formatMetric(123456, "number"), "123500");
  assertEquals(formatMetric(0.000123456, "number"), "0.0001235");
  assertEquals(formatMetric(null, "nats"), "—");
  assertEquals(niceTicks(0, 1e-3).ticks.map((t) => formatTick(t, 2e-4, "number")), [
    "0",
    "2e-4",
    "4e-4",
    "6e-4",
    "8e-4",
    "1e-3",
  ]);
  assertEquals(niceTicks(2.13, 5.6).ticks, [2, 3, 4, 5, 6]);
  assertEquals(formatTick(0.25, 0.05, "percent"), "25%");
});
