/**
 * `pipeline --sweep`: the grid of fixture-job parameters (tests/fixtures/experiments),
 * named runs, the comparison table best first, and a malformed sweep refused
 * before anything runs. Every run takes milliseconds.
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import { tempDir } from "./fixtures/pipeline_helpers.ts";
import { REPO_ROOT } from "../lib/pipeline/paths.ts";
import { loadRuns } from "../lib/experiments/runs.ts";
import { parseSweeps, sweepGrid, sweepRunName } from "../lib/experiments/sweep.ts";

const FIX = fileURLToPath(new URL("./fixtures/experiments", import.meta.url));
const JOBS = join(FIX, "jobs");
const PIPELINE = join(FIX, "pipeline.yaml");

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(REPO_ROOT, "main.ts"), ...args],
    env: { NO_COLOR: "1", INIT_CWD: Deno.cwd() }, // not one inherited from the shell
    stdin: "null",
  }).output();
  const dec = new TextDecoder();
  return { code: r.code, out: dec.decode(r.stdout), err: dec.decode(r.stderr) };
}

Deno.test("sweep values are read like --set values; the grid is the cartesian product", async () => {
  const axes = await parseSweeps(
    ["train.lr=1e-3,0.002", "train.layers=2,4", "x.y=[1, 2],abc"],
    "p",
  );
  assertEquals(axes.map((a) => a.values), [[0.001, 0.002], [2, 4], [[1, 2], "abc"]]);
  const grid = sweepGrid(axes);
  assertEquals(grid.length, 8);
  assertEquals(grid[1].overrides, ["train.lr=1e-3", "train.layers=2", "x.y=abc"]);
  assertEquals(sweepRunName("exp", grid[0]), "exp-sweep-train.lr=1e-3-train.layers=2-x.y=_1,_2_");
});

Deno.test("a 2x2 sweep: four named runs sharing the data step, one table best first", async () => {
  await using dir = await tempDir();
  const store = join(dir.path, "store");
  const base = ["pipeline", PIPELINE, "--jobs-dir", JOBS, "--store", store];
  const r = await cli([...base, "--sweep", "train.lr=0.001,0.002", "--sweep", "train.layers=2,4"]);
  assertEquals(r.code, 0, r.err);
  const runs = await loadRuns(store);
  assertEquals(
    runs.map((x) => x.record.name).sort(),
    [
      "exp-sweep-train.lr=0.001-train.layers=2",
      "exp-sweep-train.lr=0.001-train.layers=4",
      "exp-sweep-train.lr=0.002-train.layers=2",
      "exp-sweep-train.lr=0.002-train.layers=4",
    ],
  );
  assertEquals(runs.filter((x) => x.record.steps.data.status === "cached").length, 3);
  const lines = r.out.trim().split("\n");
  const header = lines.findIndex((l) => l.startsWith("run "));
  assert(header >= 0, r.out);
  assertStringIncludes(lines[header], "test loss");
  const body = lines.slice(header + 1);
  assertEquals(body.length, 4);
  assert(body[0].startsWith("exp-sweep-train.lr=0.002-train.layers=4"), r.out);
  assert(body[3].startsWith("exp-sweep-train.lr=0.001-train.layers=2"), r.out);
  // --json: the same rows, sorted by test loss (all cached now: no new records).
  const j = await cli([
    ...base,
    "--json",
    "--sweep",
    "train.lr=0.001,0.002",
    "--sweep",
    "train.layers=2,4",
  ]);
  assertEquals(j.code, 0, j.err);
  const rows = JSON.parse(j.out) as { test_loss: number; values: Record<string, number> }[];
  assertEquals(rows.length, 4);
  for (let i = 1; i < rows.length; i++) assert(rows[i - 1].test_loss <= rows[i].test_loss);
  assertEquals(rows[0].values, { "train.lr": 0.002, "train.layers": 4 });
});

Deno.test("a malformed --sweep is exit 1 before anything runs", async () => {
  await using dir = await tempDir();
  const store = join(dir.path, "store");
  const base = ["pipeline", PIPELINE, "--jobs-dir", JOBS, "--store", store];
  for (
    const bad of [
      ["--sweep", "train.lr"],
      ["--sweep", "train.lr=0.001,,0.002"],
      ["--sweep", "train.lr=0.001", "--sweep", "train.lr=0.002"],
      ["--sweep", "train.layers=2,abc"], // the second point fails validation: nothing runs
      ["--sweep", "train.nosuch=1,2"],
    ]
  ) {
    const r = await cli([...base, ...bad]);
    assertEquals(r.code, 1, `${bad.join(" ")}: ${r.err}`);
    assertStringIncludes(r.err, "error:");
    assertEquals(await loadRuns(store), [], bad.join(" "));
  }
});
